"""Batched, cached, streaming feature extraction: each (encoder, dataset, split) is encoded once, ever.

Batches stream from DataLoader workers (decode + pad + resize) through the encoder straight into
memory-mapped store entries, so RAM stays bounded by a batch whatever the split size, and every
``CHUNK`` images the progress is committed: a killed run resumes from its last complete chunk.
All the kinds a run needs of a split (global, patch grid) come from one forward pass. On CUDA
the forward runs under bf16 autocast. Under ``torchrun`` each rank streams its strided shard into
a shard entry, and rank 0 interleaves the shards into the final entry (see
:mod:`xrbench.features.distributed`).
"""
from __future__ import annotations

import logging
import shutil
import time
from dataclasses import astuple
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from xrbench.data.images import read_image
from xrbench.data.sample import Sample
from xrbench.errors import DataError
from xrbench.features import distributed as dist
from xrbench.features.preprocess import to_input_tensor
from xrbench.features.store import CorruptEntry, FeatureStore, feature_key
from xrbench.models.base import Encoder, EncoderMeta
from xrbench.models.checks import check_first_batch

log = logging.getLogger(__name__)

#: images per committed chunk: a crash loses at most this many encoded images
CHUNK = 256
#: stored dtype per kind (``blocks:N`` kinds are float32 like ``global``)
DTYPES = {"global": "float32", "patches": "float16"}


class _Images(Dataset):
    def __init__(self, samples: Sequence[Sample], indices: Sequence[int], meta: EncoderMeta):
        self.samples, self.indices, self.meta = samples, list(indices), meta

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        """(image tensor, geometry, error). A bad image comes back as its error message instead of
        an exception, so that the main process raises it plainly rather than wrapped in a worker
        traceback."""
        idx = self.indices[i]
        try:
            x, geo = to_input_tensor(read_image(self.samples[idx].image), self.meta)
            return x, torch.tensor(astuple(geo), dtype=torch.int32), ""
        except DataError as e:
            size = self.meta.input_size
            return torch.zeros(self.meta.in_chans, size, size), torch.zeros(6, dtype=torch.int32), str(e)


def iter_batches(encoder: Encoder, samples: Sequence[Sample], indices: Sequence[int], *,
                 kinds: Sequence[str], device: str = "cpu", batch_size: int = 32, num_workers: int = 0,
                 desc: str = "extract") -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
    """Encode ``samples[indices]`` in order, yielding (kind -> batch array, geometry [B, 6])."""
    encoder = encoder.to(device).eval()
    cuda = device.startswith("cuda")
    loader = DataLoader(_Images(samples, indices, encoder.meta), batch_size=batch_size,
                        num_workers=num_workers, pin_memory=cuda, shuffle=False,
                        persistent_workers=False)
    first = True
    with tqdm(total=len(indices), desc=desc, unit="img", leave=False, disable=None) as bar, torch.inference_mode():
        for x, geo, errors in loader:
            bad = [e for e in errors if e]
            if bad:
                raise DataError(bad[0] + (f" (and {len(bad) - 1} more in this batch)" if len(bad) > 1 else ""))
            x = x.to(device, non_blocking=cuda)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                out = encoder.encode(x, kinds=kinds)
            if first:  # the preprocessing contract, before anything is cached
                check_first_batch(x, out, encoder.meta, [samples[i].id for i in indices[:len(x)]])
                first = False
            yield ({k: out[k].float().to(getattr(torch, DTYPES.get(k, "float32"))).cpu().numpy() for k in kinds},
                   geo.numpy())
            bar.update(x.shape[0])


def encode_samples(encoder: Encoder, samples: Sequence[Sample], *, kinds: Sequence[str],
                   device: str = "cpu", batch_size: int = 32, num_workers: int = 0,
                   indices: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """Encode ``samples[indices]`` into memory (small sets, tests); the store streams instead."""
    indices = list(range(len(samples))) if indices is None else list(indices)
    chunks: dict[str, list[np.ndarray]] = {k: [] for k in kinds}
    for out, _ in iter_batches(encoder, samples, indices, kinds=kinds, device=device,
                               batch_size=batch_size, num_workers=num_workers):
        for k in kinds:
            chunks[k].append(out[k])
    dim = encoder.meta.embed_dim
    return {k: (np.concatenate(v) if v else np.zeros((0, dim), np.float32)) for k, v in chunks.items()}


class FeatureExtractor:
    """Serves features of (dataset, split) from the store, encoding only what is missing."""

    def __init__(self, encoder: Encoder, store: FeatureStore, *, device: str = "cpu",
                 batch_size: int = 32, num_workers: int = 0):
        self.encoder, self.store = encoder, store
        self.device, self.batch_size, self.num_workers = device, batch_size, num_workers
        self.seconds = 0.0
        self.computed: list[str] = []

    def key(self, dataset: str, split: str, image_manifest: str, kind: str) -> str:
        meta = self.encoder.meta
        return feature_key(encoder=meta.to_dict(), preprocessing=meta.preprocessing(),
                           dataset=dataset, image_manifest=image_manifest, split=split, kind=kind)

    def features(self, dataset: str, split: str, samples: Sequence[Sample], image_manifest: str,
                 kinds: Sequence[str]) -> dict[str, np.ndarray]:
        """kind -> memory-mapped array aligned with ``samples`` (missing kinds in one pass)."""
        return {k: v[0] for k, v in self.features_and_geometry(dataset, split, samples, image_manifest,
                                                              kinds).items()}

    def features_and_geometry(self, dataset: str, split: str, samples: Sequence[Sample],
                              image_manifest: str, kinds: Sequence[str]
                              ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """kind -> (features, geometry [N, 6]) aligned with ``samples``."""
        if not samples:
            dim = self.encoder.meta.embed_dim
            return {k: (np.zeros((0, dim), np.float32), np.zeros((0, 6), np.int32)) for k in kinds}
        keys = {k: self.key(dataset, split, image_manifest, k) for k in kinds}
        out = {k: v for k, v in ((k, self._load(keys[k], samples)) for k in kinds) if v is not None}
        missing = [k for k in kinds if k not in out]
        if missing:
            t0 = time.perf_counter()
            self._extract({k: keys[k] for k in missing}, dataset, split, samples, image_manifest)
            self.seconds += time.perf_counter() - t0
            self.computed += [f"{dataset}/{split}/{k}" for k in missing]
            for k in missing:
                arr, geo, ids = self.store.load(keys[k])
                out[k] = (arr, geo)
        return {k: out[k] for k in kinds}

    def _load(self, key: str, samples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.store.has(key):
            return None
        try:
            arr, geo, ids = self.store.load(key)
            if ids != [s.id for s in samples]:
                raise CorruptEntry("its ids are not those of the samples it is keyed by")
            return arr, geo
        except CorruptEntry as e:
            if dist.is_main():
                self.store.quarantine(key, str(e))
            dist.barrier()
            return None

    def _extract(self, keys: dict[str, str], dataset: str, split: str, samples: Sequence[Sample],
                 image_manifest: str) -> None:
        r, w = dist.rank(), dist.world()
        mine = list(range(r, len(samples), w))
        shard = {k: key if w == 1 else f"{key}.shard{r}of{w}" for k, key in keys.items()}
        self._stream(shard, samples, mine, f"{dataset}/{split}")
        meta = {"encoder": self.encoder.meta.to_dict(), "dataset": dataset, "split": split,
                "n": len(samples), "images": image_manifest, "preprocessing": self.encoder.meta.preprocessing()}
        ids = [s.id for s in samples]
        if w == 1:
            for k, key in keys.items():
                self.store.partial(key).publish(ids, {**meta, "kind": k})
            return
        dist.barrier()
        if dist.is_main():
            for k, key in keys.items():
                self._assemble(key, k, len(samples), w, ids, {**meta, "kind": k})
        dist.barrier()

    def _stream(self, keys: dict[str, str], samples: Sequence[Sample], indices: list[int], desc: str) -> None:
        """Encode ``indices`` into partial entries, resuming after the last committed chunk."""
        parts = {k: self.store.partial(key) for k, key in keys.items()}
        n = len(indices)
        done = min(p.saved_done() for p in parts.values())
        arrays: dict = {}
        pos, last = done, done
        if done:
            log.info("%s: resuming extraction at image %d of %d", desc, done, n)
        for out, geo in iter_batches(self.encoder, samples, indices[done:], kinds=list(keys),
                                     device=self.device, batch_size=self.batch_size,
                                     num_workers=self.num_workers, desc=desc):
            b = len(geo)
            for k, part in parts.items():
                if k not in arrays:
                    feats, g, d = part.open(n, out[k].shape[1:], DTYPES.get(k, "float32"))
                    if d != done:  # the saved partial did not fit: start this split again
                        for p in parts.values():
                            shutil.rmtree(p.dir, ignore_errors=True)
                        return self._stream(keys, samples, indices, desc)
                    arrays[k] = (feats, g)
                feats, g = arrays[k]
                feats.write(pos, out[k])
                g.write(pos, geo)
            pos += b
            if pos - last >= CHUNK or pos == n:
                for k, part in parts.items():
                    part.commit(*arrays[k], pos)
                last = pos
        if not arrays and n:  # everything was done by an earlier run
            return None
        if n == 0:  # an empty shard (more ranks than images)
            for k, part in parts.items():
                feats, g, _ = part.open(0, (self.encoder.meta.embed_dim,), DTYPES.get(k, "float32"))
                part.commit(feats, g, 0)
        return None

    def _assemble(self, key: str, kind: str, n: int, w: int, ids: list[str], meta: dict) -> None:
        """Interleave the ranks' shard entries (rank r holds rows r, r + w, ...) into the entry,
        a chunk at a time."""
        shards = [self.store.partial(f"{key}.shard{r}of{w}").reopen() for r in range(w)]
        row_shape = next(f.shape[1:] for f, _ in shards if len(f))
        part = self.store.partial(key)
        shutil.rmtree(part.dir, ignore_errors=True)
        feats, geo, _ = part.open(n, row_shape, DTYPES.get(kind, "float32"))
        for i in range(0, len(shards[0][0]), CHUNK):  # split rows [w*i, w*j) hold shard rows i..j
            j = i + CHUNK
            lo, hi = w * i, min(w * j, n)
            block = np.empty((hi - lo, *row_shape), dtype=feats.dtype)
            gblock = np.empty((hi - lo, 6), dtype=np.int32)
            for r, (sf, sg) in enumerate(shards):
                m = max(0, min(j, len(sf)) - i)
                block[r::w][:m] = sf.read(i, i + m)
                gblock[r::w][:m] = sg.read(i, i + m)
            feats.write(lo, block)
            geo.write(lo, gblock)
        part.publish(ids, meta)
        for r in range(w):
            shutil.rmtree(self.store.partial(f"{key}.shard{r}of{w}").dir, ignore_errors=True)

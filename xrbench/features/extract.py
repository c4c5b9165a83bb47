"""Batched, cached, streaming feature extraction: each (encoder, dataset, split) is encoded once, ever.

Batches of uint16 pixels stream from DataLoader workers (decode + pad + resize), or from the pixel
cache of an earlier encoder at the same input size (:mod:`xrbench.features.pixels`), are
normalised on the device, and go through the encoder straight into
memory-mapped store entries, so RAM stays bounded by a batch whatever the split size, and every
``CHUNK`` images the progress is committed: a killed run resumes from its last complete chunk.
All the kinds a run needs of a split (global, patch grid) come from one forward pass. On CUDA
the forward runs under bf16 autocast. Under ``torchrun`` each rank streams its strided shard into
a shard entry, and rank 0 interleaves the shards into the final entry (see
:mod:`xrbench.features.distributed`).
"""
from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from dataclasses import astuple
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from xrbench.data.sample import Sample
from xrbench.errors import DataError
from xrbench.features import distributed as dist
from xrbench.features.pixels import PIXEL_FORMAT, PixelCache, decode, normalise, pixel_key
from xrbench.features.store import CorruptEntry, FeatureStore, feature_key
from xrbench.models.base import Encoder, EncoderMeta
from xrbench.models.meta import grid_pool
from xrbench.models.checks import check_first_batch

log = logging.getLogger(__name__)

#: images per committed chunk: a crash loses at most this many encoded images
CHUNK = 256
def dtype(kind: str) -> str:
    """Patch grids (pooled or not) in float16, global and ``blocks:N`` kinds in float32."""
    return "float16" if grid_pool(kind) else "float32"


class _Decode(Dataset):
    """Worker side: one sample -> (uint16 [S, S] pixels, geometry, error, truncated). A bad image
    comes back as its error message instead of an exception, so that the main process raises it
    plainly rather than wrapped in a worker traceback; ``truncated`` says the file's data ended
    early and the image was decoded as far as it goes (reported, see :class:`FeatureExtractor`)."""

    def __init__(self, samples: Sequence[Sample], indices: Sequence[int], size: int, policy: str):
        self.samples, self.indices, self.size, self.policy = samples, list(indices), size, policy

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        try:
            px, geo, truncated = decode(self.samples[self.indices[i]].image, self.size, self.policy)
            return torch.from_numpy(px), torch.tensor(astuple(geo), dtype=torch.int32), "", truncated
        except DataError as e:
            return (torch.zeros(self.size, self.size, dtype=torch.uint16), torch.zeros(6, dtype=torch.int32),
                    str(e), False)


class _CachedBatches(Dataset):
    """Batch ``b`` of a cached split: one fancy-indexed read of the memory map, no decoding."""

    def __init__(self, pixels: tuple[np.ndarray, np.ndarray, np.ndarray], indices: Sequence[int], batch_size: int):
        self.px, self.geo, self.truncated = pixels
        self.indices, self.batch_size = np.asarray(indices, dtype=np.int64), batch_size

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    def __getitem__(self, b: int):
        rows = self.indices[b * self.batch_size:(b + 1) * self.batch_size]
        contiguous = len(rows) and rows[-1] - rows[0] == len(rows) - 1
        px = np.array(self.px[rows[0]:rows[-1] + 1]) if contiguous else self.px[rows]  # copied out of the map
        return (torch.from_numpy(px), torch.from_numpy(self.geo[rows].astype(np.int32)), (),
                torch.from_numpy(self.truncated[rows]))


def pixel_loader(samples: Sequence[Sample], indices: Sequence[int], size: int, *, batch_size: int,
                 num_workers: int, pin_memory: bool = False, policy: str = "fast",
                 cached: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> DataLoader:
    """Batches (uint16 pixels [B, S, S], geometry [B, 6], errors, truncated [B] bool): decoded in
    ``num_workers`` persistent workers, or read in the main process from ``cached`` (pixels,
    geometry, truncated flags of the split: :meth:`PixelCache.lookup`)."""
    if cached is not None:  # a read from the page cache is a memcpy: worker IPC would only add copies
        return DataLoader(_CachedBatches(cached, indices, batch_size), batch_size=None, pin_memory=pin_memory)
    return DataLoader(_Decode(samples, indices, size, policy), batch_size=batch_size, num_workers=num_workers,
                      pin_memory=pin_memory, shuffle=False, persistent_workers=num_workers > 0,
                      prefetch_factor=4 if num_workers > 0 else None)


def auto_batch_size(device: str, batch_size: int) -> int:
    """``batch_size``, or for 0 (auto) 256 on CUDA (halved on out-of-memory by :class:`_Forward`), 32 on CPU."""
    if batch_size > 0:
        return batch_size
    return 256 if device.startswith("cuda") else 32


class _Forward:
    """``encoder.encode`` in micro-batches that halve on CUDA out-of-memory, for the rest of the run."""

    def __init__(self, encoder: Encoder, compile: bool):
        self.encoder, self.micro = encoder, None
        if compile:
            encoder.forward_features = torch.compile(encoder.forward_features)

    def __call__(self, x: torch.Tensor, kinds: Sequence[str]) -> dict[str, torch.Tensor]:
        before = self.encoder.images_encoded
        while True:
            m = self.micro or len(x)
            try:
                parts = [self.encoder.encode(x[i:i + m], kinds=kinds) for i in range(0, len(x), m)]
                return parts[0] if len(parts) == 1 else {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
            except torch.cuda.OutOfMemoryError:
                if m == 1:
                    raise
                self.micro = m // 2
                self.encoder.images_encoded = before
                torch.cuda.empty_cache()
                log.warning("CUDA out of memory at batch %d: continuing with batches of %d", m, self.micro)


def iter_batches(encoder: Encoder, samples: Sequence[Sample], indices: Sequence[int], *,
                 kinds: Sequence[str], device: str = "cpu", batch_size: int = 32, num_workers: int = 0,
                 desc: str = "extract", policy: str = "fast",
                 cached: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                 sink: Callable[[np.ndarray, np.ndarray], None] | None = None, compile: bool = False
                 ) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]]:
    """Encode ``samples[indices]`` in order, yielding (kind -> batch array, geometry [B, 6],
    truncated [B] bool: the image file's data ended early and it was decoded partially).

    Pixels come decoded from workers, or from ``cached`` (see :mod:`xrbench.features.pixels`);
    each decoded uint16 batch and its geometry go to ``sink`` (the pixel cache's writer) in order.
    The main loop does per-batch tensor work only: copy (pinned, non-blocking), normalise and
    replicate channels on the device, forward."""
    cuda = device.startswith("cuda")
    encoder = encoder.to(device).eval()
    if cuda:
        encoder = encoder.to(memory_format=torch.channels_last)
    forward = _Forward(encoder, compile)
    loader = pixel_loader(samples, indices, encoder.meta.input_size, batch_size=auto_batch_size(device, batch_size),
                          num_workers=num_workers, pin_memory=cuda, policy=policy, cached=cached)
    first = True
    with tqdm(total=len(indices), desc=desc, unit="img", leave=False, disable=None) as bar, torch.inference_mode():
        for px, geo, errors, truncated in loader:
            bad = [e for e in errors if e]
            if bad:
                raise DataError(bad[0] + (f" (and {len(bad) - 1} more in this batch)" if len(bad) > 1 else ""))
            truncated = truncated.numpy().astype(bool)
            if sink is not None:
                sink(px.numpy(), geo.numpy())
            x = normalise(px.to(device, non_blocking=cuda), encoder.meta)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                out = forward(x, kinds)
            if first:  # the preprocessing contract, before anything is cached
                check_first_batch(x, out, encoder.meta, [samples[i].id for i in indices[:len(x)]])
                first = False
            yield ({k: out[k].float().to(getattr(torch, dtype(k))).cpu().numpy() for k in kinds},
                   geo.numpy(), truncated)
            bar.update(x.shape[0])


def encode_samples(encoder: Encoder, samples: Sequence[Sample], *, kinds: Sequence[str],
                   device: str = "cpu", batch_size: int = 32, num_workers: int = 0,
                   indices: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """Encode ``samples[indices]`` into memory (small sets, tests); the store streams instead."""
    indices = list(range(len(samples))) if indices is None else list(indices)
    chunks: dict[str, list[np.ndarray]] = {k: [] for k in kinds}
    for out, _, _ in iter_batches(encoder, samples, indices, kinds=kinds, device=device,
                               batch_size=batch_size, num_workers=num_workers):
        for k in kinds:
            chunks[k].append(out[k])
    dim = encoder.meta.embed_dim
    return {k: (np.concatenate(v) if v else np.zeros((0, dim), np.float32)) for k, v in chunks.items()}


class FeatureExtractor:
    """Serves features of (dataset, split) from the store, encoding only what is missing."""

    def __init__(self, encoder: Encoder, store: FeatureStore, *, device: str = "cpu",
                 batch_size: int = 32, num_workers: int = 0, pixels: PixelCache | None = None,
                 policy: str = "fast", compile: bool = False):
        self.encoder, self.store, self.pixels = encoder, store, pixels
        self.device, self.batch_size, self.num_workers = device, batch_size, num_workers
        self.policy, self.compile = policy, compile
        self.seconds = 0.0
        self.computed: list[str] = []

    def key(self, dataset: str, split: str, image_manifest: str, kind: str) -> str:
        meta = self.encoder.meta
        return feature_key(encoder=meta.to_dict(),
                           preprocessing={**meta.preprocessing(), "pixels": PIXEL_FORMAT, "decode": self.policy},
                           dataset=dataset, image_manifest=image_manifest, split=split, kind=kind)

    def features(self, dataset: str, split: str, samples: Sequence[Sample], image_manifest: str,
                 kinds: Sequence[str]) -> dict[str, np.ndarray]:
        """kind -> memory-mapped array aligned with ``samples`` (missing kinds in one pass)."""
        return {k: v[0] for k, v in self.features_and_geometry(dataset, split, samples, image_manifest,
                                                              kinds).items()}

    def features_and_geometry(self, dataset: str, split: str, samples: Sequence[Sample],
                              image_manifest: str, kinds: Sequence[str],
                              digests: Sequence[str] | None = None
                              ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """kind -> (features, geometry [N, 6]) aligned with ``samples``.

        ``digests`` (the content digest of each sample's image) let features follow the image, not
        the dataset name: when every image of a missing split already has features from this
        encoder in another entry (MS-CXR's images are MIMIC-CXR images; a ``--limit`` subset of a
        split), the rows are copied from there and nothing is encoded."""
        if not samples:
            dim = self.encoder.meta.embed_dim
            return {k: (np.zeros((0, dim), np.float32), np.zeros((0, 6), np.int32)) for k in kinds}
        keys = {k: self.key(dataset, split, image_manifest, k) for k in kinds}
        out = {k: v for k, v in ((k, self._load(keys[k], samples)) for k in kinds) if v is not None}
        missing = [k for k in kinds if k not in out]
        if missing and digests is not None:
            for k in list(missing):
                if self._reuse(keys[k], k, dataset, split, samples, image_manifest, list(digests)):
                    missing.remove(k)
                    arr, geo, _ = self.store.load(keys[k])
                    out[k] = (arr, geo)
        if missing:
            lock = self.store.locked() if dist.world() == 1 else contextlib.nullcontext()
            with lock:  # another process may have built them while this one waited
                out.update({k: v for k, v in ((k, self._load(keys[k], samples)) for k in missing) if v is not None})
                missing = [k for k in missing if k not in out]
                if missing:
                    t0 = time.perf_counter()
                    self._extract({k: keys[k] for k in missing}, dataset, split, samples, image_manifest, digests)
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

    def fingerprint(self, kind: str) -> str:
        """What makes two entries' rows interchangeable: encoder, weights, preprocessing, kind."""
        return self.key("", "", "", kind)

    def _meta(self, kind: str, dataset: str, split: str, n: int, image_manifest: str) -> dict:
        return {"encoder": self.encoder.meta.to_dict(), "dataset": dataset, "split": split, "n": n,
                "images": image_manifest, "preprocessing": self.encoder.meta.preprocessing(),
                "kind": kind, "fingerprint": self.fingerprint(kind)}

    def _publish(self, key: str, ids: list[str], meta: dict, digests: Sequence[str] | None) -> None:
        part = self.store.partial(key)
        if digests is not None:
            (part.dir / "digests.json").write_text(json.dumps(list(digests)))
        part.publish(ids, meta)

    def _index(self, kind: str) -> dict[str, tuple[str, int]]:
        """content digest -> (entry, row) over the store's entries of this encoder and kind."""
        fp, index = self.fingerprint(kind), {}
        for key in self.store.keys():
            d = self.store.path(key)
            try:
                if json.loads((d / "meta.json").read_text()).get("fingerprint") != fp:
                    continue
                digests = json.loads((d / "digests.json").read_text())
            except (OSError, ValueError):
                continue
            for row, dg in enumerate(digests):
                index.setdefault(dg, (key, row))
        return index

    def _reuse(self, key: str, kind: str, dataset: str, split: str, samples: Sequence[Sample],
               image_manifest: str, digests: list[str]) -> bool:
        """Build the entry from rows of other entries when every image is already encoded."""
        if dist.world() > 1:
            return False
        index = self._index(kind)
        if not digests or not all(d in index for d in digests):
            return False
        sources: dict[str, tuple] = {}
        try:
            for k, _ in {index[d] for d in digests}:
                arr, geo, got = self.store.load(k)
                partial = set(self.store.truncated(k))
                sources[k] = (arr, geo, [i in partial for i in got])
        except CorruptEntry:
            return False
        first = sources[index[digests[0]][0]][0]
        part = self.store.partial(key)
        shutil.rmtree(part.dir, ignore_errors=True)
        feats, geo, _ = part.open(len(samples), first.shape[1:], str(first.dtype))
        truncated = []
        for i, d in enumerate(digests):
            k, row = index[d]
            feats.write(i, np.asarray(sources[k][0][row:row + 1]))
            geo.write(i, np.asarray(sources[k][1][row:row + 1]))
            if sources[k][2][row]:  # the same file, decoded partially there
                truncated.append(samples[i].id)
        del sources
        self._publish(key, [s.id for s in samples], {**self._meta(kind, dataset, split, len(samples),
                                                                  image_manifest), "reused": True,
                                                     "truncated": truncated}, digests)
        log.info("%s/%s/%s: %d rows reused from other entries; nothing encoded", dataset, split, kind,
                 len(samples))
        return True

    def _extract(self, keys: dict[str, str], dataset: str, split: str, samples: Sequence[Sample],
                 image_manifest: str, digests: Sequence[str] | None = None) -> None:
        r, w = dist.rank(), dist.world()
        mine = list(range(r, len(samples), w))
        shard = {k: key if w == 1 else f"{key}.shard{r}of{w}" for k, key in keys.items()}
        truncated = self._stream(shard, samples, mine, f"{dataset}/{split}", image_manifest)
        ids = [s.id for s in samples]
        if w == 1:
            for k, key in keys.items():
                self._publish(key, ids, {**self._meta(k, dataset, split, len(samples), image_manifest),
                                         "truncated": truncated}, digests)
            return
        meta = self._meta("", dataset, split, len(samples), image_manifest)
        dist.barrier()
        if dist.is_main():
            for k, key in keys.items():
                self._assemble(key, k, len(samples), w, ids,
                               {**meta, "kind": k, "fingerprint": self.fingerprint(k)})
        dist.barrier()

    def _stream(self, keys: dict[str, str], samples: Sequence[Sample], indices: list[int], desc: str,
                image_manifest: str) -> list[str]:
        """Encode ``indices`` into partial entries, resuming after the last committed chunk; returns
        the ids of the truncated images among them (decoded partially), in row order.

        Pixels are read from the pixel cache when it holds the split; otherwise (on a single
        process, whose ``indices`` are the whole split) the decoded pixels are streamed into it, in
        the same chunks, so the next encoder at this resolution decodes nothing. Each commit records
        the truncated ids so far, so a resumed run still reports the rows it does not decode again."""
        parts = {k: self.store.partial(key) for k, key in keys.items()}
        n = len(indices)
        done = min(p.saved_done() for p in parts.values())
        saved = {t for p in parts.values() for t in p.saved_truncated()}
        cached, sink, pix = None, None, None
        if self.pixels is not None and n:
            pkey = pixel_key(image_manifest, self.encoder.meta.input_size, self.policy)
            ids = [s.id for s in samples]
            cached = self.pixels.lookup(pkey, ids)
            if cached is None and n == len(samples):
                size = self.encoder.meta.input_size
                ppart = self.pixels.partial(pkey)
                saved |= set(ppart.saved_truncated())
                pw, pg, pdone = ppart.open(n, (size, size), "uint16")
                done = min(done, pdone)  # rewriting rows is harmless: decoding is deterministic
                at = [done]

                def sink(px: np.ndarray, geo: np.ndarray) -> None:
                    pw.write(at[0], px)
                    pg.write(at[0], geo)
                    at[0] += len(px)
                pix = (ppart, pw, pg, ids)
        row = {samples[i].id: j for j, i in enumerate(indices)}
        truncated = {t for t in saved if row.get(t, n) < done}  # rows after ``done`` are decoded again

        def listed() -> list[str]:
            return sorted(truncated, key=row.__getitem__)
        arrays: dict = {}
        pos, last = done, done
        if done:
            log.info("%s: resuming extraction at image %d of %d", desc, done, n)
        for out, geo, partial in iter_batches(self.encoder, samples, indices[done:], kinds=list(keys),
                                              device=self.device, batch_size=self.batch_size,
                                              num_workers=self.num_workers, desc=desc, policy=self.policy,
                                              cached=cached, sink=sink, compile=self.compile):
            b = len(geo)
            truncated.update(samples[indices[pos + j]].id for j in np.flatnonzero(partial))
            for k, part in parts.items():
                if k not in arrays:
                    feats, g, d = part.open(n, out[k].shape[1:], dtype(k))
                    if d < done:  # the saved partial did not fit: start this split again
                        for p in parts.values():
                            shutil.rmtree(p.dir, ignore_errors=True)
                        return self._stream(keys, samples, indices, desc, image_manifest)
                    arrays[k] = (feats, g)
                feats, g = arrays[k]
                feats.write(pos, out[k])
                g.write(pos, geo)
            pos += b
            if pos - last >= CHUNK or pos == n:
                for k, part in parts.items():
                    part.commit(*arrays[k], pos, listed())
                if pix is not None:
                    pix[0].commit(pix[1], pix[2], pos, listed())
                last = pos
        if truncated and pos == n:
            log.warning("%s: %d image file(s) truncated, decoded as far as their data goes: %s", desc,
                        len(truncated), ", ".join(listed()[:5]) + (" ..." if len(truncated) > 5 else ""))
        if pix is not None and pos == n:
            meta = {"images": image_manifest, "size": self.encoder.meta.input_size, "policy": self.policy,
                    "format": PIXEL_FORMAT, "n": n, "dataset": desc.split("/")[0], "split": desc.split("/")[-1],
                    "truncated": listed()}
            pix[0].publish(pix[3], meta)
        if n == 0:  # an empty shard (more ranks than images)
            for k, part in parts.items():
                feats, g, _ = part.open(0, (self.encoder.meta.embed_dim,), dtype(k))
                part.commit(feats, g, 0)
        return listed()  # (everything may have been done by an earlier run: its saved ids)

    def _assemble(self, key: str, kind: str, n: int, w: int, ids: list[str], meta: dict) -> None:
        """Interleave the ranks' shard entries (rank r holds rows r, r + w, ...) into the entry,
        a chunk at a time."""
        shards = [self.store.partial(f"{key}.shard{r}of{w}").reopen() for r in range(w)]
        row_shape = next(f.shape[1:] for f, _ in shards if len(f))
        part = self.store.partial(key)
        shutil.rmtree(part.dir, ignore_errors=True)
        feats, geo, _ = part.open(n, row_shape, dtype(kind))
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
        partial = {t for r in range(w) for t in self.store.partial(f"{key}.shard{r}of{w}").saved_truncated()}
        part.publish(ids, {**meta, "truncated": [i for i in ids if i in partial]})
        for r in range(w):
            shutil.rmtree(self.store.partial(f"{key}.shard{r}of{w}").dir, ignore_errors=True)

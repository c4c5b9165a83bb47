"""Batched, cached feature extraction: each (encoder, dataset, split) is encoded once, ever.

On CUDA the forward pass runs under bf16 autocast; DataLoader workers decode images in
parallel. Under ``torchrun`` each rank encodes a strided shard and rank 0 assembles the result
(see :mod:`xrbench.features.distributed`).
"""
from __future__ import annotations

import logging
import time
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from xrbench.data.images import read_image
from xrbench.data.sample import Sample
from xrbench.errors import DataError
from xrbench.features import distributed as dist
from xrbench.features.preprocess import to_input_tensor
from xrbench.features.store import FeatureStore, feature_key
from xrbench.models.base import Encoder, EncoderMeta
from xrbench.models.checks import check_first_batch

log = logging.getLogger(__name__)


class _Images(Dataset):
    def __init__(self, samples: Sequence[Sample], indices: Sequence[int], meta: EncoderMeta):
        self.samples, self.indices, self.meta = samples, list(indices), meta

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        """(image tensor, index, error). A bad image comes back as its error message instead of an
        exception, so that the main process raises it plainly rather than wrapped in a worker
        traceback."""
        idx = self.indices[i]
        try:
            x, _ = to_input_tensor(read_image(self.samples[idx].image), self.meta)
            return x, idx, ""
        except DataError as e:
            size = self.meta.input_size
            return torch.zeros(self.meta.in_chans, size, size), idx, str(e)


def encode_samples(encoder: Encoder, samples: Sequence[Sample], *, kinds: Sequence[str],
                   device: str = "cpu", batch_size: int = 32, num_workers: int = 0,
                   indices: Sequence[int] | None = None, desc: str = "extract") -> dict[str, np.ndarray]:
    """Encode ``samples[indices]``; returns kind -> array in the order of ``indices``."""
    indices = list(range(len(samples))) if indices is None else list(indices)
    encoder = encoder.to(device).eval()
    cuda = device.startswith("cuda")
    loader = DataLoader(_Images(samples, indices, encoder.meta), batch_size=batch_size,
                        num_workers=num_workers, pin_memory=cuda, shuffle=False,
                        persistent_workers=False)
    chunks: dict[str, list[np.ndarray]] = {k: [] for k in kinds}
    with tqdm(total=len(indices), desc=desc, unit="img", leave=False, disable=None) as bar:
        for x, _, errors in loader:
            bad = [e for e in errors if e]
            if bad:
                raise DataError(bad[0] + (f" (and {len(bad) - 1} more in this batch)" if len(bad) > 1 else ""))
            x = x.to(device, non_blocking=cuda)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                out = encoder.encode(x)
            if not chunks[kinds[0]]:  # the preprocessing contract, before anything is cached
                check_first_batch(x, out, encoder.meta, [samples[i].id for i in indices[:len(x)]])
            for k in kinds:
                v = out[k].float()
                chunks[k].append(v.to(torch.float16 if k == "patches" else torch.float32).cpu().numpy())
            bar.update(x.shape[0])
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
        """kind -> array aligned with ``samples`` (extracting the missing kinds in one pass)."""
        keys = {k: self.key(dataset, split, image_manifest, k) for k in kinds}
        missing = [k for k in kinds if not self.store.has(keys[k])]
        if missing and samples:
            t0 = time.perf_counter()
            arrays = dist.encode_sharded(
                lambda idx: encode_samples(self.encoder, samples, kinds=missing, device=self.device,
                                           batch_size=self.batch_size, num_workers=self.num_workers,
                                           indices=idx, desc=f"{dataset}/{split}"),
                n=len(samples), kinds=missing)
            if dist.is_main():
                for k in missing:
                    self.store.save(keys[k], arrays[k], [s.id for s in samples], {
                        "encoder": self.encoder.meta.to_dict(), "dataset": dataset, "split": split,
                        "kind": k, "n": len(samples), "images": image_manifest,
                        "preprocessing": self.encoder.meta.preprocessing()})
            dist.barrier()
            self.seconds += time.perf_counter() - t0
            self.computed += [f"{dataset}/{split}/{k}" for k in missing]
        out = {}
        for k in kinds:
            if not samples:
                out[k] = np.zeros((0, self.encoder.meta.embed_dim), np.float32)
                continue
            arr, ids = self.store.load(keys[k])
            if ids != [s.id for s in samples]:  # content-addressed: cannot happen unless tampered
                raise RuntimeError(f"feature store entry {keys[k]} does not match its samples")
            out[k] = arr
        return out

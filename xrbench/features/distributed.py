"""Multi-GPU / multi-node extraction under ``torchrun``: strided shards, assembled on rank 0.

Each rank encodes samples ``rank, rank + world, ...``; the shards meet through
``all_gather_object`` (gloo or nccl), and rank 0 interleaves them back into dataset order. With no
process group initialised every function degrades to the single-process case.
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np
import torch.distributed as tdist


def is_dist() -> bool:
    return tdist.is_available() and tdist.is_initialized()


def rank() -> int:
    return tdist.get_rank() if is_dist() else 0


def world() -> int:
    return tdist.get_world_size() if is_dist() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_dist():
        tdist.barrier()


def init_from_env(device: str) -> str:
    """Join the process group torchrun describes (if any); return this rank's device."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and not is_dist():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        tdist.init_process_group(backend=backend)
        if device.startswith("cuda"):
            import torch

            local = int(os.environ.get("LOCAL_RANK", 0))
            torch.cuda.set_device(local)
            return f"cuda:{local}"
    return device


def encode_sharded(encode: Callable[[Sequence[int]], dict[str, np.ndarray]], *, n: int,
                   kinds: Sequence[str]) -> dict[str, np.ndarray]:
    """Run ``encode(indices)`` on this rank's shard and return the full arrays (on every rank)."""
    r, w = rank(), world()
    mine = encode(list(range(r, n, w)))
    if w == 1:
        return mine
    shards: list[dict[str, np.ndarray] | None] = [None] * w
    tdist.all_gather_object(shards, mine)
    out = {}
    for k in kinds:
        first = shards[0][k]
        full = np.empty((n,) + first.shape[1:], dtype=first.dtype)
        for i, shard in enumerate(shards):
            full[i::w] = shard[k]
        out[k] = full
    return out

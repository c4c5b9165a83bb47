"""Multi-GPU / multi-node extraction under ``torchrun``: strided shards, assembled on rank 0.

Each rank streams samples ``rank, rank + world, ...`` into its own shard entry of the store (on a
shared ``XRBENCH_HOME``); after a barrier rank 0 interleaves the shards back into dataset order
(:meth:`xrbench.features.extract.FeatureExtractor._assemble`), in chunks, so no rank ever holds a
split in RAM. With no process group initialised every function degrades to the single process.
"""
from __future__ import annotations

import os

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

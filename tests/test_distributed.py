"""torchrun-style sharded extraction, on 2 CPU processes with the gloo backend."""
from __future__ import annotations

import os
import socket

import numpy as np
import torch.multiprocessing as mp

from xrbench.data.images import write_raster
from xrbench.data.sample import Sample
from xrbench.features.store import FeatureStore


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, tmp: str, out: dict) -> None:
    import torch
    import torch.distributed as tdist

    from xrbench.features import distributed as dist
    from xrbench.features.extract import FeatureExtractor
    from xrbench.features.store import FeatureStore
    from xrbench.models.timm_adapter import create_timm_encoder

    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    assert dist.init_from_env("cpu") == "cpu" and dist.world() == world
    samples = [Sample(id=str(i), image=f"{tmp}/{i}.png", patient=str(i), split="train") for i in range(7)]
    enc = create_timm_encoder("tiny", "vit_tiny_patch16_224", input_size=64, seed=0)
    ex = FeatureExtractor(enc, FeatureStore(f"{tmp}/store"))
    feats = ex.features("d", "train", samples, "m", ["global"])["global"]
    out[rank] = (np.asarray(feats).copy(), enc.images_encoded)
    tdist.destroy_process_group()


def test_two_gloo_ranks_split_the_work_and_match_single_process(tmp_path):
    from xrbench.features.extract import encode_samples
    from xrbench.models.timm_adapter import create_timm_encoder

    rng = np.random.default_rng(0)
    for i in range(7):
        write_raster(tmp_path / f"{i}.png", rng.random((40, 50)))
    for i in (3, 4):  # truncated files, one in each rank's shard
        raw = (tmp_path / f"{i}.png").read_bytes()
        (tmp_path / f"{i}.png").write_bytes(raw[: len(raw) * 2 // 3])
    with mp.Manager() as manager:
        out = manager.dict()
        mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path), out), nprocs=2, start_method="spawn")
        results = dict(out)
    single = encode_samples(create_timm_encoder("tiny", "vit_tiny_patch16_224", input_size=64, seed=0),
                            [Sample(id=str(i), image=tmp_path / f"{i}.png", patient=str(i), split="train")
                             for i in range(7)], kinds=["global"])["global"]
    assert results[0][1] == 4 and results[1][1] == 3  # strided shards: 0,2,4,6 and 1,3,5
    np.testing.assert_allclose(results[0][0], single, atol=1e-5)
    np.testing.assert_allclose(results[1][0], single, atol=1e-5)
    store = FeatureStore(tmp_path / "store")
    assert [store.truncated(k) for k in store.keys()] == [["3", "4"]]  # both shards' flags, in row order

"""``patches:poolK``: a dense task can keep K x K average-pooled grids instead of the full grid."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xrbench.errors import ModelError
from xrbench.models.base import pool_grid
from xrbench.models.meta import grid_pool
from xrbench.tasks.catalog import TaskCatalog
from xrbench.tasks.schema import TaskSpec


def test_grid_pool_parses_only_grid_kinds():
    assert [grid_pool(k) for k in ("patches", "patches:pool2", "patches:pool7", "global", "blocks:4",
                                   "patches:poolx")] == [1, 2, 7, None, None, None]


def test_pool_grid_is_the_mean_of_each_block():
    x = torch.arange(2 * 4 * 6 * 3, dtype=torch.float32).reshape(2, 4, 6, 3)
    got = pool_grid(x, 2, "enc")
    assert got.shape == (2, 2, 3, 3)
    torch.testing.assert_close(got[1, 1, 2], x[1, 2:4, 4:6].reshape(-1, 3).mean(0))
    with pytest.raises(ModelError, match=r"4x6 patch grid cannot be pooled by 3"):
        pool_grid(x, 3, "enc")


def test_task_schema_accepts_pooled_grids_only():
    base = TaskCatalog().resolve("ceph-landmarks")[0].model_dump()
    assert TaskSpec.model_validate({**base, "features": "patches:pool2"}).features == "patches:pool2"
    with pytest.raises(ValueError):
        TaskSpec.model_validate({**base, "features": "patches:pool1x"})


@pytest.mark.slow
def test_dense_task_on_pooled_grids_stores_only_the_pooled_grid(tmp_path, monkeypatch, tiny_encoder):
    from xrbench.runner import RunConfig, Runner

    monkeypatch.setenv("XRBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XRBENCH_DEMO_SCALE", "0.25")
    base = TaskCatalog().resolve("ceph-landmarks")[0].model_dump()
    spec = TaskSpec.model_validate({**base, "name": "ceph-landmarks-pool2", "features": "patches:pool2"})
    assert spec.config_hash() != TaskCatalog().resolve("ceph-landmarks")[0].config_hash()
    cfg = RunConfig(output=tmp_path / "out", feature_root=tmp_path / "features", n_boot=200)
    (rec,) = Runner(tiny_encoder, cfg).run([spec])
    metas = [json.loads(p.read_text()) for p in (tmp_path / "features").glob("*/meta.json")]
    assert sorted({m["kind"] for m in metas}) == ["patches:pool2"]  # the full grid is never stored
    shapes = {np.load(p.parent / "features.npy", mmap_mode="r").shape[1:] for p in
              (tmp_path / "features").glob("*/meta.json")}
    assert shapes == {(2, 2, tiny_encoder.meta.embed_dim)}  # the tiny ViT's 4x4 grid, pooled by 2
    assert rec.metrics["mre_mm"].ci_low <= rec.metrics["mre_mm"].value <= rec.metrics["mre_mm"].ci_high
    assert rec.hparams["heatmap"] == [8, 8]  # the head upsamples the 2x2 grid as it does a full one

"""Head-training time of each dense task family on cached patch grids of the demo's size.

Each case builds (spec, train, val, test) :class:`SplitData` on a synthetic float16 memmap of
the shape the demo's ``xr0`` grids have (ViT-B/16 at 224 px: 14 x 14 x 768) and times one
``fit_predict``. A family adds its case to :data:`CASES` (family name -> builder). Run with
``make bench``; not part of ``make test``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from xrbench.data.sample import Sample
from xrbench.families import create_family
from xrbench.families.base import SplitData
from xrbench.features.preprocess import pad_geometry
from xrbench.features.view import FeatureRows
from xrbench.tasks.catalog import TaskCatalog

N_TRAIN, N_VAL, N_TEST = 150, 15, 60
GRID, DIM, SIZE = 14, 768, 224


def _memmap(path: Path, n: int, rng) -> FeatureRows:
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, GRID, GRID, DIM))
    for i in range(0, n, 32):
        arr[i:i + 32] = rng.normal(size=(min(32, n - i), GRID, GRID, DIM)).astype(np.float16)
    arr.flush()
    return FeatureRows(np.load(path, mmap_mode="r"))


def landmarks_case(tmp: Path):
    spec = TaskCatalog().resolve("ceph-landmarks")[0]
    rng = np.random.default_rng(0)
    k = len(spec.target.labels)

    def split(name: str, n: int) -> SplitData:
        samples, geo = [], []
        for i in range(n):
            h, w = int(rng.integers(200, 260)), int(rng.integers(200, 260))
            g = pad_geometry(h, w, SIZE)
            samples.append(Sample(id=f"{name}{i}", image=Path(f"{name}{i}.bmp"), patient=f"{name}{i}", split=name,
                                  landmarks=rng.uniform([0, 0], [w, h], (k, 2)), spacing_mm=0.1))
            geo.append([h, w, g.side, g.top, g.left, g.size])
        return SplitData(samples, _memmap(tmp / f"{name}.npy", n, rng), np.asarray(geo))

    return spec, split("train", N_TRAIN), split("val", N_VAL), split("test", N_TEST)


#: family name -> builder of (spec, train, val, test) in a temporary folder
CASES: dict[str, Callable[[Path], tuple]] = {"landmarks": landmarks_case}


@pytest.mark.parametrize("family", sorted(CASES))
def test_dense_head_training(benchmark, tmp_path, family):
    spec, train, val, test = CASES[family](tmp_path)
    fam = create_family(spec)
    out = benchmark.pedantic(lambda: fam.fit_predict(train, val, test, seed=0, device="cpu"),
                             rounds=1, iterations=1)
    benchmark.extra_info.update({"task": spec.name, "n_train": len(train.samples), "grid": [GRID, GRID, DIM],
                                 "hparams": out.hparams})
    assert len(out.predictions) == len(test.samples)

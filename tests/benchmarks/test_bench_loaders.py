"""Loader speed at real scale: every dataset loader on a generated ~200k-row table in its official
layout (``_loader_tables.py`` says which image files each one needs; most need none).

Run with ``make bench``; ``XRBENCH_BENCH_ROWS`` shrinks the tables for a quick smoke run. Not
part of ``make test``. NIH, RSNA bone age, SIIM and knee-oa find their images by walking the tree,
so their tables come with 200k empty image files; the other loaders touch no image at load time.
"""
from __future__ import annotations

import os

import pytest

import xrbench.data.datasets  # noqa: F401  (registers the loaders)
from xrbench.registry import DATASETS

import _loader_tables as tables  # noqa: E402  (this folder is on sys.path under pytest)

ROWS = int(os.environ.get("XRBENCH_BENCH_ROWS", tables.ROWS))

#: dataset -> (writer, rows); ISBI 2015 is 400 images and one text file per image and reader, so
#: it runs at 10x its real size rather than 200k
CASES = {
    "chexpert": (tables.chexpert, ROWS),
    "mimic-cxr": (tables.mimic, ROWS),
    "nih-cxr14": (tables.nih, ROWS),
    "mura": (tables.mura, ROWS),
    "vindr-cxr": (tables.vindr_cxr, ROWS),
    "vindr-spinexr": (tables.vindr_spinexr, ROWS),
    "fracatlas": (tables.fracatlas, ROWS),
    "rsna-boneage": (tables.rsna_boneage, ROWS),
    "siim-acr": (tables.siim, ROWS),
    "knee-oa": (tables.knee, ROWS),
    "isbi2015-ceph": (tables.isbi, min(ROWS, 4_000)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_load(benchmark, tmp_path_factory, name):
    writer, rows = CASES[name]
    root = writer(tmp_path_factory.mktemp(name), rows)
    cls = DATASETS.get(name)
    samples = benchmark.pedantic(lambda: cls(root).samples(), rounds=2, iterations=1)
    assert len(samples) >= rows // 4  # several rows per image in some layouts (readers, boxes)
    benchmark.extra_info["rows"] = rows
    benchmark.extra_info["samples"] = len(samples)

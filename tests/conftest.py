"""Shared fixtures: offline, isolated XRBENCH_HOME, small fast encoders."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def xr_home(tmp_path, monkeypatch):
    """A private XRBENCH_HOME so demo data and feature caches never leak between tests."""
    home = tmp_path / "xrhome"
    monkeypatch.setenv("XRBENCH_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def pydicom_data_dir():
    pytest.importorskip("data_store")
    import data_store
    from pathlib import Path

    return Path(data_store.__file__).parent / "data"


@pytest.fixture
def tiny_encoder():
    """A small ViT (patch grid 4x4 at 64 px) that encodes fast on CPU."""
    from xrbench.models.timm_adapter import create_timm_encoder

    return create_timm_encoder("tiny-vit", "vit_tiny_patch16_224", input_size=64, seed=0)

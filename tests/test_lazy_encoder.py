"""A cached run builds no encoder: its metadata is remembered, and checked before it is trusted."""
from __future__ import annotations

import json
import os
import time

import pytest
import torch

from xrbench.errors import ModelError
from xrbench.models import create_encoder
from xrbench.models.lazy import LazyEncoder, create_run_encoder

ARCH = "timm:test_resnet"


@pytest.fixture
def builds(monkeypatch):
    """Counts encoder builds through the registry."""
    import xrbench.models.zoo as zoo

    count = {"n": 0}
    real = zoo.create_encoder

    def counting(*a, **k):
        count["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(zoo, "create_encoder", counting)
    return count


def test_second_creation_is_lazy_and_builds_on_first_forward(tmp_path, builds):
    first = create_run_encoder(ARCH, cache_dir=tmp_path)
    assert not isinstance(first, LazyEncoder) and builds["n"] == 1
    second = create_run_encoder(ARCH, cache_dir=tmp_path)
    assert isinstance(second, LazyEncoder) and not second.built and builds["n"] == 1
    assert second.meta == first.meta and second.images_encoded == 0
    x = torch.rand(2, 3, first.meta.input_size, first.meta.input_size)
    got = second.encode(x)
    assert builds["n"] == 2 and second.built and second.images_encoded == 2
    want = first.encode(x)
    assert torch.equal(got["global"], want["global"]) and torch.equal(got["patches"], want["patches"])
    second.images_encoded = 0  # attribute writes reach the built encoder
    assert second.real().images_encoded == 0


def test_changed_weights_file_rebuilds(tmp_path, builds):
    from safetensors.torch import save_file

    enc = create_encoder(ARCH)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in enc.model.state_dict().items()}, path)
    cache = tmp_path / "models"
    a = create_run_encoder(ARCH, weights=str(path), cache_dir=cache)
    entry = json.loads(next(cache.glob("*.json")).read_text())
    assert list(entry["files"]) == [str(path.resolve())]  # the weights file identifies the entry
    assert isinstance(create_run_encoder(ARCH, weights=str(path), cache_dir=cache), LazyEncoder)
    time.sleep(0.01)
    os.utime(path)  # same bytes, new mtime/ctime: not trusted any more
    c = create_run_encoder(ARCH, weights=str(path), cache_dir=cache)
    assert not isinstance(c, LazyEncoder) and c.meta == a.meta
    assert builds["n"] == 2  # built for a, not for b, again for c


def test_other_weights_or_options_are_other_entries(tmp_path, monkeypatch):
    create_run_encoder(ARCH, cache_dir=tmp_path)
    monkeypatch.setenv("XRBENCH_TEST_RESNET_WEIGHTS", "/nowhere")
    assert not isinstance(create_run_encoder(ARCH, cache_dir=tmp_path), LazyEncoder)
    assert not isinstance(create_run_encoder(ARCH, cache_dir=tmp_path, allow_partial=True), LazyEncoder)
    assert len(list(tmp_path.glob("*.json"))) == 3


def test_remembered_metadata_that_differs_from_the_build_stops_the_run(tmp_path):
    create_run_encoder(ARCH, cache_dir=tmp_path)
    path = next(tmp_path.glob("*.json"))
    entry = json.loads(path.read_text())
    entry["meta"]["embed_dim"] += 1
    path.write_text(json.dumps(entry))
    lazy = create_run_encoder(ARCH, cache_dir=tmp_path)
    assert isinstance(lazy, LazyEncoder)
    with pytest.raises(ModelError, match="differs from the built encoder"):
        lazy.encode(torch.rand(1, 3, 224, 224))


def test_unreadable_entry_is_rebuilt(tmp_path, builds):
    create_run_encoder(ARCH, cache_dir=tmp_path)
    next(tmp_path.glob("*.json")).write_text("{not json")
    assert not isinstance(create_run_encoder(ARCH, cache_dir=tmp_path), LazyEncoder)
    assert builds["n"] == 2


def test_cached_cli_run_builds_no_encoder(tmp_path, monkeypatch, builds):
    from xrbench.cli import main

    monkeypatch.setenv("XRBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XRBENCH_DEMO_SCALE", "0.1")
    argv = ["run", "--model", ARCH, "--task", "chexpert-linear", "--output", str(tmp_path / "out"),
            "--workers", "0", "--bootstrap", "100"]
    assert main(argv) == 0 and builds["n"] == 1
    first = json.loads((tmp_path / "out/timm_test_resnet/chexpert-linear/seed0.json").read_text())
    assert main(argv) == 0 and builds["n"] == 1  # everything cached: the network is never built
    second = json.loads((tmp_path / "out/timm_test_resnet/chexpert-linear/seed0.json").read_text())
    assert second["metrics"] == first["metrics"] and second["provenance"]["encoder"] == \
        first["provenance"]["encoder"]

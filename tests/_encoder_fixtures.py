"""Tiny encoders of every adapter format, written to tmp folders (tests/ is on sys.path).

``write_package`` puts a private module factory on sys.path; ``run_chexpert`` round-trips an
encoder through ``chexpert-linear`` on the small demo (the caller sets XRBENCH_DEMO_SCALE) and
checks that every demo image was encoded exactly once.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

FACTORY = '''
import torch
from torch import nn


class Tiny(nn.Module):
    """8x8 patches -> 16 channels: patches [B, 4, 4, 16] at 32 px, global = their mean."""

    def __init__(self, constant=False):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 16, 8, stride=8)
        self.constant = constant

    def forward(self, x):
        p = self.conv(x).permute(0, 2, 3, 1)
        if self.constant:
            p = p * 0 + 1
        return {"global": p.mean((1, 2)), "patches": p}


def make(constant=False, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)):
    return Tiny(constant), {"name": "tiny-module", "input_size": 32, "patch_size": 8,
                            "mean": list(mean), "std": list(std), "weights": "test-fixture"}
'''


def write_package(root: Path, name: str) -> str:
    """A package ``name`` with module ``enc`` holding factory ``make``; returns ``name.enc:make``."""
    pkg = root / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "enc.py").write_text(textwrap.dedent(FACTORY))
    return f"{name}.enc:make"


def run_chexpert(encoder, tmp_path: Path, **cfg):
    from xrbench.runner import RunConfig, Runner
    from xrbench.tasks.catalog import TaskCatalog

    specs = TaskCatalog().resolve("chexpert-linear")
    config = RunConfig(output=tmp_path / "out", n_boot=100, feature_root=tmp_path / "features", **cfg)
    runner = Runner(encoder, config, progress=lambda m: None)
    before = encoder.images_encoded
    [rec] = runner.run(specs)
    n_images = sum(len(loader.samples()) for loader in runner._loaders.values())
    assert encoder.images_encoded - before == n_images  # every demo image encoded once
    return rec

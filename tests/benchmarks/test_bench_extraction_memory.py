"""Peak RSS while streaming a 5,000-image split's patch grids into the store (issue 9).

The encoder is cheap but wide (a [14, 14, 1024] grid: 2.0 GB of float16 for 5,000 images), so the
split's grid is twice the 1 GB budget: if extraction held the grid, or a memory map of it, in RAM,
the peak would show it. Run in a fresh subprocess so that ru_maxrss is this extraction's alone;
the model's own footprint (weights, one batch through it) is measured in the same process first.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

CHILD = textwrap.dedent('''
    import json, resource, sys
    from pathlib import Path
    import numpy as np, torch
    from xrbench.data.images import write_raster
    from xrbench.data.sample import Sample
    from xrbench.features.extract import FeatureExtractor, iter_batches
    from xrbench.features.store import FeatureStore
    from xrbench.models.base import Encoder
    from xrbench.models.meta import EncoderMeta

    class Wide(Encoder):
        def __init__(self):
            super().__init__(EncoderMeta(name="wide", architecture="wide", embed_dim=1024, input_size=224,
                                         mean=(0.5,) * 3, std=(0.25,) * 3, patch_size=16, weights="test"))
            self.proj = torch.nn.Conv2d(3, 1024, 16, stride=16)
        def forward_features(self, x):
            p = self.proj(x).permute(0, 2, 3, 1)
            return {"global": p.mean((1, 2)), "patches": p}

    tmp, n = Path(sys.argv[1]), int(sys.argv[2])
    rng = np.random.default_rng(0)
    samples = []
    for i in range(n):
        f = tmp / "img" / f"{i}.png"
        if not f.exists():
            write_raster(f, rng.random((64, 48)))
        samples.append(Sample(id=str(i), image=f, patient=str(i), split="train"))
    torch.set_num_threads(2)
    enc = Wide()
    next(iter_batches(enc, samples, range(64), kinds=["patches"], batch_size=64))  # the model's footprint
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ex = FeatureExtractor(enc, FeatureStore(tmp / "fs"), batch_size=64)
    arr = ex.features("d", "train", samples, "m", ["patches"])["patches"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"base_mb": base / 1024, "peak_mb": peak / 1024, "grid_mb": arr.nbytes / 2**20}))
''')


def test_peak_rss_of_patch_grid_extraction_is_bounded(benchmark, tmp_path):
    (tmp_path / "img").mkdir()

    def once():
        out = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), "5000"], check=True,
                             capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    r = benchmark.pedantic(once, rounds=1, iterations=1)
    growth = r["peak_mb"] - r["base_mb"]
    benchmark.extra_info.update({**r, "growth_mb": growth})
    print(f"\npatch grid {r['grid_mb']:.0f} MB; RSS: model {r['base_mb']:.0f} MB, peak {r['peak_mb']:.0f} MB, "
          f"growth {growth:.0f} MB")
    assert r["grid_mb"] > 1900
    assert growth < 1024

"""``xrbench bench`` runs end to end (its rates are measured in tests/benchmarks, not asserted here)."""
import json

import numpy as np
import pytest
from PIL import Image

from xrbench.cli import main
from xrbench.commands.bench import full_size_copies


def test_full_size_copies_are_jpegs_of_that_size_with_grain(tmp_path):
    src = tmp_path / "a.png"
    Image.fromarray(np.full((64, 48), 128, np.uint8)).save(src)
    from xrbench.data.sample import Sample

    s = Sample(id="a", image=src, patient="p", split="test")
    (copy,) = full_size_copies([s], (300, 250), tmp_path / "big")
    assert copy.id == "a" and copy.image.suffix == ".jpg" and s.image == src
    with Image.open(copy.image) as im:
        assert im.size == (250, 300) and im.format == "JPEG"
        px = np.asarray(im, dtype=np.float64)
    assert abs(px.mean() - 128) < 2 and 2.5 < px.std() < 5  # 1.5% grain survives quality 95


def test_bench_json_on_rewritten_images(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XRBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XRBENCH_DEMO_SCALE", "0.05")
    argv = ["bench", "--model", "timm:test_resnet", "--limit", "8", "--batch-size", "2", "--workers", "0",
            "--source-size", "200x160", "--json"]
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["images"] == 8 and res["source_size"] == [200, 160] and "rewritten as 200x160" in res["dataset"]
    assert set(res["ratios"]) == {"end_to_end_vs_limit", "end_to_end_cached_vs_limit", "cache_read_vs_decode",
                                  "end_to_end_vs_shared_cores_limit"}
    r, q = res["rates_img_s"], res["ratios"]
    assert all(v > 0 for v in r.values())
    # on the CPU forward and decode add: the shared limit is their harmonic combination, below both
    assert r["shared_cores_limit"] == pytest.approx(1 / (1 / r["forward"] + 1 / r["decode"]))
    assert r["shared_cores_limit"] < min(r["forward"], r["decode"])
    assert q["end_to_end_vs_shared_cores_limit"] == pytest.approx(r["end_to_end"] / r["shared_cores_limit"])


@pytest.mark.parametrize("bad", ["3000", "3000x", "5x5", "axb"])
def test_bad_source_size_is_a_usage_error(bad, capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "--model", "xr0", "--source-size", bad])
    assert e.value.code == 2 and "--source-size" in capsys.readouterr().err

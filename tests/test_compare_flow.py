"""The CI recipe end to end (docs/ci.md): evaluate a checkpoint, compare with a committed baseline.

A tiny timm ResNet (test_resnet) with random weights saved to .safetensors is the baseline checkpoint; the same
weights under another file name must pass (exit 0); the same weights with the last stage zeroed
(features constant) is stopped by `xrbench run` (exit 2, bad input); a malformed file gives exit 2.
"""
from __future__ import annotations

import shutil

import pytest
import torch
from _results_fixtures import ToySpots, toy_tasks

from xrbench.cli import main

pytestmark = pytest.mark.slow


def _evaluate(weights, out, tasks, data) -> int:
    return main(["run", "--model", "timm:test_resnet", "--weights", str(weights), "--task", "toy-spots-linear",
                 "--include", str(tasks), "--data", f"toy-spots={data}", "--output", str(out),
                 "--device", "cpu", "--workers", "0", "--bootstrap", "200"])


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    import timm
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("flow")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XRBENCH_HOME", str(root / "home"))
        ToySpots.write_demo(root / "data", n=100, seed=0)
        tasks = toy_tasks(root / "tasks")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            sd = {k: v.contiguous() for k, v in timm.create_model("test_resnet", num_classes=0).state_dict().items()}
        save_file(sd, root / "baseline.safetensors")
        shutil.copy(root / "baseline.safetensors", root / "candidate.safetensors")
        save_file({k: torch.zeros_like(v) if k.startswith("layer4.") and v.ndim == 4 else v for k, v in sd.items()},
                  root / "dead.safetensors")
        for name in ("baseline", "candidate"):
            assert _evaluate(root / f"{name}.safetensors", root / f"results-{name}", tasks, root / "data") == 0
        yield root


def test_a_degraded_checkpoint_fails_the_job_before_any_feature_is_cached(flow, capsys):
    # layer4's filters zeroed: every image gives the same features. The first-batch check stops the
    # run (exit 2) before anything is cached or scored, so the CI job fails at `xrbench run`
    # (a paired regression of a working but worse checkpoint: tests/test_compare.py)
    assert _evaluate(flow / "dead.safetensors", flow / "results-dead", flow / "tasks", flow / "data") == 2
    assert "identical global features" in capsys.readouterr().err
    assert not (flow / "results-dead").exists() or not any((flow / "results-dead").rglob("*.json"))


def test_same_checkpoint_passes(flow, capsys):
    md = flow / "same.md"
    assert main(["compare", str(flow / "results-candidate"), str(flow / "results-baseline"),
                 "--markdown", str(md)]) == 0
    out = capsys.readouterr().out
    assert "no regression (1 task(s) compared)" in out and "paired bootstrap, 20 patients" in out
    assert "| toy-spots-linear | auroc ↑ |" in md.read_text() and "➖ same" in md.read_text()


def test_against_a_leaderboard_csv_the_comparison_is_unpaired_and_says_so(flow, capsys):
    # a committed leaderboard CSV as the baseline: no predictions, compared from the two CIs
    assert main(["compare", str(flow / "results-candidate"), str(flow / "results-baseline" / "leaderboard.csv")]) == 0
    assert "unpaired (from the two CIs): BASELINE has no per-sample predictions" in capsys.readouterr().out


@pytest.mark.parametrize("target,content,needle", [
    ("seed0.json", "{\"task\": ", "not a readable JSON file"),
    ("seed0.predictions.jsonl", '{"format": "xrbench-predictions", "version": 2}\n{"id": \n',
     "line 2: not JSON"),
])
def test_malformed_file_exits_2(flow, capsys, target, content, needle):
    broken = flow / f"broken-{target}"
    shutil.rmtree(broken, ignore_errors=True)
    shutil.copytree(flow / "results-candidate", broken)
    next(broken.rglob(target)).write_text(content)
    assert main(["compare", str(broken), str(flow / "results-baseline")]) == 2
    assert needle in capsys.readouterr().err

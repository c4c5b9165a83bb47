"""xrbench compare: verdicts with direction and tolerance, paired vs unpaired CIs, exit codes, Markdown."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from _results_fixtures import toy_scores, write_result

from xrbench.cli import main
from xrbench.metrics.classification import auroc
from xrbench.results import compare_report
from xrbench.results.compare import compare, unpaired_ci, verdict
from xrbench.results.merge import ResultsError


@pytest.mark.parametrize("delta,lo,hi,direction,tol,expected", [
    (-0.10, -0.15, -0.05, "higher", 0.0, "worse"),
    (-0.10, -0.15, -0.05, "higher", 0.05, "same"),    # the CI reaches above -tolerance
    (-0.10, -0.15, -0.06, "higher", 0.05, "worse"),
    (-0.02, -0.06, 0.02, "higher", 0.0, "same"),
    (0.10, 0.05, 0.15, "higher", 0.0, "better"),
    (2.0, 1.0, 3.0, "lower", 0.0, "worse"),            # MAE went up: worse
    (-2.0, -3.0, -1.0, "lower", 0.0, "better"),
    (2.0, 1.0, 3.0, "lower", 1.5, "same"),
    (-0.01, float("nan"), float("nan"), "higher", 0.0, "worse"),  # no CI: point estimate vs tolerance
    (-0.01, float("nan"), float("nan"), "higher", 0.02, "same"),
    (0.0, 0.0, 0.0, "higher", 0.0, "same"),           # identical predictions
])
def test_verdicts_respect_direction_and_tolerance(delta, lo, hi, direction, tol, expected):
    assert verdict(delta, lo, hi, direction, tol) == expected


def test_unpaired_interval_from_two_cis_and_alpha():
    new = {"value": "0.70", "ci_low": "0.65", "ci_high": "0.75"}
    base = {"value": "0.80", "ci_low": "0.76", "ci_high": "0.84"}
    d, lo, hi = unpaired_ci(new, base, 0.05)
    se = np.hypot(0.10, 0.08) / (2 * 1.959964)
    assert d == pytest.approx(-0.10) and lo == pytest.approx(-0.10 - 1.959964 * se, 1e-5)
    assert hi == pytest.approx(-0.10 + 1.959964 * se, 1e-5)
    _, lo50, hi50 = unpaired_ci(new, base, 0.5)
    assert lo < lo50 < hi50 < hi


@pytest.fixture
def runs(tmp_path):
    """BASELINE: a decent model; 'worse': the same test set with noisier scores; 'same': a copy."""
    y, s, p = toy_scores(seed=1, noise=0.8)
    _, s_bad, _ = toy_scores(seed=2, noise=1.6)
    write_result(tmp_path / "base", model="enc", weights="base.safetensors", y=y, s=s, patients=p)
    write_result(tmp_path / "worse", model="enc", weights="new.safetensors", y=y, s=s_bad, patients=p)
    shutil.copytree(tmp_path / "base", tmp_path / "same")
    return tmp_path, y, s, s_bad


def test_paired_bootstrap_catches_a_regression(runs):
    root, y, s, s_bad = runs
    rep = compare([root / "worse"], [root / "base"], n_boot=500)
    (c,) = rep.comparisons
    assert c.paired and c.method.startswith("paired bootstrap, 100 patients, 500 resamples")
    assert c.delta == pytest.approx(auroc(y[:, 0], s_bad[:, 0]) - auroc(y[:, 0], s[:, 0]), abs=1e-4)
    assert c.ci_low < c.delta < c.ci_high < 0 and c.verdict == "worse" and rep.exit_code == 1
    assert compare([root / "base"], [root / "worse"], n_boot=500).comparisons[0].verdict == "better"
    # a generous tolerance lets the drop pass
    tol = -c.ci_low + 0.01
    assert compare([root / "worse"], [root / "base"], n_boot=500, tolerance=tol).exit_code == 0


def test_unpaired_fallback_without_predictions_says_so_and_is_wider(runs):
    root, *_ = runs
    paired = compare([root / "worse"], [root / "base"], n_boot=500).comparisons[0]
    for f in (root / "base").rglob("*.predictions.csv"):
        f.unlink()
    c = compare([root / "worse"], [root / "base"], n_boot=500).comparisons[0]
    assert not c.paired and c.method == ("unpaired (from the two CIs): BASELINE has no per-sample "
                                         "predictions (predictions file missing)")
    assert c.delta == pytest.approx(paired.delta, abs=1e-5)
    assert (c.ci_high - c.ci_low) > (paired.ci_high - paired.ci_low)  # pairing removes shared noise
    assert main(["leaderboard", str(root / "base"), "-o", str(root / "base.csv")]) == 0
    c = compare([root / "worse"], [root / "base.csv"]).comparisons[0]
    assert "BASELINE has no per-sample predictions (a leaderboard CSV)" in c.method


def test_predictions_that_do_not_reproduce_the_record_are_not_trusted(runs):
    root, *_ = runs
    f = next((root / "worse").rglob("*.predictions.csv"))
    lines = f.read_text().splitlines()
    f.write_text("\n".join(lines[:1] + [ln.rsplit(",", 1)[0] + ",0" for ln in lines[1:]]) + "\n")
    c = compare([root / "worse"], [root / "base"], n_boot=200).comparisons[0]
    assert not c.paired and "NEW predictions do not reproduce the recorded auroc" in c.method


def test_alpha_changes_the_interval(runs):
    root, *_ = runs
    wide = compare([root / "worse"], [root / "base"], alpha=0.01, n_boot=500).comparisons[0]
    narrow = compare([root / "worse"], [root / "base"], alpha=0.5, n_boot=500).comparisons[0]
    assert wide.ci_low < narrow.ci_low < narrow.ci_high < wide.ci_high


def test_exit_codes_and_markdown_summary(runs, capsys):
    root, *_ = runs
    md = root / "summary.md"
    assert main(["compare", str(root / "same"), str(root / "base"), "--markdown", str(md)]) == 0
    out = capsys.readouterr().out
    assert "no regression (1 task(s) compared)" in out and "0.000 [0.000, 0.000]" in out
    assert md.read_text().startswith("### ✅ xrbench compare: no regression (1 task(s) compared)")
    assert main(["compare", str(root / "worse"), str(root / "base"), "--markdown", str(md)]) == 1
    lines = md.read_text().splitlines()
    assert lines[0] == "### ❌ xrbench compare: 1 of 1 task(s) regressed: toy"
    assert "| task | metric | baseline [CI] | new [CI] | Δ [CI] | method | verdict |" in lines
    row = next(ln for ln in lines if ln.startswith("| toy |"))
    assert row.endswith("| paired bootstrap, 100 patients, 1000 resamples | ❌ worse |")
    assert "- **NEW**: enc (new.safetensors)" in md.read_text()


def test_bad_inputs_exit_2(runs, capsys):
    root, y, s, _ = runs
    broken = root / "broken"
    shutil.copytree(root / "worse", broken)
    next(broken.rglob("seed0.json")).write_text('{"task": "toy", "metrics": ')
    assert main(["compare", str(broken), str(root / "base")]) == 2
    assert "not a readable JSON file" in capsys.readouterr().err
    write_result(root / "other-data", model="enc", y=y, s=s, patients=[f"p{i}" for i in range(len(y))],
                 dataset_hash="e" * 16)
    assert main(["compare", str(root / "other-data"), str(root / "base")]) == 2
    assert "dataset_hash disagrees" in capsys.readouterr().err
    write_result(root / "other-task", model="enc", task="toy2", value=0.7, ci=(0.6, 0.8), predictions=False)
    assert main(["compare", str(root / "other-task"), str(root / "base")]) == 2
    assert "no task in common" in capsys.readouterr().err
    assert main(["compare", str(root / "worse"), str(root / "base"), "--tasks", "nope"]) == 2
    assert "task 'nope' (from --tasks) has no result in NEW" in capsys.readouterr().err
    two = root / "two-models"
    shutil.copytree(root / "worse", two / "a")
    write_result(two, model="enc2", y=y, s=s, patients=[f"p{i // 2}" for i in range(len(y))])
    with pytest.raises(ResultsError, match="NEW holds several models for task 'toy'"):
        compare([two], [root / "base"])


def test_tasks_filter_and_one_sided_tasks_are_listed(runs):
    root, y, s, p = runs
    write_result(root / "worse", model="enc", task="extra", y=y, s=s, patients=p)
    rep = compare([root / "worse"], [root / "base"], n_boot=200)
    assert rep.only_new == ["extra"] and "only in NEW (not compared): extra" in compare_report.text(rep)
    write_result(root / "base", model="enc", task="extra", y=y, s=s, patients=p)
    rep = compare([root / "worse"], [root / "base"], n_boot=200, tasks=["extra"])
    assert [c.task for c in rep.comparisons] == ["extra"] and rep.exit_code == 0


def _classes(seed, noise):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 300)
    s = np.eye(5)[y] * 2 + np.random.default_rng(seed).normal(scale=noise, size=(300, 5))
    return y, s


@pytest.mark.parametrize("kind", ["multiclass-qwk", "regression-mae", "binary-kappa-threshold"])
def test_paired_rescoring_of_every_prediction_kind(tmp_path, kind):
    """Multi-class (y:target + score per class), regression (lower is better), and a thresholded
    binary metric (the record's val threshold is reused) are re-scored exactly and paired."""
    patients = [f"p{i // 3}" for i in range(300)]
    if kind == "multiclass-qwk":
        (y, s_good), (_, s_bad) = _classes(1, 1.0), _classes(2, 3.0)
        kw = dict(metric="qwk", labels=tuple(str(k) for k in range(5)))
    elif kind == "regression-mae":
        rng = np.random.default_rng(0)
        y = rng.uniform(20, 200, 300)
        s_good, s_bad = y + rng.normal(0, 10, 300), y + rng.normal(0, 25, 300)
        kw = dict(metric="mae", direction="lower", labels=("target",))
    else:
        y, s_good, _ = toy_scores(n_patients=150, seed=1, noise=0.5)
        _, s_bad, _ = toy_scores(n_patients=150, seed=2, noise=2.0)
        kw = dict(metric="cohen_kappa", threshold=0.45, labels=("blob",))
    write_result(tmp_path / "base", y=y, s=s_good, patients=patients, **kw)
    write_result(tmp_path / "new", y=y, s=s_bad, patients=patients, **kw)
    c = compare([tmp_path / "new"], [tmp_path / "base"], n_boot=300).comparisons[0]
    assert c.paired, c.method
    assert c.verdict == "worse"
    same = compare([tmp_path / "base"], [tmp_path / "base"], n_boot=100).comparisons[0]
    assert same.paired and same.delta == 0 and same.verdict == "same"


def test_retrieval_predictions_fall_back_to_unpaired(tmp_path):
    for side, v in (("base", 0.6), ("new", 0.5)):
        write_result(tmp_path / side, metric="auroc", value=v, ci=(v - 0.03, v + 0.03), predictions=False)
        f = next((tmp_path / side).rglob("seed0.json"))
        f.write_text(f.read_text().replace('"predictions": null', '"predictions": "seed0.predictions.csv"'))
        (f.parent / "seed0.predictions.csv").write_text("id,patient,group,y:target,rank:1,rank:2\nq1,p1,,3,g4,g9\n")
    c = compare([tmp_path / "new"], [tmp_path / "base"]).comparisons[0]
    assert not c.paired and "ranked gallery ids; their relevance needs the dataset" in c.method
    assert c.verdict == "worse"

"""Numbers people can trust (issue 14): warnings that travel with the number, converged probes,
calibration, subgroups and the pretraining-leak check."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

import xrbench.metrics  # noqa: F401
from xrbench.data.sample import Sample
from xrbench.errors import DataError
from xrbench.families import create_family
from xrbench.families.base import SplitData, score_units
from xrbench.families.global_features import feature_warnings
from xrbench.metrics.bootstrap import UNRELIABLE, bootstrap_ci
from xrbench.metrics.classification import auroc, brier, ece, reliability
from xrbench.protocols.base import Split
from xrbench.protocols.linear import CONVERGED, FINE_WD, LinearProbe, fit_logistic
from xrbench.protocols.ridge import Ridge
from xrbench.registry import METRICS
from xrbench.tasks.schema import TaskSpec


def spec(**over) -> TaskSpec:
    d = {"name": "t-trust", "version": 1, "description": "t", "dataset": "toy", "family": "linear",
         "target": {"type": "binary", "labels": ["spot"]},
         "protocol": {"name": "linear", "args": {"weight_decays": [0.01, 1.0]}},
         "metrics": ["auroc"], "primary": {"metric": "auroc"}, "bootstrap": {"n": 200}}
    d.update(over)
    return TaskSpec.model_validate(d)


def samples(y, split="test", meta=None):
    return [Sample(id=f"{split}{i}", image=f"/x/{split}{i}.png", patient=f"{split}p{i}", split=split,
                   labels={"spot": float(v)}, meta=(meta[i] if meta else {})) for i, v in enumerate(y)]


def score(fam, ss, scores, n_boot=300):
    units = fam.units(ss)
    return score_units(fam, units, [fam.truth(u, ss) for u in units], [[float(v)] for v in scores], {},
                       n_boot=n_boot, seed=0)


# -- 1. warnings ---------------------------------------------------------------------------------
def test_one_test_positive_gives_no_ci_and_a_warning():
    """The issue's case: a single positive used to get a narrow CI from the replicates that kept it."""
    rng = np.random.default_rng(0)
    y = np.zeros(60)
    y[7] = 1
    s = rng.random(60)
    ci = bootstrap_ci(lambda r: auroc(y[r], s[r]), 60, None, n_boot=400, seed=0)["value"]
    assert ci.undefined == pytest.approx((1 - 1 / 60) ** 60, abs=0.06) and ci.unreliable
    assert np.isnan(ci[0]) and np.isnan(ci[1])
    fam = create_family(spec())
    sc = score(fam, samples(y), s)
    value, lo, hi = sc.metrics["auroc"]
    assert value == value and np.isnan(lo) and np.isnan(hi)
    assert any(w.startswith("ci_unreliable: auroc ") for w in sc.warnings)
    assert "few_test_positives: spot has 1 test positives (< 10)" in sc.warnings


def test_enough_positives_keep_their_ci_and_no_warning():
    rng = np.random.default_rng(1)
    y = (rng.random(200) < 0.4).astype(float)
    sc = score(create_family(spec()), samples(y), y + rng.normal(size=200))
    _, lo, hi = sc.metrics["auroc"]
    assert lo < hi and sc.warnings == []
    ci = bootstrap_ci(lambda r: auroc(y[r], y[r]), 200, None, n_boot=100)["value"]
    assert ci.undefined == 0.0 and not ci.unreliable and UNRELIABLE == 0.10


def _split(y, split, d=8, seed=0, x=None):
    rng = np.random.default_rng(seed)
    ss = samples(y, split)
    x = rng.normal(size=(len(y), d)).astype(np.float32) if x is None else x
    x[:, 0] += 2 * np.nan_to_num(np.asarray(y, float))
    return SplitData(ss, x)


def test_all_unknown_val_labels_stop_with_an_error_naming_task_and_split():
    fam = create_family(spec(target={"type": "binary", "labels": ["spot"], "blank": "ignore"}))
    train = _split([0, 1] * 20, "train")
    val = _split([np.nan] * 10, "val", seed=1)
    with pytest.raises(DataError, match=r"task t-trust: the val split has no known label"):
        fam.fit_predict(train, val, _split([0, 1] * 5, "test", seed=2), seed=0, device="cpu")


def test_val_with_one_class_cannot_select_and_says_so():
    fam = create_family(spec())
    with pytest.raises(DataError, match=r"t-trust: nothing can be selected on the val split.*val_one_class: "
                                        r"spot is all negative on val"):
        fam.fit_predict(_split([0, 1] * 20, "train"), _split([0] * 10, "val", seed=1),
                        _split([0, 1] * 5, "test", seed=2), seed=0, device="cpu")


def test_one_class_val_warning_when_another_label_still_selects():
    fam = create_family(spec(target={"type": "multilabel", "labels": ["spot", "blob"]},
                             metrics=["auroc_macro"], primary={"metric": "auroc_macro"}))
    rng = np.random.default_rng(0)

    def split(n, name, blob):
        ss = [Sample(id=f"{name}{i}", image=f"/x/{name}{i}.png", patient=f"{name}{i}", split=name,
                     labels={"spot": float(i % 2), "blob": blob(i)}) for i in range(n)]
        x = rng.normal(size=(n, 8)).astype(np.float32)
        x[:, 0] += 2 * (np.arange(n) % 2)
        return SplitData(ss, x)

    out = fam.fit_predict(split(40, "train", lambda i: float(i % 3 == 0)), split(12, "val", lambda i: 0.0),
                          split(10, "test", lambda i: float(i % 3 == 0)), seed=0, device="cpu")
    assert "val_one_class: blob is all negative on val" in out.warnings


def test_constant_features_warn():
    x = np.random.default_rng(0).normal(size=(30, 10))
    assert feature_warnings(x) == []
    x[:, :6] = 3.0
    assert feature_warnings(x) == ["constant_features: 6 of 10 feature dimensions are constant on train"]
    assert feature_warnings(np.ones((30, 10))) == ["constant_features: all 30 training feature vectors are identical"]


def test_constant_features_reach_the_head_output():
    fam = create_family(spec())
    train = _split([0, 1] * 20, "train", x=np.zeros((40, 8), np.float32))
    train.features[:, 1] = np.random.default_rng(3).normal(size=40)
    out = fam.fit_predict(train, _split([0, 1] * 6, "val", seed=1), _split([0, 1] * 5, "test", seed=2),
                          seed=0, device="cpu")
    assert "constant_features: 6 of 8 feature dimensions are constant on train" in out.warnings


def test_constant_test_predictions_warn_and_varied_ones_do_not():
    from xrbench.families.base import Unit, score_units

    fam = create_family(spec())
    units = [Unit(f"u{i}", f"p{i}", f"u{i}", [i]) for i in range(12)]
    truth = [[float(i % 2)] for i in range(12)]
    flat = score_units(fam, units, truth, [[0.3]] * 12, {}, n_boot=50, seed=0)
    assert "constant_predictions: all 12 test predictions are identical" in flat.warnings
    assert flat.metrics["auroc"][0] == 0.5
    varied = score_units(fam, units, truth, [[0.1 * i] for i in range(12)], {},
                         n_boot=50, seed=0)
    assert not any(w.startswith("constant_predictions") for w in varied.warnings)


def test_selected_weight_decay_at_the_edge_of_its_grid_warns():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(float)[:, None]  # separable: the weakest penalty wins
    res = LinearProbe(weight_decays=[1e-3, 1e-2, 100.0]).run(
        Split(x[:80], y[:80]), Split(x[80:100], y[80:100]), x[100:], task="binary", n_out=1,
        select=lambda yy, s: -float(np.mean((s[:, 0] - yy[:, 0]) ** 2)))
    assert res.hparams["weight_decay"] == 1e-3
    assert res.warnings == ["hparam_at_grid_edge: weight_decay=0.001 is the smallest value of its grid [0.001, 100]"]


# -- 2. probe quality ----------------------------------------------------------------------------
def test_converged_fit_matches_sklearn_at_weight_decay_1e_4():
    """mean loss + wd/2 ||w||^2  <=>  scikit-learn C = 1 / (wd * n) (tests/benchmarks/test_bench_linear_probe.py)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    n, d, wd = 400, 96, 1e-4
    x = rng.normal(size=(n, d))
    y = (x[:, :5].sum(1) + 2 * rng.normal(size=n) > 0).astype(float)
    ref = LogisticRegression(C=1 / (wd * n), tol=1e-12, max_iter=100_000).fit(x, y).predict_proba(x)[:, 1]
    xt = torch.as_tensor(x)
    w, b = fit_logistic(xt, y[:, None], task="binary", n_out=1, wd=wd, **CONVERGED)
    ours = torch.sigmoid(xt @ w + b).numpy()[:, 0]
    assert np.abs(ours - ref).max() < 1e-3
    # the float32, default-tolerance fit (the selection sweep) is what the issue measured as off
    w32, b32 = fit_logistic(xt.float(), y[:, None], task="binary", n_out=1, wd=wd)
    assert np.abs(torch.sigmoid(xt.float() @ w32 + b32).numpy()[:, 0] - ref).max() > 1e-3


def test_probe_reports_converged_probabilities():
    from sklearn.linear_model import LogisticRegression

    from xrbench.protocols.base import l2_normalise, standardiser

    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 32)).astype(np.float32)
    y = (x[:, 0] + rng.normal(size=300) > 0).astype(float)[:, None]
    res = LinearProbe(weight_decays=[1e-4], refit_on_train_val=False).run(
        Split(x[:200], y[:200]), Split(x[200:250], y[200:250]), x[250:], task="binary", n_out=1,
        select=lambda yy, s: auroc(yy[:, 0], s[:, 0]))
    xs = [l2_normalise(a).astype(np.float64) for a in (x[:200], x[250:])]
    mu, sd = standardiser(l2_normalise(x[:200]))
    ref = LogisticRegression(C=1 / (1e-4 * 200), tol=1e-12, max_iter=100_000).fit((xs[0] - mu) / sd, y[:200, 0])
    assert np.abs(res.test_scores[:, 0] - ref.predict_proba((xs[1] - mu) / sd)[:, 1]).max() < 1e-3


def test_coarse_to_fine_search_costs_nine_fits_on_the_half_decade_grid():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(160, 16)).astype(np.float32)
    y = (x[:, 0] + 1.5 * rng.normal(size=160) > 0).astype(float)[:, None]
    seen = []

    def select(yy, s):
        seen.append(1)
        return auroc(yy[:, 0], s[:, 0])

    res = LinearProbe().run(Split(x[:100], y[:100]), Split(x[100:130], y[100:130]), x[130:], task="binary",
                            n_out=1, select=select)
    assert len(FINE_WD) == 17 and res.hparams["n_fits"] == len(seen) <= 9
    assert res.hparams["weight_decay"] in FINE_WD


def test_ridge_keeps_clipping_only_where_it_helps_on_val():
    """Features (t, 1) are L2-normalised to (u, v), u = t / sqrt(t^2 + 1); train y = 10 u for t in
    [-1, 1]; val t in [2, 5] predicts beyond the train range. Clipping helps when val's truth stays
    at the train maximum, and hurts when the truth follows the line."""
    def split(t, y):
        return Split(np.stack([t, np.ones_like(t)], 1), y)

    t_tr, t_val = np.linspace(-1, 1, 80), np.linspace(2, 5, 20)
    u = lambda t: t / np.sqrt(t * t + 1)  # noqa: E731
    mae = lambda yy, s: -float(np.mean(np.abs(np.ravel(yy) - np.ravel(s))))  # noqa: E731
    args = dict(task="regression", n_out=1, select=mae)
    train = split(t_tr, 10 * u(t_tr))
    on_line = Ridge(alphas=[1e-6]).run(train, split(t_val, 10 * u(t_val)), split(t_val, t_val).x, **args)
    at_max = Ridge(alphas=[1e-6]).run(train, split(t_val, np.full(20, 10 * u(1.0))), split(t_val, t_val).x, **args)
    assert on_line.hparams["clip_to_train_range"] is False and at_max.hparams["clip_to_train_range"] is True
    assert at_max.val_scores.max() == pytest.approx(10 * u(1.0)) and on_line.val_scores.max() > 9
    forced = Ridge(alphas=[1e-6], clip_to_train_range=True).run(train, split(t_val, 10 * u(t_val)),
                                                                   split(t_val, t_val).x, **args)
    assert forced.hparams["clip_to_train_range"] is True


# -- 4. calibration ------------------------------------------------------------------------------
def test_ece_and_brier_by_hand():
    y = np.array([1, 0, 1, 0.0])[:, None]
    s = np.array([0.9, 0.9, 0.1, 0.1])[:, None]
    # two bins (0.1 and 0.9), each half right: |0.5 - 0.9| * 1/2 + |0.5 - 0.1| * 1/2
    assert ece(y, s) == pytest.approx(0.4)
    assert brier(y, s) == pytest.approx((0.01 + 0.81 + 0.81 + 0.01) / 4)
    yc = np.array([0, 1, 2])
    sc = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    # top label: confidences 0.8 (right), 0.7 (right), 0.6 (wrong), bins 12, 10, 9 of 15
    assert ece(yc, sc) == pytest.approx((0.2 + 0.3 + 0.6) / 3)
    assert brier(yc, sc) == pytest.approx((0.06 + 0.14 + (0.36 + 0.09 + 0.81)) / 3)
    assert np.isnan(ece(y, s * 3))  # logits are not probabilities
    curve = reliability(y, s)
    assert curve["bins"] == 15 and curve["count"][1] == 2 and curve["frequency"][13] == 0.5


@pytest.mark.parametrize("name", ["ece", "brier"])
def test_weighted_calibration_equals_repeated_rows(name):
    rng = np.random.default_rng(0)
    y = (rng.random((50, 3)) < 0.4).astype(float)
    y[rng.random((50, 3)) < 0.1] = np.nan
    s = rng.random((50, 3))
    w = rng.integers(0, 3, (4, 50)).astype(float)
    fn = METRICS.get(name)
    got = fn.weighted(y, s, w)
    for b in range(4):
        rows = np.repeat(np.arange(50), w[b].astype(int))
        assert got[b] == pytest.approx(fn(y[rows], s[rows]))


def test_classification_reports_ece_and_brier_with_cis():
    rng = np.random.default_rng(3)
    y = (rng.random(120) < 0.4).astype(float)
    sc = score(create_family(spec()), samples(y), np.clip(0.5 * y + 0.5 * rng.random(120), 0, 1), n_boot=200)
    for m in ("ece", "brier"):
        v, lo, hi = sc.metrics[m]
        assert lo <= v <= hi


# -- 3. subgroups --------------------------------------------------------------------------------
def test_subgroups_per_attribute_with_cis_and_the_largest_gap():
    rng = np.random.default_rng(0)
    n = 240
    y = (rng.random(n) < 0.5).astype(float)
    meta = [{"sex": "F" if i % 2 else "M", "age": [30, 50, 70, 85][(i // 2) % 4], "view": "PA"} for i in range(n)]
    noise = np.where(np.arange(n) % 2, 0.3, 3.0)  # well separated for F, barely for M
    ss = samples(y, meta=meta)
    fam = create_family(spec())
    sc = score(fam, ss, y + noise * rng.normal(size=n), n_boot=200)
    rep = fam.report(sc, ss, {}, n_boot=200, seed=0)["subgroups"]
    assert set(rep) == {"sex", "age_band", "max_gap"}  # one view only: no view report
    assert set(rep["age_band"]) == {"<40", "40-60", "60-80", ">=80"} and rep["sex"]["F"]["n"] == 120
    f, m = rep["sex"]["F"], rep["sex"]["M"]
    assert f["value"] == pytest.approx(auroc(y[1::2], sc.metrics and np.array([s["s"][0] for s in sc.stats])[1::2]))
    assert f["ci_low"] < f["value"] < f["ci_high"]
    assert rep["max_gap"]["attribute"] == "sex" and rep["max_gap"]["groups"] == ["M", "F"]
    assert rep["max_gap"]["value"] == pytest.approx(f["value"] - m["value"])


# -- record, leaderboard, pages ------------------------------------------------------------------
def test_old_records_load_with_defaults(tmp_path):
    from _results_fixtures import write_result

    from xrbench.results.record import ResultRecord

    path = write_result(tmp_path)
    d = json.loads(path.read_text())
    for k in ("warnings", "subgroups", "reliability", "pretraining_overlap"):
        d.pop(k)
    rec = ResultRecord.from_dict(d)
    assert rec.warnings == [] and rec.subgroups == {} and rec.pretraining_overlap["status"] == "unknown"


def test_csv_columns_only_append():
    from xrbench.results.leaderboard import COLUMNS

    assert COLUMNS[:28][-3:] == ["sd", "torch", "cuda"]
    assert COLUMNS[28:] == ["warnings", "leaked", "ece", "brier", "subgroup_gap", "subgroup_gap_attribute"]


def _record(tmp_path, warnings=(), leaked="unknown", task="toy", model="m1"):
    from _results_fixtures import write_result

    from xrbench.results.record import ResultRecord

    path = write_result(tmp_path, task=task, model=model)
    rec = ResultRecord.read(path)
    rec.warnings = list(warnings)
    rec.pretraining_overlap = {"status": leaked, "n": 2 if leaked == "overlap" else 0, "ids": []}
    rec.subgroups = {"sex": {"F": {"value": 0.7, "ci_low": 0.6, "ci_high": 0.8, "n": 40},
                             "M": {"value": 0.6, "ci_low": 0.5, "ci_high": 0.7, "n": 50}},
                     "max_gap": {"attribute": "sex", "value": 0.1, "groups": ["M", "F"]}}
    path.write_text(rec.to_json())
    return rec


def test_warnings_and_leaks_show_in_summary_csv_markdown_and_html(tmp_path):
    from xrbench.results import leaderboard
    from xrbench.results.html import leaderboard_html
    from xrbench.results.markdown import leaderboard_markdown
    from xrbench.results.summary import summary_table

    rec = _record(tmp_path, warnings=["few_test_positives: blob has 3 test positives (< 10)"], leaked="overlap")
    text = summary_table([rec])
    assert "! few_test_positives: blob has 3" in text and "! leaked: 2 test image(s)" in text
    path = leaderboard.update(tmp_path / "leaderboard.csv", [rec])
    row = leaderboard.read_rows(path)[0]
    assert row["warnings"].startswith("few_test_positives") and row["leaked"] == "yes"
    assert row["subgroup_gap"] == "0.1" and row["subgroup_gap_attribute"] == "sex"
    subs = list(csv.DictReader(open(tmp_path / "subgroups.csv")))
    assert [(r["attribute"], r["group"], r["value"]) for r in subs] == [("sex", "F", "0.7"), ("sex", "M", "0.6")]
    md = leaderboard_markdown([row])
    assert "⛔ leaked ⚠1" in md and "## Warnings" in md and "0.100 (sex)" in md
    html = leaderboard_html([row], records=[rec])
    assert 'class="leak"' in html and "few_test_positives: blob" in html and 'id="subgroups"' in html


def test_leaked_rows_refused_or_marked(tmp_path, capsys):
    from xrbench.cli import main

    _record(tmp_path / "r", leaked="overlap", task="a")
    _record(tmp_path / "r", leaked="none", task="b")
    assert main(["leaderboard", str(tmp_path / "r"), "-o", str(tmp_path / "x.csv"), "--leaked", "refuse"]) == 0
    assert "left out (leaked): m1 (random-init) on a" in capsys.readouterr().out
    rows = list(csv.DictReader(open(tmp_path / "x.csv")))
    assert [(r["task"], r["leaked"]) for r in rows] == [("b", "no")]
    assert main(["leaderboard", str(tmp_path / "r"), "-o", str(tmp_path / "y.csv")]) == 0
    assert [r["leaked"] for r in csv.DictReader(open(tmp_path / "y.csv"))] == ["yes", "no"]
    assert (tmp_path / "y.subgroups.csv").is_file()


# -- 5. pretraining leak -------------------------------------------------------------------------
def test_manifest_matches_by_path_patient_study_and_sha256(tmp_path):
    import hashlib

    from xrbench.results.leak import overlap, read_manifest

    img = tmp_path / "p1" / "study1" / "view1_frontal.jpg"
    img.parent.mkdir(parents=True)
    img.write_bytes(b"abc")
    other = tmp_path / "p2" / "study1" / "view1_frontal.jpg"
    ss = [Sample(id="a", image=img, patient="p1", split="test"),
          Sample(id="b", image=other, patient="p2", split="test", group="s9"),
          Sample(id="c", image=tmp_path / "c.png", patient="p3", split="test")]
    cases = {"file\np1/study1/view1_frontal.jpg\n": ["a"], "filename\nview1_frontal.jpg\n": ["a", "b"],
             "patient_id\np3\n": ["c"], "study_id\ns9\n": ["b"],
             f"sha256\n{hashlib.sha256(b'abc').hexdigest().upper()}\n": ["a"], "file\nnothing.png\n": []}
    for text, ids in cases.items():
        (tmp_path / "m.csv").write_text(text)
        got = overlap(read_manifest(tmp_path / "m.csv"), ss)
        assert got["ids"] == ids and got["n"] == len(ids) and got["status"] == ("overlap" if ids else "none")
    assert overlap(None, ss)["status"] == "unknown"
    (tmp_path / "bad.csv").write_text("name\nx\n")
    with pytest.raises(DataError, match="bad.csv, row 1: expected a header"):
        read_manifest(tmp_path / "bad.csv")


# -- 6. a page that stays readable ---------------------------------------------------------------
def test_twenty_tasks_page_has_sticky_models_family_views_and_trust(tmp_path):
    """4 models x 20 tasks of 4 families in headless Chromium: family tables hold only their tasks,
    the model column is sticky, warnings and calibration are in the trust table."""
    from test_leaderboard_html import _parse, chromium  # noqa: F401  (fixture)

    from xrbench.results import browser
    from xrbench.results.html import leaderboard_html

    if browser.find_chromium() is None:
        pytest.skip("no Chromium")
    rows = []
    for k in range(20):
        fam = ("linear", "knn", "regression", "segmentation")[k % 4]
        for m in range(4):
            rows.append({"task": f"task-{k:02d}", "model": f"model-{m}", "weights": "w", "label_fraction": "1",
                         "family": fam, "metric": "auroc", "direction": "higher", "value": str(0.6 + 0.05 * m),
                         "ci_low": str(0.55 + 0.05 * m), "ci_high": str(0.65 + 0.05 * m), "n_seeds": "1",
                         "data": "synthetic-demo", "ece": "0.05", "brier": "0.2",
                         "warnings": "few_test_positives: x has 3 test positives (< 10)" if m == 0 else ""})
    page = tmp_path / "wide.html"
    page.write_text(leaderboard_html(rows, "wide"))
    t = _parse(browser.dump_dom(page))
    assert len(t.headers["leaderboard"]) == 5 + 20
    assert [len(t.headers[f"family-{f}"]) for f in ("knn", "linear", "regression", "segmentation")] == [10] * 4
    trust = t.tables["trust"]
    assert len(trust) == 80 and all(r[3] == "0.050" for r in trust)
    assert sum("few_test_positives" in r[7] for r in trust) == 20
    assert "table.board th:first-child,table.board td:first-child{position:sticky;left:0" in page.read_text()
    png = browser.screenshot(page, tmp_path / "wide.png", size=(1280, 900))
    assert png.stat().st_size > 10_000

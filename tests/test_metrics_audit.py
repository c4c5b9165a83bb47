"""Independent audit of the scorer path a run takes (family ``unit_stats`` + ``stack`` +
``aggregate`` through ``score_units``): classification with unknown and one-class labels, ECE from
its binning by brute force, Brier against scikit-learn, percentile CIs against a naive loop over
the bootstrap units, and localization on a resample with over 100 detections on one image against
COCOeval run on the duplicated images."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, cohen_kappa_score, roc_auc_score

from xrbench.families import create_family
from xrbench.families.base import Unit, score_units
from xrbench.tasks.catalog import TaskCatalog
from xrbench.tasks.schema import TaskSpec


def _spec(**over) -> TaskSpec:
    d = {"name": "t-audit", "version": 1, "description": "t", "dataset": "toy", "family": "linear",
         "target": {"type": "binary", "labels": ["a"]}, "protocol": {"name": "linear", "args": {}},
         "metrics": ["auroc"], "primary": {"metric": "auroc"}, "bootstrap": {"n": 200}}
    return TaskSpec.model_validate({**d, **over})


def _units(n: int, per_patient: int = 1) -> list[Unit]:
    return [Unit(f"u{i}", f"p{i // per_patient}", "", [i]) for i in range(n)]


def _ece_brute_force(conf: np.ndarray, outcome: np.ndarray, bins: int = 15) -> float:
    """Guo et al.: bins [b/15, (b+1)/15), the last one closed; sum of n_b / N |acc_b - conf_b|."""
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        m = (conf >= lo) & ((conf < hi) if b < bins - 1 else (conf <= hi))
        if m.any():
            total += m.sum() / len(conf) * abs(outcome[m].mean() - conf[m].mean())
    return total


@pytest.mark.parametrize("seed", range(6))
def test_multilabel_scorer_path_equals_sklearn_and_brute_force(seed):
    rng = np.random.default_rng(seed)
    n, labels = 40, list("abcd")
    y = (rng.random((n, 4)) < [0.1, 0.3, 0.5, 0.7]).astype(float)
    y[rng.random((n, 4)) < 0.2] = np.nan  # unknown: excluded per label
    y[:, 1] = np.where(np.isnan(y[:, 1]), np.nan, 0.0)  # no positive on test: undefined, left out
    s = np.round(rng.random((n, 4)), 1)  # ties
    fam = create_family(_spec(target={"type": "multilabel", "labels": labels},
                              metrics=["auroc_macro", "auroc_per_label"], primary={"metric": "auroc_macro"}))
    got = score_units(fam, _units(n), y.tolist(), s.tolist(), {}, n_boot=0, seed=0).metrics
    per, eces, briers = [], [], []
    for k, name in enumerate(labels):
        m = ~np.isnan(y[:, k])
        want = roc_auc_score(y[m, k], s[m, k]) if len(np.unique(y[m, k])) == 2 else math.nan
        assert got[f"auroc/{name}"][0] == pytest.approx(want, nan_ok=True)
        per.append(want)
        eces.append(_ece_brute_force(s[m, k], y[m, k]))
        briers.append(brier_score_loss(y[m, k], s[m, k]))
    assert math.isnan(got["auroc/b"][0])
    assert got["auroc_macro"][0] == pytest.approx(np.nanmean(per), rel=1e-12)
    assert got["ece"][0] == pytest.approx(np.mean(eces), rel=1e-12)
    assert got["brier"][0] == pytest.approx(np.mean(briers), rel=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_multiclass_calibration_is_top_label_ece_and_summed_brier(seed):
    rng = np.random.default_rng(seed)
    n, k = 50, 5
    y = rng.integers(0, k, n)
    s = rng.dirichlet(np.ones(k), n) + 0.6 * np.eye(k)[y]
    s /= s.sum(1, keepdims=True)
    fam = create_family(_spec(target={"type": "multiclass", "labels": list("abcde")}, metrics=["qwk"],
                              primary={"metric": "qwk"}))
    got = score_units(fam, _units(n), [int(v) for v in y], s.tolist(), {}, n_boot=0, seed=0).metrics
    p = s.argmax(1)
    assert got["qwk"][0] == pytest.approx(cohen_kappa_score(y, p, weights="quadratic"), rel=1e-12)
    assert got["ece"][0] == pytest.approx(_ece_brute_force(s.max(1), (p == y).astype(float)), rel=1e-12)
    assert got["brier"][0] == pytest.approx(((s - np.eye(k)[y]) ** 2).sum(1).mean(), rel=1e-12)


def _naive_percentile_ci(metric, boot_units: list[str], n_boot: int, seed: int) -> tuple[float, float]:
    """Draw the bootstrap units (first-appearance order) with replacement, B times, take all their
    rows, and the 2.5 / 97.5 percentiles of the defined values (none if >10% are undefined)."""
    order = list(dict.fromkeys(boot_units))
    rows_of = {u: [i for i, b in enumerate(boot_units) if b == u] for u in order}
    picks = np.random.default_rng(seed).integers(0, len(order), (n_boot, len(order)))
    vals = np.array([metric([r for j in pick for r in rows_of[order[j]]]) for pick in picks], dtype=float)
    undefined = np.isnan(vals).mean()
    vals = vals[~np.isnan(vals)]
    if vals.size < 10 or undefined > 0.10:
        return math.nan, math.nan
    return float(np.quantile(vals, 0.025)), float(np.quantile(vals, 0.975))


@pytest.mark.parametrize("seed", range(2))
def test_global_family_cis_equal_a_naive_loop_over_patients(seed):
    """The vectorised (weights) bootstrap of a binary task, three images per patient."""
    rng = np.random.default_rng(seed)
    n = 90
    y = (rng.random(n) < 0.3).astype(float)
    s = np.round(np.clip(0.3 * y + 0.8 * rng.random(n), 0, 1), 2)
    fam = create_family(_spec(metrics=["auroc", "cohen_kappa"]))
    sc = score_units(fam, _units(n, 3), [[v] for v in y], [[v] for v in s], {"thresholds": {"cohen_kappa": 0.5}},
                     n_boot=300, seed=seed)
    refs = {"auroc": lambda r: roc_auc_score(y[r], s[r]) if len(set(y[r])) == 2 else math.nan,
            "cohen_kappa": lambda r: cohen_kappa_score(y[r], (s[r] >= 0.5).astype(int))}
    for name, fn in refs.items():
        assert sc.metrics[name][0] == pytest.approx(fn(list(range(n))), rel=1e-12)
        np.testing.assert_allclose(sc.metrics[name][1:], _naive_percentile_ci(fn, sc.boot_units, 300, seed),
                                   rtol=1e-9)


def test_dense_family_cis_equal_a_naive_loop_over_patients():
    """Landmarks (the loop over resamples of per-image statistics), two images per patient, two spacings."""
    [spec] = TaskCatalog().resolve("ceph-landmarks")
    fam = create_family(spec)
    rng = np.random.default_rng(5)
    n, k = 24, 19
    truth = [{"xy": rng.uniform(0, 1900, (k, 2)).tolist(), "spacing_mm": float(rng.choice([0.1, 0.125]))}
             for _ in range(n)]
    pred = [(np.asarray(t["xy"]) + rng.normal(0, 20, (k, 2))).tolist() for t in truth]
    sc = score_units(fam, _units(n, 2), truth, pred, {}, n_boot=200, seed=1)
    err = np.array([[math.dist(p[j], t["xy"][j]) * t["spacing_mm"] for j in range(k)] for p, t in zip(pred, truth)])
    for name in spec.metrics:
        if name == "mre_mm":
            fn = lambda r: float(err[r].mean())  # noqa: E731
        else:
            fn = lambda r, t=float(name[4:-2]): float((err[r] <= t).mean())  # noqa: E731
        assert sc.metrics[name][0] == pytest.approx(fn(list(range(n))), rel=1e-12)
        np.testing.assert_allclose(sc.metrics[name][1:], _naive_percentile_ci(fn, sc.boot_units, 200, 1), rtol=1e-12)


def test_localization_family_on_a_resample_equals_cocoeval_on_duplicated_images():
    """The family's statistics keep COCO's top 100 detections per image; a resample with repeats is
    scored as COCOeval scores the same images under fresh ids (tied scores: order matters)."""
    from test_metrics_dense import CATS, _scene

    from xrbench.metrics import detection

    [spec] = TaskCatalog().resolve("vindrcxr-localization")
    fam = create_family(spec.model_copy(update={"metrics": ["map50", "map", "ap50_per_class", "ap_per_class"]}))
    fam.classes = CATS
    gts, dts = _scene(1, n_images=20)
    rng = np.random.default_rng(0)
    dts[0] = dts[0] + [{"box": [x, x, x + 10.0, x + 12.0], "label": "nodule", "score": round(rng.uniform(0.1, 1), 1)}
                       for x in rng.uniform(0, 100, 130).tolist()]  # 130 on one image: maxDets 100 cuts
    gts[0] = gts[0] + [{"box": [150.0, 150.0, 170.0, 170.0], "label": "nodule"}]
    dts[0] = dts[0] + [{"box": [150.0, 150.0, 170.0, 170.0], "label": "nodule", "score": 0.01}]  # cut: a miss
    table = fam.stack([fam.unit_stats(g, d, {}) for g, d in zip(gts, dts)])
    rows = np.r_[0, 0, rng.integers(0, len(gts), len(gts) - 2)]
    got = fam.aggregate(table, rows, {})
    want = detection.coco_reference([gts[i] for i in rows], [dts[i] for i in rows], CATS)
    assert got.keys() == want.keys()
    for key, v in got.items():
        assert v == pytest.approx(want[key], abs=1e-12, nan_ok=True), key

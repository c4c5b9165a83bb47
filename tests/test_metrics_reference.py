"""Every metric against an independent reference on random inputs (ties, single positives)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import (accuracy_score, cohen_kappa_score, f1_score, mean_absolute_error,
                             mean_squared_error, r2_score, roc_auc_score)

from xrbench.metrics.classification import choose_threshold
from xrbench.registry import METRICS

SEEDS = range(6)


@pytest.mark.parametrize("seed", SEEDS)
def test_binary_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(10, 80))
    y = rng.integers(0, 2, n).astype(float)
    if seed == 0:
        y[:] = 0
        y[3] = 1  # a single positive
    s = np.round(rng.random(n), 1)  # ties
    t = 0.5
    pred = (s >= t).astype(int)
    assert METRICS.get("auroc")(y, s) == pytest.approx(roc_auc_score(y, s))
    assert METRICS.get("cohen_kappa")(y, s, threshold=t) == pytest.approx(cohen_kappa_score(y, pred))
    assert METRICS.get("f1")(y, s, threshold=t) == pytest.approx(f1_score(y, pred, zero_division=0))
    assert METRICS.get("accuracy")(y, s, threshold=t) == pytest.approx(accuracy_score(y, pred))


@pytest.mark.parametrize("seed", SEEDS)
def test_multiclass_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    n, k = 60, 5
    y = rng.integers(0, k, n)
    s = rng.random((n, k))
    s[: n // 2] += np.eye(k)[y[: n // 2]] * 0.5  # some signal
    p = s.argmax(1)
    assert METRICS.get("qwk")(y, s) == pytest.approx(cohen_kappa_score(y, p, weights="quadratic"))
    assert METRICS.get("cohen_kappa")(y, s) == pytest.approx(cohen_kappa_score(y, p))
    assert METRICS.get("accuracy")(y, s) == pytest.approx(accuracy_score(y, p))
    assert METRICS.get("f1_macro")(y, s) == pytest.approx(f1_score(y, p, average="macro", zero_division=0))
    assert METRICS.get("auroc_macro")(y[:, None], s) == pytest.approx(
        np.mean([roc_auc_score(y == c, s[:, c]) for c in range(k)]))


@pytest.mark.parametrize("seed", SEEDS)
def test_regression_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y, s = rng.normal(100, 40, 50), rng.normal(100, 40, 50)
    assert METRICS.get("mae")(y, s[:, None]) == pytest.approx(mean_absolute_error(y, s))
    assert METRICS.get("rmse")(y, s) == pytest.approx(np.sqrt(mean_squared_error(y, s)))
    assert METRICS.get("r2")(y, s) == pytest.approx(r2_score(y, s))


def _brute_force(gallery_labels, query_labels, ranking, k):
    aps, ps, rs = [], [], []
    for q, order in zip(query_labels, ranking):
        n_rel = sum(g == q for g in gallery_labels)
        if n_rel == 0:
            continue
        rel = [gallery_labels[i] == q for i in order[:k]]
        hits, prec_sum = 0, 0.0
        for i, r in enumerate(rel, 1):
            if r:
                hits += 1
                prec_sum += hits / i
        aps.append(prec_sum / min(k, n_rel))
        ps.append(sum(rel) / k)
        rs.append(sum(rel) / n_rel)
    return np.mean(aps), np.mean(ps), np.mean(rs)


@pytest.mark.parametrize("seed", SEEDS)
def test_retrieval_metrics_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    gallery = list(rng.integers(0, 4, 40))
    queries = list(rng.integers(0, 5, 15))  # class 4 never in the gallery: skipped
    ranking = [list(rng.permutation(40)[:20]) for _ in queries]
    rel = np.array([[gallery[i] == q for i in order] for q, order in zip(queries, ranking)], float)
    n_rel = np.array([sum(g == q for g in gallery) for q in queries], float)
    for k in (1, 5, 10):
        m, p, r = _brute_force(gallery, queries, ranking, k)
        assert METRICS.get(f"map@{k}")(n_rel, rel) == pytest.approx(m)
        assert METRICS.get(f"precision@{k}")(n_rel, rel) == pytest.approx(p)
        assert METRICS.get(f"recall@{k}")(n_rel, rel) == pytest.approx(r)


def test_perfect_predictions_give_perfect_scores():
    y = np.array([0, 1, 0, 1, 1, 0], float)
    assert METRICS.get("auroc")(y, y) == 1.0
    assert METRICS.get("cohen_kappa")(y, y, threshold=0.5) == 1.0
    assert METRICS.get("qwk")(np.array([0, 1, 2, 3, 4]), np.eye(5)) == 1.0
    assert METRICS.get("mae")(y, y) == 0.0
    rel = np.ones((3, 10))
    assert METRICS.get("map@10")(np.array([10, 12, 30]), rel) == 1.0


def test_threshold_is_chosen_on_val_scores():
    y_val = np.array([0, 0, 0, 1, 1, 1], float)
    s_val = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])  # separable at any t in (0.3, 0.7]
    t = choose_threshold("cohen_kappa", y_val, s_val)
    assert 0.3 < t <= 0.7
    assert METRICS.get("cohen_kappa")(y_val, s_val, threshold=t) == 1.0


@given(st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, -3.0, 7.25]) | st.floats(-1e6, 1e6), max_size=60))
def test_average_ranks_equal_scipy_rankdata(values):
    from scipy.stats import rankdata

    from xrbench.metrics.classification import average_ranks

    s = np.asarray(values, dtype=np.float64)
    np.testing.assert_array_equal(average_ranks(s), rankdata(s))

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from xrbench.metrics.bootstrap import bootstrap_ci
from xrbench.metrics.classification import auroc, auroc_macro


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 80).astype(float)
    s = np.round(rng.random(80), 1)  # many ties
    assert auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_auroc_single_positive_and_undefined():
    y = np.array([0, 0, 0, 1.0])
    assert auroc(y, np.array([0.1, 0.2, 0.3, 0.25])) == pytest.approx(roc_auc_score(y, [0.1, 0.2, 0.3, 0.25]))
    assert np.isnan(auroc(np.zeros(5), np.arange(5.0)))


def test_macro_auroc_masks_nan_and_skips_undefined_labels():
    y = np.array([[1, 0, np.nan], [0, 0, 1], [1, 0, 0], [0, 0, np.nan]], dtype=float)
    s = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.9], [0.8, 0.2, 0.1], [0.1, 0.4, 0.3]])
    # label 0 perfect (1.0), label 1 undefined (no positive), label 2: rows 1,2 only -> 1.0
    assert auroc_macro(y, s) == pytest.approx(1.0)


def test_bootstrap_resamples_patients_and_brackets_the_estimate():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300).astype(float)
    s = y * 0.5 + rng.random(300)
    units = [f"p{i // 3}" for i in range(300)]  # 3 images per patient
    ci = bootstrap_ci(lambda r: auroc(y[r], s[r]), 300, units, n_boot=300, seed=0)["value"]
    point = auroc(y, s)
    assert ci[0] < point < ci[1]
    assert 0.02 < ci[1] - ci[0] < 0.25

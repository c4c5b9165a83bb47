"""Every all-replicates metric equals its registered metric on the resampled rows, and the
vectorised bootstrap draws the very resamples of the loop, so CIs do not move."""
from __future__ import annotations

import numpy as np
import pytest

import xrbench.metrics  # noqa: F401
from xrbench.metrics.bootstrap import bootstrap_ci
from xrbench.registry import METRICS

rng = np.random.default_rng(0)
N = 60
Y_ML = np.where(rng.random((N, 3)) < 0.1, np.nan, (rng.random((N, 3)) < 0.4).astype(float))
S_ML = np.round(rng.random((N, 3)), 1)  # rounded: ties
Y_B = (rng.random((N, 1)) < 0.3).astype(float)
S_B = np.round(Y_B * 0.3 + rng.random((N, 1)), 2)
Y_MC = rng.integers(0, 4, N)
S_MC = rng.dirichlet(np.ones(4), N) + 0.2 * np.eye(4)[Y_MC]
Y_R = rng.normal(100, 30, N)
S_R = (Y_R + rng.normal(0, 20, N))[:, None]
N_REL = rng.integers(0, 8, N).astype(float)
REL = (rng.random((N, 20)) < 0.4).astype(float)

CASES = [("auroc_macro", Y_ML, S_ML, {}), ("auroc_per_label", Y_ML, S_ML, {"labels": ["a", "b", "c"]}),
         ("auroc", Y_B, S_B, {}), ("cohen_kappa", Y_B, S_B, {"threshold": 0.6}),
         ("accuracy", Y_B, S_B, {"threshold": 0.6}), ("f1", Y_B, S_B, {"threshold": 0.6}),
         ("cohen_kappa", Y_MC, S_MC, {}), ("qwk", Y_MC, S_MC, {}), ("accuracy", Y_MC, S_MC, {}),
         ("f1_macro", Y_MC, S_MC, {}), ("auroc_macro", Y_MC, S_MC, {}),
         ("mae", Y_R, S_R, {}), ("rmse", Y_R, S_R, {}), ("r2", Y_R, S_R, {}),
         ("map@10", N_REL, REL, {}), ("precision@5", N_REL, REL, {}), ("recall@20", N_REL, REL, {})]


@pytest.mark.parametrize("name,y,s,kw", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_weighted_metric_equals_metric_on_repeated_rows(name, y, s, kw):
    fn = METRICS.get(name)
    w = rng.integers(0, 3, (25, N)).astype(float)
    w[0] = 1.0
    w[1, : N - 3] = 0.0  # a replicate with three rows: often undefined
    got = fn.weighted(y, s, w, **{"labels": ["x"], **kw})
    for b in range(len(w)):
        rows = np.repeat(np.arange(N), w[b].astype(int))
        want = fn(y[rows], s[rows], **{"labels": ["x"], **kw})
        if isinstance(want, dict):
            for k in want:
                np.testing.assert_allclose(got[k][b], want[k], rtol=1e-10, atol=1e-12, equal_nan=True)
        else:
            np.testing.assert_allclose(got[b], want, rtol=1e-10, atol=1e-12, equal_nan=True)


def test_vectorised_bootstrap_draws_the_same_resamples_as_the_loop():
    units = [f"p{i // 3}" for i in range(N)]  # three rows per patient
    fn = METRICS.get("auroc_macro")
    loop = bootstrap_ci(lambda r: fn(Y_ML[r], S_ML[r]), N, units, n_boot=300, seed=4)
    vec = bootstrap_ci(lambda r: fn(Y_ML[r], S_ML[r]), N, units, n_boot=300, seed=4,
                       batch_metric=lambda w: {"value": fn.weighted(Y_ML, S_ML, w)})
    np.testing.assert_allclose(vec["value"], loop["value"], rtol=1e-12)

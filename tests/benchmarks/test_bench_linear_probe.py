"""Linear probe speed: xrbench's torch L-BFGS head vs scikit-learn LogisticRegression(lbfgs).

50,000 x 768 features, 14 labels, the same L2 penalty for both. Run with ``make bench``; the
numbers are written in docs/benchmarks.md. Not part of ``make test``.
"""
import time

import numpy as np
import pytest
import torch

from xrbench.metrics.classification import auroc_macro
from xrbench.protocols.linear import fit_logistic

N, D, K = 50_000, 768, 14
WD = 1e-4  # torch: mean loss + wd/2 ||w||^2  <=>  sklearn: C = 1 / (wd * n_train)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(N + 10_000, 32))
    x = (z @ rng.normal(size=(32, D)) + 2.0 * rng.normal(size=(N + 10_000, D))).astype(np.float32)
    logits = z @ rng.normal(size=(32, K)) - 1.0
    y = (rng.random(logits.shape) < 1 / (1 + np.exp(-logits))).astype(np.float64)
    mu, sd = x[:N].mean(0), x[:N].std(0)
    x = (x - mu) / sd
    return x[:N], y[:N], x[N:], y[N:]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_torch_lbfgs_probe(benchmark, data, device):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    xtr, ytr, xte, yte = data
    xt = torch.as_tensor(xtr, device=device)

    def fit():
        w, b = fit_logistic(xt, ytr, task="multilabel", n_out=K, wd=WD, max_iter=200)
        if device == "cuda":
            torch.cuda.synchronize()
        return w, b

    w, b = benchmark.pedantic(fit, rounds=3, iterations=1, warmup_rounds=1)  # first call pays thread-pool start-up
    s = torch.sigmoid(torch.as_tensor(xte, device=device) @ w + b).cpu().numpy()
    benchmark.extra_info["auroc"] = auroc_macro(yte, s)
    benchmark.extra_info["threads"] = torch.get_num_threads()
    assert benchmark.extra_info["auroc"] > 0.7


def test_sklearn_lbfgs_probe(benchmark, data):
    from sklearn.linear_model import LogisticRegression

    xtr, ytr, xte, yte = data

    def fit():
        return [LogisticRegression(C=1 / (WD * N), max_iter=200).fit(xtr, ytr[:, k]) for k in range(K)]

    t0 = time.perf_counter()
    models = benchmark.pedantic(fit, rounds=1, iterations=1)
    s = np.stack([m.predict_proba(xte)[:, 1] for m in models], 1)
    benchmark.extra_info["auroc"] = auroc_macro(yte, s)
    benchmark.extra_info["seconds"] = time.perf_counter() - t0
    assert benchmark.extra_info["auroc"] > 0.7

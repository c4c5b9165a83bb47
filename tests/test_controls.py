"""Controls through the protocols: separable features give perfect scores, permuted labels chance."""
import numpy as np
import pytest

from xrbench.metrics.classification import choose_threshold
from xrbench.protocols.base import Split, l2_normalise
from xrbench.protocols.knn import KNN
from xrbench.protocols.linear import LinearProbe
from xrbench.protocols.retrieval import Retrieval
from xrbench.protocols.ridge import Ridge
from xrbench.registry import METRICS
from xrbench.metrics.retrieval import relevance as retrieval_relevance


def _clusters(n, k, d=16, seed=0, spread=0.05):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 3
    y = rng.integers(0, k, n)
    return (centers[y] + spread * rng.normal(size=(n, d))).astype(np.float32), y


def test_separable_binary_gives_kappa_one():
    x, y = _clusters(300, 2)
    yb = y.astype(float)[:, None]
    res = LinearProbe().run(Split(x[:150], yb[:150]), Split(x[150:200], yb[150:200]), x[200:], task="binary",
                            n_out=1, select=METRICS.get("auroc"))
    t = choose_threshold("cohen_kappa", yb[150:200], res.val_scores)
    assert METRICS.get("auroc")(yb[200:], res.test_scores) == 1.0
    assert METRICS.get("cohen_kappa")(yb[200:], res.test_scores, threshold=t) == 1.0


@pytest.mark.parametrize("proto", [LinearProbe(), KNN(ks=[10])])
def test_separable_grades_give_qwk_one(proto):
    x, y = _clusters(400, 5)
    res = proto.run(Split(x[:250], y[:250]), Split(x[250:300], y[250:300]), x[300:], task="multiclass",
                    n_out=5, select=METRICS.get("qwk"))
    assert METRICS.get("qwk")(y[300:], res.test_scores) == 1.0


def test_linear_target_gives_mae_near_zero():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 12)).astype(np.float32)
    y = l2_normalise(x) @ rng.normal(size=12) * 50 + 100  # linear in the features the head sees
    res = Ridge(alphas=[1e-6, 1e-3], clip_to_train_range=False).run(Split(x[:250], y[:250]), Split(x[250:300], y[250:300]), x[300:],
                                         task="regression", n_out=1,
                                         select=lambda yv, s: -METRICS.get("mae")(yv, s))
    assert METRICS.get("mae")(y[300:], res.test_scores) < 0.01


def test_clustered_features_give_map_one_and_permuted_gallery_does_not():
    x, y = _clusters(300, 4)
    lab = y.astype(str).astype(object)
    res = Retrieval(top_k=10).run(Split(x[:200], lab[:200]), Split(x[:0], lab[:0]), x[200:], task="retrieval",
                                  n_out=1, select=None)
    n_rel, rel = retrieval_relevance(lab[:200], lab[200:], res.test_scores)
    assert METRICS.get("map@10")(n_rel, rel) == 1.0
    shuffled = lab[:200][np.random.default_rng(1).permutation(200)]
    n_rel, rel = retrieval_relevance(shuffled, lab[200:], res.test_scores)
    assert abs(METRICS.get("precision@10")(n_rel, rel) - 0.25) < 0.1  # 4 balanced classes: chance

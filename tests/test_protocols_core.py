import numpy as np
import pytest
import torch

from xrbench.metrics.classification import auroc_macro
from xrbench.protocols.base import Split
from xrbench.protocols.knn import KNN
from xrbench.protocols.linear import LinearProbe


def _data(n, d=32, k=3, seed=0, separable=True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    w = rng.normal(size=(d, k))
    y = (x @ w > 0).astype(float) if separable else rng.integers(0, 2, (n, k)).astype(float)
    return x, y


def _select(y, s):
    return auroc_macro(y, s)


@pytest.mark.parametrize("proto,dim,floor", [(LinearProbe(), 32, 0.97), (KNN(ks=[5, 10]), 3, 0.9)])
def test_separable_features_give_auroc_near_one(proto, dim, floor):
    x, y = _data(400, d=dim)
    res = proto.run(Split(x[:200], y[:200]), Split(x[200:300], y[200:300]), x[300:], task="multilabel",
                    n_out=3, select=_select)
    assert auroc_macro(y[300:], res.test_scores) > floor
    assert res.test_scores.shape == (100, 3)


def test_permuted_labels_give_chance():
    x, y = _data(600, separable=True)
    y = y[np.random.default_rng(1).permutation(600)]
    res = LinearProbe().run(Split(x[:300], y[:300]), Split(x[300:400], y[300:400]), x[400:],
                            task="multilabel", n_out=3, select=_select)
    assert abs(auroc_macro(y[400:], res.test_scores) - 0.5) < 0.1


def test_nan_labels_are_masked_not_treated_as_negative():
    x, y = _data(400, k=1)
    y_masked = y.copy()
    y_masked[:100, 0] = np.nan  # hide a quarter of the training labels
    res = LinearProbe().run(Split(x[:200], y_masked[:200]), Split(x[200:300], y[200:300]), x[300:],
                            task="multilabel", n_out=1, select=_select)
    assert auroc_macro(y[300:], res.test_scores) > 0.95


def test_multiclass_linear_probe():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 16)) * 3
    cls = rng.integers(0, 4, 400)
    x = (centers[cls] + rng.normal(size=(400, 16))).astype(np.float32)
    res = LinearProbe().run(Split(x[:200], cls[:200]), Split(x[200:300], cls[200:300]), x[300:],
                            task="multiclass", n_out=4,
                            select=lambda y, s: float((s.argmax(1) == y).mean()))
    assert (res.test_scores.argmax(1) == cls[300:]).mean() > 0.9
    np.testing.assert_allclose(res.test_scores.sum(1), 1.0, atol=1e-5)


def test_weight_decay_is_chosen_on_val_only():
    x, y = _data(300)
    seen = []

    def spy(yv, s):
        seen.append(len(yv))
        return auroc_macro(yv, s)

    LinearProbe(weight_decays=[1e-4, 1e-2, 1.0]).run(Split(x[:150], y[:150]), Split(x[150:200], y[150:200]),
                                                     x[200:], task="multilabel", n_out=3, select=spy)
    assert seen == [50, 50, 50]  # the selector only ever sees val


def test_ridge_recovers_a_linear_target_and_clips_extrapolation():
    from xrbench.protocols.ridge import Ridge

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 20)).astype(np.float32)
    y = x @ rng.normal(size=20) * 10 + 100
    sel = lambda yv, s: -float(np.mean(np.abs(yv - s[:, 0])))  # noqa: E731
    res = Ridge().run(Split(x[:300], y[:300]), Split(x[300:400], y[300:400]), x[400:], task="regression",
                      n_out=1, select=sel)
    assert np.mean(np.abs(res.test_scores[:, 0] - y[400:])) < 0.15 * np.std(y)
    far = Ridge().run(Split(x[:300], y[:300]), Split(x[300:400], y[300:400]), x[400:] * 50,
                      task="regression", n_out=1, select=sel)
    assert far.test_scores.min() >= y[:300].min() and far.test_scores.max() <= y[:300].max()


def test_constant_training_feature_gets_scale_one_as_in_scikit_learn():
    from sklearn.preprocessing import StandardScaler

    from xrbench.protocols.base import standardiser

    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4)).astype(np.float32)
    x[:, 2] = 0.25  # constant on train (one real EfficientNet channel is)
    mu, sd = standardiser(x)
    ref = StandardScaler().fit(x)
    np.testing.assert_allclose(mu, ref.mean_, atol=1e-6)
    np.testing.assert_allclose(sd, ref.scale_, rtol=1e-5)
    assert sd[2] == 1.0
    val = x[:3].copy()
    val[:, 2] = 0.26
    assert np.abs((val - mu) / sd).max() < 10  # not thousands of standard deviations


def test_grid_standardiser_streams_a_view_and_gives_constant_channels_scale_one():
    from sklearn.preprocessing import StandardScaler

    from xrbench.features.view import FeatureRows
    from xrbench.protocols.base import grid_standardiser

    rng = np.random.default_rng(1)
    grids = rng.normal(3.0, 2.0, size=(150, 3, 3, 5)).astype(np.float16)
    grids[..., 1] = 1234.5  # a channel constant over every cell of every training grid
    view = FeatureRows(grids, list(range(0, 150, 2)))  # a row subset, read in batches of 64
    mu, sd = grid_standardiser(view)
    ref = StandardScaler().fit(grids[::2].reshape(-1, 5).astype(np.float64))
    np.testing.assert_allclose(mu, ref.mean_, rtol=1e-6)
    np.testing.assert_allclose(sd, ref.scale_, rtol=1e-5)
    assert sd[1] == 1.0 and mu.dtype == sd.dtype == np.float32


def test_retrieval_ranks_by_cosine_and_breaks_ties_in_gallery_order():
    from xrbench.protocols.retrieval import Retrieval, ranked

    gallery = np.array([[1, 0], [0, 1], [2, 0], [1, 1], [3, 0]], dtype=np.float32)  # 0, 2, 4: one direction
    queries = np.array([[1, 0], [0, 5]], dtype=np.float32)
    out = Retrieval(top_k=4).run(Split(gallery, np.zeros(5)), Split(gallery, np.zeros(5)), queries, task="t",
                                 n_out=1, select=None)
    assert out.test_scores.tolist() == [[0, 2, 4, 3], [1, 3, 0, 2]]
    # many equal similarities: always the lowest gallery indices, in order
    assert ranked(torch.zeros(3, 1000), 5).tolist() == [[0, 1, 2, 3, 4]] * 3

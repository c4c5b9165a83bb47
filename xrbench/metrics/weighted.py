"""Bootstrap-replicate versions of the registered metrics: one call scores every replicate.

A bootstrap replicate that draws a unit ``c`` times is the same data set as one where each of its
rows weighs ``c``; so every replicate of a metric is computed at once from a weight matrix
``w`` [B, N] over the rows (Mann-Whitney AUROC over tied score groups, weighted confusion
matrices, weighted means). Each function equals its registered metric on the repeated rows to
rounding error (tests/test_bootstrap_vectorised.py), and returns a [B] array, NaN where the metric
is undefined on a replicate. They are attached to the registered metrics as ``fn.weighted``.
"""
from __future__ import annotations

import numpy as np

from xrbench.registry import METRICS


def _2d(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a[:, None] if a.ndim == 1 else a


def auroc_w(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """AUROC of one label for every row of weights ``w`` (ties count one half, NaN labels dropped)."""
    y = np.asarray(y, dtype=np.float64)
    keep = ~np.isnan(y)
    y, s, w = y[keep], np.asarray(s, dtype=np.float64)[keep], w[:, keep]
    if y.size == 0:
        return np.full(w.shape[0], np.nan)
    order = np.argsort(s, kind="stable")
    s_sorted, pos = s[order], y[order] > 0.5
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    ws = w[:, order]
    gp = np.add.reduceat(ws * pos, starts, axis=1)
    gn = np.add.reduceat(ws * ~pos, starts, axis=1)
    below = np.cumsum(gn, axis=1) - gn
    n_pos, n_neg = gp.sum(1), gn.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (gp * (below + 0.5 * gn)).sum(1) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), out, np.nan)


def _one_vs_rest(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    y, s = _2d(y), _2d(s)
    if y.shape[1] != s.shape[1] and s.shape[1] > 1 and y.shape[1] == 1:
        return np.eye(s.shape[1])[y[:, 0].astype(int)]
    return y


def _nanmean_rows(vals: np.ndarray) -> np.ndarray:
    """Mean over axis 0 of the defined values (NaN where none is)."""
    ok = ~np.isnan(vals)
    n = ok.sum(0)
    with np.errstate(invalid="ignore"):
        return np.where(n > 0, np.where(ok, vals, 0).sum(0) / np.maximum(n, 1), np.nan)


def auroc_macro_w(y, s, w, **_) -> np.ndarray:
    s2 = _2d(s)
    y2 = _one_vs_rest(y, s2)
    return _nanmean_rows(np.stack([auroc_w(y2[:, k], s2[:, k], w) for k in range(y2.shape[1])]))


def auroc_binary_w(y, s, w, **_) -> np.ndarray:
    s2 = _2d(s)
    return auroc_w(_2d(y)[:, 0], s2[:, -1] if s2.shape[1] == 2 else s2[:, 0], w)


def auroc_per_label_w(y, s, w, *, labels, **_) -> dict[str, np.ndarray]:
    y2, s2 = _2d(y), _2d(s)
    return {f"auroc/{name}": auroc_w(y2[:, k], s2[:, k], w) for k, name in enumerate(labels)}


# -- hard decisions ------------------------------------------------------------------------------
def _binary(y, s, w, threshold):
    y, s = _2d(y)[:, 0], _2d(s)
    s = s[:, -1] if s.shape[1] == 2 else s[:, 0]
    keep = ~np.isnan(y)
    return y[keep] > 0.5, s[keep] >= threshold, w[:, keep]


def _confusion(t: np.ndarray, p: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    """[B, k, k] weighted confusion matrices (truth x prediction)."""
    cell = t.astype(np.int64) * k + p.astype(np.int64)
    onehot = np.zeros((len(cell), k * k))
    onehot[np.arange(len(cell)), cell] = 1.0
    return (w @ onehot).reshape(-1, k, k)


def _kappa(conf: np.ndarray, weights: str | None) -> np.ndarray:
    k = conf.shape[1]
    i, j = np.indices((k, k))
    wm = {None: (i != j).astype(float), "quadratic": ((i - j) / max(k - 1, 1)) ** 2}[weights]
    tot = conf.sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = conf.sum(2)[:, :, None] * conf.sum(1)[:, None, :] / tot[:, None, None]
        den = (wm * expected).sum((1, 2))
        out = 1 - (wm * conf).sum((1, 2)) / den
    return np.where((tot > 0) & (den != 0), out, np.nan)


def _classes(y, s):
    return np.asarray(y).reshape(-1).astype(int), np.asarray(s).argmax(1)


def _is_multiclass(s) -> bool:
    return np.asarray(s).ndim == 2 and np.asarray(s).shape[1] > 2


def cohen_kappa_w(y, s, w, *, threshold: float = 0.5, **_) -> np.ndarray:
    if _is_multiclass(s):
        t, p = _classes(y, s)
        return _kappa(_confusion(t, p, w, np.asarray(s).shape[1]), None)
    t, p, w = _binary(y, s, w, threshold)
    return _kappa(_confusion(t, p, w, 2), None)


def qwk_w(y, s, w, **_) -> np.ndarray:
    t, p = _classes(y, s)
    return _kappa(_confusion(t, p, w, np.asarray(s).shape[1]), "quadratic")


def accuracy_w(y, s, w, *, threshold: float = 0.5, **_) -> np.ndarray:
    if _is_multiclass(s):
        t, p = _classes(y, s)
    else:
        t, p, w = _binary(y, s, w, threshold)
    tot = w.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, (w * (t == p)).sum(1) / tot, np.nan)


def _f1_from(conf: np.ndarray, c: int) -> np.ndarray:
    tp = conf[:, c, c]
    fp = conf[:, :, c].sum(1) - tp
    fn = conf[:, c, :].sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)


def f1_w(y, s, w, *, threshold: float = 0.5, **_) -> np.ndarray:
    t, p, w = _binary(y, s, w, threshold)
    conf = _confusion(t, p, w, 2)
    return np.where(conf.sum((1, 2)) > 0, _f1_from(conf, 1), np.nan)


def f1_macro_w(y, s, w, **_) -> np.ndarray:
    t, p = _classes(y, s)
    k = max(np.asarray(s).shape[1], int(t.max(initial=0)) + 1, int(p.max(initial=0)) + 1)
    conf = _confusion(t, p, w, k)
    present = (conf.sum(2) > 0) | (conf.sum(1) > 0)  # in the replicate's truth or predictions
    f1 = np.stack([_f1_from(conf, c) for c in range(k)], axis=1)
    n = present.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (f1 * present).sum(1) / n, np.nan)


# -- calibration ----------------------------------------------------------------------------------
def _calibration_w(y, s, w):
    """(per-curve (confidence, outcome, weights)) or None when the scores are not probabilities."""
    from xrbench.metrics.classification import _probabilities, calibration_curves

    s = np.asarray(s, dtype=np.float64)
    if not _probabilities(s):
        return None
    return [(c, o, w[:, keep]) for c, o, keep in calibration_curves(y, s)]


def ece_w(y, s, w, **_) -> np.ndarray:
    from xrbench.metrics.classification import ECE_BINS, ece_bins

    curves = _calibration_w(y, s, w)
    if curves is None:
        return np.full(w.shape[0], np.nan)
    vals = []
    for conf, outcome, wk in curves:
        onehot = np.zeros((conf.size, ECE_BINS))
        onehot[np.arange(conf.size), ece_bins(conf)] = 1.0
        gap = wk @ (onehot * (outcome - conf)[:, None])  # [B, bins]
        tot = wk.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            vals.append(np.where(tot > 0, np.abs(gap).sum(1) / tot, np.nan))
    return _nanmean_rows(np.stack(vals))


def brier_w(y, s, w, **_) -> np.ndarray:
    from xrbench.metrics.classification import _multiclass_target

    curves = _calibration_w(y, s, w)
    if curves is None:
        return np.full(w.shape[0], np.nan)
    s2 = _2d(np.asarray(s, dtype=np.float64))
    tot = w.sum(1)
    if _multiclass_target(y, s2):
        onehot = np.eye(s2.shape[1])[np.asarray(y).reshape(-1).astype(int)]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(tot > 0, w @ ((s2 - onehot) ** 2).sum(1) / tot, np.nan)
    vals = []
    for p, o, wk in curves:
        t = wk.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            vals.append(np.where(t > 0, wk @ (p - o) ** 2 / t, np.nan))
    return _nanmean_rows(np.stack(vals))


# -- regression -----------------------------------------------------------------------------------
def _flat(y, s):
    return np.asarray(y, dtype=np.float64).reshape(-1), np.asarray(s, dtype=np.float64).reshape(-1)


def mae_w(y, s, w, **_) -> np.ndarray:
    y, s = _flat(y, s)
    tot = w.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, w @ np.abs(y - s) / tot, np.nan)


def rmse_w(y, s, w, **_) -> np.ndarray:
    y, s = _flat(y, s)
    tot = w.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, np.sqrt(w @ (y - s) ** 2 / tot), np.nan)


def r2_w(y, s, w, **_) -> np.ndarray:
    y, s = _flat(y, s)
    tot = w.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (w @ y) / tot
        ss_tot = (w * (y[None, :] - mean[:, None]) ** 2).sum(1)
        out = 1 - (w @ (y - s) ** 2) / ss_tot
    scale = w @ (y * y) + 1.0
    return np.where((tot > 0) & (ss_tot > 1e-12 * scale), out, np.nan)


# -- retrieval ------------------------------------------------------------------------------------
def _per_query_mean(values: np.ndarray, keep: np.ndarray, w: np.ndarray) -> np.ndarray:
    wk = w[:, keep]
    tot = wk.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, wk @ values[keep] / tot, np.nan)


def _retrieval(kind: str, k: int):
    def fn(y, s, w, **_) -> np.ndarray:
        n_rel = np.asarray(y, dtype=np.float64).reshape(-1)
        rel = np.asarray(s, dtype=np.float64)[:, :k]
        keep = n_rel > 0
        if kind == "precision":
            v = rel.sum(1) / k
        elif kind == "recall":
            v = rel.sum(1) / np.maximum(n_rel, 1)
        else:
            prec = np.cumsum(rel, axis=1) / np.arange(1, rel.shape[1] + 1)
            v = (prec * rel).sum(1) / np.minimum(k, np.maximum(n_rel, 1))
        return _per_query_mean(v, keep, w)
    return fn


_WEIGHTED = {"auroc_macro": auroc_macro_w, "auroc": auroc_binary_w, "auroc_per_label": auroc_per_label_w,
             "cohen_kappa": cohen_kappa_w, "qwk": qwk_w, "accuracy": accuracy_w, "f1": f1_w,
             "f1_macro": f1_macro_w, "ece": ece_w, "brier": brier_w, "mae": mae_w, "rmse": rmse_w, "r2": r2_w}
for _k in (1, 5, 10, 20):
    for _kind in ("map", "precision", "recall"):
        _WEIGHTED[f"{_kind}@{_k}"] = _retrieval(_kind, _k)


def attach() -> None:
    """Give each registered metric its all-replicates version (``fn.weighted``)."""
    for name, wfn in _WEIGHTED.items():
        if name in METRICS:
            METRICS.get(name).weighted = wfn

"""Classification metrics on score matrices, NaN-aware, fast enough to bootstrap 1000 times.

Conventions: ``y`` is [N, K] with 1/0/NaN (NaN = unknown, excluded per label) for multilabel and
binary targets, or [N] integer classes for multiclass; ``s`` is [N, K] scores.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from xrbench.registry import METRICS


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    """Area under the ROC curve of one label (Mann-Whitney U with average ranks for ties).

    NaN if only one class is present: an undefined AUROC is reported as such, never as 0.5.
    """
    y = np.asarray(y, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    keep = ~np.isnan(y)
    y, s = y[keep], s[keep]
    pos = y > 0.5
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _as_2d(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a[:, None] if a.ndim == 1 else a


@METRICS.register("auroc_macro")
def auroc_macro(y: np.ndarray, s: np.ndarray, **_) -> float:
    """Mean AUROC over labels whose AUROC is defined (both classes present)."""
    y, s = _as_2d(y), _as_2d(s)
    if y.shape[1] != s.shape[1] and s.shape[1] > 1 and y.shape[1] == 1:  # multiclass one-vs-rest
        y = np.eye(s.shape[1])[y[:, 0].astype(int)]
    vals = [auroc(y[:, k], s[:, k]) for k in range(y.shape[1])]
    vals = [v for v in vals if v == v]
    return float(np.mean(vals)) if vals else float("nan")


@METRICS.register("auroc")
def auroc_binary(y: np.ndarray, s: np.ndarray, **_) -> float:
    """AUROC of a single binary target (first column)."""
    return auroc(_as_2d(y)[:, 0], _as_2d(s)[:, -1] if _as_2d(s).shape[1] == 2 else _as_2d(s)[:, 0])


@METRICS.register("auroc_per_label")
def auroc_per_label(y: np.ndarray, s: np.ndarray, *, labels: list[str], **_) -> dict[str, float]:
    y, s = _as_2d(y), _as_2d(s)
    return {f"auroc/{name}": auroc(y[:, k], s[:, k]) for k, name in enumerate(labels)}

"""Classification metrics on score matrices, NaN-aware, fast enough to bootstrap 1000 times.

Conventions: ``y`` is [N, K] with 1/0/NaN (NaN = unknown, excluded per label) for multilabel and
binary targets, or [N] integer classes for multiclass; ``s`` is [N, K] scores.
"""
from __future__ import annotations

import numpy as np

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
    ranks = average_ranks(s)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_ranks(s: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank: ``scipy.stats.rankdata(s)`` (method "average"),
    in numpy, because importing scipy.stats costs a cached run 0.7 s."""
    order = np.argsort(s, kind="mergesort")
    ordered = s[order]
    first = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(first) - 1
    bounds = np.r_[np.flatnonzero(first), len(s)]
    ranks = np.empty(len(s), dtype=np.float64)
    ranks[order] = 0.5 * (bounds[group] + bounds[group + 1] + 1)
    return ranks


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


# -- hard-decision metrics: binary ones take a threshold chosen on val ------------------------

def _binary(y: np.ndarray, s: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    y, s = _as_2d(y)[:, 0], _as_2d(s)
    s = s[:, -1] if s.shape[1] == 2 else s[:, 0]
    keep = ~np.isnan(y)
    return y[keep].astype(int), (s[keep] >= threshold).astype(int)


def _classes(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Multiclass: true class ids and argmax predictions."""
    return np.asarray(y).reshape(-1).astype(int), np.asarray(s).argmax(1)


def _is_multiclass(s: np.ndarray) -> bool:
    return np.asarray(s).ndim == 2 and np.asarray(s).shape[1] > 2


def cohen_kappa(a: np.ndarray, b: np.ndarray, n_classes: int | None = None, weights: str | None = None) -> float:
    """Cohen's kappa (unweighted, linear or quadratic weights) from two label vectors."""
    a, b = np.asarray(a, int), np.asarray(b, int)
    if a.size == 0:
        return float("nan")
    k = int(n_classes or max(a.max(), b.max()) + 1)
    conf = np.zeros((k, k))
    np.add.at(conf, (a, b), 1)
    i, j = np.indices((k, k))
    w = {None: (i != j).astype(float), "linear": np.abs(i - j) / max(k - 1, 1),
         "quadratic": ((i - j) / max(k - 1, 1)) ** 2}[weights]
    expected = np.outer(conf.sum(1), conf.sum(0)) / conf.sum()
    den = (w * expected).sum()
    return float("nan") if den == 0 else float(1 - (w * conf).sum() / den)


@METRICS.register("cohen_kappa")
def cohen_kappa_metric(y, s, *, threshold: float = 0.5, **_) -> float:
    """Cohen's kappa of the decision ``score >= threshold`` (binary) or argmax (multiclass)."""
    if _is_multiclass(s):
        t, p = _classes(y, s)
        return cohen_kappa(t, p, np.asarray(s).shape[1])
    t, p = _binary(y, s, threshold)
    return cohen_kappa(t, p, 2)


@METRICS.register("qwk")
def quadratic_weighted_kappa(y, s, **_) -> float:
    """Quadratic-weighted kappa of argmax predictions over ordered classes (KL grade)."""
    t, p = _classes(y, s)
    return cohen_kappa(t, p, np.asarray(s).shape[1], "quadratic")


@METRICS.register("accuracy")
def accuracy(y, s, *, threshold: float = 0.5, **_) -> float:
    t, p = _classes(y, s) if _is_multiclass(s) else _binary(y, s, threshold)
    return float((t == p).mean()) if t.size else float("nan")


def _f1(t: np.ndarray, p: np.ndarray, c: int) -> float:
    tp = np.sum((p == c) & (t == c))
    fp = np.sum((p == c) & (t != c))
    fn = np.sum((p != c) & (t == c))
    return 0.0 if tp == 0 else float(2 * tp / (2 * tp + fp + fn))


@METRICS.register("f1")
def f1_binary(y, s, *, threshold: float = 0.5, **_) -> float:
    t, p = _binary(y, s, threshold)
    return _f1(t, p, 1) if t.size else float("nan")


@METRICS.register("f1_macro")
def f1_macro(y, s, **_) -> float:
    """Macro F1 (multiclass argmax) over the classes present in the truth or the predictions:
    scikit-learn's ``f1_score(average="macro")``. A class predicted but absent from the truth scores
    0 and counts; leaving it out would not penalise those false positives."""
    t, p = _classes(y, s)
    return float(np.mean([_f1(t, p, c) for c in np.union1d(t, p)])) if t.size else float("nan")


#: metrics whose binary decision threshold is chosen on val (never on test)
THRESHOLDED = {"cohen_kappa", "accuracy", "f1"}


def choose_threshold(metric: str, y_val: np.ndarray, s_val: np.ndarray) -> float:
    """The score threshold maximising ``metric`` on val over 50 candidates: the 2%, 4%, ..., 98%
    quantiles of the val scores and 0.5 (not every val score: a bounded search per selection call)."""
    fn = METRICS.get(metric)
    s = _as_2d(s_val)
    s = s[:, -1] if s.shape[1] == 2 else s[:, 0]
    cands = np.unique(np.concatenate([np.quantile(s, np.linspace(0.02, 0.98, 49)), [0.5]]))
    vals = [fn(y_val, s_val, threshold=t) for t in cands]
    vals = [-np.inf if v != v else v for v in vals]
    return float(cands[int(np.argmax(vals))])


# -- calibration: probabilistic outputs only ---------------------------------------------------
#: equal-width confidence bins of the expected calibration error (Guo et al. 2017 use 15)
ECE_BINS = 15


def _probabilities(s: np.ndarray) -> bool:
    """Scores that are probabilities (in [0, 1]); calibration of logits or ranks is undefined."""
    return s.size > 0 and bool(np.all((s >= 0) & (s <= 1)))


def _multiclass_target(y: np.ndarray, s2: np.ndarray) -> bool:
    """Class ids against a score per class (not one 0/1/NaN column per label)."""
    return s2.shape[1] > 2 and np.asarray(y).reshape(len(s2), -1).shape[1] == 1


def calibration_curves(y: np.ndarray, s: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(confidence, outcome, rows kept) per calibration curve: one per label (NaN labels dropped) for
    binary and multilabel scores, the top label for multiclass (confidence = max probability,
    outcome = correct). The rows kept let the all-replicates version weight the same samples."""
    s2 = _as_2d(np.asarray(s, dtype=np.float64))
    if _multiclass_target(y, s2):
        t = np.asarray(y).reshape(-1).astype(int)
        return [(s2.max(1), (s2.argmax(1) == t).astype(np.float64), np.ones(len(s2), dtype=bool))]
    y2 = _as_2d(np.asarray(y, dtype=np.float64))
    if s2.shape[1] == 2 and y2.shape[1] == 1:
        s2 = s2[:, 1:]
    out = []
    for k in range(y2.shape[1]):
        keep = ~np.isnan(y2[:, k])
        out.append((s2[keep, k], (y2[keep, k] > 0.5).astype(np.float64), keep))
    return out


def calibration_pairs(y: np.ndarray, s: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(confidence, outcome) per calibration curve (:func:`calibration_curves`)."""
    return [(c, o) for c, o, _ in calibration_curves(y, s)]


def ece_bins(conf: np.ndarray) -> np.ndarray:
    """Bin of each confidence: [0, 1/15), ..., [14/15, 1] (1.0 falls in the last bin)."""
    return np.minimum((np.asarray(conf) * ECE_BINS).astype(int), ECE_BINS - 1)


def _ece_one(conf: np.ndarray, outcome: np.ndarray) -> float:
    if conf.size == 0:
        return float("nan")
    b = ece_bins(conf)
    gap = np.bincount(b, outcome - conf, minlength=ECE_BINS)  # sum of (outcome - confidence) per bin
    return float(np.abs(gap).sum() / conf.size)


@METRICS.register("ece")
def ece(y: np.ndarray, s: np.ndarray, **_) -> float:
    """Expected calibration error, 15 equal-width bins: sum over bins of (n_b / N) |accuracy_b -
    confidence_b|; per label then macro (binary, multilabel), top-label (multiclass). NaN when the
    scores are not probabilities."""
    if not _probabilities(np.asarray(s, dtype=np.float64)):
        return float("nan")
    vals = [_ece_one(c, o) for c, o in calibration_pairs(y, s)]
    vals = [v for v in vals if v == v]
    return float(np.mean(vals)) if vals else float("nan")


@METRICS.register("brier")
def brier(y: np.ndarray, s: np.ndarray, **_) -> float:
    """Brier score: mean (p - y)^2 per label then macro (binary, multilabel); multiclass: mean over
    samples of sum_k (p_k - [y = k])^2. NaN when the scores are not probabilities."""
    s2 = _as_2d(np.asarray(s, dtype=np.float64))
    if not _probabilities(s2):
        return float("nan")
    if _multiclass_target(y, s2):
        onehot = np.eye(s2.shape[1])[np.asarray(y).reshape(-1).astype(int)]
        return float(((s2 - onehot) ** 2).sum(1).mean())
    vals = [float(((p - o) ** 2).mean()) for p, o in calibration_pairs(y, s) if p.size]
    return float(np.mean(vals)) if vals else float("nan")


def reliability(y: np.ndarray, s: np.ndarray) -> dict | None:
    """The reliability diagram of pooled (confidence, outcome) pairs: per bin the mean confidence,
    the observed frequency and the count; None when the scores are not probabilities."""
    if not _probabilities(np.asarray(s, dtype=np.float64)):
        return None
    pairs = calibration_pairs(y, s)
    conf = np.concatenate([c for c, _ in pairs])
    out = np.concatenate([o for _, o in pairs])
    b = ece_bins(conf)
    n = np.bincount(b, minlength=ECE_BINS)
    with np.errstate(invalid="ignore", divide="ignore"):
        mc = np.bincount(b, conf, minlength=ECE_BINS) / n
        fo = np.bincount(b, out, minlength=ECE_BINS) / n
    return {"bins": ECE_BINS, "confidence": [None if v != v else round(float(v), 6) for v in mc],
            "frequency": [None if v != v else round(float(v), 6) for v in fo], "count": n.tolist()}

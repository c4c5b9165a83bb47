"""Landmark scores (ISBI 2015 cephalometric challenge) as per-image statistics plus an aggregate.

:func:`landmark_stats` stores each landmark's radial (Euclidean) error in mm once per test image;
:func:`aggregate_landmarks` pools the (image, landmark) pairs of any multiset of images: MRE is their
mean error and SDR@t the share with error <= t mm, the challenge's definitions. A landmark whose truth
is missing has error NaN and is left out of both (it is not counted as a success or a failure).
"""
from __future__ import annotations

import numpy as np

from xrbench.errors import DataError

THRESHOLDS_MM = (2.0, 2.5, 3.0, 4.0)


def landmark_stats(pred: np.ndarray, truth: np.ndarray, spacing_mm: float) -> dict:
    """Radial error in mm of each of the K landmarks ([K, 2] pixel coordinates, same order)."""
    pred, truth = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if pred.shape != truth.shape or pred.ndim != 2 or pred.shape[1] != 2:
        raise DataError(f"expected prediction and truth of the same shape [K, 2], got {pred.shape} "
                        f"and {truth.shape}", field="landmarks")
    known = ~np.isnan(truth).any(axis=1)
    if np.isnan(pred[known]).any():
        raise DataError("a predicted landmark is NaN where the truth is known", field="landmarks")
    radial = np.where(known, np.linalg.norm(pred - truth, axis=1) * float(spacing_mm), np.nan)
    return {"radial_mm": [float(r) for r in radial]}


def stack_stats(stats: list[dict]) -> dict[str, np.ndarray]:
    """Radial errors as an [n, K] array (missing values, NaN or None, become NaN)."""
    sizes = {len(s["radial_mm"]) for s in stats}
    if len(sizes) > 1:
        raise DataError(f"images have different numbers of landmarks: {sorted(sizes)}", field="radial_mm")
    k = sizes.pop() if sizes else 0
    return {"radial_mm": np.asarray([s["radial_mm"] for s in stats], dtype=np.float64).reshape(len(stats), k)}


def _name(t: float) -> str:
    return f"sdr@{float(t):g}mm"


def aggregate_landmarks_batch(arrays: dict[str, np.ndarray], index_batches: np.ndarray, *,
                              thresholds_mm=THRESHOLDS_MM) -> dict[str, np.ndarray]:
    """Metric -> [B] values, one per row of ``index_batches`` ([B, n] row indices into ``arrays``)."""
    r = arrays["radial_mm"]
    known = ~np.isnan(r)
    # per-image sums are sufficient: pooled means over (image, landmark) pairs are ratios of sums
    per_image = {"mre_mm": np.where(known, r, 0.0).sum(axis=1)}
    per_image.update({_name(t): (r <= t).sum(axis=1).astype(np.float64) for t in thresholds_mm})
    idx = np.asarray(index_batches, dtype=np.int64)
    count = known.sum(axis=1).astype(np.float64)[idx].sum(axis=1)
    return {k: np.divide(v[idx].sum(axis=1), count, out=np.full(len(idx), np.nan), where=count > 0)
            for k, v in per_image.items()}


def aggregate_landmarks(stats: list[dict], thresholds_mm=THRESHOLDS_MM) -> dict[str, float]:
    """``mre_mm`` and ``sdr@<t>mm`` over all (image, landmark) pairs with a known truth."""
    batch = aggregate_landmarks_batch(stack_stats(stats), np.arange(len(stats))[None],
                                      thresholds_mm=thresholds_mm)
    return {k: float(v[0]) for k, v in batch.items()}

"""Segmentation scores as per-image statistics plus an aggregate, so the bootstrap never re-scores masks.

Each test image is scored once by :func:`mask_stats` (MONAI's Dice, IoU and HD95 on the
binary masks at the image's original resolution); :func:`aggregate_segmentation` turns the
statistics of any multiset of images (a bootstrap resample repeats images) into the reported means,
and :func:`aggregate_segmentation_batch` does so for many resamples at once.

Conventions for empty masks (MONAI returns NaN/inf there, which would silently drop the hardest
images from a mean):

* empty prediction and empty truth: dice 1, iou 1, hd95 0 (a correct "nothing here");
* exactly one of them empty: dice 0, iou 0, hd95 = the image diagonal ``sqrt(H**2 + W**2)``, an upper
  bound on any distance between two pixels of the image, i.e. the worst possible value.

HD95 is in pixels: SIIM-ACR ships no usable pixel spacing. ``positive`` marks images whose truth mask
is non-empty; the ``*_pos`` aggregates average over those only (for pneumothorax the product reports
both the all-image Dice, where empty-on-empty counts 1, and the positives-only Dice).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from xrbench.errors import DataError

SCORES = ("dice", "iou", "hd95")
COLUMNS = (*SCORES, "positive", "intersection", "pred_area", "truth_area")


def _binary(mask: np.ndarray, field: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise DataError(f"expected a 2-D [H, W] mask, got shape {mask.shape}", field=field)
    if mask.dtype != bool:
        if not np.isin(mask, (0, 1)).all():
            raise DataError("expected a binary mask (0/1 or bool); threshold scores first", field=field)
        mask = mask.astype(bool)
    return mask


def mask_stats(pred: np.ndarray, truth: np.ndarray) -> dict:
    """Dice, IoU, HD95 (pixels) and raw pixel counts of one image's binary masks [H, W]."""
    pred, truth = _binary(pred, "pred"), _binary(truth, "truth")
    if pred.shape != truth.shape:
        raise DataError(f"prediction mask {pred.shape} differs from truth mask {truth.shape}; "
                        "score at the original image resolution", field="pred")
    has_p, has_t = bool(pred.any()), bool(truth.any())
    diagonal = math.hypot(*pred.shape)
    union = pred | truth
    if union.any():  # pixels outside both masks change none of the scores: MONAI gets the union's box
        rows, cols = np.flatnonzero(union.any(axis=1)), np.flatnonzero(union.any(axis=0))
        box = np.s_[max(rows[0] - 1, 0):rows[-1] + 2, max(cols[0] - 1, 0):cols[-1] + 2]
        pred, truth = pred[box], truth[box]
    p = torch.from_numpy(np.ascontiguousarray(pred))[None, None].float()
    t = torch.from_numpy(np.ascontiguousarray(truth))[None, None].float()
    from monai.metrics import compute_hausdorff_distance, compute_iou  # 4 s of imports: here

    # ignore_empty=False gives exactly the conventions above: 1 when both are empty, 0 when one is.
    # Dice is MONAI's formula on float64 counts: compute_dice divides in float32 whatever the input,
    # which put the stored value 1e-8 off 2|A & B| / (|A| + |B|), what anyone recomputes from the masks.
    inter, n_p, n_t = int(np.logical_and(pred, truth).sum()), int(pred.sum()), int(truth.sum())
    dice = 2 * inter / (n_p + n_t) if n_p + n_t else 1.0
    iou = float(compute_iou(p.double(), t.double(), include_background=True, ignore_empty=False).item())
    if has_p and has_t:
        with warnings.catch_warnings():  # MONAI passes its own deprecated argument internally
            warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*")
            hd95 = float(compute_hausdorff_distance(p, t, include_background=True, percentile=95).item())
    else:
        hd95 = 0.0 if has_p == has_t else diagonal
    return {"dice": dice, "iou": iou, "hd95": hd95, "positive": has_t,
            "intersection": inter, "pred_area": n_p, "truth_area": n_t}


def stack_stats(stats: list[dict]) -> dict[str, np.ndarray]:
    """Per-image statistics as columns [n] (rows in the order given)."""
    return {k: np.asarray([s[k] for s in stats], dtype=bool if k == "positive" else np.float64)
            for k in COLUMNS}


def aggregate_segmentation_batch(arrays: dict[str, np.ndarray], index_batches: np.ndarray
                                 ) -> dict[str, np.ndarray]:
    """Metric -> [B] values, one per row of ``index_batches`` ([B, n] row indices into ``arrays``)."""
    idx = np.asarray(index_batches, dtype=np.int64)
    pos = arrays["positive"][idx]
    n_all = np.full(idx.shape[0], idx.shape[1], dtype=np.float64)
    n_pos = pos.sum(axis=1).astype(np.float64)
    out = {}
    for k in SCORES:
        v = arrays[k][idx]
        out[k] = _mean(v.sum(axis=1), n_all)
        out[f"{k}_pos"] = _mean(np.where(pos, v, 0.0).sum(axis=1), n_pos)
    return out


def _mean(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    return np.divide(total, count, out=np.full_like(total, np.nan), where=count > 0)


def aggregate_segmentation(stats: list[dict]) -> dict[str, float]:
    """dice/iou/hd95 averaged over all images, and ``*_pos`` over truth-positive images (NaN if none)."""
    batch = aggregate_segmentation_batch(stack_stats(stats), np.arange(len(stats))[None])
    return {k: float(v[0]) for k, v in batch.items()}

"""The protocol contract: fit on train, choose hyper-parameters on val, predict test once."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class Split:
    """Features and targets of one split. ``y``: [N, K] float (NaN = unknown) or [N] ints/floats."""

    x: np.ndarray
    y: np.ndarray


@dataclass
class ProbeResult:
    test_scores: np.ndarray  # [N_test, K]
    hparams: dict = field(default_factory=dict)
    val_score: float = float("nan")
    val_scores: np.ndarray | None = None  # [N_val, K] from the chosen model (for thresholds)
    warnings: list[str] = field(default_factory=list)  # e.g. a selected value at the edge of its grid


#: a selection criterion on val: (y_val, scores_val) -> value, higher is better
Selector = Callable[[np.ndarray, np.ndarray], float]


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def standardiser(train_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) of training features; a (near-)constant feature gets scale 1, as scikit-learn's
    StandardScaler does: a tiny scale would blow a channel constant on train up to thousands of
    standard deviations on val and test."""
    mu = train_x.mean(0)
    sd = train_x.std(0)
    return mu, np.where(sd < 10 * np.finfo(sd.dtype).eps * np.maximum(np.abs(mu), 1.0), 1.0, sd).astype(sd.dtype)


def grid_standardiser(view) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) per channel over every cell of a patch-grid view, in one streaming pass
    (float64 sums, batch by batch), with :func:`standardiser`'s rule for (near-)constant channels.
    The one-pass variance of a constant channel is not 0 but up to ~1e-8 of its mean (cancellation),
    hence the looser threshold. Real grids need it: 6 of EfficientNet-Lite0's 1,280 channels are
    constant on the VinDr demo's train grids and reached 141,724 'standard deviations' on test."""
    total = count = sq = 0
    for _, x in view.batches(64):
        flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
        total, sq, count = total + flat.sum(0), sq + (flat ** 2).sum(0), count + len(flat)
    mean = total / count
    std = np.sqrt(np.maximum(sq / count - mean ** 2, 0))
    std[std < 1e-8 * np.maximum(1.0, np.abs(mean))] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def pick_best(candidates: list[tuple[dict, float]]) -> tuple[dict, float]:
    """Best (hparams, val value); NaN counts as worst; ties go to the earliest (most regularised)."""
    best, best_v = candidates[0][0], -np.inf
    for hp, v in candidates:
        v = -np.inf if v != v else v
        if v > best_v:
            best, best_v = hp, v
    return best, float(best_v)

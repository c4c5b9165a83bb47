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


def pick_best(candidates: list[tuple[dict, float]]) -> tuple[dict, float]:
    """Best (hparams, val value); NaN counts as worst; ties go to the earliest (most regularised)."""
    best, best_v = candidates[0][0], -np.inf
    for hp, v in candidates:
        v = -np.inf if v != v else v
        if v > best_v:
            best, best_v = hp, v
    return best, float(best_v)

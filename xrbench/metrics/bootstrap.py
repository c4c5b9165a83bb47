"""Bootstrap confidence intervals that resample the right unit (patients, not images).

Images of one patient are correlated; resampling images would make intervals too narrow. We draw
units with replacement and take all their rows, B times, and report percentile 95% intervals.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def unit_index(units: list[str] | np.ndarray) -> list[np.ndarray]:
    """Row indices of each unit, in order of first appearance."""
    order: dict[str, list[int]] = {}
    for i, u in enumerate(units):
        order.setdefault(str(u), []).append(i)
    return [np.asarray(v) for v in order.values()]


def bootstrap_ci(metric: Callable[[np.ndarray], float | dict[str, float]], n_rows: int,
                 units: list[str] | np.ndarray | None, *, n_boot: int = 1000, seed: int = 0,
                 alpha: float = 0.05) -> dict[str, tuple[float, float]]:
    """Percentile CI of every value ``metric(rows)`` returns, resampling ``units``.

    ``metric`` takes an index array of rows; it returns a float or a dict of named floats.
    Replicates where a value is undefined (NaN, e.g. a resample with one class) are skipped.
    """
    groups = unit_index(units if units is not None else np.arange(n_rows))
    rng = np.random.default_rng(seed)
    reps: dict[str, list[float]] = {}
    for _ in range(n_boot):
        pick = rng.integers(0, len(groups), len(groups))
        rows = np.concatenate([groups[i] for i in pick])
        value = metric(rows)
        for k, v in (value.items() if isinstance(value, dict) else [("value", value)]):
            reps.setdefault(k, []).append(v)
    out = {}
    for k, vals in reps.items():
        arr = np.asarray(vals, dtype=np.float64)
        arr = arr[~np.isnan(arr)]
        if arr.size < max(10, n_boot // 10):
            out[k] = (float("nan"), float("nan"))
        else:
            out[k] = (float(np.quantile(arr, alpha / 2)), float(np.quantile(arr, 1 - alpha / 2)))
    return out

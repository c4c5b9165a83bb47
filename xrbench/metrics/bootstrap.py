"""Bootstrap confidence intervals that resample the right unit (patients, not images).

Images of one patient are correlated; resampling images would make intervals too narrow. We draw
units with replacement and take all their rows, B times, and report percentile 95% intervals.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

#: above this share of undefined replicates an interval is not reported (NaN bounds)
UNRELIABLE = 0.10


class CI(tuple):
    """A (low, high) percentile interval that also carries the share of undefined replicates."""

    undefined: float

    def __new__(cls, low: float, high: float, undefined: float = 0.0) -> "CI":
        out = super().__new__(cls, (low, high))
        out.undefined = undefined
        return out

    @property
    def unreliable(self) -> bool:
        return self.undefined > UNRELIABLE


def unit_index(units: list[str] | np.ndarray) -> list[np.ndarray]:
    """Row indices of each unit, in order of first appearance."""
    order: dict[str, list[int]] = {}
    for i, u in enumerate(units):
        order.setdefault(str(u), []).append(i)
    return [np.asarray(v) for v in order.values()]


def bootstrap_ci(metric: Callable[[np.ndarray], float | dict[str, float]], n_rows: int,
                 units: list[str] | np.ndarray | None, *, n_boot: int = 1000, seed: int = 0,
                 alpha: float = 0.05,
                 batch_metric: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None
                 ) -> dict[str, CI]:
    """Percentile CI of every value ``metric(rows)`` returns, resampling ``units``.

    ``metric`` takes an index array of rows; it returns a float or a dict of named floats.
    ``batch_metric``, when given, scores many replicates at once from row weights [B, N] (a row
    weighs the number of times its unit was drawn; :mod:`xrbench.metrics.weighted`) and returns
    name -> [B] values: the same resamples, vectorised. Each value's :class:`CI` is taken over
    the replicates where it is defined, and is (NaN, NaN) when more than :data:`UNRELIABLE` of
    them are not (or fewer than 10 are defined).
    """
    groups = unit_index(units if units is not None else np.arange(n_rows))
    g = len(groups)
    picks = np.random.default_rng(seed).integers(0, g, (n_boot, g))
    reps: dict[str, list] = {}
    if batch_metric is not None:
        row_unit = np.empty(n_rows, dtype=np.int64)
        for k, rows in enumerate(groups):
            row_unit[rows] = k
        step = max(1, int(2e7 // max(n_rows + g, 1)))  # bounded memory: B x N weights per chunk
        for b0 in range(0, n_boot, step):
            pick = picks[b0:b0 + step]
            b = len(pick)
            counts = np.bincount((pick + g * np.arange(b)[:, None]).ravel(), minlength=b * g).reshape(b, g)
            for k, v in batch_metric(counts[:, row_unit].astype(np.float64)).items():
                reps.setdefault(k, []).extend(np.asarray(v, dtype=np.float64).tolist())
    else:
        for pick in picks:
            value = metric(np.concatenate([groups[i] for i in pick]))
            for k, v in (value.items() if isinstance(value, dict) else [("value", value)]):
                reps.setdefault(k, []).append(v)
    out = {}
    for k, vals in reps.items():
        arr = np.asarray(vals, dtype=np.float64)
        undefined = float(np.isnan(arr).mean()) if arr.size else 1.0
        arr = arr[~np.isnan(arr)]
        if arr.size < 10 or undefined > UNRELIABLE:
            out[k] = CI(float("nan"), float("nan"), undefined)
        else:
            out[k] = CI(float(np.quantile(arr, alpha / 2)), float(np.quantile(arr, 1 - alpha / 2)), undefined)
    return out

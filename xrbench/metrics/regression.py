"""Regression metrics (bone age in months): MAE, RMSE, R²."""
from __future__ import annotations

import numpy as np

from xrbench.registry import METRICS


def _flat(y, s):
    return np.asarray(y, dtype=np.float64).reshape(-1), np.asarray(s, dtype=np.float64).reshape(-1)


@METRICS.register("mae")
def mae(y, s, **_) -> float:
    y, s = _flat(y, s)
    return float(np.mean(np.abs(y - s))) if y.size else float("nan")


@METRICS.register("rmse")
def rmse(y, s, **_) -> float:
    y, s = _flat(y, s)
    return float(np.sqrt(np.mean((y - s) ** 2))) if y.size else float("nan")


@METRICS.register("r2")
def r2(y, s, **_) -> float:
    y, s = _flat(y, s)
    ss_tot = np.sum((y - y.mean()) ** 2)
    return float("nan") if ss_tot == 0 else float(1 - np.sum((y - s) ** 2) / ss_tot)

"""Scoring a task's test predictions: every metric with its bootstrap CI, thresholds from val.

Shared by ``xrbench run`` and ``xrbench score`` so that a number is computed by exactly one
piece of code whichever way the predictions were produced.
"""
from __future__ import annotations

import numpy as np

from xrbench.metrics.bootstrap import bootstrap_ci
from xrbench.metrics.classification import THRESHOLDED, choose_threshold
from xrbench.registry import METRICS


def thresholds_on_val(metrics: list[str], task: str, y_val: np.ndarray, s_val: np.ndarray | None) -> dict:
    """Decision thresholds for binary hard-decision metrics, chosen on val only."""
    if task != "binary" or s_val is None:
        return {}
    return {m: choose_threshold(m, y_val, s_val) for m in metrics if m in THRESHOLDED}


def evaluate(metrics: list[str], y: np.ndarray, s: np.ndarray, units: list[str], *, labels: list[str],
             thresholds: dict | None = None, n_boot: int = 1000, seed: int = 0
             ) -> dict[str, tuple[float, float | None, float | None]]:
    """name -> (value, ci_low, ci_high) for every scalar the metrics produce."""
    thresholds = thresholds or {}
    fns = {m: METRICS.get(m) for m in metrics}

    def all_metrics(rows: np.ndarray) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, fn in fns.items():
            kw = {"threshold": thresholds[name]} if name in thresholds else {}
            v = fn(y[rows], s[rows], labels=labels, **kw)
            out.update(v if isinstance(v, dict) else {name: v})
        return out

    point = all_metrics(np.arange(len(y)))
    cis = bootstrap_ci(all_metrics, len(y), units, n_boot=n_boot, seed=seed) if n_boot else {}
    return {k: (float(v), *cis.get(k, (None, None))) for k, v in point.items()}

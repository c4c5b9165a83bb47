"""Rows of a memory-mapped feature array, read batch by batch, never copied whole into RAM.

Heads of the dense families read patch grids through this view: ``view[i:j]`` (or an index array)
returns those rows as float32; ``view.take(rows)`` selects rows lazily (a label-fraction subset).
"""
from __future__ import annotations

import numpy as np


class FeatureRows:
    def __init__(self, array: np.ndarray, rows: np.ndarray | None = None):
        self.array = array
        self.rows = np.arange(len(array)) if rows is None else np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.array.shape[1:])

    def __getitem__(self, idx) -> np.ndarray:
        sel = self.rows[idx]
        if np.ndim(sel) == 0:
            return np.asarray(self.array[int(sel)], dtype=np.float32)
        order = np.argsort(sel, kind="stable")  # memmaps read fastest in file order
        out = np.empty((len(sel), *self.array.shape[1:]), dtype=np.float32)
        out[order] = self.array[sel[order]]
        return out

    def take(self, rows) -> "FeatureRows":
        return FeatureRows(self.array, self.rows[np.asarray(rows, dtype=np.int64)])

    def batches(self, size: int):
        """(start, float32 rows) of consecutive batches of at most ``size`` rows."""
        for i in range(0, len(self), size):
            yield i, self[i:i + size]


def take(features, rows):
    """Rows of a feature array (global features: an in-memory array) or a lazy view."""
    return features.take(rows) if isinstance(features, FeatureRows) else features[rows]

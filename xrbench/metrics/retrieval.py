"""Retrieval metrics from a relevance matrix.

``y``: [Q] number of relevant gallery items per query; ``s``: [Q, K] 0/1 relevance of the top-K
ranked gallery items. Definitions (documented in docs/tasks.md):
P@k = relevant items in the top k / k; R@k = relevant items in the top k / all relevant items;
AP@k = sum_i P@i rel_i /
min(k, n_relevant); mAP@k its mean over queries; queries with no relevant item are skipped.
"""
from __future__ import annotations

import numpy as np

from xrbench.registry import METRICS


def _prep(y, s, k):
    n_rel = np.asarray(y, dtype=np.float64).reshape(-1)
    rel = np.asarray(s, dtype=np.float64)[:, :k]
    keep = n_rel > 0
    return n_rel[keep], rel[keep]


def precision_at(y, s, k: int) -> float:
    n_rel, rel = _prep(y, s, k)
    return float(rel.sum(1).mean() / k) if len(rel) else float("nan")


def recall_at(y, s, k: int) -> float:
    n_rel, rel = _prep(y, s, k)
    return float((rel.sum(1) / n_rel).mean()) if len(rel) else float("nan")


def map_at(y, s, k: int) -> float:
    n_rel, rel = _prep(y, s, k)
    if not len(rel):
        return float("nan")
    prec = np.cumsum(rel, axis=1) / np.arange(1, rel.shape[1] + 1)
    ap = (prec * rel).sum(1) / np.minimum(k, n_rel)
    return float(ap.mean())


for _k in (1, 5, 10, 20):
    METRICS.add(f"map@{_k}", lambda y, s, _k=_k, **_: map_at(y, s, _k))
    METRICS.add(f"precision@{_k}", lambda y, s, _k=_k, **_: precision_at(y, s, _k))
    METRICS.add(f"recall@{_k}", lambda y, s, _k=_k, **_: recall_at(y, s, _k))


def relevance(gallery_y: np.ndarray, query_y: np.ndarray, ranked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(relevant gallery items per query, [Q, K] 0/1 relevance of the ranked gallery indices)."""
    gallery_y = np.asarray(gallery_y)
    rel = (gallery_y[ranked] == np.asarray(query_y)[:, None]).astype(np.float64)
    n_rel = np.array([(gallery_y == q).sum() for q in query_y], dtype=np.float64)
    return n_rel, rel

"""kNN on cosine similarity with temperature-weighted votes (DINO-style); k and T chosen on val.

Ties, as they behave:

- neighbours: the k most similar training images come from ``torch.topk``, which makes no promise
  about which of several equally similar images it returns at the k-th place (on the CPU it is
  neither the lowest index nor stable across sizes: all-equal similarities over 20 items give
  indices 12, 14, 13, 15, 11). Tied neighbours weigh the same, ``exp(sim / T)``, so a tie changes
  a score only when the tied images straddle the k-th place and carry different labels; with
  continuous features exact ties come only from duplicated images.
- selection: among (k, T) candidates with equal val scores the first in order wins: the smallest
  k, then the first temperature listed (:func:`xrbench.protocols.base.pick_best`).
"""
from __future__ import annotations

import numpy as np
import torch

from xrbench.protocols.base import ProbeResult, Selector, Split, l2_normalise, pick_best
from xrbench.protocols.linear import grid_edge
from xrbench.registry import PROTOCOLS


def knn_scores(train_x: np.ndarray, train_y: np.ndarray, query_x: np.ndarray, *, k: int, t: float,
               task: str, n_out: int, exclude_self: bool = False, chunk: int = 4096) -> np.ndarray:
    """Weighted neighbour average of targets: class probabilities, label rates or values."""
    tr = torch.as_tensor(l2_normalise(train_x))
    if task == "multiclass":
        y = torch.nn.functional.one_hot(torch.as_tensor(train_y, dtype=torch.long), n_out).float()
        known = torch.ones_like(y)
    else:
        y = torch.as_tensor(np.asarray(train_y, dtype=np.float32).reshape(len(train_y), -1))
        known = (~torch.isnan(y)).float()
        y = torch.nan_to_num(y, 0.0)
    k = min(k, len(tr) - int(exclude_self))
    out = []
    q_all = torch.as_tensor(l2_normalise(query_x))
    for i in range(0, len(q_all), chunk):
        sim = q_all[i:i + chunk] @ tr.T
        if exclude_self:
            sim[torch.arange(sim.shape[0]), torch.arange(i, i + sim.shape[0])] = -np.inf
        top, idx = sim.topk(k, dim=1)
        w = (top / t).exp().unsqueeze(-1)  # [q, k, 1]
        num = (w * y[idx] * known[idx]).sum(1)
        den = (w * known[idx]).sum(1).clamp(min=1e-12)
        out.append(num / den)
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros((0, n_out))


@PROTOCOLS.register("knn")
class KNN:
    def __init__(self, ks: list[int] | None = None, temperatures: list[float] | None = None):
        self.ks = tuple(ks or (10, 20, 50, 100))
        self.ts = tuple(temperatures or (0.07,))

    def run(self, train: Split, val: Split, test_x: np.ndarray, *, task: str, n_out: int,
            select: Selector, seed: int = 0, device: str = "cpu") -> ProbeResult:
        kw = dict(task=task, n_out=n_out)
        cands = [({"k": k, "temperature": t},
                  select(val.y, knn_scores(train.x, train.y, val.x, k=k, t=t, **kw)))
                 for k in self.ks if k <= len(train.x) or k == self.ks[0] for t in self.ts]
        hp, v = pick_best(cands)
        val_scores = knn_scores(train.x, train.y, val.x, k=hp["k"], t=hp["temperature"], **kw)
        # neighbours for test come from train + val, as the refit of the linear probe does
        xa = np.concatenate([train.x, val.x])
        ya = np.concatenate([np.asarray(train.y), np.asarray(val.y)])
        scores = knn_scores(xa, ya, test_x, k=hp["k"], t=hp["temperature"], **kw)
        tried = tuple(k for k in self.ks if k <= len(train.x) or k == self.ks[0])
        warns = grid_edge("k", hp["k"], tried) + grid_edge("temperature", hp["temperature"], self.ts)
        return ProbeResult(scores, hp, v, val_scores, warns)

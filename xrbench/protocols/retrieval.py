"""Image -> image retrieval on cosine similarity of global features (nothing is trained).

Queries are the test images; the gallery is the training split. The protocol returns the ranked
gallery indices (equal similarities in gallery order); relevance (same body part, ...) is judged
afterwards from labels, so the protocol never sees a test label.
"""
from __future__ import annotations

import numpy as np
import torch

from xrbench.protocols.base import ProbeResult, Selector, Split, l2_normalise
from xrbench.registry import PROTOCOLS


def ranked(similarity: torch.Tensor, k: int) -> torch.Tensor:
    """The top ``k`` gallery indices of each row, equal similarities in gallery order (a stable
    sort: ``topk`` breaks ties in an order that differs between devices and versions)."""
    return similarity.sort(dim=1, descending=True, stable=True).indices[:, :k]


@PROTOCOLS.register("retrieval")
class Retrieval:
    def __init__(self, top_k: int = 20):
        self.top_k = top_k

    def run(self, train: Split, val: Split, test_x: np.ndarray, *, task: str, n_out: int,
            select: Selector, seed: int = 0, device: str = "cpu") -> ProbeResult:
        g = torch.as_tensor(l2_normalise(train.x), device=device)
        q = torch.as_tensor(l2_normalise(test_x), device=device)
        k = min(self.top_k, len(g))
        rows = max(1, 2 ** 24 // max(len(g), 1))  # similarity rows per chunk: bounded memory
        idx = torch.cat([ranked(q[i:i + rows] @ g.T, k) for i in range(0, len(q), rows)])
        return ProbeResult(idx.cpu().numpy(), {"top_k": k, "gallery": "train"})

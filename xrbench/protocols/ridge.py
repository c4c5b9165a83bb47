"""Ridge regression on frozen global features; alpha chosen on val (closed form, torch).

Clipping predictions to the range of the training targets guards against a linear head that
extrapolates wildly on an out-of-distribution image (a bone age of -200 months, which would
dominate MAE), but it also biases predictions near the ends of the range. So it is a choice made
on val like alpha (``clip_to_train_range="auto"``, the default): alpha is chosen on unclipped
predictions, then clipping is kept only if it scores strictly better on val by the selection
criterion (the task's primary metric: MAE for bone age). The choice is recorded in the
hyper-parameters (``clip_to_train_range``: true/false); True or False force it.
"""
from __future__ import annotations

import numpy as np
import torch

from xrbench.protocols.base import ProbeResult, Selector, Split, l2_normalise, pick_best, standardiser
from xrbench.protocols.linear import grid_edge
from xrbench.registry import PROTOCOLS

DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-3, 4, 15))


def ridge_fit(x: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
    """Weights [D+1] of ``y ~ x w + b`` (bias unpenalised), solving the normal equations."""
    xm, ym = x.mean(0), y.mean()
    xc = x - xm
    a = xc.T @ xc + alpha * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    w = torch.linalg.solve(a, xc.T @ (y - ym))
    return torch.cat([w, (ym - xm @ w)[None]])


@PROTOCOLS.register("ridge")
class Ridge:
    def __init__(self, alphas: list[float] | None = None, refit_on_train_val: bool = True,
                 clip_to_train_range: bool | str = "auto"):
        self.alphas = tuple(alphas or DEFAULT_ALPHAS)
        self.refit, self.clip = refit_on_train_val, clip_to_train_range

    def run(self, train: Split, val: Split, test_x: np.ndarray, *, task: str, n_out: int,
            select: Selector, seed: int = 0, device: str = "cpu") -> ProbeResult:
        xs = [l2_normalise(a) for a in (train.x, val.x, test_x)]
        mu, sd = standardiser(xs[0])
        xt, xv, xte = (torch.as_tensor((a - mu) / sd, dtype=torch.float64, device=device) for a in xs)
        yt = torch.as_tensor(np.asarray(train.y, dtype=np.float64).reshape(-1), device=device)

        lo, hi = float(yt.min()), float(yt.max())

        def predict(x, wb, clip):
            p = (x @ wb[:-1] + wb[-1]).cpu().numpy()[:, None]
            return np.clip(p, lo, hi) if clip else p

        auto = self.clip == "auto"
        cands = [({"alpha": a}, select(val.y, predict(xv, ridge_fit(xt, yt, a), False if auto else self.clip)))
                 for a in self.alphas]
        hp, v = pick_best(cands[::-1])  # ties -> stronger regularisation
        wb = ridge_fit(xt, yt, hp["alpha"])
        clip = bool(self.clip)
        if auto:
            v_clip = select(val.y, predict(xv, wb, True))
            clip = v_clip > v
            v = max(v, v_clip)
        val_scores = predict(xv, wb, clip)
        if self.refit:
            ya = torch.cat([yt, torch.as_tensor(np.asarray(val.y, np.float64).reshape(-1), device=device)])
            wb = ridge_fit(torch.cat([xt, xv]), ya, hp["alpha"])
        return ProbeResult(predict(xte, wb, clip), {**hp, "refit_on_train_val": self.refit,
                                                    "clip_to_train_range": clip}, v, val_scores,
                           grid_edge("alpha", hp["alpha"], self.alphas))

"""Linear probe: logistic regression trained in torch with L-BFGS, weight decay swept on val.

Why torch and not scikit-learn: one full-batch L-BFGS on the extraction device handles
multi-label targets with NaN labels masked (one head, masked BCE), runs on GPU when present, and
is an order of magnitude faster than ``LogisticRegression(lbfgs)`` per label on large feature sets.
Features are L2-normalised, then standardised with train statistics (conditioning for L-BFGS).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from xrbench.protocols.base import ProbeResult, Selector, Split, l2_normalise, pick_best, standardiser
from xrbench.registry import PROTOCOLS

DEFAULT_WD = tuple(float(w) for w in np.logspace(-6, 2, 9))


def _targets(y: np.ndarray, task: str, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    if task == "multiclass":
        return torch.as_tensor(y, dtype=torch.long), torch.ones(len(y), 1)
    t = torch.as_tensor(np.asarray(y, dtype=np.float32).reshape(len(y), -1))
    mask = ~torch.isnan(t)
    return torch.nan_to_num(t, 0.0), mask.float()


def fit_logistic(x: torch.Tensor, y: np.ndarray, *, task: str, n_out: int, wd: float,
                 max_iter: int = 200, class_balanced: bool = False
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights [D, K] and bias [K] minimising mean (masked) cross-entropy + wd/2 * ||W||^2."""
    d = x.shape[1]
    t, mask = (v.to(x.device) for v in _targets(y, task, n_out))
    # start at w = 0 with the bias at the prior log-odds: the optimum is usually close, and the
    # L-BFGS run is deterministic (no random init), whatever the seed
    if task == "multiclass":
        freq = torch.bincount(t, minlength=n_out).float().clamp(min=1)
        b0 = (freq / freq.sum()).log()
    else:
        rate = ((t * mask).sum(0) / mask.sum(0).clamp(min=1)).clamp(1e-4, 1 - 1e-4)
        b0 = torch.logit(rate)
    w = torch.zeros(d, n_out, device=x.device, requires_grad=True)
    b = b0.to(x.device).clone().requires_grad_(True)
    pos_weight = None
    if class_balanced and task != "multiclass":
        pos = (t * mask).sum(0)
        neg = ((1 - t) * mask).sum(0)
        pos_weight = (neg / pos.clamp(min=1)).clamp(max=100)
    cls_weight = None
    if class_balanced and task == "multiclass":
        counts = torch.bincount(t, minlength=n_out).float()
        cls_weight = (counts.sum() / counts.clamp(min=1) / n_out)
    # gradient tolerance 1e-4 on the mean loss, as scikit-learn's lbfgs default (tol=1e-4)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, history_size=10,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-4, tolerance_change=1e-6)

    def closure():
        opt.zero_grad()
        logits = x @ w + b
        if task == "multiclass":
            loss = F.cross_entropy(logits, t, weight=cls_weight)
        else:
            per = F.binary_cross_entropy_with_logits(logits, t, reduction="none", pos_weight=pos_weight)
            loss = (per * mask).sum() / mask.sum().clamp(min=1)
        loss = loss + 0.5 * wd * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def _scores(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, task: str) -> np.ndarray:
    logits = x @ w + b
    p = logits.softmax(-1) if task == "multiclass" else logits.sigmoid()
    return p.cpu().numpy().astype(np.float64)


@PROTOCOLS.register("linear")
class LinearProbe:
    """Logistic regression on frozen global features; binary, multiclass and multilabel."""

    def __init__(self, weight_decays: list[float] | None = None, max_iter: int = 200,
                 class_balanced: bool = False, refit_on_train_val: bool = True):
        self.wds = tuple(weight_decays or DEFAULT_WD)
        self.max_iter, self.class_balanced, self.refit = max_iter, class_balanced, refit_on_train_val

    def run(self, train: Split, val: Split, test_x: np.ndarray, *, task: str, n_out: int,
            select: Selector, seed: int = 0, device: str = "cpu") -> ProbeResult:
        xs = [l2_normalise(a) for a in (train.x, val.x, test_x)]
        mu, sd = standardiser(xs[0])
        xt, xv, xte = (torch.as_tensor((a - mu) / sd, device=device) for a in xs)
        fit = dict(task=task, n_out=n_out, max_iter=self.max_iter, class_balanced=self.class_balanced)
        cands = []
        for wd in self.wds:
            w, b = fit_logistic(xt, train.y, wd=wd, **fit)
            cands.append(({"weight_decay": wd}, select(val.y, _scores(xv, w, b, task))))
        # ties -> strongest regularisation: scan from largest wd
        hp, v = pick_best(cands[::-1])
        w, b = fit_logistic(xt, train.y, wd=hp["weight_decay"], **fit)
        val_scores = _scores(xv, w, b, task)
        if self.refit:
            xa = torch.cat([xt, xv])
            ya = np.concatenate([np.asarray(train.y), np.asarray(val.y)])
            w, b = fit_logistic(xa, ya, wd=hp["weight_decay"], **fit)
        return ProbeResult(_scores(xte, w, b, task), {**hp, "refit_on_train_val": self.refit}, v,
                           val_scores)

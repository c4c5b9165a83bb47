"""Linear probe: logistic regression trained in torch with L-BFGS, weight decay swept on val.

Why torch and not scikit-learn: one full-batch L-BFGS on the extraction device handles
multi-label targets with NaN labels masked (one head, masked BCE), runs on GPU when present, and
is an order of magnitude faster than ``LogisticRegression(lbfgs)`` per label on large feature sets.
Features are L2-normalised, then standardised with train statistics (conditioning for L-BFGS).

Weight decay is searched coarse-to-fine on the half-decade grid 1e-6, 10^-5.5, ..., 1e2 (17 values,
:data:`FINE_WD`): 5 coarse values two decades apart (:data:`DEFAULT_WD`), then the two neighbours one
decade either side of the best, then the two half a decade either side of the new best: 9 fits at
most, as many as the former 9-value sweep, at twice its resolution. The selection fits run in float32
at scikit-learn's default tolerance (enough to rank weight decays); the fits whose probabilities are
reported (the chosen weight decay on train for val, then on train + val for test) run in float64
to convergence (:data:`CONVERGED`): at weight decay 1e-4 they match a converged scikit-learn
``LogisticRegression(C=1 / (wd * n))`` to 1e-5 in probability (tests/test_probe_quality.py), where
the float32 fit was 1e-2 off.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from xrbench.protocols.base import ProbeResult, Selector, Split, l2_normalise, pick_best, standardiser
from xrbench.registry import PROTOCOLS

#: the fine grid the coarse-to-fine search moves on (half a decade apart), and its coarse start
FINE_WD = tuple(float(w) for w in np.logspace(-6, 2, 17))
DEFAULT_WD = FINE_WD[::4]
#: L-BFGS settings of a converged fit (float64): gradient and loss-change tolerances, iterations
CONVERGED = {"tolerance_grad": 1e-9, "tolerance_change": 1e-12, "max_iter": 1000}


def _targets(y: np.ndarray, task: str, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    if task == "multiclass":
        return torch.as_tensor(y, dtype=torch.long), torch.ones(len(y), 1)
    t = torch.as_tensor(np.asarray(y, dtype=np.float32).reshape(len(y), -1))
    mask = ~torch.isnan(t)
    return torch.nan_to_num(t, 0.0), mask.float()


def fit_logistic(x: torch.Tensor, y: np.ndarray, *, task: str, n_out: int, wd: float,
                 max_iter: int = 200, class_balanced: bool = False, tolerance_grad: float = 1e-4,
                 tolerance_change: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights [D, K] and bias [K] minimising mean (masked) cross-entropy + wd/2 * ||W||^2, in the
    dtype of ``x`` (float64 with tight tolerances for a converged fit, :data:`CONVERGED`)."""
    d = x.shape[1]
    t, mask = (v.to(x.device) for v in _targets(y, task, n_out))
    if task != "multiclass":
        t, mask = t.to(x.dtype), mask.to(x.dtype)
    # start at w = 0 with the bias at the prior log-odds: the optimum is usually close, and the
    # L-BFGS run is deterministic (no random init), whatever the seed
    if task == "multiclass":
        freq = torch.bincount(t, minlength=n_out).float().clamp(min=1)
        b0 = (freq / freq.sum()).log()
    else:
        rate = ((t * mask).sum(0) / mask.sum(0).clamp(min=1)).clamp(1e-4, 1 - 1e-4)
        b0 = torch.logit(rate)
    w = torch.zeros(d, n_out, device=x.device, dtype=x.dtype, requires_grad=True)
    b = b0.to(x.device, x.dtype).clone().requires_grad_(True)
    pos_weight = None
    if class_balanced and task != "multiclass":
        pos = (t * mask).sum(0)
        neg = ((1 - t) * mask).sum(0)
        pos_weight = (neg / pos.clamp(min=1)).clamp(max=100)
    cls_weight = None
    if class_balanced and task == "multiclass":
        counts = torch.bincount(t, minlength=n_out).float()
        cls_weight = (counts.sum() / counts.clamp(min=1) / n_out).to(x.dtype)
    # default: gradient tolerance 1e-4 on the mean loss, as scikit-learn's lbfgs default (tol=1e-4);
    # enough to rank weight decays, not to converge at small ones (see CONVERGED)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, history_size=10, line_search_fn="strong_wolfe",
                            tolerance_grad=tolerance_grad, tolerance_change=tolerance_change)

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


def grid_edge(name: str, value: float, grid: tuple[float, ...]) -> list[str]:
    """A warning when a selected value sits at an end of its grid (the optimum may lie beyond)."""
    if len(grid) < 2 or min(grid) < value < max(grid):
        return []
    end = "smallest" if value == min(grid) else "largest"
    return [f"hparam_at_grid_edge: {name}={value:g} is the {end} value of its grid "
            f"[{min(grid):g}, {max(grid):g}]"]


@PROTOCOLS.register("linear")
class LinearProbe:
    """Logistic regression on frozen global features; binary, multiclass and multilabel.

    Without ``weight_decays`` the weight decay is searched coarse-to-fine on :data:`FINE_WD`; a
    given list is swept whole."""

    def __init__(self, weight_decays: list[float] | None = None, max_iter: int = 200,
                 class_balanced: bool = False, refit_on_train_val: bool = True):
        self.wds = tuple(weight_decays) if weight_decays else None
        self.max_iter, self.class_balanced, self.refit = max_iter, class_balanced, refit_on_train_val

    def run(self, train: Split, val: Split, test_x: np.ndarray, *, task: str, n_out: int,
            select: Selector, seed: int = 0, device: str = "cpu") -> ProbeResult:
        xs = [l2_normalise(a) for a in (train.x, val.x, test_x)]
        mu, sd = standardiser(xs[0])
        xt, xv, xte = (torch.as_tensor((a - mu) / sd, device=device) for a in xs)
        fit = dict(task=task, n_out=n_out, class_balanced=self.class_balanced)
        tried: dict[float, float] = {}

        def evaluate(wds) -> None:
            for wd in wds:
                if wd not in tried:
                    w, b = fit_logistic(xt, train.y, wd=wd, max_iter=self.max_iter, **fit)
                    tried[wd] = select(val.y, _scores(xv, w, b, task))

        def best() -> float:
            # ties -> strongest regularisation: scan from the largest wd
            return pick_best([({"weight_decay": wd}, tried[wd]) for wd in sorted(tried, reverse=True)])[0]["weight_decay"]

        if self.wds is not None:
            grid = self.wds
            evaluate(grid)
        else:
            grid = FINE_WD
            evaluate(DEFAULT_WD)
            for step in (2, 1):  # neighbours 1 decade, then half a decade, either side of the best
                i = FINE_WD.index(best())
                evaluate(FINE_WD[j] for j in (i - step, i + step) if 0 <= j < len(FINE_WD))
        wd = best()
        v = pick_best([({}, tried[wd])])[1]
        x64 = {k: a.double() for k, a in (("t", xt), ("v", xv), ("te", xte))}
        final = {**fit, **CONVERGED}
        w, b = fit_logistic(x64["t"], train.y, wd=wd, **final)
        val_scores = _scores(x64["v"], w, b, task)
        if self.refit:
            xa = torch.cat([x64["t"], x64["v"]])
            ya = np.concatenate([np.asarray(train.y), np.asarray(val.y)])
            w, b = fit_logistic(xa, ya, wd=wd, **final)
        hp = {"weight_decay": wd, "refit_on_train_val": self.refit, "n_fits": len(tried)}
        return ProbeResult(_scores(x64["te"], w, b, task), hp, v, val_scores,
                           grid_edge("weight_decay", wd, grid))

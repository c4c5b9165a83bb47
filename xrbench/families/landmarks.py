"""The landmarks family: K anatomical points per image from a frozen patch grid (ISBI 2015 cephalometry).

Head (fixed; nothing but the number of epochs is chosen, and that on val only):

- input: the encoder's patch grid ``[h, w, D]`` (14 x 14 x 768 for a ViT-B/16 at 224 px), read in
  batches from the lazy :class:`~xrbench.features.view.FeatureRows` view, never whole;
- decoder: LayerNorm over D (no affine: the 1x1 conv absorbs it) -> 1x1 conv D -> 64, GELU -> 3x3 conv 64 -> 64, GELU -> one x4
  upsampling stage (a 4x4 transposed conv, stride 4, 64 -> K): one heatmap per landmark at 4h x 4w
  (56 x 56 on a 14 x 14 grid, i.e. 4 input pixels a cell at 224 px). Convolutions at the heatmap's
  resolution would cost 10x more on the CPU for no gain the soft-argmax cannot already give;
- soft-argmax: the spatial softmax of each heatmap and its expected cell centre, in coordinates
  normalised to the (padded, square) encoder input, differentiable and sub-cell;
- loss: L1 between those and the truth, normalised the same way (landmarks without a truth are
  masked out); AdamW (lr 1e-3, weight decay 1e-4), batch 16, float32 on the CPU in ONE thread
  (on the shared 2-core CPU a step took 1.0 s with 2 threads and 0.09 s with one: OpenMP's
  synchronisation costs more than it saves on tensors this small), seeded (``torch.manual_seed(seed)``
  and a seeded shuffle), so a run is deterministic;
- selection: after each of :data:`CHECKPOINTS` epochs the val MRE (the task's primary metric, the
  scorer's own code) is computed; the best checkpoint (ties: fewer epochs) predicts test once;
- prediction: soft-argmax points mapped back through each image's :class:`Geometry` to pixels of
  the ORIGINAL image, ``[[x, y], ...]`` in the task's landmark order.

Scoring: :func:`xrbench.metrics.landmarks.landmark_stats` per test image (radial errors in mm with the
image's ``spacing_mm``), pooled over (image, landmark) pairs by ``aggregate_landmarks_batch``:
``mre_mm`` and ``sdr@<t>mm`` for any thresholds the task lists.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xrbench.data.sample import Sample
from xrbench.errors import ConfigError, DataError
from xrbench.families.base import FAMILIES, HeadOutput, SplitData, TaskFamily
from xrbench.features.preprocess import Geometry
from xrbench.metrics.landmarks import aggregate_landmarks_batch, landmark_stats, stack_stats
from xrbench.models.meta import grid_pool
from xrbench.registry import UnknownNameError, closest

WIDTH = 64
BATCH = 16
LR = 1e-3
WEIGHT_DECAY = 1e-4
#: epochs after which val is scored; the best is kept (the one hyper-parameter, chosen on val)
CHECKPOINTS = (5, 10, 15, 20, 30)
#: the metric names of the challenge (any ``sdr@<t>mm`` is accepted; names are checked at creation)
METRICS = ["mre_mm", "sdr@2mm", "sdr@2.5mm", "sdr@3mm", "sdr@4mm"]
UPSAMPLE = 4  # heatmap cells per grid cell along each axis (two x2 stages)


class HeatmapHead(nn.Module):
    """Patch grid [B, h, w, D] -> K heatmap logits [B, K, 4h, 4w]."""

    def __init__(self, dim: int, k: int, width: int = WIDTH):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)  # an affine would fold into `reduce`
        self.reduce = nn.Conv2d(dim, width, 1)
        self.mix = nn.Conv2d(width, width, 3, padding=1)
        self.up = nn.ConvTranspose2d(width, k, UPSAMPLE, stride=UPSAMPLE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.reduce(self.norm(x).permute(0, 3, 1, 2)))
        return self.up(F.gelu(self.mix(x)))


def soft_argmax(logits: torch.Tensor) -> torch.Tensor:
    """[B, K, H, W] logits -> [B, K, 2] expected xy of cell centres, normalised to [0, 1]."""
    b, k, h, w = logits.shape
    p = torch.softmax(logits.reshape(b, k, h * w), dim=-1).reshape(b, k, h, w)
    xs = (torch.arange(w, dtype=p.dtype) + 0.5) / w
    ys = (torch.arange(h, dtype=p.dtype) + 0.5) / h
    return torch.stack([(p.sum(2) * xs).sum(-1), (p.sum(3) * ys).sum(-1)], dim=-1)


def _geometries(split: SplitData) -> list[Geometry]:
    return [Geometry(*(int(v) for v in row)) for row in split.geometry]


@FAMILIES.register("landmarks")
class Landmarks(TaskFamily):
    """K landmarks per image, scored by radial error in mm (MRE, SDR@t)."""

    def __init__(self, spec):
        super().__init__(spec)
        where = spec.source or spec.name
        if spec.target.type != "landmarks" or not grid_pool(spec.features) or not spec.target.labels:
            raise ConfigError(f"{where}: family 'landmarks' needs target.type 'landmarks' with the landmark "
                              f"names as target.labels, and features 'patches'")
        self.k = len(spec.target.labels)
        self.thresholds = tuple(self._threshold(m, where) for m in spec.metrics if m != "mre_mm")

    @staticmethod
    def _threshold(name: str, where: str) -> float:
        """The threshold in mm of an ``sdr@<t>mm`` metric name (``sdr@2.5mm`` -> 2.5)."""
        try:
            t = float(name[len("sdr@"):-len("mm")]) if name.startswith("sdr@") and name.endswith("mm") else None
        except ValueError:
            t = None
        if t is None or not t > 0 or f"sdr@{t:g}mm" != name:
            raise ConfigError(f"{where}: key 'metrics': "
                              f"{UnknownNameError('landmark metric', name, closest(name, METRICS), METRICS)} "
                              f"(or sdr@<t>mm for any threshold t)")
        return t

    def check_metrics(self) -> None:
        """Done when the family is built: ``mre_mm`` and ``sdr@<t>mm`` for any threshold t."""

    def check(self) -> None:
        if self.spec.protocol.name != "heatmap-softargmax" or self.spec.protocol.args:
            raise ConfigError(f"key 'protocol': family 'landmarks' has one head, 'heatmap-softargmax', "
                              f"without arguments; got {self.spec.protocol.name!r} {self.spec.protocol.args}")

    # -- data ---------------------------------------------------------------------------------
    def has_target(self, sample: Sample) -> bool:
        return sample.landmarks is not None and not np.isnan(np.asarray(sample.landmarks, float)).all()

    def target(self, sample: Sample) -> dict:
        xy = np.asarray(sample.landmarks, dtype=np.float64)
        if xy.shape != (self.k, 2):
            raise DataError(f"sample '{sample.id}' has landmarks of shape {xy.shape}; task "
                            f"{self.spec.name} expects ({self.k}, 2)", path=sample.image, field="landmarks")
        if sample.spacing_mm is None or not sample.spacing_mm > 0:
            raise DataError(f"sample '{sample.id}' has no pixel spacing (mm per pixel)", path=sample.image,
                            field="spacing_mm")
        return {"xy": xy.tolist(), "spacing_mm": float(sample.spacing_mm)}

    # -- head ---------------------------------------------------------------------------------
    def fit_predict(self, train: SplitData, val: SplitData, test: SplitData, *, seed: int,
                    device: str) -> HeadOutput:
        # one intra-op thread while it trains: the runner's head_threads (xrbench/runner.py)
        torch.manual_seed(seed)
        n, h, w, dim = train.features.shape
        head = HeatmapHead(dim, self.k)
        opt = torch.optim.AdamW(head.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
        y = torch.from_numpy(self._normalised_truth(train)).float()
        known = ~torch.isnan(y)
        y = torch.nan_to_num(y)
        shuffle = torch.Generator().manual_seed(seed)
        sign = 1.0 if self.spec.primary.direction == "higher" else -1.0
        best: tuple[float, int, dict] | None = None
        for epoch in range(1, CHECKPOINTS[-1] + 1):
            head.train()
            for idx in torch.randperm(n, generator=shuffle).split(BATCH):
                rows = idx.numpy()
                pred = soft_argmax(head(torch.from_numpy(train.features[rows])))
                err = (pred - y[idx]).abs() * known[idx]
                loss = err.sum() / known[idx].sum().clamp(min=1)
                opt.zero_grad()
                loss.backward()
                opt.step()
            if epoch in CHECKPOINTS:
                score = self._val_score(head, val)
                if best is None or sign * score > sign * best[0] or (best[0] != best[0] and score == score):
                    best = (score, epoch, {k: v.clone() for k, v in head.state_dict().items()})
        score, epochs, state = best
        head.load_state_dict(state)
        hp = {"epochs": epochs, "width": WIDTH, "heatmap": [UPSAMPLE * h, UPSAMPLE * w], "lr": LR,
              "weight_decay": WEIGHT_DECAY, "batch": BATCH, "head_device": "cpu"}
        return HeadOutput(self._predict(head, test), hp, score, {})

    def _normalised_truth(self, split: SplitData) -> np.ndarray:
        """[N, K, 2] truth in normalised input coordinates (NaN where a landmark is unknown)."""
        return np.stack([g.to_grid(np.asarray(s.landmarks, np.float64), (1, 1))
                         for s, g in zip(split.samples, _geometries(split))])

    @torch.no_grad()
    def _predict(self, head: HeatmapHead, split: SplitData) -> list[list[list[float]]]:
        """Each sample's points in pixels of its original image."""
        head.eval()
        geos = _geometries(split)
        out = []
        for start, x in split.features.batches(BATCH):
            pts = soft_argmax(head(torch.from_numpy(x))).double().numpy()
            for j, p in enumerate(pts):
                out.append([[float(a), float(b)] for a, b in geos[start + j].from_grid(p, (1, 1))])
        return out

    def _val_score(self, head: HeatmapHead, val: SplitData) -> float:
        preds = self._predict(head, val)
        stats = [self.unit_stats(self.target(s), p, {}) for s, p in zip(val.samples, preds)]
        return self.aggregate(self.stack(stats), np.arange(len(stats)), {})[self.spec.primary.metric]

    # -- scorer -------------------------------------------------------------------------------
    def unit_stats(self, truth: Any, prediction: Any, state: dict) -> dict:
        st = landmark_stats(np.asarray(prediction, dtype=np.float64), np.asarray(truth["xy"], dtype=np.float64),
                            truth["spacing_mm"])
        return {**st, "y": truth["xy"]}  # the truth, so that a paired compare checks both sides share it

    def stack(self, stats: list[dict]) -> dict[str, np.ndarray]:
        return stack_stats(stats)

    def aggregate(self, table: dict[str, np.ndarray], rows: np.ndarray, state: dict) -> dict[str, float]:
        vals = aggregate_landmarks_batch(table, np.asarray(rows, dtype=np.int64)[None],
                                         thresholds_mm=self.thresholds)
        return {m: float(vals[m][0]) for m in self.spec.metrics}

    # -- predictions I/O ----------------------------------------------------------------------
    def prediction_from_row(self, row: dict, *, path, line: int) -> Any:
        p = super().prediction_from_row(row, path=path, line=line)

        def number(v) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        if not (isinstance(p, list) and len(p) == self.k and
                all(isinstance(q, list) and len(q) == 2 and all(number(v) for v in q) for q in p)):
            raise DataError(f"expected {self.k} landmark points [[x, y], ...] of finite numbers (pixels of "
                            f"the original image), got {str(p)[:80]}", path=path, row=line, field="prediction")
        return [[float(x), float(y)] for x, y in p]


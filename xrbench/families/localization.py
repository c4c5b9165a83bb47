"""Localization: a CenterNet-style head on the frozen patch grid, scored by COCO box mAP.

Head (fixed; "Objects as Points", Zhou et al. 2019, on the encoder's ``h x w`` patch grid):

- features standardised per channel (mean/std of the training grids, one streaming pass), then a
  3x3 conv ``D -> 64``, factorised as a 1x1 projection ``D -> 64`` and a 3x3 conv ``64 -> 64``
  (9x fewer multiply-adds than a full one: it must train in seconds on a 2-core CPU), + ReLU,
  and three 1x1 convs: ``K`` class heatmaps (sigmoid; bias -2.19 =
  prior 0.1, as CenterNet), the box size (log w, log h, in grid cells, shared by the classes) and
  the sub-cell centre offset (sigmoid, in [0, 1) of a cell);
- targets: a box's centre, mapped to the grid through the image's :class:`Geometry`, lies in one
  cell; that cell gets 1 in its class's heatmap and a Gaussian around it (CenterNet's radius at
  min overlap 0.7, sigma = (2r + 1) / 6, max over boxes); size and offset are regressed at centre
  cells only. Loss: CenterNet's penalty-reduced focal loss (alpha 2, beta 4) over the number of
  centres, plus L1 on log size and on offset (weight 1 each);
- AdamW (lr 1e-3, weight decay 1e-4), batch 16, float32 on the CPU, seeded (``torch.manual_seed``
  and a seeded shuffle); batches are read from the lazy feature view, never the whole split.
  The one hyper-parameter, the number of epochs, is chosen on val by the task's primary metric at
  the checkpoints :data:`CHECKPOINTS` (earliest best on ties; the last when val has no box at all),
  and test is predicted once with that checkpoint.

Decoding: sigmoid heatmaps, local maxima (3x3 max-pool NMS), the top 100 peaks over classes and
cells, box = centre +- size / 2 mapped back to the ORIGINAL pixels through the Geometry and clipped
to the image (boxes left with no area, i.e. in the padding, are dropped), then class-wise box NMS
(``torchvision.ops.batched_nms``, IoU 0.5). A detection's score is its peak heatmap probability.

Truth: the sample's boxes of the task's classes (``target.labels``); images without any are kept,
their detections are false positives. Which boxes a multi-reader dataset gives (VinDr-CXR's
reader fusion) is a dataset option in the task's ``dataset_options``, so it is part of the task
definition (config hash) and is repeated in the record's hparams.

Scoring: pycocotools' per-image matching (:func:`xrbench.metrics.detection.image_stats`), and
``accumulate``/``summarize`` reproduced over any multiset of images
(:func:`~xrbench.metrics.detection.aggregate_detection_batch`). Metric names: ``map50`` (COCO AP
at IoU 0.5, mean over classes with test boxes), ``map`` (AP@[.5:.95]), ``ap50_per_class`` ->
``ap50/<class>``, ``ap_per_class`` -> ``ap/<class>``. A class without test boxes has NaN AP and is
left out of the means, as COCO does. Perfect predictions give 1, no detections give 0.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xrbench.data.sample import Sample
from xrbench.errors import ConfigError, DataError
from xrbench.families.base import FAMILIES, FEW_POSITIVES, HeadOutput, SplitData, TaskFamily
from xrbench.features.preprocess import Geometry
from xrbench.metrics.detection import aggregate_detection_batch, image_stats, stack_stats
from xrbench.models.meta import grid_pool
from xrbench.protocols.base import grid_standardiser
from xrbench.registry import closest

#: metric names a localization task may list, and what each expands to
METRIC_NAMES = ("map50", "map", "ap50_per_class", "ap_per_class")
HIDDEN = 64
LR, WEIGHT_DECAY, BATCH = 1e-3, 1e-4, 16
#: epochs at which val is scored; the best is kept
CHECKPOINTS = (4, 8, 12, 16, 20, 24)
TOP_K = 100
NMS_IOU = 0.5
MIN_OVERLAP = 0.7
HEAT_PRIOR_BIAS = -2.19


class CenterNetHead(nn.Module):
    """A factorised 3x3 conv (1x1 projection to 64, 3x3 64 -> 64) + ReLU, then 1x1 convs."""

    def __init__(self, dim: int, n_classes: int):
        super().__init__()
        self.project = nn.Linear(dim, HIDDEN)  # the 1x1 conv, on channels-last grids as stored
        self.body = nn.Sequential(nn.Conv2d(HIDDEN, HIDDEN, 3, padding=1), nn.ReLU(inplace=True))
        self.heat = nn.Conv2d(HIDDEN, n_classes, 1)
        self.size = nn.Conv2d(HIDDEN, 2, 1)
        self.offset = nn.Conv2d(HIDDEN, 2, 1)
        nn.init.constant_(self.heat.bias, HEAT_PRIOR_BIAS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[B, h, w, D] grids -> heatmap logits [B, K, h, w], log size and offset [B, 2, h, w]."""
        h = self.body(self.project(x).permute(0, 3, 1, 2))
        return self.heat(h), self.size(h), torch.sigmoid(self.offset(h))


def gaussian_radius(h: float, w: float, min_overlap: float = MIN_OVERLAP) -> float:
    """CenterNet's radius (as in its code): a centre this far off still overlaps at ``min_overlap``."""
    b1, c1 = h + w, w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2, c2 = 2 * (h + w), (1 - min_overlap) * w * h
    r2 = (b2 + math.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (h + w), (min_overlap - 1) * w * h
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def _geometry(row) -> Geometry:
    return Geometry(*(int(v) for v in row))


def encode_targets(truths: list[list[dict]], geometry: np.ndarray, grid_hw: tuple[int, int],
                   classes: list[str]) -> dict[str, np.ndarray]:
    """Heatmaps [N, K, h, w], log size and offset [N, 2, h, w], and the centre mask [N, h, w]."""
    gh, gw = grid_hw
    n = len(truths)
    heat = np.zeros((n, len(classes), gh, gw), np.float32)
    size = np.zeros((n, 2, gh, gw), np.float32)
    offset = np.zeros((n, 2, gh, gw), np.float32)
    mask = np.zeros((n, gh, gw), np.float32)
    yy, xx = np.mgrid[0:gh, 0:gw]
    for i, (boxes, geo_row) in enumerate(zip(truths, geometry)):
        geo = _geometry(geo_row)
        for b in boxes:
            x0, y0, x1, y1 = b["box"]
            (gx0, gy0), (gx1, gy1) = geo.to_grid(np.array([[x0, y0], [x1, y1]]), grid_hw)
            cx, cy = (gx0 + gx1) / 2, (gy0 + gy1) / 2
            ix, iy = min(int(cx), gw - 1), min(int(cy), gh - 1)
            bw, bh = max(gx1 - gx0, 1e-2), max(gy1 - gy0, 1e-2)
            r = max(0, int(gaussian_radius(bh, bw)))
            sigma = (2 * r + 1) / 6
            g = np.exp(-((xx - ix) ** 2 + (yy - iy) ** 2) / (2 * sigma ** 2))
            g[(np.abs(xx - ix) > r) | (np.abs(yy - iy) > r)] = 0
            k = classes.index(b["label"])
            heat[i, k] = np.maximum(heat[i, k], g)
            size[i, :, iy, ix] = np.log([bw, bh])
            offset[i, :, iy, ix] = [cx - ix, cy - iy]
            mask[i, iy, ix] = 1.0
    return {"heat": heat, "size": size, "offset": offset, "mask": mask}


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced pixel-wise focal loss, over the number of centres."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    pos_loss = torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = torch.log(1 - p) * p ** 2 * (1 - target) ** 4 * (1 - pos)
    return -(pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1)


class _Standardise:
    """Per-channel mean/std of the training grids, from one streaming pass over the view (a channel
    constant on train gets scale 1)."""

    def __init__(self, view):
        mean, std = grid_standardiser(view)
        self.mean, self.std = torch.from_numpy(mean), torch.from_numpy(std)

    def __call__(self, x: np.ndarray) -> torch.Tensor:
        """[B, h, w, D] float32 rows (a fresh array from the view) standardised in place."""
        return torch.from_numpy(x).sub_(self.mean).div_(self.std)


def _nms(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    from torchvision.ops import batched_nms  # here: torchvision costs a cached run 2 s of imports

    return batched_nms(boxes, scores, classes, NMS_IOU)


@torch.no_grad()
def decode(heat_logits: torch.Tensor, log_size: torch.Tensor, offset: torch.Tensor, geometry: np.ndarray,
           classes: list[str]) -> list[list[dict]]:
    """Scored boxes, in original pixels, of each image of a batch (see the module docstring)."""
    b, k, gh, gw = heat_logits.shape
    heat = torch.sigmoid(heat_logits)
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)
    scores, idx = peaks.reshape(b, -1).topk(min(TOP_K, k * gh * gw), dim=1)
    out = []
    for i in range(b):
        keep = scores[i] > 0
        s, j = scores[i][keep], idx[i][keep]
        cls, cell = j // (gh * gw), j % (gh * gw)
        gy, gx = cell // gw, cell % gw
        cx = gx.double() + offset[i, 0, gy, gx].double()
        cy = gy.double() + offset[i, 1, gy, gx].double()
        bw, bh = torch.exp(log_size[i, 0, gy, gx].double()), torch.exp(log_size[i, 1, gy, gx].double())
        geo = _geometry(geometry[i])
        p0 = geo.from_grid(torch.stack([cx - bw / 2, cy - bh / 2], 1).numpy(), (gh, gw))
        p1 = geo.from_grid(torch.stack([cx + bw / 2, cy + bh / 2], 1).numpy(), (gh, gw))
        lim = np.array([geo.width, geo.height], dtype=np.float64)
        boxes = np.round(np.concatenate([np.clip(p0, 0, lim), np.clip(p1, 0, lim)], 1), 2)
        boxes = boxes.reshape(-1, 4)
        solid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        bt = torch.from_numpy(boxes[solid])
        st, ct = s[torch.from_numpy(solid)].double(), cls[torch.from_numpy(solid)]
        order = _nms(bt, st, ct) if len(bt) else torch.zeros(0, dtype=torch.long)
        out.append([{"box": [float(v) for v in bt[m].tolist()], "label": classes[int(ct[m])],
                     "score": round(float(st[m]), 6)} for m in order.tolist()])
    return out


@FAMILIES.register("localization")
class Localization(TaskFamily):
    """Box detection of ``target.labels`` on patch grids; see the module docstring."""

    def __init__(self, spec):
        super().__init__(spec)
        where = spec.source or spec.name
        if spec.target.type != "boxes":
            raise ConfigError(f"{where}: key 'target.type': family 'localization' takes 'boxes', "
                              f"not {spec.target.type!r}")
        if not grid_pool(spec.features):
            raise ConfigError(f"{where}: key 'features': family 'localization' needs 'patches'")
        if not spec.target.labels:
            raise ConfigError(f"{where}: key 'target.labels': list the box classes")
        for name in spec.metrics:
            if name not in METRIC_NAMES:
                hint = closest(name, list(METRIC_NAMES))
                raise ConfigError(f"{where}: key 'metrics': unknown localization metric {name!r}"
                                  + (f" (did you mean {' or '.join(map(repr, hint))}?)" if hint else "")
                                  + f"; expected some of {list(METRIC_NAMES)}")
        if spec.primary.metric not in ("map50", "map"):
            raise ConfigError(f"{where}: key 'primary.metric': expected 'map50' or 'map'")
        self.classes = list(spec.target.labels)

    def known_metrics(self) -> list[str]:
        """The metric names this family computes (a task lists some of them)."""
        return list(METRIC_NAMES)

    def check(self) -> None:
        if self.spec.protocol.name != "centernet" or self.spec.protocol.args:
            raise ConfigError(f"key 'protocol': family 'localization' has one head, 'centernet', without "
                              f"arguments; got {self.spec.protocol.name!r} {self.spec.protocol.args}")

    # -- data ---------------------------------------------------------------------------------
    def target(self, sample: Sample) -> list[dict]:
        return [{"box": [float(b.x0), float(b.y0), float(b.x1), float(b.y1)], "label": b.label}
                for b in sample.boxes if b.label in self.classes]

    def stratum(self, sample: Sample) -> int:
        return int(bool(self.target(sample)))

    # -- head ---------------------------------------------------------------------------------
    def fit_predict(self, train: SplitData, val: SplitData, test: SplitData, *, seed: int,
                    device: str) -> HeadOutput:
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        n, gh, gw, dim = train.features.shape
        targets = encode_targets([self.target(s) for s in train.samples], train.geometry, (gh, gw),
                                 self.classes)
        norm = _Standardise(train.features)
        model = CenterNetHead(dim, len(self.classes))
        opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
        val_truth = [self.target(s) for s in val.samples]
        sign = 1.0 if self.spec.primary.direction == "higher" else -1.0
        best = (-math.inf, CHECKPOINTS[-1], None)
        history = {}
        for epoch in range(1, CHECKPOINTS[-1] + 1):
            model.train()
            order = rng.permutation(n)
            for i in range(0, n, BATCH):
                rows = np.sort(order[i:i + BATCH])
                heat, size, off = model(norm(train.features[rows]))
                t = {k: torch.from_numpy(v[rows]) for k, v in targets.items()}
                m = t["mask"][:, None]
                n_pos = m.sum().clamp(min=1)
                loss = (focal_loss(heat, t["heat"]) + (F.l1_loss(size, t["size"], reduction="none") * m).sum()
                        / (2 * n_pos) + (F.l1_loss(off, t["offset"], reduction="none") * m).sum() / (2 * n_pos))
                opt.zero_grad()
                loss.backward()
                opt.step()
            if epoch in CHECKPOINTS:
                v = self._score(self._predict(model, norm, val), val_truth)
                history[str(epoch)] = v
                if v == v and sign * v > best[0]:
                    best = (sign * v, epoch, copy.deepcopy(model.state_dict()))
        if best[2] is not None:
            model.load_state_dict(best[2])
        preds = self._predict(model, norm, test)
        val_score = history[str(best[1])]
        hparams = {"epochs": best[1], "val_" + self.spec.primary.metric: history,
                   "dataset_options": dict(self.spec.dataset_options)}
        return HeadOutput(preds, hparams, val_score, {})

    def _predict(self, model: nn.Module, norm: _Standardise, split: SplitData) -> list[list[dict]]:
        model.eval()
        out: list[list[dict]] = []
        with torch.no_grad():
            for start, x in split.features.batches(64):
                heat, size, off = model(norm(x))
                out += decode(heat, size, off, split.geometry[start:start + len(x)], self.classes)
        return out

    def _score(self, preds: list[list[dict]], truths: list[list[dict]]) -> float:
        stats = [self.unit_stats(t, p, {}) for t, p in zip(truths, preds)]
        return self.aggregate(self.stack(stats), np.arange(len(stats)), {})[self.spec.primary.metric] \
            if stats else math.nan

    # -- scorer -------------------------------------------------------------------------------
    def unit_stats(self, truth: Any, prediction: Any, state: dict) -> dict:
        return {"y": truth, **image_stats(truth, prediction, categories=self.classes, max_dets=TOP_K)}

    def stack(self, stats: list[dict]) -> dict[str, np.ndarray]:
        return stack_stats(stats)

    def test_warnings(self, table: dict[str, np.ndarray]) -> list[str]:
        out = [f"few_test_boxes: {c} has {n} test boxes (< {FEW_POSITIVES})" for c in self.classes
               if 0 < (n := int(table[f"n_gt/{c}"].sum())) < FEW_POSITIVES]
        if not any(table[f"count/{c}"].any() for c in self.classes):
            out.append("empty_predictions: the head detects nothing on any test image")
        return out

    def aggregate(self, table: dict[str, np.ndarray], rows: np.ndarray, state: dict) -> dict[str, float]:
        got = aggregate_detection_batch(table, np.asarray(rows)[None], categories=self.classes)
        out: dict[str, float] = {}
        for name in self.spec.metrics:
            if name in ("map50", "map"):
                out[name] = float(got[name][0])
            else:
                prefix = "ap50" if name == "ap50_per_class" else "ap"
                out.update({f"{prefix}/{c}": float(got[f"{prefix}/{c}"][0]) for c in self.classes})
        return out

    # -- predictions I/O ----------------------------------------------------------------------
    def prediction_from_row(self, row: dict, *, path, line: int) -> Any:
        pred = super().prediction_from_row(row, path=path, line=line)
        if not isinstance(pred, list):
            raise DataError("expected 'prediction' to be a list of {box, label, score}", path=path, row=line)
        for k, d in enumerate(pred):
            problem = _detection_problem(d, self.classes)
            if problem:
                raise DataError(f"detection {k}: {problem}", path=path, row=line, field="prediction")
        return pred


def _detection_problem(d: Any, classes: Sequence[str]) -> str | None:
    """What is wrong with one saved detection, or None."""
    if not isinstance(d, dict) or set(d) != {"box", "label", "score"}:
        return "expected an object with exactly 'box', 'label' and 'score'"
    box, score = d["box"], d["score"]
    if not (isinstance(box, list) and len(box) == 4 and all(_finite(v) for v in box)):
        return f"expected 'box' to be four finite numbers [x0, y0, x1, y1], got {box!r}"
    if box[2] < box[0] or box[3] < box[1]:
        return f"expected x1 >= x0 and y1 >= y0 in {box!r}"
    if d["label"] not in classes:
        return f"label {d['label']!r} is not one of the task's classes {list(classes)}"
    if not _finite(score):
        return f"expected 'score' to be a finite number, got {score!r}"
    return None


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

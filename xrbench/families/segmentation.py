"""Segmentation on the frozen patch grid: a fixed, light head, Dice + BCE, scored at the original resolution.

Heads (the task's ``protocol.name``, registered in :data:`HEADS`):

- ``linear``: a 1x1 convolution D -> 1 on the grid, i.e. a linear classifier per patch; logits at
  the grid's h x w (14 x 14 at 224 px for a ViT-B/16 and for a CNN's stride-16 level); AdamW
  learning rate 1e-2, epoch checkpoints 5, 10, 20, 40.
- ``decoder``: a light progressive-upsampling decoder: 1x1 conv D -> 64 + GroupNorm + ReLU, then
  two stages of (bilinear x2 upsampling, 3x3 conv, GroupNorm, ReLU), 64 -> 32 -> 16 channels, then
  a 1x1 conv to one logit; logits at 4h x 4w; learning rate 3e-3, checkpoints 5, 10, 20, 40, 80
  (on the demo's 98 SIIM training images, 30 epochs left the head predicting nothing even on
  train for EfficientNet's grid: val Dice flat at the empty baseline; it learns by 60-90). The
  widths keep a demo task within seconds of CPU.

Both read the grids batch by batch from the feature view, standardised per channel with training
statistics (a constant channel gets scale 1), and train in float32 on the CPU with one thread and
AdamW (the head's learning rate, AdamW's default weight decay, batches of 16,
``torch.manual_seed(seed)``, shuffled by a seeded generator); loss = soft Dice + BCE (MONAI
``DiceCELoss``, sigmoid, smoothing 1, per image). The one hyper-parameter, the number of epochs, is
chosen on val only: at each of the head's checkpoints the val split is predicted and scored by the
same scorer as test (the task's primary metric), and the best checkpoint (the earliest on a tie)
predicts test once. The learning rate is constant, so checkpoint k is the head trained k epochs.

Targets: a training mask is padded to the square exactly as preprocessing pads its image
(:class:`~xrbench.features.preprocess.Geometry`) and area-resized to the head's output grid, a soft
coverage target in [0, 1]. It is built one mask at a time and only the output-resolution targets
are kept (uint8, coverage in 1/255 steps): a split's full-resolution masks are never all in memory.

Predictions: logits are resampled bilinearly straight to the centres of the original image's pixels
(grid <- input <- padded square <- original, :meth:`Geometry.to_grid`), which composes upsampling to
the input size, unpadding and resizing to height x width into one interpolation, then thresholded
at probability 0.5 (logit 0; fixed, not tuned on val, so val chooses one thing only). A prediction
is ``{"size": [height, width], "rle": <SIIM relative RLE>}`` (:func:`xrbench.data.masks.rle_encode`).

Scoring: the truth is the sample's mask at the original resolution (a sample without a mask, e.g. a
SIIM negative, has an empty mask of its image's size), passed as a lazy
:class:`~xrbench.data.sample.MaskRef` and decoded one image at a time; per image
:func:`~xrbench.metrics.segmentation.mask_stats` (MONAI Dice, IoU, HD95 in pixels), aggregated by
:func:`~xrbench.metrics.segmentation.aggregate_segmentation_batch`. A task names its metrics from
:data:`METRIC_NAMES`: ``dice``/``iou``/``hd95`` average over all images (an empty prediction on an
empty mask counts as Dice 1, HD95 0), ``*_pos`` over images whose truth is non-empty.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xrbench.data.images import image_size
from xrbench.data.masks import load_mask, rle_decode, rle_encode, rle_runs
from xrbench.data.sample import MaskRef, Sample
from xrbench.errors import ConfigError, DataError
from xrbench.families.base import FAMILIES, FEW_POSITIVES, HeadOutput, SplitData, TaskFamily
from xrbench.features.preprocess import Geometry
from xrbench.metrics.segmentation import SCORES, aggregate_segmentation_batch, mask_stats, stack_stats
from xrbench.models.meta import grid_pool
from xrbench.protocols.base import grid_standardiser
from xrbench.registry import Registry, UnknownNameError, closest

#: what a segmentation task may list in ``metrics`` (the keys of the aggregate)
METRIC_NAMES = (*SCORES, *(f"{k}_pos" for k in SCORES))
BATCH = 16


class LinearHead(nn.Module):
    """A linear classifier per patch: logits at the grid's resolution."""

    upsample = 1
    lr = 1e-2
    checkpoints = (5, 10, 20, 40)

    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv2d(dim, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class DecoderHead(nn.Module):
    """1x1 reduce, two (x2 upsample, 3x3 conv, GroupNorm, ReLU) stages, 1x1 to a logit: 4x the grid."""

    upsample = 4
    lr = 3e-3
    checkpoints = (5, 10, 20, 40, 80)

    def __init__(self, dim: int, width: int = 64):
        super().__init__()

        def block(cin: int, cout: int, k: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, k, padding=k // 2), nn.GroupNorm(8, cout), nn.ReLU()]

        self.reduce = nn.Sequential(*block(dim, width, 1))
        self.up1 = nn.Sequential(*block(width, width // 2, 3))
        self.up2 = nn.Sequential(*block(width // 2, width // 4, 3))
        self.out = nn.Conv2d(width // 4, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reduce(x)
        for stage in (self.up1, self.up2):
            x = stage(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
        return self.out(x)


HEADS: Registry = Registry("segmentation head")
HEADS.add("linear", LinearHead)
HEADS.add("decoder", DecoderHead)


# -- geometry of masks -------------------------------------------------------------------------
def geometry(row) -> Geometry:
    """A :class:`Geometry` from a stored ``(height, width, side, top, left, size)`` row."""
    return Geometry(*(int(v) for v in row))


def mask_target(mask: np.ndarray, geo: Geometry, out_hw: tuple[int, int]) -> np.ndarray:
    """A full-resolution mask padded to the square as its image was, area-resized to ``out_hw``:
    the fraction of each output cell the mask covers, float32 [oh, ow]."""
    square = np.zeros((geo.side, geo.side), dtype=np.float32)
    square[geo.top:geo.top + geo.height, geo.left:geo.left + geo.width] = mask
    return F.adaptive_avg_pool2d(torch.from_numpy(square)[None, None], out_hw)[0, 0].numpy()


def _interp_matrix(coords: np.ndarray, n: int) -> np.ndarray:
    """Bilinear weights [len(coords), n] of continuous positions over n cells (cell i centred at
    i + 0.5), clamped at the border like ``F.interpolate(..., align_corners=False)``."""
    p = np.clip(coords - 0.5, 0, n - 1)
    i0 = np.minimum(np.floor(p).astype(np.int64), n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    frac = p - i0
    m, rows = np.zeros((len(coords), n)), np.arange(len(coords))
    m[rows, i0] += 1 - frac  # each statement touches a row once; at the border i1 == i0 adds up
    m[rows, i1] += frac
    return m


def logits_to_original(logits: np.ndarray, geo: Geometry) -> np.ndarray:
    """Output-grid logits [oh, ow] bilinearly resampled at the centres of the original pixels [H, W]."""
    oh, ow = logits.shape
    xs = geo.to_grid(np.stack([np.arange(geo.width) + 0.5, np.zeros(geo.width)], 1), (oh, ow))[:, 0]
    ys = geo.to_grid(np.stack([np.zeros(geo.height), np.arange(geo.height) + 0.5], 1), (oh, ow))[:, 1]
    return _interp_matrix(ys, oh) @ logits.astype(np.float64) @ _interp_matrix(xs, ow).T


def encode_prediction(mask: np.ndarray) -> dict:
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "rle": rle_encode(mask)}


# -- the family ---------------------------------------------------------------------------------
@FAMILIES.register("segmentation")
class Segmentation(TaskFamily):
    """Binary masks from the frozen patch grid; see the module docstring."""

    def __init__(self, spec):
        super().__init__(spec)
        if spec.target.type != "mask" or not grid_pool(spec.features):
            raise ConfigError(f"task {spec.name}: family 'segmentation' takes target type 'mask' on "
                              f"'patches' features, not {spec.target.type!r} on {spec.features!r}")
        try:
            self.head = HEADS.get(spec.protocol.name)
        except UnknownNameError as e:
            raise ConfigError(f"task {spec.name}: key 'protocol.name': {e}") from None
        if spec.aggregate != "none":
            raise ConfigError(f"task {spec.name}: a segmentation task scores each image ('aggregate: none')")
        if spec.protocol.args:
            raise ConfigError(f"task {spec.name}: the segmentation heads are fixed and take no "
                              f"'protocol.args' (got {sorted(spec.protocol.args)})")
        for name in spec.metrics:
            if name not in METRIC_NAMES:
                err = UnknownNameError("segmentation metric", name, closest(name, list(METRIC_NAMES)),
                                       list(METRIC_NAMES))
                raise ConfigError(f"task {spec.name}: key 'metrics': {err}")

    def known_metrics(self) -> list[str]:
        return list(METRIC_NAMES)

    # -- data -----------------------------------------------------------------------------------
    def target(self, sample: Sample) -> MaskRef:
        """The mask reference (decoded when scored); no mask = an empty mask of the image's size."""
        if sample.mask is not None:
            return sample.mask
        return MaskRef("polygons", (), *image_size(sample.image))

    def stratum(self, sample: Sample) -> int:
        """Positive (non-empty mask) or not, so label fractions keep both."""
        m = sample.mask
        return int(m is not None and bool(m.source))

    # -- head -----------------------------------------------------------------------------------
    def fit_predict(self, train: SplitData, val: SplitData, test: SplitData, *, seed: int,
                    device: str) -> HeadOutput:
        # one intra-op thread while it trains: the runner's head_threads (xrbench/runner.py)
        torch.manual_seed(seed)
        n, gh, gw, dim = train.features.shape
        head = self.head(dim).to(memory_format=torch.channels_last)  # the grids' own layout: 1.7x per step
        out_hw = (gh * head.upsample, gw * head.upsample)
        mean, scale = (torch.from_numpy(v) for v in grid_standardiser(train.features))
        targets = np.stack([np.round(255 * mask_target(load_mask(self.target(s)), geometry(g), out_hw))
                            .astype(np.uint8) for s, g in zip(train.samples, train.geometry)])
        val_units = self.units(val.samples)
        val_truth = [self.truth(u, val.samples) for u in val_units]
        primary = self.spec.primary
        sign = 1.0 if primary.direction == "higher" else -1.0
        opt = torch.optim.AdamW(head.parameters(), lr=head.lr)
        from monai.losses import DiceCELoss  # imported by training only: a cached run never pays for MONAI

        loss_fn = DiceCELoss(sigmoid=True, smooth_nr=1.0, smooth_dr=1.0)
        gen = torch.Generator().manual_seed(seed)
        best, curve = None, {}
        for epoch in range(1, max(head.checkpoints) + 1):
            head.train()
            for idx in torch.randperm(n, generator=gen).split(BATCH):
                rows = np.sort(idx.numpy())
                x = _standardise(train.features[rows], mean, scale)
                y = torch.from_numpy(targets[rows]).float().div_(255)[:, None]
                opt.zero_grad()
                loss_fn(head(x), y).backward()
                opt.step()
            if epoch in head.checkpoints:
                preds = self._predict(head, val, mean, scale)
                stats = [self.unit_stats(t, p, {}) for t, p in zip(val_truth, preds)]
                v = self.aggregate(self.stack(stats), np.arange(len(stats)), {})[primary.metric]
                curve[epoch] = v
                if best is None or (v == v and (best[1] != best[1] or sign * v > sign * best[1])):
                    best = (epoch, v, copy.deepcopy(head.state_dict()))
        head.load_state_dict(best[2])
        preds = self._predict(head, test, mean, scale)
        hparams = {"head": self.spec.protocol.name, "epochs": best[0], "output_grid": list(out_hw),
                   "threshold": 0.5, "val_curve": {str(k): float(v) for k, v in curve.items()}}
        return HeadOutput(preds, hparams, float(best[1]), {})

    def _predict(self, head: nn.Module, split: SplitData, mean: torch.Tensor,
                 scale: torch.Tensor) -> list[dict]:
        """One prediction per unit of ``split`` (a segmentation unit is one image)."""
        head.eval()
        out = []
        with torch.no_grad():
            for start, x in split.features.batches(BATCH):
                logits = head(_standardise(x, mean, scale))[:, 0].numpy()
                for k, lg in enumerate(logits):
                    full = logits_to_original(lg, geometry(split.geometry[start + k]))
                    out.append(encode_prediction(full > 0))  # probability > 0.5
        return out

    # -- scorer ---------------------------------------------------------------------------------
    def test_warnings(self, table: dict[str, np.ndarray]) -> list[str]:
        n_pos = int(table["positive"].sum())
        label = self.spec.target.labels[0] if self.spec.target.labels else "mask"
        out = [f"few_test_positives: {label} has {n_pos} test images with a mask (< {FEW_POSITIVES})"] \
            if n_pos < FEW_POSITIVES else []
        if n_pos and not table["pred_area"].any():
            out.append("empty_predictions: the head predicts an empty mask on every test image")
        return out

    def unit_stats(self, truth: MaskRef, prediction: Any, state: dict) -> dict:
        h, w = truth.height, truth.width
        if list(prediction["size"]) != [h, w]:
            raise DataError(f"prediction mask is {prediction['size'][0]}x{prediction['size'][1]}; the "
                            f"image is {h}x{w} (predict at the original resolution)", field="size")
        return mask_stats(rle_decode(prediction["rle"], h, w), load_mask(truth))

    def stack(self, stats: list[dict]) -> dict[str, np.ndarray]:
        return stack_stats(stats) if stats else {}

    def aggregate(self, table: dict[str, np.ndarray], rows: np.ndarray, state: dict) -> dict[str, float]:
        values = aggregate_segmentation_batch(table, np.asarray(rows)[None])
        return {k: float(values[k][0]) for k in self.spec.metrics}

    def prediction_from_row(self, row: dict, *, path, line: int) -> dict:
        """``{"size": [h, w], "rle": str}``, checked here so that a bad row is named."""
        pred = super().prediction_from_row(row, path=path, line=line)
        size = pred.get("size") if isinstance(pred, dict) else None
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)
                and isinstance(pred.get("rle"), str)):
            raise DataError('expected a prediction {"size": [height, width], "rle": "<SIIM RLE>"}, got '
                            f"{pred!r:.80}", path=path, row=line, field="prediction")
        rle_runs(pred["rle"], size[0], size[1], path=path, row=line, field="prediction.rle")
        return pred


def _standardise(x: np.ndarray, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """[B, h, w, D] grid rows -> standardised [B, D, h, w] float32, channels-last in memory (as
    stored: no copy), the layout oneDNN's CPU convolutions run fastest in."""
    x = (torch.from_numpy(np.ascontiguousarray(x)) - mean) / scale
    return x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)

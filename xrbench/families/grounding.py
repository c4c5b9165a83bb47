"""Phrase grounding (family ``grounding``): one unit per (image, phrase), a box per phrase.

- **Unit.** ``<image id>#<k>``: the k-th phrase of an image (``Sample.phrases`` order, stable in
  the loader: file order). A phrase may carry several boxes (a bilateral effusion).
- **Truth.** The enclosing box of the phrase's boxes: a one-box head can only be asked for one
  box, and merging a phrase's boxes into one is what box-regression grounding on MS-CXR does
  (MedRPG, Chen et al. 2023). The head is trained towards the same box.
- **Head.** The frozen patch grid (standardised per channel on train) is FiLM-modulated by the
  phrase embedding (frozen text encoder ``protocol.args.text_encoder``, default ``minilm``, cached
  by :mod:`xrbench.features.text_store`); a 1x1 scoring map over the cells, a softmax over them,
  the weighted mean of the cell centres is the box centre and the weighted mean of the modulated
  tokens regresses its width and height. Boxes are in normalised input coordinates during
  training (L1 + GIoU loss, Adam); the epoch is chosen on val by mIoU; test is predicted once.
- **Pixels.** A predicted box is mapped back through the image's :class:`Geometry` (padding and
  resize undone) into the original pixels of the image that was read, clipped to the image.
- **Metrics.** Per unit the IoU of the predicted box with the truth; ``miou`` is their mean,
  ``acc@0.3`` / ``acc@0.5`` the share with IoU >= 0.3 / 0.5.
- **Similarity-map baseline** (encoders with a text tower, ``"text" in meta.modalities``; no
  trained weights). The zero-shot grounding of BioViL (Boecking et al., ECCV 2022, which
  introduced MS-CXR) and MedKLIP (Wu et al., ICCV 2023): the stored patch tokens are brought into
  the image-text space by :meth:`Encoder.project_patches` (no re-extraction), the phrase is
  embedded by the encoder's own ``encode_text``, and their cosine per cell is an h x w map. The
  box encloses every cell at or above ``min + f * (max - min)`` of that map, f from
  :data:`SIMMAP_FRACTIONS` chosen on val by mIoU (ties keep the smaller f); all cells rather than
  the largest connected component, because the truth encloses all of a phrase's boxes (a
  bilateral finding is two regions) and f already trades spread for precision. Cell boxes are
  normalised input coordinates and go to original pixels exactly as the head's boxes do. Its test
  boxes and f live in the head's scorer state (so a head-cache hit and the predictions header
  carry them); :meth:`Grounding.report` scores them with the family's scorer and bootstrap into
  the record's ``baselines["similarity-map"]``. Encoders without a text tower get no baseline;
  one that declares a text tower but cannot project its patches (or embed text) gets
  ``{"skipped": reason}``.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from xrbench.data.sample import Sample
from xrbench.errors import ConfigError, DataError, ModelError
from xrbench.families.base import FAMILIES, HeadOutput, Scored, SplitData, TaskFamily, Unit, score_units
from xrbench.families.report_retrieval import text_encoder, tower_ident
from xrbench.features.preprocess import Geometry
from xrbench.features.text_store import TextFeatureStore
from xrbench.models.meta import grid_pool
from xrbench.protocols.base import standardiser

THRESHOLDS = (0.3, 0.5)
METRIC_NAMES = ("miou", *(f"acc@{t:g}" for t in THRESHOLDS))
PROTOCOL = "film-box-head"
DEFAULTS = {"text_encoder": "minilm", "hidden": 128, "epochs": 60, "eval_every": 5, "lr": 2e-3,
            "weight_decay": 1e-4, "batch_size": 64}


SIMMAP = "similarity-map"
#: f of the map's range: a cell is in the baseline's box when its cosine >= min + f * (max - min)
SIMMAP_FRACTIONS = tuple(round(0.05 * i, 2) for i in range(21))


def enclosing_box(boxes: Sequence[Sequence[float]]) -> list[float]:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return [float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())]


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two xyxy boxes (torchvision's ``box_iou``; 0 for an empty union)."""
    from torchvision.ops import box_iou as tv_iou

    v = tv_iou(torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64))[0, 0]
    return float(torch.nan_to_num(v, nan=0.0))


class FiLMBoxHead(nn.Module):
    """Patch grid [B, h, w, D] + phrase [B, E] -> box [B, 4] (normalised input xyxy) and cell logits."""

    def __init__(self, d: int, e: int, hidden: int):
        super().__init__()
        self.proj = nn.Linear(d, hidden)
        self.film = nn.Linear(e, 2 * hidden)
        self.score = nn.Linear(hidden, 1)  # the 1x1 conv over the grid
        self.size = nn.Sequential(nn.Linear(hidden + e, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def forward(self, grid: torch.Tensor, phrase: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, h, w, _ = grid.shape
        gamma, beta = self.film(phrase).chunk(2, dim=-1)
        tok = torch.relu(self.proj(grid.reshape(b, h * w, -1)) * (1 + gamma[:, None]) + beta[:, None])
        logits = self.score(tok).squeeze(-1)
        p = logits.softmax(-1)
        ys, xs = torch.meshgrid((torch.arange(h, device=grid.device) + 0.5) / h,
                                (torch.arange(w, device=grid.device) + 0.5) / w, indexing="ij")
        cx, cy = (p * xs.reshape(1, -1)).sum(-1), (p * ys.reshape(1, -1)).sum(-1)
        wh = torch.sigmoid(self.size(torch.cat([(p[..., None] * tok).sum(1), phrase], -1)))
        box = torch.stack([cx - wh[:, 0] / 2, cy - wh[:, 1] / 2, cx + wh[:, 0] / 2, cy + wh[:, 1] / 2], -1)
        return box.clamp(0, 1), logits


def _geometry(row) -> Geometry:
    return Geometry(*(int(v) for v in row))


def to_original(box: Sequence[float], geo_row) -> list[float]:
    """A box in normalised input coordinates -> original pixels (padding, resize undone), clipped."""
    geo = _geometry(geo_row)
    xy = geo.to_original(np.asarray(box, dtype=np.float64).reshape(2, 2) * geo.size)
    xy = np.clip(xy, 0, [geo.width, geo.height])
    return [round(float(v), 3) for v in xy.reshape(-1)]


def similarity_maps(tokens: torch.Tensor, phrases: torch.Tensor) -> torch.Tensor:
    """Cosine of every projected patch token [U, h, w, E] with its phrase [U, E] -> [U, h, w]."""
    t, p = nn.functional.normalize(tokens, dim=-1), nn.functional.normalize(phrases, dim=-1)
    return torch.einsum("uhwe,ue->uhw", t, p)


def map_boxes(sim: np.ndarray, fractions: Sequence[float]) -> np.ndarray:
    """[U, h, w] maps -> [U, F, 4] normalised input xyxy: per fraction f, the enclosing box of the
    cells at or above min + f * (max - min) (never above the max: the best cell is always in)."""
    _, h, w = sim.shape
    lo, hi = sim.min((1, 2)), sim.max((1, 2))
    thr = np.minimum(lo[:, None] + np.asarray(fractions)[None] * (hi - lo)[:, None], hi[:, None])
    keep = sim[:, None] >= thr[..., None, None]
    rows, cols = keep.any(3), keep.any(2)
    y0, y1 = rows.argmax(-1), h - rows[..., ::-1].argmax(-1)
    x0, x1 = cols.argmax(-1), w - cols[..., ::-1].argmax(-1)
    return np.stack([x0 / w, y0 / h, x1 / w, y1 / h], -1)


@FAMILIES.register("grounding")
class Grounding(TaskFamily):
    """A FiLM box head on the frozen patch grid, one box per (image, phrase) (see the module docstring)."""

    name = "grounding"

    def check(self) -> None:
        p = self.spec.protocol
        if p.name != PROTOCOL:
            raise ConfigError(f"key 'protocol.name': family 'grounding' takes protocol '{PROTOCOL}', not {p.name!r}")
        unknown = sorted(set(p.args) - set(DEFAULTS))
        if unknown:
            raise ConfigError(f"key 'protocol.args': unknown {unknown}; protocol '{PROTOCOL}' takes "
                              f"{', '.join(DEFAULTS)}")
        if not grid_pool(self.spec.features):
            raise ConfigError(f"task {self.spec.name}: family 'grounding' reads 'patches', not {self.spec.features!r}")

    def wants_encoder(self, meta) -> bool:
        """Only a text tower's similarity-map baseline uses the encoder."""
        return "text" in meta.modalities

    @classmethod
    def known_metrics(cls) -> list[str]:
        return list(METRIC_NAMES)

    @property
    def args(self) -> dict:
        return {**DEFAULTS, **self.spec.protocol.args}

    # -- data -----------------------------------------------------------------------------
    def has_target(self, sample: Sample) -> bool:
        return any(p.boxes for p in sample.phrases)

    def target(self, sample: Sample) -> list:
        return [enclosing_box([(b.x0, b.y0, b.x1, b.y1) for b in p.boxes]) for p in sample.phrases if p.boxes]

    def units(self, samples: Sequence[Sample]) -> list[Unit]:
        return [Unit(f"{s.id}#{k}", s.patient, s.group or "", [i])
                for i, s in enumerate(samples) for k, p in enumerate(s.phrases) if p.boxes]

    def truth(self, unit: Unit, samples: Sequence[Sample]) -> list[float]:
        k = int(unit.id.rsplit("#", 1)[1])
        return enclosing_box([(b.x0, b.y0, b.x1, b.y1) for b in samples[unit.rows[0]].phrases[k].boxes])

    # -- head -----------------------------------------------------------------------------
    def _phrases(self, split: SplitData) -> tuple[list[Unit], list[str]]:
        units = self.units(split.samples)
        return units, [split.samples[u.rows[0]].phrases[int(u.id.rsplit("#", 1)[1])].text for u in units]

    def fit_predict(self, train: SplitData, val: SplitData, test: SplitData, *, seed: int,
                    device: str) -> HeadOutput:
        a = self.args
        dev = device if device.startswith("cuda") else "cpu"
        enc = text_encoder(str(a["text_encoder"]), dev)
        store = TextFeatureStore()
        data = {}
        mu = sd = None
        for k, split in (("train", train), ("val", val), ("test", test)):
            units, texts = self._phrases(split)
            grid = torch.from_numpy(np.concatenate([b for _, b in split.features.batches(256)])
                                    if len(split.features) else np.zeros((0, 1, 1, 1), np.float32))
            if mu is None:  # train statistics, per channel over every cell
                mu, sd = (torch.from_numpy(v) for v in standardiser(grid.reshape(-1, grid.shape[-1]).numpy()))
            rows = torch.tensor([u.rows[0] for u in units], dtype=torch.long)
            target = torch.tensor([self._to_input(self.truth(u, split.samples), split.geometry[u.rows[0]])
                                   for u in units], dtype=torch.float32).reshape(-1, 4)
            data[k] = (units, ((grid - mu) / sd).to(dev), rows.to(dev),
                       torch.from_numpy(store.get(enc.meta.to_dict(), texts, enc.encode)).to(dev), target.to(dev))
        from torchvision.ops import generalized_box_iou_loss

        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        _, grid_tr, rows_tr, txt_tr, y_tr = data["train"]
        head = FiLMBoxHead(grid_tr.shape[-1], txt_tr.shape[-1], int(a["hidden"])).to(dev)
        opt = torch.optim.AdamW(head.parameters(), lr=float(a["lr"]), weight_decay=float(a["weight_decay"]))
        best = (-1.0, 0, None)
        n, bs = len(rows_tr), int(a["batch_size"])
        for epoch in range(1, int(a["epochs"]) + 1):
            head.train()
            for idx in torch.randperm(n, generator=g).split(bs):
                idx = idx.to(dev)
                box, _ = head(grid_tr[rows_tr[idx]], txt_tr[idx])
                loss = (nn.functional.l1_loss(box, y_tr[idx])
                        + generalized_box_iou_loss(box, y_tr[idx], reduction="mean"))
                opt.zero_grad()
                loss.backward()
                opt.step()
            if epoch % int(a["eval_every"]) == 0 or epoch == int(a["epochs"]):
                miou = self._val_miou(head, data["val"], val)
                if miou > best[0]:  # ties keep the earlier epoch
                    best = (miou, epoch, {k: v.detach().clone() for k, v in head.state_dict().items()})
        head.load_state_dict(best[2])
        preds = self._predict(head, data["test"], test)
        hp = {"text_encoder": enc.meta.to_dict(), "epochs": best[1], "lr": float(a["lr"]),
              "weight_decay": float(a["weight_decay"]), "hidden": int(a["hidden"]),
              "truth": "enclosing box of the phrase's boxes"}
        state = {}
        if self.encoder is not None and "text" in self.encoder.meta.modalities:
            state["baselines"] = {SIMMAP: self._similarity_map(val, test)}
        return HeadOutput(preds, hp, float(best[0]), state)

    def _maps(self, split: SplitData) -> tuple[list[Unit], np.ndarray]:
        """The units of a split and their similarity maps [U, h, w], image batches projected once."""
        enc = self.encoder
        units, texts = self._phrases(split)
        phrases = torch.from_numpy(TextFeatureStore().get(tower_ident(enc.meta), texts, enc.encode_text))
        rows = np.array([u.rows[0] for u in units], dtype=np.int64)
        maps: list[np.ndarray] = []
        for start, grid in split.features.batches(64):
            tokens = enc.project_patches(torch.from_numpy(grid)).cpu()
            sel = np.nonzero((rows >= start) & (rows < start + len(grid)))[0]
            maps.append(similarity_maps(tokens[rows[sel] - start], phrases[sel]).double().numpy())
        return units, np.concatenate(maps) if maps else np.zeros((0, 1, 1))

    def _similarity_map(self, val: SplitData, test: SplitData) -> dict:
        """The baseline's fraction chosen on val by mIoU, and its test boxes in original pixels."""
        try:
            (vu, vmaps), (tu, tmaps) = self._maps(val), self._maps(test)
        except ModelError as e:
            return {"skipped": str(e)}
        boxes = map_boxes(vmaps, SIMMAP_FRACTIONS)
        truth = [self.truth(u, val.samples) for u in vu]
        miou = [float(np.mean([box_iou(to_original(boxes[i, k], val.geometry[u.rows[0]]), truth[i])
                               for i, u in enumerate(vu)])) if vu else float("nan")
                for k in range(len(SIMMAP_FRACTIONS))]
        k = int(np.nanargmax(miou)) if vu else 0  # ties keep the smaller fraction
        f = SIMMAP_FRACTIONS[k]
        test_boxes = map_boxes(tmaps, [f])[:, 0]
        return {"threshold": f, "val_miou": miou[k], "text_encoder": tower_ident(self.encoder.meta),
                "threshold_is": "fraction of the map's range (min + f * (max - min)), chosen on val",
                "boxes": {u.id: to_original(b, test.geometry[u.rows[0]]) for u, b in zip(tu, test_boxes)}}

    @staticmethod
    def _to_input(box: list[float], geo_row) -> list[float]:
        geo = _geometry(geo_row)
        xy = geo.to_input(np.array(box).reshape(2, 2)) / geo.size
        return [float(v) for v in xy.reshape(-1)]

    @torch.no_grad()
    def _predict(self, head: FiLMBoxHead, split_t, split: SplitData) -> list[list[float]]:
        head.eval()
        units, grid, rows, txt, _ = split_t
        out = []
        for i in range(0, len(units), 256):
            box, _ = head(grid[rows[i:i + 256]], txt[i:i + 256])
            out += [to_original(b, split.geometry[u.rows[0]])
                    for u, b in zip(units[i:i + 256], box.cpu().numpy().astype(np.float64))]
        return out

    def _val_miou(self, head: FiLMBoxHead, split_t, split: SplitData) -> float:
        preds = self._predict(head, split_t, split)
        return float(np.mean([box_iou(p, self.truth(u, split.samples)) for u, p in zip(split_t[0], preds)]))

    # -- scorer ---------------------------------------------------------------------------
    def prediction_from_row(self, row: dict, *, path, line: int) -> Any:
        pred = super().prediction_from_row(row, path=path, line=line)
        ok = isinstance(pred, list) and len(pred) == 4 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in pred)
        if not ok or not (pred[0] <= pred[2] and pred[1] <= pred[3]):
            raise DataError(f"expected a box [x0, y0, x1, y1] of finite numbers with x0 <= x1, y0 <= y1; got {pred!r}",
                            path=path, row=line, field="prediction")
        return [float(v) for v in pred]

    def unit_stats(self, truth: Any, prediction: Any, state: dict) -> dict:
        return {"iou": box_iou(prediction, truth)}

    def aggregate(self, table: dict[str, np.ndarray], rows: np.ndarray, state: dict) -> dict[str, float]:
        iou = table["iou"][rows]
        vals = {"miou": float(iou.mean())} | {f"acc@{t:g}": float((iou >= t).mean()) for t in THRESHOLDS}
        return {k: vals[k] for k in self.spec.metrics}

    def report(self, scored: Scored, samples: Sequence[Sample], state: dict, *, n_boot: int,
               seed: int) -> dict:
        """The similarity-map baseline's metrics (same scorer, same bootstrap), when it ran."""
        base = (state.get("baselines") or {}).get(SIMMAP)
        if not base:
            return {}
        if "boxes" not in base:
            return {"baselines": {SIMMAP: {"skipped": base["skipped"]}}}
        truths = [self.truth(u, samples) for u in scored.units]
        got = score_units(self, scored.units, truths, [base["boxes"][u.id] for u in scored.units], state,
                          n_boot=n_boot, seed=seed)
        metrics = {k: {"value": v, "ci_low": _none(lo), "ci_high": _none(hi)}
                   for k, (v, lo, hi) in got.metrics.items()}
        kept = {k: base[k] for k in ("threshold", "threshold_is", "val_miou", "text_encoder")}
        return {"baselines": {SIMMAP: {"metrics": metrics, "warnings": got.warnings, **kept}}}

    def aggregate_weighted(self, table: dict[str, np.ndarray], weights: np.ndarray,
                           state: dict) -> dict[str, np.ndarray]:
        iou, tot = table["iou"], weights.sum(1)
        vals = {"miou": weights @ iou / tot} | {f"acc@{t:g}": weights @ (iou >= t) / tot for t in THRESHOLDS}
        return {k: vals[k] for k in self.spec.metrics}


def _none(v):
    return None if v is None or v != v else float(v)

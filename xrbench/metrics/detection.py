"""COCO box mAP as per-image statistics plus an aggregate, equal to pycocotools' COCOeval.

:func:`image_stats` runs pycocotools' own per-image matching (``COCOeval.computeIoU`` and
``COCOeval.evaluateImg``, area range 'all', IoU thresholds .50:.05:.95) on one image and keeps what
``COCOeval.accumulate`` needs from it: the scores of the top ``max_dets`` detections, their matched
and ignored flags at every threshold, and the number of non-ignored ground-truth boxes, per category.
:func:`aggregate_detection` then reproduces ``accumulate()`` + ``summarize()`` (101-point
interpolated precision; a category without ground truth is left out of the mean, as COCO does with
-1) over any list of images, duplicates included: a bootstrap resample is scored exactly as COCOeval
would score the same images given fresh ids, in list order (the order decides ties in score).

Ground truth: ``iscrowd`` boxes are matched the crowd way (pycocotools' IoU and repeated matches) and
are ignored (detections matched to them neither help nor hurt). An annotation's own ``ignore`` field
is accepted and, exactly as in pycocotools, has no effect: ``COCOeval._prepare`` overwrites it with
``iscrowd`` (cocodataset/cocoapi#123, #466). The numbers are pycocotools' to the bit, so a result
can be checked with the library everyone uses; a box to be ignored is marked ``iscrowd``.
"""
from __future__ import annotations

import contextlib
import io
import math

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval, Params

from xrbench.errors import DataError

_P = Params(iouType="bbox")
IOU_THRS = _P.iouThrs  # pycocotools' own linspace, so .5 and .75 compare equal
REC_THRS = _P.recThrs
AREA_ALL = _P.areaRng[_P.areaRngLbl.index("all")]


def _xywh(box, where: str) -> list[float]:
    if len(box) != 4:
        raise DataError(f"expected a box [x0, y0, x1, y1], got {box!r}", field=where)
    x0, y0, x1, y1 = (float(v) for v in box)
    if not (x1 >= x0 and y1 >= y0):
        raise DataError(f"expected x1 >= x0 and y1 >= y0 in {box!r}", field=where)
    return [x0, y0, x1 - x0, y1 - y0]


def _check_label(item: dict, categories: list[str], where: str) -> str:
    if item["label"] not in categories:
        raise DataError(f"label {item['label']!r} is not one of the task's categories {categories}",
                        field=where)
    return item["label"]


def image_stats(gt: list[dict], dt: list[dict], *, categories: list[str], max_dets: int = 100) -> dict:
    """Per-category matching statistics of one image, as COCOeval.evaluateImg computes them.

    Keys per category ``c``: ``scores/c`` [D] (highest first, at most ``max_dets``), ``matched/c``
    and ``ignored/c`` [T][D] 0/1 flags at the T IoU thresholds, ``n_gt/c`` non-ignored boxes.
    """
    ev = COCOeval(iouType="bbox")
    ev.params.maxDets = [max_dets]
    gts: dict[str, list] = {c: [] for c in categories}
    for g in gt:
        x, y, w, h = _xywh(g["box"], "gt.box")
        crowd = int(g.get("iscrowd", 0))
        label = _check_label(g, categories, "gt.label")
        gts[label].append(
            {"id": len(gts[label]) + 1, "bbox": [x, y, w, h], "area": w * h, "iscrowd": crowd,
             "ignore": crowd})
    dts: dict[str, list] = {c: [] for c in categories}
    for d in dt:
        x, y, w, h = _xywh(d["box"], "dt.box")
        score = float(d["score"])
        if not math.isfinite(score):
            raise DataError(f"detection score {d['score']!r} is not a finite number", field="dt.score")
        label = _check_label(d, categories, "dt.label")
        dts[label].append(
            {"id": len(dts[label]) + 1, "bbox": [x, y, w, h], "area": w * h, "score": score})
    out: dict = {}
    for k, c in enumerate(categories):
        ev._gts[0, k], ev._dts[0, k] = gts[c], dts[c]
        ev.ious[0, k] = ev.computeIoU(0, k)
        e = ev.evaluateImg(0, k, AREA_ALL, max_dets)
        if e is None:  # neither boxes nor detections of this category
            e = {"dtScores": [], "dtMatches": np.zeros((len(IOU_THRS), 0)),
                 "dtIgnore": np.zeros((len(IOU_THRS), 0)), "gtIgnore": np.zeros(0)}
        out[f"scores/{c}"] = [float(s) for s in e["dtScores"]]
        out[f"matched/{c}"] = (np.asarray(e["dtMatches"]) > 0).astype(int).tolist()
        out[f"ignored/{c}"] = np.asarray(e["dtIgnore"]).astype(bool).astype(int).tolist()
        out[f"n_gt/{c}"] = int(np.count_nonzero(np.asarray(e["gtIgnore"]) == 0))
    return out


def stack_stats(stats: list[dict]) -> dict[str, np.ndarray]:
    """Detections of all images concatenated per category, with each image's slice of them.

    Per category ``c``: ``score/c`` [N], ``tp/c`` and ``fp/c`` [N, T] (ignored detections are
    neither), ``first/c`` and ``count/c`` [n] (image i owns rows first..first+count), ``n_gt/c`` [n].
    """
    cats = list(dict.fromkeys(k.split("/", 1)[1] for s in stats for k in s if k.startswith("n_gt/")))
    t = len(IOU_THRS)
    out: dict[str, np.ndarray] = {}
    for c in cats:
        scores = [np.asarray(s[f"scores/{c}"], dtype=np.float64) for s in stats]
        matched = [np.asarray(s[f"matched/{c}"], dtype=bool).reshape(t, -1).T for s in stats]
        ignored = [np.asarray(s[f"ignored/{c}"], dtype=bool).reshape(t, -1).T for s in stats]
        count = np.asarray([len(x) for x in scores], dtype=np.int64)
        m, ig = np.concatenate(matched), np.concatenate(ignored)
        out[f"score/{c}"] = np.concatenate(scores)
        out[f"tp/{c}"] = m & ~ig
        out[f"fp/{c}"] = ~m & ~ig
        out[f"first/{c}"] = np.cumsum(count) - count
        out[f"count/{c}"] = count
        out[f"n_gt/{c}"] = np.asarray([int(s[f"n_gt/{c}"]) for s in stats], dtype=np.int64)
    return out


def _rows(first: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Detection rows of the picked images, image after image (the order COCOeval concatenates)."""
    return np.repeat(first - (np.cumsum(count) - count), count) + np.arange(count.sum())


def _precision(tp: np.ndarray, fp: np.ndarray, n_gt: int) -> np.ndarray:
    """[T, R] interpolated precision of score-sorted detections, as COCOeval.accumulate."""
    tp_sum = np.cumsum(tp.T, axis=1).astype(float)
    fp_sum = np.cumsum(fp.T, axis=1).astype(float)
    rc = tp_sum / n_gt
    pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # precision envelope
    q = np.zeros((len(IOU_THRS), len(REC_THRS)))
    for t in range(len(IOU_THRS)):
        inds = np.searchsorted(rc[t], REC_THRS, side="left")
        reached = inds < pr.shape[1]  # recall levels beyond the last detection keep precision 0
        q[t, reached] = pr[t, inds[reached]]
    return q


def _coco_mean(s: np.ndarray) -> float:
    """summarize()'s mean over the defined entries (-1 marks a category without ground truth)."""
    s = s[s > -1]
    return float(np.mean(s)) if s.size else math.nan


def aggregate_detection_batch(arrays: dict[str, np.ndarray], index_batches: np.ndarray, *,
                              categories: list[str]) -> dict[str, np.ndarray]:
    """Metric -> [B] values, one per row of ``index_batches`` ([B, n] image rows into ``arrays``)."""
    idx = np.asarray(index_batches, dtype=np.int64)
    present = [(k, c) for k, c in enumerate(categories) if f"n_gt/{c}" in arrays]
    out = {k: np.full(len(idx), np.nan) for k in
           ["map50", "map", *(f"{m}/{c}" for c in categories for m in ("ap50", "ap"))]}
    for b, rows in enumerate(idx):
        precision = -np.ones((len(IOU_THRS), len(REC_THRS), len(categories)))  # COCO's layout
        for k, c in present:
            npig = int(arrays[f"n_gt/{c}"][rows].sum())
            if npig == 0:
                continue
            sel = _rows(arrays[f"first/{c}"][rows], arrays[f"count/{c}"][rows])
            sel = sel[np.argsort(-arrays[f"score/{c}"][sel], kind="mergesort")]
            precision[:, :, k] = _precision(arrays[f"tp/{c}"][sel], arrays[f"fp/{c}"][sel], npig)
        out["map50"][b], out["map"][b] = _coco_mean(precision[0]), _coco_mean(precision)
        for k, c in enumerate(categories):
            out[f"ap50/{c}"][b] = _coco_mean(precision[0, :, k])
            out[f"ap/{c}"][b] = _coco_mean(precision[:, :, k])
    return out


def aggregate_detection(stats: list[dict], *, categories: list[str]) -> dict[str, float]:
    """COCO mAP@.5 (``map50``), mAP@[.5:.95] (``map``) and both per category, NaN where undefined."""
    batch = aggregate_detection_batch(stack_stats(stats), np.arange(len(stats))[None],
                                      categories=categories)
    return {k: float(v[0]) for k, v in batch.items()}


def coco_reference(gts_by_image: list[list[dict]], dts_by_image: list[list[dict]],
                   categories: list[str]) -> dict[str, float]:
    """map50/map/per-category AP from the real COCO + COCOeval pipeline (images get ids in list order).

    For tests: the independent, slow path that :func:`aggregate_detection` must equal.
    """
    images = [{"id": i + 1} for i in range(len(gts_by_image))]
    cats = [{"id": k + 1, "name": c} for k, c in enumerate(categories)]
    anns = []
    for i, boxes in enumerate(gts_by_image):
        for g in boxes:
            x, y, w, h = _xywh(g["box"], "gt.box")
            anns.append({"id": len(anns) + 1, "image_id": i + 1,
                         "category_id": categories.index(g["label"]) + 1, "bbox": [x, y, w, h],
                         "area": w * h, "iscrowd": int(g.get("iscrowd", 0)), "ignore": int(g.get("ignore", 0))})
    results = [{"image_id": i + 1, "category_id": categories.index(d["label"]) + 1,
                "bbox": _xywh(d["box"], "dt.box"), "score": float(d["score"])}
               for i, dets in enumerate(dts_by_image) for d in dets]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": cats}
        gt.createIndex()
        if results:
            dt = gt.loadRes(results)
        else:  # loadRes cannot take an empty list
            dt = COCO()
            dt.dataset = {"images": images, "annotations": [], "categories": cats}
            dt.createIndex()
        ev = COCOeval(gt, dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"][:, :, :, ev.params.areaRngLbl.index("all"), ev.params.maxDets.index(100)]
    out = {"map": float(ev.stats[0]), "map50": float(ev.stats[1])}
    out = {k: (math.nan if v == -1 else v) for k, v in out.items()}
    for k, c in enumerate(categories):
        out[f"ap50/{c}"] = _coco_mean(precision[0, :, k])
        out[f"ap/{c}"] = _coco_mean(precision[:, :, k])
    return out

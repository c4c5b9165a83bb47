"""Dense-task scorers: per-unit statistics + aggregate equal the field's reference implementations."""
import json
import math

import numpy as np
import pytest
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance, compute_iou

from xrbench.errors import DataError
from xrbench.metrics import detection, landmarks, segmentation


def _same(a: dict, b: dict, tol: float = 1e-9) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == pytest.approx(b[k], abs=tol), k


# -- segmentation ---------------------------------------------------------------------------------

def _blob_mask(rng, h, w, specks=0.03):
    m = np.zeros((h, w), bool)
    for _ in range(int(rng.integers(1, 4))):
        y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
        m[y:y + rng.integers(2, h // 2), x:x + rng.integers(2, w // 2)] = True
    return m ^ (rng.random((h, w)) < specks)  # ragged edges and specks


@pytest.mark.filterwarnings("ignore:.*always_return_as_numpy")
@pytest.mark.parametrize("seed", range(6))
def test_mask_stats_equal_monai_called_directly(seed):
    """On the whole image; seeds 4-5 have compact masks, one on the image border, that get cropped."""
    rng = np.random.default_rng(seed)
    if seed < 4:
        pred, truth = _blob_mask(rng, 37, 52), _blob_mask(rng, 37, 52)
    else:
        pred, truth = np.zeros((80, 90), bool), np.zeros((80, 90), bool)
        pred[20:40, 30:50], truth[0:10, 70:90] = _blob_mask(rng, 20, 20, 0.1), _blob_mask(rng, 10, 20, 0.1)
        truth[25:45, 35:55] |= pred[25:45, 35:55]
    s = segmentation.mask_stats(pred, truth.astype(np.uint8))
    p, t = torch.from_numpy(pred)[None, None].float(), torch.from_numpy(truth)[None, None].float()
    assert s["dice"] == pytest.approx(compute_dice(p, t).item(), abs=1e-6)
    assert s["iou"] == pytest.approx(compute_iou(p, t).item(), abs=1e-6)
    hd = compute_hausdorff_distance(p, t, include_background=True, percentile=95).item()
    assert s["hd95"] == pytest.approx(hd) and s["hd95"] > 0
    inter, a, b = int((pred & truth).sum()), int(pred.sum()), int(truth.sum())
    assert (s["intersection"], s["pred_area"], s["truth_area"], s["positive"]) == (inter, a, b, True)
    assert s["dice"] == pytest.approx(2 * inter / (a + b), abs=1e-6)
    assert s["iou"] == pytest.approx(inter / (a + b - inter), abs=1e-6)
    assert json.loads(json.dumps(s)) == s


def test_mask_stats_empty_conventions():
    z, one = np.zeros((30, 40), bool), np.zeros((30, 40), bool)
    one[5:9, 5:12] = True
    both = segmentation.mask_stats(z, z)
    assert (both["dice"], both["iou"], both["hd95"], both["positive"]) == (1.0, 1.0, 0.0, False)
    for pred, truth, positive in [(z, one, True), (one, z, False)]:
        s = segmentation.mask_stats(pred, truth)
        assert (s["dice"], s["iou"], s["hd95"], s["positive"]) == (0.0, 0.0, 50.0, positive)  # 30-40-50


def test_mask_stats_rejects_bad_masks():
    with pytest.raises(DataError, match="differs"):
        segmentation.mask_stats(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(DataError, match="binary"):
        segmentation.mask_stats(np.full((4, 4), 0.7), np.zeros((4, 4)))


def test_aggregate_segmentation_all_and_positive_means():
    stats = [{"dice": 1.0, "iou": 1.0, "hd95": 0.0, "positive": False},   # empty on empty
             {"dice": 0.5, "iou": 0.25, "hd95": 4.0, "positive": True},
             {"dice": 0.0, "iou": 0.0, "hd95": 10.0, "positive": False},  # false alarm
             {"dice": 0.7, "iou": 0.5, "hd95": 2.0, "positive": True}]
    for s in stats:
        s.update(intersection=0, pred_area=0, truth_area=0)
    got = segmentation.aggregate_segmentation(stats)
    _same(got, {"dice": 2.2 / 4, "dice_pos": 0.6, "iou": 1.75 / 4, "iou_pos": 0.375,
                "hd95": 4.0, "hd95_pos": 3.0})
    none_pos = segmentation.aggregate_segmentation([stats[0], stats[2]])
    assert none_pos["dice"] == 0.5 and math.isnan(none_pos["dice_pos"])


def test_segmentation_batch_equals_per_replicate_loop():
    rng = np.random.default_rng(3)
    stats = [segmentation.mask_stats(_blob_mask(rng, 20, 20) if i % 3 else np.zeros((20, 20), bool),
                                     _blob_mask(rng, 20, 20) if i % 4 else np.zeros((20, 20), bool))
             for i in range(12)]
    batches = rng.integers(0, len(stats), (7, len(stats)))
    got = segmentation.aggregate_segmentation_batch(segmentation.stack_stats(stats), batches)
    for b, rows in enumerate(batches):
        _same({k: float(v[b]) for k, v in got.items()},
              segmentation.aggregate_segmentation([stats[i] for i in rows]), tol=1e-12)


# -- detection ------------------------------------------------------------------------------------

CATS = ["nodule", "effusion", "fracture"]


def _box(rng, size=120.0):
    x0, y0 = rng.uniform(0, size * 0.8, 2)
    w, h = rng.uniform(4, size * 0.4, 2)
    return [float(x0), float(y0), float(x0 + w), float(y0 + h)]


def _scene(seed, n_images=30, absent=None):
    """Random gts (some crowd, some ignore) and noisy detections; ``absent`` category gets no gt."""
    rng = np.random.default_rng(seed)
    gts, dts = [], []
    for _ in range(n_images):
        g = []
        for _ in range(int(rng.integers(0, 5))):
            label = CATS[int(rng.integers(0, 2 if absent else 3))]
            g.append({"box": _box(rng), "label": label, "iscrowd": int(rng.random() < 0.12),
                      "ignore": int(rng.random() < 0.12)})
        d = []
        for b in g:
            for _ in range(int(rng.integers(0, 3))):  # 0-2 detections per box: misses and duplicates
                jit = rng.normal(0, rng.choice([1.0, 6.0]), 4)
                x0, y0, x1, y1 = np.asarray(b["box"]) + jit
                label = b["label"] if rng.random() > 0.1 else CATS[int(rng.integers(0, 3))]
                d.append({"box": [float(min(x0, x1)), float(min(y0, y1)), float(max(x0, x1)),
                                  float(max(y0, y1))], "label": label, "score": float(rng.random())})
        for _ in range(int(rng.integers(0, 3))):  # false positives
            d.append({"box": _box(rng), "label": CATS[int(rng.integers(0, 3))], "score": float(rng.random())})
        if seed % 2:  # coarse scores: ties across and within images
            for x in d:
                x["score"] = round(x["score"], 1)
        gts.append(g)
        dts.append(d)
    return gts, dts


def _stats(gts, dts, **kw):
    return [detection.image_stats(g, d, categories=CATS, **kw) for g, d in zip(gts, dts)]


@pytest.mark.parametrize("seed", range(4))
def test_detection_equals_cocoeval(seed):
    gts, dts = _scene(seed, absent=seed == 3)
    assert any(b["iscrowd"] for g in gts for b in g) and any(b["ignore"] for g in gts for b in g)
    ref = detection.coco_reference(gts, dts, CATS)
    assert 0.05 < ref["map"] < ref["map50"] < 0.99
    if seed == 3:
        assert math.isnan(ref["ap/fracture"])  # no gt: left out of the mean, as COCO's -1
    got = detection.aggregate_detection(_stats(gts, dts), categories=CATS)
    _same(got, ref)


def test_detection_resample_with_duplicates_equals_cocoeval_with_fresh_ids():
    gts, dts = _scene(1)  # tied scores: the order of the resample matters
    stats = _stats(gts, dts)
    rng = np.random.default_rng(0)
    for _ in range(2):
        pick = rng.integers(0, len(gts), len(gts))
        assert len(set(pick.tolist())) < len(pick)
        ref = detection.coco_reference([gts[i] for i in pick], [dts[i] for i in pick], CATS)
        _same(detection.aggregate_detection([stats[i] for i in pick], categories=CATS), ref)


def test_detection_truth_as_prediction_and_empty_prediction():
    gts, _ = _scene(2)
    perfect = [[{"box": b["box"], "label": b["label"], "score": 1.0} for b in g] for g in gts]
    got = detection.aggregate_detection(_stats(gts, perfect), categories=CATS)
    assert got["map"] == pytest.approx(1.0) and got["map50"] == pytest.approx(1.0)
    assert all(got[f"ap/{c}"] == pytest.approx(1.0) for c in CATS)
    empty = detection.aggregate_detection(_stats(gts, [[] for _ in gts]), categories=CATS)
    assert empty == {k: 0.0 for k in got}
    assert detection.coco_reference(gts, [[] for _ in gts], CATS) == empty


def test_detection_crowd_box_is_neither_missed_nor_matched_and_ignore_flag_is_pycocotools():
    # a crowd gt box is ignored: a miss on it costs nothing, a detection on it is not a false positive
    gt = [{"box": [0, 0, 10, 10], "label": "nodule", "iscrowd": 0},
          {"box": [50, 50, 60, 60], "label": "nodule", "iscrowd": 1}]
    hit = [{"box": [0, 0, 10, 10], "label": "nodule", "score": 0.9}]
    s = detection.image_stats(gt, hit, categories=CATS)
    assert s["n_gt/nodule"] == 1 and s["matched/nodule"] == [[1]] * 10
    assert detection.aggregate_detection([s], categories=CATS)["ap/nodule"] == pytest.approx(1.0)
    assert detection.coco_reference([gt], [hit], CATS)["ap/nodule"] == pytest.approx(1.0)
    on_crowd = hit + [{"box": [50, 50, 60, 60], "label": "nodule", "score": 0.95}]
    s2 = detection.image_stats(gt, on_crowd, categories=CATS)
    assert s2["ignored/nodule"] == [[1, 0]] * 10  # the top detection sits on the crowd box
    assert detection.aggregate_detection([s2], categories=CATS)["ap/nodule"] == pytest.approx(1.0)
    # pycocotools overwrites 'ignore' with 'iscrowd': an ignore-flagged box still counts as a miss
    flagged = [gt[0], {"box": [50, 50, 60, 60], "label": "nodule", "iscrowd": 0, "ignore": 1}]
    s3 = detection.image_stats(flagged, hit, categories=CATS)
    assert s3["n_gt/nodule"] == 2
    ours = detection.aggregate_detection([s3], categories=CATS)["ap/nodule"]
    assert ours == detection.coco_reference([flagged], [hit], CATS)["ap/nodule"] < 1.0


def test_detection_stats_round_trip_json_and_keep_top_max_dets():
    gts, dts = _scene(0, n_images=6)
    stats = _stats(gts, dts)
    back = json.loads(json.dumps(stats))
    _same(detection.aggregate_detection(back, categories=CATS),
          detection.aggregate_detection(stats, categories=CATS), tol=0)
    rng = np.random.default_rng(0)
    d = [{"box": _box(rng), "label": "nodule", "score": s} for s in (0.2, 0.9, 0.5)]
    top = detection.image_stats([], d, categories=CATS, max_dets=2)
    assert top["scores/nodule"] == [0.9, 0.5] and top["n_gt/nodule"] == 0


def test_detection_rejects_unknown_label():
    with pytest.raises(DataError, match="not one of"):
        detection.image_stats([{"box": [0, 0, 1, 1], "label": "cat"}], [], categories=CATS)


def test_detection_batch_equals_per_replicate_loop():
    gts, dts = _scene(1, n_images=15)
    stats = _stats(gts, dts)
    batches = np.random.default_rng(1).integers(0, len(stats), (5, len(stats)))
    got = detection.aggregate_detection_batch(detection.stack_stats(stats), batches, categories=CATS)
    for b, rows in enumerate(batches):
        _same({k: float(v[b]) for k, v in got.items()},
              detection.aggregate_detection([stats[i] for i in rows], categories=CATS), tol=0)


# -- landmarks ------------------------------------------------------------------------------------

def _landmark_scene(seed, n=9, k=19):
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0, 1900, (n, k, 2))
    truth[rng.random((n, k)) < 0.1] = np.nan  # missing annotations
    pred = truth + rng.normal(0, 25, (n, k, 2))
    pred[np.isnan(pred)] = 5.0  # a prediction exists even where the truth is missing
    return pred, truth


@pytest.mark.parametrize("seed", range(3))
def test_landmarks_equal_brute_force(seed):
    pred, truth = _landmark_scene(seed)
    spacing = 0.1
    stats = [landmarks.landmark_stats(p, t, spacing) for p, t in zip(pred, truth)]
    errors = []
    for i in range(pred.shape[0]):
        for j in range(pred.shape[1]):
            if not np.isnan(truth[i, j]).any():
                errors.append(math.hypot(*(pred[i, j] - truth[i, j])) * spacing)
    want = {"mre_mm": sum(errors) / len(errors)}
    for t in (2.0, 2.5, 3.0, 4.0):
        want[f"sdr@{t:g}mm"] = sum(e <= t for e in errors) / len(errors)
    assert 0.1 < want["sdr@2mm"] < want["sdr@4mm"] < 1
    _same(landmarks.aggregate_landmarks(json.loads(json.dumps(stats))), want, tol=1e-12)
    for s, t in zip(stats, truth):
        assert [math.isnan(r) for r in s["radial_mm"]] == np.isnan(t[:, 0]).tolist()


def test_landmarks_truth_as_prediction():
    _, truth = _landmark_scene(0)
    stats = [landmarks.landmark_stats(t, t, 0.1) for t in truth]
    got = landmarks.aggregate_landmarks(stats, thresholds_mm=(2.0, 2.5))
    assert got == {"mre_mm": 0.0, "sdr@2mm": 1.0, "sdr@2.5mm": 1.0}


def test_aggregates_of_no_units_are_nan():
    for got in (segmentation.aggregate_segmentation([]), landmarks.aggregate_landmarks([]),
                detection.aggregate_detection([], categories=CATS)):
        assert len(got) > 1 and all(math.isnan(v) for v in got.values())


def test_landmarks_reject_nan_prediction_and_ragged_counts():
    pred, truth = np.zeros((3, 2)), np.ones((3, 2))
    pred[1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        landmarks.landmark_stats(pred, truth, 0.1)
    with pytest.raises(DataError, match="different numbers"):
        landmarks.stack_stats([{"radial_mm": [1.0]}, {"radial_mm": [1.0, 2.0]}])


def test_landmarks_batch_equals_per_replicate_loop():
    pred, truth = _landmark_scene(4)
    stats = [landmarks.landmark_stats(p, t, 0.1) for p, t in zip(pred, truth)]
    batches = np.random.default_rng(2).integers(0, len(stats), (6, len(stats)))
    got = landmarks.aggregate_landmarks_batch(landmarks.stack_stats(stats), batches)
    for b, rows in enumerate(batches):
        _same({k: float(v[b]) for k, v in got.items()},
              landmarks.aggregate_landmarks([stats[i] for i in rows]), tol=1e-12)

"""Every reported metric against an implementation written here from the field's definition.

Nothing below calls xrbench to compute the expected value: scikit-learn, pycocotools' COCOeval (run
on a COCO dataset built here), MONAI's published HD95 definition written out in numpy/scipy, the
ISBI 2015 challenge's MRE/SDR, pycocoevalcap's BLEU/ROUGE-L/CIDEr-D formulas written out, and the
standard retrieval definitions. Where xrbench picks one of several conventions in use, the test
pins it and says which other definition would differ (docs/tasks.md states each).
"""
import contextlib
import io
import itertools
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import binary_erosion
from sklearn.metrics import (accuracy_score, cohen_kappa_score, f1_score, mean_absolute_error,
                             mean_squared_error, r2_score, roc_auc_score)

from xrbench.metrics import detection, landmarks, segmentation, weighted
from xrbench.metrics.bootstrap import bootstrap_ci
from xrbench.metrics.classification import choose_threshold
from xrbench.registry import METRICS

SEEDS = [0, 1, 2]


def _nan_equal(a, b, tol=1e-9):
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=tol)


# -- classification ---------------------------------------------------------------------------------

def _sk_macro_auroc(y, s):
    vals = []
    for k in range(y.shape[1]):
        keep = ~np.isnan(y[:, k])
        if len(np.unique(y[keep, k])) == 2:  # undefined labels are left out, never 0.5
            vals.append(roc_auc_score(y[keep, k], s[keep, k]))
    return float(np.mean(vals)) if vals else math.nan


@pytest.mark.parametrize("seed", SEEDS)
def test_macro_and_per_label_auroc_equal_sklearn_skipping_undefined_labels(seed):
    rng = np.random.default_rng(seed)
    n, k = 40, 5
    y = (rng.random((n, k)) < 0.3).astype(float)
    y[rng.random((n, k)) < 0.2] = np.nan  # unknown labels are dropped per label
    y[:, 3] = 0.0  # one class only in test: undefined
    y[:, 4] = np.nan  # no known value at all
    s = np.round(rng.random((n, k)), 1)  # ties
    assert METRICS.get("auroc_macro")(y, s) == pytest.approx(_sk_macro_auroc(y, s))
    per = METRICS.get("auroc_per_label")(y, s, labels=list("abcde"))
    for j, name in enumerate("abcde"):
        keep = ~np.isnan(y[:, j])
        want = roc_auc_score(y[keep, j], s[keep, j]) if len(np.unique(y[keep, j])) == 2 else math.nan
        assert _nan_equal(per[f"auroc/{name}"], want), name


def test_binary_auroc_reads_the_positive_column_of_two_column_scores():
    y = np.array([0, 1, 1, 0, 1.0])
    s1 = np.array([0.1, 0.8, 0.4, 0.35, 0.9])
    assert METRICS.get("auroc")(y, np.c_[1 - s1, s1]) == pytest.approx(roc_auc_score(y, s1))


@pytest.mark.parametrize("seed", SEEDS)
def test_kappas_equal_sklearn_over_the_tasks_classes(seed):
    rng = np.random.default_rng(seed)
    k = 5
    y = rng.integers(0, k, 50)
    s = rng.random((50, k)) + 0.8 * np.eye(k)[y]
    p = s.argmax(1)
    assert METRICS.get("qwk")(y, s) == pytest.approx(
        cohen_kappa_score(y, p, weights="quadratic", labels=range(k)))
    assert METRICS.get("cohen_kappa")(y, s) == pytest.approx(cohen_kappa_score(y, p, labels=range(k)))


def test_qwk_keeps_the_ordinal_distance_of_a_grade_missing_on_both_sides():
    """Convention: the weights are (i - j)^2 over the task's K grades, as sklearn with
    ``labels=range(K)``. sklearn's default (labels present only) would close the gap of a missing
    grade and weigh a 1-vs-4 disagreement like 1-vs-3."""
    y = np.array([0, 0, 1, 1, 4, 4, 4])
    p = np.array([0, 1, 1, 4, 4, 4, 0])
    s = np.eye(5)[p]
    want = cohen_kappa_score(y, p, weights="quadratic", labels=range(5))
    assert METRICS.get("qwk")(y, s) == pytest.approx(want)
    assert want != pytest.approx(cohen_kappa_score(y, p, weights="quadratic"))  # the convention matters
    # unweighted kappa does not depend on empty rows/columns
    assert METRICS.get("cohen_kappa")(y, s) == pytest.approx(cohen_kappa_score(y, p))


def test_macro_f1_counts_a_class_predicted_but_never_true_as_sklearn_does():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 3, 1, 1, 2, 0])  # class 3 predicted once, never true
    s = np.eye(5)[p]
    want = f1_score(y, p, average="macro", zero_division=0)
    assert want == pytest.approx((1 / 2 + 1 + 2 / 3 + 0) / 4)  # classes 0, 1, 2 and the false class 3
    assert METRICS.get("f1_macro")(y, s) == pytest.approx(want)
    w = np.array([[1, 1, 1, 1, 1, 1], [2, 0, 1, 1, 1, 1], [1, 0, 1, 1, 1, 1.0]])
    got = METRICS.get("f1_macro").weighted(y, s, w)
    for b, row in enumerate(w):
        rows = np.repeat(np.arange(6), row.astype(int))
        assert got[b] == pytest.approx(f1_score(y[rows], p[rows], average="macro", zero_division=0)), b


@pytest.mark.parametrize("seed", SEEDS)
def test_binary_hard_decisions_equal_sklearn_at_score_at_least_threshold(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(60) < 0.4).astype(float)
    y[rng.random(60) < 0.1] = np.nan
    s = np.round(rng.random(60), 2)
    t = float(s[7])  # a threshold equal to a score: that score is positive (>=)
    keep = ~np.isnan(y)
    yt, pt = y[keep].astype(int), (s[keep] >= t).astype(int)
    assert METRICS.get("accuracy")(y, s, threshold=t) == pytest.approx(accuracy_score(yt, pt))
    assert METRICS.get("f1")(y, s, threshold=t) == pytest.approx(f1_score(yt, pt, zero_division=0))
    assert METRICS.get("cohen_kappa")(y, s, threshold=t) == pytest.approx(cohen_kappa_score(yt, pt))


@pytest.mark.parametrize("metric", ["cohen_kappa", "accuracy", "f1"])
def test_threshold_is_the_best_of_the_documented_val_candidates(metric):
    rng = np.random.default_rng(3)
    y = (rng.random(80) < 0.3).astype(float)
    s = np.clip(0.3 * y + rng.random(80) * 0.7, 0, 1)
    sk = {"cohen_kappa": cohen_kappa_score, "accuracy": accuracy_score,
          "f1": lambda a, b: f1_score(a, b, zero_division=0)}[metric]
    cands = np.unique(np.r_[np.quantile(s, np.linspace(0.02, 0.98, 49)), 0.5])
    best = max(sk(y.astype(int), (s >= c).astype(int)) for c in cands)
    t = choose_threshold(metric, y, s)
    assert sk(y.astype(int), (s >= t).astype(int)) == pytest.approx(best)


# -- regression ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_regression_equals_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(100, 30, 50)
    s = y + rng.normal(0, 20, 50)
    assert METRICS.get("mae")(y, s[:, None]) == pytest.approx(mean_absolute_error(y, s))
    assert METRICS.get("rmse")(y, s[:, None]) == pytest.approx(math.sqrt(mean_squared_error(y, s)))
    assert METRICS.get("r2")(y, s[:, None]) == pytest.approx(r2_score(y, s))


def test_r2_of_a_constant_truth_is_undefined_not_sklearns_forced_value():
    """Convention: NaN (0/0). sklearn's ``force_finite`` returns 1.0 or 0.0 there."""
    y = np.full(5, 7.0)
    assert math.isnan(METRICS.get("r2")(y, y + 1))


# -- retrieval (image -> image, MURA) -----------------------------------------------------------------

def _ap_at_k(rel, n_rel, k, denominator):
    hits, total = 0, 0.0
    for i, r in enumerate(rel[:k], 1):
        if r:
            hits += 1
            total += hits / i
    return total / denominator(k, n_rel)


@pytest.mark.parametrize("seed", SEEDS)
def test_retrieval_metrics_equal_their_definitions_from_a_ranking(seed):
    rng = np.random.default_rng(seed)
    gallery = rng.integers(0, 4, 30)
    queries = np.r_[rng.integers(0, 4, 12), 9]  # the last query has no relevant item: skipped
    ranked = np.stack([rng.permutation(30)[:20] for _ in queries])
    from xrbench.metrics.retrieval import relevance

    n_rel, rel = relevance(gallery, queries, ranked)
    assert n_rel.tolist() == [float((gallery == q).sum()) for q in queries]
    kept = [i for i, q in enumerate(queries) if (gallery == q).any()]
    for k in (1, 5, 10):
        want_p = np.mean([sum(gallery[ranked[i, :k]] == queries[i]) / k for i in kept])
        want_r = np.mean([sum(gallery[ranked[i, :k]] == queries[i]) / (gallery == queries[i]).sum() for i in kept])
        want_ap = np.mean([_ap_at_k(gallery[ranked[i]] == queries[i], (gallery == queries[i]).sum(), k,
                                    lambda k, n: min(k, n)) for i in kept])
        assert METRICS.get(f"precision@{k}")(n_rel, rel) == pytest.approx(want_p)
        assert METRICS.get(f"recall@{k}")(n_rel, rel) == pytest.approx(want_r)
        assert METRICS.get(f"map@{k}")(n_rel, rel) == pytest.approx(want_ap)


def test_map_at_k_divides_by_min_k_and_relevant_not_trec_evals_all_relevant():
    """Convention: AP@k / min(k, n_relevant) (a perfect top k scores 1). trec_eval's map_cut_k
    (MTEB, pytrec_eval) divides by every relevant item, so with 20 relevant a perfect top 10 is 0.5."""
    rel = np.ones((1, 10))
    assert METRICS.get("map@10")(np.array([20.0]), rel) == pytest.approx(1.0)
    assert _ap_at_k([1] * 10, 20, 10, lambda k, n: n) == pytest.approx(0.5)
    rel = np.array([[0, 1, 0, 1, 0, 0, 0, 0, 0, 0.0]])  # 2 of 3 relevant found at ranks 2, 4
    assert METRICS.get("map@10")(np.array([3.0]), rel) == pytest.approx((1 / 2 + 2 / 4) / 3)


def test_retrieval_ranking_puts_equal_similarities_in_gallery_order():
    import torch

    from xrbench.protocols.retrieval import ranked

    sim = torch.tensor([[0.5, 0.9, 0.5, 0.9, 0.1]])
    assert ranked(sim, 5)[0].tolist() == [1, 3, 0, 2, 4]


# -- retrieval (image <-> report, ties in expectation) ---------------------------------------------

def _expected_recall_by_enumeration(sim_row, relevant, k):
    """Mean over every order of tied scores of [a relevant item in the top k]."""
    values = sorted(set(sim_row), reverse=True)
    groups = [[i for i, v in enumerate(sim_row) if v == val] for val in values]
    hits = total = 0
    for orders in itertools.product(*[list(itertools.permutations(g)) for g in groups]):
        ranking = [i for o in orders for i in o]
        hits += any(relevant[i] for i in ranking[:k])
        total += 1
    return hits / total


@pytest.mark.parametrize("seed", SEEDS)
def test_report_recall_at_k_equals_the_mean_over_random_tie_orders(seed):
    from xrbench.families.report_retrieval import ranks, recall_at

    rng = np.random.default_rng(seed)
    g = 7
    sim = rng.integers(0, 3, (g, g)).astype(float)  # many ties
    cls = np.array([0, 1, 1, 2, 3, 4, 4])  # duplicate reports: two relevance classes of two
    rank, ties, best = ranks(sim, cls)
    for k in (1, 2, 5):
        got = recall_at(rank, ties, k, best)
        for q in range(g):
            want = _expected_recall_by_enumeration(sim[q].tolist(), (cls == cls[q]).tolist(), k)
            assert got[q] == pytest.approx(want), (k, q)


# -- detection -----------------------------------------------------------------------------------------

CATS = ["a", "b", "c"]


def _random_scene(rng, n_images=8):
    gts, dts = [], []
    for i in range(n_images):
        g = []
        for _ in range(int(rng.integers(0, 4)) if i else 0):  # image 0: no boxes at all
            x, y = rng.uniform(0, 80, 2)
            w, h = rng.uniform(5, 30, 2)
            g.append({"box": [x, y, x + w, y + h], "label": str(rng.choice(CATS[:2]))})  # "c": no truth
        d = []
        for b in g:
            if rng.random() < 0.7:
                j = rng.normal(0, 3, 4)
                d.append({"box": [b["box"][0] + j[0], b["box"][1] + j[1], b["box"][2] + j[2] + 6,
                                  b["box"][3] + j[3] + 6], "label": b["label"], "score": float(rng.random())})
        for _ in range(int(rng.integers(0, 3))):
            x, y = rng.uniform(0, 80, 2)
            d.append({"box": [x, y, x + 10, y + 10], "label": str(rng.choice(CATS)), "score": float(rng.random())})
        gts.append(g)
        dts.append(d)
    return gts, dts


def _cocoeval(gts, dts):
    """COCO mAP@.5, mAP@[.5:.95] and AP50 per category from pycocotools, boxes xyxy -> xywh."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(b):
        return [b[0], b[1], b[2] - b[0], b[3] - b[1]]

    anns = [{"id": n + 1, "image_id": i + 1, "category_id": CATS.index(g["label"]) + 1, "bbox": xywh(g["box"]),
             "area": (g["box"][2] - g["box"][0]) * (g["box"][3] - g["box"][1]), "iscrowd": 0}
            for n, (i, g) in enumerate((i, g) for i, gg in enumerate(gts) for g in gg)]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": [{"id": i + 1} for i in range(len(gts))], "annotations": anns,
                        "categories": [{"id": k + 1, "name": c} for k, c in enumerate(CATS)]}
        coco.createIndex()
        res = coco.loadRes([{"image_id": i + 1, "category_id": CATS.index(d["label"]) + 1, "bbox": xywh(d["box"]),
                             "score": d["score"]} for i, dd in enumerate(dts) for d in dd])
        ev = COCOeval(coco, res, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    prec = ev.eval["precision"][0, :, :, 0, 2]  # IoU .5, all recall levels, categories, area all, 100 dets
    per = {c: (float(np.mean(prec[:, k])) if (prec[:, k] > -1).any() else math.nan) for k, c in enumerate(CATS)}
    return float(ev.stats[1]), float(ev.stats[0]), per


def _ap50_from_scratch(gts, dts, cat):
    """101-point interpolated AP at IoU >= 0.5, greedy matching by descending score (no crowd)."""
    def iou(a, b):
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = iw * ih
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    n_gt = sum(g["label"] == cat for gg in gts for g in gg)
    if n_gt == 0:
        return math.nan
    flags = []
    for i, (gg, dd) in enumerate(zip(gts, dts)):
        truth = [g["box"] for g in gg if g["label"] == cat]
        used = [False] * len(truth)
        for d in sorted([d for d in dd if d["label"] == cat], key=lambda d: -d["score"]):
            best, j_best = 0.5 - 1e-12, -1
            for j, t in enumerate(truth):
                if not used[j] and iou(d["box"], t) >= best:
                    best, j_best = iou(d["box"], t), j
            if j_best >= 0:
                used[j_best] = True
            flags.append((d["score"], j_best >= 0))
    flags.sort(key=lambda f: -f[0])
    tp = np.cumsum([f[1] for f in flags])
    fp = np.cumsum([not f[1] for f in flags])
    recall = tp / n_gt
    precision = tp / np.maximum(tp + fp, 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(flags) else precision
    out = []
    for r in np.linspace(0, 1, 101):
        reached = np.flatnonzero(recall >= r - 1e-12)
        out.append(envelope[reached[0]] if reached.size else 0.0)
    return float(np.mean(out))


@pytest.mark.parametrize("seed", SEEDS)
def test_detection_equals_cocoeval_and_a_from_scratch_ap50(seed):
    rng = np.random.default_rng(seed)
    gts, dts = _random_scene(rng)
    stats = [detection.image_stats(g, d, categories=CATS) for g, d in zip(gts, dts)]
    got = detection.aggregate_detection(stats, categories=CATS)
    map50, map_, per = _cocoeval(gts, dts)
    assert got["map50"] == pytest.approx(map50, abs=1e-12)
    assert got["map"] == pytest.approx(map_, abs=1e-12)
    for c in CATS:
        assert _nan_equal(got[f"ap50/{c}"], per[c], 1e-12), c
        assert _nan_equal(got[f"ap50/{c}"], _ap50_from_scratch(gts, dts, c), 1e-9), c
    assert math.isnan(got["ap50/c"])  # no truth of "c" in test: left out of the mean, as COCO's -1
    assert got["map50"] == pytest.approx(np.mean([got["ap50/a"], got["ap50/b"]]))


def test_detection_boxes_are_continuous_xyxy_and_iou_one_half_matches():
    """[x0, y0, x1, y1] in pixels, width x1 - x0 (no +1, pycocotools' convention); IoU >= 0.5 matches."""
    gt = [{"box": [0, 0, 10, 10], "label": "a"}]
    half = [{"box": [0, 0, 10, 5], "label": "a", "score": 0.9}]  # IoU exactly 0.5
    got = detection.aggregate_detection([detection.image_stats(gt, half, categories=CATS)], categories=CATS)
    assert got["ap50/a"] == pytest.approx(1.0)
    assert got["map"] == pytest.approx(0.1)  # matched at .50 only of the ten thresholds
    # a false positive on an image without boxes costs precision
    fp = [{"box": [50, 50, 60, 60], "label": "a", "score": 0.95}]
    stats = [detection.image_stats(gt, half, categories=CATS), detection.image_stats([], fp, categories=CATS)]
    got = detection.aggregate_detection(stats, categories=CATS)
    assert got["ap50/a"] == pytest.approx(0.5)  # precision 1/2 at the only recall level reached (1.0)


# -- segmentation --------------------------------------------------------------------------------------

def _hd95_monai_definition(pred, truth):
    """MONAI's HD95: surface pixels (mask minus its erosion), Euclidean distances from each surface
    to the other, the 95th percentile of each direction, the larger of the two."""
    ep = np.argwhere(pred & ~binary_erosion(pred))
    et = np.argwhere(truth & ~binary_erosion(truth))
    d = np.sqrt(((ep[:, None, :] - et[None, :, :]) ** 2).sum(-1))
    return max(np.percentile(d.min(1), 95), np.percentile(d.min(0), 95))


def _mask(rng, h, w):
    m = np.zeros((h, w), bool)
    for _ in range(int(rng.integers(1, 3))):
        y, x = rng.integers(0, h - 3), rng.integers(0, w - 3)
        m[y:y + rng.integers(2, h // 2), x:x + rng.integers(2, w // 2)] = True
    return m ^ (rng.random((h, w)) < 0.02)


@pytest.mark.filterwarnings("ignore:.*always_return_as_numpy")
@pytest.mark.parametrize("seed", SEEDS)
def test_mask_scores_equal_their_definitions(seed):
    rng = np.random.default_rng(seed)
    for _ in range(4):
        h, w = int(rng.integers(12, 30)), int(rng.integers(12, 30))
        p, t = _mask(rng, h, w), _mask(rng, h, w)
        st = segmentation.mask_stats(p, t)
        inter, a, b = (p & t).sum(), p.sum(), t.sum()
        assert st["dice"] == pytest.approx(2 * inter / (a + b), abs=1e-12)
        assert st["iou"] == pytest.approx(inter / (p | t).sum(), abs=1e-12)
        assert st["hd95"] == pytest.approx(_hd95_monai_definition(p, t), rel=1e-6)  # MONAI: float32


@pytest.mark.filterwarnings("ignore:.*always_return_as_numpy")
def test_segmentation_empty_conventions_and_the_two_means():
    """Empty on empty: dice 1, hd95 0; one side empty: dice 0, hd95 the diagonal. ``dice`` averages
    every image (the SIIM-ACR metric), ``dice_pos`` the images whose truth is not empty."""
    empty, blob = np.zeros((30, 40), bool), np.zeros((30, 40), bool)
    blob[5:15, 5:15] = True
    half = blob.copy()
    half[5:15, 10:15] = False
    s = [segmentation.mask_stats(empty, empty), segmentation.mask_stats(blob, empty),
         segmentation.mask_stats(empty, blob), segmentation.mask_stats(half, blob)]
    assert [x["dice"] for x in s] == pytest.approx([1, 0, 0, 2 * 50 / 150])
    assert [x["hd95"] for x in s[:3]] == pytest.approx([0, 50, 50])
    agg = segmentation.aggregate_segmentation(s)
    assert agg["dice"] == pytest.approx((1 + 0 + 0 + 2 / 3) / 4)
    assert agg["dice_pos"] == pytest.approx((0 + 2 / 3) / 2)


# -- landmarks -----------------------------------------------------------------------------------------

def test_landmarks_mre_and_sdr_as_the_isbi_2015_challenge_defines_them():
    """Radial error = Euclidean distance x 0.1 mm/pixel; SDR@z = share of errors <= z mm over all
    (image, landmark) pairs; a landmark without truth counts in neither."""
    truth = np.array([[100.0, 100.0], [50.0, 50.0], [10.0, 10.0], [np.nan, np.nan]])
    pred = np.array([[120.0, 100.0], [50.0, 75.0], [13.0, 14.0], [0.0, 0.0]])  # 20, 25, 5 px
    img2_t = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [5.0, 5.0]])
    img2_p = np.array([[30.0, 40.0], [0.0, 30.0], [40.0, 0.0], [5.0, 45.0]])  # 50, 30, 40, 40 px
    st = [landmarks.landmark_stats(pred, truth, 0.1), landmarks.landmark_stats(img2_p, img2_t, 0.1)]
    errors_mm = np.array([2.0, 2.5, 0.5, 5.0, 3.0, 4.0, 4.0])
    got = landmarks.aggregate_landmarks(st)
    assert got["mre_mm"] == pytest.approx(errors_mm.mean())
    for z in (2.0, 2.5, 3.0, 4.0):
        assert got[f"sdr@{z:g}mm"] == pytest.approx((errors_mm <= z).mean()), z


def test_ceph_loader_uses_the_challenge_pixel_spacing():
    from xrbench.data.datasets.isbi2015_ceph import SPACING_MM

    assert SPACING_MM == 0.1


# -- grounding ------------------------------------------------------------------------------------------

def test_grounding_iou_accuracy_and_enclosing_truth():
    from xrbench.families.grounding import box_iou, enclosing_box

    def iou(a, b):
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
        return iw * ih / u if u > 0 else 0.0

    rng = np.random.default_rng(0)
    for _ in range(20):
        a = np.sort(rng.uniform(0, 100, (2, 2)), axis=0).T.ravel()[[0, 2, 1, 3]]
        b = np.sort(rng.uniform(0, 100, (2, 2)), axis=0).T.ravel()[[0, 2, 1, 3]]
        assert box_iou(a.tolist(), b.tolist()) == pytest.approx(iou(a, b))
    assert enclosing_box([[10, 20, 30, 40], [5, 25, 20, 60]]) == [5, 20, 30, 60]
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 5]) == pytest.approx(0.5)  # counts for acc@0.5 (>=)


# -- report generation ---------------------------------------------------------------------------------

REPORTS = [
    ("no acute cardiopulmonary process", "no acute cardiopulmonary process"),
    ("small left pleural effusion with adjacent atelectasis", "left pleural effusion and atelectasis"),
    ("heart size is normal lungs are clear", "the heart is normal in size the lungs are clear"),
    ("mild cardiomegaly", "moderate cardiomegaly with pulmonary edema"),
    ("no pneumothorax", "right pneumothorax is seen"),
]


def _ngrams(words, n):
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def _corpus_bleu(pairs):
    """Papineni's corpus BLEU-1..4, one reference, no smoothing."""
    match, total = np.zeros(4), np.zeros(4)
    hyp_len = ref_len = 0
    for h, r in pairs:
        h, r = h.split(), r.split()
        hyp_len, ref_len = hyp_len + len(h), ref_len + len(r)
        for n in range(1, 5):
            hn, rn = _ngrams(h, n), _ngrams(r, n)
            match[n - 1] += sum(min(c, rn[g]) for g, c in hn.items())
            total[n - 1] += max(len(h) - n + 1, 0)
    bp = 1.0 if hyp_len >= ref_len else math.exp(1 - ref_len / hyp_len)
    return [bp * math.exp(np.mean(np.log(match[:n] / total[:n]))) if match[:n].all() else 0.0
            for n in range(1, 5)]


def _rouge_l(h, r, beta=1.2):
    h, r = h.split(), r.split()
    table = np.zeros((len(h) + 1, len(r) + 1))
    for i, j in itertools.product(range(len(h)), range(len(r))):
        table[i + 1, j + 1] = table[i, j] + 1 if h[i] == r[j] else max(table[i, j + 1], table[i + 1, j])
    lcs = table[-1, -1]
    if lcs == 0:
        return 0.0
    p, rec = lcs / len(h), lcs / len(r)
    return (1 + beta ** 2) * p * rec / (rec + beta ** 2 * p)


def _cider_d(pairs, sigma=6.0):
    """Vedantam et al.'s CIDEr-D as coco-caption computes it: tf-idf of 1-4-grams with the document
    frequencies of the test references, hypothesis counts clipped at the reference's, a Gaussian
    penalty on the difference of lengths (coco-caption counts bigrams as the length), x10."""
    refs = [r.split() for _, r in pairs]
    df = Counter(g for r in refs for n in range(1, 5) for g in set(_ngrams(r, n)))
    log_n = math.log(len(refs))

    def vec(words):
        v = [{g: c * (log_n - math.log(max(1.0, df[g]))) for g, c in _ngrams(words, n).items()} for n in range(1, 5)]
        return v, [math.sqrt(sum(x * x for x in vn.values())) for vn in v], max(len(words) - 1, 0)

    out = []
    for h, r in pairs:
        (vh, nh, lh), (vr, nr, lr) = vec(h.split()), vec(r.split())
        val = 0.0
        for n in range(4):
            s = sum(min(x, vr[n].get(g, 0.0)) * vr[n].get(g, 0.0) for g, x in vh[n].items())
            if nh[n] and nr[n]:
                s /= nh[n] * nr[n]
            val += s * math.exp(-((lh - lr) ** 2) / (2 * sigma ** 2))
        out.append(10 * val / 4)
    return float(np.mean(out)), out


def test_report_generation_scores_equal_the_formulas():
    from xrbench.families.report_generation import _rouge, bleu_stats, cider_d, cider_doc_freq, corpus_bleu
    from xrbench.metrics.nlg import nlg_scores

    hyps, refs = [h for h, _ in REPORTS], [r for _, r in REPORTS]
    direct = nlg_scores(hyps, refs)  # pycocoevalcap itself
    stats = [bleu_stats(h, r) for h, r in REPORTS]
    fam_bleu = corpus_bleu(*(np.sum([s[k] for s in stats], axis=0) for k in
                             ("bleu_correct", "bleu_guess", "bleu_hyp_len", "bleu_ref_len")))
    mine = _corpus_bleu(REPORTS)
    for n in range(4):
        assert fam_bleu[n] == pytest.approx(mine[n], rel=1e-6, abs=1e-6), n
        assert direct[f"bleu{n + 1}"] == pytest.approx(mine[n], rel=1e-6, abs=1e-6), n
    want_rouge = np.mean([_rouge_l(h, r) for h, r in REPORTS])
    assert np.mean([_rouge(h, r) for h, r in REPORTS]) == pytest.approx(want_rouge)
    assert direct["rouge_l"] == pytest.approx(want_rouge)
    want_cider, each = _cider_d(REPORTS)
    df, n = cider_doc_freq(refs)
    assert [cider_d(h, r, df, n) for h, r in REPORTS] == pytest.approx(each)
    assert direct["cider_d"] == pytest.approx(want_cider)


def test_clinical_efficacy_is_example_based_over_positive_labels():
    """Convention (docs/tasks.md): ce_f1/precision/recall are per-report (example-based) over the 14
    observations, positive = label 1 only; a report with no positive on either side scores 1;
    ce_macro_f1 leaves out observations positive nowhere. micro_* equal sklearn's micro average."""
    from xrbench.text.labeller import ce_scores

    rng = np.random.default_rng(0)
    g = rng.random((12, 14)) < 0.2
    r = rng.random((12, 14)) < 0.2
    g[0], r[0] = False, False  # nothing on either side
    r[1] = False  # the generated report invents findings: precision 0, recall 0/0 -> 0
    r[:, 13], g[:, 13] = False, False  # one observation positive nowhere
    got = ce_scores(g & r, g & ~r, ~g & r)
    f1s, ps, rs = [], [], []
    for a, b in zip(g, r):
        tp, fp, fn = (a & b).sum(), (a & ~b).sum(), (~a & b).sum()
        if tp + fp + fn == 0:
            f1s.append(1.0), ps.append(1.0), rs.append(1.0)
            continue
        ps.append(tp / (tp + fp) if tp + fp else 0.0)
        rs.append(tp / (tp + fn) if tp + fn else 0.0)
        f1s.append(2 * tp / (2 * tp + fp + fn))
    assert got["example_f1"] == pytest.approx(np.mean(f1s))
    assert got["example_precision"] == pytest.approx(np.mean(ps))
    assert got["example_recall"] == pytest.approx(np.mean(rs))
    assert got["micro_f1"] == pytest.approx(f1_score(r, g, average="micro"))
    assert got["macro_f1"] == pytest.approx(f1_score(r[:, :13], g[:, :13], average="macro", zero_division=0))


# -- bootstrap ------------------------------------------------------------------------------------------

def _naive_percentile_bootstrap(metric, units, n_boot, seed):
    """Draw patients with replacement (the documented draw: units in order of first appearance,
    ``default_rng(seed).integers(0, G, (B, G))``), take all their rows, score, 2.5/97.5 percentiles
    of the defined replicates."""
    order = list(dict.fromkeys(units))
    rows = {u: [i for i, v in enumerate(units) if v == u] for u in order}
    picks = np.random.default_rng(seed).integers(0, len(order), (n_boot, len(order)))
    vals = np.array([metric(np.concatenate([rows[order[j]] for j in pick])) for pick in picks])
    ok = vals[~np.isnan(vals)]
    return np.percentile(ok, 2.5), np.percentile(ok, 97.5), float(np.isnan(vals).mean())


@pytest.mark.parametrize("seed", SEEDS)
def test_vectorised_bootstrap_equals_a_naive_loop_with_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = 60
    units = [f"p{i}" for i in rng.integers(0, 25, n)]
    y = (rng.random((n, 3)) < 0.35).astype(float)
    y[rng.random((n, 3)) < 0.1] = np.nan
    s = np.round(y * 0.3 + rng.random((n, 3)), 1)
    ci = bootstrap_ci(None, n, units, n_boot=200, seed=seed,
                      batch_metric=lambda w: {"v": weighted.auroc_macro_w(y, s, w)})["v"]
    lo, hi, undefined = _naive_percentile_bootstrap(lambda r: _sk_macro_auroc(y[r], s[r]), units, 200, seed)
    assert (ci[0], ci[1]) == pytest.approx((lo, hi), abs=1e-9)
    assert ci.undefined == undefined
    t = 0.6
    ci = bootstrap_ci(None, n, units, n_boot=200, seed=seed,
                      batch_metric=lambda w: {"v": weighted.cohen_kappa_w(y[:, 0], s[:, 0], w, threshold=t)})["v"]
    keep = ~np.isnan(y[:, 0])

    def kappa(r):
        r = r[keep[r]]
        return cohen_kappa_score(y[r, 0].astype(int), (s[r, 0] >= t).astype(int))

    lo, hi, _ = _naive_percentile_bootstrap(kappa, units, 200, seed)
    assert (ci[0], ci[1]) == pytest.approx((lo, hi), abs=1e-9)


def test_bootstrap_reports_no_interval_when_over_a_tenth_of_replicates_are_undefined():
    y = np.zeros(30)
    y[0] = 1  # one positive: ~37% of resamples miss it
    s = np.linspace(0, 1, 30)
    ci = bootstrap_ci(None, 30, [str(i) for i in range(30)], n_boot=300, seed=0,
                      batch_metric=lambda w: {"v": weighted.auroc_w(y, s, w)})["v"]
    assert math.isnan(ci[0]) and math.isnan(ci[1]) and 0.25 < ci.undefined < 0.5


#: (text, pycocoevalcap PTBTokenizer + its punctuation removal): recorded from PTBTokenizer (the
#: Stanford CoreNLP 3.4.1 jar of pycocoevalcap), each text followed by a neutral line in the batch
PTB_CASES = [
    ("PA and lateral views of the chest. No pneumothorax.", "pa and lateral views of the chest no pneumothorax"),
    ('Low lung volumes "bronchovascular crowding"', "low lung volumes bronchovascular crowding"),
    ("Lines/tubes: unchanged; 4.2 cm x-ray", "lines/tubes unchanged 4.2 cm x-ray"),
    ("r/o malignancy (left).", "r/o malignancy -lrb- left -rrb-"),
    ("The patient's film. Can't exclude", "the patient 's film ca n't exclude"),
    ("Volume ~3,000 mL, 5% & ___", "volume ~ 3,000 ml 5 % & ___"),
    ("at 1:00 p.m., e.g. T11-T12", "at 1:00 p.m. e.g. t11-t12"),
    ("Dr. ___ paged. No. 2 [ ] {x}", "dr. ___ paged no. 2 -lsb- -rsb- -lcb- x -rcb-"),
    ("Call 555 123 4567, 1 1/2 cm.", "call 555\u00a0123\u00a04567 1\u00a01/2 cm"),
    ("cannot; etc. The U.S.-U.K. wait. . . end", "can not etc. the u.s.-u.k. wait end"),
]
#: 5.8k more such pairs: the demo's MIMIC-style report lines, the MIMIC parser's test reports,
#: ~470 tricky report phrases alone and in 8 sentence contexts, and random strings of report
#: characters (tests/data/ptb_cases.json, recorded the same way)
PTB_FILE = Path(__file__).parent / "data" / "ptb_cases.json"


@pytest.mark.parametrize("text, ptb", PTB_CASES)
def test_tokenize_equals_ptb(text, ptb):
    from xrbench.metrics.nlg import tokenize

    assert tokenize(text) == ptb


def test_tokenize_equals_ptb_on_the_recorded_corpus():
    from xrbench.metrics.nlg import tokenize

    cases = json.loads(PTB_FILE.read_text(encoding="utf-8"))
    assert len(cases) > 5000
    bad = [(t, p, tokenize(t)) for t, p in cases if tokenize(t) != p]
    assert bad == []


def test_tokenize_reads_other_line_breaks_as_spaces():
    from xrbench.metrics.nlg import tokenize

    assert tokenize("No effusion.\r\nNo pneumothorax.\u2028Stable.") == "no effusion no pneumothorax stable"


@pytest.mark.skipif(__import__("shutil").which("java") is None, reason="PTBTokenizer is a Java program")
def test_recorded_ptb_column_is_what_ptbtokenizer_gives():
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    cases = PTB_CASES + [tuple(c) for c in json.loads(PTB_FILE.read_text(encoding="utf-8"))[::7]]
    lines = [x for t, _ in cases for x in (t.replace("\n", " "), "end")]
    with contextlib.redirect_stderr(io.StringIO()):
        got = PTBTokenizer().tokenize({i: [{"caption": t}] for i, t in enumerate(lines)})
    assert [got[2 * i][0] for i in range(len(cases))] == [p for _, p in cases]

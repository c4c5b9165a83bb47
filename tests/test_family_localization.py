"""The localization family: geometry, target encoding/decoding, scorer extremes, saved predictions,
and both tasks end to end on the demo (record, CIs, ``score`` reproduces, ``compare`` is paired)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from xrbench.data.sample import Box, Sample
from xrbench.errors import ConfigError, DataError
from xrbench.families import create_family
from xrbench.families.localization import decode, encode_targets
from xrbench.features.preprocess import Geometry, pad_geometry
from xrbench.tasks.catalog import TaskCatalog

TASKS = ("vindrcxr-localization", "spinexr-localization")


@pytest.fixture(scope="module")
def family():
    return create_family(TaskCatalog().resolve("vindrcxr-localization")[0])


@pytest.mark.parametrize("hw", [(100, 200), (300, 120), (77, 77)])
def test_geometry_grid_round_trip_on_padded_non_square_images(hw):
    geo = pad_geometry(*hw, 64)
    xy = np.random.default_rng(0).uniform(0, 1, (50, 2)) * [hw[1], hw[0]]
    for grid in [(4, 4), (14, 14), (7, 5)]:
        assert np.allclose(geo.from_grid(geo.to_grid(xy, grid), grid), xy, atol=1e-9)


def test_geometry_to_grid_values():
    geo = pad_geometry(100, 200, 64)  # side 200, padded 50 px on top, scale 0.32
    assert (geo.side, geo.top, geo.left) == (200, 50, 0)
    got = geo.to_grid(np.array([[0, 0], [200, 100], [100, 50]]), (4, 4))
    assert np.allclose(got, [[0, 1], [4, 3], [2, 2]])  # the image is the middle half of the grid


def _sample(i, boxes):
    return Sample(id=f"s{i}", image="x.png", patient=f"p{i}", split="test", boxes=boxes)


def test_truth_as_predictions_is_perfect_and_no_detections_score_zero(family):
    samples = [_sample(0, [Box(10, 20, 110, 220, "Cardiomegaly"), Box(300, 40, 340, 90, "Nodule/Mass")]),
               _sample(1, [Box(5, 5, 50, 60, "Pleural effusion", "R1"), Box(0, 0, 3, 3, "Other lesion")]),
               _sample(2, [])]  # no boxes: kept, its detections would be false positives
    truths = [family.target(s) for s in samples]
    assert [len(t) for t in truths] == [2, 1, 0]  # classes outside the task are not truth
    perfect = [[{**b, "score": 0.9} for b in t] for t in truths]
    stats = [family.unit_stats(t, p, {}) for t, p in zip(truths, perfect)]
    got = family.aggregate(family.stack(stats), np.arange(3), {})
    assert got["map50"] == pytest.approx(1.0) and got["map"] == pytest.approx(1.0)
    assert got["ap50/Cardiomegaly"] == pytest.approx(1.0) and math.isnan(got["ap50/Aortic enlargement"])
    empty = [family.unit_stats(t, [], {}) for t in truths]
    got = family.aggregate(family.stack(empty), np.array([0, 0, 1, 2]), {})  # a resample, duplicates
    assert got["map50"] == 0.0 and got["map"] == 0.0
    assert family.test_warnings(family.stack(empty)) == [
        "few_test_boxes: Cardiomegaly has 1 test boxes (< 10)", "few_test_boxes: Pleural effusion has 1 test "
        "boxes (< 10)", "few_test_boxes: Nodule/Mass has 1 test boxes (< 10)",
        "empty_predictions: the head detects nothing on any test image"]
    assert "empty_predictions" not in " ".join(family.test_warnings(family.stack(stats)))
    # a false positive on the image without boxes ranked above the true box halves the precision
    fp = [perfect[0], perfect[1], [{"box": [0, 0, 10, 10], "label": "Pleural effusion", "score": 0.95}]]
    stats = [family.unit_stats(t, p, {}) for t, p in zip(truths, fp)]
    assert family.aggregate(family.stack(stats), np.arange(3), {})["ap50/Pleural effusion"] == \
        pytest.approx(0.5, abs=0.01)


def test_encoded_targets_decode_back_to_the_boxes(family):
    """Perfect head outputs (logits from the encoded targets) decode to the truth in original pixels."""
    classes = family.classes
    geos = [pad_geometry(400, 600, 224), pad_geometry(500, 300, 224)]
    truths = [[{"box": [30.0, 60.0, 250.0, 200.0], "label": "Cardiomegaly"},
               {"box": [400.0, 300.0, 460.0, 340.0], "label": "Nodule/Mass"}],
              [{"box": [10.0, 400.0, 290.0, 490.0], "label": "Pleural effusion"}]]
    geometry = np.array([[g.height, g.width, g.side, g.top, g.left, g.size] for g in geos])
    t = encode_targets(truths, geometry, (14, 14), classes)
    assert t["mask"].sum() == 3 and t["heat"].max() == 1.0 and (t["heat"] == 1).sum() == 3
    heat = np.clip(t["heat"], 1e-6, 1 - 1e-3)
    logits = torch.from_numpy(np.log(heat / (1 - heat)).astype(np.float32))
    dets = decode(logits, torch.from_numpy(t["size"]), torch.from_numpy(t["offset"]), geometry, classes)
    assert all(len(d) <= 100 for d in dets)
    for want, got in zip(truths, dets):
        got = [d for d in got if d["score"] > 0.5]  # flat background cells are (low) plateau peaks
        assert sorted(d["label"] for d in got) == sorted(b["label"] for b in want)
        for b in want:
            d = next(d for d in got if d["label"] == b["label"])
            assert np.allclose(d["box"], b["box"], atol=0.02) and d["score"] == pytest.approx(0.999)


def test_saved_prediction_is_validated(family):
    ok = {"prediction": [{"box": [0, 0, 5, 5], "label": "Cardiomegaly", "score": 0.5}]}
    assert family.prediction_from_row(ok, path="p.jsonl", line=3) == ok["prediction"]
    bad = [{"box": [0, 0, 5], "label": "Cardiomegaly", "score": 0.5},
           {"box": [5, 0, 0, 5], "label": "Cardiomegaly", "score": 0.5},
           {"box": [0, 0, 5, 5], "label": "Cardiomegally", "score": 0.5},
           {"box": [0, 0, 5, 5], "label": "Cardiomegaly", "score": float("nan")},
           {"box": [0, 0, 5, 5], "label": "Cardiomegaly"}]
    for d in bad:
        with pytest.raises(DataError, match=r"p\.jsonl.*row 7"):
            family.prediction_from_row({"prediction": [d]}, path="p.jsonl", line=7)
    with pytest.raises(DataError, match="row 7"):
        family.prediction_from_row({"prediction": {"box": []}}, path="p.jsonl", line=7)


def test_metric_names_are_checked():
    spec = TaskCatalog().resolve("spinexr-localization")[0]
    assert "map50" in create_family(spec).known_metrics()
    with pytest.raises(ConfigError, match="did you mean 'map50'"):
        create_family(spec.model_copy(update={"metrics": ["map50", "map_50"]}))


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    from xrbench.models.timm_adapter import create_timm_encoder
    from xrbench.runner import RunConfig, Runner

    work = tmp_path_factory.mktemp("loc")
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XRBENCH_HOME", str(work / "home"))
        mp.setenv("XRBENCH_DEMO_SCALE", "0.35")
        torch.set_num_threads(1)  # tiny tensors: threads cost more than they save on a shared CPU
        try:
            enc = create_timm_encoder("tiny-vit", "vit_tiny_patch16_224", input_size=64, seed=0)
            cfg = RunConfig(output=work / "out", feature_root=work / "features", n_boot=200)
            recs = Runner(enc, cfg).run(TaskCatalog().resolve(",".join(TASKS)))
            yield work, {r.task: r for r in recs}
        finally:
            torch.set_num_threads(threads)


@pytest.mark.slow
def test_demo_run_writes_records_with_cis(demo_run):
    work, recs = demo_run
    assert sorted(recs) == sorted(TASKS)
    for task, rec in recs.items():
        saved = json.loads((work / "out" / "tiny-vit" / task / "seed0.json").read_text())
        assert saved["primary_metric"] == "map50" and saved["family"] == "localization"
        for name in ("map50", "map"):
            m = rec.metrics[name]
            assert 0.0 <= m.value <= 1.0 and m.ci_low <= m.value <= m.ci_high, (task, name)
        assert rec.hparams["epochs"] in (4, 8, 12, 16, 20, 24)
        assert any(k.startswith("ap50/") for k in rec.metrics)
    assert recs["vindrcxr-localization"].hparams["dataset_options"] == {"box_aggregation": "fused"}


@pytest.mark.slow
def test_saved_predictions_rescore_exactly_and_compare_paired_same(demo_run):
    from xrbench.results.compare import compare
    from xrbench.results.score import score_file

    work, recs = demo_run
    for task, rec in recs.items():
        pred = work / "out" / "tiny-vit" / task / "seed0.predictions.jsonl"
        rows = [json.loads(line) for line in pred.read_text().splitlines()[1:]]
        assert all(isinstance(r["prediction"], list) for r in rows)
        spec = TaskCatalog().resolve(task)[0]
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("XRBENCH_HOME", str(work / "home"))
            mp.setenv("XRBENCH_DEMO_SCALE", "0.35")
            got = score_file(spec, pred, n_boot=200)
        want = {k: (m.value, m.ci_low, m.ci_high) for k, m in rec.metrics.items()}
        assert got.keys() == want.keys()
        for k in want:
            assert np.array_equal(got[k], want[k], equal_nan=True), (task, k)
    report = compare([work / "out"], [work / "out"], n_boot=200)
    assert {c.task for c in report.comparisons} == set(TASKS)
    assert all(c.paired and c.verdict == "same" and c.delta == 0 for c in report.comparisons)

"""The landmarks family: geometry, scorer bounds, metric names, prediction validation, head, and a
Runner run of ceph-landmarks on the demo that ``score`` and ``compare`` reproduce."""
from __future__ import annotations

import json

import numpy as np
import pytest

from xrbench.errors import ConfigError, DataError
from xrbench.families import create_family
from xrbench.families.base import SplitData
from xrbench.features.preprocess import pad_geometry
from xrbench.features.view import FeatureRows
from xrbench.tasks.catalog import TaskCatalog


@pytest.fixture
def spec():
    return TaskCatalog().resolve("ceph-landmarks")[0]


@pytest.mark.parametrize("hw", [(300, 200), (120, 333), (64, 64)])
@pytest.mark.parametrize("grid", [(14, 14), (4, 4), (1, 1)])
def test_geometry_round_trip_original_grid_original(hw, grid):
    geo = pad_geometry(*hw, size=224)
    xy = np.random.default_rng(0).uniform([0, 0], [hw[1], hw[0]], (50, 2))
    g = geo.to_grid(xy, grid)
    np.testing.assert_allclose(geo.from_grid(g, grid), xy, atol=1e-9)
    # a point lands in the cell covering its input pixel: cell gx spans input [gx*size/w, (gx+1)*size/w)
    cells = np.floor(geo.to_input(xy) / (224 / np.array(grid[::-1]))).astype(int)
    np.testing.assert_array_equal(np.floor(g).astype(int), cells)
    assert (g >= 0).all() and (g < np.array(grid[::-1])).all()


def test_geometry_padding_offsets_are_in_the_grid():
    geo = pad_geometry(100, 200, size=224)  # landscape: 50 rows of padding above
    # the original's top-left corner is a quarter of the way down the padded square
    np.testing.assert_allclose(geo.to_grid([[0.0, 0.0]], (4, 4)), [[0.0, 1.0]])
    np.testing.assert_allclose(geo.from_grid([[4.0, 3.0]], (4, 4)), [[200.0, 100.0]])


def _truths(family, n=6, seed=0):
    rng = np.random.default_rng(seed)
    return [{"xy": rng.uniform(0, 250, (family.k, 2)).tolist(), "spacing_mm": 0.1} for _ in range(n)]


def _metrics(family, truths, preds):
    stats = [family.unit_stats(t, p, {}) for t, p in zip(truths, preds)]
    return family.aggregate(family.stack(stats), np.arange(len(stats)), {})


def test_truth_as_prediction_is_perfect_and_a_shift_costs_its_length_in_mm(spec):
    family = create_family(spec)
    truths = _truths(family)
    assert _metrics(family, truths, [t["xy"] for t in truths]) == {
        "mre_mm": 0.0, "sdr@2mm": 1.0, "sdr@2.5mm": 1.0, "sdr@3mm": 1.0, "sdr@4mm": 1.0}
    # 30 px right and 40 px down = 50 px = 5 mm at 0.1 mm/px: beyond every threshold (the worst SDR)
    shifted = [(np.asarray(t["xy"]) + [30.0, 40.0]).tolist() for t in truths]
    got = _metrics(family, truths, shifted)
    assert got["mre_mm"] == pytest.approx(5.0)
    assert [got[m] for m in ("sdr@2mm", "sdr@2.5mm", "sdr@3mm", "sdr@4mm")] == [0.0] * 4
    # 24 px = 2.4 mm: inside 2.5 mm, outside 2 mm
    got = _metrics(family, truths, [(np.asarray(t["xy"]) + [24.0, 0.0]).tolist() for t in truths])
    assert (got["sdr@2mm"], got["sdr@2.5mm"], got["mre_mm"]) == (0.0, 1.0, pytest.approx(2.4))


def test_a_missing_truth_is_left_out_of_every_metric(spec):
    family = create_family(spec)
    truths = _truths(family, n=2)
    truths[0]["xy"][3] = [float("nan"), float("nan")]
    preds = [(np.nan_to_num(np.asarray(t["xy"])) + [10.0, 0.0]).tolist() for t in truths]
    preds[0][3] = [1e6, 1e6]  # would dominate the mean if it were counted
    assert _metrics(family, truths, preds)["mre_mm"] == pytest.approx(1.0)


def test_metric_names_are_checked_when_the_family_is_created(spec):
    with pytest.raises(ConfigError, match="unknown landmark metric 'mre'.*Did you mean: mre_mm"):
        create_family(spec.model_copy(update={"metrics": ["mre", "sdr@2mm"]}))
    with pytest.raises(ConfigError, match="sdr@2.0mm"):  # one spelling per threshold
        create_family(spec.model_copy(update={"metrics": ["mre_mm", "sdr@2.0mm"]}))
    family = create_family(spec.model_copy(update={"metrics": ["mre_mm", "sdr@1mm"]}))
    truths = _truths(family, n=3)
    got = _metrics(family, truths, [(np.asarray(t["xy"]) + [0.0, 5.0]).tolist() for t in truths])
    assert got == {"mre_mm": pytest.approx(0.5), "sdr@1mm": 1.0}


@pytest.mark.parametrize("bad", [None, [[1.0, 2.0]] * 18, [[1.0, 2.0, 3.0]] * 19, [[1.0, "x"]] * 19,
                                 [[1.0, float("nan")]] * 19, [[True, 2.0]] * 19, "1,2"])
def test_a_malformed_saved_prediction_is_one_data_error_naming_the_row(spec, bad):
    family = create_family(spec)
    with pytest.raises(DataError, match=r"preds\.jsonl, row 7, field 'prediction': expected 19 landmark points"):
        family.prediction_from_row({"id": "a", "prediction": bad}, path="preds.jsonl", line=7)
    assert family.prediction_from_row({"id": "a", "prediction": [[1, 2.5]] * 19}, path="p", line=2) == \
        [[1.0, 2.5]] * 19


def _synthetic_split(family, n, rng, grid=4, dim=16):
    """Patch grids that carry each image's landmark cells (a one-hot per landmark, + noise)."""
    from xrbench.data.sample import Sample

    feats = rng.normal(0, 0.1, (n, grid, grid, dim)).astype(np.float16)
    samples, geos = [], []
    for i in range(n):
        h, w = int(rng.integers(150, 260)), int(rng.integers(150, 260))
        geo = pad_geometry(h, w, size=64)
        xy = rng.uniform([0, 0], [w - 1, h - 1], (family.k, 2))
        for j, (gx, gy) in enumerate(np.floor(geo.to_grid(xy, (grid, grid))).astype(int)):
            feats[i, gy, gx, j % dim] += 1.0
        samples.append(Sample(id=f"s{i}", image=f"s{i}.bmp", patient=f"p{i}", split="train", landmarks=xy,
                              spacing_mm=0.1))
        geos.append([h, w, geo.side, geo.top, geo.left, geo.size])
    return SplitData(samples, FeatureRows(feats), np.asarray(geos))


def test_head_learns_beyond_the_mean_shape_deterministically_in_original_pixels(spec):
    family = create_family(spec.model_copy(update={"target": spec.target.model_copy(
        update={"labels": spec.target.labels[:6]})}))
    rng = np.random.default_rng(0)
    train, val, test = (_synthetic_split(family, n, rng) for n in (48, 8, 12))
    out = family.fit_predict(train, val, test, seed=0, device="cpu")
    again = family.fit_predict(train, val, test, seed=0, device="cpu")
    assert out.predictions == again.predictions and out.hparams == again.hparams
    assert out.hparams["epochs"] in (5, 10, 15, 20, 30) and out.hparams["heatmap"] == [16, 16]
    truths = [family.target(s) for s in test.samples]
    got = _metrics(family, truths, out.predictions)["mre_mm"]
    mean = np.mean([s.landmarks for s in train.samples], axis=0)
    baseline = _metrics(family, truths, [mean.tolist()] * len(truths))["mre_mm"]
    assert got < 0.6 * baseline  # the cell a landmark is in is in the features: the head must find it
    json.dumps(out.predictions)  # JSON-able as they are


@pytest.mark.slow
def test_ceph_landmarks_on_the_demo_is_rescored_and_compared_exactly(tmp_path, monkeypatch, tiny_encoder, spec):
    from xrbench.results.compare import compare
    from xrbench.results.score import score_file
    from xrbench.runner import RunConfig, Runner

    monkeypatch.setenv("XRBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XRBENCH_DEMO_SCALE", "0.25")  # 40 images: the smallest demo with a val split
    cfg = RunConfig(output=tmp_path / "out", feature_root=tmp_path / "features", n_boot=200)
    (rec,) = Runner(tiny_encoder, cfg).run([spec])
    folder = tmp_path / "out" / "tiny-vit" / "ceph-landmarks"
    assert (folder / "seed0.json").is_file() and rec.primary_metric == "mre_mm"
    assert sorted(rec.metrics) == sorted(spec.metrics)
    for name, m in rec.metrics.items():
        assert m.ci_low <= m.value <= m.ci_high, name
    assert 0 < rec.metrics["mre_mm"].value < 5.0 and rec.hparams["heatmap"] == [16, 16]
    rows = [json.loads(line) for line in (folder / "seed0.predictions.jsonl").read_text().splitlines()[1:]]
    assert len(rows) == rec.n["test"] and all(len(r["prediction"]) == 19 for r in rows)
    again = score_file(spec, folder / "seed0.predictions.jsonl", n_boot=200)
    assert again == {k: (m.value, m.ci_low, m.ci_high) for k, m in rec.metrics.items()}
    (c,) = compare([tmp_path / "out"], [tmp_path / "out"], n_boot=200).comparisons
    assert c.paired and c.verdict == "same" and c.delta == 0.0 and c.metric == "mre_mm"


def test_predictions_made_elsewhere_minimal_v2_file(tmp_path, monkeypatch, spec):
    """docs/results.md, 'Predictions made elsewhere': a header with format, version and task, then
    {"id", "prediction"} rows. Every point 3 px right and 4 px down of the truth at 0.1 mm per
    pixel is a radial error of 0.5 mm on every landmark."""
    from xrbench.data.demo import dataset_root
    from xrbench.errors import DataError
    from xrbench.registry import DATASETS
    from xrbench.results.merge import ResultsError
    from xrbench.results.score import score_file

    monkeypatch.setenv("XRBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XRBENCH_DEMO_SCALE", "0.25")
    test = DATASETS.get("isbi2015-ceph")(dataset_root("isbi2015-ceph", None), seed=0,
                                         **spec.dataset_options).split("test")
    assert {s.spacing_mm for s in test} == {0.1}
    head = json.dumps({"format": "xrbench-predictions", "version": 2, "task": "ceph-landmarks"})
    rows = [json.dumps({"id": s.id, "prediction": (np.asarray(s.landmarks) + [3.0, 4.0]).tolist()}) for s in test]
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join([head, *rows]) + "\n")
    got = score_file(spec, path, n_boot=0)
    assert got["mre_mm"][0] == pytest.approx(0.5) and got["sdr@2mm"][0] == 1.0
    path.write_text("\n".join([head, *rows, rows[0]]) + "\n")
    with pytest.raises(ResultsError, match=rf"line {len(rows) + 2}: id '{test[0].id}' is also on line 2"):
        score_file(spec, path, n_boot=0)
    flat = tmp_path / "flat.csv"
    flat.write_text("id,score\n" + "".join(f"{s.id},1\n" for s in test[:3]))
    with pytest.raises(DataError, match="task family 'landmarks' takes predictions in the version-2 JSONL"):
        score_file(spec, flat, n_boot=0)

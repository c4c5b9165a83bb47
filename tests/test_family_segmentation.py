"""The segmentation family: mask geometry, scorer conventions, the heads, and run -> score -> compare."""
from __future__ import annotations

import json

import numpy as np
import pytest

from xrbench.data.masks import load_mask
from xrbench.data.sample import MaskRef, Sample
from xrbench.errors import ConfigError, DataError
from xrbench.families import create_family
from xrbench.families.base import SplitData
from xrbench.families.segmentation import (METRIC_NAMES, encode_prediction, logits_to_original,
                                           mask_target)
from xrbench.features.preprocess import Geometry, pad_geometry
from xrbench.features.view import FeatureRows
from xrbench.tasks.catalog import TaskCatalog


def _spec(task="siim-segmentation", **update):
    spec = TaskCatalog().tasks.get(task)
    return spec.model_copy(update=update) if update else spec


def _rect(h, w, y0, y1, x0, x1) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def _poly_ref(mask: np.ndarray) -> MaskRef:
    """An axis-aligned rectangle mask as the COCO polygon of its pixel edges."""
    ys, xs = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    x0, x1, y0, y1 = xs[0], xs[-1] + 1, ys[0], ys[-1] + 1
    return MaskRef("polygons", ((x0, y0, x1, y0, x1, y1, x0, y1),), *mask.shape)


@pytest.mark.parametrize("hw", [(48, 64), (64, 40), (37, 91)])
def test_geometry_round_trip_original_grid_original_on_padded_images(hw):
    geo = pad_geometry(*hw, 224)
    xy = np.random.default_rng(0).uniform(0, 1, (50, 2)) * [hw[1], hw[0]]
    for grid in ((14, 14), (7, 7), (56, 56)):
        g = geo.to_grid(xy, grid)
        assert np.allclose(geo.from_grid(g, grid), xy)
        assert (g >= 0).all() and (g[:, 0] <= grid[1]).all() and (g[:, 1] <= grid[0]).all()
    # the padded image's corners map to the grid's corners; the original's are offset by the pad
    pad_corners = np.array([[-geo.left, -geo.top], [geo.side - geo.left, geo.side - geo.top]])
    corners = geo.to_grid(pad_corners, (14, 14))
    assert np.allclose(corners, [[0, 0], [14, 14]])


@pytest.mark.parametrize("geo", [Geometry(48, 64, 64, 8, 0, 64), Geometry(64, 48, 64, 0, 8, 32)])
def test_mask_to_grid_and_back_is_exact_for_cell_aligned_masks(geo):
    """Padding follows preprocessing: a band of whole grid cells across the padded axis becomes
    exact 0/1 targets, and +/-1 logits on those cells come back as exactly the original band (a
    band, because bilinear interpolation rounds a rectangle's corners and mixes the pad's logits
    into the image's edge pixels)."""
    h, w = geo.height, geo.width
    for mask in [_rect(h, w, 8, 24, 0, w) if geo.top else _rect(h, w, 0, h, 16, 32)]:
        target = mask_target(mask, geo, (16, 16))
        assert set(np.unique(target)) == {0.0, 1.0}
        assert target.sum() == pytest.approx(mask.sum() * (16 / geo.side) ** 2)
        back = logits_to_original(np.where(target > 0.5, 1.0, -1.0), geo) > 0
        assert back.shape == mask.shape and np.array_equal(back, mask)
    # partial coverage: the covered fraction of each output cell (cells of side/2 padded pixels)
    coarse = mask_target(_rect(h, w, 8, 24, 16, 32), geo, (2, 2))
    want = [[16 * 16, 0], [0, 0]] if geo.top else [[16 * 8, 16 * 8], [0, 0]]
    assert np.allclose(coarse * (geo.side / 2) ** 2, want)


def test_truth_as_prediction_is_perfect_and_empty_prediction_is_the_documented_worst():
    fam = create_family(_spec())
    pos = _rect(40, 60, 5, 20, 10, 30)
    truths = [_poly_ref(pos), MaskRef("siim-rle", (), 40, 60), _poly_ref(_rect(40, 60, 0, 40, 50, 60))]
    perfect = [fam.unit_stats(t, encode_prediction(load_mask(t)), {}) for t in truths]
    got = fam.aggregate(fam.stack(perfect), np.arange(3), {})
    assert got == {"dice": 1.0, "dice_pos": 1.0, "iou": 1.0, "hd95": 0.0}
    assert fam.test_warnings(fam.stack(perfect)) == ["few_test_positives: Pneumothorax has 2 test images "
                                                     "with a mask (< 10)"]
    empty = [fam.unit_stats(t, encode_prediction(np.zeros((40, 60), bool)), {}) for t in truths]
    got = fam.aggregate(fam.stack(empty), np.arange(3), {})
    diagonal = np.hypot(40, 60)
    assert got["dice"] == pytest.approx(1 / 3) and got["iou"] == pytest.approx(1 / 3)
    assert got["dice_pos"] == 0.0
    assert fam.test_warnings(fam.stack(empty))[1:] == [
        "empty_predictions: the head predicts an empty mask on every test image"]
    assert got["hd95"] == pytest.approx(2 * diagonal / 3)
    # a bootstrap resample repeats units
    assert fam.aggregate(fam.stack(empty), np.array([1, 1, 0]), {})["dice"] == pytest.approx(2 / 3)


def test_malformed_predictions_are_named():
    fam = create_family(_spec())
    for bad in ("1 2", {"size": [4, 4]}, {"size": [4], "rle": "1 2"}, {"size": [4, 4], "rle": "1 x"},
                {"size": [4, 4], "rle": "3 20"}):
        with pytest.raises(DataError, match=r"preds\.jsonl.*row 7.*prediction"):
            fam.prediction_from_row({"id": "a", "prediction": bad}, path="preds.jsonl", line=7)
    ok = {"size": [4, 4], "rle": "3 2"}
    assert fam.prediction_from_row({"prediction": ok}, path="p", line=2) == ok
    with pytest.raises(DataError, match="5x4; the image is 4x4"):
        fam.unit_stats(MaskRef("siim-rle", (), 4, 4), {"size": [5, 4], "rle": "-1"}, {})


def test_heads_and_metrics_are_checked_with_did_you_mean():
    from xrbench.tasks.schema import Protocol

    with pytest.raises(ConfigError, match=r"protocol\.name.*Did you mean: decoder"):
        create_family(_spec(protocol=Protocol(name="decodr")))
    with pytest.raises(ConfigError, match=r"'metrics'.*Did you mean: dice_pos"):
        create_family(_spec(metrics=["dice", "dice_poss"]))
    with pytest.raises(ConfigError, match="take no 'protocol.args'"):
        create_family(_spec(protocol=Protocol(name="linear", args={"lr": 1})))
    assert create_family(_spec()).known_metrics() == list(METRIC_NAMES)
    for task in ("siim-segmentation", "fracatlas-segmentation"):
        assert set(_spec(task).metrics) <= set(METRIC_NAMES)


def _synthetic_split(n: int, split: str, seed: int, hw=(40, 64), grid=(8, 8), dim=6) -> SplitData:
    """Non-square images whose masks (half of them empty) are written linearly in channel 0."""
    rng = np.random.default_rng(seed)
    geo = pad_geometry(*hw, 64)
    feats, samples = np.zeros((n, *grid, dim), np.float16), []
    for i in range(n):
        mask = np.zeros(hw, bool)
        if i % 2:
            y0, x0 = rng.integers(0, hw[0] - 16), rng.integers(0, hw[1] - 16)
            mask[y0:y0 + int(rng.integers(8, 16)), x0:x0 + int(rng.integers(8, 16))] = True
        feats[i, ..., 0] = 4 * mask_target(mask, geo, grid) - 2
        feats[i, ..., 1:] = rng.normal(size=(*grid, dim - 1))
        ref = _poly_ref(mask) if mask.any() else MaskRef("siim-rle", (), *hw)
        samples.append(Sample(id=f"{split}{i}", image=f"/nonexistent/{split}{i}.png", patient=f"{split}{i}",
                              split=split, mask=ref))
    geometry = np.tile([geo.height, geo.width, geo.side, geo.top, geo.left, geo.size], (n, 1))
    return SplitData(samples, FeatureRows(feats), geometry)


@pytest.mark.parametrize("head,min_dice,min_pos", [("linear", 0.75, 0.5), ("decoder", 0.85, 0.7)])
def test_heads_learn_a_mask_written_in_the_features(head, min_dice, min_pos):
    """Half the images are empty: an empty predictor scores Dice 0.5 and dice_pos 0. The linear
    head works on 8x8 cells of 8 padded pixels, so the rectangles' edges cost it some Dice."""
    from xrbench.tasks.schema import Protocol

    fam = create_family(_spec(protocol=Protocol(name=head)))
    train, val, test = (_synthetic_split(n, s, k) for k, (n, s) in enumerate([(24, "train"), (8, "val"),
                                                                               (8, "test")]))
    out = fam.fit_predict(train, val, test, seed=0, device="cpu")
    again = fam.fit_predict(train, val, test, seed=0, device="cpu")
    assert out.predictions == again.predictions  # deterministic
    assert str(out.hparams["epochs"]) in out.hparams["val_curve"]
    assert out.val_score == max(out.hparams["val_curve"].values())
    stats = [fam.unit_stats(s.mask, p, {}) for s, p in zip(test.samples, out.predictions)]
    got = fam.aggregate(fam.stack(stats), np.arange(len(stats)), {})
    assert got["dice"] > min_dice and got["dice_pos"] > min_pos
    assert all(p["size"] == [40, 64] for p in out.predictions)


@pytest.mark.slow
def test_run_score_and_compare_on_the_demo(tmp_path, monkeypatch, tiny_encoder):
    from xrbench.results.compare import compare
    from xrbench.results.score import score_file
    from xrbench.runner import RunConfig, Runner

    monkeypatch.setenv("XRBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XRBENCH_DEMO_SCALE", "0.15")
    out = tmp_path / "out"
    cfg = RunConfig(output=out, feature_root=tmp_path / "features", n_boot=200)
    specs = TaskCatalog().resolve("siim-segmentation,fracatlas-segmentation")
    with pytest.warns(UserWarning, match="random-init"):
        recs = Runner(tiny_encoder, cfg).run(specs)
    assert [r.task for r in recs] == ["siim-segmentation", "fracatlas-segmentation"]
    for spec, rec in zip(specs, recs):
        folder = out / "tiny-vit" / spec.name
        assert json.loads((folder / "seed0.json").read_text())["primary_metric"] == "dice"
        assert sorted(rec.metrics) == sorted(spec.metrics)
        unreliable = " ".join(w for w in rec.warnings if w.startswith("ci_unreliable"))
        for name, m in rec.metrics.items():
            if m.value == m.value and m.ci_low == m.ci_low:
                assert m.ci_low <= m.value <= m.ci_high, name
            elif m.value == m.value:  # no CI: only when too many replicates are undefined, and said so
                assert f"{name} is undefined" in unreliable, (name, rec.warnings)
        rows = (folder / "seed0.predictions.jsonl").read_text().splitlines()[1:]
        assert len(rows) == rec.n["test"] and all("rle" in json.loads(r)["prediction"] for r in rows)
        rescored = score_file(spec, folder / "seed0.predictions.jsonl", n_boot=200)
        want = {k: np.array([m.value, m.ci_low, m.ci_high], float) for k, m in rec.metrics.items()}
        assert sorted(rescored) == sorted(want)
        assert all(np.array_equal(np.array(rescored[k], float), want[k], equal_nan=True) for k in want)
    rep = compare([out / "tiny-vit"], [out / "tiny-vit"], n_boot=200)
    assert len(rep.comparisons) == 2
    assert all(c.paired and c.verdict == "same" and c.delta == 0.0 for c in rep.comparisons)

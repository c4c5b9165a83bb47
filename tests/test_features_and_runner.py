"""Feature store and runner on a toy registered dataset (fast encoder, tiny images)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from xrbench.data.images import write_raster
from xrbench.data.sample import Sample
from xrbench.features.extract import FeatureExtractor
from xrbench.features.store import FeatureStore
from xrbench.runner import RunConfig, Runner
from xrbench.tasks.catalog import TaskCatalog

from _results_fixtures import ToySpots, toy_tasks  # tests/ is on sys.path under pytest


@pytest.fixture
def toy(tmp_path):
    root = tmp_path / "toy"
    ToySpots.write_demo(root, n=60, seed=0)
    return root, toy_tasks(tmp_path / "tasks")


def test_second_run_does_no_forward_pass_and_gives_identical_numbers(toy, tmp_path, tiny_encoder, monkeypatch):
    root, tasks = toy
    specs = TaskCatalog([tasks]).resolve("toy-spots-linear")
    cfg = RunConfig(output=tmp_path / "out", data_roots={"toy-spots": root}, n_boot=200,
                    feature_root=tmp_path / "features")
    tiny_encoder.meta = tiny_encoder.meta.__class__(**{**tiny_encoder.meta.to_dict(), "weights": "test",
                                                        "weights_sha256": "0" * 64})
    first = Runner(tiny_encoder, cfg).run(specs)
    assert tiny_encoder.images_encoded == 60
    from xrbench.families.global_features import Classification

    def no_scorer(*a, **k):
        raise AssertionError("a cached rerun runs no scorer")

    monkeypatch.setattr(Classification, "unit_stats", no_scorer)
    second = Runner(tiny_encoder, cfg).run(specs)
    assert tiny_encoder.images_encoded == 60  # everything came from the store
    a, b = first[0], second[0]
    assert a.primary.value == b.primary.value and a.primary.ci_low == b.primary.ci_low
    assert a.metrics == b.metrics and a.hparams == b.hparams
    assert b.timings["fit_s"] < a.timings["fit_s"]  # the head output came from the head cache
    assert len(list((tmp_path / "features" / ".heads").glob("*.stats.json"))) == 1
    assert len(list((tmp_path / "features" / ".heads").glob("*.json"))) == 2  # the head output, its stats
    assert a.primary.value > 0.8  # the spot is visible
    rec = json.loads((tmp_path / "out" / "tiny-vit" / "toy-spots-linear" / "seed0.json").read_text())
    assert rec["data"] == "real" and rec["n"]["test"] == 12 and rec["provenance"]["torch"]
    preds = (tmp_path / "out" / "tiny-vit" / "toy-spots-linear" / "seed0.predictions.jsonl").read_text().splitlines()
    head, row = json.loads(preds[0]), json.loads(preds[1])
    assert (head["format"], head["version"], head["task"], head["family"]) == (
        "xrbench-predictions", 2, "toy-spots-linear", "linear")
    assert head["labels"] == ["spot"] and len(preds) == 13
    assert set(row) == {"id", "patient", "group", "boot_unit", "prediction", "stats"}
    assert row["stats"]["s"] == row["prediction"] and len(row["stats"]["y"]) == 1
    lb = (tmp_path / "out" / "leaderboard.csv").read_text().splitlines()
    assert lb[0].startswith("task,task_version,model,weights,metric,direction,value,ci_low,ci_high,n_train")
    assert len(lb) == 2  # one row per (model, weights, task, fraction), replaced on rerun


def test_random_init_refuses_real_data(toy, tmp_path, tiny_encoder):
    from xrbench.errors import ModelError

    root, tasks = toy
    cfg = RunConfig(output=tmp_path / "out", data_roots={"toy-spots": root},
                    feature_root=tmp_path / "features")
    with pytest.raises(ModelError, match="random-init runs only on the synthetic demo"):
        Runner(tiny_encoder, cfg).run(TaskCatalog([tasks]).resolve("toy-spots-linear"))


def test_store_is_keyed_by_weights_and_never_half_written(tmp_path, tiny_encoder):
    samples = [Sample(id=str(i), image=tmp_path / f"{i}.png", patient=str(i), split="train") for i in range(4)]
    for i in range(4):
        write_raster(samples[i].image, np.full((32, 32), i / 4))
    store = FeatureStore(tmp_path / "fs")
    ex = FeatureExtractor(tiny_encoder, store)
    g = ex.features("d", "train", samples, "m1", ["global", "patches"])
    assert g["global"].shape == (4, 192) and g["patches"].shape == (4, 4, 4, 192)
    k1 = ex.key("d", "train", "m1", "global")
    assert ex.key("d", "train", "m2", "global") != k1  # other images
    tiny_encoder.meta = tiny_encoder.meta.__class__(**{**tiny_encoder.meta.to_dict(), "weights_sha256": "ab"})
    assert ex.key("d", "train", "m1", "global") != k1  # other weights
    assert not any(p.name.startswith(".") for p in (tmp_path / "fs").iterdir())  # no temp leftovers


def test_score_reproduces_run_and_refuses_bad_ids(toy, tmp_path, tiny_encoder):
    from xrbench.errors import DataError
    from xrbench.results.score import score_file

    root, tasks = toy
    spec = TaskCatalog([tasks]).resolve("toy-spots-linear")[0]
    tiny_encoder.meta = tiny_encoder.meta.__class__(**{**tiny_encoder.meta.to_dict(), "weights": "test"})
    cfg = RunConfig(output=tmp_path / "out", data_roots={"toy-spots": root}, n_boot=200,
                    feature_root=tmp_path / "features")
    rec = Runner(tiny_encoder, cfg).run([spec])[0]
    saved = tmp_path / "out" / "tiny-vit" / "toy-spots-linear" / "seed0.predictions.jsonl"
    got = score_file(spec, saved, data_roots={"toy-spots": root}, n_boot=200)
    assert got["auroc"] == (rec.primary.value, rec.primary.ci_low, rec.primary.ci_high)
    # without n_boot: the run's 200 replicates from the header, not 1000 (other CI bounds)
    got = score_file(spec, saved, data_roots={"toy-spots": root})
    assert got["auroc"] == (rec.primary.value, rec.primary.ci_low, rec.primary.ci_high)
    assert score_file(spec, saved, data_roots={"toy-spots": root}, n_boot=1000)["auroc"][1:] != got["auroc"][1:]

    # the same predictions as a flat CSV made elsewhere
    rows = [json.loads(ln) for ln in saved.read_text().splitlines()[1:]]
    lines = ["id,patient,score:spot"] + [f"{r['id']},{r['patient']},{r['prediction'][0]!r}" for r in rows]
    preds = tmp_path / "flat.csv"
    preds.write_text("\n".join(lines) + "\n")
    got = score_file(spec, preds, data_roots={"toy-spots": root}, n_boot=200, seed=0)
    assert got["auroc"] == (rec.primary.value, rec.primary.ci_low, rec.primary.ci_high)
    for name, body, needle in [
        ("dup.csv", lines + [lines[1]], "1 duplicated id"),
        ("missing.csv", lines[:-1], r"1 missing id.*; a run with --limit N is scored with the same --limit N"),
        ("unknown.csv", lines + ["999,p9,0.5"], "1 unknown id"),
        ("nan.csv", lines[:3] + [lines[3].rsplit(",", 1)[0] + ",nan"] + lines[4:],
         "field 'score:spot': score 'nan' of id '" + lines[3].split(",")[0] + "' is not a finite number"),
        ("inf.csv", lines[:2] + [lines[2].rsplit(",", 1)[0] + ",inf"] + lines[3:], "score 'inf' of id"),
        ("blank.csv", lines[:2] + [lines[2].rsplit(",", 1)[0] + ","] + lines[3:], "score '' of id"),
    ]:
        bad = tmp_path / name
        bad.write_text("\n".join(body) + "\n")
        with pytest.raises(DataError, match=f"{name}.*{needle}"):
            score_file(spec, bad, data_roots={"toy-spots": root}, n_boot=0)
    jl = tmp_path / "p.jsonl"
    jl.write_text("\n".join(json.dumps({"id": row.split(",")[0], "scores": {"spot": float(row.split(",")[-1])}})
                            for row in lines[1:]))
    assert score_file(spec, jl, data_roots={"toy-spots": root}, n_boot=200)["auroc"][0] == rec.primary.value


def test_label_fractions_and_seeds(toy, tmp_path, tiny_encoder):
    import csv

    from xrbench.families import create_family
    from xrbench.families.base import subsample_patients

    root, tasks = toy
    spec = TaskCatalog([tasks]).resolve("toy-spots-linear")[0]
    tiny_encoder.meta = tiny_encoder.meta.__class__(**{**tiny_encoder.meta.to_dict(), "weights": "test"})
    cfg = RunConfig(output=tmp_path / "out", data_roots={"toy-spots": root}, n_boot=100,
                    feature_root=tmp_path / "features", seeds=(0, 1), label_fractions=(0.25, 1.0))
    runner = Runner(tiny_encoder, cfg)
    recs = runner.run([spec])
    assert [(r.label_fraction, r.seed) for r in recs] == [(0.25, 0), (0.25, 1), (1.0, 0), (1.0, 1)]
    full = recs[2].n["train"]
    assert 0 < recs[0].n["train"] < full / 2
    family = create_family(spec)
    train = runner.task_data(spec, family).splits["train"].samples
    y = family.y_array(train)
    a, b = subsample_patients(family, train, 0.25, 0), subsample_patients(family, train, 0.25, 1)
    np.testing.assert_array_equal(a, subsample_patients(family, train, 0.25, 0))  # seeded
    assert not np.array_equal(a, b)
    kept = {train[i].patient for i in a}
    assert sorted(a) == [i for i, s in enumerate(train) if s.patient in kept]  # patient-level
    assert {y[i, 0] for i in a} == {0.0, 1.0}  # stratified: both classes survive
    rows = list(csv.DictReader(open(tmp_path / "out" / "leaderboard.csv")))
    assert sorted((r["label_fraction"], r["seed"]) for r in rows) == [("0.25", "0;1"), ("1", "0;1")]
    assert (tmp_path / "out" / "tiny-vit" / "toy-spots-linear" / "seed1_lf0.25.json").is_file()


def test_head_cache_key_follows_inputs_and_code(toy, tmp_path, tiny_encoder, monkeypatch):
    from xrbench.families import create_family
    from xrbench.families import head_cache

    _, tasks = toy
    family = create_family(TaskCatalog([tasks]).resolve("toy-spots-linear")[0])
    kw = dict(feature_keys=["a", "b", "c"], kept=[["1"], ["2"], ["3"]], dataset_hash="d0", seed=0, fraction=1.0,
              device="cpu")
    k = head_cache.head_key(family, **kw)
    assert head_cache.head_key(family, **kw) == k
    for change in ({"seed": 1}, {"fraction": 0.5}, {"device": "cuda:0"}, {"kept": [["1"], ["2"], ["4"]]},
                   {"feature_keys": ["a", "b", "d"]}, {"dataset_hash": "d1"}):
        assert head_cache.head_key(family, **{**kw, **change}) != k, change
    code = head_cache.code_hash(family)
    real = head_cache._source_hash
    for edited in ("metrics/nlg/scores.py", "metrics/classification.py", "text/labeller.py", "protocols/linear.py"):
        # the report decoder's words come from the NLG tokenizer, heads select on val metrics
        monkeypatch.setattr(head_cache, "_source_hash", lambda f, e=edited: real(f) + ("x" if f.endswith(e) else ""))
        assert head_cache.code_hash(family) != code, edited
    monkeypatch.setattr(head_cache, "_source_hash", real)
    monkeypatch.setattr(head_cache, "code_hash", lambda f: "changed")
    assert head_cache.head_key(family, **kw) != k  # edited head code never serves a stale output


def test_a_truncated_image_is_decoded_partially_and_every_record_says_so(toy, tmp_path, tiny_encoder, monkeypatch):
    """FracAtlas ships 59 truncated JPEGs: the run goes on, decoding them as far as their data goes,
    and each record says which rows were (first run, cached rerun, another encoder on cached pixels)."""
    import xrbench.features.extract as extract

    root, tasks = toy
    png = root / "004.png"  # a test image (index % 5 == 4)
    raw = png.read_bytes()
    png.write_bytes(raw[: len(raw) * 2 // 3])
    specs = TaskCatalog([tasks]).resolve("toy-spots-linear")
    cfg = RunConfig(output=tmp_path / "out", data_roots={"toy-spots": root}, n_boot=50,
                    feature_root=tmp_path / "features")
    meta = tiny_encoder.meta.to_dict()
    tiny_encoder.meta = tiny_encoder.meta.__class__(**{**meta, "weights": "test", "weights_sha256": "0" * 64})
    expected = "truncated_images: 1 image file(s) end early and were decoded partially (train 0, val 0, test 1): s004"
    first = Runner(tiny_encoder, cfg).run(specs)[0]
    assert expected in first.warnings and tiny_encoder.images_encoded == 60
    rec = json.loads((tmp_path / "out" / "tiny-vit" / "toy-spots-linear" / "seed0.json").read_text())
    assert expected in rec["warnings"]
    entries = [json.loads(p.read_text()) for p in (tmp_path / "features").glob("*/meta.json")]
    assert sorted((e["split"], e["truncated"]) for e in entries) == [("test", ["s004"]), ("train", []), ("val", [])]
    pixels = [json.loads(p.read_text()) for p in (tmp_path / "pixels").glob("*/meta.json")]
    assert sorted(e["truncated"] for e in pixels) == [[], [], ["s004"]]

    monkeypatch.setattr(extract, "decode", lambda *a, **k: pytest.fail("cached pixels decode nothing"))
    assert expected in Runner(tiny_encoder, cfg).run(specs)[0].warnings  # features and heads from the caches
    assert tiny_encoder.images_encoded == 60
    tiny_encoder.meta = tiny_encoder.meta.__class__(**{**meta, "weights": "other", "weights_sha256": "1" * 64})
    assert expected in Runner(tiny_encoder, cfg).run(specs)[0].warnings  # new features, cached pixels
    assert tiny_encoder.images_encoded == 120

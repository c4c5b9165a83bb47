"""The feature store streams, resumes, verifies itself and stores each image's geometry."""
from __future__ import annotations

import warnings
from dataclasses import astuple

import numpy as np
import pytest

from xrbench.data.images import write_raster
from xrbench.data.sample import Sample
from xrbench.features import extract
from xrbench.features.extract import FeatureExtractor, encode_samples
from xrbench.features.preprocess import pad_geometry
from xrbench.features.store import FeatureStore


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    shapes = [(40, 50), (64, 32), (30, 30), (50, 70), (45, 45), (20, 60), (33, 41)]
    samples = []
    for i, (h, w) in enumerate(shapes):
        write_raster(tmp_path / f"{i}.png", rng.random((h, w)))
        samples.append(Sample(id=str(i), image=tmp_path / f"{i}.png", patient=str(i), split="train"))
    return samples, shapes


class Dies(Exception):
    pass


def test_killed_extraction_resumes_from_the_last_chunk_and_equals_a_clean_run(images, tmp_path,
                                                                             tiny_encoder, monkeypatch):
    samples, _ = images
    for i in (1, 5):  # truncated files, one in a chunk the killed run committed, one after it
        raw = samples[i].image.read_bytes()
        samples[i].image.write_bytes(raw[: len(raw) * 2 // 3])
    monkeypatch.setattr(extract, "CHUNK", 2)
    real = tiny_encoder.forward_features
    calls = {"n": 0}

    def dying(x):
        calls["n"] += 1
        if calls["n"] == 3:  # the third batch never finishes
            raise Dies()
        return real(x)

    ex = FeatureExtractor(tiny_encoder, FeatureStore(tmp_path / "fs"), batch_size=2)
    monkeypatch.setattr(tiny_encoder, "forward_features", dying)
    with pytest.raises(Dies):
        ex.features("d", "train", samples, "m", ["global", "patches"])
    assert tiny_encoder.images_encoded == 6 and not FeatureStore(tmp_path / "fs").keys()
    monkeypatch.setattr(tiny_encoder, "forward_features", real)
    got = ex.features("d", "train", samples, "m", ["global", "patches"])
    assert tiny_encoder.images_encoded == 6 + 3  # two chunks of 2 were committed; 3 images were left
    clean = encode_samples(tiny_encoder, samples, kinds=["global", "patches"])
    np.testing.assert_allclose(got["global"], clean["global"], atol=1e-6)
    np.testing.assert_array_equal(got["patches"], clean["patches"])
    assert got["patches"].dtype == np.float16 and isinstance(got["patches"], np.memmap)
    store = FeatureStore(tmp_path / "fs")
    assert [store.truncated(k) for k in store.keys()] == [["1", "5"], ["1", "5"]]  # row 1 was not decoded again


def test_geometry_is_stored_with_the_features(images, tmp_path, tiny_encoder):
    samples, shapes = images
    ex = FeatureExtractor(tiny_encoder, FeatureStore(tmp_path / "fs"))
    _, geo = ex.features_and_geometry("d", "train", samples, "m", ["patches"])["patches"]
    assert [tuple(g) for g in geo] == [astuple(pad_geometry(h, w, 64)) for h, w in shapes]


@pytest.mark.parametrize("damage", ["same-size-other-values", "truncated", "deleted", "ids"])
def test_a_damaged_entry_is_named_moved_aside_and_rebuilt(images, tmp_path, tiny_encoder, damage):
    samples, _ = images
    store = FeatureStore(tmp_path / "fs")
    ex = FeatureExtractor(tiny_encoder, store)
    first = np.array(ex.features("d", "train", samples, "m", ["global"])["global"])
    (key,) = store.keys()
    f = store.path(key) / "features.npy"
    if damage == "same-size-other-values":
        data = bytearray(f.read_bytes())
        data[-64:] = bytes(64)
        f.write_bytes(bytes(data))
    elif damage == "truncated":
        f.write_bytes(f.read_bytes()[:100])
    elif damage == "deleted":
        f.unlink()
    else:
        (store.path(key) / "ids.json").write_text('["0"]')
    with pytest.warns(UserWarning, match=f"feature store entry .*{key}.* is corrupt"):
        again = ex.features("d", "train", samples, "m", ["global"])["global"]
    np.testing.assert_array_equal(again, first)
    assert tiny_encoder.images_encoded == 2 * len(samples)  # rebuilt once
    assert len(list((tmp_path / "fs" / ".quarantine").iterdir())) == 1
    assert store.verify(key) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ex.features("d", "train", samples, "m", ["global"])  # sound now: no warning, no extraction
    assert tiny_encoder.images_encoded == 2 * len(samples)

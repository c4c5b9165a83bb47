"""Features follow the image, not the dataset name: a split whose images were all encoded before
(MS-CXR's images are MIMIC-CXR images) is served from those rows, with no forward pass."""
from __future__ import annotations

import shutil

import numpy as np

from xrbench.data.digest import file_digest
from xrbench.data.images import write_raster
from xrbench.data.sample import Sample
from xrbench.features.extract import FeatureExtractor, encode_samples
from xrbench.features.store import FeatureStore


def test_a_second_dataset_of_the_same_images_reuses_their_features(tmp_path, tiny_encoder):
    rng = np.random.default_rng(0)
    mimic, mscxr = [], []
    for i in range(8):
        f = tmp_path / "mimic" / f"{i}.jpg.png"
        write_raster(f, rng.random((40 + i, 50)))
        mimic.append(Sample(id=f"m{i}", image=f, patient=f"p{i}", split="train" if i < 5 else "test"))
    raw = mimic[3].image.read_bytes()
    mimic[3].image.write_bytes(raw[: len(raw) * 2 // 3])  # truncated: decoded partially, wherever it is reused
    for i in (6, 1, 3):  # the same files copied elsewhere, under other ids and another split
        g = tmp_path / "ms-cxr" / f"img{i}.png"
        g.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(mimic[i].image, g)
        mscxr.append(Sample(id=f"x{i}", image=g, patient=f"p{i}", split="test"))
    ex = FeatureExtractor(tiny_encoder, FeatureStore(tmp_path / "fs"))
    for split in ("train", "test"):
        rows = [s for s in mimic if s.split == split]
        ex.features_and_geometry("mimic-cxr", split, rows, f"m-{split}", ["global", "patches"],
                                 digests=[file_digest(s.image) for s in rows])
    assert tiny_encoder.images_encoded == 8
    got = ex.features_and_geometry("ms-cxr", "test", mscxr, "x", ["global", "patches"],
                                   digests=[file_digest(s.image) for s in mscxr])
    assert tiny_encoder.images_encoded == 8  # no forward pass for MS-CXR
    store = ex.store
    assert store.truncated(ex.key("ms-cxr", "test", "x", "global")) == ["x3"]  # the flag follows the row
    direct = encode_samples(tiny_encoder, mscxr, kinds=["global", "patches"])
    np.testing.assert_array_equal(got["global"][0], direct["global"])
    np.testing.assert_array_equal(got["patches"][0], direct["patches"])
    _, geo = ex.features_and_geometry("mimic-cxr", "test", [s for s in mimic if s.split == "test"], "m-test",
                                      ["patches"])["patches"]
    assert got["patches"][1][0].tolist() == geo[1].tolist()  # image 6: geometry copied with the row

    new = tmp_path / "ms-cxr" / "new.png"
    write_raster(new, rng.random((30, 30)))
    more = mscxr + [Sample(id="x-new", image=new, patient="q", split="test")]
    ex.features_and_geometry("ms-cxr", "test", more, "x2", ["global"], digests=[file_digest(s.image) for s in more])
    assert tiny_encoder.images_encoded == 8 + 3 + 4  # (3: the direct encoding above) one unseen image: all encoded

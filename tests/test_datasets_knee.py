"""Knee OA (KL grade) loader: hand-written ImageFolder trees with each quirk, and the demo round trip."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xrbench.data.datasets.knee_oa import KneeOA
from xrbench.data.images import image_size, write_raster
from xrbench.errors import DataError

FILES = {  # split/grade -> files (auto_test mirrors test, as in the Kaggle release)
    "train/0": ["9001695L.png", "9002116R.png"], "train/2": ["9003175L.png"], "train/4": [],
    "val/1": ["9004184R.png"], "test/3": ["9005132L.png"], "test/0": ["9001695R.png"],
    "auto_test/3": ["9005132L.png"], "auto_test/0": ["9001695R.png"],
}


def _tree(base: Path) -> Path:
    for folder, names in FILES.items():
        (base / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            write_raster(base / folder / name, np.full((8, 8), 0.25))
    (base / "train" / "0" / "notes.txt").write_text("not an image")
    (base / "train" / "0" / ".DS_Store").write_bytes(b"\0")
    (base / "train" / ".ipynb_checkpoints").mkdir()
    return base


def test_hand_fixture_samples(tmp_path):
    root = _tree(tmp_path / "knee")
    samples = KneeOA(root).samples()
    assert [(s.id, s.split, s.target, s.patient) for s in samples] == [
        ("train/0/9001695L.png", "train", 0, "9001695"),
        ("train/0/9002116R.png", "train", 0, "9002116"),
        ("train/2/9003175L.png", "train", 2, "9003175"),
        ("val/1/9004184R.png", "val", 1, "9004184"),
        ("test/0/9001695R.png", "test", 0, "9001695"),
        ("test/3/9005132L.png", "test", 3, "9005132"),
    ]  # auto_test ignored, empty grade 4 fine, notes.txt / .DS_Store / hidden folder ignored
    assert samples[0].image == root / "train" / "0" / "9001695L.png"
    assert samples[2].meta == {"kl_grade": 2, "body_part": "knee", "view": "AP"} and samples[2].labels == {}


def test_kaggle_nesting_is_found(tmp_path):
    _tree(tmp_path / "download" / "KneeXrayData" / "ClsKLData" / "kneeKL224")
    samples = KneeOA(tmp_path / "download").samples()
    assert len(samples) == 6 and samples[0].image.parent.parent.parent.name == "kneeKL224"


def test_unexpected_folder_in_a_split(tmp_path):
    root = _tree(tmp_path / "knee")
    (root / "train" / "5").mkdir()
    with pytest.raises(DataError, match="unexpected folder '5'"):
        KneeOA(root).samples()


def test_missing_test_or_train(tmp_path):
    with pytest.raises(DataError, match="no 'train' folder"):
        KneeOA(tmp_path).samples()
    (tmp_path / "train" / "0").mkdir(parents=True)
    with pytest.raises(DataError, match="no 'test' folder"):
        KneeOA(tmp_path).samples()


def test_val_carved_when_a_mirror_lacks_it(tmp_path):
    root = tmp_path / "knee"
    for i in range(60):
        (root / "train" / str(i % 5)).mkdir(parents=True, exist_ok=True)
        write_raster(root / "train" / str(i % 5) / f"{9000000 + i}L.png", np.zeros((4, 4)))
    (root / "test" / "0").mkdir(parents=True)
    splits = [s.split for s in KneeOA(root, seed=0).samples()]
    assert set(splits) == {"train", "val"} and splits.count("val") < splits.count("train")
    assert splits == [s.split for s in KneeOA(root, seed=0).samples()]


def test_demo_round_trip(tmp_path):
    root = tmp_path / "demo"
    KneeOA.write_demo(root, n=20, seed=2)
    samples = KneeOA(root).samples()
    assert len(samples) == 20
    assert [s.split for s in samples].count("test") == 5
    for split in ("train", "val", "test", "auto_test"):
        assert sorted(p.name for p in (root / split).iterdir()) == ["0", "1", "2", "3", "4"]
    test_files = sorted(p.relative_to(root / "test") for p in (root / "test").rglob("*.png"))
    assert test_files == sorted(p.relative_to(root / "auto_test") for p in (root / "auto_test").rglob("*.png"))
    for s in samples:
        assert s.target == int(s.image.parent.name) and image_size(s.image) == (224, 224)


def test_a_persons_two_knees_are_one_patient_and_a_carved_val_keeps_them_together(tmp_path):
    root = tmp_path / "knee"
    for i in range(40):
        for side in "LR":
            (root / "train" / str(i % 5)).mkdir(parents=True, exist_ok=True)
            write_raster(root / "train" / str(i % 5) / f"{9000000 + i}{side}.png", np.zeros((4, 4)))
    (root / "test" / "0").mkdir(parents=True)
    write_raster(root / "test" / "0" / "knee_a.png", np.zeros((4, 4)))
    samples = KneeOA(root, seed=0).samples()
    split_of: dict[str, set[str]] = {}
    for s in samples:
        split_of.setdefault(s.patient, set()).add(s.split)
    assert len(split_of) == 41 and samples[-1].patient == "knee_a"  # 40 persons, and a name of another form
    assert all(len(v) == 1 for v in split_of.values())  # both knees in train, or both in val
    assert {"train", "val"} <= {s.split for s in samples}


def test_data_check_lists_persons_in_two_official_splits_instead_of_failing(tmp_path):
    from xrbench.data.check import check_dataset

    root = tmp_path / "knee"
    files = {"train/0/9001695L.png": 0.1, "train/1/9002116R.png": 0.2, "val/0/9003175L.png": 0.3,
             "test/2/9001695R.png": 0.4, "test/0/9004184L.png": 0.5}
    for rel, value in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        write_raster(root / rel, np.full((8, 8), value))
    report = check_dataset("knee-oa", root)
    assert report["ok"], report["errors"]
    assert report["extra"]["patients_in_two_official_splits"] == ["9001695"]  # 9001695L train, R test
    assert report["splits"]["train"]["patients"] == 2 and report["splits"]["test"]["patients"] == 2

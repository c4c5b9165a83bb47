"""MURA v1.1: header-less CSVs, trailing-slash study dirs, study labels vs folder suffixes, splits."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from xrbench.data.base import patient_split
from xrbench.data.datasets.mura import MURA
from xrbench.data.images import read_image
from xrbench.data.phantom.limbs import generate_studies
from xrbench.errors import DataError

TRAIN_IMAGES = [
    "MURA-v1.1/train/XR_WRIST/patient00001/study1_positive/image1.png",
    "MURA-v1.1/train/XR_WRIST/patient00001/study1_positive/image2.png",
    "MURA-v1.1/train/XR_WRIST/patient00001/study1_positive/._image1.png",  # macOS fork in some copies
    "MURA-v1.1/train/XR_SHOULDER/patient00001/study1_negative/image1.png",  # same patient, other part
    "MURA-v1.1/train/XR_ELBOW/patient00002/study2_negative/image1.png",
]
TRAIN_STUDIES = [
    "MURA-v1.1/train/XR_WRIST/patient00001/study1_positive/,1",
    "MURA-v1.1/train/XR_SHOULDER/patient00001/study1_negative/,0",
    "MURA-v1.1/train/XR_ELBOW/patient00002/study2_negative/,0",
]
VALID_IMAGES = ["MURA-v1.1/valid/XR_HAND/patient11185/study1_positive/image1.png"]
VALID_STUDIES = ["MURA-v1.1/valid/XR_HAND/patient11185/study1_positive/,1"]


def write_fixture(root: Path, *, train_images=TRAIN_IMAGES, train_studies=TRAIN_STUDIES, gz: bool = False) -> Path:
    """The four header-less CSVs exactly as Stanford ships them (no image files: loading must not stat)."""
    folder = root / "MURA-v1.1"
    folder.mkdir(parents=True)
    files = {"train_image_paths.csv": train_images, "train_labeled_studies.csv": train_studies,
             "valid_image_paths.csv": VALID_IMAGES, "valid_labeled_studies.csv": VALID_STUDIES}
    for name, lines in files.items():
        text = "".join(line + "\n" for line in lines)
        if gz and name == "train_image_paths.csv":
            (folder / (name + ".gz")).write_bytes(gzip.compress(text.encode()))
        else:
            (folder / name).write_text(text)
    return folder


def test_loads_exact_samples_from_the_parent_of_mura_folder(tmp_path):
    folder = write_fixture(tmp_path)
    ds = MURA(tmp_path, seed=0)
    samples = ds.samples()
    carve = patient_split(["patient00001", "patient00002"], seed=0, val=0.1, salt="mura")
    got = [(s.id, s.image, s.patient, s.split, s.labels, s.target, s.group, s.meta) for s in samples]
    assert got == [
        ("train/XR_WRIST/patient00001/study1_positive/image1.png",
         folder / "train/XR_WRIST/patient00001/study1_positive/image1.png", "patient00001", carve["patient00001"],
         {"abnormal": 1.0}, 1, "train/XR_WRIST/patient00001/study1_positive",
         {"body_part": "WRIST", "official_split": "train"}),
        ("train/XR_WRIST/patient00001/study1_positive/image2.png",
         folder / "train/XR_WRIST/patient00001/study1_positive/image2.png", "patient00001", carve["patient00001"],
         {"abnormal": 1.0}, 1, "train/XR_WRIST/patient00001/study1_positive",
         {"body_part": "WRIST", "official_split": "train"}),
        ("train/XR_SHOULDER/patient00001/study1_negative/image1.png",
         folder / "train/XR_SHOULDER/patient00001/study1_negative/image1.png", "patient00001",
         carve["patient00001"], {"abnormal": 0.0}, 0, "train/XR_SHOULDER/patient00001/study1_negative",
         {"body_part": "SHOULDER", "official_split": "train"}),
        ("train/XR_ELBOW/patient00002/study2_negative/image1.png",
         folder / "train/XR_ELBOW/patient00002/study2_negative/image1.png", "patient00002", carve["patient00002"],
         {"abnormal": 0.0}, 0, "train/XR_ELBOW/patient00002/study2_negative",
         {"body_part": "ELBOW", "official_split": "train"}),
        ("valid/XR_HAND/patient11185/study1_positive/image1.png",
         folder / "valid/XR_HAND/patient11185/study1_positive/image1.png", "patient11185", "test",
         {"abnormal": 1.0}, 1, "valid/XR_HAND/patient11185/study1_positive",
         {"body_part": "HAND", "official_split": "valid"}),
    ]
    assert ds.report_extra() == {"skipped_resource_forks": 1}


def test_mura_folder_itself_and_gzipped_csv_give_the_same_samples(tmp_path):
    write_fixture(tmp_path / "a")
    folder = write_fixture(tmp_path / "b", gz=True)
    a = [(s.id, s.split, s.target) for s in MURA(tmp_path / "a").samples()]
    b = [(s.id, s.split, s.target) for s in MURA(folder).samples()]
    assert a == b and len(a) == 5


def test_val_is_carved_from_train_by_patient_across_parts(tmp_path):
    images = [f"MURA-v1.1/train/XR_{part}/patient{p:05d}/study1_negative/image1.png"
              for p in range(1, 61) for part in ("WRIST", "HAND")]
    studies = [str(Path(i).parent) + "/,0" for i in images]
    write_fixture(tmp_path, train_images=images, train_studies=studies)
    samples = MURA(tmp_path, seed=3).samples()
    by_patient: dict[str, set[str]] = {}
    for s in samples:
        by_patient.setdefault(s.patient, set()).add(s.split)
    assert all(len(v) == 1 for v in by_patient.values())  # both parts of a patient in one split
    splits = [next(iter(v)) for p, v in by_patient.items() if p != "patient11185"]
    assert 0 < splits.count("val") < splits.count("train")


def test_label_that_contradicts_the_folder_suffix_is_an_error(tmp_path):
    studies = list(TRAIN_STUDIES)
    studies[1] = "MURA-v1.1/train/XR_SHOULDER/patient00001/study1_negative/,1"
    write_fixture(tmp_path, train_studies=studies)
    with pytest.raises(DataError, match=r"train_image_paths.csv, row 4: .*labelled 1 .*'negative'"):
        MURA(tmp_path).samples()


@pytest.mark.parametrize("studies, message", [
    (TRAIN_STUDIES[:2], r"row 5: study 'train/XR_ELBOW/patient00002/study2_negative' of this image is not in"),
    (TRAIN_STUDIES + ["MURA-v1.1/train/XR_HAND/patient00009/study1_negative/,0"],
     r"1 labelled study has no image .*patient00009"),
    (TRAIN_STUDIES[:2] + ["MURA-v1.1/train/XR_ELBOW/patient00002/study2_negative/,yes"],
     r"train_labeled_studies.csv, row 3, field 'label': 'yes' is not 0 or 1"),
    (TRAIN_STUDIES + TRAIN_STUDIES[:1], r"row 4: study .* is listed twice"),
])
def test_inconsistent_study_files_are_errors(tmp_path, studies, message):
    write_fixture(tmp_path, train_studies=studies)
    with pytest.raises(DataError, match=message):
        MURA(tmp_path).samples()


@pytest.mark.parametrize("bad", [
    "MURA-v1.1/valid/XR_WRIST/patient00001/study1_positive/image1.png",  # valid path in the train list
    "MURA-v1.1/train/XR_WRIST/patient00001/image1.png",  # no study folder
    "MURA-v1.1/train/XR_WRIST/../../../etc/passwd",
])
def test_paths_off_the_official_pattern_are_errors(tmp_path, bad):
    write_fixture(tmp_path, train_images=TRAIN_IMAGES + [bad])
    with pytest.raises(DataError, match=r"row 6: image path .* does not match"):
        MURA(tmp_path).samples()


def test_an_image_listed_twice_names_the_file_and_both_rows(tmp_path):
    write_fixture(tmp_path, train_images=TRAIN_IMAGES + [TRAIN_IMAGES[3]])
    with pytest.raises(DataError, match=r"train_image_paths.csv, row 6: image path .*study1_negative/image1.png' "
                                        r"is listed twice \(first on row 4\)"):
        MURA(tmp_path).samples()


def test_missing_root_is_an_error(tmp_path):
    with pytest.raises(DataError, match="not a dataset root: expected 'train_labeled_studies.csv'"):
        MURA(tmp_path).samples()


def test_writer_round_trip_gives_the_phantom_studies(tmp_path):
    MURA.write_demo(tmp_path, n=14, seed=4)
    samples = MURA(tmp_path).samples()
    studies = generate_studies(14, seed=4)
    assert len(samples) == 14 == sum(len(s.images) for s in studies)
    groups: dict[str, list] = {}
    for s in samples:
        groups.setdefault(s.group, []).append(s)
    got = sorted((g[0].patient, g[0].meta["body_part"], g[0].target, len(g)) for g in groups.values())
    want = sorted((st.patient, st.part, int(st.abnormal), len(st.images)) for st in studies)
    assert got == want
    assert {s.split for s in samples} <= {"train", "val", "test"} and any(s.split == "test" for s in samples)
    cases = {(st.patient, st.part, k + 1): c for st in studies for k, c in enumerate(st.images)}
    for s in samples:
        k = int(Path(s.id).stem.removeprefix("image"))
        pixels = read_image(s.image)
        assert pixels.shape == (256, 256)
        np.testing.assert_allclose(pixels, cases[(s.patient, s.meta["body_part"], k)].image, atol=0.5 / 255 + 1e-6)
    lines = (tmp_path / "MURA-v1.1" / "train_labeled_studies.csv").read_text().splitlines()
    assert lines and all(line.startswith("MURA-v1.1/train/XR_") and line[-3:] in ("/,0", "/,1") for line in lines)

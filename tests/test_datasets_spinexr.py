"""VinDr-SpineXR loader: hand-written fixtures of the official CSVs (each quirk) and the demo round trip."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from xrbench.data.datasets.vindr_spinexr import VinDrSpineXR
from xrbench.data.images import read_image, write_dicom
from xrbench.data.phantom.spine import LESION_TYPES
from xrbench.data.sample import Box
from xrbench.errors import DataError

TRAIN_CSV = """image_id,study_id,series_id,rad_id,lesion_type,xmin,ymin,xmax,ymax
img_a,study_1,ser_1,rad1,Osteophytes,10.5,20,30.25,40
img_a,study_1,ser_1,rad1,Disc space narrowing,5,50,60,70
img_a,study_1,ser_1,rad1,Osteophytes,12,22,12,40
img_b,study_1,ser_2,rad2,No finding,,,,
img_c,study_2,ser_3,rad1,Vertebral collapse,1,2,3,4
img_c,study_2,ser_3,rad1,Sclerotic lesion,1,1,5,5
img_d,study_3,ser_4,rad3,Spondylolisthesis,100,100,180,200
img_e,study_4,ser_5,rad3,No finding,,,,
"""
# the test file with stray spaces in the header, another column order and no series/rad columns
TEST_CSV = """ lesion_type ,image_id , study_id,xmin,ymin,xmax,ymax
Surgical implant,img_t,study_9,0,0,50.5,60
Foraminal stenosis,img_t,study_9,7,8,9,10.5
No finding,img_u,study_9,,,,
"""


def _write(root: Path, train: str = TRAIN_CSV, test: str = TEST_CSV, gz: bool = False) -> Path:
    (root / "annotations").mkdir(parents=True)
    for name, text in (("train.csv", train), ("test.csv", test)):
        if gz:
            with gzip.open(root / "annotations" / (name + ".gz"), "wt") as f:
                f.write(text)
        else:
            (root / "annotations" / name).write_text(text)
    return root


def _labels(abnormal: float, **pos: float) -> dict[str, float]:
    out = {"abnormal": abnormal} | {c: 0.0 for c in LESION_TYPES}
    for k, v in pos.items():
        out[k.replace("_", " ")] = v
    return out


def test_hand_fixture_samples_labels_boxes(tmp_path):
    root = _write(tmp_path / "vindr-spinexr")
    ds = VinDrSpineXR(root, seed=0)
    by_id = {s.id: s for s in ds.samples()}
    assert list(by_id) == ["img_a", "img_b", "img_c", "img_d", "img_e", "img_t", "img_u"]

    a = by_id["img_a"]
    assert a.labels == _labels(1.0, Osteophytes=1.0, Disc_space_narrowing=1.0)
    assert a.boxes == [Box(10.5, 20.0, 30.25, 40.0, "Osteophytes", "rad1"),
                       Box(5.0, 50.0, 60.0, 70.0, "Disc space narrowing", "rad1")]
    assert a.meta["zero_area_boxes"] == 1  # the 12,22,12,40 box is dropped, as in the official code
    assert a.patient == a.group == "study_1" and a.meta["series_id"] == "ser_1"
    assert a.image == (root / "train_images" / "img_a.dicom").resolve()

    assert by_id["img_b"].labels == _labels(0.0) and by_id["img_b"].boxes == []
    c = by_id["img_c"]  # a lesion type outside the 7 classes: abnormal, no box, listed
    assert c.labels == _labels(1.0, Vertebral_collapse=1.0)
    assert c.boxes == [Box(1.0, 2.0, 3.0, 4.0, "Vertebral collapse", "rad1")]
    assert c.meta["other_lesion_types"] == ["Sclerotic lesion"]
    d = by_id["img_d"]  # the correct spelling maps onto the dataset's own
    assert d.boxes == [Box(100.0, 100.0, 180.0, 200.0, "Spondylolysthesis", "rad3")]
    assert d.labels["Spondylolysthesis"] == 1.0

    t = by_id["img_t"]
    assert t.split == "test" and by_id["img_u"].split == "test"
    assert t.boxes == [Box(0.0, 0.0, 50.5, 60.0, "Surgical implant", None),
                       Box(7.0, 8.0, 9.0, 10.5, "Foraminal stenosis", None)]
    assert t.labels == _labels(1.0, Surgical_implant=1.0, Foraminal_stenosis=1.0)
    assert by_id["img_u"].labels == _labels(0.0)
    assert ds.stats == {"zero_area_boxes": 1, "other_lesion_rows": 1}


def test_val_carved_from_train_by_study(tmp_path):
    root = _write(tmp_path / "v")
    rows = ["image_id,study_id,lesion_type,xmin,ymin,xmax,ymax"]
    rows += [f"im{i},st{i // 2},No finding,,,," for i in range(80)]
    (root / "annotations" / "train.csv").write_text("\n".join(rows) + "\n")
    samples = VinDrSpineXR(root, seed=1).samples()
    train = [s for s in samples if s.split in ("train", "val")]
    assert {s.split for s in train} == {"train", "val"}
    for study in {s.patient for s in train}:
        assert len({s.split for s in train if s.patient == study}) == 1  # study-disjoint
    again = VinDrSpineXR(root, seed=1).samples()
    assert [s.split for s in again] == [s.split for s in samples]
    assert [s.split for s in VinDrSpineXR(root, seed=2).samples()] != [s.split for s in samples]
    assert all(s.split == "test" for s in samples if s.id in ("img_t", "img_u"))


def test_parent_folder_and_csv_gz(tmp_path):
    _write(tmp_path / "physionet" / "1.0.0", gz=True)
    samples = VinDrSpineXR(tmp_path / "physionet").samples()
    assert len(samples) == 7 and samples[0].id == "img_a"


@pytest.mark.parametrize("train, message", [
    (TRAIN_CSV.replace("lesion_type", "finding"), "missing column(s) 'lesion_type'"),
    (TRAIN_CSV.replace("img_c,study_2,ser_3,rad1,Vertebral collapse,1,2,3,4",
                       "img_c,study_2,ser_3,rad1,Vertebral collapse,,2,3,4"), "row 6, field 'xmin': is blank"),
    (TRAIN_CSV.replace("img_d,study_3,ser_4,rad3,Spondylolisthesis,100",
                       "img_d,study_3,ser_4,rad3,Spondylolisthesis,abc"), "row 8, field 'xmin': 'abc' is not a number"),
    (TRAIN_CSV.replace("img_b,study_1", "img_a,study_7"), "row 5, field 'study_id'"),
    (TRAIN_CSV.replace("img_e,", "../../etc/x,"), "escapes the dataset root"),
])
def test_malformed_rows_raise_data_error(tmp_path, train, message):
    root = _write(tmp_path / "v", train=train)
    with pytest.raises(DataError) as err:
        VinDrSpineXR(root).samples()
    assert message in str(err.value) and "train.csv" in str(err.value)


def test_an_image_in_both_csvs_names_the_file_and_rows(tmp_path):
    root = _write(tmp_path / "v", test=TEST_CSV + "No finding,img_c,study_2,,,,\n")
    with pytest.raises(DataError, match=r"test.csv, row 5, field 'image_id': image img_c is also in train.csv "
                                        r"\(row 6\)"):
        VinDrSpineXR(root).samples()


def test_trailing_comma_on_rows_only_keeps_the_columns_in_place(tmp_path):
    """Rows ending in ',' under a header that does not: the columns must not shift by one (pandas'
    implicit index would put image_id into the index and read study_id as image_id)."""
    lines = TRAIN_CSV.splitlines()
    train = "\r\n".join([lines[0]] + [line + "," for line in lines[1:]]) + "\r\n"
    by_id = {s.id: s for s in VinDrSpineXR(_write(tmp_path / "v", train=train)).samples()}
    assert list(by_id) == ["img_a", "img_b", "img_c", "img_d", "img_e", "img_t", "img_u"]
    assert by_id["img_a"].patient == "study_1" and by_id["img_a"].meta["series_id"] == "ser_1"
    assert [b.label for b in by_id["img_a"].boxes] == ["Osteophytes", "Disc space narrowing"]
    assert (by_id["img_a"].boxes[0].x0, by_id["img_a"].boxes[0].x1) == (10.5, 30.25)


def test_missing_annotations_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="annotations"):
        VinDrSpineXR(tmp_path / "empty").samples()


def test_monochrome1_dicom_reads_bone_bright(tmp_path):
    img = np.zeros((8, 8), np.float32)
    img[2:6, 2:6] = 1.0
    for photometric in ("MONOCHROME1", "MONOCHROME2"):
        path = tmp_path / f"{photometric}.dicom"
        write_dicom(path, img, bits_stored=12, photometric=photometric, window=(2047.5, 4096.0))
        assert np.allclose(read_image(path), img, atol=1e-3)


def test_demo_round_trip(tmp_path):
    root = tmp_path / "demo"
    VinDrSpineXR.write_demo(root, n=14, seed=3)
    ds = VinDrSpineXR(root)
    samples = ds.samples()
    assert len(samples) == 14
    tables = {s: pd.read_csv(root / "annotations" / f"{s}.csv", dtype={"lesion_type": str}) for s in ("train", "test")}
    assert list(tables["train"].columns) == ["image_id", "series_id", "study_id", "rad_id", "lesion_type",
                                             "xmin", "ymin", "xmax", "ymax"]
    assert ds.stats["zero_area_boxes"] == 1
    normal = tables["train"][tables["train"].lesion_type == "No finding"]
    assert len(normal) and normal[["xmin", "ymin", "xmax", "ymax"]].isna().all().all()
    photometrics = set()
    for s in samples:
        rows = tables["test" if s.split == "test" else "train"]
        rows = rows[(rows.image_id == s.id) & (rows.lesion_type != "No finding")]
        kept = rows[(rows.xmax - rows.xmin >= 1e-3) & (rows.ymax - rows.ymin >= 1e-3)]
        assert [(b.x0, b.y0, b.x1, b.y1, b.label) for b in s.boxes] == [
            tuple(r) for r in kept[["xmin", "ymin", "xmax", "ymax", "lesion_type"]].itertuples(index=False)]
        assert s.labels["abnormal"] == float(len(rows) > 0)
        assert s.image.parent.name == ("test_images" if s.split == "test" else "train_images")
        ds_ = pydicom.dcmread(s.image, stop_before_pixels=True)
        photometrics.add(ds_.PhotometricInterpretation)
        assert ds_.BitsStored == 12 and (ds_.Rows, ds_.Columns) == (256, 256)
        assert all(0 <= b.x0 < b.x1 <= 256 and 0 <= b.y0 < b.y1 <= 256 for b in s.boxes)
    assert photometrics == {"MONOCHROME1", "MONOCHROME2"}
    pixels = read_image(samples[0].image)
    assert pixels.shape == (256, 256) and 0.0 <= pixels.min() < pixels.max() <= 1.0
    assert {"train", "test"} <= {s.split for s in samples}


def test_beside_vindr_cxr_under_one_physionet_root_each_loader_finds_its_own(tmp_path):
    # `wget -r` of both PhysioNet projects leaves physionet.org/files/{vindr-cxr,vindr-spinexr}/1.0.0/,
    # each with an annotations/ folder: the loaders tell them apart by the files inside it
    from test_datasets_vindr import write_physionet

    from xrbench.data.datasets.vindr_cxr import VinDrCXR

    files = tmp_path / "physionet.org" / "files"
    cxr = write_physionet(files / "vindr-cxr" / "1.0.0")
    spine = _write(files / "vindr-spinexr" / "1.0.0")
    spine_samples = VinDrSpineXR(tmp_path).samples()
    cxr_samples = VinDrCXR(tmp_path).samples()
    assert spine_samples and {s.image.parent.parent for s in spine_samples} == {spine}
    assert cxr_samples and {s.image.parent.parent for s in cxr_samples} == {cxr}

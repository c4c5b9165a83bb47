"""NIH ChestX-ray14 loader on hand-written files in the official layouts, and on its phantom demo."""
import gzip
from pathlib import Path

import numpy as np
import pytest

from xrbench.data.base import patient_split
from xrbench.data.datasets.nih_cxr14 import FINDINGS, NIHChestXray14
from xrbench.data.images import write_raster
from xrbench.data.sample import Box
from xrbench.errors import DataError
from xrbench.registry import DATASETS

HEAD_2017 = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
             "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],")
HEAD_2020 = HEAD_2017.rstrip(",")
ROWS = [
    "00000001_000.png,Cardiomegaly,0,1,58,M,PA,2682,2749,0.143,0.143",
    "00000001_001.png,Cardiomegaly|Emphysema,1,1,58,M,PA,2894,2729,0.143,0.143",
    "00000002_000.png,No Finding,0,2,81,M,PA,2500,2048,0.171,0.171",
    "00000003_000.png,Hernia,0,3,414,F,PA,2582,2905,0.143,0.143",
    "00000004_000.png,Mass|Nodule|Infiltration|Pleural_Thickening,0,4,82,M,AP,2048,2500,0.168,0.168",
]
BBOX_HEAD = "Image Index,Finding Label,Bbox [x,y,w,h],,,"
BBOX_ROWS = [
    "00000001_000.png,Cardiomegaly,400.0,500.0,300.0,200.0,,,",
    "00000004_000.png,Infiltrate,100.0,200.0,40.0,80.0,,,",
    "00000004_000.png,Mass,512.0,256.0,128.0,64.0",
]
TRAIN_VAL = ["00000001_000.png", "00000001_001.png", "00000002_000.png", "00000003_000.png"]
TEST = ["00000004_000.png"]


def write_fixture(d: Path, *, head=HEAD_2017, rows=ROWS, entry="Data_Entry_2017.csv", bbox=True,
                  kaggle=False, gz=False) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    trailing = "," if head.endswith(",") else ""
    text = "\n".join([head, *(r + trailing for r in rows)]) + "\n"
    if gz:
        with gzip.open(d / (entry + ".gz"), "wt") as f:
            f.write(text)
    else:
        (d / entry).write_text(text)
    if bbox:
        (d / "BBox_List_2017.csv").write_text("\n".join([BBOX_HEAD, *BBOX_ROWS]) + "\n")
    (d / "train_val_list.txt").write_text("\n".join(TRAIN_VAL) + "\n")
    (d / "test_list.txt").write_text("\n".join(TEST) + "\n")
    sizes = {"00000001_000.png": 256, "00000004_000.png": 512}  # resized mirrors; 00000002_000 is missing
    for i, name in enumerate(["00000001_000.png", "00000001_001.png", "00000003_000.png", "00000004_000.png"]):
        folder = d / (f"images_00{i % 2 + 1}/images" if kaggle else "images")
        write_raster(folder / name, np.zeros((sizes.get(name, 16),) * 2, np.float32), bits=8)
    return d


def test_registered():
    assert DATASETS.get("nih-cxr14") is NIHChestXray14
    assert NIHChestXray14.label_names == FINDINGS and len(FINDINGS) == 14 and "Pleural_Thickening" in FINDINGS


def one_hot(*names):
    return {f: (1.0 if f in names else 0.0) for f in FINDINGS}


def test_exact_samples_classic_file(tmp_path):
    d = write_fixture(tmp_path / "nih")
    loader = NIHChestXray14(tmp_path, seed=1)  # the parent of the dataset folder
    s = {x.id: x for x in loader.samples()}
    assert list(s) == [r.split(",")[0] for r in ROWS]
    a = s["00000001_000.png"]
    assert a.image == d / "images/00000001_000.png" and a.patient == "1"
    assert a.labels == one_hot("Cardiomegaly")
    assert a.meta == {"sex": "M", "age": 58, "view": "PA", "follow_up": 0}
    assert a.boxes == [Box(100.0, 125.0, 175.0, 175.0, "Cardiomegaly")]  # 1024 space scaled to 256 px
    assert s["00000001_001.png"].labels == one_hot("Cardiomegaly", "Emphysema")
    assert s["00000001_001.png"].meta["follow_up"] == 1 and s["00000001_001.png"].boxes == []
    assert s["00000002_000.png"].labels == one_hot()  # No Finding
    assert s["00000002_000.png"].image == d / "images/00000002_000.png"  # not on disk: default place
    hernia = s["00000003_000.png"]  # age 414: kept, flagged
    assert hernia.meta == {"sex": "F", "age": None, "age_reported": 414, "view": "PA", "follow_up": 0}
    e = s["00000004_000.png"]
    assert e.split == "test" and e.meta["view"] == "AP"
    assert e.labels == one_hot("Mass", "Nodule", "Infiltration", "Pleural_Thickening")
    # Infiltrate -> Infiltration; 1024 space scaled to the 512 px file
    assert e.boxes == [Box(50.0, 100.0, 70.0, 140.0, "Infiltration"), Box(256.0, 128.0, 320.0, 160.0, "Mass")]
    split = patient_split(["1", "2", "3"], seed=1, val=0.1, salt="nih-cxr14")
    assert [s[n].split for n in TRAIN_VAL] == [split["1"], split["1"], split["2"], split["3"]]


def test_v2020_header_patient_sex_and_kaggle_layout_give_the_same_samples(tmp_path):
    want = NIHChestXray14(write_fixture(tmp_path / "a")).samples()
    head = HEAD_2020.replace("Patient Gender", " Patient Sex ")
    d = write_fixture(tmp_path / "b", head=head, entry="Data_Entry_2017_v2020.csv", kaggle=True, gz=True)
    got = NIHChestXray14(d).samples()
    assert got[0].image == d / "images_001/images/00000001_000.png"
    assert got[1].image == d / "images_002/images/00000001_001.png"
    for a, b in zip(got, want):
        assert (a.id, a.patient, a.split, a.labels, a.boxes, a.meta) == (b.id, b.patient, b.split, b.labels,
                                                                            b.boxes, b.meta)


def test_v2020_file_is_preferred_when_both_exist(tmp_path):
    d = write_fixture(tmp_path, rows=[r.replace(",58,", ",99,") for r in ROWS])
    write_fixture(tmp_path, head=HEAD_2020, entry="Data_Entry_2017_v2020.csv")
    assert NIHChestXray14(d).samples()[0].meta["age"] == 58


def test_without_bbox_list(tmp_path):
    d = write_fixture(tmp_path, bbox=False)
    assert all(s.boxes == [] for s in NIHChestXray14(d).samples())


@pytest.mark.parametrize("rows, match", [
    ([ROWS[0].replace("Cardiomegaly", "Cardiomegally")], r"row 2, field 'Finding Labels'.*unknown finding"),
    ([ROWS[0].replace(",58,", ",old,")], r"row 2, field 'Patient Age'"),
    ([ROWS[0].replace(",M,", ",X,")], r"row 2, field 'Patient Gender'"),
    ([*ROWS, "00000005_000.png,Hernia,0,5,40,F,PA,2048,2048,0.1,0.1"], r"00000005_000.png is in neither"),
])
def test_malformed_entries_raise(tmp_path, rows, match):
    d = write_fixture(tmp_path, rows=rows, bbox=False)
    with pytest.raises(DataError, match=match):
        NIHChestXray14(d).samples()


@pytest.mark.parametrize("row, match", [
    ("00000001_000.png,Pneumonitis,1,2,3,4", r"BBox_List_2017.csv, row 5, field 'Finding Label'"),
    ("00000001_000.png,Mass,1,2,0,4", r"row 5: box width/height"),
    ("00000009_000.png,Mass,1,2,3,4", r"00000009_000.png is not in the Data_Entry file"),
])
def test_malformed_boxes_raise(tmp_path, row, match):
    d = write_fixture(tmp_path)
    (d / "BBox_List_2017.csv").write_text("\n".join([BBOX_HEAD, *BBOX_ROWS, row]) + "\n")
    with pytest.raises(DataError, match=match):
        NIHChestXray14(d).samples()


def test_overlapping_split_lists_raise(tmp_path):
    d = write_fixture(tmp_path)
    (d / "test_list.txt").write_text("00000004_000.png\n00000001_000.png\n")
    with pytest.raises(DataError, match="in both test_list.txt and train_val_list.txt"):
        NIHChestXray14(d).samples()


# --------------------------------------------------------------------------- the phantom demo


def test_demo_layout_and_loading(tmp_path):
    from PIL import Image

    NIHChestXray14.write_demo(tmp_path, n=40, seed=0)
    lines = (tmp_path / "Data_Entry_2017.csv").read_text().splitlines()
    assert lines[0] == HEAD_2017 and all(line.endswith(",") for line in lines)  # the classic trailing commas
    assert (tmp_path / "BBox_List_2017.csv").read_text().splitlines()[0] == BBOX_HEAD
    samples = NIHChestXray14(tmp_path).samples()
    assert len(samples) == 40 and all(s.image.parent == tmp_path / "images" and s.image.is_file() for s in samples)
    with Image.open(samples[0].image) as im:
        assert im.mode == "L" and im.size == (256, 256)
    assert all(set(s.labels.values()) <= {0.0, 1.0} and list(s.labels) == list(FINDINGS) for s in samples)
    boxed = [s for s in samples if s.boxes]
    assert boxed and all(s.split == "test" for s in boxed)
    # 1024-space boxes in the file come back in the 256-px space of the PNGs
    assert all(0 <= b.x0 < b.x1 <= 256 and 0 <= b.y0 < b.y1 <= 256 for s in boxed for b in s.boxes)
    raw = [line.split(",") for line in (tmp_path / "BBox_List_2017.csv").read_text().splitlines()[1:]]
    first = next(b for s in boxed for b in s.boxes)
    row = next(r for r in raw if r[0] == boxed[0].id)
    assert float(row[2]) == pytest.approx(first.x0 * 4, abs=1e-4)
    test_patients = {s.patient for s in samples if s.split == "test"}
    assert test_patients and not test_patients & {s.patient for s in samples if s.split != "test"}
    tv = (tmp_path / "train_val_list.txt").read_text().split()
    assert sorted(tv) == tv and len(tv) + len((tmp_path / "test_list.txt").read_text().split()) == 40


def test_demo_is_deterministic(tmp_path):
    NIHChestXray14.write_demo(tmp_path / "a", n=24, seed=2)
    NIHChestXray14.write_demo(tmp_path / "b", n=24, seed=2)
    for name in ("Data_Entry_2017.csv", "BBox_List_2017.csv", "test_list.txt", "images/00000001_000.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()

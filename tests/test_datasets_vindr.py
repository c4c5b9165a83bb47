"""VinDr-CXR: PhysioNet and Kaggle layouts, reader aggregation policies, demo round trip."""
from __future__ import annotations

import gzip
import math
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest

from xrbench.data.base import patient_split
from xrbench.data.datasets.vindr_cxr import VinDrCXR, aggregate_boxes
from xrbench.data.images import read_image, write_dicom
from xrbench.data.sample import Box
from xrbench.errors import ConfigError, DataError

A = "a9d7c0f0e8b4f5f44f5a1c3ab0b8a2a1"
B = "0b2c7a8e6ad9c6b1f3e4d5c6b7a8f9e0"
C = "47ed17dcb2cbeec15182ed335a8b5a9e"
D = "d3cd09a1e0c4d19a2f4f5e4d1e6ab7c2"

#: the 28 label columns of image_labels_*.csv in the release's order (last-but-one spelled per file)
LABELS_28 = ["Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly", "Clavicle fracture",
             "Consolidation", "Edema", "Emphysema", "Enlarged PA", "ILD", "Infiltration", "Lung Opacity",
             "Lung cavity", "Lung cyst", "Mediastinal shift", "Nodule/Mass", "Pleural effusion",
             "Pleural thickening", "Pneumothorax", "Pulmonary fibrosis", "Rib fracture", "Other lesion",
             "COPD", "Lung tumor", "Pneumonia", "Tuberculosis", "OTHER", "No finding"]


def labels_csv(other: str, rows: list[tuple[str, str, set[str]]]) -> str:
    header = [other if c == "OTHER" else c for c in LABELS_28]
    lines = [",".join(["image_id", "rad_ID", *header])]
    for image_id, rad, positive in rows:
        lines.append(",".join([image_id, rad, *("1" if c in positive else "0" for c in header)]))
    return "\n".join(lines) + "\n"


def write_physionet(folder: Path) -> Path:
    """The 1.0.0 release in miniature: 2 train images x 3 readers, 2 consensus test images."""
    ann = folder / "annotations"
    ann.mkdir(parents=True)
    (ann / "annotations_train.csv").write_text(
        "image_id,rad_id,class_name,x_min,y_min,x_max,y_max\n"
        f"{A},R8,Cardiomegaly,100.0,200.0,300.0,260.0\n"
        f"{A},R9,Cardiomegaly,110.0,205.0,305.0,262.0\n"
        f"{A},R9,Nodule/Mass,50.5,50.0,60.0,61.0\n"
        f"{A},R10,No finding,,,,\n"
        f"{B},R1,No finding,,,,\n"
        f"{B},R2,No finding,,,,\n"
        f"{B},R3,Pleural effusion,10,12,20,22\n")
    (ann / "image_labels_train.csv").write_text(labels_csv("Other disease", [
        (A, "R8", {"Cardiomegaly"}), (A, "R9", {"Cardiomegaly", "Nodule/Mass", "Other disease"}),
        (A, "R10", {"No finding"}),
        (B, "R1", {"No finding"}), (B, "R2", {"No finding"}), (B, "R3", {"Pleural effusion"})]))
    # the test file with class_id and another column order: columns are selected by name
    (ann / "annotations_test.csv").write_text(
        "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n"
        f"{C},Aortic enlargement,0,R11,1.0,2.0,3.0,4.0\n"
        f"{C},Aortic enlargement,0,R11,5.0,6.0,7.0,8.0\n"
        f"{D},No finding,14,R12,,,,\n")
    with gzip.open(ann / "image_labels_test.csv.gz", "wt") as f:  # .csv.gz is accepted too
        f.write(labels_csv("Other diseases", [(C, "R11", {"Aortic enlargement", "Other diseases"}),
                                              (D, "R12", {"No finding"})]))
    image = np.linspace(0, 1, 12 * 16, dtype=np.float32).reshape(12, 16)
    write_dicom(folder / "train" / f"{A}.dicom", image, bits_stored=12, photometric="MONOCHROME1")
    write_dicom(folder / "test" / f"{C}.dicom", image, bits_stored=12, photometric="MONOCHROME2")
    return folder


@pytest.fixture()
def physionet(tmp_path) -> Path:
    return write_physionet(tmp_path / "vindr-cxr" / "1.0.0")


def by_id(loader: VinDrCXR) -> dict:
    return {s.id: s for s in loader.samples()}


def test_physionet_majority_labels_union_boxes_and_splits(physionet):
    loader = VinDrCXR(physionet.parent)  # the parent of 1.0.0 is accepted as root
    s = by_id(loader)
    assert list(s) == [A, B, C, D]
    train = patient_split([A, B], seed=0, val=0.1, salt="vindr-cxr")
    assert [s[A].split, s[B].split, s[C].split, s[D].split] == [train[A], train[B], "test", "test"]
    assert s[A].image == physionet / "train" / f"{A}.dicom" and s[C].image == physionet / "test" / f"{C}.dicom"
    assert s[A].patient == A and s[A].meta["readers"] == ("R8", "R9", "R10")
    assert set(s[A].labels) == set(VinDrCXR.label_names) and len(VinDrCXR.label_names) == 28
    on = lambda sample: {k for k, v in sample.labels.items() if v == 1.0}  # noqa: E731
    assert on(s[A]) == {"Cardiomegaly"}  # 2 of 3; Nodule/Mass, Other diseases, No finding 1 of 3
    assert on(s[B]) == {"No finding"}
    assert on(s[C]) == {"Aortic enlargement", "Other diseases"} and on(s[D]) == {"No finding"}
    assert s[A].labels["Nodule/Mass"] == 0.0 and s[A].labels["Other diseases"] == 0.0
    assert s[A].boxes == [Box(100.0, 200.0, 300.0, 260.0, "Cardiomegaly", "R8"),
                          Box(110.0, 205.0, 305.0, 262.0, "Cardiomegaly", "R9"),
                          Box(50.5, 50.0, 60.0, 61.0, "Nodule/Mass", "R9")]
    assert s[B].boxes == [Box(10.0, 12.0, 20.0, 22.0, "Pleural effusion", "R3")]
    assert s[C].boxes == [Box(1.0, 2.0, 3.0, 4.0, "Aortic enlargement", "R11"),
                          Box(5.0, 6.0, 7.0, 8.0, "Aortic enlargement", "R11")]
    assert s[D].boxes == []
    # the images are where the samples say, MONOCHROME1 read with bone bright like MONOCHROME2
    np.testing.assert_allclose(read_image(s[A].image), read_image(s[C].image), atol=1e-6)


def test_physionet_any_labels(physionet):
    s = by_id(VinDrCXR(physionet, label_aggregation="any"))
    on = {k for k, v in s[A].labels.items() if v == 1.0}
    assert on == {"Cardiomegaly", "Nodule/Mass", "Other diseases", "No finding"}
    assert {k for k, v in s[B].labels.items() if v == 1.0} == {"No finding", "Pleural effusion"}


def test_physionet_majority_boxes_keep_classes_drawn_by_two_of_three_readers(physionet):
    s = by_id(VinDrCXR(physionet, box_aggregation="majority"))
    assert s[A].boxes == [Box(100.0, 200.0, 300.0, 260.0, "Cardiomegaly", "R8"),
                          Box(110.0, 205.0, 305.0, 262.0, "Cardiomegaly", "R9")]
    assert s[B].boxes == []
    assert len(s[C].boxes) == 2  # test boxes are a consensus: kept under every policy


def test_physionet_fused_boxes_average_clusters_of_two_readers(physionet):
    s = by_id(VinDrCXR(physionet, box_aggregation="fused"))
    assert s[A].boxes == [Box(105.0, 202.5, 302.5, 261.0, "Cardiomegaly", None)]
    assert s[B].boxes == []
    assert [b.reader for b in s[C].boxes] == ["R11", "R11"]


def test_aggregate_boxes_clusters_by_iou_within_a_class():
    boxes = [Box(10, 10, 20, 20, "Nodule/Mass", "R1"), Box(11, 11, 21, 21, "Nodule/Mass", "R2"),
             Box(100, 100, 110, 110, "Nodule/Mass", "R3"), Box(12, 12, 22, 22, "ILD", "R3")]
    assert aggregate_boxes(boxes, 3, "union") == boxes
    assert aggregate_boxes(boxes, 3, "majority") == boxes[:3]  # 3 readers drew Nodule/Mass somewhere
    assert aggregate_boxes(boxes, 3, "fused") == [Box(10.5, 10.5, 20.5, 20.5, "Nodule/Mass", None)]
    # IoU((0,0,10,10), (3,0,13,10)) = 70/130 >= 0.4 joins; (6,0,16,10): 40/160 < 0.4 does not
    near = [Box(0, 0, 10, 10, "ILD", "R1"), Box(3, 0, 13, 10, "ILD", "R2")]
    far = [Box(0, 0, 10, 10, "ILD", "R1"), Box(6, 0, 16, 10, "ILD", "R2")]
    assert aggregate_boxes(near, 3, "fused") == [Box(1.5, 0, 11.5, 10, "ILD", None)]
    assert aggregate_boxes(far, 3, "fused") == []
    assert aggregate_boxes(far, 1, "fused") == [Box(0, 0, 10, 10, "ILD", None), Box(6, 0, 16, 10, "ILD", None)]


def write_kaggle(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "train.csv").write_text(
        "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n"
        f"{A},No finding,14,R1,,,,\n"
        f"{A},No finding,14,R2,,,,\n"
        f"{A},No finding,14,R3,,,,\n"
        f"{B},Pleural effusion,10,R8,691.0,1375.0,1653.0,1831.0\n"
        f"{B},Pleural effusion,10,R9,700.0,1380.0,1650.0,1840.0\n"
        f"{B},Aortic enlargement,0,R9,1264.0,743.0,1611.0,1019.0\n"
        f"{B},No finding,14,R10,,,,\n")
    return folder


def test_kaggle_layout_derives_labels_from_boxes_and_carves_val_and_test(tmp_path):
    root = write_kaggle(tmp_path / "vinbigdata")
    s = by_id(VinDrCXR(tmp_path))
    assert list(s) == [A, B]
    split = patient_split([A, B], seed=0, val=0.1, test=0.2, salt="vindr-cxr")
    assert [s[A].split, s[B].split] == [split[A], split[B]]
    assert s[B].image == root / "train" / f"{B}.dicom"
    assert set(s[A].labels) == {"Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly",
                                "Consolidation", "ILD", "Infiltration", "Lung Opacity", "Nodule/Mass",
                                "Other lesion", "Pleural effusion", "Pleural thickening", "Pneumothorax",
                                "Pulmonary fibrosis", "No finding"}
    assert {k for k, v in s[A].labels.items() if v == 1.0} == {"No finding"}
    assert {k for k, v in s[B].labels.items() if v == 1.0} == {"Pleural effusion"}
    assert math.isnan(s[B].labels.get("Edema", math.nan))  # not a Kaggle class: unknown, not negative
    assert s[B].meta["readers"] == ("R8", "R9", "R10")
    assert len(s[B].boxes) == 3
    fused = by_id(VinDrCXR(root, box_aggregation="fused", label_aggregation="any"))[B]
    assert fused.boxes == [Box(695.5, 1377.5, 1651.5, 1835.5, "Pleural effusion", None)]
    assert {k for k, v in fused.labels.items() if v == 1.0} == {"Pleural effusion", "Aortic enlargement",
                                                               "No finding"}


@pytest.mark.parametrize("file,old,new,why", [
    ("annotations_train.csv", "R9,Nodule/Mass,50.5,50.0,60.0,61.0", "R9,Nodule/Mass,50.5,,60.0,61.0",
     "row 4, field 'y_min': is blank while the other box fields are set"),
    ("annotations_train.csv", "R9,Nodule/Mass,50.5,50.0,60.0,61.0", "R9,Nodule/Mass,70,50.0,60.0,61.0",
     "row 4: box .* is not x_min <= x_max"),
    ("annotations_train.csv", "R9,Nodule/Mass,50.5,50.0,60.0,61.0", "R9,Nodule/Mass,a,50.0,60.0,61.0",
     "row 4, field 'x_min': 'a' is not a number"),
    ("annotations_train.csv", f"{A},R10,No finding,,,,", f"{A},R10,No finding,1,2,3,4",
     "row 5: a 'No finding' row has a box"),
    ("annotations_train.csv", f"{B},R1,No finding", f"{D}0,R1,No finding",
     "has box rows but no row in image_labels_train.csv"),
    ("annotations_train.csv", "class_name", "label", "missing column"),
    ("image_labels_train.csv", f"{A},R8,0,0,0,1", f"{A},R8,0,0,0,2",
     "row 2, field 'Cardiomegaly': '2'; expected 0 or 1"),
])
def test_malformed_files_are_data_errors_naming_row_and_field(physionet, file, old, new, why):
    path = physionet / "annotations" / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(DataError, match=why):
        VinDrCXR(physionet).samples()


def test_options_are_validated(physionet):
    with pytest.raises(ConfigError, match="box_aggregation"):
        VinDrCXR(physionet, box_aggregation="wbf")
    with pytest.raises(ConfigError, match="unknown option"):
        VinDrCXR(physionet, readers=2)


def test_not_a_vindr_root(tmp_path):
    with pytest.raises(DataError, match="not a dataset root"):
        VinDrCXR(tmp_path).samples()


# --------------------------------------------------------------------------- demo round trip


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    pytest.importorskip("xrbench.data.phantom.chest")
    from xrbench.data.phantom.chest import generate_chest

    root = tmp_path_factory.mktemp("vindr-demo")
    VinDrCXR.write_demo(root, n=24, seed=3)
    return root, generate_chest(24, seed=3, images_per_patient=1.0)


def test_demo_round_trip(demo):
    from xrbench.data.datasets.vindr_cxr import LOCAL_LABELS, PHANTOM_TO_VINDR

    root, cases = demo
    header = (root / "annotations" / "annotations_train.csv").read_text().splitlines()[0]
    assert header == "image_id,rad_id,class_name,x_min,y_min,x_max,y_max"
    samples = VinDrCXR(root).samples()
    assert len(samples) == 24
    test = [s for s in samples if s.split == "test"]
    assert len(test) == 6 and {s.split for s in samples} == {"train", "val", "test"}
    order = sorted(range(24), key=lambda i: i % 4 == 3)  # train images first, then test, in file order
    photometrics = set()
    for s, i in zip(samples, order):
        case = cases[i]
        truth = {PHANTOM_TO_VINDR[f] for f in case.findings if f in PHANTOM_TO_VINDR}
        on = {k for k, v in s.labels.items() if v == 1.0}
        assert on - {"No finding"} <= truth  # readers miss findings but never invent one
        assert {b.label for b in s.boxes} <= set(LOCAL_LABELS)  # global labels have no boxes
        if s.split == "test":
            assert on == (truth or {"No finding"})
            expected = [(PHANTOM_TO_VINDR[f], *(round(v, 1) for v in c)) for f, *c in case.boxes
                        if PHANTOM_TO_VINDR.get(f) in LOCAL_LABELS]
            assert [(b.label, b.x0, b.y0, b.x1, b.y1) for b in s.boxes] == expected
        else:
            assert len(s.meta["readers"]) == 3
            assert {b.label for b in s.boxes} <= truth
        image = read_image(s.image)
        assert image.shape == case.image.shape  # boxes are in the DICOM's pixels
        span = float(case.image.max() - case.image.min())
        np.testing.assert_allclose(image, (case.image - case.image.min()) / span, atol=1.5 / 4095 / span)
        photometrics.add(pydicom.dcmread(s.image, stop_before_pixels=True).PhotometricInterpretation)
    assert photometrics == {"MONOCHROME1", "MONOCHROME2"}
    fused = VinDrCXR(root, box_aggregation="fused").samples()
    assert all(b.reader is None for s in fused if s.split != "test" for b in s.boxes)


def test_demo_is_deterministic(demo, tmp_path):
    root, _ = demo
    VinDrCXR.write_demo(tmp_path, n=24, seed=3)
    for rel in ("annotations/annotations_train.csv", "annotations/image_labels_test.csv"):
        assert (tmp_path / rel).read_bytes() == (root / rel).read_bytes()
    assert sorted(os.listdir(tmp_path / "train")) == sorted(os.listdir(root / "train"))

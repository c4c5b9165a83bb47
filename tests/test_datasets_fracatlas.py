"""FracAtlas: dataset.csv flags, class folders (a file in both), COCO boxes/polygons, splits, bad JPEGs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from xrbench.data.base import patient_split
from xrbench.data.datasets.fracatlas import FracAtlas
from xrbench.data.images import read_image, read_image_partial, write_raster
from xrbench.data.masks import load_mask, polygons_to_mask
from xrbench.data.phantom.limbs import generate_fracatlas
from xrbench.data.sample import Box, MaskRef
from xrbench.errors import ConfigError, DataError

HEADER = "image_id,hand,leg,hip,shoulder,mixed,hardware,multiscan,fractured,fracture_count,frontal,lateral,oblique"
ROWS = [
    "IMG0000000.jpg,1,0,0,0,0,0,0,1,1,1,0,0",  # fractured hand
    "IMG0000001.jpg,0,1,0,0,0,1,0,0,0,0,1,0",  # not fractured, hardware; sits in BOTH class folders
    "IMG0000002.jpg,0,1,1,0,1,0,1,1,2,1,1,0",  # mixed leg+hip, multiscan, two fractures
    "IMG0004028.jpg,0,0,0,1,0,0,0,0,0,1,0,0",  # one of the truncated JPEGs of the real release
]
COCO = {
    "images": [{"id": 1, "file_name": "IMG0000000.jpg", "width": 12, "height": 10},
               {"id": 2, "file_name": "IMG0000002.jpg", "width": 20, "height": 16}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [2, 3, 5, 3],
         "segmentation": [[2, 3, 7, 3, 7, 6, 2, 6]], "area": 15},
        {"id": 2, "image_id": 2, "category_id": 1, "iscrowd": 0, "bbox": [1.5, 2.25, 4, 2],
         "segmentation": [[1, 2, 4, 2, 4, 4, 1, 4]], "area": 6},
        {"id": 3, "image_id": 2, "category_id": 1, "iscrowd": 0, "bbox": [10, 10, 3, 4],
         "segmentation": [[10, 10, 13, 10, 13, 14, 10, 14]], "area": 12},
    ],
    "categories": [{"id": 1, "name": "fractured"}],
}


def write_fixture(root: Path, *, rows=ROWS, coco=COCO, splits=None) -> Path:
    folder = root / "FracAtlas"
    (folder / "images" / "Fractured").mkdir(parents=True)
    (folder / "images" / "Non_fractured").mkdir(parents=True)
    (folder / "dataset.csv").write_text("\n".join([HEADER] + rows) + "\n")
    img = np.linspace(0, 1, 16 * 20, dtype=np.float32).reshape(16, 20)
    for name in ("IMG0000000.jpg", "IMG0000002.jpg", "IMG0000001.jpg"):
        write_raster(folder / "images" / "Fractured" / name, img)
    write_raster(folder / "images" / "Non_fractured" / "IMG0000001.jpg", img)
    full = folder / "images" / "Non_fractured" / "IMG0004028.jpg"
    write_raster(full, np.linspace(0, 1, 48 * 40, dtype=np.float32).reshape(48, 40) ** 2)
    good = full.read_bytes()
    full.write_bytes(good[: len(good) * 3 // 4])  # truncated in its pixel data, as the real ones are
    coco_path = folder / "Annotations" / "COCO JSON" / "COCO_fracture_masks.json"
    coco_path.parent.mkdir(parents=True)
    coco_path.write_text(json.dumps(coco))
    (folder / "Annotations" / "YOLO").mkdir(parents=True)
    (folder / "Annotations" / "YOLO" / "IMG0000001.txt").write_text("")
    split_dir = folder / "Utilities" / "Fracture Split"
    split_dir.mkdir(parents=True)
    splits = splits or {"train.csv": ["IMG0000000.jpg"], "valid.csv": ["IMG0000002.jpg"], "test.csv": []}
    for name, ids in splits.items():
        (split_dir / name).write_text("image_id\n" + "".join(i + "\n" for i in ids))
    return folder


def test_seeded_split_loads_every_image_with_exact_labels_boxes_and_masks(tmp_path):
    folder = write_fixture(tmp_path)
    samples = FracAtlas(tmp_path, seed=7).samples()
    split = patient_split(["IMG0000000", "IMG0000001", "IMG0000002", "IMG0004028"], seed=7, val=0.1, test=0.2,
                          salt="fracatlas")
    assert [(s.id, s.patient, s.split, s.target, s.labels) for s in samples] == [
        ("IMG0000000", "IMG0000000", split["IMG0000000"], 1, {"fractured": 1.0, "hardware": 0.0}),
        ("IMG0000001", "IMG0000001", split["IMG0000001"], 0, {"fractured": 0.0, "hardware": 1.0}),
        ("IMG0000002", "IMG0000002", split["IMG0000002"], 1, {"fractured": 1.0, "hardware": 0.0}),
        ("IMG0004028", "IMG0004028", split["IMG0004028"], 0, {"fractured": 0.0, "hardware": 0.0}),
    ]
    # the CSV label picks the folder: IMG0000001 is in both, and is read from Non_fractured
    assert [s.image for s in samples] == [folder / "images/Fractured/IMG0000000.jpg",
                                          folder / "images/Non_fractured/IMG0000001.jpg",
                                          folder / "images/Fractured/IMG0000002.jpg",
                                          folder / "images/Non_fractured/IMG0004028.jpg"]
    a, b, c, d = samples
    assert a.boxes == [Box(2.0, 3.0, 7.0, 6.0, "fractured")]
    assert c.boxes == [Box(1.5, 2.25, 5.5, 4.25, "fractured"), Box(10.0, 10.0, 13.0, 14.0, "fractured")]
    assert b.boxes == d.boxes == [] and b.mask is None and d.mask is None
    assert a.mask == MaskRef("polygons", ((2.0, 3.0, 7.0, 3.0, 7.0, 6.0, 2.0, 6.0),), 10, 12)
    expected = np.zeros((10, 12), bool)
    expected[3:6, 2:7] = True  # pixel (i, j) covers [j, j+1) x [i, i+1)
    np.testing.assert_array_equal(load_mask(a.mask), expected)
    expected = np.zeros((16, 20), bool)
    expected[2:4, 1:4] = True
    expected[10:14, 10:13] = True
    np.testing.assert_array_equal(load_mask(c.mask), expected)
    assert a.meta == {"body_part": "hand", "regions": ["hand"], "views": ["frontal"], "mixed": 0, "multiscan": 0,
                      "hardware": 0, "fracture_count": 1}
    assert c.meta == {"body_part": "mixed", "regions": ["leg", "hip"], "views": ["frontal", "lateral"], "mixed": 1,
                      "multiscan": 1, "hardware": 0, "fracture_count": 2}
    assert d.meta["body_part"] == "shoulder"


def test_truncated_jpeg_loads_and_decodes_as_far_as_its_data_goes(tmp_path):
    write_fixture(tmp_path)
    truncated = next(s for s in FracAtlas(tmp_path).samples() if s.id == "IMG0004028")
    img, partial = read_image_partial(truncated.image)
    assert partial and img.shape == (48, 40)
    ramp = np.linspace(0, 1, 48 * 40).reshape(48, 40) ** 2
    assert np.abs(img[:16] - ramp[:16]).max() < 0.03  # the rows its data holds


def test_official_fractured_split_keeps_only_the_listed_images(tmp_path):
    write_fixture(tmp_path / "parent")
    samples = FracAtlas(tmp_path / "parent", split="official-fractured").samples()
    assert [(s.id, s.split, len(s.boxes)) for s in samples] == [("IMG0000000", "train", 1), ("IMG0000002", "val", 2)]


def test_split_csv_image_id_with_bom_and_spaces_in_the_header(tmp_path):
    folder = write_fixture(tmp_path)
    (folder / "Utilities" / "Fracture Split" / "test.csv").write_bytes("\ufeff image_id \nIMG0000002.jpg\n".encode())
    (folder / "Utilities" / "Fracture Split" / "valid.csv").write_text("image_id\n")
    samples = FracAtlas(tmp_path, split="official-fractured").samples()
    assert [(s.id, s.split) for s in samples] == [("IMG0000000", "train"), ("IMG0000002", "test")]


@pytest.mark.parametrize("mutate, message", [
    (lambda r, c, s: r.__setitem__(1, "IMG0000001.jpg,0,1,0,0,0,2,0,0,0,0,1,0"),
     r"dataset.csv, row 3, field 'hardware': '2' is not 0 or 1"),
    (lambda r, c, s: r.__setitem__(2, "IMG0000002.jpg,0,1,1,0,1,0,1,1,two,1,1,0"),
     r"dataset.csv, row 4, field 'fracture_count': 'two' is not a count"),
    (lambda r, c, s: r.append("IMG0000000.jpg,1,0,0,0,0,0,0,1,1,1,0,0"), r"row 6, field 'image_id': .* listed twice"),
    (lambda r, c, s: r.append("../IMG9.jpg,1,0,0,0,0,0,0,1,1,1,0,0"), r"row 6, field 'image_id': .* not a file name"),
    (lambda r, c, s: c["images"].append({"id": 9, "file_name": "IMG0009999.jpg", "width": 5, "height": 5}),
     r"field 'images\[2\]': image 'IMG0009999.jpg' is not in dataset.csv"),
    (lambda r, c, s: c["annotations"][0].__setitem__("image_id", 42), r"field 'annotations\[0\]': image_id 42"),
    (lambda r, c, s: c["annotations"][0].__setitem__("segmentation", {"size": [10, 12], "counts": "abc"}),
     r"field 'annotations\[0\]': segmentation is RLE"),
    (lambda r, c, s: c["annotations"][1].__setitem__("segmentation", [[1, 2, 3, 4]]),
     r"annotations\[1\].segmentation\[0\]': polygon has 4 numbers"),
    (lambda r, c, s: c["annotations"][1].__setitem__("bbox", [1, 2, 3]), r"annotations\[1\].bbox': .* expected 4"),
    (lambda r, c, s: c["annotations"][1].__setitem__("category_id", 5), r"category_id 5 is not in 'categories'"),
    (lambda r, c, s: c["annotations"].__setitem__(0, "IMG0000001.jpg"),
     r"field 'annotations\[0\]': 'IMG0000001.jpg' is not an object"),
    (lambda r, c, s: c["images"][0].__setitem__("height", 0), r"field 'images\[0\]': needs .* positive integer"),
    (lambda r, c, s: c["annotations"][1].__setitem__("bbox", [1, 2, "3", 4]), r"bbox': .* not a list of finite"),
    (lambda r, c, s: c.__setitem__("annotations", "none"), r"expected an object with lists 'images' and"),
    (lambda r, c, s: s["test.csv"].append("IMG0000077.jpg"), r"test.csv, row 2, field 'image_id': 'IMG0000077.jpg'"),
    (lambda r, c, s: s["test.csv"].append("IMG0000000.jpg"), r"already in the train split"),
])
def test_malformed_files_are_errors_naming_file_row_and_field(tmp_path, mutate, message):
    rows, coco = list(ROWS), json.loads(json.dumps(COCO))
    splits = {"train.csv": ["IMG0000000.jpg"], "valid.csv": ["IMG0000002.jpg"], "test.csv": []}
    mutate(rows, coco, splits)
    write_fixture(tmp_path, rows=rows, coco=coco, splits=splits)
    with pytest.raises(DataError, match=message):
        FracAtlas(tmp_path, split="official-fractured").samples()


def test_unknown_split_option_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="split='official'"):
        FracAtlas(tmp_path, split="official")


def test_missing_coco_json_is_an_error(tmp_path):
    folder = write_fixture(tmp_path)
    (folder / "Annotations" / "COCO JSON" / "COCO_fracture_masks.json").unlink()
    with pytest.raises(DataError, match="COCO annotation file is missing"):
        FracAtlas(tmp_path).samples()


def test_writer_round_trip_gives_the_phantom_labels_boxes_and_masks(tmp_path):
    FracAtlas.write_demo(tmp_path, n=12, seed=2)
    cases = generate_fracatlas(12, seed=2)
    samples = FracAtlas(tmp_path).samples()
    assert [s.id for s in samples] == [f"IMG{k:07d}" for k in range(12)]
    assert [s.target for s in samples] == [int(c.fractured) for c in cases]
    assert [s.meta["body_part"] for s in samples] == [c.part for c in cases]
    assert [s.labels["hardware"] for s in samples] == [float(c.hardware) for c in cases]
    assert any(c.fractured for c in cases) and not all(c.fractured for c in cases)
    for s, c in zip(samples, cases):
        assert s.meta["views"] == [c.view]
        np.testing.assert_allclose(read_image(s.image), c.image, atol=0.08)  # JPEG
        if not c.fractured:
            assert s.boxes == [] and s.mask is None
            continue
        assert len(s.boxes) == len(c.fractures)
        for box, fr in zip(s.boxes, c.fractures):
            np.testing.assert_allclose([box.x0, box.y0, box.x1, box.y1], fr.box, atol=0.011)
        np.testing.assert_array_equal(load_mask(s.mask), polygons_to_mask([f.polygon for f in c.fractures], 256, 256))
    # the real quirk: a non-fractured image also sits in images/Fractured; the CSV label wins
    dup = next(s for s in samples if s.target == 0)
    assert (dup.image.parent.parent / "Fractured" / dup.image.name).is_file()
    assert dup.image.parent.name == "Non_fractured"
    official = FracAtlas(tmp_path, split="official-fractured").samples()
    assert sorted(s.id for s in official) == sorted(s.id for s in samples if s.target == 1)
    yolo = Path(tmp_path / "FracAtlas/Annotations/YOLO")
    assert (yolo / f"{dup.id}.txt").read_text() == ""

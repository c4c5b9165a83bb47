"""Any input gives a result or a documented clear error (DataError / ConfigError), never another
exception: Hypothesis writes CheXpert and NIH CSV rows, SIIM RLE strings, FracAtlas COCO JSON
fragments and ISBI 2015 landmark files. ``max_examples`` keeps the file to a few seconds."""
from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xrbench.data.datasets.chexpert import HEADER, CheXpert
from xrbench.data.datasets.fracatlas import _read_coco
from xrbench.data.datasets.isbi2015_ceph import N_LANDMARKS, read_landmarks
from xrbench.data.datasets.nih_cxr14 import NIHChestXray14
from xrbench.data.masks import rle_decode, rle_encode, rle_runs
from xrbench.errors import ConfigError, DataError

CLEAR = (DataError, ConfigError)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: cells that are valid somewhere, plus the junk real files and typos contain
junk = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
label_cell = st.sampled_from(["1.0", "0.0", "-1.0", "", "1", " 0 ", "2.0", "nan", "inf", "yes", "-1e0", "1_0"]) | junk
path_cell = st.sampled_from([
    "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg", "train/patient00002/study2/view2_lateral.jpg",
    "CheXpert-v1.0-small/train/patient00003/study1/../study1/view1_frontal.jpg", "/etc/passwd",
    "../../x/patient1/study1/a.jpg", "C:\\data\\patient1\\study1\\a.jpg", "", "patient1/study1/",
]) | junk


def _csv(rows) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def _outcome(call):
    """The call's result, or None after a clear error; any other exception fails the test."""
    try:
        return call()
    except CLEAR:
        return None


@FAST
@given(rows=st.lists(st.tuples(path_cell, st.sampled_from(["Male", "Female", "Unknown", "", "m", "x"]) | junk,
                               st.sampled_from(["68", "0", "", "-3", "4.5", "1e3", "inf", "nan"]) | junk,
                               st.sampled_from(["Frontal", "Lateral", "lateral ", "", "Oblique"]),
                               st.sampled_from(["AP", "PA", "", "LL"]),
                               st.lists(label_cell, min_size=14, max_size=14)),
                     min_size=1, max_size=6))
def test_chexpert_rows_load_or_fail_clearly(rows):
    table = [list(HEADER)] + [[p, s, a, f, v, *labels] for p, s, a, f, v, labels in rows]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "CheXpert-v1.0-small"
        folder.mkdir()
        (folder / "train.csv").write_text(_csv(table), encoding="utf-8")
        (folder / "valid.csv").write_text(_csv([list(HEADER)]))
        samples = _outcome(lambda: CheXpert(tmp).samples())
    if samples is not None:
        assert len(samples) == len(rows)
        for s in samples:
            assert s.image.is_relative_to(folder) and ".." not in s.image.parts
            assert all(v != v or v in (1.0, 0.0, -1.0) for v in s.labels.values())


NIH_HEAD = ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender",
            "View Position"]


@FAST
@given(rows=st.lists(st.tuples(st.sampled_from(["00000001_000.png", "00000001_001.png", "", "a b.png"]) | junk,
                               st.sampled_from(["No Finding", "Mass|Nodule", "Infiltrate", "Effusion|",
                                                "Pleural Thickening", "Cancer"]) | junk,
                               st.sampled_from(["0", "1", "", "x", "1.5"]),
                               st.sampled_from(["1", "0001", "", "p7"]) | junk,
                               st.sampled_from(["58", "058Y", "", "412", "-1", "x"]),
                               st.sampled_from(["M", "F", "", "X"]), st.sampled_from(["PA", "AP", ""]),
                               st.booleans()),
                     min_size=1, max_size=6))
def test_nih_rows_load_or_fail_clearly(rows):
    table = [NIH_HEAD] + [list(r[:7]) for r in rows]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "Data_Entry_2017.csv").write_text(_csv(table), encoding="utf-8")
        (root / "test_list.txt").write_text("".join(f"{r[0]}\n" for r in rows if r[7]))
        (root / "train_val_list.txt").write_text("".join(f"{r[0]}\n" for r in rows if not r[7]))
        samples = _outcome(lambda: NIHChestXray14(root).samples())
    if samples is not None:
        assert len(samples) == len(rows)
        assert all(set(s.labels.values()) <= {0.0, 1.0} for s in samples)


rle_text = (st.lists(st.integers(-3, 80), max_size=10).map(lambda v: " ".join(map(str, v)))
            | st.sampled_from(["-1", " -1", "", "1 2 3", "0 100", "5 x", "1e3 4", "4294967296 1", "\u0661 2"])
            | junk)


@settings(max_examples=150, deadline=None)
@given(rle=rle_text, h=st.integers(1, 9), w=st.integers(1, 9))
def test_siim_rle_decodes_or_fails_clearly(rle, h, w):
    runs = _outcome(lambda: rle_runs(rle, h, w, path="train-rle.csv", row=2, field="EncodedPixels"))
    if runs is not None:
        mask = rle_decode(rle, h, w)
        assert mask.shape == (h, w) and mask.sum() == np.sum(runs[1] - runs[0])  # runs never overlap
        assert np.array_equal(rle_decode(rle_encode(mask), h, w), mask)


json_value = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=True)
                          | st.sampled_from(["IMG0000001.jpg", "x", ""]),
                          lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
                              ["id", "file_name", "height", "width", "image_id", "bbox", "segmentation",
                               "category_id", "name"]), inner, max_size=5), max_leaves=12)
image = st.fixed_dictionaries({"id": st.integers(0, 3) | json_value,
                               "file_name": st.sampled_from(["IMG0000001.jpg", "sub\\IMG0000002.jpg", "nope.jpg"]),
                               "height": st.integers(-1, 64) | json_value, "width": st.integers(1, 64)})
annotation = st.fixed_dictionaries({"image_id": st.integers(0, 3) | json_value,
                                    "bbox": st.lists(st.integers(-2, 9), min_size=3, max_size=5) | json_value,
                                    "category_id": st.sampled_from([1, 2]) | json_value,
                                    "segmentation": st.lists(st.lists(st.floats(-1, 70), max_size=8), max_size=2)
                                    | json_value})
coco = st.fixed_dictionaries({"images": st.lists(image | json_value, max_size=3),
                              "annotations": st.lists(annotation | json_value, max_size=3) | json_value,
                              "categories": st.just([{"id": 1, "name": "fractured"}]) | json_value}) | json_value


@settings(max_examples=120, deadline=None)
@given(doc=coco)
def test_fracatlas_coco_fragments_read_or_fail_clearly(doc):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "COCO_fracture_masks.json"
        path.write_text(json.dumps(doc))
        found = _outcome(lambda: _read_coco(path, {"IMG0000001.jpg", "IMG0000002.jpg"}))
    if found is not None:
        for boxes, mask in found.values():
            assert all(b.x1 >= b.x0 and b.y1 >= b.y0 for b in boxes)
            assert mask.height > 0 and mask.width > 0


landmark_line = (st.tuples(st.integers(0, 2000), st.integers(0, 2000)).map(lambda p: f"{p[0]},{p[1]}")
                 | st.sampled_from(["", "  ", "12 34", "1,2,3", "x,y", "nan,1", "1e999,2", "3", "\t5,\t6"]) | junk)


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(landmark_line, min_size=0, max_size=24), raw=st.binary(max_size=8))
def test_isbi_landmark_files_read_or_fail_clearly(lines, raw):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "001.txt"
        path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass") + raw)
        points = _outcome(lambda: read_landmarks(path))
    if points is not None:
        assert points.shape == (N_LANDMARKS, 2) and np.isfinite(points).all()

"""ISBI 2015 cephalometric loader: hand-written fixtures (trailing lines, nesting, readers, test sets)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xrbench.data.datasets.isbi2015_ceph import ISBI2015Ceph, read_landmarks
from xrbench.data.images import image_size, write_raster
from xrbench.data.phantom.skull import CEPH_LANDMARKS
from xrbench.errors import ConfigError, DataError

SENIOR = np.array([[835 + 10 * k, 996 + 7 * k] for k in range(19)])
JUNIOR = SENIOR + np.array([[(-1) ** k * (k % 3), 2] for k in range(19)])
IDS = {"TrainingData": ["001", "002", "003"], "Test1Data": ["151"], "Test2Data": ["301"]}


def _txt(points: np.ndarray, *, style: int = 0) -> str:
    """Real files: 19 ``x,y`` lines then extra lines; we vary spacing and blank lines per style."""
    lines = [f"{x},{y}" if style == 0 else f" {x}, {y} " for x, y in points]
    if style == 1:
        lines.insert(5, "")
    return "\n".join(lines + ["1", "3"]) + "\n"


def _fixture(root: Path, *, nested: bool = False, junior: bool = True) -> Path:
    raw = root / "RawImage" / "RawImage" if nested else root / "RawImage"
    for subset, ids in IDS.items():
        for i, stem in enumerate(ids):
            write_raster(raw / subset / f"{stem}.bmp", np.full((12, 10), 0.5))
            for reader, pts in (("400_senior", SENIOR), ("400_junior", JUNIOR)):
                if reader == "400_junior" and not junior:
                    continue
                path = root / "AnnotationsByMD" / reader / f"{stem}.txt"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(_txt(pts + int(stem), style=i % 2))
    (raw / "TrainingData" / "Thumbs.db").write_bytes(b"\0")  # non-image file beside the BMPs
    return root


def test_average_landmarks_pixels_and_mm(tmp_path):
    ds = ISBI2015Ceph(_fixture(tmp_path / "isbi"))
    samples = ds.samples()
    assert [s.id for s in samples] == ["001", "002", "003", "151"]  # default test_set = test1
    s = samples[1]
    expected = (SENIOR + JUNIOR) / 2 + 2
    assert s.landmarks.shape == (19, 2)
    np.testing.assert_array_equal(s.landmarks, expected)
    np.testing.assert_allclose(s.landmarks * s.spacing_mm, expected * 0.1)
    assert s.landmarks[0].tolist() == [837.0, 999.0]  # senior (837, 998), junior (837, 1000)
    assert (s.landmarks[3] * s.spacing_mm).tolist() == pytest.approx([86.7, 102.0])
    assert s.spacing_mm == 0.1 and s.patient == "002"
    assert s.meta["landmark_names"] == CEPH_LANDMARKS and s.meta["subset"] == "TrainingData"
    assert samples[3].split == "test" and samples[3].meta["subset"] == "Test1Data"
    assert s.image == tmp_path / "isbi" / "RawImage" / "TrainingData" / "002.bmp"


@pytest.mark.parametrize("annotation, points", [("senior", SENIOR), ("junior", JUNIOR)])
def test_single_reader(tmp_path, annotation, points):
    samples = ISBI2015Ceph(_fixture(tmp_path / "isbi"), annotation=annotation).samples()
    np.testing.assert_array_equal(samples[0].landmarks, points + 1)
    assert samples[0].meta["annotation"] == annotation


@pytest.mark.parametrize("test_set, ids", [("test1", ["151"]), ("test2", ["301"]), ("both", ["151", "301"])])
def test_test_set_option(tmp_path, test_set, ids):
    samples = ISBI2015Ceph(_fixture(tmp_path / "isbi"), test_set=test_set).samples()
    assert [s.id for s in samples if s.split == "test"] == ids
    assert [s.id for s in samples if s.split != "test"] == ["001", "002", "003"]


def test_nested_raw_image_and_parent_root(tmp_path):
    _fixture(tmp_path / "download" / "ISBI2015", nested=True)
    samples = ISBI2015Ceph(tmp_path / "download").samples()
    assert [s.id for s in samples] == ["001", "002", "003", "151"]
    assert samples[0].image.parent.parent.parent.name == "RawImage"


def test_appledouble_files_beside_the_bmps_are_not_images(tmp_path):
    # a tar/zip made on macOS carries ._<name> beside each file; no annotation exists for those
    root = _fixture(tmp_path / "isbi")
    for subset, ids in IDS.items():
        for stem in ids:
            (root / "RawImage" / subset / f"._{stem}.bmp").write_bytes(b"\0\5\26\7")
    samples = ISBI2015Ceph(root, test_set="both").samples()
    assert [s.id for s in samples] == ["001", "002", "003", "151", "301"]


def test_missing_junior_with_average_names_the_file(tmp_path):
    root = _fixture(tmp_path / "isbi")
    (root / "AnnotationsByMD" / "400_junior" / "002.txt").unlink()
    with pytest.raises(DataError, match=r"400_junior/002\.txt: annotation file does not exist"):
        ISBI2015Ceph(root).samples()
    assert len(ISBI2015Ceph(root, annotation="senior").samples()) == 4


def test_missing_junior_folder(tmp_path):
    root = _fixture(tmp_path / "isbi", junior=False)
    with pytest.raises(DataError, match="no folder '400_junior'"):
        ISBI2015Ceph(root).samples()
    assert len(ISBI2015Ceph(root, annotation="senior").samples()) == 4


def test_unknown_option_value():
    with pytest.raises(ConfigError):
        ISBI2015Ceph(".", annotation="mean")


@pytest.mark.parametrize("text, message", [
    ("\n".join(["10,20"] * 18) + "\n", "holds 18 landmark lines; expected 19"),
    ("\n".join(["10,20"] * 4 + ["10;x"] + ["10,20"] * 14) + "\n", "row 5: '10;x' is not an 'x,y' landmark"),
    ("\n".join(["10,20"] * 2 + ["10,20,30"] + ["10,20"] * 16) + "\n", "row 3"),
    ("\n".join(["10,20"] * 6 + ["nan,20"] + ["10,20"] * 12) + "\n", "row 7: 'nan,20' is not an 'x,y' landmark"),
    ("\n".join(["1e999,20"] + ["10,20"] * 18) + "\n", "row 1: '1e999,20' is not"),
])
def test_malformed_annotation(tmp_path, text, message):
    path = tmp_path / "001.txt"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        read_landmarks(path)
    assert message in str(err.value) and "001.txt" in str(err.value)


def test_whitespace_separated_and_extra_lines(tmp_path):
    path = tmp_path / "001.txt"
    path.write_text("\n".join(f"{k}\t{2 * k}" for k in range(19)) + "\n\n7\n2\nfoo\n")
    np.testing.assert_array_equal(read_landmarks(path), [[k, 2 * k] for k in range(19)])


def test_val_carved_by_seeded_split(tmp_path):
    root = tmp_path / "isbi"
    _fixture(root)
    for k in range(4, 61):
        stem = f"{k:03d}"
        write_raster(root / "RawImage" / "TrainingData" / f"{stem}.bmp", np.zeros((4, 4)))
        for reader in ("400_senior", "400_junior"):
            (root / "AnnotationsByMD" / reader / f"{stem}.txt").write_text(_txt(SENIOR))
    splits = [s.split for s in ISBI2015Ceph(root, seed=0).samples()]
    assert splits.count("val") > 0 and splits.count("train") > splits.count("val")
    assert splits == [s.split for s in ISBI2015Ceph(root, seed=0).samples()]
    assert splits != [s.split for s in ISBI2015Ceph(root, seed=5).samples()]


def test_demo_round_trip(tmp_path):
    root = tmp_path / "demo"
    ISBI2015Ceph.write_demo(root, n=8, seed=1)
    samples = ISBI2015Ceph(root, test_set="both").samples()
    assert [s.id for s in samples] == [f"{k:03d}" for k in range(1, 9)]
    assert [s.meta["subset"] for s in samples] == ["TrainingData"] * 3 + ["Test1Data"] * 3 + ["Test2Data"] * 2
    for s in samples:
        senior_path = root / "AnnotationsByMD" / "400_senior" / f"{s.id}.txt"
        assert len(senior_path.read_text().splitlines()) == 21  # 19 points + 2 extra lines
        senior = read_landmarks(senior_path)
        junior = read_landmarks(root / "AnnotationsByMD" / "400_junior" / f"{s.id}.txt")
        np.testing.assert_array_equal(s.landmarks, (senior + junior) / 2)
        assert 0 < np.abs(senior - junior).max() <= 4  # reader noise, small
        h, w = image_size(s.image)
        assert (h, w) == (256, 256)
        assert (s.landmarks >= 0).all() and (s.landmarks[:, 0] < w).all() and (s.landmarks[:, 1] < h).all()

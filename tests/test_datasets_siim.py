"""SIIM-ACR: both CSV headers, -1 / multi-row images / DICOMs without rows, mask sizes, demo round trip."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pydicom
import pytest

from xrbench.data.base import patient_split
from xrbench.data.datasets.siim_acr import SIIMACR, _uid
from xrbench.data.images import read_image, write_dicom
from xrbench.data.masks import load_mask, rle_decode
from xrbench.errors import DataError

P = "1.2.276.0.7230010.3.1.4.8323329."
IMG1, IMG2, IMG3, IMG4, IMG5, IMG6 = (f"{P}{k}.1517875166.{k}" for k in (1034, 5597, 14508, 300, 777, 888))
H, W = 8, 10  # Rows, Columns of the fixture DICOMs (not square, so a swapped size would show)


def write_dicom_tree(root: Path, tree: str, sop: str, *, photometric: str = "MONOCHROME2") -> Path:
    study, series = sop.replace(".4.", ".2.", 1), sop.replace(".4.", ".3.", 1)
    path = root / tree / study / series / f"{sop}.dcm"
    write_dicom(path, np.linspace(0, 1, H * W).reshape(H, W), bits_stored=8, photometric=photometric,
                study_uid=study, series_uid=series, sop_uid=sop)
    return path


@pytest.fixture()
def siim(tmp_path) -> Path:
    """train-rle.csv with its leading-space header; IMG4 and the test-tree IMG6 have no row, IMG5 no DICOM."""
    root = tmp_path / "siim"
    for sop, photometric in ((IMG1, "MONOCHROME2"), (IMG2, "MONOCHROME1"), (IMG3, "MONOCHROME2"),
                             (IMG4, "MONOCHROME2")):
        write_dicom_tree(root, "dicom-images-train", sop, photometric=photometric)
    write_dicom_tree(root, "dicom-images-test", IMG6)
    (root / "train-rle.csv").write_text(
        "ImageId, EncodedPixels\n"
        f"{IMG1}, -1\n"
        f"{IMG2}, 5 3 10 2\n"
        f"{IMG3}, 5 3\n"
        f"{IMG3}, 18 2\n"
        f"{IMG5},-1\n")
    return root


def by_id(loader: SIIMACR) -> dict:
    return {s.id: s for s in loader.samples()}


def test_train_rle_with_leading_space_header(siim):
    loader = SIIMACR(siim.parent)  # the parent folder is accepted as root
    s = by_id(loader)
    assert list(s) == [IMG1, IMG2, IMG3]
    assert loader.unlabelled == (IMG4, IMG6) and loader.missing == (IMG5,)
    assert loader.report_extra() == {"unlabelled": [IMG4, IMG6], "missing": [IMG5]}
    assert [s[i].labels for i in (IMG1, IMG2, IMG3)] == [{"Pneumothorax": 0.0}, {"Pneumothorax": 1.0},
                                                         {"Pneumothorax": 1.0}]
    assert s[IMG2].image.name == f"{IMG2}.dcm" and s[IMG2].image.parent.parent.parent.name == "dicom-images-train"
    assert s[IMG1].mask.source == () and s[IMG2].mask.source == ("5 3 10 2",)
    assert s[IMG3].mask.source == ("5 3", "18 2")
    for sample in s.values():
        assert sample.mask.kind == "siim-rle" and (sample.mask.height, sample.mask.width) == (H, W)
        assert sample.patient == sample.id
    split = patient_split([IMG1, IMG2, IMG3], seed=0, val=0.1, test=0.2, salt="siim-acr")
    assert {i: s[i].split for i in s} == split
    expected = np.zeros((H, W), dtype=bool)  # flat 5,6,7 and 18,19, column-major over 8 rows
    expected[5:8, 0] = True
    expected[2:4, 2] = True
    np.testing.assert_array_equal(load_mask(s[IMG2].mask), expected)
    np.testing.assert_array_equal(load_mask(s[IMG3].mask), expected)  # the two rows OR-ed
    assert not load_mask(s[IMG1].mask).any() and load_mask(s[IMG1].mask).shape == (H, W)
    np.testing.assert_allclose(read_image(s[IMG2].image), read_image(s[IMG1].image), atol=1e-6)


def test_stage_2_header_without_space_is_preferred_and_labels_test_tree(siim):
    with gzip.open(siim / "stage_2_train.csv.gz", "wt") as f:
        f.write("ImageId,EncodedPixels\n"
                f"{IMG1},-1\n"
                f"{IMG6},18 2\n"  # a stage-1 test image, labelled in stage 2
                f"{IMG4},\n")      # a blank cell is an empty mask
    loader = SIIMACR(siim)
    s = by_id(loader)
    assert list(s) == [IMG1, IMG6, IMG4]
    assert loader.unlabelled == tuple(sorted((IMG2, IMG3))) and loader.missing == ()
    assert [s[i].labels["Pneumothorax"] for i in s] == [0.0, 1.0, 0.0]
    np.testing.assert_array_equal(load_mask(s[IMG6].mask), rle_decode("18 2", H, W))


def test_negatives_default_to_1024_when_no_image_is_positive(siim):
    (siim / "train-rle.csv").write_text(f"ImageId, EncodedPixels\n{IMG1}, -1\n{IMG2}, -1\n")
    s = SIIMACR(siim).samples()
    assert [(x.mask.height, x.mask.width) for x in s] == [(1024, 1024), (1024, 1024)]


@pytest.mark.parametrize("line,why", [
    (f"{IMG2}, 5 3 10", "row 3, field 'EncodedPixels': RLE '5 3 10' has 3 numbers"),
    (f"{IMG2}, 5 3 -10 2", "row 3, field 'EncodedPixels': .*negative"),
    (f"{IMG2}, 5 3.0", "row 3, field 'EncodedPixels': .*'3.0' is not an integer"),
    (f"{IMG2}, 70 20", "row 3, field 'EncodedPixels': .*past the end of the 8x10 image"),
    (", 5 3", "row 3, field 'ImageId': is blank"),
])
def test_malformed_rows_are_data_errors_naming_row_and_field(siim, line, why):
    (siim / "train-rle.csv").write_text(f"ImageId, EncodedPixels\n{IMG1}, -1\n{line}\n")
    with pytest.raises(DataError, match=why) as err:
        SIIMACR(siim).samples()
    assert "train-rle.csv" in str(err.value)


def test_messy_csv_bom_crlf_quotes_and_trailing_commas_on_rows_only(siim):
    """A header without a trailing comma over rows with one: pandas would take ImageId as the index
    and shift EncodedPixels into it (every row then 'missing'). With a BOM, CRLF and a quoted cell."""
    (siim / "train-rle.csv").write_bytes(
        ("\ufeffImageId, EncodedPixels\r\n"
         f"{IMG1}, -1,\r\n"
         f'"{IMG2}"," 5 3 10 2",\r\n'
         f"{IMG3}, 5 3,\r\n"
         f"{IMG3}, 18 2,\r\n").encode("utf-8"))
    loader = SIIMACR(siim)
    s = by_id(loader)
    assert list(s) == [IMG1, IMG2, IMG3] and loader.missing == ()
    assert [s[i].labels["Pneumothorax"] for i in s] == [0.0, 1.0, 1.0]
    assert s[IMG2].mask.source == ("5 3 10 2",) and s[IMG3].mask.source == ("5 3", "18 2")


def test_a_value_beyond_the_header_names_its_row(siim):
    (siim / "train-rle.csv").write_text(f"ImageId, EncodedPixels\n{IMG1}, -1,\n{IMG2}, 5 3, 10 2\n")
    with pytest.raises(DataError, match=r"train-rle\.csv, row 3: has more fields than the 2 of the header"):
        SIIMACR(siim).samples()


def test_missing_column_and_root(siim, tmp_path):
    (siim / "train-rle.csv").write_text(f"ImageId, Pixels\n{IMG1}, -1\n")
    with pytest.raises(DataError, match="missing column"):
        SIIMACR(siim).samples()
    with pytest.raises(DataError, match="not a dataset root"):
        SIIMACR(tmp_path / "siim" / "dicom-images-train").samples()


# --------------------------------------------------------------------------- demo round trip


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    pytest.importorskip("xrbench.data.phantom.chest")
    from xrbench.data.phantom.chest import generate_chest

    root = tmp_path_factory.mktemp("siim-demo")
    SIIMACR.write_demo(root, n=40, seed=1)
    return root, generate_chest(40, seed=1, images_per_patient=1.0, prevalence={"Pneumothorax": 0.35})


def test_demo_round_trip_masks_equal_the_phantom(demo):
    root, cases = demo
    text = (root / "train-rle.csv").read_text()
    assert text.startswith("ImageId, EncodedPixels\n") and ", -1\n" in text
    loader = SIIMACR(root)
    s = by_id(loader)
    index = {_uid(f"siim|1|{i}|sop"): i for i in range(40)}
    # every 20th image is in the test tree and every 25th train image has no row
    assert sorted(index[u] for u in loader.unlabelled) == [19, 24, 39] and loader.missing == ()
    assert len(s) == 37 and {x.split for x in s.values()} == {"train", "val", "test"}
    rows = [line.split(",")[0] for line in text.splitlines()[1:]]
    assert any(rows.count(u) == 2 for u in s)  # some images have two rows
    positives = 0
    photometrics = set()
    for image_id, sample in s.items():
        case = cases[index[image_id]]
        truth = case.masks.get("Pneumothorax") if "Pneumothorax" in case.findings else None
        truth = np.zeros(case.image.shape, bool) if truth is None else truth
        assert sample.labels["Pneumothorax"] == float(truth.any())
        assert (sample.mask.height, sample.mask.width) == case.image.shape
        np.testing.assert_array_equal(load_mask(sample.mask), truth)
        positives += bool(truth.any())
        assert sample.image.relative_to(root).parts[0] == "dicom-images-train"
        assert len(sample.image.relative_to(root).parts) == 4  # tree/study/series/sop.dcm
        photometrics.add(pydicom.dcmread(sample.image, stop_before_pixels=True).PhotometricInterpretation)
    assert 5 <= positives <= 25
    assert photometrics == {"MONOCHROME1", "MONOCHROME2"}
    first = next(iter(s.values()))
    case = cases[index[first.id]]
    span = float(case.image.max() - case.image.min())
    np.testing.assert_allclose(read_image(first.image), (case.image - case.image.min()) / span,
                               atol=1.5 / 255 / span)

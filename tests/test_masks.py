"""SIIM relative RLE, COCO polygons and mask images decode to the exact pixels the datasets mean."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from xrbench.data.images import write_raster
from xrbench.data.masks import load_mask, polygons_to_mask, rle_decode, rle_encode, rle_runs
from xrbench.data.sample import MaskRef
from xrbench.errors import DataError


def kaggle_rle2mask(rle: str, width: int, height: int) -> np.ndarray:
    """The competition's reference decoder, re-stated as a plain loop (then ``.T`` by the caller)."""
    flat = np.zeros(width * height, dtype=bool)
    numbers = [int(x) for x in rle.split()]
    position = 0
    for gap, length in zip(numbers[0::2], numbers[1::2]):
        position += gap
        flat[position:position + length] = True
        position += length
    return flat.reshape(width, height)


def test_kaggle_example_gap_then_length_counted_from_previous_run_end_column_major():
    # flat pixels 5,6,7 then 5+3+10=18,19; flat index k is row k % height, column k // height
    mask = rle_decode("5 3 10 2", 4, 6)
    expected = np.zeros((4, 6), dtype=bool)
    expected[1:4, 1] = True
    expected[2:4, 4] = True
    assert mask.dtype == bool and mask.shape == (4, 6)
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(mask, kaggle_rle2mask("5 3 10 2", 6, 4).T)
    assert rle_encode(expected) == "5 3 10 2"


def test_real_row_shape_decodes_like_the_reference_on_1024():
    rle = "387620 23 996 33 986 43 977 51 968 58 962 65 956 70 952 74 949 76 946 79"
    mask = rle_decode(rle, 1024, 1024)
    np.testing.assert_array_equal(mask, kaggle_rle2mask(rle, 1024, 1024).T)
    assert mask.sum() == 23 + 33 + 43 + 51 + 58 + 65 + 70 + 74 + 76 + 79
    assert mask[387620 % 1024, 387620 // 1024]  # first pixel of the first run
    assert rle_encode(mask) == rle


@pytest.mark.parametrize("height,width", [(7, 5), (5, 7), (16, 16), (1, 9), (9, 1)])
def test_round_trip_random_masks(height, width):
    rng = np.random.default_rng(height * 100 + width)
    for density in (0.05, 0.5, 0.95):
        mask = rng.random((height, width)) < density
        rle = rle_encode(mask)
        np.testing.assert_array_equal(rle_decode(rle, height, width), mask)
        np.testing.assert_array_equal(kaggle_rle2mask(rle, width, height).T, mask)


def test_runs_touching_first_and_last_pixel_and_full_mask():
    mask = np.zeros((3, 4), dtype=bool)
    mask[0, 0] = True
    mask[2, 3] = True  # the competition's mask2rle drops a run that ends on the last pixel
    assert rle_encode(mask) == "0 1 10 1"
    np.testing.assert_array_equal(rle_decode("0 1 10 1", 3, 4), mask)
    full = np.ones((3, 4), dtype=bool)
    assert rle_encode(full) == "0 12"
    np.testing.assert_array_equal(rle_decode("0 12", 3, 4), full)


@pytest.mark.parametrize("empty", ["-1", " -1", "", "  ", None, math.nan])
def test_empty_encodings(empty):
    mask = rle_decode(empty, 3, 4)
    assert mask.shape == (3, 4) and not mask.any()


def test_empty_mask_encodes_as_minus_one():
    assert rle_encode(np.zeros((5, 5), dtype=bool)) == "-1"


@pytest.mark.parametrize("rle,why", [
    ("5 3 10", "3 numbers"),
    ("5 3.5 10 2", "'3.5' is not an integer"),
    ("5 x", "'x' is not an integer"),
    ("-3 2", "negative"),
    ("5 3 -1 2", "negative"),
    ("20 5", "past the end of the 4x6 image"),
])
def test_malformed_rle_is_a_data_error_naming_string_and_row(rle, why):
    with pytest.raises(DataError, match=why) as err:
        rle_runs(rle, 4, 6, path="train-rle.csv", row=7, field="EncodedPixels")
    message = str(err.value)
    assert "train-rle.csv" in message and "row 7" in message and "EncodedPixels" in message
    assert repr(rle.strip())[:20] in message
    with pytest.raises(DataError, match=why):
        rle_decode(rle, 4, 6)


def test_run_ending_exactly_on_last_pixel_is_valid():
    assert rle_decode("20 4", 4, 6)[:, 5].all()


def test_polygon_square_covers_pixels_whose_centres_are_inside():
    mask = polygons_to_mask([[0, 0, 10, 0, 10, 10, 0, 10]], 12, 12)
    expected = np.zeros((12, 12), dtype=bool)
    expected[:10, :10] = True
    np.testing.assert_array_equal(mask, expected)


def test_polygon_rectangle_is_x_then_y_and_sub_pixel():
    rect = polygons_to_mask([[2, 3, 7, 3, 7, 5, 2, 5]], 8, 9)  # x in [2,7), y in [3,5)
    expected = np.zeros((8, 9), dtype=bool)
    expected[3:5, 2:7] = True
    np.testing.assert_array_equal(rect, expected)
    thin = polygons_to_mask([[0.6, 0, 3.4, 0, 3.4, 2, 0.6, 2]], 3, 5)  # centres 1.5 and 2.5 inside
    expected = np.zeros((3, 5), dtype=bool)
    expected[0:2, 1:3] = True
    np.testing.assert_array_equal(thin, expected)


def test_polygons_of_one_object_are_ored():
    two = polygons_to_mask([[0, 0, 2, 0, 2, 2, 0, 2], [4, 4, 6, 4, 6, 6, 4, 6]], 6, 6)
    assert two.sum() == 8 and two[0:2, 0:2].all() and two[4:6, 4:6].all()


@pytest.mark.parametrize("poly,why", [
    ([0, 0, 5, 0], "4 coordinates"),
    ([0, 0, 5, 0, 5], "5 coordinates"),
    ([0, 0, "a", 0, 5, 5], "not a list of numbers"),
    ([0, 0, math.inf, 0, 5, 5], "non-finite"),
])
def test_bad_polygons_are_data_errors(poly, why):
    with pytest.raises(DataError, match=why):
        polygons_to_mask([poly], 8, 8)


def test_load_mask_ors_several_siim_rows():
    union = load_mask(MaskRef(kind="siim-rle", source=("5 3", "-1", "18 2"), height=4, width=6))
    np.testing.assert_array_equal(union, rle_decode("5 3 10 2", 4, 6))
    single = load_mask(MaskRef(kind="siim-rle", source="5 3", height=4, width=6))
    assert single.sum() == 3


def test_load_mask_png_gif_and_polygons(tmp_path):
    mask = np.zeros((5, 7), dtype=bool)
    mask[1:3, 2:6] = True
    write_raster(tmp_path / "m.png", mask.astype(np.float32))
    np.testing.assert_array_equal(load_mask(MaskRef("png", tmp_path / "m.png", 5, 7)), mask)
    palette = Image.fromarray(mask.astype(np.uint8) * 255).convert("P")
    palette.save(tmp_path / "m.gif")
    np.testing.assert_array_equal(load_mask(MaskRef("png", str(tmp_path / "m.gif"), 5, 7)), mask)
    poly = load_mask(MaskRef("polygons", ((2, 1, 6, 1, 6, 3, 2, 3),), 5, 7))
    np.testing.assert_array_equal(poly, mask)


def test_load_mask_errors(tmp_path):
    write_raster(tmp_path / "m.png", np.zeros((5, 7), np.float32))
    with pytest.raises(DataError, match="expected 6x7"):
        load_mask(MaskRef("png", tmp_path / "m.png", 6, 7))
    with pytest.raises(DataError, match="does not exist"):
        load_mask(MaskRef("png", tmp_path / "missing.png", 5, 7))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot be decoded"):
        load_mask(MaskRef("png", tmp_path / "bad.png", 5, 7))
    with pytest.raises(DataError, match="unknown mask kind"):
        load_mask(MaskRef("rle", "1 2", 5, 7))

import numpy as np
import pytest

from xrbench.data.images import image_size, read_image, write_dicom, write_raster
from xrbench.errors import DataError


def test_real_monochrome1_cr_chest_reads_with_bone_bright(pydicom_data_dir):
    img = read_image(pydicom_data_dir / "RG1_UNCR.dcm")  # MONOCHROME1, 15-bit CR chest
    assert img.shape == (1955, 1841) and img.dtype == np.float32
    assert img.min() == 0.0 and img.max() == 1.0
    h, w = img.shape
    lungs = img[h // 4: h // 2, w // 8: w // 3].mean()  # right upper/mid lung field
    spine = img[h // 4: h // 2, int(w * 0.47): int(w * 0.53)].mean()  # mediastinum over the spine
    assert spine > lungs + 0.1, (spine, lungs)  # inverted correctly: dense = bright


def test_jpeg2000_lossless_equals_uncompressed(pydicom_data_dir):
    a = read_image(pydicom_data_dir / "RG1_UNCR.dcm")
    b = read_image(pydicom_data_dir / "RG1_J2KR.dcm")
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bits", [8, 16])
def test_png_round_trip_keeps_bit_depth(tmp_path, bits):
    img = np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(48, 64)
    write_raster(tmp_path / "x.png", img, bits=bits)
    back = read_image(tmp_path / "x.png")
    assert back.shape == (48, 64)
    assert np.abs(back - img).max() <= 0.5 / (2**bits - 1) + 1e-6
    assert image_size(tmp_path / "x.png") == (48, 64)


@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
def test_dicom_round_trip_with_rescale_and_window(tmp_path, photometric):
    img = np.tile(np.linspace(0, 1, 32, dtype=np.float32), (16, 1))
    write_dicom(tmp_path / "x.dcm", img, bits_stored=12, photometric=photometric,
                rescale=(2.0, -1024.0), window=(3071.0, 8192.0))
    back = read_image(tmp_path / "x.dcm")
    assert back.shape == (16, 32)
    assert np.corrcoef(back.ravel(), img.ravel())[0, 1] > 0.999  # same orientation either way


def test_corrupt_image_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match="broken.png.*cannot be decoded"):
        read_image(bad)
    with pytest.raises(DataError, match="does not exist"):
        read_image(tmp_path / "missing.jpg")
    dcm = tmp_path / "bad.dcm"
    dcm.write_bytes(b"\0" * 128 + b"DICM" + b"garbage")
    with pytest.raises(DataError, match="bad.dcm.*DICOM"):
        read_image(dcm)


# --------------------------------------------------------------------------- real DICOMs (pydicom-data)


def _real_dicom(name):
    """A real file shipped by pydicom (test_files) or pydicom-data (data_store); skip if absent."""
    from pathlib import Path

    import pydicom.data

    dirs = [Path(pydicom.data.__file__).parent / "test_files"]
    try:
        import data_store

        dirs.append(Path(data_store.__file__).parent / "data")
    except ImportError:
        pass
    for d in dirs:
        if (d / name).is_file():
            return d / name
    pytest.skip(f"{name} is not installed (pip install pydicom-data)")


def _has_gdcm():
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGLosslessSV1

    return get_decoder(JPEGLosslessSV1).is_available


@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "RG3_UNCR.dcm", "MR2_UNCR.dcm", "693_UNCR.dcm", "MR_small.dcm",
                                  "CT_small.dcm", "vlut_04.dcm", "mlut_18.dcm"])
def test_dicom_policy_equals_pydicom_modality_voi_then_minmax(name):
    """The documented policy (docs/datasets.md "DICOM pixels") against pydicom's own LUT functions:
    modality LUT -> first VOI LUT/window -> min-max over non-padding pixels -> MONOCHROME1 inverted."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    path = _real_dicom(name)
    ds = pydicom.dcmread(path)
    stored = ds.pixel_array
    v = apply_voi_lut(apply_modality_lut(stored, ds), ds, index=0).astype(np.float64)
    pad = np.zeros(stored.shape, bool)
    if "PixelPaddingValue" in ds:
        pad = stored == ds.PixelPaddingValue
    lo, hi = v[~pad].min(), v[~pad].max()
    want = (v - lo) / (hi - lo)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        want = 1 - want
    want[pad] = 0
    got = read_image(path)
    assert got.shape == stored.shape
    np.testing.assert_allclose(got, np.clip(want, 0, 1), atol=2e-6)


def test_real_ct_padding_is_black_and_left_out_of_the_range():
    """693_UNCR: 21% of pixels are PixelPaddingValue -2000 (outside the scan circle)."""
    path = _real_dicom("693_UNCR.dcm")
    import pydicom

    ds = pydicom.dcmread(path)
    pad = ds.pixel_array == ds.PixelPaddingValue
    assert 0.2 < pad.mean() < 0.25
    img = read_image(path)
    assert (img[pad] == 0).all()
    assert img[~pad].min() == 0 and img[~pad].max() == 1  # the window's full range over the scan itself


def test_padding_is_left_out_of_the_min_max_of_an_unwindowed_image(tmp_path):
    """Without its window, 693_UNCR's padding (-2000 stored = -3024 HU) would be the minimum and
    squeeze the scan (air -1000 HU upwards) into the upper part of [0, 1]."""
    import pydicom

    ds = pydicom.dcmread(_real_dicom("693_UNCR.dcm"))
    del ds.WindowCenter, ds.WindowWidth
    ds.save_as(tmp_path / "nowindow.dcm")
    pad = ds.pixel_array == ds.PixelPaddingValue
    img = read_image(tmp_path / "nowindow.dcm")
    assert (img[pad] == 0).all() and img[~pad].min() == 0 and img[~pad].max() == 1


def test_real_window_is_applied_not_just_stretched():
    """RG3 (10-bit CR, MONOCHROME1, window 550/1024): the window clips, so values <= 38 are white and
    >= 1061 would be black; without it the image would be a plain inverted min-max of 0..1023."""
    import pydicom

    path = _real_dicom("RG3_UNCR.dcm")
    stored = pydicom.dcmread(path).pixel_array.astype(np.float64)
    img = read_image(path)
    plain = 1 - (stored - stored.min()) / (stored.max() - stored.min())
    assert np.abs(img - plain).max() > 0.01
    assert (img[stored <= 38] == 1.0).all()


@pytest.mark.parametrize("name,ref", [("RG1_J2KR.dcm", "RG1_UNCR.dcm"), ("RG3_J2KR.dcm", "RG3_UNCR.dcm"),
                                      ("MR_small_RLE.dcm", "MR_small.dcm"), ("emri_small_RLE.dcm", "emri_small.dcm"),
                                      ("MR_small_jp2klossless.dcm", "MR_small.dcm")])
def test_lossless_transfer_syntaxes_equal_uncompressed(name, ref):
    np.testing.assert_array_equal(read_image(_real_dicom(name)), read_image(_real_dicom(ref)))


@pytest.mark.parametrize("name,ref", [("RG1_J2KI.dcm", "RG1_UNCI.dcm"), ("MR2_J2KI.dcm", "MR2_UNCI.dcm")])
def test_lossy_jpeg2000_is_close_to_its_uncompressed_copy(name, ref):
    a, b = read_image(_real_dicom(name)), read_image(_real_dicom(ref))
    assert np.abs(a - b).mean() < 0.005


def test_jpeg_baseline_dicom_decodes():
    """SIIM-ACR ships JPEG-baseline DICOMs; Pillow decodes them (no extra plugin)."""
    a = read_image(_real_dicom("SC_rgb_jpeg_dcmtk.dcm"))  # JPEG baseline, YBR_FULL
    b = read_image(_real_dicom("SC_rgb.dcm"))  # the same picture uncompressed
    assert a.shape == b.shape == (100, 100)
    assert np.abs(a - b).mean() < 0.02


@pytest.mark.parametrize("name,ref", [("JPGLosslessP14SV1_1s_1f_8b.dcm", None),
                                      ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),
                                      ("emri_small_jpeg_ls_lossless.dcm", "emri_small.dcm")])
def test_jpeg_lossless_and_jpeg_ls_decode_or_name_the_missing_plugin(name, ref):
    path = _real_dicom(name)
    if not _has_gdcm():
        with pytest.raises(DataError, match=rf"{name}: its pixel data is compressed as 'JPEG.*"
                                            r"no decoder for it is installed.*pip install python-gdcm") as e:
            read_image(path)
        from xrbench.cli import classify

        code, text = classify(e.value)  # what the CLI prints: exit status 2, one line, no traceback
        assert code == 2 and "\n" not in text and "pip install python-gdcm" in text
        return
    img = read_image(path)
    assert img.ndim == 2 and img.min() == 0 and img.max() == 1
    if ref:
        np.testing.assert_array_equal(img, read_image(_real_dicom(ref)))


def test_undecodable_and_truncated_dicoms_give_one_line_data_errors():
    for name in ["MR_truncated.dcm", "emri_small_jpeg_2k_lossless_too_short.dcm", "JPGExtended.dcm"]:
        path = _real_dicom(name)
        with pytest.raises(DataError, match=rf"{name}: ") as e:
            read_image(path)
        assert "\n" not in str(e.value) and "\t" not in str(e.value)


def test_multiframe_reads_the_first_frame():
    import pydicom

    for name in ["emri_small.dcm", "SC_rgb_2frame.dcm", "SC_rgb_rle_16bit_2frame.dcm"]:
        path = _real_dicom(name)
        img = read_image(path)
        ds = pydicom.dcmread(path)
        assert img.shape == (ds.Rows, ds.Columns), name
    # RGB colour bars: frame 2 is frame 1 inverted; the first frame's grey is its BT.601 luma
    ds = pydicom.dcmread(_real_dicom("SC_rgb_2frame.dcm"))
    want = ds.pixel_array[0].astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255
    np.testing.assert_allclose(read_image(_real_dicom("SC_rgb_2frame.dcm")), want, atol=1e-6)


def test_palette_colour_is_looked_up_not_read_as_indices():
    import pydicom
    from pydicom.pixels import apply_color_lut

    path = _real_dicom("OBXXXX1A.dcm")  # PALETTE COLOR ultrasound, 8-bit indices, 16-bit LUT
    ds = pydicom.dcmread(path)
    rgb = apply_color_lut(ds.pixel_array, ds).astype(np.float64)
    want = rgb @ np.array([0.299, 0.587, 0.114]) / 65535
    np.testing.assert_allclose(read_image(path), want, atol=1e-6)


def test_rgb_dicom_and_rgb_png_of_the_same_pixels_read_the_same(tmp_path):
    import pydicom
    from PIL import Image

    path = _real_dicom("SC_rgb.dcm")
    Image.fromarray(pydicom.dcmread(path).pixel_array).save(tmp_path / "same.png")
    np.testing.assert_allclose(read_image(path), read_image(tmp_path / "same.png"), atol=1.5 / 255)


# --------------------------------------------------------------------------- raster modes


def _ramp(w=256):
    return np.tile(np.arange(w, dtype=np.uint8), (8, 1))


@pytest.mark.parametrize("mode,suffix", [("L", ".png"), ("RGB", ".png"), ("LA", ".png"), ("RGBA", ".png"),
                                         ("P", ".png"), ("Pt", ".png"), ("L", ".bmp"), ("RGB", ".bmp"),
                                         ("P", ".bmp"), ("CMYK", ".jpg"), ("RGB", ".jpg"), ("L", ".tif")])
def test_every_raster_mode_reads_as_one_grey_channel_in_0_1(tmp_path, mode, suffix):
    from PIL import Image

    grey = Image.fromarray(_ramp())
    im = grey.convert(mode[0] if mode == "Pt" else mode)
    if mode in ("LA", "RGBA"):
        im.putalpha(0)  # fully transparent: the alpha channel is ignored, not composited
    path = tmp_path / f"x{suffix}"
    kw = {"quality": 100} if suffix == ".jpg" else {"transparency": 0} if mode == "Pt" else {}
    im.save(path, **kw)  # Pt: a palette PNG with a tRNS entry (opens as P or PA)
    img = read_image(path)
    assert img.shape == (8, 256) and img.dtype == np.float32
    want = _ramp().astype(np.float32) / 255
    tol = 4 / 255 if suffix == ".jpg" else 1 / 255 + 1e-6  # CMYK/RGB JPEG: chroma rounding
    assert np.abs(img - want).max() <= tol


def test_16_bit_png_uses_its_bit_depth_and_an_unscaled_sbit_png_its_significant_bits(tmp_path):
    import struct
    import zlib

    from PIL import Image

    v16 = np.tile(np.arange(0, 65536, 257, dtype=np.uint16), (4, 1))  # 0..65535
    Image.fromarray(v16).save(tmp_path / "full.png")
    np.testing.assert_allclose(read_image(tmp_path / "full.png"), v16 / 65535, atol=1e-6)
    dark = (v16 // 1024).astype(np.uint16)  # a dark 16-bit image (max 63): still /65535, never /255
    Image.fromarray(dark).save(tmp_path / "dark.png")
    np.testing.assert_allclose(read_image(tmp_path / "dark.png"), dark / 65535, atol=1e-7)
    # 12-bit values written unscaled into a 16-bit PNG that says so with sBIT = 12
    v12 = (v16 >> 4).astype(np.uint16)
    Image.fromarray(v12).save(tmp_path / "v12.png")
    raw = (tmp_path / "v12.png").read_bytes()
    chunk = struct.pack(">I", 1) + b"sBIT" + b"\x0c" + struct.pack(">I", zlib.crc32(b"sBIT\x0c"))
    at = 8 + 25  # after the signature and IHDR
    (tmp_path / "v12.png").write_bytes(raw[:at] + chunk + raw[at:])
    np.testing.assert_allclose(read_image(tmp_path / "v12.png"), v12 / 4095, atol=1e-6)
    # a conformant sBIT = 12 file (values scaled up to 16 bits) stays /65535
    (tmp_path / "s12.png").write_bytes(
        (tmp_path / "full.png").read_bytes()[:at] + chunk + (tmp_path / "full.png").read_bytes()[at:])
    np.testing.assert_allclose(read_image(tmp_path / "s12.png"), v16 / 65535, atol=1e-6)


def test_32_bit_integer_tiff_of_8_bit_values_is_not_guessed_from_its_pixels(tmp_path):
    from PIL import Image

    Image.fromarray(_ramp().astype(np.int32) // 2).save(tmp_path / "i32.tif")  # max 127 in a 32-bit file
    img = read_image(tmp_path / "i32.tif")
    assert img.max() < 1e-6  # 127 / (2**32 - 1), not 127 / 255


def test_exif_orientation_is_not_applied(tmp_path):
    """Policy (docs/datasets.md): pixels and sizes are those stored in the file, as annotations use."""
    from PIL import Image

    arr = np.zeros((20, 40), np.uint8)
    arr[:, :10] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    Image.fromarray(arr).save(tmp_path / "rot.jpg", exif=exif, quality=100)
    img = read_image(tmp_path / "rot.jpg")
    assert img.shape == (20, 40) and image_size(tmp_path / "rot.jpg") == (20, 40)
    assert img[:, :8].mean() > 0.9 and img[:, 12:].mean() < 0.1


def _smooth(h: int, w: int) -> np.ndarray:
    """A radiograph-like 8-bit image: a gradient with fine texture (not flat anywhere)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    return np.clip(40 + 150 * yy / h + 40 * xx / w + rng.normal(0, 6, (h, w)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name,kw", [("t.jpg", {"quality": 90}), ("t.png", {}),
                                     ("p.jpg", {"quality": 90, "progressive": True}), ("t.bmp", {})])
def test_truncated_raster_decodes_as_far_as_its_data_goes(tmp_path, name, kw):
    """FracAtlas ships 59 truncated JPEGs: a file whose data ends early is decoded as far as the
    data goes (OpenCV's imread, Pillow's LOAD_TRUNCATED_IMAGES), and said to be, never silently."""
    from PIL import Image, ImageFile

    from xrbench.data.images import read_image_partial

    full = tmp_path / f"full_{name}"
    Image.fromarray(_smooth(300, 200)).save(full, **kw)
    raw = full.read_bytes()
    (tmp_path / name).write_bytes(raw[: len(raw) // 2])
    whole, flagged = read_image_partial(full)
    cut, truncated = read_image_partial(tmp_path / name)
    assert (flagged, truncated) == (False, True) and cut.shape == whole.shape == (300, 200)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # set for the retry only
    if name == "p.jpg":  # every scan covers the whole image: the first scans give a coarse copy of it
        assert np.abs(cut - whole).mean() < 0.05
    else:  # the rows stored first (BMP stores the bottom row first) equal the full decode's
        stored_first = slice(0, 100) if name != "t.bmp" else slice(200, 300)
        np.testing.assert_array_equal(cut[stored_first], whole[stored_first])
        assert np.abs(cut - whole).max() > 0.1  # and the rest is the decoder's fill, not the image
    np.testing.assert_array_equal(read_image(tmp_path / name), cut)


@pytest.mark.parametrize("policy", ["fast", "exact"])
def test_truncated_jpeg_reaches_the_encoder_partially_decoded_in_both_policies(tmp_path, policy):
    from PIL import Image

    from xrbench.features.pixels import decode

    Image.fromarray(_smooth(1200, 900)).save(tmp_path / "full.jpg", quality=90)  # fast: libjpeg draft at 1/4
    raw = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(raw[: len(raw) // 2])
    whole, geo, flagged = decode(tmp_path / "full.jpg", 64, policy)
    cut, geo_cut, truncated = decode(tmp_path / "cut.jpg", 64, policy)
    assert (flagged, truncated) == (False, True) and geo_cut == geo  # geometry of the whole file
    np.testing.assert_array_equal(cut[:20], whole[:20])  # the top third of the input: decoded rows
    assert np.abs(cut[-10:].astype(np.int64) - whole[-10:]).max() > 1000


@pytest.mark.parametrize("policy", ["fast", "exact"])
def test_garbage_and_cut_headers_stay_data_errors_naming_the_file(tmp_path, policy):
    from PIL import Image

    from xrbench.features.pixels import decode

    Image.fromarray(_smooth(1200, 900)).save(tmp_path / "full.jpg", quality=90, progressive=True)
    raw = (tmp_path / "full.jpg").read_bytes()
    sos = raw.index(b"\xff\xda")  # ends with the first scan's header: no byte of the image follows
    (tmp_path / "blank.jpg").write_bytes(raw[: sos + 2 + int.from_bytes(raw[sos + 2:sos + 4], "big")])
    (tmp_path / "header.jpg").write_bytes(raw[: sos // 2])  # cut inside its tables
    (tmp_path / "junk.jpg").write_bytes(b"<html>not found</html>" * 40)
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    for name, why in [("blank.jpg", "is truncated before its pixel data"), ("header.jpg", "cannot be decoded"),
                      ("junk.jpg", "cannot be decoded"), ("junk.png", "cannot be decoded")]:
        with pytest.raises(DataError, match=rf"{name}: {why}"):
            decode(tmp_path / name, 64, policy)
        with pytest.raises(DataError, match=rf"{name}: {why}"):
            read_image(tmp_path / name)

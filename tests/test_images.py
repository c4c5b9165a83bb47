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

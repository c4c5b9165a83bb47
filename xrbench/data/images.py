"""Reading radiographs into float images in [0, 1], and writing them (for phantoms and fixtures).

DICOM follows the display pipeline of the standard: stored values -> modality LUT (rescale
slope/intercept) -> VOI LUT or window -> MONOCHROME1 inverted so that bone is bright in every
image. PNG/JPG/BMP keep their bit depth (8 or 16 bit) when scaled to [0, 1].
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from xrbench.atomic import atomic_write_bytes
from xrbench.errors import DataError

DICOM_SUFFIXES = (".dcm", ".dicom")
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif")


def is_dicom(path: Path) -> bool:
    path = Path(path)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    if path.suffix.lower() in RASTER_SUFFIXES:
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(132)
        return head[128:132] == b"DICM"
    except OSError:
        return False


def read_image(path: str | Path) -> np.ndarray:
    """A 2-D float32 image in [0, 1] (bright = dense), or a DataError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError("image file does not exist", path=path)
    if is_dicom(path):
        return _read_dicom(path)
    return _read_raster(path)


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image without decoding its pixels."""
    path = Path(path)
    if not path.is_file():
        raise DataError("image file does not exist", path=path)
    if is_dicom(path):
        import pydicom

        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            return int(ds.Rows), int(ds.Columns)
        except Exception as e:  # pydicom raises many types on bad files
            raise DataError(f"cannot be read as DICOM ({e.__class__.__name__}: {e})", path=path) from None
    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"cannot be read as an image ({e})", path=path) from None


def scale_to_file(path: str | Path, ref_width: float, ref_height: float) -> tuple[float, float]:
    """(sx, sy) that map coordinates given for a ``ref_width`` x ``ref_height`` image onto the file.

    For annotations stated in the original resolution (NIH boxes in 1024 px, MS-CXR in the DICOM's
    pixels) when the file read may be a resized copy. A missing file gives (1, 1): the official
    files have the reference size, and ``xrbench data check`` reports the missing file.
    """
    if not Path(path).is_file():
        return 1.0, 1.0
    height, width = image_size(path)
    return width / float(ref_width), height / float(ref_height)


def _read_raster(path: Path) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                mode = im.mode
                if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
                    arr = np.asarray(im, dtype=np.uint16).astype(np.float32) / 65535.0
                elif mode == "I":
                    raw = np.asarray(im, dtype=np.int64)
                    peak = 65535.0 if raw.max(initial=0) > 255 else 255.0
                    arr = np.clip(raw, 0, None).astype(np.float32) / peak
                elif mode == "F":
                    arr = _minmax(np.asarray(im, dtype=np.float32))
                else:
                    if mode not in ("L", "1"):
                        im = im.convert("L")
                    arr = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as e:
        raise DataError(f"cannot be decoded as an image ({e.__class__.__name__}: {e})", path=path) from None
    if arr.ndim != 2 or arr.size == 0:
        raise DataError(f"decoded to shape {arr.shape}; expected a 2-D grayscale image", path=path)
    return np.clip(arr, 0.0, 1.0)


def _read_dicom(path: Path) -> np.ndarray:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(path)
        arr = ds.pixel_array
    except Exception as e:  # missing decoder, truncated file, not DICOM at all
        raise DataError(f"cannot be decoded as DICOM ({e.__class__.__name__}: {e})", path=path) from None
    if arr.ndim == 3 and getattr(ds, "SamplesPerPixel", 1) == 1:
        arr = arr[0]  # multi-frame: first frame
    if arr.ndim == 3:  # RGB secondary capture
        arr = arr[..., :3].mean(axis=-1)
    arr = apply_modality_lut(arr, ds)  # stays integer when there is no rescale: VOI LUTs index it
    has_voi = "VOILUTSequence" in ds or ("WindowCenter" in ds and "WindowWidth" in ds)
    if has_voi:
        try:
            arr = apply_voi_lut(arr, ds, index=0)
        except Exception:  # a malformed window is not worth failing the image for
            pass
    img = _minmax(arr.astype(np.float32))
    if str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).strip().upper() == "MONOCHROME1":
        img = 1.0 - img
    return img


def _minmax(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(arr)), float(np.max(arr))
    if hi <= lo:
        return np.zeros_like(arr, dtype=np.float32)
    return ((arr - lo) / (hi - lo)).astype(np.float32)


# --------------------------------------------------------------------------- writing


def _to_uint(img01: np.ndarray, bits: int) -> np.ndarray:
    img = np.clip(np.asarray(img01, dtype=np.float64), 0.0, 1.0)
    return np.round(img * (2**bits - 1)).astype(np.uint16 if bits > 8 else np.uint8)


def write_raster(path: str | Path, img01: np.ndarray, *, bits: int = 8, quality: int = 92) -> None:
    """Write a [0,1] image as PNG (8/16 bit), JPG or BMP (8 bit), chosen by suffix; atomic."""
    import io

    path = Path(path)
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".gif": "GIF"}[path.suffix.lower()]
    if bits == 16 and fmt != "PNG":
        raise ValueError("16-bit output is PNG only")
    arr = _to_uint(img01, bits)
    im = Image.fromarray(arr)  # uint8 -> "L", uint16 -> "I;16"
    buf = io.BytesIO()
    im.save(buf, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    atomic_write_bytes(path, buf.getvalue())


def write_dicom(path: str | Path, img01: np.ndarray, *, bits_stored: int = 12,
                photometric: str = "MONOCHROME2", rescale: tuple[float, float] | None = None,
                window: tuple[float, float] | None = None, patient_id: str = "ANON",
                study_uid: str | None = None, series_uid: str | None = None,
                sop_uid: str | None = None, view: str | None = None, body_part: str | None = None,
                sex: str | None = None, age: str | None = None, pixel_spacing: float | None = None) -> None:
    """Write a [0,1] image (bright = dense) as an uncompressed DX/CR DICOM file; atomic.

    MONOCHROME1 stores inverted values, as real MONOCHROME1 devices do, so reading it back gives
    the same image. ``rescale`` = (slope, intercept) is recorded in the header.
    """
    import io

    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    stored = np.clip(np.asarray(img01, dtype=np.float64), 0, 1)
    if photometric == "MONOCHROME1":
        stored = 1.0 - stored
    values = np.round(stored * (2**bits_stored - 1)).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray For Presentation
    meta.MediaStorageSOPInstanceUID = sop_uid or generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.PatientID = patient_id
    ds.Modality = "DX"
    if view:
        ds.ViewPosition = view
    if body_part:
        ds.BodyPartExamined = body_part
    if sex:
        ds.PatientSex = sex
    if age:
        ds.PatientAge = age
    if pixel_spacing:
        ds.PixelSpacing = [pixel_spacing, pixel_spacing]
    ds.Rows, ds.Columns = values.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = values.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    atomic_write_bytes(Path(path), buf.getvalue())

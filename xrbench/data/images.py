"""Reading radiographs into float images in [0, 1], and writing them (for phantoms and fixtures).

DICOM follows the display pipeline of the standard: stored values -> modality LUT (rescale
slope/intercept) -> VOI LUT or window -> MONOCHROME1 inverted so that bone is bright in every
image. PNG/JPG/BMP keep their bit depth (8 or 16 bit) when scaled to [0, 1].

A raster file whose data ends early (FracAtlas ships 59 truncated JPEGs) is decoded as far as its
data goes, as OpenCV's ``imread`` and Pillow's ``LOAD_TRUNCATED_IMAGES`` do (how published FracAtlas
results were produced), and never silently: :func:`read_image_partial` says so, and extraction
carries the flag into the feature store and the task's warnings (``truncated_images``).
"""
from __future__ import annotations

import struct
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

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
    """A 2-D float32 image in [0, 1] (bright = dense), or a DataError naming the file; a truncated
    raster is decoded partially (:func:`read_image_partial` says whether it was)."""
    return read_image_partial(path)[0]


def read_image_partial(path: str | Path) -> tuple[np.ndarray, bool]:
    """(:func:`read_image`, whether the file's data ended early and the image is decoded partially)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("image file does not exist", path=path)
    if is_dicom(path):
        return _read_dicom(path), False
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


# --------------------------------------------------------------------------- truncated files

#: what Pillow (ImageFile.load, 9.x-13.x) raises when a file's pixel data ends early: "image file is
#: truncated" (PNG/GIF/BMP) or "image file is truncated (N bytes not processed)" (JPEG). A header cut
#: short ("Truncated File Read", "cannot identify image file") leaves nothing to decode: not retried.
TRUNCATED_MESSAGE = "image file is truncated"
T = TypeVar("T")


class _TruncatedLoading:
    """Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` is a module global. A retry sets it only while
    it decodes its own file, and only when no other thread is decoding (ordinary decodes hold the
    shared side of this lock, a retry the exclusive side), so no other decode runs, and silently
    accepts a truncated file, while it is set. Worker processes each have their own copy."""

    def __init__(self):
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._waiting = 0

    @contextmanager
    def strict(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writing and not self._waiting)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def tolerant(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            self._cond.wait_for(lambda: not self._writing and not self._readers)
            self._waiting -= 1
            self._writing = True
        before = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = before
            with self._cond:
                self._writing = False
                self._cond.notify_all()


_LOADING = _TruncatedLoading()
#: every Pillow decode of xrbench holds this (shared), so a truncated-file retry elsewhere cannot leak into it
pillow_strict = _LOADING.strict


def pillow_decode(decode: Callable[[], T]) -> tuple[T, bool]:
    """(``decode()``, truncated): ``decode`` opens and loads one file with Pillow; when Pillow says
    the file's data ends early it runs again with truncated loading (libjpeg's and zlib's output up
    to where the data stops; the rest of the image is the decoder's fill). Any other error, or one
    the retry raises too, propagates."""
    try:
        with _LOADING.strict():
            return decode(), False
    except OSError as e:
        if TRUNCATED_MESSAGE not in str(e):
            raise
    with _LOADING.tolerant():
        return decode(), True


def require_content(arr: np.ndarray, path: Path) -> None:
    """A truncated file must have decoded something: a DataError when it ends before its first byte
    of pixel data (JPEG: the end of the first scan header; PNG: the first IDAT payload; BMP: the
    pixel array offset), where the decoder would only return its fill, or decodes to one flat value."""
    start = _pixel_data_offset(path)
    if start is not None and path.stat().st_size <= start:
        raise DataError(f"is truncated before its pixel data (byte {start}): nothing of the image to decode",
                        path=path)
    if arr.size and float(np.min(arr)) == float(np.max(arr)):
        raise DataError("is truncated and decodes to a blank image (nothing of the image is left)", path=path)


def _pixel_data_offset(path: Path) -> int | None:
    """Where a JPEG/PNG/BMP file's pixel data begins (read from its headers), or None if unknown."""
    with open(path, "rb") as f:
        head = f.read(2)
        if head == b"\xff\xd8":  # JPEG: markers with lengths until the first SOS
            while True:
                marker = f.read(2)
                if len(marker) < 2 or marker[0] != 0xFF:
                    return None
                if marker[1] == 0xFF:  # a fill byte before the marker
                    f.seek(-1, 1)
                    continue
                if marker[1] in (0xD8, 0x01) or 0xD0 <= marker[1] <= 0xD7:  # no length field
                    continue
                size = f.read(2)
                if len(size) < 2:
                    return None
                f.seek(struct.unpack(">H", size)[0] - 2, 1)
                if marker[1] == 0xDA:
                    return f.tell()
        if head == b"\x89P" and f.read(6) == b"NG\r\n\x1a\n":  # PNG: chunks until the first IDAT
            return next((start for kind, _, start in _png_chunks(f) if kind == b"IDAT"), None)
        if head == b"BM":
            f.seek(10)
            off = f.read(4)
            return struct.unpack("<I", off)[0] if len(off) == 4 else None
    return None


#: ITU-R BT.601 luma, the weights of PIL's ``convert("L")``: RGB DICOM and RGB PNG/JPG give the same grey
LUMA = (0.299, 0.587, 0.114)


def _read_raster(path: Path) -> tuple[np.ndarray, bool]:
    """PNG/JPG/BMP/TIFF -> ([0, 1] grey in the file's stored pixel order, truncated). EXIF
    orientation is not applied: annotations and :func:`image_size` use the stored grid. Integer
    greys are divided by the file's own sample range (8-bit: 255, 16-bit: 65535, see
    :func:`_integer_peak`); colour is reduced to BT.601 luma, alpha is dropped, palettes are looked
    up. A file whose data ends early is decoded as far as it goes (:func:`pillow_decode`)."""
    def decode() -> np.ndarray:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode.startswith("I"):  # I;16, I;16B, I;16L, I;16N, I (32-bit, or 16-bit PNG in Pillow < 11)
                raw = np.clip(np.asarray(im).astype(np.float32), 0, None)
                return raw / np.float32(_integer_peak(im, path, raw))
            if mode == "F":
                return _minmax(np.asarray(im, dtype=np.float32))
            if mode not in ("L", "1"):
                im = im.convert("L")  # RGB/CMYK/YCbCr: luma; LA/RGBA: alpha dropped; P/PA: palette
            return np.asarray(im.convert("L"), dtype=np.float32) / 255.0

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            arr, truncated = pillow_decode(decode)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as e:
        raise DataError(f"cannot be decoded as an image ({e.__class__.__name__}: {e})", path=path) from None
    if arr.ndim != 2 or arr.size == 0:
        raise DataError(f"decoded to shape {arr.shape}; expected a 2-D grayscale image", path=path)
    if truncated:
        require_content(arr, path)
    return np.clip(arr, 0.0, 1.0), truncated


def _integer_peak(im: Image.Image, path: Path, raw: np.ndarray) -> float:
    """The white level of an integer grey image: 2**depth - 1 for the depth the file declares (PNG
    IHDR, TIFF BitsPerSample), never guessed from the pixels. A 16-bit PNG whose sBIT chunk declares
    s < 16 significant bits and whose values all fit in s bits was written unscaled (12-bit DICOM
    values copied into 16-bit samples, against the PNG rule of scaling them up): 2**s - 1."""
    depth = {"I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16}.get(im.mode)
    if im.format == "PNG":
        depth, sbit = _png_depth(path)
        if sbit is not None and sbit < depth and raw.max(initial=0) < 2**sbit:
            return float(2**sbit - 1)
    elif im.format == "TIFF":
        bps = im.tag_v2.get(258)
        bps = bps[0] if isinstance(bps, tuple) else bps
        depth = int(bps) if bps else depth
    if depth is None:  # a format that does not say (PGM, ...): 8 or 16 bit by the values
        depth = 16 if raw.max(initial=0) > 255 else 8
    return float(2**depth - 1)


def _png_depth(path: Path) -> tuple[int, int | None]:
    """(IHDR bit depth, grey sBIT significant bits or None) read from the chunks before IDAT."""
    depth, sbit = 8, None
    with open(path, "rb") as f:
        f.read(8)  # the signature
        for kind, body, _ in _png_chunks(f):
            if kind == b"IHDR" and body is not None and len(body) >= 9:
                depth = body[8]
            elif kind == b"sBIT" and body:
                sbit = body[0]
    return depth, sbit


def _png_chunks(f) -> Iterator[tuple[bytes, bytes | None, int]]:
    """(type, body, offset of the body) of each chunk of a PNG read from just after its signature,
    up to the first IDAT (yielded with body None, its pixel data not read); a chunk over 1 MiB is
    skipped with body None. Ends early on a file cut short."""
    while True:
        head = f.read(8)
        if len(head) < 8:
            return
        length, kind = struct.unpack(">I4s", head)
        start = f.tell()
        if kind == b"IDAT":
            yield kind, None, start
            return
        body = f.read(length) if length <= 1 << 20 else None
        f.seek(start + length + 4)  # past the body and its CRC
        yield kind, body, start


def _read_dicom(path: Path) -> np.ndarray:
    """DICOM -> [0, 1] grey, bright = dense; the policy is in docs/datasets.md ("DICOM pixels").

    Monochrome: stored values -> modality LUT (RescaleSlope/Intercept or Modality LUT Sequence) ->
    the first VOI LUT or window when the file has one (a malformed one is skipped) -> min-max over
    the image's own values, padding pixels (PixelPaddingValue[/RangeLimit], stored values) excluded
    -> MONOCHROME1 inverted -> padding set to 0. Multi-frame: the first frame. RGB/YBR/PALETTE
    COLOR: BT.601 luma of the RGB values over their bit range (as an RGB PNG reads).
    """
    import pydicom
    from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, pixel_array

    try:
        ds = pydicom.dcmread(path)
    except Exception as e:  # truncated file, not DICOM at all
        raise DataError(f"cannot be read as DICOM ({e.__class__.__name__}: {_one_line(e)})", path=path) from None
    _require_decoder(ds, path)
    try:
        arr = pixel_array(ds, index=0)  # multi-frame: first frame only, the others are not decoded
    except Exception as e:  # corrupt or short pixel data, a codec feature no installed plugin has
        raise DataError(f"cannot be decoded as DICOM ({e.__class__.__name__}: {_one_line(e)})", path=path) from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if photometric == "PALETTE COLOR":
        try:
            arr = apply_color_lut(arr, ds)
        except Exception as e:
            raise DataError(f"has a PALETTE COLOR lookup table that cannot be applied ({_one_line(e)})",
                            path=path) from None
        peak = float(np.iinfo(arr.dtype).max)
    else:
        peak = float(2 ** int(ds.get("BitsStored", 8)) - 1)
    if arr.ndim == 3:  # colour (pydicom converts YBR to RGB): no modality/VOI LUT applies to it
        grey = np.tensordot(arr[..., :3].astype(np.float64), LUMA, axes=([-1], [0]))
        return np.clip(grey / peak, 0.0, 1.0).astype(np.float32)
    pad = _padding_mask(arr, ds)
    arr = apply_modality_lut(arr, ds)  # stays integer when there is no rescale: VOI LUTs index it
    if "VOILUTSequence" in ds or ("WindowCenter" in ds and "WindowWidth" in ds):
        try:
            arr = apply_voi_lut(arr, ds, index=0)
        except Exception:  # a malformed window (width 0, unequal counts) is not worth failing the image for
            pass
    img = _minmax(arr.astype(np.float32), None if pad is None else ~pad)
    if photometric == "MONOCHROME1":
        img = 1.0 - img
    if pad is not None:
        img[pad] = 0.0
    return np.clip(img, 0.0, 1.0)


def _padding_mask(stored: np.ndarray, ds) -> np.ndarray | None:
    """Pixels outside the image proper (PixelPaddingValue up to PixelPaddingRangeLimit, in stored
    values); None when the file declares none, none match, or every pixel would."""
    if "PixelPaddingValue" not in ds:
        return None
    try:
        a = int(ds.PixelPaddingValue)
        b = int(ds.get("PixelPaddingRangeLimit", a))
    except (TypeError, ValueError):
        return None
    mask = (stored >= min(a, b)) & (stored <= max(a, b))
    return mask if 0 < int(mask.sum()) < mask.size else None


def _require_decoder(ds, path: Path) -> None:
    """A compressed transfer syntax whose decoders are all missing: one DataError naming them."""
    from pydicom.pixels import get_decoder

    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid is None or not uid.is_compressed:
        return
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise DataError(f"its pixel data is compressed as '{uid.name}' ({uid}), which pydicom cannot decode",
                        path=path) from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies)
        raise DataError(f"its pixel data is compressed as '{uid.name}' and no decoder for it is installed "
                        f"({missing}); `pip install python-gdcm` decodes it", path=path)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def _minmax(arr: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """(arr - min) / (max - min), the extremes taken over ``arr[keep]`` (all pixels by default)."""
    vals = arr if keep is None else arr[keep]
    lo, hi = float(np.min(vals)), float(np.max(vals))
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

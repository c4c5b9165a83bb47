"""Decoded, padded, resized pixels: computed once per (images, resolution, decode policy), then read.

Decoding is the cost of extraction for every encoder that is not large (see docs/benchmarks.md):
ten checkpoints at 224 px on MIMIC-CXR would decode its 377,000 JPEGs ten times. The workers of
:func:`xrbench.features.extract.iter_batches` therefore hand the encoder single-channel **uint16**
images of the encoder's input size, already padded to square and resized, plus their geometry;
channel replication, value range and mean/std run on the device. The same uint16 batch is written
into the pixel cache, a :class:`~xrbench.features.store.FeatureStore` of its own (rows
``[N, S, S]`` uint16, resumable chunks, checksums, quarantine), so the next encoder at the same
resolution reads it at disk speed and decodes nothing. The ids of rows whose file was truncated
(decoded as far as its data goes) are kept in the entry's meta.json (``truncated``), as in every
feature entry, so a run on cached pixels or features reports them as the first run did.

Numerics. :func:`decode` computes exactly what :func:`xrbench.features.preprocess.to_input_tensor`
computes before its value-range step (pad, float bilinear antialiased resize, clamp to [0, 1]),
then rounds to 1/65535: each pixel differs from the float path by at most 0.5/65535 (7.6e-6, far
below the 1/255 step of an 8-bit source). uint16 for every source keeps 16-bit PNG and DICOM
exact to the same bound. Because the uncached path goes through the same quantisation, features
with and without the cache are *bitwise* equal.

Decode policy ``fast`` (the default) lets libjpeg decode a JPEG at 1/2, 1/4 or 1/8 scale
(``Image.draft``) when the reduced image still has at least four times the target side, and box-reduces
any other image (PNG, DICOM) by an integer factor under the same rule before the antialiased
resize; ``exact`` never does. Both are part of the cache and feature keys. Under ``fast`` the
reduced image is padded in its own pixel grid, so the image may sit up to a quarter of an input pixel off
where ``exact`` puts it (geometry itself is always that of the original file). Tolerance, pinned on a real
1955 x 1841 CR chest at 224 px (tests/test_pixel_cache.py): mean |fast - exact| < 1/255 (measured
0.0033) and every pixel < 0.25 (the quarter-pixel shift at a full-contrast edge; measured 0.11).
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from xrbench.data.images import is_dicom, pillow_decode, read_image_partial, require_content
from xrbench.errors import DataError
from xrbench.features.preprocess import Geometry, pad_geometry
from xrbench.features.store import CorruptEntry, FeatureStore, PartialEntry
from xrbench.models.meta import EncoderMeta

#: version of what a pixel row is (bump when decode/resize/quantisation changes)
PIXEL_FORMAT = "uint16-pad-bilinear-aa-v1"
POLICIES = ("fast", "exact")
SCALE = 65535.0
#: a reduced decode keeps at least this many source pixels per input pixel
OVERSAMPLE = 4
JPEG_SUFFIXES = (".jpg", ".jpeg")


def _reduction(side: int, size: int) -> int:
    """The integer reduction (1, 2, 4 or 8 for JPEG) that keeps ``OVERSAMPLE`` x ``size``."""
    return max(1, side // (OVERSAMPLE * size))


def _draft_jpeg(path: Path, size: int) -> tuple[np.ndarray, int, int, bool] | None:
    """(reduced [0, 1] image, original h, w, truncated) via libjpeg's DCT scaling, or None if not a
    plain JPEG. A file whose data ends early is decoded as far as it goes, as :func:`read_image`
    does (:func:`~xrbench.data.images.pillow_decode`)."""
    def draft() -> tuple[np.ndarray, int, int] | None:
        with Image.open(path) as im:
            if im.format != "JPEG" or im.mode not in ("L", "RGB", "YCbCr"):
                return None
            w, h = im.size
            f = _reduction(max(h, w), size)
            if f >= 2:
                im.draft("L", (math.ceil(w / min(f, 8)), math.ceil(h / min(f, 8))))
            return np.asarray(im.convert("L"), dtype=np.float32) / 255.0, h, w

    try:
        got, truncated = pillow_decode(draft)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot be decoded as an image ({e.__class__.__name__}: {e})", path=path) from None
    if got is None:
        return None
    if truncated:
        require_content(got[0], path)
    return (*got, truncated)


def decode(path: str | Path, size: int, policy: str = "fast") -> tuple[np.ndarray, Geometry, bool]:
    """[size, size] uint16 pixels of the padded, resized image, its geometry (of the original), and
    whether the file was truncated (decoded as far as its data goes; both policies alike)."""
    path = Path(path)
    got = None
    if policy == "fast" and path.suffix.lower() in JPEG_SUFFIXES and path.is_file() and not is_dicom(path):
        got = _draft_jpeg(path, size)
    if got is None:
        img, truncated = read_image_partial(path)
        h, w = img.shape
    else:
        img, h, w, truncated = got
    geo = pad_geometry(h, w, size)
    x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))
    if policy == "fast":
        f = _reduction(max(x.shape), size)
        if f >= 2:  # box-reduce before the antialiased resize (PNG, DICOM; JPEG already drafted)
            x = F.avg_pool2d(x[None, None], f, ceil_mode=True)[0, 0]
    rh, rw = x.shape
    side = max(rh, rw)
    top, left = (side - rh) // 2, (side - rw) // 2
    x = F.pad(x, (left, side - rw - left, top, side - rh - top))
    x = F.interpolate(x[None, None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0, 0]
    return to_uint16(x).numpy(), geo, truncated


def to_uint16(x01: torch.Tensor) -> torch.Tensor:
    """[0, 1] float -> uint16 rounded to the nearest 1/65535 (clamped as ``to_input_tensor`` clamps)."""
    return torch.round(x01.clamp(0, 1) * SCALE).to(torch.int32).to(torch.uint16)


def normalise(px: torch.Tensor, meta: EncoderMeta) -> torch.Tensor:
    """uint16 [B, S, S] (on any device) -> the encoder's [B, C, S, S] float input: the ops of
    ``to_input_tensor`` after its resize, in the same order, as batched tensor ops."""
    lo, hi = meta.value_range
    x = px.to(torch.float32) / SCALE * (hi - lo) + lo
    x = x[:, None].expand(-1, meta.in_chans, -1, -1)
    mean = torch.tensor(meta.mean, dtype=torch.float32, device=px.device)[:, None, None]
    std = torch.tensor(meta.std, dtype=torch.float32, device=px.device)[:, None, None]
    return (x - mean) / std


def pixel_key(image_manifest: str, size: int, policy: str) -> str:
    if policy not in POLICIES:
        raise ValueError(f"decode policy must be one of {POLICIES}, got {policy!r}")
    payload = {"images": image_manifest, "size": int(size), "policy": policy, "format": PIXEL_FORMAT}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


class PixelCache:
    """The pixel store: ``lookup`` a complete split, or stream one into ``partial`` while encoding."""

    def __init__(self, root: str | Path):
        self.store = FeatureStore(root)
        #: rows served from the cache / decoded into it, since construction (tests, ``bench``)
        self.rows_read = 0

    def lookup(self, key: str, ids: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(pixels memmap [N, S, S] uint16, geometry [N, 6], truncated [N] bool) of a sound entry for
        ``ids``, else None; a corrupt entry is quarantined (and rebuilt by the next extraction).
        ``truncated`` marks rows whose file was decoded partially (meta.json ``truncated``)."""
        if not self.store.has(key):
            return None
        try:
            px, geo, got = self.store.load(key)
            if got != ids:
                raise CorruptEntry("its ids are not those of the samples it is keyed by")
            partial = set(self.store.truncated(key))
        except CorruptEntry as e:
            self.store.quarantine(key, str(e))
            return None
        return px, geo, np.array([i in partial for i in ids], dtype=bool)

    def partial(self, key: str) -> PartialEntry:
        return self.store.partial(key)

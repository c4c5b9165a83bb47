"""Segmentation masks as datasets store them: SIIM run-length strings, COCO polygons, mask images.

Loaders keep a :class:`~xrbench.data.sample.MaskRef` (cheap to build for 10k images) and tasks
decode it with :func:`load_mask` when they need the pixels. Every decoder returns a bool
``[height, width]`` array and raises :class:`DataError` naming the string or file at fault.

SIIM-ACR RLE (the competition's ``mask_functions.py``): space-separated integer pairs
``gap length``; each run starts ``gap`` pixels after the end of the previous run (the first one
after pixel 0) over the flat ``width*height`` vector in column-major order, i.e. the decoded vector
is ``reshape(width, height).T``. ``-1`` (also `` -1``) or a blank cell means an empty mask.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from xrbench.data.images import pillow_strict
from xrbench.data.sample import MaskRef
from xrbench.errors import DataError

#: the SIIM value for "no pneumothorax" (written by :func:`rle_encode` for an empty mask)
EMPTY_RLE = "-1"


def is_empty_rle(rle: str | float | None) -> bool:
    """True for ``-1`` / `` -1`` / blank / NaN: the encodings of an empty SIIM mask."""
    if rle is None or (isinstance(rle, float) and rle != rle):
        return True
    text = str(rle).strip()
    return text in ("", EMPTY_RLE)


def rle_runs(rle: str, height: int, width: int, *, path: str | Path | None = None,
             row: int | None = None, field: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Absolute (starts, ends) of the runs of a SIIM relative RLE over the flat column-major vector.

    Validates the string: an even count of non-negative integers whose runs end inside the
    ``height*width`` image. ``path``/``row``/``field`` locate the string in its file for the error.
    """
    if is_empty_rle(rle):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    text = str(rle).strip()
    shown = text if len(text) <= 60 else text[:57] + "..."
    tokens = text.split()
    try:
        values = np.array([int(t) for t in tokens], dtype=np.int64)
    except ValueError:
        bad = next(t for t in tokens if not _is_int(t))
        raise DataError(f"RLE {shown!r}: {bad!r} is not an integer", path=path, row=row, field=field) from None
    if len(values) % 2:
        raise DataError(f"RLE {shown!r} has {len(values)} numbers; expected (gap, length) pairs",
                        path=path, row=row, field=field)
    if (values < 0).any():
        raise DataError(f"RLE {shown!r} has a negative number; expected non-negative gaps and lengths",
                        path=path, row=row, field=field)
    ends = np.cumsum(values.reshape(-1, 2).sum(axis=1))
    starts = ends - values[1::2]
    total = height * width
    if len(ends) and ends[-1] > total:
        raise DataError(f"RLE {shown!r} runs to pixel {int(ends[-1])}, past the end of the "
                        f"{height}x{width} image ({total} pixels); wrong image size, or not the SIIM "
                        "relative encoding", path=path, row=row, field=field)
    return starts, ends


def rle_decode(rle: str, height: int, width: int) -> np.ndarray:
    """A SIIM relative column-major RLE string as a bool ``[height, width]`` mask."""
    starts, ends = rle_runs(rle, height, width)
    return _runs_to_mask(starts, ends, height, width)


def rle_encode(mask: np.ndarray) -> str:
    """A bool/0-1 ``[height, width]`` mask as a SIIM relative RLE (``-1`` when the mask is empty).

    Unlike the competition's ``mask2rle``, a run that reaches the last pixel is kept.
    """
    flat = np.asarray(mask).astype(bool).T.reshape(-1)  # column-major
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flat.view(np.int8), [0]])))
    if len(edges) == 0:
        return EMPTY_RLE
    starts, ends = edges[0::2], edges[1::2]
    gaps = starts - np.concatenate([[0], ends[:-1]])
    return " ".join(f"{g} {n}" for g, n in zip(gaps.tolist(), (ends - starts).tolist()))


def polygons_to_mask(polygons: Iterable[Sequence[float]], height: int, width: int) -> np.ndarray:
    """COCO polygons (flat ``[x0, y0, x1, y1, ...]`` pixel lists, OR-ed) as a bool mask.

    Rasterised by pycocotools, the COCO reference (``COCO.annToMask``), so masks match what COCO
    tools compute from the same file. Pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``.
    """
    from pycocotools import mask as coco_mask

    polys = []
    for k, poly in enumerate(polygons):
        try:
            coords = [float(v) for v in poly]
        except (TypeError, ValueError):
            raise DataError(f"polygon {k} is not a list of numbers: {poly!r:.80}") from None
        if len(coords) < 6 or len(coords) % 2:
            raise DataError(f"polygon {k} has {len(coords)} coordinates; expected an even count >= 6 "
                            "(at least 3 x,y points)")
        if not np.isfinite(coords).all():
            raise DataError(f"polygon {k} has a non-finite coordinate")
        polys.append(coords)
    if not polys:
        return np.zeros((height, width), dtype=bool)
    rles = coco_mask.frPyObjects(polys, height, width)
    return coco_mask.decode(coco_mask.merge(rles)).astype(bool)


def load_mask(ref: MaskRef) -> np.ndarray:
    """Decode a :class:`MaskRef` to a bool ``[ref.height, ref.width]`` array."""
    if ref.kind == "siim-rle":
        strings = (ref.source,) if isinstance(ref.source, str) else tuple(ref.source)
        out = np.zeros((ref.height, ref.width), dtype=bool)
        for rle in strings:
            out |= rle_decode(rle, ref.height, ref.width)
        return out
    if ref.kind == "polygons":
        return polygons_to_mask(ref.source, ref.height, ref.width)
    if ref.kind == "png":
        return _read_mask_image(Path(ref.source), ref.height, ref.width)
    raise DataError(f"unknown mask kind {ref.kind!r}; expected 'png', 'siim-rle' or 'polygons'")


def _runs_to_mask(starts: np.ndarray, ends: np.ndarray, height: int, width: int) -> np.ndarray:
    change = np.zeros(height * width + 1, dtype=np.int32)
    np.add.at(change, starts, 1)
    np.add.at(change, ends, -1)
    flat = np.cumsum(change[:-1]) > 0
    return flat.reshape(width, height).T.copy()


def _read_mask_image(path: Path, height: int, width: int) -> np.ndarray:
    """A mask image: any non-zero pixel is foreground (palette/RGB images via their grey level)."""
    if not path.is_file():
        raise DataError("mask file does not exist", path=path)
    try:
        with pillow_strict(), Image.open(path) as im:  # a truncated mask is an error, never partial
            im.load()
            if im.mode not in ("1", "L", "I", "I;16", "I;16B", "I;16L", "F"):
                im = im.convert("L")
            arr = np.asarray(im) > 0
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(f"cannot be decoded as a mask image ({e.__class__.__name__}: {e})", path=path) from None
    if arr.shape != (height, width):
        raise DataError(f"mask is {arr.shape[0]}x{arr.shape[1]}; expected {height}x{width} "
                        "(the size of its image)", path=path)
    return arr


def _is_int(token: str) -> bool:
    try:
        int(token)
        return True
    except ValueError:
        return False

"""``xrbench data preview``: a contact sheet of a dataset's images with their ground truth drawn.

Boxes with their class, grounded phrases' boxes with their category, landmarks as numbered dots,
masks as a translucent overlay, and the labels / target / report under each tile. For eyeballing a
download (is the box where the finding is? is the mask transposed?) and for the docs' picture of
the phantoms (``--all``). Pillow only.
"""
from __future__ import annotations

import io
import math
import os
import zlib
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from xrbench.data.images import atomic_write_bytes, read_image
from xrbench.data.masks import load_mask
from xrbench.data.sample import MaskRef, Sample
from xrbench.errors import DataError
from xrbench.registry import DATASETS

TILE = 256  # px: the image area of a tile (images are fitted inside, aspect kept)
LINE = 14  # px per caption line
CAPTION = 3 * LINE + 4
PAD = 8
TITLE = 28
#: the order of docs/datasets.md, for ``--all``
SUITE_ORDER = ("chexpert", "nih-cxr14", "mimic-cxr", "ms-cxr", "vindr-cxr", "siim-acr", "mura", "rsna-boneage",
               "vindr-spinexr", "isbi2015-ceph", "fracatlas", "knee-oa")
PALETTE = ((255, 80, 80), (80, 200, 255), (255, 200, 40), (120, 255, 120), (255, 120, 255), (255, 150, 60),
           (160, 140, 255), (60, 255, 210))
BACKGROUND, PAPER, INK = (12, 12, 12), (250, 250, 248), (20, 20, 20)


@dataclass
class Tile:
    """One sample and the first caption line to print under it."""

    sample: Sample
    heading: str


def sheet_size(n_tiles: int) -> tuple[int, int]:
    """(width, height) in px of a sheet of ``n_tiles``: ceil(sqrt(n)) columns."""
    cols = max(1, math.ceil(math.sqrt(n_tiles)))
    rows = max(1, math.ceil(n_tiles / cols))
    return cols * TILE + (cols + 1) * PAD, TITLE + rows * (TILE + CAPTION) + (rows + 1) * PAD


def preview_dataset(name: str, root: Path | None = None, *, n: int = 6,
                    options: dict[str, Any] | None = None) -> Image.Image:
    """A sheet of ``n`` samples of one dataset (the demo data when ``root`` is None)."""
    import xrbench.data.datasets  # noqa: F401  (registers the loaders)
    from xrbench.data.check import dataset_root

    folder = dataset_root(name, root)
    samples = DATASETS.get(name)(folder, **(options or {})).samples()
    if not samples:
        raise DataError("the loader found no samples", path=folder)
    picked = pick_samples(samples, n)
    title = f"{name}: {len(picked)} of {len(samples)} images" + (" (SYNTHETIC demo data)" if root is None else "")
    return contact_sheet([Tile(s, f"{s.split} | {s.id}") for s in picked], title)


def preview_all(names: list[str] | None = None) -> tuple[Image.Image, list[str]]:
    """One tile per demo dataset (default: every packaged dataset, in docs order), and the
    ``name: reason`` of those whose demo could not be written or read."""
    import xrbench.data.datasets  # noqa: F401
    from xrbench.data.demo import demo_root

    if names is None:
        names = [n for n, cls in DATASETS.items() if cls.__module__.startswith("xrbench.data.datasets.")]
    names = sorted(names, key=lambda n: (SUITE_ORDER.index(n) if n in SUITE_ORDER else len(SUITE_ORDER), n))
    tiles, failed = [], []
    for name in names:
        cls = DATASETS.get(name)
        try:
            sample = pick_samples(cls(demo_root(name)).samples(), 1)[0]
        except Exception as e:  # noqa: BLE001  (a broken demo must not hide the others; it is reported)
            failed.append(f"{name}: {e.__class__.__name__}: {e}")
            continue
        tiles.append(Tile(sample, f"{name} ({cls.anatomy})"))
    return contact_sheet(tiles, "xrbench phantoms: SYNTHETIC demo data, one image per dataset"), failed


def pick_samples(samples: list[Sample], n: int) -> list[Sample]:
    """``n`` samples, deterministic: the most annotated first, alternating between targets / labels.

    Within a group of equally annotated samples the order is a hash of the id, so the pick does
    not favour the first rows of the file.
    """
    ranked = sorted(samples, key=lambda s: (-_richness(s), zlib.crc32(s.id.encode())))
    groups: dict[str, list[Sample]] = {}
    for s in ranked:
        groups.setdefault(_group(s), []).append(s)
    mixed = [s for row in zip_longest(*groups.values()) for s in row if s is not None]
    return mixed[:n]


def _richness(s: Sample) -> int:
    return (2 * bool(s.boxes or s.phrases) + 2 * _has_mask(s.mask) + 2 * (s.landmarks is not None)
            + any(v == 1 for v in s.labels.values()) + bool(s.text))


def _has_mask(ref: MaskRef | None) -> bool:
    return ref is not None and (ref.kind == "png" or bool(ref.source))


def _group(s: Sample) -> str:
    if s.target is not None:
        return f"target {s.target}"
    return next((k for k, v in sorted(s.labels.items()) if v == 1), "")


# --------------------------------------------------------------------------- drawing


def contact_sheet(tiles: list[Tile], title: str) -> Image.Image:
    """Tiles on a grid (see :func:`sheet_size`) under a title line."""
    width, height = sheet_size(len(tiles))
    cols = max(1, math.ceil(math.sqrt(len(tiles))))
    sheet = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(sheet)
    draw.text((PAD, 6), _fit(title, _font(14), width - 2 * PAD), fill=INK, font=_font(14))
    for i, tile in enumerate(tiles):
        x = PAD + (i % cols) * (TILE + PAD)
        y = TITLE + PAD + (i // cols) * (TILE + CAPTION + PAD)
        sheet.paste(render_tile(tile.sample), (x, y))
        for k, line in enumerate([tile.heading, *_caption(tile.sample)][:3]):
            draw.text((x, y + TILE + 2 + k * LINE), _fit(line, _font(11), TILE), fill=INK, font=_font(11))
    return sheet


def render_tile(s: Sample) -> Image.Image:
    """The image fitted into TILE x TILE with its mask, boxes, phrase boxes and landmarks drawn."""
    img = read_image(s.image)
    h, w = img.shape
    scale = TILE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    shown = Image.fromarray(np.round(img * 255).astype(np.uint8)).resize(size, Image.BILINEAR).convert("RGB")
    if _has_mask(s.mask):
        mask = Image.fromarray(load_mask(s.mask).astype(np.uint8) * 255).resize(size, Image.NEAREST)
        tinted = Image.blend(shown, Image.new("RGB", size, (255, 40, 40)), 0.45)
        shown = Image.composite(tinted, shown, mask)
    tile = Image.new("RGB", (TILE, TILE), BACKGROUND)
    ox, oy = (TILE - size[0]) // 2, (TILE - size[1]) // 2
    tile.paste(shown, (ox, oy))
    draw = ImageDraw.Draw(tile)
    font = _font(10)
    boxes = [(b, b.label) for b in s.boxes] + [(b, p.category or b.label) for p in s.phrases for b in p.boxes]
    for box, label in boxes:
        color = PALETTE[zlib.crc32(label.encode()) % len(PALETTE)]
        x0, y0 = ox + box.x0 * scale, oy + box.y0 * scale
        draw.rectangle([x0, y0, ox + box.x1 * scale, oy + box.y1 * scale], outline=color, width=2)
        text_w = draw.textlength(label, font=font)
        ty = max(0, y0 - 12)
        draw.rectangle([x0, ty, x0 + text_w + 4, ty + 12], fill=color)
        draw.text((x0 + 2, ty), label, fill=(0, 0, 0), font=font)
    if s.landmarks is not None:
        for k, (px, py) in enumerate(np.asarray(s.landmarks, dtype=float), start=1):
            cx, cy = ox + px * scale, oy + py * scale
            draw.ellipse([cx - 2.5, cy - 2.5, cx + 2.5, cy + 2.5], fill=(255, 220, 0), outline=(0, 0, 0))
            draw.text((cx + 3, cy - 6), str(k), fill=(255, 255, 120), font=_font(9))
    return tile


def _caption(s: Sample) -> list[str]:
    """Ground truth in words: positive (and uncertain?) labels or the target; then report / phrases."""
    positive = [k for k, v in s.labels.items() if v == 1]
    uncertain = [f"{k}?" for k, v in s.labels.items() if v == -1]
    parts = positive + uncertain
    if s.target is not None:
        parts.append(f"target={s.target:g}" if isinstance(s.target, float) else f"target={s.target}")
    first = ", ".join(parts) if parts else ("no positive label" if s.labels else "")
    if s.phrases:
        second = " | ".join(p.text for p in s.phrases)
    elif s.text:
        order = sorted(s.text, key=lambda k: (k not in ("findings", "impression"), k != "findings"))
        second = next((f"{k}: {s.text[k]}" for k in order if str(s.text[k]).strip()), "")
    else:
        second = ", ".join(f"{k}={v}" for k, v in s.meta.items() if k in ("body_part", "view", "sex", "age")
                           and v is not None)
    return [line for line in (first, second) if line]


def _fit(text: str, font, width: int) -> str:
    """``text`` cut (with an ellipsis) to fit ``width`` px in ``font``."""
    text = " ".join(str(text).split())
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "...") > width:
        text = text[:-1]
    return text + "..."


_FONTS: dict[int, ImageFont.ImageFont] = {}


def _font(size: int):
    if size not in _FONTS:
        _FONTS[size] = ImageFont.load_default(size=size)
    return _FONTS[size]


def save_png(image: Image.Image, path: Path) -> None:
    """Write atomically, readable by all (a contact sheet is for sharing, e.g. in docs/)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    atomic_write_bytes(Path(path), buf.getvalue())
    os.chmod(path, 0o644)  # the atomic temp file was created 0600

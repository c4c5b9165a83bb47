"""The one record type every dataset loader returns.

A :class:`Sample` is one image with everything any task may need from it. Loaders fill what their
dataset carries and leave the rest empty; tasks pick the fields they use. Coordinates (boxes,
landmarks, polygons) are in pixels of the image file as it is read from disk.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Split names every loader exposes (official names are mapped onto these).
SPLITS = ("train", "val", "test")

#: Label value for "uncertain" (CheXpert/MIMIC ``-1``); ``NaN`` means "not mentioned / unknown".
UNCERTAIN = -1.0


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixel xyxy of the image as read, with its class and reader."""

    x0: float
    y0: float
    x1: float
    y1: float
    label: str
    reader: str | None = None

    @property
    def area(self) -> float:
        return max(0.0, self.x1 - self.x0) * max(0.0, self.y1 - self.y0)

    def scaled(self, sx: float, sy: float) -> "Box":
        return Box(self.x0 * sx, self.y0 * sy, self.x1 * sx, self.y1 * sy, self.label, self.reader)


@dataclass(frozen=True)
class MaskRef:
    """Where a segmentation mask comes from, decoded lazily by :func:`xrbench.data.masks.load_mask`.

    kind: ``"png"`` (``source`` is a path to a 0/non-0 image), ``"siim-rle"`` (``source`` is a tuple
    of relative column-major RLE strings, OR-ed), ``"polygons"`` (``source`` is a tuple of flat
    ``[x0, y0, x1, y1, ...]`` pixel polygons). ``height``/``width`` give the mask size.
    """

    kind: str
    source: Any
    height: int
    width: int


@dataclass(frozen=True)
class Phrase:
    """A phrase of a report grounded to one or more boxes (MS-CXR)."""

    text: str
    boxes: tuple[Box, ...]
    category: str | None = None


@dataclass
class Sample:
    """One image and its ground truth.

    labels: name -> 1.0 / 0.0 / NaN (unknown) / -1.0 (uncertain, resolved by the task's label
    policy). target: a class index or regression value. group: the unit that metrics aggregate
    over when a dataset is scored per study (MURA). text: report sections by lower-case name.
    """

    id: str
    image: Path
    patient: str
    split: str
    labels: dict[str, float] = field(default_factory=dict)
    target: float | int | None = None
    boxes: list[Box] = field(default_factory=list)
    mask: MaskRef | None = None
    landmarks: np.ndarray | None = None  # [K, 2] pixel xy
    spacing_mm: float | None = None  # mm per pixel of the image as read
    text: dict[str, str] = field(default_factory=dict)
    phrases: list[Phrase] = field(default_factory=list)
    group: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"sample {self.id}: split must be one of {SPLITS}, got {self.split!r}")
        if not isinstance(self.image, Path):  # Path(Path) re-parses: measurable over 377k samples
            self.image = Path(self.image)

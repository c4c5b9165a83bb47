"""The encoder contract: metadata that fixes preprocessing, and ``encode`` -> global + patch grid.

Every registered model, whatever its origin (timm, a local Hugging Face folder, TorchScript), is
wrapped into an :class:`Encoder`, so features, protocols and results never see the difference.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

RANDOM_INIT = "random-init"


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
    patch_size: int | None = None  # None for CNNs (the patch grid is the last feature map)
    value_range: tuple[float, float] = (0.0, 1.0)  # pixel range before mean/std
    weights: str = RANDOM_INIT  # "random-init", a file path, or "package:<name>"
    weights_sha256: str | None = None
    modalities: tuple[str, ...] = ("image",)
    extra: dict = field(default_factory=dict)

    def preprocessing(self) -> dict:
        """The exact image transform, recorded with every feature and result."""
        return {"resize": "pad-to-square+bilinear-antialias", "size": self.input_size,
                "channels": self.in_chans, "value_range": list(self.value_range),
                "mean": list(self.mean), "std": list(self.std)}

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def is_random(self) -> bool:
        return self.weights == RANDOM_INIT


class Encoder(nn.Module):
    """A frozen image encoder. Subclasses implement :meth:`forward_features`."""

    meta: EncoderMeta

    def __init__(self, meta: EncoderMeta):
        super().__init__()
        self.meta = meta
        #: images passed through :meth:`encode` since construction (tests use it to prove caching)
        self.images_encoded = 0

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    @torch.inference_mode()
    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x``: [B, C, S, S] preprocessed. Returns {"global": [B, D], "patches": [B, h, w, D]}."""
        self.images_encoded += x.shape[0]
        return self.forward_features(x)


def sha256_file(path: str | Path, _cache: dict = {}) -> str:  # noqa: B006 - deliberate memo
    """sha256 of a weights file, memoised on (path, size, mtime): large checkpoints hash once."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _cache:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        _cache[key] = h.hexdigest()
    return _cache[key]

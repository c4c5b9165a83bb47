"""The encoder contract: metadata that fixes preprocessing, and ``encode`` -> global + patch grid.

Every registered model, whatever its origin (timm, a local Hugging Face folder, open_clip,
TorchScript, a private module), is wrapped into an :class:`Encoder`, so features, protocols and
results never see the difference.

Feature kinds (the keys of :meth:`Encoder.encode`): ``global`` [B, D], ``patches`` [B, h, w, D],
and, when asked for, ``blocks:N`` / ``blocks:N:avgpool`` (DINOv2's linear-evaluation input, see
:func:`parse_blocks`).
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from xrbench.errors import ModelError
from xrbench.models.meta import RANDOM_INIT, EncoderMeta, grid_pool

__all__ = ["RANDOM_INIT", "Encoder", "EncoderMeta", "Features", "parse_blocks", "sha256_file", "sha256_files"]

_BLOCKS = re.compile(r"^blocks:(\d+)(:avgpool)?$")


def parse_blocks(kind: str) -> tuple[int, bool] | None:
    """``blocks:N`` -> (N, False); ``blocks:N:avgpool`` -> (N, True); other kinds -> None.

    DINOv2's linear evaluation (``dinov2/eval/linear.py``, ``create_linear_input``) feeds the
    probe the class tokens of the last N blocks (each through the final norm), concatenated, and
    optionally the average of the last block's patch tokens: [B, N*D] or [B, (N+1)*D]. The paper's
    ImageNet numbers use N=4 with avgpool for ViT-S/B.
    """
    m = _BLOCKS.match(kind)
    if not m:
        return None
    n = int(m.group(1))
    if n < 1:
        raise ModelError(f"feature kind {kind!r}: N must be at least 1")
    return n, bool(m.group(2))


def blocks_feature(cls_tokens: Sequence[torch.Tensor], last_patches: torch.Tensor, avgpool: bool) -> torch.Tensor:
    """Concatenate per-block class tokens [B, D] (oldest first) and optionally mean patch tokens."""
    parts = list(cls_tokens) + ([last_patches.flatten(1, -2).mean(1)] if avgpool else [])
    return torch.cat([p.float() for p in parts], dim=-1)


def pool_grid(patches: torch.Tensor, k: int, encoder: str) -> torch.Tensor:
    """[B, h, w, D] -> [B, h/k, w/k, D], the mean of each k x k block of cells (so a pooled cell
    still covers an exact square of the input, and boxes map to it as to the full grid)."""
    b, h, w, d = patches.shape
    if h % k or w % k:
        raise ModelError(f"encoder '{encoder}': its {h}x{w} patch grid cannot be pooled by {k} "
                         f"(patches:pool{k} needs a grid divisible by {k})")
    return patches.reshape(b, h // k, k, w // k, k, d).mean((2, 4))


class Features(dict):
    """The dict :meth:`Encoder.encode` returns; asking for a kind the encoder lacks is a ModelError."""

    def __init__(self, data: dict, encoder: str):
        super().__init__(data)
        self.encoder = encoder

    def __missing__(self, kind: str):
        raise ModelError(f"encoder '{self.encoder}' does not provide feature kind {kind!r}; "
                         f"it provides {sorted(self)}")


class Encoder(nn.Module):
    """A frozen image encoder. Subclasses implement :meth:`forward_features` (and optionally
    :meth:`forward_blocks` for ``blocks:N`` kinds, :meth:`encode_text` for a text tower and
    :meth:`project_patches` to bring its patch tokens into that tower's space)."""

    meta: EncoderMeta

    def __init__(self, meta: EncoderMeta):
        super().__init__()
        self.meta = meta
        #: images passed through :meth:`encode` since construction (tests use it to prove caching)
        self.images_encoded = 0

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward_blocks(self, x: torch.Tensor, n: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(class tokens of the last ``n`` blocks after the final norm, oldest first; the last
        block's patch tokens [B, h*w, D]). Encoders without blocks do not override this."""
        raise ModelError(f"encoder '{self.meta.name}' does not expose intermediate blocks")

    @torch.inference_mode()
    def encode(self, x: torch.Tensor, kinds: Sequence[str] | None = None) -> Features:
        """``x``: [B, C, S, S] preprocessed. Returns {"global": [B, D], "patches": [B, h, w, D]},
        plus any ``blocks:N[:avgpool]`` and ``patches:poolK`` kinds listed in ``kinds``."""
        self.images_encoded += x.shape[0]
        out = dict(self.forward_features(x))
        for k in kinds or ():
            k_pool = grid_pool(k)
            if k_pool and k_pool > 1:
                out[k] = pool_grid(out["patches"], k_pool, self.meta.name)
        asked = [(k, parse_blocks(k)) for k in kinds or ()]
        asked = [(k, b) for k, b in asked if b is not None]
        if asked:
            cls, patches = self.forward_blocks(x, max(n for _, (n, _) in asked))
            for k, (n, avgpool) in asked:
                out[k] = blocks_feature(cls[-n:], patches, avgpool)
        return Features(out, self.meta.name)

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """[N, D] embeddings in the image ``global`` space; only encoders with a text tower."""
        raise ModelError(f"encoder '{self.meta.name}' has no text tower (modalities: {self.meta.modalities})")

    def project_patches(self, grid: torch.Tensor) -> torch.Tensor:
        """Stored ``patches`` [B, h, w, D] -> [B, h, w, E] in the image-text space of
        :meth:`encode_text`: the map the pooled image token goes through, applied to each token
        (similarity-map grounding without re-extracting). Only encoders whose stored tokens sit
        exactly where that map starts implement it."""
        raise ModelError(f"encoder '{self.meta.name}' has no patch projection into a text space")


#: (resolved path, size, mtime_ns) -> sha256 of every weights file hashed in this process
_SHA256: dict[tuple[str, int, int], str] = {}
#: every file asked for, in order (memo hits too): the lazy encoder cache reads what a build used
HASHED: list[str] = []


def sha256_file(path: str | Path) -> str:
    """sha256 of a weights file, memoised on (path, size, mtime): large checkpoints hash once."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    HASHED.append(key[0])
    if key not in _SHA256:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        _SHA256[key] = h.hexdigest()
    return _SHA256[key]


def sha256_files(root: str | Path, names: Sequence[str]) -> str:
    """One sha256 over named files of a model folder (config + weights): any change changes it."""
    h = hashlib.sha256()
    for name in sorted(names):
        h.update(f"{name}\t{sha256_file(Path(root) / name)}\n".encode())
    return h.hexdigest()

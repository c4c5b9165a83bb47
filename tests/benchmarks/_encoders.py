"""The encoders the phantom-signal scripts compare, built and applied exactly as the suite does.

Using ``create_encoder`` and the suite's own preprocessing means these measurements describe what
``xrbench run`` sees, not a parallel re-implementation of it.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from xrbench.features.preprocess import to_input_tensor
from xrbench.models import Encoder, create_encoder


def signal_encoders(skip_vit: bool = False) -> dict[str, Callable[[], Encoder]]:
    """Name -> builder: ImageNet EfficientNet-Lite0, and (unless skipped) random-init xr0 (ViT-B/16)."""
    out = {"efficientnet-lite0-imagenet": lambda: create_encoder("efficientnet-lite0-imagenet")}
    if not skip_vit:
        out["xr0 (ViT-B/16, random init)"] = lambda: create_encoder("xr0")
    return out


def encode(encoder: Encoder, images: Sequence[np.ndarray], batch: int = 16) -> np.ndarray:
    """L2-normalised global features of [0, 1] images, preprocessed from the encoder's metadata."""
    out = []
    for i in range(0, len(images), batch):
        x = torch.stack([to_input_tensor(np.asarray(im, np.float32), encoder.meta)[0] for im in images[i:i + batch]])
        out.append(encoder.encode(x)["global"].numpy())
    f = np.concatenate(out)
    return f / np.linalg.norm(f, axis=1, keepdims=True).clip(1e-8)

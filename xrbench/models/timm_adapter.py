"""Any timm architecture as an :class:`Encoder`, with weights from a local file (never a hub).

The patch grid: a ViT's last-layer patch tokens (stride = patch size); a hierarchical model's
(CNN, Swin, ConvNeXt) deepest feature level at stride <= :data:`GRID_STRIDE`, its "C4" level, the
single-scale detection backbone of Faster R-CNN C4. That puts every encoder's grid at the same
resolution as a ViT-B/16's (14 x 14 at 224 px), so the dense tasks compare features rather than
grid resolutions; the stride-32 output is global in reach (EfficientNet-Lite0's 7 x 7 head-conv
map let a localization head memorise its training images, train mAP 0.7 vs test 0.003 on the
demo). The global feature is always the whole network's pooled output, from the same pass.
"""
from __future__ import annotations

from pathlib import Path

import timm
import torch

from xrbench.errors import ModelError
from xrbench.models.base import RANDOM_INIT, Encoder, EncoderMeta, sha256_file
from xrbench.models.weights import load_into, partial_record, read_state_dict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: the largest stride of a hierarchical model's patch grid
GRID_STRIDE = 16


def grid_level(model: torch.nn.Module) -> int | None:
    """Index in ``model.feature_info`` of a hierarchical model's patch grid: the deepest level at
    stride <= GRID_STRIDE (the shallowest if none is); None for a ViT (one stride throughout)."""
    info = getattr(model, "feature_info", None) or []
    strides = [int(f["reduction"]) for f in info]
    if len(set(strides)) < 2 or not hasattr(model, "forward_intermediates"):
        return None
    fine = [i for i, r in enumerate(strides) if r <= GRID_STRIDE]
    return fine[-1] if fine else 0


class TimmEncoder(Encoder):
    """Wraps ``timm.create_model(arch, num_classes=0)``; exposes its pooled output and patch grid."""

    def __init__(self, model: torch.nn.Module, meta: EncoderMeta):
        super().__init__(meta)
        self.model = model.eval()
        self.num_prefix_tokens = int(getattr(model, "num_prefix_tokens", 0) or 0)
        self.grid_level = grid_level(model)

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.grid_level is not None:  # hierarchical: the C4 level and the final output, one pass
            feats, (grid,) = self.model.forward_intermediates(x, indices=[self.grid_level], output_fmt="NCHW")
            pooled = self.model.forward_head(feats, pre_logits=True)
            return {"global": pooled.float(), "patches": grid.permute(0, 2, 3, 1).float()}
        feats = self.model.forward_features(x)
        pooled = self.model.forward_head(feats, pre_logits=True)
        if feats.ndim == 4:  # a CNN without feature levels: its last map [B, C, h, w]
            patches = feats.permute(0, 2, 3, 1)
        else:  # ViT: [B, prefix + h*w, D]
            tokens = feats[:, self.num_prefix_tokens:]
            b, n, d = tokens.shape
            side = int(round(n ** 0.5))
            if side * side != n:
                raise ModelError(f"{self.meta.name}: {n} patch tokens do not form a square grid")
            patches = tokens.reshape(b, side, side, d)
        return {"global": pooled.float(), "patches": patches.float()}

    def forward_blocks(self, x: torch.Tensor, n: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        """timm ``forward_intermediates`` of the last ``n`` blocks, each through the final norm.

        ViTs: the class token of each block (the mean patch token when the model has none). CNNs:
        the last ``n`` stages average-pooled (widths differ per stage; they are concatenated).
        """
        if not hasattr(self.model, "forward_intermediates"):
            raise ModelError(f"{self.meta.name}: timm model has no forward_intermediates")
        vit = self.num_prefix_tokens > 0 or hasattr(self.model, "blocks")
        kw = {"return_prefix_tokens": True, "norm": True, "output_fmt": "NLC"} if vit else {}
        inter = self.model.forward_intermediates(x, indices=n, intermediates_only=True, **kw)
        if not vit:  # [B, C, h, w] stage outputs
            return [f.mean((2, 3)) for f in inter], inter[-1].flatten(2).transpose(1, 2)
        has_cls = bool(getattr(self.model, "cls_token", None) is not None)
        cls = [pfx[:, 0] if has_cls else tok.mean(1) for tok, pfx in inter]
        return cls, inter[-1][0]


def create_timm_encoder(name: str, architecture: str, *, weights: str | Path | None = None,
                        input_size: int | None = None, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                        state_dict_fn=None, weights_label: str | None = None, seed: int = 0,
                        allow_partial: bool = False, **model_kwargs) -> TimmEncoder:
    """Build ``architecture`` from timm and load ``weights`` (safetensors / weights-only .pt).

    Without weights the parameters are initialised from ``seed``, so a random-init run is
    reproducible. ``state_dict_fn`` maps a foreign checkpoint's keys to timm's. ``allow_partial``
    loads a checkpoint with missing/unexpected keys (recorded in ``meta.extra``) instead of refusing.
    """
    if architecture not in timm.list_models():
        from xrbench.registry import closest

        raise ModelError(f"unknown timm architecture '{architecture}'. Did you mean: "
                         f"{', '.join(closest(architecture, timm.list_models())) or 'none'}?")
    kwargs = dict(model_kwargs)
    if input_size is not None and "vit" in architecture:
        kwargs.setdefault("img_size", input_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = timm.create_model(architecture, pretrained=False, num_classes=0, **kwargs)
    sha, extra = None, {}
    if weights is not None:
        sd = read_state_dict(weights)
        if state_dict_fn is not None:
            sd = state_dict_fn(sd, model)
        extra = partial_record(load_into(model, sd, path=weights, allow_partial=allow_partial))
        sha = sha256_file(weights)
    cfg = model.pretrained_cfg or {}
    size = input_size or int(cfg.get("input_size", (3, 224, 224))[-1])
    patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
    patch_dim = None
    level = grid_level(model)
    if level is not None:  # hierarchical: the grid's stride, width and module (see the module docstring)
        info = model.feature_info[level]
        patch, patch_dim = int(info["reduction"]), int(info["num_chs"])
        extra = {**extra, "grid_level": str(info["module"])}
    meta = EncoderMeta(
        name=name, architecture=architecture, embed_dim=int(model.num_features), input_size=size,
        mean=tuple(mean), std=tuple(std), in_chans=3,
        patch_size=int(patch[0]) if isinstance(patch, (tuple, list)) else patch,
        weights=weights_label or (str(weights) if weights is not None else RANDOM_INIT),
        weights_sha256=sha, extra={"init_seed": seed, **extra} if weights is None else extra,
        patch_dim=patch_dim if patch_dim != int(model.num_features) else None)
    return TimmEncoder(model, meta)

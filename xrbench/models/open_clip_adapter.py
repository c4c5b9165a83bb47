"""A local open_clip folder as an :class:`Encoder` with a text tower (``open_clip:DIR``).

Layout (what open_clip's ``push_to_hf_hub`` writes, e.g. BiomedCLIP's Hugging Face repository)::

    DIR/open_clip_config.json        {"model_cfg": {embed_dim, vision_cfg, text_cfg, ...},
                                      "preprocess_cfg": {size, mean, std, ...}}
    DIR/open_clip_model.safetensors  (or open_clip_pytorch_model.safetensors / .bin)
    DIR/tokenizer files              only for a Hugging Face text tower (vocab.txt, tokenizer_config.json)
    DIR/text/config.json             only for a Hugging Face text tower whose config is not in the
                                     local HF cache (BiomedCLIP: PubMedBERT's config.json)

``global`` is ``encode_image`` (the projected joint image-text space, not L2-normalised: the
probes normalise); ``patches`` are the last block's tokens after the tower's final norm, in the
tower's width (``meta.patch_dim``); :meth:`OpenClipEncoder.project_patches` brings them into the
joint space. open_clip_torch is the optional extra ``xrbench[clip]``.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from xrbench.errors import ModelError
from xrbench.models.base import Encoder, EncoderMeta, sha256_files
from xrbench.models.hf_adapter import require
from xrbench.models.weights import check_keys, partial_record

WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                "open_clip_pytorch_model.bin", "model.safetensors", "pytorch_model.bin")
CONFIG = "open_clip_config.json"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")


class OpenClipEncoder(Encoder):
    def __init__(self, model: torch.nn.Module, meta: EncoderMeta, tokenizer):
        super().__init__(meta)
        self.model, self.tokenizer = model.eval(), tokenizer

    def _grid(self, tokens: torch.Tensor) -> torch.Tensor:
        b, n, d = tokens.shape
        side = int(round(n ** 0.5))
        if side * side != n:
            raise ModelError(f"{self.meta.name}: {n} patch tokens do not form a square grid")
        return tokens.reshape(b, side, side, d)

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.model.visual.forward_intermediates(x, indices=1, normalize_intermediates=True,
                                                      output_fmt="NLC")
        return {"global": out["image_features"].float(),
                "patches": self._grid(out["image_intermediates"][-1]).float()}

    def forward_blocks(self, x: torch.Tensor, n: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        out = self.model.visual.forward_intermediates(x, indices=n, normalize_intermediates=True,
                                                      output_fmt="NLC", output_extra_tokens=True,
                                                      intermediates_only=True)
        prefix = out.get("image_intermediates_prefix")
        tokens = out["image_intermediates"]
        cls = [p[:, 0] for p in prefix] if prefix else [t.mean(1) for t in tokens]
        return cls, tokens[-1]

    def encode_text(self, texts: list[str]) -> np.ndarray:
        dev = next(self.model.parameters()).device
        with torch.inference_mode():
            emb = self.model.encode_text(self.tokenizer(list(texts)).to(dev))
        return emb.float().cpu().numpy()

    def project_patches(self, grid: torch.Tensor) -> torch.Tensor:
        """The stored tokens already went through the tower's final norm (``ln_post`` / the timm
        trunk's ``norm``), so the rest of the pooled token's path is a per-token map: ``@ proj``
        (open_clip ViT) or the adapter head (timm trunk: BiomedCLIP's linear ``proj``)."""
        fn = token_projection(self.model.visual, self.meta.name)
        p = next(self.model.visual.parameters())
        with torch.inference_mode():
            return fn(grid.to(p.device, p.dtype)).float()


def token_projection(visual: torch.nn.Module, name: str):
    """The map from a normalised token to the joint space, when the pooled token's path after
    the final norm is exactly that map (class-token pooling, or a mean of tokens before a linear
    projection); otherwise a ModelError saying why."""
    from open_clip.timm_model import TimmModel
    from open_clip.transformer import VisionTransformer
    from torch import nn

    def refuse(why: str):
        raise ModelError(f"encoder '{name}' has no patch projection into a text space: {why}")

    if isinstance(visual, VisionTransformer):
        if visual.proj is None:
            refuse("its image tower has no projection (proj is None)")
        if visual.attn_pool is not None:
            refuse("its image tower pools by attention, which no per-token map reproduces")
        if visual.pool_type not in ("tok", "avg") or (visual.pool_type == "avg" and visual.final_ln_after_pool):
            refuse(f"its image tower pools by {visual.pool_type!r}"
                   + (" before the final norm" if visual.final_ln_after_pool else ""))
        return lambda g: g @ visual.proj
    if isinstance(visual, TimmModel):
        trunk = visual.trunk
        from timm.models.vision_transformer import VisionTransformer as TimmViT

        ok = (isinstance(trunk, TimmViT) and trunk.global_pool == "token"
              and isinstance(trunk.fc_norm, nn.Identity) and isinstance(trunk.head, nn.Identity)
              and "pool" not in dict(visual.head.named_children()))
        if not ok:
            refuse(f"its timm tower ({trunk.__class__.__name__}) does not pool the class token straight "
                   f"into its projection head")
        return visual.head
    refuse(f"its image tower is a {visual.__class__.__name__}, not a ViT")


def _tokenizer(open_clip, folder: Path, text_cfg: dict):
    ctx = text_cfg.get("context_length", 77)
    if text_cfg.get("hf_tokenizer_name") or text_cfg.get("hf_model_name"):
        for src in (folder, folder / "text"):
            if any((src / f).is_file() for f in _TOKENIZER_FILES):
                return open_clip.tokenizer.HFTokenizer(str(src), context_length=ctx)
        name = text_cfg.get("hf_tokenizer_name") or text_cfg["hf_model_name"]
        try:
            return open_clip.tokenizer.HFTokenizer(name, context_length=ctx)
        except OSError as e:
            raise ModelError(f"{folder}: tokenizer '{name}' is neither in the folder (vocab.txt / "
                             f"tokenizer_config.json) nor in the local Hugging Face cache: {e}") from None
    return open_clip.tokenizer.SimpleTokenizer(context_length=ctx)


def create_open_clip_encoder(name: str, folder: str | Path, *, allow_partial: bool = False,
                             weights_label: str | None = None) -> OpenClipEncoder:
    """Build the model of ``open_clip_config.json`` (no hub access) and load its weights strictly."""
    open_clip = require("open_clip", "clip")
    folder = Path(folder).expanduser()
    cfg_path = folder / CONFIG
    if not cfg_path.is_file():
        raise ModelError(f"{folder}: not an open_clip folder (no {CONFIG}); expected {CONFIG} with "
                         f"'model_cfg' and 'preprocess_cfg' plus one of {list(WEIGHT_FILES)}")
    try:
        cfg = json.loads(cfg_path.read_text())
        model_cfg, pre = cfg["model_cfg"], cfg.get("preprocess_cfg", {})
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ModelError(f"{cfg_path}: expected a JSON object with 'model_cfg' ({e.__class__.__name__}: {e})") from None
    weights = next((folder / f for f in WEIGHT_FILES if (folder / f).is_file()), None)
    if weights is None:
        raise ModelError(f"{folder}: no weights file; expected one of {list(WEIGHT_FILES)}")
    text_cfg = dict(model_cfg.get("text_cfg", {}))
    kwargs = {}
    if "hf_model_name" in text_cfg and (folder / "text" / "config.json").is_file():
        kwargs["text_cfg"] = {**text_cfg, "hf_model_name": str(folder / "text"), "hf_model_pretrained": False}
    logging.disable(logging.WARNING)  # open_clip warns "initialized randomly": the weights come next
    try:
        model = open_clip.create_model(f"local-dir:{folder}", load_weights=False, pretrained_image=False,
                                       pretrained_text=False, **kwargs)
    except (OSError, ValueError, RuntimeError) as e:
        hint = (f" The text tower '{text_cfg['hf_model_name']}' needs its config.json: put it in "
                f"{folder / 'text'}/ (docs/models.md)." if "hf_model_name" in text_cfg else "")
        raise ModelError(f"{folder}: open_clip cannot build this model: {e}.{hint}") from None
    finally:
        logging.disable(logging.NOTSET)
    try:
        incompatible = open_clip.load_checkpoint(model, str(weights), strict=False, weights_only=True)
    except Exception as e:  # corrupt file, pickle with code objects, wrong shapes
        raise ModelError(f"{weights}: cannot be loaded into this open_clip model: {e.__class__.__name__}: {e}") from None
    missing = sorted(getattr(incompatible, "missing_keys", []))
    unexpected = sorted(getattr(incompatible, "unexpected_keys", []))
    check_keys(missing, unexpected, path=weights, arch=model.__class__.__name__, allow_partial=allow_partial)
    tokenizer = _tokenizer(open_clip, folder, text_cfg)
    visual = model.visual
    size = pre.get("size") or model_cfg.get("vision_cfg", {}).get("image_size", 224)
    size = int(size[0] if isinstance(size, (list, tuple)) else size)
    patch = model_cfg.get("vision_cfg", {}).get("patch_size")
    if patch is None:
        ps = getattr(getattr(getattr(visual, "trunk", None), "patch_embed", None), "patch_size", None)
        patch = ps[0] if isinstance(ps, (list, tuple)) else ps
    with torch.inference_mode():
        probe = visual.forward_intermediates(torch.zeros(1, 3, size, size), indices=1,
                                             normalize_intermediates=True, output_fmt="NLC")
    embed, width = int(probe["image_features"].shape[-1]), int(probe["image_intermediates"][-1].shape[-1])
    meta = EncoderMeta(
        name=name, architecture=f"open_clip:{model.__class__.__name__}", embed_dim=embed, input_size=size,
        mean=tuple(float(v) for v in pre.get("mean", open_clip.OPENAI_DATASET_MEAN)),
        std=tuple(float(v) for v in pre.get("std", open_clip.OPENAI_DATASET_STD)),
        patch_size=int(patch) if patch else None, weights=weights_label or str(folder),
        weights_sha256=sha256_files(folder, [CONFIG, weights.name]), modalities=("image", "text"),
        patch_dim=width if width != embed else None,
        extra={"global": "encode_image (projected)",
               **partial_record({"missing_keys": missing, "unexpected_keys": unexpected}
                                if missing or unexpected else {})})
    return OpenClipEncoder(model, meta, tokenizer)

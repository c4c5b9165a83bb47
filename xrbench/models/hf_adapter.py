"""A local Hugging Face ``transformers`` folder as an :class:`Encoder` (``hf:DIR``).

The folder is what ``save_pretrained`` writes (``config.json`` + ``model.safetensors`` or
``pytorch_model.bin``) plus the image processor's ``preprocessor_config.json``. Tokens:
``global`` is the class token of ``last_hidden_state`` (after the model's final norm; for DINOv2
that *is* ``pooler_output``), except for CLIP-style vision towers whose convention is the pooled
output (``post_layernorm`` of the class token). Register tokens (DINOv2 with registers,
``config.num_register_tokens``) are dropped; the remaining patch tokens form the grid (RAD-DINO at
518 px: 37 x 37). transformers is imported lazily: it is the optional extra ``xrbench[hf]``.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from xrbench.errors import ModelError
from xrbench.models.base import Encoder, EncoderMeta, sha256_files
from xrbench.models.weights import check_keys, partial_record

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
#: model types whose ``pooler_output`` is the trained image embedding (post_layernorm of CLS)
POOLED_TYPES = ("clip_vision_model", "siglip_vision_model", "clip", "siglip")


def require(module: str, extra: str):
    """Import an optional dependency, or a ModelError naming the pip extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ModelError(f"this model needs the optional package '{module.split('.')[0]}': "
                         f"pip install 'xrbench[{extra}]' ({e})") from None


def read_preprocessor(folder: Path) -> dict:
    """input_size, mean, std and value_range from ``preprocessor_config.json``.

    Size: ``crop_size`` when the processor center-crops, else ``size`` (height, or shortest_edge).
    xrbench pads to square instead of cropping (findings sit at the film edge), so the size is
    the side of the square the model sees. ``do_rescale`` with 1/255 means pixels in [0, 1].
    """
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        raise ModelError(f"{path}: missing; an hf: folder needs its image processor's config "
                         f"(size, image_mean, image_std), as save_pretrained of the processor writes it")
    cfg = json.loads(path.read_text())

    def side(v):
        if isinstance(v, dict):
            v = v.get("height", v.get("shortest_edge"))
        return int(v) if v is not None else None

    size = side(cfg.get("crop_size")) if cfg.get("do_center_crop") else None
    size = size or side(cfg.get("size"))
    if not size:
        raise ModelError(f"{path}: no image size (keys 'size' / 'crop_size')")
    normalise = cfg.get("do_normalize", True)
    mean = cfg.get("image_mean", [0.0]) if normalise else [0.0]
    std = cfg.get("image_std", [1.0]) if normalise else [1.0]
    rescale = cfg.get("rescale_factor", 1 / 255) if cfg.get("do_rescale", True) else 1.0
    return {"input_size": size, "mean": [float(v) for v in mean], "std": [float(v) for v in std],
            "value_range": (0.0, round(255 * rescale, 6)), "processor": cfg.get("image_processor_type")}


class HFEncoder(Encoder):
    def __init__(self, model: torch.nn.Module, meta: EncoderMeta, *, n_prefix: int, pooled: bool,
                 tokenizer=None):
        super().__init__(meta)
        self.model = model.eval()
        self.n_prefix, self.pooled, self.tokenizer = n_prefix, pooled, tokenizer
        self.vision = getattr(model, "vision_model", model)  # CLIP-like: the image tower

    def _grid(self, tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, self.n_prefix:]
        b, n, d = patches.shape
        side = int(round(n ** 0.5))
        if side * side != n:
            raise ModelError(f"{self.meta.name}: {n} patch tokens do not form a square grid")
        return patches.reshape(b, side, side, d)

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.vision(pixel_values=x)
        tokens = out.last_hidden_state
        if hasattr(self.model, "get_image_features"):  # CLIP-like: the projected joint space
            glob = self.model.visual_projection(out.pooler_output)
        else:
            glob = out.pooler_output if self.pooled else tokens[:, 0]
        return {"global": glob.float(), "patches": self._grid(tokens).float()}

    def forward_blocks(self, x: torch.Tensor, n: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``output_hidden_states``: the last ``n`` layer outputs, each through the final norm
        (``layernorm`` / ``post_layernorm`` when the model has one), as DINOv2's linear eval does."""
        out = self.vision(pixel_values=x, output_hidden_states=True)
        norm = getattr(self.vision, "layernorm", None) or getattr(self.vision, "post_layernorm", None)
        states = [norm(h) if norm is not None else h for h in out.hidden_states[-n:]]
        return [h[:, 0] for h in states], states[-1][:, self.n_prefix:]

    def project_patches(self, grid: torch.Tensor) -> torch.Tensor:
        """CLIP-like models: the stored tokens are ``last_hidden_state`` (before ``post_layernorm``),
        and the pooled class token reaches the joint space through ``post_layernorm`` then
        ``visual_projection``, both per-token maps; the same two applied to each patch token."""
        norm = getattr(self.vision, "post_layernorm", None)
        proj = getattr(self.model, "visual_projection", None)
        if norm is None or proj is None or not hasattr(self.model, "get_image_features"):
            return super().project_patches(grid)
        p = next(self.model.parameters())
        with torch.inference_mode():
            return proj(norm(grid.to(p.device, p.dtype))).float()

    def encode_text(self, texts: list[str]):
        if self.tokenizer is None:
            return super().encode_text(texts)
        tok = self.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
        dev = next(self.model.parameters()).device
        with torch.inference_mode():
            emb = self.model.get_text_features(**{k: v.to(dev) for k, v in tok.items()})
        emb = getattr(emb, "pooler_output", emb)
        return emb.float().cpu().numpy()


def create_hf_encoder(name: str, folder: str | Path, *, allow_partial: bool = False,
                      weights_label: str | None = None) -> HFEncoder:
    """``AutoModel.from_pretrained(folder)``, offline, refusing checkpoints that do not fit."""
    transformers = require("transformers", "hf")
    folder = Path(folder).expanduser()
    if not (folder / "config.json").is_file():
        raise ModelError(f"{folder}: not a Hugging Face model folder (no config.json); expected the "
                         f"output of save_pretrained: config.json, model.safetensors, preprocessor_config.json")
    files = [f for f in WEIGHT_FILES if (folder / f).is_file()]
    if not files:
        raise ModelError(f"{folder}: no weights file; expected one of {list(WEIGHT_FILES)}")
    pre = read_preprocessor(folder)
    transformers.utils.logging.disable_progress_bar()  # one small folder: a bar per load is noise
    try:
        model, info = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True,
                                                             output_loading_info=True)
    except (OSError, ValueError, KeyError) as e:
        raise ModelError(f"{folder}: transformers cannot load this folder: {e}") from None
    # the unused text-classification pooler of BERT/ViT checkpoints is not part of the encoder
    missing = sorted(k for k in info.get("missing_keys", []) if not k.startswith("pooler."))
    unexpected = sorted(info.get("unexpected_keys", []))
    mismatched = [f"{m}" for m in info.get("mismatched_keys", [])]
    check_keys(missing, unexpected, path=folder, arch=model.__class__.__name__,
               allow_partial=allow_partial, wrong=mismatched)
    cfg = model.config
    vcfg = getattr(cfg, "vision_config", cfg)
    n_prefix = 1 + int(getattr(vcfg, "num_register_tokens", 0) or 0)
    tokenizer = None
    modalities = ("image",)
    if hasattr(model, "get_text_features"):
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            modalities = ("image", "text")
        except (OSError, ValueError):
            tokenizer = None  # image tower only; encode_text says so
    pooled = getattr(cfg, "model_type", "") in POOLED_TYPES
    embed = int(getattr(cfg, "projection_dim", 0) or 0) if hasattr(model, "get_image_features") else 0
    width = int(vcfg.hidden_size)
    mean, std = pre["mean"], pre["std"]
    in_chans = int(getattr(vcfg, "num_channels", 3) or 3)
    meta = EncoderMeta(
        name=name, architecture=f"hf:{model.__class__.__name__}", embed_dim=embed or width,
        input_size=pre["input_size"], mean=tuple(mean * in_chans if len(mean) == 1 else mean),
        std=tuple(std * in_chans if len(std) == 1 else std), in_chans=in_chans,
        patch_size=int(vcfg.patch_size), value_range=pre["value_range"],
        weights=weights_label or str(folder),
        weights_sha256=sha256_files(folder, ["config.json", "preprocessor_config.json", *files]),
        modalities=modalities, patch_dim=width if embed and embed != width else None,
        extra={"global": "projected pooler" if embed else ("pooler_output" if pooled else "cls"),
               "prefix_tokens": n_prefix,
               **partial_record({"missing_keys": missing, "unexpected_keys": unexpected}
                                if missing or unexpected else {})})
    return HFEncoder(model, meta, n_prefix=n_prefix, pooled=pooled, tokenizer=tokenizer)

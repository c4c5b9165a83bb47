"""TorchScript files (``torchscript:FILE``) and private Python factories (``module:pkg.mod:factory``).

Both give a module whose ``forward(x)`` returns a tensor [B, D] (global only) or a dict with
``global`` [B, D] and optionally ``patches`` [B, h, w, D] (or a (global, patches) tuple), plus
metadata that xrbench cannot guess: the preprocessing contract must be declared, never assumed.

TorchScript metadata: a sidecar JSON next to the file, ``FILE.json`` (``model.pt`` ->
``model.pt.json``) or ``<stem>.json``, with the :class:`EncoderMeta` fields ``input_size``,
``mean``, ``std`` and optionally ``in_chans``, ``value_range``, ``patch_size``, ``name``,
``architecture``, ``modalities``; ``embed_dim`` is measured. A TorchScript archive is code: load
only files you trust.

Module factories: ``factory(**options)`` returns an :class:`Encoder`, or ``(nn.Module, meta)``
with meta an :class:`EncoderMeta` or a dict of its fields. With ``--weights`` xrbench loads the
file into the returned module (for an Encoder: keys of ``encoder.state_dict()``) with the same
strict, safe loader as every other adapter.
"""
from __future__ import annotations

import importlib
import warnings
import json
from dataclasses import fields
from pathlib import Path

import torch

from xrbench.errors import ModelError
from xrbench.models.base import Encoder, EncoderMeta, sha256_file
from xrbench.models.weights import load_into, partial_record, read_state_dict

_META_FIELDS = {f.name for f in fields(EncoderMeta)}


class ModuleEncoder(Encoder):
    """Wraps a module with the output conventions above."""

    def __init__(self, module: torch.nn.Module, meta: EncoderMeta):
        super().__init__(meta)
        self.module = module.eval()

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return normalise_output(self.module(x), self.meta.name)


def normalise_output(out, name: str) -> dict[str, torch.Tensor]:
    if isinstance(out, torch.Tensor):
        out = {"global": out}
    elif isinstance(out, (tuple, list)) and len(out) == 2:
        out = {"global": out[0], "patches": out[1]}
    if not isinstance(out, dict) or not isinstance(out.get("global"), torch.Tensor):
        raise ModelError(f"{name}: forward must return a tensor [B, D], a dict with 'global' "
                         f"(and 'patches'), or a (global, patches) tuple; got {type(out).__name__}")
    if out["global"].ndim != 2:
        raise ModelError(f"{name}: 'global' must be [B, D], got shape {tuple(out['global'].shape)}")
    if "patches" in out and out["patches"].ndim != 4:
        raise ModelError(f"{name}: 'patches' must be [B, h, w, D], got shape {tuple(out['patches'].shape)}")
    return {k: v.float() for k, v in out.items() if k in ("global", "patches")}


def _meta_from(declared: dict, *, source: str, module: torch.nn.Module, defaults: dict) -> EncoderMeta:
    """EncoderMeta from declared fields; embed_dim (and patch_dim) measured with one dry run."""
    unknown = sorted(set(declared) - _META_FIELDS)
    if unknown:
        raise ModelError(f"{source}: unknown metadata field(s) {unknown}; known: {sorted(_META_FIELDS)}")
    need = [k for k in ("input_size", "mean", "std") if k not in declared]
    if need:
        raise ModelError(f"{source}: the preprocessing contract must be declared: missing {need} "
                         f"(e.g. {{\"input_size\": 224, \"mean\": [0.5, 0.5, 0.5], \"std\": [0.5, 0.5, 0.5]}})")
    d = {**defaults, **declared}
    for k in ("mean", "std", "value_range", "modalities"):
        if k in d:
            d[k] = tuple(d[k])
    c = int(d.get("in_chans", 3))
    with torch.inference_mode():
        out = normalise_output(module(torch.zeros(2, c, int(d["input_size"]), int(d["input_size"]))), d["name"])
    d.setdefault("embed_dim", int(out["global"].shape[-1]))
    if "patches" in out and out["patches"].shape[-1] != d["embed_dim"]:
        d.setdefault("patch_dim", int(out["patches"].shape[-1]))
    try:
        return EncoderMeta(**d)
    except TypeError as e:
        raise ModelError(f"{source}: invalid metadata: {e}") from None


def sidecar(path: Path) -> Path | None:
    for p in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if p.is_file() and p != path:
            return p
    return None


def create_torchscript_encoder(spec: str, *, allow_partial: bool = False, **declared) -> ModuleEncoder:
    """``torch.jit.load(FILE)`` with metadata from its sidecar JSON (keyword arguments override it)."""
    del allow_partial  # a TorchScript archive carries its own weights: there is nothing partial to load
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ModelError(f"{path}: TorchScript file does not exist")
    side = sidecar(path)
    meta = json.loads(side.read_text()) if side else {}
    if not isinstance(meta, dict):
        raise ModelError(f"{side}: expected a JSON object of encoder metadata")
    try:
        with warnings.catch_warnings():  # torch's own deprecation notice, nothing the user can act on
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError) as e:
        raise ModelError(f"{path}: not a TorchScript archive (torch.jit.save output): {e}") from None
    source = str(side or f"{path} (no sidecar {path.name}.json)")
    defaults = {"name": f"torchscript:{path.stem}", "architecture": "torchscript", "weights": str(path),
                "weights_sha256": sha256_file(path)}
    return ModuleEncoder(module, _meta_from({**meta, **declared}, source=source, module=module, defaults=defaults))


def create_module_encoder(spec: str, *, weights: str | None = None, allow_partial: bool = False,
                          **options) -> Encoder:
    """``package.module:factory`` -> the factory's encoder, with ``weights`` loaded strictly."""
    mod_name, sep, attr = spec.partition(":")
    if not sep or not mod_name or not attr:
        raise ModelError(f"module:{spec}: expected module:package.module:factory")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise ModelError(f"module:{spec}: cannot import '{mod_name}' ({e}); is it on PYTHONPATH?") from None
    factory = getattr(mod, attr, None)
    if not callable(factory):
        from xrbench.registry import closest

        hint = closest(attr, [n for n, v in vars(mod).items() if callable(v) and not n.startswith("_")])
        raise ModelError(f"module:{spec}: '{mod_name}' has no factory '{attr}'"
                         + (f". Did you mean: {', '.join(hint)}?" if hint else ""))
    built = factory(**options)
    if isinstance(built, Encoder):
        enc = built
    elif isinstance(built, tuple) and len(built) == 2 and isinstance(built[0], torch.nn.Module):
        module, meta = built
        declared = meta.to_dict() if isinstance(meta, EncoderMeta) else dict(meta)
        enc = ModuleEncoder(module, _meta_from(declared, source=f"module:{spec}", module=module,
                                               defaults={"name": f"module:{spec}", "architecture": spec}))
    else:
        raise ModelError(f"module:{spec}: the factory must return an Encoder or (nn.Module, meta); "
                         f"got {type(built).__name__}")
    if weights is not None:
        target = enc.module if isinstance(enc, ModuleEncoder) else enc
        extra = partial_record(load_into(target, read_state_dict(weights), path=weights,
                                         allow_partial=allow_partial))
        enc.meta = EncoderMeta(**{**enc.meta.to_dict(), "weights": str(weights),
                                  "weights_sha256": sha256_file(weights),
                                  "extra": {**enc.meta.extra, **extra}})
    return enc

"""The preprocessing contract, checked on the first batch before any feature is cached.

Wrong normalisation is the commonest silent error with foundation models: one widely used X-ray
library returned the same features for every image because of it. :func:`check_first_batch`
compares what actually reaches the encoder, and what comes out, with :class:`EncoderMeta`, and
stops the run with what was expected and what was found.
"""
from __future__ import annotations

import torch

from xrbench.errors import ModelError
from xrbench.models.meta import EncoderMeta

#: a standardised input spans a few units: (v - mean) / std over a [0, 1] image with mean ~0.5,
#: std ~0.25 gives about [-2, 2]. Wider than this: mean/std are in other units than the pixels
#: (un-normalised); narrower: the pixels were scaled twice (e.g. mean/std given in 0-255 units).
MAX_ABS, MIN_WIDTH = 50.0, 0.5


def expected_range(meta: EncoderMeta) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel [low, high] of (v - mean) / std for v in ``meta.value_range``."""
    lo, hi = meta.value_range
    mean = torch.tensor(meta.mean, dtype=torch.float64)
    std = torch.tensor(meta.std, dtype=torch.float64)
    return (lo - mean) / std, (hi - mean) / std


def _fmt(v) -> str:
    return "[" + ", ".join(f"{float(a):.4g}" for a in v) + "]"


def _ids(ids: list[str], rows) -> str:
    names = [ids[i] if i < len(ids) else f"#{i}" for i in rows]
    return ", ".join(names[:5]) + (f" (+{len(names) - 5} more)" if len(names) > 5 else "")


def check_meta(meta: EncoderMeta) -> None:
    """The declared contract itself must describe a standardised input."""
    low, high = expected_range(meta)
    where = (f"{meta.name}: value_range {list(meta.value_range)} with mean {list(meta.mean)}, "
             f"std {list(meta.std)} gives normalised inputs in {_fmt(low)} .. {_fmt(high)}")
    if float(torch.maximum(low.abs(), high.abs()).max()) > MAX_ABS:
        raise ModelError(f"{where}; expected a range of a few units around 0: inputs look un-normalised "
                         f"(mean/std in other units than the value range?)")
    if float((high - low).min()) < MIN_WIDTH:
        raise ModelError(f"{where}; expected a width of at least {MIN_WIDTH}: inputs look normalised twice "
                         f"(mean/std on a 0-255 scale with value_range [0, 1]?)")


def check_first_batch(x: torch.Tensor, outputs: dict, meta: EncoderMeta, ids: list[str]) -> None:
    """Raise ModelError when the batch or the encoder's outputs break the contract of ``meta``.

    ``x``: the preprocessed batch [B, C, S, S]; ``outputs``: what ``encode(x)`` returned;
    ``ids``: the sample ids of the batch rows, so that a bad image is named.
    """
    check_meta(meta)
    name = meta.name
    if x.ndim != 4 or x.shape[1] != meta.in_chans or tuple(x.shape[2:]) != (meta.input_size,) * 2:
        raise ModelError(f"{name}: expected input batches [B, {meta.in_chans}, {meta.input_size}, "
                         f"{meta.input_size}] (channels, input_size of the encoder), found {list(x.shape)}")
    xf = x.detach().float().cpu()
    bad = (~torch.isfinite(xf)).flatten(1).any(1)
    if bad.any():
        raise ModelError(f"{name}: NaN or inf in the preprocessed input of {_ids(ids, bad.nonzero()[:, 0].tolist())}")
    low, high = expected_range(meta)
    tol = 1e-3 * (high - low) + 1e-4
    found_lo, found_hi = xf.amin((0, 2, 3)).double(), xf.amax((0, 2, 3)).double()
    if bool(((found_lo < low - tol) | (found_hi > high + tol)).any()):
        raise ModelError(f"{name}: expected inputs in {_fmt(low)} .. {_fmt(high)} per channel after "
                         f"(v - mean) / std with value_range {list(meta.value_range)}, mean {list(meta.mean)}, "
                         f"std {list(meta.std)}; found {_fmt(found_lo)} .. {_fmt(found_hi)}: the images were "
                         f"not preprocessed as the encoder declares (un-normalised, or normalised twice)")
    flat = xf.flatten(1)
    constant = (flat.amax(1) - flat.amin(1)) <= 1e-6
    if constant.any():
        rows = constant.nonzero()[:, 0].tolist()
        raise ModelError(f"{name}: image(s) {_ids(ids, rows)} are all one value after preprocessing "
                         f"({float(flat[rows[0], 0]):.4g}); expected varying pixels: a blank or corrupt file, "
                         f"or a window/bit depth that clips every pixel")
    _check_outputs(outputs, meta, ids, flat)


def _check_outputs(outputs: dict, meta: EncoderMeta, ids: list[str], flat: torch.Tensor) -> None:
    name, b = meta.name, flat.shape[0]
    g = outputs.get("global")
    if g is None:
        raise ModelError(f"{name}: the encoder returned no 'global' features (found {sorted(outputs)})")
    if tuple(g.shape) != (b, meta.embed_dim):
        raise ModelError(f"{name}: expected global features [{b}, {meta.embed_dim}] (embed_dim), "
                         f"found {list(g.shape)}")
    p = outputs.get("patches")
    dim = meta.patch_dim or meta.embed_dim
    if p is not None and (p.ndim != 4 or p.shape[0] != b or p.shape[-1] != dim):
        raise ModelError(f"{name}: expected patch features [{b}, h, w, {dim}], found {list(p.shape)}")
    for k, v in outputs.items():
        v = v.detach().float().cpu()
        bad = (~torch.isfinite(v)).flatten(1).any(1)
        if bad.any():
            raise ModelError(f"{name}: NaN or inf in the '{k}' features of {_ids(ids, bad.nonzero()[:, 0].tolist())}")
    distinct = torch.unique(flat, dim=0).shape[0]
    if distinct < 2:
        return
    gf = g.detach().float().cpu()
    spread = float((gf - gf[:1]).abs().max())
    scale = float(gf.abs().max())
    if spread <= 1e-5 * scale + 1e-7:
        raise ModelError(f"{name}: the encoder gave identical global features for {distinct} distinct images "
                         f"({_ids(ids, range(b))}); expected features that differ between images: check the "
                         f"normalisation (saturated inputs), the weights and the model's output")

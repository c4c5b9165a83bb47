"""Loading checkpoints safely (safetensors or ``torch.load(weights_only=True)``) into a module."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from xrbench.errors import ModelError

_PREFIXES = ("module.", "model.", "backbone.", "encoder.", "visual.", "trunk.")
_NESTED = ("state_dict", "model", "teacher", "student", "module")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file, without ever unpickling arbitrary objects."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"{path}: weights file does not exist")
    try:
        if path.suffix == ".safetensors" or _looks_like_safetensors(path):
            from safetensors.torch import load_file

            sd = load_file(str(path), device="cpu")
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file, pickle with code objects, wrong format
        raise ModelError(f"{path}: cannot be read as a weights file (safetensors, or a torch checkpoint "
                         f"loadable with weights_only=True): {e.__class__.__name__}: {_load_error(e)}") from None
    for key in _NESTED:  # training checkpoints nest the weights
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
            break
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ModelError(f"{path}: expected a mapping of parameter names to tensors")
    return sd


def _load_error(e: Exception) -> str:
    """The part of a ``torch.load`` error that says what is wrong. For a pickle holding code or
    objects other than tensors, torch's message is a paragraph with terminal escapes that suggests
    ``weights_only=False``, which xrbench never does: keep only the offending global."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    found = re.search(r"WeightsUnpickler error: (.*?)(?: Please use|$)", text, flags=re.M)
    if found:
        return (f"the file holds Python objects other than tensors ({found.group(1).strip()}); save the "
                f"state_dict alone, or as .safetensors, from code you trust")
    return text


def _looks_like_safetensors(path: Path) -> bool:
    """safetensors files start with an 8-byte header length followed by a JSON object."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size


def strip_prefixes(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if sd and all(k.startswith(p) for k in sd):
                sd = {k[len(p):]: v for k, v in sd.items()}
                changed = True
    return sd


def load_into(model: nn.Module, sd: dict[str, torch.Tensor], *, path: str | Path,
              ignore: tuple[str, ...] = ("head.", "fc.", "classifier.", "_fc."),
              allow_partial: bool = False) -> dict:
    """Load ``sd`` into ``model`` strictly (classifier heads excepted); explain any misfit.

    Missing or unexpected keys are refused with both lists unless ``allow_partial`` (the CLI's
    ``--allow-partial``): then the rest is loaded, a warning names the keys, and the returned
    ``{"missing_keys": [...], "unexpected_keys": [...]}`` goes into the encoder's metadata.
    Shapes that do not fit are always refused.
    """
    sd = {k: v for k, v in strip_prefixes(sd).items() if not k.startswith(ignore)}
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(ignore)}
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    wrong = [f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
             for k in sorted(set(sd) & set(own)) if sd[k].shape != own[k].shape]
    arch = getattr(model, "default_cfg", {}).get("architecture", model.__class__.__name__)
    check_keys(missing, unexpected, path=path, arch=arch, allow_partial=allow_partial, wrong=wrong)
    model.load_state_dict(sd, strict=False)
    return {"missing_keys": missing, "unexpected_keys": unexpected} if missing or unexpected else {}


def _keys(keys: list[str], n: int = 12) -> str:
    return ", ".join(keys[:n]) + (f", ... (+{len(keys) - n})" if len(keys) > n else "")


def check_keys(missing: list[str], unexpected: list[str], *, path: str | Path, arch: str,
               allow_partial: bool, wrong: list[str] = ()) -> None:
    """Refuse a checkpoint that does not fit (every adapter calls this with its key lists)."""
    if not (missing or unexpected or wrong):
        return
    parts = []
    if wrong:
        parts.append(f"{len(wrong)} shape mismatch(es): {'; '.join(wrong[:5])}")
    parts.append(f"{len(missing)} missing key(s)" + (f": [{_keys(missing)}]" if missing else ""))
    parts.append(f"{len(unexpected)} unexpected key(s)" + (f": [{_keys(unexpected)}]" if unexpected else ""))
    msg = f"{path}: checkpoint does not fit architecture '{arch}': " + "; ".join(parts)
    if wrong or not allow_partial:
        hint = "" if wrong else " (--allow-partial loads it anyway and records the keys in the result)"
        raise ModelError(msg + hint)
    warnings.warn(msg + "; loading the rest because of --allow-partial", stacklevel=3)


def partial_record(misfit: dict) -> dict:
    """What ``meta.extra`` records of a checkpoint loaded with --allow-partial (empty when it fit)."""
    return {"allow_partial": True, **misfit} if misfit else {}

"""An encoder that is built only when something needs the network.

A fully cached run (features and head outputs in the store) needs only the encoder's
metadata: the feature keys, the records and the preprocessing all derive from
:class:`EncoderMeta`. Building the network is what costs a cached run most of its time (importing
timm, initialising or loading 86M parameters), so :func:`create_run_encoder` remembers the
metadata of each build in ``$XRBENCH_HOME/models/`` and, when nothing it was built from has
changed, returns a :class:`LazyEncoder` that holds the metadata and builds the real encoder on
first use (a forward pass, ``encode_text``, ``.to``).

"Nothing changed" is checked, not assumed. The cache key holds the model name, ``--weights``,
the factory options, every ``XRBENCH_*_WEIGHTS`` variable, the versions of xrbench and of the
libraries that build encoders, and a hash of the adapter code; an entry also lists every
weights file hashed during the build (they identify the weights in ``weights_sha256``) with
its size, mtime, ctime and inode, and any change there rebuilds. When the network is finally
built, its metadata must equal the remembered one, or the run stops (a ModelError naming both).
``module:`` encoders are always built: their code is the user's, so no key can cover it.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import fields
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from xrbench.atomic import atomic_write_text
from xrbench.errors import ModelError
from xrbench.models.meta import EncoderMeta

#: distributions whose version changes what a factory builds
LIBRARIES = ("torch", "timm", "open_clip_torch", "transformers")
#: bump when the entry's layout changes
FORMAT = 1


def meta_from_dict(d: dict) -> EncoderMeta:
    """The inverse of ``EncoderMeta.to_dict`` after a JSON round trip (lists back to tuples)."""
    tuples = {f.name for f in fields(EncoderMeta) if str(f.type).startswith("tuple")}
    return EncoderMeta(**{k: tuple(v) if k in tuples and v is not None else v for k, v in d.items()})


def _canonical(meta: EncoderMeta) -> str:
    return json.dumps(meta.to_dict(), sort_keys=True, default=str)


class LazyEncoder:
    """Stands for an :class:`~xrbench.models.base.Encoder` whose metadata is known; every other
    attribute builds the encoder first (once) and is read from it."""

    def __init__(self, meta: EncoderMeta, build: Callable[[], Any]):
        object.__setattr__(self, "meta", meta)
        object.__setattr__(self, "_build", build)
        object.__setattr__(self, "_encoder", None)

    @property
    def built(self) -> bool:
        return self._encoder is not None

    @property
    def images_encoded(self) -> int:
        return self._encoder.images_encoded if self._encoder is not None else 0

    def real(self):
        """The built encoder (building it now if needed), checked against the remembered metadata."""
        if self._encoder is None:
            enc = self._build()
            if _canonical(enc.meta) != _canonical(self.meta):
                raise ModelError(f"encoder '{self.meta.name}': the metadata cached for it "
                                 f"({_canonical(self.meta)}) differs from the built encoder's "
                                 f"({_canonical(enc.meta)}); delete $XRBENCH_HOME/models/ and rerun")
            object.__setattr__(self, "_encoder", enc)
        return self._encoder

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.real(), name)

    def __setattr__(self, name: str, value) -> None:
        setattr(self.real(), name, value)


def _signature(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _code_hash() -> str:
    h = hashlib.sha256()
    for p in sorted(Path(__file__).parent.glob("*.py")):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _versions() -> dict[str, str | None]:
    out = {}
    for dist in ("xrbench", *LIBRARIES):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def cache_key(name: str, weights: str | None, options: dict) -> str:
    env = {k: v for k, v in sorted(os.environ.items()) if k.startswith("XRBENCH_") and k.endswith("WEIGHTS")}
    resolved = str(Path(weights).expanduser().resolve()) if weights else None
    blob = json.dumps({"format": FORMAT, "name": name, "weights": resolved, "options": options, "env": env,
                       "versions": _versions(), "code": _code_hash()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def create_run_encoder(name: str, *, weights: str | None = None, cache_dir: Path | None = None, **kw):
    """The encoder for a run: a :class:`LazyEncoder` when its metadata is remembered and still valid,
    else the built encoder (whose metadata is then remembered). ``kw`` as for ``create_encoder``."""
    from xrbench.models.zoo import create_encoder

    def build():
        return create_encoder(name, weights=weights, **kw)

    if cache_dir is None or name.startswith("module:"):
        return build()
    path = Path(cache_dir) / f"{cache_key(name, weights, kw)}.json"
    try:
        entry = json.loads(path.read_text())
        if all(_signature(f) == sig for f, sig in entry["files"].items()):
            return LazyEncoder(meta_from_dict(entry["meta"]), build)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ModelError):
        pass  # absent, stale or unreadable: build and remember
    from xrbench.models.base import HASHED

    start = len(HASHED)
    enc = build()
    files = {f: _signature(f) for f in sorted(set(HASHED[start:]))}
    atomic_write_text(path, json.dumps({"meta": enc.meta.to_dict(), "files": files}, sort_keys=True,
                                       default=str))
    return enc

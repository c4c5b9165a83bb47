"""Text embeddings cached like image features: once per (text encoder, weights, list of texts).

Layout: ``$XRBENCH_HOME/features/text/<key>/{features.npy, meta.json}``, key = sha256 of the
encoder's identity (name, weights, weights sha256 or package version) and the sha256 of the texts
in order. An entry is written to a temporary sibling folder and renamed, so a crash never leaves
one a later run would trust. Identical texts are embedded once, so their rows are bitwise equal
(retrieval's tie policy relies on it).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from xrbench.atomic import publish_dir
from xrbench.data.demo import xrbench_home


def texts_hash(texts: list[str]) -> str:
    return hashlib.sha256(json.dumps(list(texts), ensure_ascii=False).encode()).hexdigest()


def text_key(identity: dict, texts: list[str]) -> str:
    payload = {"encoder": identity, "texts": texts_hash(texts), "format": 1}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


class TextFeatureStore:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else xrbench_home() / "features" / "text"
        #: texts passed to an encoder through :meth:`get` (tests use it to prove caching)
        self.texts_encoded = 0

    def get(self, identity: dict, texts: list[str], encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """[N, D] float32 embeddings of ``texts``: from the cache, or encoded (unique texts once) and
        stored. ``identity`` is what fixes the embedding (e.g. ``TextEncoderMeta.to_dict()``)."""
        texts = [str(t) for t in texts]
        final = self.root / text_key(identity, texts)
        if (final / "meta.json").is_file():
            return np.load(final / "features.npy")
        unique = list(dict.fromkeys(texts))
        emb = np.asarray(encode(unique), dtype=np.float32).reshape(len(unique), -1) if unique else \
            np.zeros((0, 0), dtype=np.float32)
        self.texts_encoded += len(unique)
        pos = {t: i for i, t in enumerate(unique)}
        out = emb[[pos[t] for t in texts]] if texts else emb
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".partial-{final.name}-"))
        try:
            np.save(tmp / "features.npy", out)
            meta = {"encoder": identity, "texts_sha256": texts_hash(texts), "n": len(texts),
                    "shape": list(out.shape)}
            (tmp / "meta.json").write_text(json.dumps(meta, sort_keys=True, indent=1))
            try:
                publish_dir(tmp, final)
            except OSError:  # another process published the same entry first: its content is ours
                if not (final / "meta.json").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return out

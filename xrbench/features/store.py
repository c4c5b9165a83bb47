"""A content-addressed feature store: extract once per (encoder, preprocessing, images, split, kind).

Layout: ``<root>/<key>/{<kind>.npy, ids.json, meta.json}``. A key directory is written to a
temporary sibling and renamed into place, so a crash never leaves a half-written entry that
a later run would trust.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from xrbench.atomic import publish_dir

KINDS = ("global", "patches")


def feature_key(*, encoder: dict, preprocessing: dict, dataset: str, image_manifest: str,
                split: str, kind: str) -> str:
    """Stable hash of everything the features depend on."""
    payload = {"encoder": {k: encoder.get(k) for k in ("name", "architecture", "weights_sha256",
                                                        "weights", "extra")},
               "preprocessing": preprocessing, "dataset": dataset, "images": image_manifest,
               "split": split, "kind": kind, "format": 1}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


class FeatureStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key

    def has(self, key: str) -> bool:
        return (self.path(key) / "meta.json").is_file()

    def load(self, key: str, *, mmap: bool = True) -> tuple[np.ndarray, list[str]]:
        d = self.path(key)
        arr = np.load(d / "features.npy", mmap_mode="r" if mmap else None)
        ids = json.loads((d / "ids.json").read_text())
        return arr, ids

    def save(self, key: str, array: np.ndarray, ids: list[str], meta: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{key}."))
        try:
            np.save(tmp / "features.npy", array)
            (tmp / "ids.json").write_text(json.dumps(ids))
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
            final = self.path(key)
            if final.exists():  # another process won the race: theirs is as good as ours
                shutil.rmtree(tmp)
                return
            publish_dir(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

"""The pretraining-leak check: does an encoder's pretraining set hold images of a task's test split?

An encoder may publish what it was pretrained on (RAD-DINO lists its images); a test image seen in
pretraining inflates its numbers. A manifest is a CSV with a header naming at least one of these
columns (case-insensitive), each matched against the test split:

- ``file`` / ``filename`` / ``image`` / ``path``: the image's path, matched on its last components
  (``view1_frontal.jpg`` matches every image of that name; ``patient00042/study1/view1_frontal.jpg``
  only that one: CheXpert repeats file names across studies);
- ``patient`` / ``patient_id`` / ``subject_id``: the sample's patient id;
- ``study`` / ``study_id``: the sample's study (its group: a MURA study, a MIMIC study);
- ``sha256``: the SHA-256 of the image file's bytes (test images are hashed only when given).

A test sample matches when any of its keys is listed. The record says ``pretraining_overlap``:
``{"status": "none" | "overlap" | "unknown", "n": k, "ids": [first 20 sample ids]}``; without a
manifest the status is ``unknown``. Leaderboards mark leaked rows or leave them out
(``xrbench leaderboard --leaked mark|refuse``).
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Sequence

from xrbench.data.sample import Sample
from xrbench.errors import DataError

COLUMNS = {"file": "file", "filename": "file", "image": "file", "path": "file",
           "patient": "patient", "patient_id": "patient", "subject_id": "patient",
           "study": "study", "study_id": "study", "sha256": "sha256"}
#: how many matching test ids a record lists
SHOW = 20
UNKNOWN = {"status": "unknown", "n": None, "ids": []}


@dataclass
class Manifest:
    path: str
    keys: dict[str, set[str]] = field(default_factory=dict)  # kind -> listed values


def read_manifest(path: str | Path) -> Manifest:
    """The keys a manifest CSV lists, by kind; a file without a known column is a data error."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = {h: COLUMNS[h.strip().lower()] for h in reader.fieldnames or [] if h.strip().lower() in COLUMNS}
            if not header:
                raise DataError(f"expected a header with at least one of {sorted(COLUMNS)}; found "
                                f"{reader.fieldnames}", path=path, row=1)
            keys: dict[str, set[str]] = {k: set() for k in header.values()}
            for row in reader:
                for col, kind in header.items():
                    v = (row.get(col) or "").strip()
                    if v:
                        keys[kind].add("/".join(_parts(v)) if kind == "file"
                                       else v.lower() if kind == "sha256" else v)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"not a readable CSV file ({e})", path=path) from None
    return Manifest(str(path), keys)


def _parts(path: str) -> tuple[str, ...]:
    return tuple(p for p in PurePath(str(path).replace("\\", "/")).parts if p not in ("/", ".", ""))


def _file_listed(image: Path, files: set[str]) -> bool:
    parts = _parts(str(image))
    return any("/".join(parts[-j:]) in files for j in range(1, len(parts) + 1))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def overlap(manifest: Manifest | None, samples: Sequence[Sample]) -> dict:
    """The ``pretraining_overlap`` entry of a record for the test ``samples``."""
    if manifest is None:
        return dict(UNKNOWN)
    k = manifest.keys
    hits = []
    for s in samples:
        if (_file_listed(s.image, k.get("file", set()))
                or s.patient in k.get("patient", ())
                or (s.group is not None and s.group in k.get("study", ()))
                or ("sha256" in k and Path(s.image).is_file() and _sha256(Path(s.image)) in k["sha256"])):
            hits.append(s.id)
    return {"status": "overlap" if hits else "none", "n": len(hits), "ids": hits[:SHOW],
            "manifest": manifest.path}

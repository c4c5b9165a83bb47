"""Paths that come from dataset files: joined safely, found tolerantly."""
from __future__ import annotations

import os
from pathlib import Path

from xrbench.errors import DataError


def safe_join(root: Path, relative: str, *, source: Path | None = None, row: int | None = None) -> Path:
    """``root / relative``, refusing absolute paths and ``..`` that would leave ``root``."""
    rel = str(relative).strip().replace("\\", "/")
    if not rel or rel.startswith("/") or (len(rel) > 1 and rel[1] == ":"):
        raise DataError(f"image path {relative!r} must be relative to the dataset root",
                        path=source or root, row=row)
    root_abs = Path(os.path.abspath(root))
    joined = Path(os.path.abspath(root_abs / rel))
    if joined != root_abs and root_abs not in joined.parents:
        raise DataError(f"image path {relative!r} escapes the dataset root {root_abs}",
                        path=source or root, row=row)
    return joined


def locate_root(root: Path, marker: str, *alternatives: str) -> Path:
    """Accept the dataset folder itself or its parent: return the folder that contains ``marker``.

    ``marker`` is a relative path (file or folder) that only the dataset folder holds;
    ``alternatives`` are other spellings of it (e.g. ``train.csv.gz``), any of which will do.
    """
    root = Path(root).expanduser()
    markers = (marker, *alternatives)
    if not root.exists():
        raise DataError("dataset root does not exist", path=root)
    if any((root / m).exists() for m in markers):
        return root
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        if any((child / m).exists() for m in markers):
            return child
    expected = " or ".join(f"'{m}'" for m in markers)
    raise DataError(f"not a dataset root: expected {expected} in it or in one of its sub-folders", path=root)


def index_by_name(root: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Every file under root with one of ``suffixes``, keyed by file name (first one found wins).

    For datasets whose mirrors nest images differently (NIH ``images_0XX/images``, SIIM UID trees).
    """
    suffixes = tuple(s.lower() for s in suffixes)
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            if f.lower().endswith(suffixes) and f not in found:
                found[f] = Path(dirpath) / f
    return found


def find_dir(root: Path, name: str, *, max_depth: int = 4) -> Path | None:
    """The shallowest folder called ``name`` under root (root itself included), or None.

    Breadth-first in sorted order, so the answer is deterministic; for mirrors that nest the
    official folders one or more levels down (ISBI ``RawImage/RawImage``, Kaggle
    ``KneeXrayData/ClsKLData/kneeKL224``).
    """
    level = [Path(root)]
    for _ in range(max_depth + 1):
        nxt: list[Path] = []
        for folder in level:
            if folder.name == name and folder.is_dir():
                return folder
            try:
                nxt.extend(sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")))
            except OSError:
                continue
        level = nxt
    return None

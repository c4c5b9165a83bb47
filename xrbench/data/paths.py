"""Paths that come from dataset files: joined safely and fast, found tolerantly.

What is checked when (docs/reliability.md, "Data"):

* :func:`safe_join` (every row, string operations only, no system call): the path is relative,
  in normal form (no ``.``/``..``/empty components, so one image cannot be listed under two
  names) and inside the root by prefix.
* :func:`index_by_name` (one walk): symlinks are seen for free in the directory entries; one
  that leaves the root is an error unless ``allow_symlinks``; a file name found twice is an error.
* :class:`RealPaths` (before any feature is computed, see ``DatasetLoader.image_digests``):
  every image path is resolved with one ``lstat`` per file and per distinct folder, and a
  symlink below the root that leads out of it is an error unless ``allow_symlinks``.
"""
from __future__ import annotations

import os
import stat
from functools import lru_cache
from pathlib import Path

from xrbench.errors import DataError

#: locate_root and friends look this many folder levels below the given root
MAX_DEPTH = 4
#: a folder with more sub-folders than this is an image tree (patients, studies, UIDs), not a
#: download wrapper: the root search does not descend into it
MAX_FANOUT = 256
#: folders the root search never enters (archive-tool litter)
_SKIP = ("__MACOSX",)
SYMLINK_HINT = "pass allow_symlinks=True (xrbench data check --allow-symlinks) if the storage is symlinked"


@lru_cache(maxsize=64)
def _abs_root(root: str) -> str:
    return os.path.abspath(root)


@lru_cache(maxsize=64)
def _root_path(root: str) -> Path:
    return Path(_abs_root(root))


def check_relative(relative: str, *, root: Path, source: Path | None = None, row: int | None = None,
                   what: str = "image path") -> str:
    """``relative`` (backslashes read as ``/``) checked to be a plain relative path in normal form;
    ``what`` names it in errors (an image path, a spec's ``root``)."""
    rel = str(relative).strip().replace("\\", "/")
    if not rel or rel.startswith("/") or (len(rel) > 1 and rel[1] == ":"):
        raise DataError(f"{what} {relative!r} must be relative to the dataset root",
                        path=source or root, row=row)
    if "//" in rel or rel.endswith("/") or "/." in "/" + rel:
        norm = os.path.normpath(rel)
        if norm == ".." or norm.startswith("../"):
            raise DataError(f"{what} {relative!r} escapes the dataset root {_abs_root(str(root))}",
                            path=source or root, row=row)
        if norm != rel:
            raise DataError(f"{what} {relative!r} is not in normal form (it means {norm!r}); '.', '..' "
                            "and empty parts are refused so that no image is listed under two names",
                            path=source or root, row=row)
    return rel


def safe_join(root: Path, relative: str, *, source: Path | None = None, row: int | None = None,
              what: str = "image path") -> Path:
    """``root / relative`` (absolute), refusing absolute paths, aliases and ``..`` that would leave
    ``root``. String operations only: cheap enough for every row of a 377k-row table."""
    rel = check_relative(relative, root=root, source=source, row=row, what=what)
    return _root_path(str(root)) / rel


def inside(path: str, root: str) -> bool:
    """Whether absolute, normalised ``path`` is ``root`` or below it (string prefix)."""
    return path == root or path.startswith(root.rstrip("/") + "/")


class RealPaths:
    """Resolves many paths below one root with one ``lstat`` per file and per distinct folder.

    ``real(path)`` returns the resolved path and whether a symlink was crossed below the root;
    ``check(path)`` also enforces the symlink policy: a symlink whose target is outside the
    (resolved) root is a DataError unless ``allow_symlinks``.
    """

    def __init__(self, root: Path, *, allow_symlinks: bool = False):
        self.root = _abs_root(str(root))
        self.real_root = os.path.realpath(self.root)
        self.allow_symlinks = allow_symlinks
        self._dirs: dict[str, tuple[str, bool]] = {self.root: (self.real_root, False)}

    def _dir(self, d: str) -> tuple[str, bool]:
        hit = self._dirs.get(d)
        if hit is not None:
            return hit
        parent = os.path.dirname(d)
        if parent == d or not inside(d, self.root):  # outside the root: resolve it as a whole
            out = (os.path.realpath(d), False)
        else:
            real_parent, crossed = self._dir(parent)
            joined = os.path.join(real_parent, os.path.basename(d))
            try:
                is_link = stat.S_ISLNK(os.lstat(joined).st_mode)
            except OSError:
                is_link = False
            out = (os.path.realpath(joined), True) if is_link else (joined, crossed)
        self._dirs[d] = out
        return out

    def real(self, path: str | Path) -> tuple[str, bool, os.stat_result | None]:
        """(resolved path, crossed a symlink below the root, stat of the file or None if absent)."""
        p = os.path.abspath(path)
        real_dir, crossed = self._dir(os.path.dirname(p))
        real = os.path.join(real_dir, os.path.basename(p))
        try:
            st = os.lstat(real)
        except OSError:
            return real, crossed, None
        if stat.S_ISLNK(st.st_mode):
            real, crossed = os.path.realpath(real), True
            try:
                st = os.stat(real)
            except OSError:
                return real, crossed, None
        return real, crossed, st

    def check(self, path: str | Path, *, what: str = "image") -> tuple[str, os.stat_result | None]:
        real, crossed, st = self.real(path)
        if crossed and not self.allow_symlinks and not inside(real, self.real_root):
            raise DataError(f"{what} is reached through a symlink that leaves the dataset root "
                            f"{self.real_root} (it resolves to {real}); {SYMLINK_HINT}", path=path)
        return real, st


def locate_root(root: Path, marker: str, *alternatives: str, max_depth: int = MAX_DEPTH) -> Path:
    """The folder at or below ``root`` (up to ``max_depth`` levels) that contains ``marker``.

    ``marker`` is a relative path (file or folder) that only the dataset folder holds;
    ``alternatives`` are other spellings of it (e.g. ``train.csv.gz``), any of which will do.
    Breadth-first, so the shallowest wins: downloads nest the dataset folder (PhysioNet's
    ``physionet.org/files/<name>/<version>/``, Kaggle's zips in zips, figshare's doubled folder).
    Two candidates at the same depth are an error that lists them: xrbench does not guess which
    copy (or version) you meant.
    """
    root = Path(root).expanduser()
    markers = (marker, *alternatives)
    if not root.exists():
        raise DataError("dataset root does not exist", path=root)
    level = [root]
    for depth in range(max_depth + 1):
        hits = [d for d in level if any((d / m).exists() for m in markers)]
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise DataError(f"{len(hits)} candidate dataset folders found: {', '.join(map(str, hits))}; "
                            "point the root at one of them", path=root)
        if depth < max_depth:
            level = [c for d in level for c in _subfolders(d)]
    expected = " or ".join(f"'{m}'" for m in markers)
    raise DataError(f"not a dataset root: expected {expected} in it or in a sub-folder up to {max_depth} "
                    "levels deep", path=root)


def _subfolders(folder: Path) -> list[Path]:
    """Sorted visible sub-folders, or none when ``folder`` is an image tree (see ``MAX_FANOUT``)."""
    try:
        with os.scandir(folder) as it:
            subs = [Path(e.path) for e in it if e.is_dir() and not e.name.startswith(".") and e.name not in _SKIP]
    except OSError:
        return []
    return sorted(subs) if len(subs) <= MAX_FANOUT else []


def index_by_name(root: Path, suffixes: tuple[str, ...], *, allow_symlinks: bool = False) -> dict[str, Path]:
    """Every file under root with one of ``suffixes``, keyed by file name.

    For datasets whose mirrors nest images differently (NIH ``images_0XX/images``, SIIM UID trees).
    One ``scandir`` walk in sorted order. A file name found twice is an error naming both copies
    (the loader could only guess which one the table means). Symlinks: one that leaves the root is
    an error and symlinked folders inside it are not entered (their files are reachable directly),
    unless ``allow_symlinks``, which follows every symlink.
    """
    suffixes = tuple(s.lower() for s in suffixes)
    found: dict[str, Path] = {}
    real_root = os.path.realpath(root)
    seen_dirs: set[str] = set()
    stack = [os.path.abspath(root)]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for e in entries:
            if e.name.startswith("._"):
                continue
            link = e.is_symlink()
            if link:
                target = os.path.realpath(e.path)
                if not allow_symlinks and not inside(target, real_root):
                    raise DataError(f"symlink to {target}, outside the dataset root {real_root}; {SYMLINK_HINT}",
                                    path=e.path)
            if e.is_dir():
                if link and not allow_symlinks:
                    continue
                key = os.path.realpath(e.path) if link else e.path
                if key not in seen_dirs:  # a symlink loop is entered once
                    seen_dirs.add(key)
                    subdirs.append(e.path)
            elif e.name.lower().endswith(suffixes):
                if e.name in found:
                    raise DataError(f"file name {e.name} is found twice ({found[e.name]} and {e.path}); "
                                    "point the root at one copy of the dataset", path=root)
                found[e.name] = Path(e.path)
        stack.extend(reversed(subdirs))
    return found


def find_dir(root: Path, name: str, *, max_depth: int = MAX_DEPTH) -> Path | None:
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

"""Writes that never leave a half-written file (a temporary sibling, then an atomic rename), and
the folder lock that serialises processes updating the same files."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def folder_lock(folder: str | Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``folder`` itself, so no lock file lands among the results.

    Without ``fcntl`` (Windows), or where the file system refuses to lock a folder (some NFS
    set-ups), the block runs unlocked: safe for one process at a time.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)  # releases the lock


def _umask_mode(mode: int = 0o666) -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder (normal permissions)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, _umask_mode())  # mkstemp makes 0600; results and images are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def publish_dir(tmp: Path, final: Path) -> None:
    """Rename a fully written temporary folder into place, readable like a normal folder."""
    os.chmod(tmp, _umask_mode(0o777))
    os.replace(tmp, final)

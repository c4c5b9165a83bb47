"""Content digests of image files, computed once per file version and remembered across runs.

The feature cache is keyed on what the images *contain* (an image edited in place at the same
size must get new features), and splits are checked to share no image content. Hashing 377k
files on every run would cost minutes, so a digest is memoised on (resolved path, size,
mtime_ns): in-process, and in an SQLite file ``$XRBENCH_HOME/digests/digests.sqlite`` shared by
concurrent processes (SQLite's own locking; a memo that cannot be opened or written only costs
time, so it is reported once and the digests are computed anyway).
"""
from __future__ import annotations

import os
import sqlite3
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import xxhash

#: digest of a file that does not exist (kept in manifests so that a missing image changes them)
MISSING = "missing"
_CHUNK = 1 << 20
_memo: dict[str, tuple[int, int, str]] = {}
_lock = threading.Lock()
_warned = False


def xxh3_file(path: str | Path) -> str:
    """xxh3-128 hex digest of a file's bytes (streamed in 1 MiB chunks)."""
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def file_digest(path: str | Path) -> str:
    """The xxh3-128 digest of ``path``'s bytes, memoised on (resolved path, size, mtime_ns)."""
    real = os.path.realpath(path)
    return file_digests([(real, os.stat(real))])[0]


def file_digests(files: list[tuple[str, os.stat_result | None]], *, workers: int = 8) -> list[str]:
    """Digests of already-resolved paths with their ``stat`` (None: missing -> ``MISSING``).

    Looks each file up in the in-process memo, then in the persistent memo, and hashes the rest on
    ``workers`` threads (reading and xxhash release the GIL); new digests are written back in one
    transaction.
    """
    out: list[str | None] = [None] * len(files)
    todo: list[int] = []
    for i, (real, st) in enumerate(files):
        if st is None:
            out[i] = MISSING
            continue
        hit = _memo.get(real)
        if hit is not None and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            out[i] = hit[2]
        else:
            todo.append(i)
    if not todo:
        return out  # type: ignore[return-value]
    db = _open()
    if db is not None:
        todo = _from_db(db, files, todo, out)
    if todo:
        def one(i: int) -> str:
            try:
                return xxh3_file(files[i][0])
            except OSError:
                return MISSING  # vanished or unreadable: data check reports it; the manifest changes

        with ThreadPoolExecutor(max(1, min(workers, len(todo)))) as pool:
            for i, digest in zip(todo, pool.map(one, todo)):
                out[i] = digest
        fresh = [(files[i][0], files[i][1].st_size, files[i][1].st_mtime_ns, out[i]) for i in todo
                 if out[i] != MISSING]
        with _lock:
            for real, size, mtime, digest in fresh:
                _memo[real] = (size, mtime, digest)
        if db is not None and fresh:
            try:
                with db:
                    db.executemany("INSERT OR REPLACE INTO memo VALUES (?, ?, ?, ?)", fresh)
            except sqlite3.Error as e:
                _warn(f"cannot write the digest memo ({e})")
    if db is not None:
        db.close()
    return out  # type: ignore[return-value]


def memo_path() -> Path:
    from xrbench.data.demo import xrbench_home

    return xrbench_home() / "digests" / "digests.sqlite"


def _open(retry: bool = True) -> sqlite3.Connection | None:
    """The persistent memo; a file that is not an SQLite database is moved aside and replaced."""
    path = memo_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=60)
        db.execute("CREATE TABLE IF NOT EXISTS memo (path TEXT PRIMARY KEY, size INTEGER, "
                   "mtime_ns INTEGER, digest TEXT)")
        db.commit()
        return db
    except sqlite3.DatabaseError as e:
        if retry and "not a database" in str(e):
            aside = path.with_name(f"{path.name}.corrupt-{os.getpid()}")
            os.replace(path, aside)
            print(f"[xrbench] the digest memo {path} was not a database; moved to {aside}", file=sys.stderr)
            return _open(retry=False)
        _warn(f"cannot open the digest memo {path} ({e})")
        return None
    except OSError as e:
        _warn(f"cannot open the digest memo {path} ({e})")
        return None


def _from_db(db: sqlite3.Connection, files, todo: list[int], out: list) -> list[int]:
    """Fill ``out`` from the persistent memo; the indices still to hash."""
    rest = []
    try:
        for i in todo:
            real, st = files[i]
            row = db.execute("SELECT size, mtime_ns, digest FROM memo WHERE path = ?", (real,)).fetchone()
            if row is not None and row[0] == st.st_size and row[1] == st.st_mtime_ns:
                out[i] = row[2]
                _memo[real] = (st.st_size, st.st_mtime_ns, row[2])
            else:
                rest.append(i)
    except sqlite3.Error as e:
        _warn(f"cannot read the digest memo ({e})")
        return [i for i in todo if out[i] is None]
    return rest


def _warn(message: str) -> None:
    global _warned
    if not _warned:
        print(f"[xrbench] {message}; digests are computed without it", file=sys.stderr)
        _warned = True

"""A content-addressed feature store: extract once per (encoder, preprocessing, images, split, kind).

Layout: ``<root>/<key>/{features.npy, geometry.npy, ids.json, meta.json}``. Global features are
float32, patch grids float16 ``[N, h, w, D]``; both are memory-mapped on load, so a split of any
size is never copied whole into RAM. ``geometry.npy`` holds each image's original height and width,
padded side, top and left padding, and input size (:class:`xrbench.features.preprocess.Geometry`),
so boxes, masks and landmarks map into grid space and predictions back to original pixels.

Writing streams: :class:`PartialEntry` preallocates the arrays in ``<root>/.partial-<key>/``,
writes each batch's rows with plain file writes (:class:`NpyRows`: no mapping, so the writer's
memory stays bounded by a batch) and records each completed chunk in ``progress.json``; an interrupted extraction resumes from its last
complete chunk, and the finished folder is renamed into place, so a crash never leaves an entry a
later run would trust. ``meta.json`` records each array's shape, dtype and xxh3 checksum: an entry
that fails verification is reported by name, moved aside into ``.quarantine/`` and rebuilt. It also
lists (``truncated``) the ids of rows whose image file was truncated and decoded partially, which
the runner turns into a ``truncated_images`` warning on every task that uses them.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
import warnings
from pathlib import Path

import numpy as np

from xrbench.atomic import atomic_write_text, folder_lock, publish_dir

FORMAT = 2
#: arrays up to this size are checksummed on every load; larger ones by ``verify(full=True)``
VERIFY_ON_LOAD_BYTES = 256 << 20


def feature_key(*, encoder: dict, preprocessing: dict, dataset: str, image_manifest: str,
                split: str, kind: str) -> str:
    """Stable hash of everything the features depend on."""
    payload = {"encoder": {k: encoder.get(k) for k in ("name", "architecture", "weights_sha256",
                                                        "weights", "extra")},
               "preprocessing": preprocessing, "dataset": dataset, "images": image_manifest,
               "split": split, "kind": kind, "format": FORMAT}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def checksum(path: Path) -> str:
    """xxh3-128 of a file, streamed (GB/s; blake2b where xxhash is missing)."""
    try:
        import xxhash

        h = xxhash.xxh3_128()
    except ImportError:  # pragma: no cover - xxhash is a dependency
        h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


class CorruptEntry(Exception):
    """A store entry whose files do not match its meta.json."""


class FeatureStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key

    def has(self, key: str) -> bool:
        return (self.path(key) / "meta.json").is_file()

    def load(self, key: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(features memmap, geometry [N, 6], ids) of a verified entry; raises :class:`CorruptEntry`."""
        d = self.path(key)
        try:
            meta = json.loads((d / "meta.json").read_text())
            ids = json.loads((d / "ids.json").read_text())
            arrays = {}
            for name in ("features", "geometry"):
                f = d / f"{name}.npy"
                info = meta["arrays"][name]
                if info["bytes"] <= VERIFY_ON_LOAD_BYTES and checksum(f) != info["xxh3"]:
                    raise CorruptEntry(f"{f.name} does not match its checksum")
                arrays[name] = np.load(f, mmap_mode="r")
                if list(arrays[name].shape) != info["shape"] or str(arrays[name].dtype) != info["dtype"]:
                    raise CorruptEntry(f"{f.name} has shape {arrays[name].shape} {arrays[name].dtype}, "
                                       f"meta.json says {info['shape']} {info['dtype']}")
        except CorruptEntry:
            raise
        except (OSError, ValueError, KeyError, TypeError) as e:  # truncated, missing, not JSON
            raise CorruptEntry(f"{e.__class__.__name__}: {e}") from None
        if len(ids) != len(arrays["features"]):
            raise CorruptEntry(f"{len(ids)} ids for {len(arrays['features'])} rows")
        return arrays["features"], np.asarray(arrays["geometry"]), ids

    def truncated(self, key: str) -> list[str]:
        """Ids of the entry's rows whose image file was truncated (decoded partially), in row order.
        meta.json ``truncated``; absent (entries without such rows, older entries) means none."""
        try:
            got = json.loads((self.path(key) / "meta.json").read_text()).get("truncated", [])
        except (OSError, ValueError, AttributeError) as e:
            raise CorruptEntry(f"meta.json: {e.__class__.__name__}: {e}") from None
        if not isinstance(got, list):
            raise CorruptEntry(f"meta.json: 'truncated' is {type(got).__name__}, not a list of ids")
        return [str(i) for i in got]

    def verify(self, key: str, *, full: bool = True) -> str | None:
        """None when the entry is sound, else what is wrong (every array checksummed if ``full``)."""
        try:
            self.load(key)
            if full:
                meta = json.loads((self.path(key) / "meta.json").read_text())
                for name, info in meta["arrays"].items():
                    if checksum(self.path(key) / f"{name}.npy") != info["xxh3"]:
                        return f"{name}.npy does not match its checksum"
        except CorruptEntry as e:
            return str(e)
        return None

    def quarantine(self, key: str, why: str) -> Path:
        """Move a bad entry aside (kept for inspection, never read again) and say so."""
        dest = self.root / ".quarantine" / f"{key}-{time.strftime('%Y%m%dT%H%M%S')}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.path(key).rename(dest)
        except OSError:
            shutil.rmtree(self.path(key), ignore_errors=True)
        warnings.warn(f"feature store entry {self.path(key)} is corrupt ({why}); moved to {dest} and "
                      f"rebuilt", stacklevel=2)
        return dest

    def keys(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if self.root.is_dir() else []

    def locked(self):
        """An exclusive lock on the store while one process builds entries: a second run sharing
        the store waits, then finds them published, instead of writing the same partial entry."""
        return folder_lock(self.root)

    def partial(self, key: str) -> "PartialEntry":
        return PartialEntry(self, key)


class NpyRows:
    """Row-wise pwrite/pread access to a ``.npy`` file: written chunks go through the page cache,
    not through a mapping, so the writer's resident memory stays bounded by one chunk whatever the
    array's size (a memory map would keep every written page in the process's RSS)."""

    def __init__(self, path: Path, shape: tuple | None = None, dtype: str | None = None):
        self.path = Path(path)
        if shape is not None:  # create: header + a sparse body of the final size
            np.lib.format.open_memmap(self.path, mode="w+", dtype=dtype, shape=tuple(shape))._mmap.close()
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            self.shape, fortran, self.dtype = read_header(f)
            self.offset = f.tell()
        if fortran:
            raise CorruptEntry(f"{self.path.name} is Fortran-ordered")
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def write(self, start: int, rows: np.ndarray) -> None:
        data = np.ascontiguousarray(rows, dtype=self.dtype).tobytes()
        with open(self.path, "r+b") as f:
            f.seek(self.offset + start * self.row_bytes)
            f.write(data)

    def read(self, start: int, stop: int) -> np.ndarray:
        with open(self.path, "rb") as f:
            f.seek(self.offset + start * self.row_bytes)
            buf = f.read((stop - start) * self.row_bytes)
        return np.frombuffer(buf, dtype=self.dtype).reshape((stop - start, *self.shape[1:]))

    def __len__(self) -> int:
        return int(self.shape[0])


class PartialEntry:
    """An entry being written chunk by chunk; resumable after a crash, published when complete."""

    def __init__(self, store: FeatureStore, key: str):
        self.store, self.key = store, key
        self.dir = store.root / f".partial-{key}"
        self.progress_path = self.dir / "progress.json"

    def saved_done(self) -> int:
        """Rows an interrupted run committed (0 when there is no partial entry)."""
        try:
            return int(json.loads(self.progress_path.read_text())["done"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def saved_truncated(self) -> list[str]:
        """Ids of truncated images among the committed rows (see :meth:`commit`); [] when none."""
        try:
            return [str(i) for i in json.loads(self.progress_path.read_text()).get("truncated", [])]
        except (OSError, ValueError, TypeError, AttributeError):
            return []

    def progress(self, n: int, shape: tuple, dtype: str) -> int:
        """Rows already written by an earlier, interrupted run of the same extraction (else 0)."""
        try:
            p = json.loads(self.progress_path.read_text())
            if p["n"] == n and p["shape"] == list(shape) and p["dtype"] == dtype:
                return int(p["done"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return 0

    def open(self, n: int, row_shape: tuple, dtype: str) -> tuple[NpyRows, NpyRows, int]:
        """(features writer, geometry writer, rows already done), created or reopened."""
        shape = (n, *row_shape)
        done = self.progress(n, shape, dtype)
        if done == 0:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir.mkdir(parents=True, exist_ok=True)
            return (NpyRows(self.dir / "features.npy", shape, dtype),
                    NpyRows(self.dir / "geometry.npy", (n, 6), "int32"), 0)
        return NpyRows(self.dir / "features.npy"), NpyRows(self.dir / "geometry.npy"), done

    def reopen(self) -> tuple[NpyRows, NpyRows]:
        return NpyRows(self.dir / "features.npy"), NpyRows(self.dir / "geometry.npy")

    def commit(self, feats: NpyRows, geo: NpyRows, done: int, truncated: list[str] | None = None) -> None:
        """Rows ``[0, done)`` are written: record it, with the ids of the truncated images among
        them (a resumed run does not decode those rows again), atomically."""
        atomic_write_text(self.progress_path, json.dumps(
            {"n": len(feats), "shape": list(feats.shape), "dtype": str(feats.dtype), "done": int(done),
             **({"truncated": list(truncated)} if truncated else {})}))

    def publish(self, ids: list[str], meta: dict) -> None:
        """Write ids and meta (with checksums) and rename the folder into place."""
        arrays = {}
        for name in ("features", "geometry"):
            f = self.dir / f"{name}.npy"
            rows = NpyRows(f)
            arrays[name] = {"shape": list(rows.shape), "dtype": str(rows.dtype), "bytes": f.stat().st_size,
                            "xxh3": checksum(f)}
        (self.dir / "ids.json").write_text(json.dumps(ids))
        self.progress_path.unlink(missing_ok=True)
        (self.dir / "meta.json").write_text(json.dumps({**meta, "arrays": arrays, "format": FORMAT},
                                                       indent=1, sort_keys=True, default=str))
        final = self.store.path(self.key)
        if final.exists():  # another process won the race: theirs is as good as ours
            shutil.rmtree(self.dir, ignore_errors=True)
            return
        publish_dir(self.dir, final)

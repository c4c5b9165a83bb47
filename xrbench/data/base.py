"""The dataset-loader contract, and the helpers every loader shares (splits, manifests).

A loader reads one dataset exactly as its owners distribute it and returns :class:`Sample` s with
the split names ``train``/``val``/``test``. Each loader module also *writes* that layout from the
synthetic phantom (``write_demo``), so the demo data travels through the real reading code.
"""
from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from xrbench.data.digest import MISSING, file_digests
from xrbench.data.paths import RealPaths, inside
from xrbench.data.sample import SPLITS, Sample
from xrbench.errors import ConfigError, DataError


class DatasetLoader(ABC):
    """Base class of every registered dataset.

    Subclasses set the class metadata, implement :meth:`load` and :meth:`write_demo`, and are
    registered with ``@DATASETS.register("name")``. ``options`` are the dataset's declared
    policies (e.g. VinDr's reader aggregation); unknown options are errors.

    ``allow_symlinks`` (every dataset; ``xrbench data check --allow-symlinks``): accept images
    reached through symlinks that lead out of the dataset root, for storage that is symlinked.
    By default such a symlink is a DataError (docs/reliability.md, "Data").
    """

    name: ClassVar[str] = ""
    anatomy: ClassVar[str] = ""
    title: ClassVar[str] = ""
    source: ClassVar[str] = ""
    licence: ClassVar[str] = ""
    label_names: ClassVar[tuple[str, ...]] = ()
    #: option name -> (default, allowed values or None for free-form)
    options_spec: ClassVar[dict[str, tuple[Any, tuple | None]]] = {}
    #: images the demo writes by default (kept small: ``make run`` has to fit 10 minutes on 2 cores)
    demo_size: ClassVar[int] = 200
    #: True when the official splits are known to share patients and are used as published (a
    #: user cannot mend them): ``xrbench data check`` lists such patients instead of failing
    official_splits_share_patients: ClassVar[bool] = False

    def __init__(self, root: str | Path, *, seed: int = 0, allow_symlinks: bool = False, **options: Any):
        self.root = Path(root).expanduser()
        self.seed = seed
        if not isinstance(allow_symlinks, bool):
            raise ConfigError(f"dataset '{self.name}': allow_symlinks={allow_symlinks!r}; expected true or false")
        self.allow_symlinks = allow_symlinks
        #: roots the images live under (a loader whose images are elsewhere, e.g. MS-CXR's MIMIC
        #: tree, appends that root in ``load``); the symlink policy is checked against them
        self.image_roots: list[Path] = [self.root]
        self._digests: dict[str, str] = {}
        self._seen_real: dict[str, Sample] = {}
        self._seen_content: dict[str, Sample] = {}
        self.options: dict[str, Any] = self.check_options(options)
        self._samples: list[Sample] | None = None

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """The declared options with their defaults filled in; unknown or disallowed ones are errors."""
        unknown = sorted(set(options) - set(cls.options_spec))
        if unknown:
            raise ConfigError(f"dataset '{cls.name}': unknown option(s) {unknown}; "
                              f"known: {sorted(cls.options_spec)}")
        out: dict[str, Any] = {}
        for key, (default, allowed) in cls.options_spec.items():
            value = options.get(key, default)
            if allowed is not None and value not in allowed:
                raise ConfigError(f"dataset '{cls.name}': option {key}={value!r} not in {list(allowed)}")
            out[key] = value
        return out

    # -- to implement ---------------------------------------------------------------------
    @abstractmethod
    def load(self) -> list[Sample]:
        """All samples of every split, in a deterministic order."""

    @classmethod
    @abstractmethod
    def write_demo(cls, dest: Path, *, n: int, seed: int) -> None:
        """Write ``n`` phantom images in this dataset's official layout under ``dest``.

        ``dest`` is what a user would pass as ``--data-root`` for this dataset.
        """

    # -- shared -----------------------------------------------------------------------------
    def samples(self) -> list[Sample]:
        """Every sample, checked: ids unique, and no image path used twice (so no split shares an
        image with another; by normalised path here, by resolved path and content digest in
        :meth:`image_digests`)."""
        if self._samples is None:
            samples = self.load()
            seen: set[str] = set()
            for s in samples:
                if s.id in seen:
                    raise DataError(f"loader produced duplicate sample id {s.id!r}", path=self.root)
                seen.add(s.id)
            check_disjoint_splits(samples, [os.path.abspath(s.image) for s in samples])
            self._samples = samples
        return self._samples

    def split(self, name: str) -> list[Sample]:
        if name not in SPLITS:
            raise ConfigError(f"unknown split {name!r}; expected one of {SPLITS}")
        return [s for s in self.samples() if s.split == name]

    def manifest_hash(self, split: str | None = None) -> str:
        """Hash of what the dataset *is* for a split: ids, image paths relative to root, labels."""
        samples = self.samples() if split is None else self.split(split)
        return manifest_hash(samples, self.root)

    def report_extra(self) -> dict[str, int | list[str]]:
        """Loader-specific counts that ``xrbench data check`` prints after loading (optional hook).

        Override to report what the loader set aside by a documented policy, e.g.
        ``{"unlabelled": [ids of images without a CSV row]}``; values are ints or lists of strings.
        A non-empty ``missing`` entry (rows of the dataset files whose image is absent, so that no
        sample could be built for them) makes the check fail.
        """
        return {}

    def image_manifest_hash(self, samples: list[Sample], digests: list[str] | None = None) -> str:
        """Hash of the images only (ids, relative paths, content digests): the feature-cache key.

        Computing it runs :meth:`image_digests` (unless the caller ran it and passes ``digests``),
        so the symlink policy and the split checks on resolved paths and content hold for every
        image before any feature is computed.
        """
        digests = self.image_digests(samples) if digests is None else digests
        h = hashlib.sha256()
        rel = _Relative(self.root)
        for s, d in zip(samples, digests):
            h.update(f"{s.id}\t{rel(s.image)}\t{d}\n".encode())
        return h.hexdigest()[:16]

    def image_digests(self, samples: list[Sample]) -> list[str]:
        """Content digest of each sample's image (``MISSING`` when absent), memoised
        (:mod:`xrbench.data.digest`), after three checks that raise a DataError naming both
        samples: a symlink leaving the root (unless ``allow_symlinks``), two samples that resolve
        to the same file, and two samples of different splits with the same content. The checks
        cover every image digested by this loader so far, so the splits of a run are checked
        against each other even when each is hashed on its own."""
        self._scan(samples, collect=False)
        return [self._digests[str(s.image)] for s in samples]

    def audit_images(self, samples: list[Sample]) -> list[str]:
        """The same checks as :meth:`image_digests` over ``samples``, as messages instead of an
        exception (``xrbench data check`` lists every problem)."""
        return self._scan(samples, collect=True)

    def _scan(self, samples: list[Sample], *, collect: bool) -> list[str]:
        problems: list[str] = []

        def fail(message: str, path: Path | None = None) -> None:
            if not collect:
                raise DataError(message, path=path)
            problems.append(f"{path}: {message}" if path is not None else message)

        guards = [RealPaths(r, allow_symlinks=self.allow_symlinks) for r in dict.fromkeys(self.image_roots)]
        todo, stats = [], []
        for s in samples:
            key = str(s.image)
            if key in self._digests:
                continue
            p = os.path.abspath(key)
            guard = next((g for g in guards if inside(p, g.root)), guards[0])
            try:
                real, st = guard.check(p, what=f"sample {s.id}")
            except DataError as e:
                if not collect:
                    raise
                problems.append(str(e))
                continue
            todo.append((s, real))
            stats.append((real, st))
        digests = file_digests(stats)
        for (s, real), (_, st), digest in zip(todo, stats, digests):
            self._digests[str(s.image)] = digest
            other = self._seen_real.setdefault(real, s)
            if other.id != s.id:
                fail(f"samples {other.id} ({other.split}, {other.image}) and {s.id} ({s.split}, {s.image}) "
                     f"are the same file {real}: an image may be used once", path=self.root)
            if digest == MISSING or st is None or st.st_size == 0:
                continue  # nothing to compare: data check reports missing and empty files
            other = self._seen_content.setdefault(digest, s)
            if other.split != s.split:
                fail(f"samples {other.id} ({other.split}, {other.image}) and {s.id} ({s.split}, {s.image}) "
                     f"have identical content: an image may be used in one split only", path=self.root)
        return problems


class _Relative:
    """Paths relative to a root, by string prefix (the root is resolved once, not per path)."""

    def __init__(self, root: Path):
        self.roots = tuple(dict.fromkeys(r.rstrip("/") + "/" for r in (os.path.abspath(root),
                                                                        os.path.realpath(root))))

    def __call__(self, path: Path | str) -> str:
        p = os.path.abspath(path)
        for r in self.roots:
            if p.startswith(r):
                return p[len(r):]
        return str(path)


def _rel(path: Path, root: Path) -> str:
    return _Relative(root)(path)


def check_disjoint_splits(samples: list[Sample], keys: list[str], *, what: str = "image") -> None:
    """DataError when two samples share a key (their normalised image path, say): an image may
    be used once, so in exactly one split. Names both samples, their splits and files."""
    first: dict[str, Sample] = {}
    for s, key in zip(samples, keys):
        other = first.setdefault(key, s)
        if other is not s:
            where = f"in both {other.split} and {s.split}" if other.split != s.split else f"twice in {s.split}"
            raise DataError(f"{what} {key} is used {where}: samples {other.id} and {s.id} "
                            f"(an image may be used in one split, once)")


def manifest_hash(samples: list[Sample], root: Path) -> str:
    """Hash of every piece of ground truth a task may read: ids, image paths, patient, split,
    labels, target, group, boxes, mask reference, landmarks and spacing, report text, phrases."""
    h = hashlib.sha256()
    rel = _Relative(root)
    for s in samples:
        row = {"id": s.id, "image": rel(s.image), "patient": s.patient, "split": s.split,
               "labels": {k: (None if v != v else v) for k, v in sorted(s.labels.items())},
               "target": s.target, "group": s.group, "boxes": [_box(b) for b in s.boxes],
               "mask": None if s.mask is None else [s.mask.kind, _jsonable(s.mask.source, root), s.mask.height,
                                                    s.mask.width],
               "landmarks": None if s.landmarks is None else _jsonable(s.landmarks, root),
               "spacing_mm": s.spacing_mm, "text": dict(sorted(s.text.items())),
               "phrases": [[p.text, p.category, [_box(b) for b in p.boxes]] for p in s.phrases]}
        h.update(json.dumps(row, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _box(b) -> list:
    return [round(float(v), 4) for v in (b.x0, b.y0, b.x1, b.y1)] + [b.label, b.reader]


def _jsonable(v, root: Path):
    """Mask sources and landmark arrays as plain JSON; a mask file by its path inside the root."""
    if hasattr(v, "tolist"):
        return _jsonable(v.tolist(), root)
    if isinstance(v, (tuple, list)):
        return [_jsonable(x, root) for x in v]
    if isinstance(v, float):
        return None if v != v else round(v, 4)
    return _rel(v, root) if isinstance(v, Path) else v


def patient_split(patients: list[str], *, seed: int, val: float = 0.1, test: float = 0.0,
                  salt: str = "") -> dict[str, str]:
    """A seeded, patient-disjoint assignment patient -> train/val/test.

    Hash-based, so it is stable when patients are added or removed: a patient's split depends only
    on its id, the seed and the salt (the dataset name), never on the order of the file.
    """
    out = {}
    for p in sorted(set(patients)):
        u = int(hashlib.sha256(f"{salt}|{seed}|{p}".encode()).hexdigest()[:12], 16) / 16**12
        out[p] = "test" if u < test else ("val" if u < test + val else "train")
    return out

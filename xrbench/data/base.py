"""The dataset-loader contract, and the helpers every loader shares (splits, manifests).

A loader reads one dataset exactly as its owners distribute it and returns :class:`Sample` s with
the split names ``train``/``val``/``test``. Each loader module also *writes* that layout from the
synthetic phantom (``write_demo``), so the demo data travels through the real reading code.
"""
from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from xrbench.data.sample import SPLITS, Sample
from xrbench.errors import ConfigError, DataError


class DatasetLoader(ABC):
    """Base class of every registered dataset.

    Subclasses set the class metadata, implement :meth:`load` and :meth:`write_demo`, and are
    registered with ``@DATASETS.register("name")``. ``options`` are the dataset's declared
    policies (e.g. VinDr's reader aggregation); unknown options are errors.
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

    def __init__(self, root: str | Path, *, seed: int = 0, **options: Any):
        self.root = Path(root).expanduser()
        self.seed = seed
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
        if self._samples is None:
            samples = self.load()
            ids = [s.id for s in samples]
            if len(set(ids)) != len(ids):
                dup = next(i for i in ids if ids.count(i) > 1)
                raise DataError(f"loader produced duplicate sample id {dup!r}", path=self.root)
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

    def image_manifest_hash(self, samples: list[Sample]) -> str:
        """Hash of the images only (ids, relative paths, file sizes): the feature-cache key."""
        h = hashlib.sha256()
        for s in samples:
            try:
                size = s.image.stat().st_size
            except OSError:
                size = -1
            h.update(f"{s.id}\t{_rel(s.image, self.root)}\t{size}\n".encode())
        return h.hexdigest()[:16]


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def manifest_hash(samples: list[Sample], root: Path) -> str:
    """Hash of every piece of ground truth a task may read: ids, image paths, patient, split,
    labels, target, group, boxes, mask reference, landmarks and spacing, report text, phrases."""
    h = hashlib.sha256()
    for s in samples:
        row = {"id": s.id, "image": _rel(s.image, root), "patient": s.patient, "split": s.split,
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

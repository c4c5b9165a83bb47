"""``xrbench data check``: is a dataset folder what its loader expects, and is every file sound?

Loads the dataset with its registered loader (a :class:`DataError` becomes an ``errors`` entry),
then probes every image (a header read, or a full decode with ``deep``), every mask, the label
values, the cross-split patients, and the images themselves (``DatasetLoader.audit_images``:
symlinks leaving the root, one file used twice, identical content in two splits; this reads
every image once, then the digests are remembered), and summarises each split in one JSON-ready dict whose keys
never change (documented in docs/datasets.md). ``report["ok"]`` is true exactly when ``errors`` is
empty.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from xrbench.data.base import DatasetLoader, _rel
from xrbench.data.demo import dataset_root
from xrbench.data.images import image_size, read_image_partial
from xrbench.data.masks import load_mask
from xrbench.data.sample import SPLITS, UNCERTAIN, Sample
from xrbench.errors import DataError
from xrbench.registry import DATASETS

#: ids or paths an error line names before "... and N more" (the JSON lists keep every one)
SHOWN = 5


@dataclass
class _Probe:
    """What reading one file found: its (height, width), or why it could not be read; ``truncated``
    when a deep read found its data ending early (decoded partially, as a run decodes it)."""

    shape: tuple[int, int] | None = None
    missing: bool = False
    error: str | None = None
    truncated: bool = False


def check_dataset(name: str, root: Path | None = None, *, deep: bool = False,
                  options: dict[str, Any] | None = None, workers: int = 4,
                  allow_symlinks: bool = False) -> dict[str, Any]:
    """The check report of dataset ``name`` at ``root`` (the demo data when None); see module doc."""
    import xrbench.data.datasets  # noqa: F401  (registers the loaders)

    cls = DATASETS.get(name)
    folder = dataset_root(name, root)
    options = dict(options or {})
    allow_symlinks = options.pop("allow_symlinks", False) or allow_symlinks
    loader: DatasetLoader = cls(folder, allow_symlinks=allow_symlinks, **options)
    report: dict[str, Any] = {"dataset": name, "root": str(folder), "ok": False, "manifest_hash": None,
                              "errors": [], "splits": {}, "extra": {}}
    try:
        samples = loader.samples()
    except DataError as e:
        report["errors"].append(str(e))
        return report
    report["manifest_hash"] = loader.manifest_hash()
    errors: list[str] = report["errors"]
    images = _probe_images(samples, deep=deep, workers=workers)
    mask_errors = _probe_masks(samples, images, deep=deep, workers=workers)
    names = list(dict.fromkeys([*loader.label_names, *sorted({k for s in samples for k in s.labels})]))
    classes = _target_classes(samples)
    for split in SPLITS:
        part = [s for s in samples if s.split == split]
        report["splits"][split] = summary = _summarise(part, loader.root, images, mask_errors, names, classes)
        if not part:
            errors.append(f"{split}: no samples (every split needs some; the runner fits on train, "
                          "selects on val and scores test)")
        if summary["missing"]:
            errors.append(f"{split}: {len(summary['missing'])} image(s) missing: {_some(summary['missing'])}")
        if summary["unreadable"]:
            shown = [f"{u['id']} ({u['error']})" for u in summary["unreadable"]]
            errors.append(f"{split}: {len(shown)} file(s) unreadable: {_some(shown)}")
    errors += _label_errors(samples, names) + _target_errors(samples)
    shared = _patients_in_two_splits(samples)
    if not loader.official_splits_share_patients:
        errors += [f"patients in both {a} and {b}: {_some(ids)} ({len(ids)} patient(s))"
                   for (a, b), ids in shared.items()]
    errors += loader.audit_images(samples)  # symlinks out of the root, one file twice, content in two splits
    report["extra"] = extra = _extra(loader)
    if loader.official_splits_share_patients and shared:
        extra["patients_in_two_official_splits"] = sorted({p for ids in shared.values() for p in ids})
    if extra.get("missing"):
        listed = extra["missing"]
        count = listed if isinstance(listed, int) else len(listed)
        errors.append(f"{count} entries of the dataset files have no image (loader's 'missing')"
                      + ("" if isinstance(listed, int) else f": {_some(listed)}"))
    report["ok"] = not errors
    return report


# --------------------------------------------------------------------------- probing files


def _probe_images(samples: list[Sample], *, deep: bool, workers: int) -> dict[Path, _Probe]:
    """Every distinct image: missing, unreadable (header, or full decode when deep), or its size, and
    (deep) whether it is truncated."""
    paths = list(dict.fromkeys(s.image for s in samples))

    def probe(path: Path) -> _Probe:
        if not path.is_file():
            return _Probe(missing=True)
        try:
            if not deep:
                return _Probe(shape=image_size(path))
            img, truncated = read_image_partial(path)
            return _Probe(shape=tuple(img.shape), truncated=truncated)
        except DataError as e:
            return _Probe(error=_reason(e))

    with ThreadPoolExecutor(max(1, workers)) as pool:
        return dict(zip(paths, pool.map(probe, paths)))


def _probe_masks(samples: list[Sample], images: dict[Path, _Probe], *, deep: bool,
                 workers: int) -> dict[str, str]:
    """Sample id -> why its mask is unusable: undecodable (deep; mask images always get a header
    read) or not the size of its image."""
    masked = [s for s in samples if s.mask is not None]

    def probe(s: Sample) -> str | None:
        ref = s.mask
        try:
            if deep:
                load_mask(ref)
            elif ref.kind == "png":
                found = image_size(ref.source)
                if found != (ref.height, ref.width):
                    return f"mask file is {found[0]}x{found[1]}; expected {ref.height}x{ref.width}"
        except DataError as e:
            return f"mask: {_reason(e)}"
        shape = images[s.image].shape
        if shape is not None and shape != (ref.height, ref.width):
            return f"mask is {ref.height}x{ref.width} but its image is {shape[0]}x{shape[1]}"
        return None

    with ThreadPoolExecutor(max(1, workers)) as pool:
        found = dict(zip((s.id for s in masked), pool.map(probe, masked)))
    return {sid: why for sid, why in found.items() if why is not None}


def _reason(e: DataError) -> str:
    """The message of a DataError without its leading file path (reported next to it anyway)."""
    text, prefix = str(e), f"{e.path}: "
    return text[len(prefix):] if e.path is not None and text.startswith(prefix) else text


# --------------------------------------------------------------------------- summaries


def _summarise(samples: list[Sample], root: Path, images: dict[Path, _Probe], mask_errors: dict[str, str],
               names: list[str], classes: list[int] | None) -> dict[str, Any]:
    first_id: dict[Path, str] = {}
    for s in samples:
        first_id.setdefault(s.image, s.id)
    unreadable = [{"id": sid, "path": _rel(p, root), "error": images[p].error}
                  for p, sid in first_id.items() if images[p].error is not None]
    unreadable += [{"id": s.id, "path": _rel(Path(s.mask.source), root) if s.mask.kind == "png"
                    else _rel(s.image, root), "error": mask_errors[s.id]}
                   for s in samples if s.id in mask_errors]
    return {
        "samples": len(samples),
        "patients": len({s.patient for s in samples}),
        "missing": sorted(_rel(p, root) for p in first_id if images[p].missing),
        "unreadable": sorted(unreadable, key=lambda u: (u["path"], u["id"], u["error"])),
        "truncated": sorted(({"id": sid, "path": _rel(p, root)} for p, sid in first_id.items() if images[p].truncated),
                            key=lambda u: (u["path"], u["id"])),
        "boxes": sum(len(s.boxes) + sum(len(p.boxes) for p in s.phrases) for s in samples),
        "phrases": sum(len(s.phrases) for s in samples),
        "masks": sum(s.mask is not None for s in samples),
        "reports": sum(any(str(t).strip() for t in s.text.values()) for s in samples),
        "landmarks": sum(s.landmarks is not None for s in samples),
        "labels": {n: _label_counts([s.labels.get(n, math.nan) for s in samples]) for n in names},
        "targets": _targets([s.target for s in samples if s.target is not None], classes),
    }


def _label_counts(values: list[float]) -> dict[str, int]:
    """positive (1), negative (0), unknown (NaN or -1, i.e. not usable as is), uncertain (-1)."""
    v = np.asarray(values, dtype=np.float64)
    uncertain = int(np.sum(v == UNCERTAIN))
    return {"positive": int(np.sum(v == 1)), "negative": int(np.sum(v == 0)),
            "unknown": int(np.sum(np.isnan(v))) + uncertain, "uncertain": uncertain}


def _target_classes(samples: list[Sample]) -> list[int] | None:
    """The classes of integer targets (class indices) over all splits; None for real-valued targets."""
    found = [s.target for s in samples if s.target is not None]
    if found and all(isinstance(t, (int, np.integer)) for t in found):
        return sorted({int(t) for t in found})
    return None


def _targets(values: list, classes: list[int] | None) -> dict[str, Any] | None:
    """Class counts ``{"counts": {"0": n, ...}}`` (every class of the dataset), or min/max/mean."""
    if classes is not None:
        return {"counts": {str(c): sum(int(t) == c for t in values) for c in classes}}
    finite = [float(t) for t in values if math.isfinite(float(t))]
    if not finite:
        return None
    return {"min": round(min(finite), 4), "max": round(max(finite), 4),
            "mean": round(sum(finite) / len(finite), 4)}


# --------------------------------------------------------------------------- consistency


def _label_errors(samples: list[Sample], names: list[str]) -> list[str]:
    out = []
    for n in names:
        bad = [s.id for s in samples if not _valid_label(s.labels.get(n, math.nan))]
        if bad:
            out.append(f"label '{n}' has a value other than 1, 0, -1 (uncertain) or NaN (unknown) on "
                       f"{len(bad)} sample(s): {_some(bad)}")
    return out


def _valid_label(value: float) -> bool:
    return value != value or value in (1.0, 0.0, UNCERTAIN)


def _target_errors(samples: list[Sample]) -> list[str]:
    bad = [s.id for s in samples if s.target is not None and not math.isfinite(float(s.target))]
    return [f"target is not a finite number on {len(bad)} sample(s): {_some(bad)}"] if bad else []


def _patients_in_two_splits(samples: list[Sample]) -> dict[tuple[str, str], list[str]]:
    """(split a, split b) -> the patients both hold. Splits must be patient-disjoint, so each pair
    is an error, unless the loader declares its official splits share patients (then listed)."""
    by_split = {sp: {s.patient for s in samples if s.split == sp} for sp in SPLITS}
    pairs = ((a, b, sorted(by_split[a] & by_split[b])) for a, b in combinations(SPLITS, 2))
    return {(a, b): shared for a, b, shared in pairs if shared}


def _extra(loader: DatasetLoader) -> dict[str, int | list[str]]:
    """The loader's :meth:`~DatasetLoader.report_extra` as JSON values (ints, lists of strings)."""
    out: dict[str, int | list[str]] = {}
    for key, value in loader.report_extra().items():
        if isinstance(value, (int, np.integer)):
            out[str(key)] = int(value)
        else:
            out[str(key)] = [value] if isinstance(value, str) else [str(v) for v in value]
    return out


def _some(items: list[str]) -> str:
    shown = ", ".join(str(i) for i in items[:SHOWN])
    return shown + (f" ... and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


# --------------------------------------------------------------------------- human output


def format_report(report: dict[str, Any]) -> str:
    """A compact table of the report for the terminal."""
    lines = [f"dataset  {report['dataset']}", f"root     {report['root']}",
             f"manifest {report['manifest_hash'] or '-'}"]
    splits = report["splits"]
    if splits:
        cols = ("samples", "patients", "missing", "unreadable", "truncated", "boxes", "phrases", "masks",
                "reports", "landmarks")
        lines += ["", "split  " + " ".join(f"{c:>10s}" for c in cols)]
        for name, sp in splits.items():
            cells = [len(sp[c]) if isinstance(sp[c], list) else sp[c] for c in cols]
            lines.append(f"{name:6s} " + " ".join(f"{v:>10d}" for v in cells))
        labels = next(iter(splits.values()))["labels"]
        if labels:
            width = max(14, *(len(n) for n in labels))
            lines += ["", f"{'label':{width}s}  " + "  ".join(f"{s + ' pos/neg/unk(unc)':>22s}" for s in splits)]
            for n in labels:
                cells = [splits[s]["labels"][n] for s in splits]
                lines.append(f"{n:{width}s}  " + "  ".join(
                    f"{c['positive']:>6d}/{c['negative']}/{c['unknown']}({c['uncertain']})".rjust(22)
                    for c in cells))
        for name, sp in splits.items():
            if sp["targets"] is not None:
                t = sp["targets"]
                text = (" ".join(f"{k}:{v}" for k, v in t["counts"].items()) if "counts" in t
                        else f"min {t['min']:g}  max {t['max']:g}  mean {t['mean']:g}")
                lines.append(f"targets {name:6s} {text}")
    partial = [(name, [t["id"] for t in sp["truncated"]]) for name, sp in splits.items() if sp["truncated"]]
    if partial:
        lines += [""] + [f"truncated {name}: {len(ids)} image file(s) end early; a run decodes them as far as "
                         f"their data goes and warns (truncated_images): {_some(ids)}" for name, ids in partial]
    if report["extra"]:
        lines += [""] + [f"{k}: {v if isinstance(v, int) else f'{len(v)} ({_some(v)})'}"
                         for k, v in report["extra"].items()]
    if report["errors"]:
        lines += ["", f"FAILED: {len(report['errors'])} problem(s)"] + [f"  - {e}" for e in report["errors"]]
    else:
        lines += ["", "OK"]
    return "\n".join(lines)

"""Your own dataset without writing Python: a YAML file says which columns hold what.

Three storage formats: ``csv`` (a CSV + an image folder), ``hf-disk`` (a Hugging Face
``datasets`` folder written by ``save_to_disk``; a ``DatasetDict`` gives the splits) and
``parquet`` (one file or a folder of ``*.parquet``, e.g. a Hub dataset's ``data/``). A task uses it
with ``dataset: generic`` and ``dataset_options: {spec: mine/dataset.yaml}``; the spec path is
relative to the data root (``--data generic=DIR`` or ``--data-root DIR``), so that one data root
holds several user datasets and records say ``data=real`` (docs/own-dataset.md).

Every path stays inside its root: the spec's ``root`` inside the data root, tables and image paths
inside the spec's root. Images stored *inside* an HF dataset (an ``Image`` column with bytes) are
written once, byte for byte, to ``$XRBENCH_HOME/generic/<fingerprint>/`` (the fingerprint of the
dataset files), and that folder becomes the loader's root, so feature extraction reads them like
any other file and manifests stay machine-independent.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xrbench.atomic import atomic_write_bytes, publish_dir
from xrbench.data.base import DatasetLoader, patient_split
from xrbench.data.paths import safe_join
from xrbench.data.sample import Box, Sample
from xrbench.errors import ConfigError, DataError, validation_messages
from xrbench.registry import DATASETS, closest


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Columns(_Strict):
    """Which column holds what. Only ``image`` is required."""

    image: str
    id: str | None = None  # default: the image path (csv) or <split>-<row>
    patient: str | None = None  # default: the id (each image its own patient)
    split: str | None = None  # default: the DatasetDict split, else a seeded patient split
    labels: list[str] = Field(default_factory=list)  # 1 / 0 / -1 (uncertain) / blank
    target: str | None = None  # class index, class name (with ``classes``) or a number
    group: str | None = None  # e.g. a study id, for per-study scoring
    boxes: str | None = None  # JSON list of [x0, y0, x1, y1, label] or {x0, y0, x1, y1, label}
    text: dict[str, str] = Field(default_factory=dict)  # report section -> column
    meta: list[str] = Field(default_factory=list)  # copied into Sample.meta (for a task's where:)


class PatientSplit(_Strict):
    val: float = Field(0.1, ge=0, lt=1)
    test: float = Field(0.2, ge=0, lt=1)
    seed: int = 0


class DatasetSpec(_Strict):
    name: str
    format: Literal["csv", "hf-disk", "parquet"]
    path: str  # the CSV file, the save_to_disk folder, or a parquet file/folder; relative to root
    root: str = "."  # the dataset root, relative to this file's folder
    columns: Columns
    split_values: dict[Literal["train", "val", "test"], list[str]] = Field(default_factory=lambda: {
        "train": ["train", "training"], "val": ["val", "valid", "validation", "dev"], "test": ["test", "testing"]})
    patient_split: PatientSplit = Field(default_factory=PatientSplit)
    classes: list[str] | None = None
    anatomy: str = "any"
    description: str = ""


def load_spec(path: Path) -> DatasetSpec:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read the dataset spec: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a dataset spec is a mapping of keys to values")
    try:
        return DatasetSpec.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{path}: invalid dataset spec: " + "; ".join(validation_messages(DatasetSpec, e))) \
            from None


@DATASETS.register("generic")
class Generic(DatasetLoader):
    """A user dataset declared in YAML (option ``spec``: its path relative to the data root)."""

    name = "generic"
    anatomy = "any"
    title = "your own dataset, declared in YAML (csv / hf-disk / parquet)"
    source = "docs/own-dataset.md"
    licence = "yours"
    options_spec = {"spec": ("dataset.yaml", None)}
    demo_size = 60

    def __init__(self, root, *, seed: int = 0, **options: Any):
        super().__init__(root, seed=seed, **options)
        self.data_root = self.root
        self.spec_path = safe_join(self.data_root, str(self.options["spec"]), what="dataset option 'spec'")
        if not self.spec_path.is_file():
            raise DataError(f"dataset spec {self.options['spec']!r} not found in the data root; point "
                            f"--data generic=DIR (or --data-root) at the folder it is relative to",
                            path=self.spec_path)
        self.spec = load_spec(self.spec_path)
        self.label_names = tuple(self.spec.columns.labels)  # what a task's target.labels may name
        rel = Path(str(self.options["spec"])).parent / self.spec.root
        self.root = safe_join(self.data_root, str(rel), source=self.spec_path,
                              what="key 'root' (from the spec's folder)")

    # -- reading ---------------------------------------------------------------------------
    def load(self) -> list[Sample]:
        spec, cols = self.spec, self.spec.columns
        table = safe_join(self.root, spec.path, source=self.spec_path, what="key 'path'")
        if not table.exists():
            raise DataError(f"the dataset's {spec.format} data does not exist (key 'path')", path=table)
        rows, available, fingerprint = _READERS[spec.format](table)
        wanted = {"image": cols.image, "id": cols.id, "patient": cols.patient, "split": cols.split,
                  "target": cols.target, "group": cols.group, "boxes": cols.boxes,
                  **{f"labels[{c}]": c for c in cols.labels}, **{f"meta[{c}]": c for c in cols.meta},
                  **{f"text.{k}": c for k, c in cols.text.items()}}
        for role, col in wanted.items():
            if col is not None and col not in available:
                hint = closest(col, sorted(available))
                raise DataError(f"column {col!r} (columns.{role}) is not in the data; found "
                                f"{sorted(available)}" + (f". Did you mean: {', '.join(hint)}?" if hint else ""),
                                path=table, field=col)
        cache = _Materialiser(fingerprint)
        out = [self._sample(i, dsplit, row, table, cache) for i, (dsplit, row) in enumerate(rows)]
        first: dict[str, int] = {}
        for i, s in enumerate(out):  # here, where the rows are known (DatasetLoader.samples checks again)
            if s.id in first:
                raise DataError(f"id {s.id!r} is also the id of row {self._row(first[s.id])}; ids must be unique",
                                path=table, row=self._row(i), field=cols.id or cols.image)
            first[s.id] = i
        if cache.written:
            self.root = cache.publish()
            out = [_rebase(s, cache) for s in out]
        if cols.split is None and all(d is None for d, _ in rows):  # no split given: by patient
            ps = spec.patient_split
            assign = patient_split([s.patient for s in out], seed=ps.seed, val=ps.val, test=ps.test, salt=spec.name)
            for s in out:
                s.split = assign[s.patient]
        return out

    def _row(self, i: int) -> int:
        return i + 2 if self.spec.format == "csv" else i  # CSV rows as a spreadsheet numbers them

    def _sample(self, i: int, dsplit: str | None, row: dict, table: Path, cache: "_Materialiser") -> Sample:
        cols = self.spec.columns
        n = self._row(i)
        image_value = row[cols.image]
        image, rel = self._image(image_value, table, n, cache, f"{dsplit or 'row'}-{i:06d}")
        if cols.id and _blank(row[cols.id]):
            raise DataError("empty id cell", path=table, row=n, field=cols.id)
        ident = str(row[cols.id]) if cols.id else (rel or f"{dsplit or 'row'}-{i:06d}")
        given = row[cols.split] if cols.split else dsplit
        split = self._split(given, table, n) if given is not None else "train"  # "train": until split by patient
        labels = {c: _label(row[c], path=table, row=n, field=c) for c in cols.labels}
        sample = Sample(
            id=ident, image=image, patient=str(row[cols.patient]) if cols.patient and not _blank(row[cols.patient]) else ident,
            split=split, labels=labels, target=self._target(row[cols.target], table, n) if cols.target else None,
            boxes=_boxes(row[cols.boxes], path=table, row=n, field=cols.boxes) if cols.boxes else [],
            group=None if not cols.group or _blank(row[cols.group]) else str(row[cols.group]),
            text={k: "" if _blank(row[c]) else str(row[c]) for k, c in cols.text.items()},
            meta={c: row[c] for c in cols.meta})
        return sample

    def _image(self, value, table: Path, row: int, cache: "_Materialiser", fallback: str) -> tuple[Path, str | None]:
        if isinstance(value, dict):  # an HF Image feature, undecoded: {"bytes": ..., "path": ...}
            if value.get("bytes"):
                return cache.write(value["bytes"], fallback), value.get("path") or None
            value = value.get("path")
        if isinstance(value, (bytes, bytearray)):
            return cache.write(bytes(value), fallback), None
        if _blank(value):
            raise DataError("empty image cell", path=table, row=row, field=self.spec.columns.image)
        return safe_join(self.root, str(value), source=table, row=row), str(value)

    def _split(self, value, table: Path, row: int) -> str:
        v = str(value).strip().lower()
        for split, names in self.spec.split_values.items():
            if v in {n.lower() for n in names}:
                return split
        raise DataError(f"split value {value!r} is not one of {dict(self.spec.split_values)} (key 'split_values')",
                        path=table, row=row, field=self.spec.columns.split)

    def _target(self, value, table: Path, row: int):
        if _blank(value):
            return None
        if self.spec.classes is not None:
            if str(value) in self.spec.classes:
                return self.spec.classes.index(str(value))
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise DataError(f"{value!r} is not a number" + (f" nor one of the classes {self.spec.classes}"
                            if self.spec.classes else " (give 'classes' to map names to indices)"),
                            path=table, row=row, field=self.spec.columns.target) from None
        if self.spec.classes is not None and not (x.is_integer() and 0 <= x < len(self.spec.classes)):
            raise DataError(f"{value!r} is neither one of the classes {self.spec.classes} nor a class index "
                            f"0..{len(self.spec.classes) - 1}", path=table, row=row, field=self.spec.columns.target)
        return int(x) if x.is_integer() else x

    # -- demo ----------------------------------------------------------------------------------
    @classmethod
    def write_demo(cls, dest: Path, *, n: int, seed: int) -> None:
        """Phantom chest images as a user would bring them, in both formats with their specs:
        ``dataset.yaml`` (CSV + ``images/``, seeded patient split) and ``hf.yaml`` (the same
        images inside an HF ``save_to_disk`` DatasetDict, ``hf/``, splits from the dict)."""
        import io
        import csv

        from xrbench.data.images import write_raster
        from xrbench.data.phantom.chest import generate_chest

        dest = Path(dest)
        labels = ["Cardiomegaly", "Pleural Effusion"]
        cases = generate_chest(n, seed=seed, prevalence={"Cardiomegaly": 0.4, "Pleural Effusion": 0.4})
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["file", "patient_id", "view", *labels])
        records = []
        for i, case in enumerate(cases):
            rel = f"images/{i:04d}.png"
            write_raster(dest / rel, case.image)
            y = [int(lab in case.findings) for lab in labels]
            w.writerow([rel, case.patient, case.view, *y])
            records.append({"image": (dest / rel).read_bytes(), "patient": case.patient, "view": case.view,
                            **dict(zip(labels, y))})
        atomic_write_bytes(dest / "labels.csv", buf.getvalue().encode())
        columns = {"image": "file", "patient": "patient_id", "labels": labels, "meta": ["view"]}
        (dest / "dataset.yaml").write_text(yaml.safe_dump(
            {"name": "demo-csv", "format": "csv", "path": "labels.csv", "columns": columns,
             "patient_split": {"val": 0.2, "test": 0.2, "seed": 0}, "anatomy": "chest", "description": "synthetic chest phantoms, CSV + image folder"}, sort_keys=False))
        import datasets

        assign = patient_split([r["patient"] for r in records], seed=seed, val=0.2, test=0.2, salt="demo-hf")
        feats = datasets.Features({"image": datasets.Image(), "patient": datasets.Value("string"),
                                   "view": datasets.Value("string"),
                                   **{lab: datasets.Value("int64") for lab in labels}})
        parts = {}
        for split, hf_name in (("train", "train"), ("val", "validation"), ("test", "test")):
            rows = [{**r, "image": {"bytes": r["image"], "path": None}} for r in records if assign[r["patient"]] == split]
            parts[hf_name] = datasets.Dataset.from_list(rows, features=feats)
        datasets.DatasetDict(parts).save_to_disk(str(dest / "hf"))
        (dest / "hf.yaml").write_text(yaml.safe_dump(
            {"name": "demo-hf", "format": "hf-disk", "path": "hf",
             "columns": {"image": "image", "patient": "patient", "labels": labels, "meta": ["view"]},
             "anatomy": "chest", "description": "synthetic chest phantoms inside an HF DatasetDict"},
            sort_keys=False))


# -- helpers ---------------------------------------------------------------------------------------
def _blank(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


def _label(v, *, path: Path, row: int, field: str) -> float:
    if _blank(v):
        return math.nan
    if isinstance(v, (bool, np.bool_)):
        return float(v)
    try:
        x = float(v)
    except (TypeError, ValueError):
        x = None
    if x not in (1.0, 0.0, -1.0):
        raise DataError(f"{v!r} is not a label value; expected 1, 0, -1 (uncertain) or blank", path=path,
                        row=row, field=field)
    return x


def _boxes(v, *, path: Path, row: int, field: str) -> list[Box]:
    if _blank(v):
        return []
    try:
        items = json.loads(v) if isinstance(v, str) else list(v)
        out = []
        for b in items:
            if isinstance(b, dict):
                out.append(Box(float(b["x0"]), float(b["y0"]), float(b["x1"]), float(b["y1"]), str(b["label"])))
            else:
                x0, y0, x1, y1, label = b
                out.append(Box(float(x0), float(y0), float(x1), float(y1), str(label)))
    except (ValueError, TypeError, KeyError) as e:
        raise DataError(f"boxes must be a JSON list of [x0, y0, x1, y1, label] or {{x0, y0, x1, y1, label}} "
                        f"({e.__class__.__name__}: {e})", path=path, row=row, field=field) from None
    return out


def _read_csv(path: Path):
    from xrbench.data.tables import read_table

    df = read_table(path)
    rows = [(None, {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()})
            for r in df.to_dict("records")]
    st = path.stat()
    return rows, set(df.columns), hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]


def _undecoded(ds):
    """Image columns as {"bytes", "path"} dicts: no PIL decoding, the file bytes stay exact."""
    import datasets

    for name, feat in ds.features.items():
        if isinstance(feat, datasets.Image) and feat.decode:
            ds = ds.cast_column(name, datasets.Image(decode=False))
    return ds


def _read_hf_disk(path: Path):
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise DataError(f"not a datasets save_to_disk folder: {e}", path=path) from None
    parts = dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {None: loaded}
    rows, available, prints = [], None, []
    for split, ds in parts.items():
        ds = _undecoded(ds)
        cols = set(ds.column_names)
        available = cols if available is None else available & cols
        prints.append(f"{split}:{ds._fingerprint}")
        rows += [(split, r) for r in ds]
    return rows, available or set(), hashlib.sha256("|".join(prints).encode()).hexdigest()[:16]


def _read_parquet(path: Path):
    import pyarrow.parquet as pq

    files = sorted(path.glob("**/*.parquet")) if path.is_dir() else [path]
    if not files:
        raise DataError("no *.parquet files in this folder", path=path)
    rows, available, h = [], None, hashlib.sha256()
    for f in files:
        try:
            table = pq.read_table(f)
        except Exception as e:  # pyarrow raises several types on bad files
            raise DataError(f"cannot be read as parquet ({e.__class__.__name__}: {e})", path=f) from None
        cols = set(table.column_names)
        available = cols if available is None else available & cols
        st = f.stat()
        h.update(f"{f.relative_to(path) if path.is_dir() else f.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        rows += [(None, r) for r in table.to_pylist()]
    return rows, available or set(), h.hexdigest()[:16]


_READERS = {"csv": _read_csv, "hf-disk": _read_hf_disk, "parquet": _read_parquet}

_MAGIC = ((b"\x89PNG", ".png"), (b"\xff\xd8", ".jpg"), (b"BM", ".bmp"), (b"II*\x00", ".tif"),
          (b"MM\x00*", ".tif"), (b"GIF8", ".gif"))


def _suffix(data: bytes) -> str:
    if data[128:132] == b"DICM":
        return ".dcm"
    return next((s for m, s in _MAGIC if data.startswith(m)), ".png")


class _Materialiser:
    """Writes image bytes held inside a dataset once, to ``$XRBENCH_HOME/generic/<fingerprint>/``."""

    def __init__(self, fingerprint: str):
        from xrbench.data.demo import xrbench_home

        self.final = xrbench_home() / "generic" / fingerprint
        self.tmp: Path | None = None
        self.written: list[str] = []

    def write(self, data: bytes, key: str) -> Path:
        rel = f"{key}{_suffix(data)}"
        self.written.append(rel)
        if self.final.is_dir():  # already materialised by an earlier load
            return self.final / rel
        if self.tmp is None:
            self.final.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(dir=self.final.parent, prefix=f".{self.final.name}."))
        (self.tmp / rel).write_bytes(data)
        return self.tmp / rel

    def publish(self) -> Path:
        if self.tmp is not None:
            try:
                publish_dir(self.tmp, self.final)
            except OSError:  # a concurrent load published it first
                shutil.rmtree(self.tmp, ignore_errors=True)
        return self.final


def _rebase(s: Sample, cache: _Materialiser) -> Sample:
    if cache.tmp is not None and cache.tmp in s.image.parents:
        s.image = cache.final / s.image.relative_to(cache.tmp)
    return s


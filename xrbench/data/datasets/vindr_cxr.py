"""VinDr-CXR: 18,000 adult chest radiographs (DICOM), image labels and boxes from several readers.

Two layouts are read, selected by what the root holds:

* PhysioNet ``vindr-cxr/1.0.0`` (root = that folder or its parent)::

      annotations/annotations_train.csv  annotations/annotations_test.csv     (.csv or .csv.gz)
      annotations/image_labels_train.csv annotations/image_labels_test.csv
      train/<image_id>.dicom   test/<image_id>.dicom

  ``annotations_*`` hold one row per box (``image_id, rad_id, class_name, x_min, y_min, x_max,
  y_max``, absolute pixels of the DICOM, selected by name; ``class_id`` may or may not be there);
  ``No finding`` and the global labels have rows with empty box fields. ``image_labels_*`` hold
  one row per reader with 28 0/1 columns (``Other disease`` and ``Other diseases`` both read as
  ``Other diseases``). Train images have 3 readers; the test labels are the consensus of 5.
* The Kaggle VinBigData competition (``train.csv`` with ``image_id, class_name, class_id, rad_id,
  x_min, y_min, x_max, y_max``, images ``train/<image_id>.dicom``): there are no image-label files,
  so image labels are the 14 box classes and ``No finding`` as marked by the readers, voted like
  the PhysioNet labels; the competition's test labels are not public, so ``test/`` is not read.

Splits: PhysioNet train/test are kept and ``val`` is carved from train (``patient_split``,
val=0.1); for the Kaggle layout ``val`` (0.1) and ``test`` (0.2) are both carved from train.
The release has no patient ids, so ``patient`` is the image id.

Declared options (multi-reader policies, applied where an image has several readers):

* ``label_aggregation``: ``majority`` (default: a label is 1 when more than half of the readers
  who gave a value marked it) or ``any`` (1 when any reader did).
* ``box_aggregation``: ``union`` (default: every reader's boxes, ``Box.reader`` = ``rad_id``),
  ``majority`` (a class's boxes are kept, with their readers, when more than half of the image's
  readers drew that class: 2 of 3), or ``fused`` (weighted-box-fusion style: boxes of a class are
  clustered across readers at IoU >= 0.4 and each cluster drawn by more than half of the readers
  becomes one box with the mean coordinates and ``reader=None``). The PhysioNet test boxes are a
  consensus already and are kept as they are under every policy.

Boxes are kept as drawn: a zero-area box stays (the task decides), an inverted box or a box with
only some coordinates is a DataError. ``meta['readers']`` lists the image's ``rad_id`` s.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from xrbench.data.base import DatasetLoader, patient_split
from xrbench.data.images import write_dicom
from xrbench.data.paths import locate_root, safe_join
from xrbench.data.sample import Box, Sample
from xrbench.data.tables import find_file, parse_float, read_table, resolve_columns
from xrbench.errors import DataError
from xrbench.registry import DATASETS

#: the 22 local (box) labels and 6 global labels, in the order of the image_labels files
LOCAL_LABELS = (
    "Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly", "Clavicle fracture",
    "Consolidation", "Edema", "Emphysema", "Enlarged PA", "ILD", "Infiltration", "Lung Opacity",
    "Lung cavity", "Lung cyst", "Mediastinal shift", "Nodule/Mass", "Pleural effusion",
    "Pleural thickening", "Pneumothorax", "Pulmonary fibrosis", "Rib fracture", "Other lesion",
)
GLOBAL_LABELS = ("COPD", "Lung tumor", "Pneumonia", "Tuberculosis", "Other diseases", "No finding")
IMAGE_LABELS = LOCAL_LABELS + GLOBAL_LABELS
#: the Kaggle competition's classes, class_id 0..14
KAGGLE_CLASSES = (
    "Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly", "Consolidation", "ILD",
    "Infiltration", "Lung Opacity", "Nodule/Mass", "Other lesion", "Pleural effusion",
    "Pleural thickening", "Pneumothorax", "Pulmonary fibrosis", "No finding",
)
NO_FINDING = "No finding"
#: IoU at which the ``fused`` policy puts boxes of one class into one cluster
FUSION_IOU = 0.4
LABEL_POLICIES = ("majority", "any")
BOX_POLICIES = ("union", "majority", "fused")
BOX_FIELDS = ("x_min", "y_min", "x_max", "y_max")

_CANONICAL = {n.lower(): n for n in IMAGE_LABELS} | {"other disease": "Other diseases"}


def canonical_label(name: str) -> str:
    """The dataset's own spelling of a class/label name (case-insensitive; ``Other disease(s)``)."""
    return _CANONICAL.get(name.strip().lower(), name.strip())


@dataclass
class _Marks:
    """Everything the readers of one image marked in a box CSV."""

    first_row: int
    boxes: list[Box] = field(default_factory=list)
    classes: dict[str | None, set[str]] = field(default_factory=dict)  # reader -> classes marked


@dataclass
class _Votes:
    """The per-reader rows of one image in an image_labels file (indices into its vote matrix)."""

    first_row: int
    rows: list[int] = field(default_factory=list)
    readers: list[str] = field(default_factory=list)


#: the PhysioNet release's annotation files (any one marks the dataset folder)
PHYSIONET_FILES = ("image_labels_train.csv", "annotations_train.csv", "image_labels_test.csv",
                   "annotations_test.csv")


@DATASETS.register("vindr-cxr")
class VinDrCXR(DatasetLoader):
    """VinDr-CXR (PhysioNet 1.0.0, or the Kaggle VinBigData copy); see the module docstring."""

    name = "vindr-cxr"
    anatomy = "chest"
    title = "VinDr-CXR"
    source = "https://physionet.org/content/vindr-cxr/1.0.0/"
    licence = ("PhysioNet Credentialed Health Data License 1.5.0 (credentialed access); "
               "Kaggle copy: competition rules")
    label_names = IMAGE_LABELS
    options_spec = {"label_aggregation": ("majority", LABEL_POLICIES),
                    "box_aggregation": ("union", BOX_POLICIES)}
    demo_size = 120

    def load(self) -> list[Sample]:
        # files only VinDr-CXR holds: a bare 'annotations/' would also match VinDr-SpineXR (and any
        # PhysioNet VinDr release) downloaded beside it under one physionet.org/ root
        root = locate_root(self.root, *(f"annotations/{n}{gz}" for n in PHYSIONET_FILES for gz in ("", ".gz")),
                           "train.csv", "train.csv.gz")
        if (root / "annotations").is_dir():
            return self._load_physionet(root)
        return self._load_kaggle(root)

    def _load_physionet(self, root: Path) -> list[Sample]:
        out: list[Sample] = []
        for official in ("train", "test"):
            labels_path = find_file(root / "annotations", f"image_labels_{official}.csv")
            boxes_path = find_file(root / "annotations", f"annotations_{official}.csv")
            names, matrix, votes = _read_image_labels(labels_path)
            marks = _read_boxes(boxes_path)
            stray = next((i for i in marks if i not in votes), None)
            if stray is not None:
                raise DataError(f"image {stray} has box rows but no row in {labels_path.name}",
                                path=boxes_path, row=marks[stray].first_row, field="image_id")
            assign = (patient_split(list(votes), seed=self.seed, val=0.1, salt=self.name)
                      if official == "train" else {})
            for image_id, v in votes.items():
                boxes = marks[image_id].boxes if image_id in marks else []
                if official == "train":
                    boxes = aggregate_boxes(boxes, len(v.rows), self.options["box_aggregation"])
                out.append(Sample(
                    id=image_id,
                    image=safe_join(root, f"{official}/{image_id}.dicom", source=labels_path, row=v.first_row),
                    patient=image_id, split=assign.get(image_id, "test"),
                    labels=vote(names, matrix[v.rows], self.options["label_aggregation"]), boxes=boxes,
                    meta={"readers": tuple(v.readers)}))
        return out

    def _load_kaggle(self, root: Path) -> list[Sample]:
        path = find_file(root, "train.csv")
        marks = _read_boxes(path)
        seen = {c for m in marks.values() for classes in m.classes.values() for c in classes}
        label_set = KAGGLE_CLASSES + tuple(sorted(seen - set(KAGGLE_CLASSES)))
        assign = patient_split(list(marks), seed=self.seed, val=0.1, test=0.2, salt=self.name)
        out = []
        for image_id, m in marks.items():
            rows = np.array([[c in classes for c in label_set] for classes in m.classes.values()], float)
            out.append(Sample(
                id=image_id, image=safe_join(root, f"train/{image_id}.dicom", source=path, row=m.first_row),
                patient=image_id, split=assign[image_id],
                labels=vote(label_set, rows, self.options["label_aggregation"]),
                boxes=aggregate_boxes(m.boxes, len(m.classes), self.options["box_aggregation"]),
                meta={"readers": tuple(r for r in m.classes if r is not None)}))
        return out

    @classmethod
    def write_demo(cls, dest: Path, *, n: int, seed: int) -> None:
        """Synthetic chest phantoms in the PhysioNet layout (see :func:`_write_demo`)."""
        _write_demo(Path(dest), n=n, seed=seed)


# --------------------------------------------------------------------------- reader policies


def vote(names: tuple[str, ...] | list[str], votes: np.ndarray, policy: str) -> dict[str, float]:
    """Image labels from a ``[readers, labels]`` matrix of 0/1/NaN votes: ``majority`` (more than
    half of the non-blank votes are 1) or ``any`` (at least one is); NaN when nobody gave a value."""
    given = (~np.isnan(votes)).sum(axis=0)
    ones = (votes == 1.0).sum(axis=0)
    positive = ones > 0 if policy == "any" else 2 * ones > given
    return dict(zip(names, np.where(given > 0, positive.astype(float), np.nan).tolist()))


def aggregate_boxes(boxes: list[Box], readers: int, policy: str) -> list[Box]:
    """Apply a ``box_aggregation`` policy to the boxes of one image drawn by ``readers`` readers."""
    if policy == "union":
        return list(boxes)
    need = readers // 2 + 1  # more than half of the readers
    by_class: dict[str, list[Box]] = {}
    for b in boxes:
        by_class.setdefault(b.label, []).append(b)
    out: list[Box] = []
    for label, group in by_class.items():
        if policy == "majority":
            if len({b.reader for b in group}) >= need:
                out.extend(group)
            continue
        for cluster in _cluster(group):
            if len({b.reader for b in cluster}) >= need:
                x0, y0, x1, y1 = np.mean([(b.x0, b.y0, b.x1, b.y1) for b in cluster], axis=0).tolist()
                out.append(Box(x0, y0, x1, y1, label, None))
    return out


def _cluster(boxes: list[Box]) -> list[list[Box]]:
    """Greedy WBF-style clustering: each box joins the cluster whose mean box it overlaps most."""
    clusters: list[list[Box]] = []
    means: list[tuple[float, float, float, float]] = []
    for b in sorted(boxes, key=lambda b: (b.reader or "", b.x0, b.y0, b.x1, b.y1)):
        ious = [_iou((b.x0, b.y0, b.x1, b.y1), m) for m in means]
        best = int(np.argmax(ious)) if ious else -1
        if best >= 0 and ious[best] >= FUSION_IOU:
            clusters[best].append(b)
            means[best] = tuple(np.mean([(c.x0, c.y0, c.x1, c.y1) for c in clusters[best]], axis=0).tolist())
        else:
            clusters.append([b])
            means.append((b.x0, b.y0, b.x1, b.y1))
    return clusters


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


# --------------------------------------------------------------------------- reading


def _optional_column(df: pd.DataFrame, name: str) -> str | None:
    return next((c for c in df.columns if c.strip().lower() == name), None)


def _read_boxes(path: Path) -> dict[str, _Marks]:
    """Rows of a box CSV grouped by image in file order; rows are file line numbers (header = 1)."""
    df = read_table(path).fillna("")
    cols = resolve_columns(df, path, ("image_id", "class_name") + BOX_FIELDS)
    rad = _optional_column(df, "rad_id")
    columns = [df[cols[c]].str.strip().tolist() for c in ("image_id", "class_name") + BOX_FIELDS]
    columns.append(df[rad].str.strip().tolist() if rad else [""] * len(df))
    images: dict[str, _Marks] = {}
    for i, (image_id, name, *raw, reader) in enumerate(zip(*columns)):
        row = i + 2
        for key, value in (("image_id", image_id), ("class_name", name)):
            if not value:
                raise DataError("is blank", path=path, row=row, field=cols[key])
        label = canonical_label(name)
        marks = images.setdefault(image_id, _Marks(first_row=row))
        marks.classes.setdefault(reader or None, set()).add(label)
        if not any(raw):
            continue
        if not all(raw):
            blank = cols[BOX_FIELDS[raw.index("")]]
            raise DataError("is blank while the other box fields are set", path=path, row=row, field=blank)
        if label == NO_FINDING:
            raise DataError(f"a '{name}' row has a box; expected empty box fields", path=path, row=row)
        x0, y0, x1, y1 = (parse_float(v, path=path, row=row, field=cols[f], allow_blank=False)
                          for v, f in zip(raw, BOX_FIELDS))
        if not np.isfinite([x0, y0, x1, y1]).all() or x1 < x0 or y1 < y0:
            raise DataError(f"box ({x0}, {y0}, {x1}, {y1}) is not x_min <= x_max, y_min <= y_max",
                            path=path, row=row)
        marks.boxes.append(Box(x0, y0, x1, y1, label, reader or None))
    return images


def _read_image_labels(path: Path) -> tuple[list[str], np.ndarray, dict[str, _Votes]]:
    """An image_labels CSV: label names, the ``[rows, labels]`` 0/1/NaN matrix, and its rows by image."""
    df = read_table(path)
    cols = resolve_columns(df, path, ("image_id",))
    rad = _optional_column(df, "rad_id")
    label_cols: dict[str, str] = {}
    for c in df.columns:
        if c in (cols["image_id"], rad):
            continue
        label = canonical_label(c)
        if label in label_cols:
            raise DataError(f"columns {label_cols[label]!r} and {c!r} are the same label", path=path)
        label_cols[label] = c
    matrix = np.empty((len(df), len(label_cols)), dtype=np.float64)
    for j, c in enumerate(label_cols.values()):
        raw = df[c].str.strip()
        values = pd.to_numeric(raw, errors="coerce")
        bad = np.flatnonzero((raw.notna() & raw.ne("") & ~values.isin([0.0, 1.0])).to_numpy())
        if len(bad):
            raise DataError(f"{df[c].iloc[bad[0]]!r}; expected 0 or 1", path=path, row=int(bad[0]) + 2, field=c)
        matrix[:, j] = values.to_numpy(dtype=np.float64, na_value=np.nan)
    images: dict[str, _Votes] = {}
    readers = df[rad].tolist() if rad else [None] * len(df)
    for i, (image_id, reader) in enumerate(zip(df[cols["image_id"]].tolist(), readers)):
        if not isinstance(image_id, str) or not image_id.strip():
            raise DataError("is blank", path=path, row=i + 2, field=cols["image_id"])
        votes = images.setdefault(image_id.strip(), _Votes(first_row=i + 2))
        votes.rows.append(i)
        if isinstance(reader, str) and reader.strip():
            votes.readers.append(reader.strip())
    return list(label_cols), matrix, images


# --------------------------------------------------------------------------- demo writer

#: phantom finding -> VinDr label (findings VinDr does not label, and the phantom's derived
#: ``Lung Lesion`` = Nodule or Mass, are left out)
PHANTOM_TO_VINDR = {
    "Aortic Enlargement": "Aortic enlargement", "Atelectasis": "Atelectasis",
    "Calcification": "Calcification", "Cardiomegaly": "Cardiomegaly", "Consolidation": "Consolidation",
    "Edema": "Edema", "Emphysema": "Emphysema", "Infiltration": "Infiltration",
    "Lung Opacity": "Lung Opacity", "Nodule": "Nodule/Mass", "Mass": "Nodule/Mass",
    "Pleural Effusion": "Pleural effusion", "Pleural Thickening": "Pleural thickening",
    "Pneumothorax": "Pneumothorax",
    "Fibrosis": "Pulmonary fibrosis", "Fracture": "Rib fracture", "Pneumonia": "Pneumonia",
}
#: the header spellings the demo writes (the two files differ in ``Other disease(s)``, as copies do)
_DEMO_LABEL_HEADER = {"train": IMAGE_LABELS,
                      "test": tuple("Other disease" if n == "Other diseases" else n for n in IMAGE_LABELS)}
_READERS = tuple(f"R{k}" for k in range(1, 18))


def _write_demo(dest: Path, *, n: int, seed: int) -> None:
    """Every 4th phantom goes to ``test`` with consensus marks (the truth); each train image gets
    3 readers who each see a finding with a probability rising with its severity and draw its
    boxes with jitter (local labels only; a global label such as Pneumonia gets a row without a
    box); a reader who sees nothing writes a ``No finding`` row. DICOMs are 12-bit at
    phantom size (every 3rd MONOCHROME1), so the boxes are in the DICOM's pixels. Synthetic data."""
    from xrbench.data.phantom.chest import generate_chest

    cases = generate_chest(n, seed=seed, images_per_patient=1.0)
    rng = np.random.default_rng([seed, 0x5C8])
    boxes: dict[str, list[dict]] = {"train": [], "test": []}
    labels: dict[str, list[dict]] = {"train": [], "test": []}
    for i, case in enumerate(cases):
        split = "test" if i % 4 == 3 else "train"
        image_id = hashlib.md5(f"vindr-cxr|{seed}|{i}".encode()).hexdigest()
        write_dicom(dest / split / f"{image_id}.dicom", case.image, bits_stored=12,
                    photometric="MONOCHROME1" if i % 3 == 1 else "MONOCHROME2",
                    patient_id="SYNTHETIC", sop_uid="2.25." + str(int(image_id, 16)),
                    view=case.view, sex=case.sex, age=f"{case.age:03d}Y")
        truth = {PHANTOM_TO_VINDR[f]: s for f, s in case.findings.items() if f in PHANTOM_TO_VINDR}
        drawn = [(PHANTOM_TO_VINDR[f], c) for f, *c in case.boxes if PHANTOM_TO_VINDR.get(f) in LOCAL_LABELS]
        readers = sorted(rng.choice(_READERS, size=1 if split == "test" else 3, replace=False).tolist(),
                         key=lambda r: int(r[1:]))
        for reader in readers:
            if split == "test":
                seen, marks = set(truth), [(label, tuple(round(v, 1) for v in c)) for label, c in drawn]
            else:
                seen = {label for label, s in truth.items() if rng.random() < 0.55 + 0.45 * s}
                marks = [(label, _jitter(c, rng)) for label, c in drawn if label in seen]
            base = {"image_id": image_id, "rad_id": reader}
            for label, (x0, y0, x1, y1) in marks:
                boxes[split].append({**base, "class_name": label, "x_min": x0, "y_min": y0,
                                     "x_max": x1, "y_max": y1})
            unboxed = sorted(seen - {label for label, _ in marks}) if seen else [NO_FINDING]
            for label in unboxed:  # global labels, and 'No finding', have rows with empty boxes
                boxes[split].append({**base, "class_name": label})
            header = _DEMO_LABEL_HEADER[split]
            votes = {h: int(canonical_label(h) in seen or (canonical_label(h) == NO_FINDING and not seen))
                     for h in header}
            labels[split].append({"image_id": image_id, "rad_ID": reader, **votes})
    (dest / "annotations").mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        (dest / split).mkdir(parents=True, exist_ok=True)
        pd.DataFrame(boxes[split], columns=["image_id", "rad_id", "class_name", *BOX_FIELDS]).to_csv(
            dest / "annotations" / f"annotations_{split}.csv", index=False)
        pd.DataFrame(labels[split], columns=["image_id", "rad_ID", *_DEMO_LABEL_HEADER[split]]).to_csv(
            dest / "annotations" / f"image_labels_{split}.csv", index=False)


def _jitter(box: list[float], rng: np.random.Generator) -> tuple[float, ...]:
    """A reader's own drawing of a box: each edge moved by ~5% of the box size, kept ordered."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    x0, x1 = x0 + rng.normal(0, 0.05 * w), x1 + rng.normal(0, 0.05 * w)
    y0, y1 = y0 + rng.normal(0, 0.05 * h), y1 + rng.normal(0, 0.05 * h)
    return (round(min(x0, x1), 1), round(min(y0, y1), 1), round(max(x0, x1), 1), round(max(y0, y1), 1))

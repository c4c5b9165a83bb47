"""VinDr-SpineXR: spine radiographs (DICOM) with radiologist lesion boxes of 7 classes.

Official layout (PhysioNet ``vindr-spinexr/1.0.0``)::

    annotations/train.csv   annotations/test.csv      (.csv or .csv.gz)
    train_images/<image_id>.dicom   test_images/<image_id>.dicom

The CSVs hold one row per lesion box, at least ``image_id, study_id, lesion_type, xmin, ymin,
xmax, ymax`` (absolute pixel xyxy); other columns (``series_id``, ``rad_id``) may exist and are
selected by name. An image without findings has one ``No finding`` row with empty box fields.

Policies, as in the official code (``spine/dataset_dict.py``, ``cls_dataset_dict.py``):

* boxes of the 7 detection classes are kept; a box narrower or lower than 1e-3 px is dropped as
  empty (the official code does the same) and counted in ``meta["zero_area_boxes"]`` and
  ``stats["zero_area_boxes"]``; its lesion still sets the image labels.
* a lesion type outside the 7 classes and ``No finding`` (the paper's rarer types) gets no box and no
  per-class label, is listed in ``meta["other_lesion_types"]`` and counted in ``stats``, and makes the
  image abnormal, as in the official classifier where only ``No finding`` images are normal.
* labels: ``abnormal`` (1 when the image has any lesion row) and one 0/1 label per class.
* ``patient`` and ``group`` are the study id (the release carries no patient id); the official
  train/test split is kept and ``val`` is carved from train by study (seeded, ``patient_split``).
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
from xrbench.data.phantom.spine import LESION_TYPES, spine_radiograph
from xrbench.data.sample import Box, Sample
from xrbench.data.tables import find_file, parse_float, read_table, resolve_columns
from xrbench.errors import DataError
from xrbench.registry import DATASETS

NO_FINDING = "No finding"
#: the official config's thresholds for an empty box (pixels)
MIN_SIDE = 1e-3
COLUMNS = ("image_id", "study_id", "lesion_type", "xmin", "ymin", "xmax", "ymax")
#: lower-cased accepted spellings -> the dataset's own class name
_CLASS_BY_KEY = {c.lower(): c for c in LESION_TYPES} | {"spondylolisthesis": "Spondylolysthesis"}


@dataclass
class _Image:
    """Rows of one image gathered while reading a CSV."""

    study: str
    first_row: int
    series: str | None = None
    boxes: list[Box] = field(default_factory=list)
    classes: set[str] = field(default_factory=set)
    other_types: list[str] = field(default_factory=list)
    zero_area: int = 0
    lesion_rows: int = 0


@DATASETS.register("vindr-spinexr")
class VinDrSpineXR(DatasetLoader):
    """VinDr-SpineXR v1.0.0: official train/test; val carved from train by study (seeded)."""

    name = "vindr-spinexr"
    anatomy = "spine"
    title = "VinDr-SpineXR"
    source = "https://physionet.org/content/vindr-spinexr/1.0.0/"
    licence = "PhysioNet Credentialed Health Data License 1.5.0 (credentialed access)"
    label_names = ("abnormal",) + LESION_TYPES
    demo_size = 110

    def load(self) -> list[Sample]:
        # the annotation files, not a bare 'annotations/' (VinDr-CXR has one too, beside it under
        # one physionet.org/ root)
        root = locate_root(self.root, *(f"annotations/{n}{gz}" for n in ("train.csv", "test.csv")
                                        for gz in ("", ".gz")))
        self.stats = {"zero_area_boxes": 0, "other_lesion_rows": 0}
        out: list[Sample] = []
        first: dict[str, tuple[str, int]] = {}  # image id -> (csv name, row) where it first appears
        for official, folder in (("train", "train_images"), ("test", "test_images")):
            path = find_file(root / "annotations", f"{official}.csv")
            images = self._read_annotations(path)
            for image_id, im in images.items():
                where = first.setdefault(image_id, (path.name, im.first_row))
                if where[0] != path.name:
                    raise DataError(f"image {image_id} is also in {where[0]} (row {where[1]}): an image "
                                    "belongs to one split", path=path, row=im.first_row, field="image_id")
            splits = (patient_split([im.study for im in images.values()], seed=self.seed, salt=self.name)
                      if official == "train" else {})
            for image_id, im in images.items():
                self.stats["zero_area_boxes"] += im.zero_area
                self.stats["other_lesion_rows"] += len(im.other_types)
                labels = {c: float(c in im.classes) for c in LESION_TYPES}
                meta = {"study_id": im.study, "body_part": "spine", "zero_area_boxes": im.zero_area,
                        "other_lesion_types": sorted(set(im.other_types))}
                if im.series is not None:
                    meta["series_id"] = im.series
                out.append(Sample(
                    id=image_id,
                    image=safe_join(root, f"{folder}/{image_id}.dicom", source=path, row=im.first_row),
                    patient=im.study, split=splits.get(im.study, "test"),
                    labels={"abnormal": float(im.lesion_rows > 0), **labels},
                    boxes=im.boxes, group=im.study, meta=meta))
        return out

    @staticmethod
    def _read_annotations(path: Path) -> dict[str, _Image]:
        """Group the rows of one annotation CSV by image, in file order; rows are file line numbers."""
        df = read_table(path)
        cols = resolve_columns(df, path, COLUMNS)
        by_key = {str(c).strip().lower(): c for c in df.columns}
        optional = {c: by_key[c] for c in ("series_id", "rad_id") if c in by_key}
        images: dict[str, _Image] = {}
        for i, rec in enumerate(df.to_dict("records")):
            row = i + 2  # header is line 1
            image_id, study, lesion = (_text(rec[cols[c]]) for c in ("image_id", "study_id", "lesion_type"))
            for name, value in (("image_id", image_id), ("study_id", study), ("lesion_type", lesion)):
                if not value:
                    raise DataError("is blank", path=path, row=row, field=cols[name])
            im = images.setdefault(image_id, _Image(study=study, first_row=row))
            if im.study != study:
                raise DataError(f"image {image_id} has study_id {study!r} here but {im.study!r} on row "
                                f"{im.first_row}", path=path, row=row, field=cols["study_id"])
            if "series_id" in optional:
                im.series = _text(rec[optional["series_id"]]) or im.series
            if lesion.lower() == NO_FINDING.lower():
                continue
            im.lesion_rows += 1
            cls = _CLASS_BY_KEY.get(lesion.lower())
            if cls is None:
                im.other_types.append(lesion)
                continue
            im.classes.add(cls)
            x0, y0, x1, y1 = (parse_float(rec[cols[c]], path=path, row=row, field=cols[c], allow_blank=False)
                              for c in ("xmin", "ymin", "xmax", "ymax"))
            if x1 - x0 < MIN_SIDE or y1 - y0 < MIN_SIDE:
                im.zero_area += 1
                continue
            reader = _text(rec[optional["rad_id"]]) if "rad_id" in optional else None
            im.boxes.append(Box(x0, y0, x1, y1, cls, reader or None))
        return images

    @classmethod
    def write_demo(cls, dest: Path, *, n: int, seed: int) -> None:
        """Synthetic phantom radiographs in the official layout: 12-bit DICOM (every third one
        MONOCHROME1, windowed), CSVs with ``No finding`` rows and one zero-area box in train."""
        dest = Path(dest)
        rng = np.random.default_rng(seed)
        rows: dict[str, list[dict]] = {"train": [], "test": []}
        index, study_no, zero_box_written = 0, 0, False
        while index < n:
            study_id = _hex(f"study|{seed}|{study_no}")
            split = "test" if study_no % 5 == 4 else "train"  # ~the official 80/20 by study
            views = ["lateral", "frontal"][: min(int(rng.integers(1, 3)), n - index)]
            for view in views:
                image_id = _hex(f"image|{seed}|{index}")
                case = spine_radiograph(int(rng.integers(2**31)), view=view)
                write_dicom(dest / f"{split}_images" / f"{image_id}.dicom", case.image, bits_stored=12,
                            photometric="MONOCHROME1" if index % 3 == 2 else "MONOCHROME2",
                            window=(2047.5, 4096.0), study_uid=_uid(study_id), sop_uid=_uid(image_id),
                            view="LL" if view == "lateral" else "AP", body_part="SPINE",
                            patient_id="SYNTHETIC")
                base = {"image_id": image_id, "study_id": study_id, "series_id": _hex(f"series|{image_id}"),
                        "rad_id": f"rad{1 + index % 3}"}
                if not case.lesions:
                    rows[split].append({**base, "lesion_type": NO_FINDING})
                for lesion in case.lesions:
                    x0, y0, x1, y1 = (round(v, 2) for v in lesion.box)
                    rows[split].append({**base, "lesion_type": lesion.kind,
                                        "xmin": x0, "ymin": y0, "xmax": x1, "ymax": y1})
                    if split == "train" and not zero_box_written:  # a degenerate click, as in the real CSV
                        rows[split].append({**base, "lesion_type": lesion.kind,
                                            "xmin": x0, "ymin": y0, "xmax": x0, "ymax": y1})
                        zero_box_written = True
                index += 1
            study_no += 1
        columns = ["image_id", "series_id", "study_id", "rad_id", "lesion_type", "xmin", "ymin", "xmax", "ymax"]
        for split, recs in rows.items():
            (dest / "annotations").mkdir(parents=True, exist_ok=True)
            (dest / f"{split}_images").mkdir(parents=True, exist_ok=True)
            pd.DataFrame(recs, columns=columns).to_csv(dest / "annotations" / f"{split}.csv", index=False)


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and value != value) else str(value).strip()


def _hex(key: str) -> str:
    """A 32-hex id like the dataset's hashed image/study ids."""
    return hashlib.md5(key.encode()).hexdigest()


def _uid(hex32: str) -> str:
    """A valid DICOM UID (digits only, <= 64 chars) derived from a hex id."""
    return "2.25." + str(int(hex32, 16))

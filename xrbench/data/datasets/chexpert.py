"""CheXpert v1.0 (full or ``-small``): 14 observations labelled 1 / 0 / -1 (uncertain) / blank.

Reads ``train.csv`` and ``valid.csv`` as Stanford distributes them. Labels are kept raw (see
:mod:`xrbench.data.labels`); the task applies the uncertainty policy.
"""
from __future__ import annotations

import csv
import io
import math
import os
import re
from pathlib import Path

import numpy as np

from xrbench.data.base import DatasetLoader, patient_split
from xrbench.data.images import atomic_write_bytes, write_raster
from xrbench.data.labels import parse_chexpert_column
from xrbench.data.paths import locate_root, safe_join
from xrbench.data.sample import Sample
from xrbench.data.tables import find_file, parse_column, read_table, resolve_columns
from xrbench.errors import DataError
from xrbench.registry import DATASETS

#: the 14 observation columns of train.csv / valid.csv, in file order
OBSERVATIONS = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices",
)
#: the exact 19-column header of both CSVs
HEADER = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *OBSERVATIONS)
#: the five CheXpert competition observations
COMPETITION = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")

#: the demo asks the phantom for enough positives of the competition observations
DEMO_PREVALENCE = {"Atelectasis": 0.35, "Cardiomegaly": 0.35, "Consolidation": 0.35, "Edema": 0.35,
                   "Pleural Effusion": 0.4}
#: phantom finding -> the CheXpert observation its report mention is labelled as
PHANTOM_OBSERVATION = {**{o: o for o in OBSERVATIONS if o != "No Finding"}, "Nodule": "Lung Lesion",
                       "Mass": "Lung Lesion", "Pleural Thickening": "Pleural Other",
                       "Infiltration": "Lung Opacity"}
#: observation -> words by which a report mentions it (negated when the finding is absent)
_MENTIONS = {o: re.compile(p, re.I) for o, p in {
    "Enlarged Cardiomediastinum": r"mediastin", "Cardiomegaly": r"cardiomegaly|heart size|cardiac silhouette",
    "Lung Opacity": r"opacit|infiltrat", "Lung Lesion": r"nodul|mass|lesion", "Edema": r"edema",
    "Consolidation": r"consolidat", "Pneumonia": r"pneumonia", "Atelectasis": r"atelecta",
    "Pneumothorax": r"pneumothora", "Pleural Effusion": r"effusion", "Pleural Other": r"pleural thicken",
    "Fracture": r"fracture", "Support Devices": r"\b(tube|catheter|pacemaker|device|wire)s?\b",
}.items()}
_NEGATION = re.compile(r"\b(no|without|negative|free of|normal|unremarkable|clear)\b", re.I)
_PREFIX = re.compile(r"^CheXpert-v1\.0[^/]*/")
_PATIENT = re.compile(r"(?:^|/)(patient\d+)/(study\d+)/")
_SEX = {"male": "M", "female": "F", "unknown": None}


@DATASETS.register("chexpert")
class CheXpert(DatasetLoader):
    """CheXpert v1.0 / v1.0-small.

    Root: the ``CheXpert-v1.0-small`` (or ``CheXpert-v1.0``) folder or the folder containing it,
    or Stanford AIMI's download of the full set (``chexpertchestxrays-u20210408``) as its four zips
    unzip: the CSVs and ``valid/`` in ``CheXpert-v1.0 batch 1 (validate & csv)``, the train
    patients spread over ``CheXpert-v1.0 batch {2,3,4} (train {1,2,3})`` without a ``train/`` level
    (beside batch 1, or inside the folder holding the CSVs when batch 1's contents were moved up).
    Splits: the official ``valid`` set (radiologist-labelled) is our ``test``; ``val`` is carved
    from the official ``train`` set with a seeded, patient-disjoint ``patient_split(val=0.1)``.
    Every image is kept, laterals included (``meta['frontal']`` lets a task keep frontals only;
    ``meta['view']`` is the AP/PA column, or ``Lateral`` when it is empty on a lateral row).
    ``meta['age']`` is None where the file says 0 (unknown).
    """

    name = "chexpert"
    anatomy = "chest"
    title = "CheXpert v1.0 (Stanford)"
    source = "https://stanfordmlgroup.github.io/competitions/chexpert/"
    licence = "Stanford University School of Medicine CheXpert Dataset Research Use Agreement (non-commercial)"
    label_names = OBSERVATIONS
    demo_size = 200

    def load(self) -> list[Sample]:
        folder = locate_root(self.root, "train.csv", "train.csv.gz", "valid.csv", "valid.csv.gz")
        batches = _train_batches(folder)
        self.image_roots += [b for b in dict.fromkeys(batches.values()) if b not in self.image_roots]
        rows = _read_split(folder, "train.csv", batches) + _read_split(folder, "valid.csv", batches)
        assign = patient_split([r["patient"] for r in rows if r["official"] == "train"],
                               seed=self.seed, val=0.1, salt=self.name)
        return [Sample(id=r["id"], image=r["image"], patient=r["patient"],
                       split="test" if r["official"] == "valid" else assign[r["patient"]],
                       labels=r["labels"], meta=r["meta"]) for r in rows]

    @classmethod
    def write_demo(cls, dest: Path, *, n: int, seed: int) -> None:
        """Synthetic CheXpert-v1.0-small: phantom studies, some with a lateral, labelled from the report.

        ``train.csv`` carries report-style labels (1 / -1 worded as uncertain / 0 negated / blank not
        mentioned); ``valid.csv`` the 0/1 truth, as radiologists labelled the real valid set.
        Laterals are the frontal image flipped and cropped (synthetic stand-ins, labelled Lateral).
        """
        from xrbench.data.phantom.chest import generate_chest

        folder = Path(dest) / "CheXpert-v1.0-small"
        n_lateral = max(1, n // 8)
        cases = generate_chest(n - n_lateral, seed=seed, prevalence=DEMO_PREVALENCE)
        rng = np.random.default_rng(seed)
        patients = list(dict.fromkeys(c.patient for c in cases))
        valid = set(rng.permutation(patients)[: max(1, round(0.35 * len(patients)))].tolist())
        laterals = set(rng.choice(len(cases), size=n_lateral, replace=False).tolist())
        number: dict[str, str] = {}
        last = {"train": 0, "valid": 64540}  # the real valid patients are numbered after train's
        studies: dict[str, int] = {}
        rows: dict[str, list[list[str]]] = {"train": [], "valid": []}
        for i, case in enumerate(cases):
            official = "valid" if case.patient in valid else "train"
            if case.patient not in number:
                last[official] += 1
                number[case.patient] = f"patient{last[official]:05d}"
            studies[case.patient] = studies.get(case.patient, 0) + 1
            study = f"{official}/{number[case.patient]}/study{studies[case.patient]}"
            cells = report_labels(case, truth=official == "valid")
            labels = [cells[o] for o in OBSERVATIONS]
            sex, age = {"M": "Male", "F": "Female"}[case.sex], str(case.age)
            write_raster(folder / study / "view1_frontal.jpg", case.image)
            rows[official].append([f"{folder.name}/{study}/view1_frontal.jpg", sex, age, "Frontal", case.view,
                                   *labels])
            if i in laterals:
                write_raster(folder / study / "view2_lateral.jpg", lateral_standin(case.image))
                rows[official].append([f"{folder.name}/{study}/view2_lateral.jpg", sex, age, "Lateral", "",
                                       *labels])
        for official, table in rows.items():
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows([list(HEADER), *sorted(table)])
            atomic_write_bytes(folder / f"{official}.csv", buf.getvalue().encode())


def lateral_standin(frontal: np.ndarray) -> np.ndarray:
    """A stand-in for a lateral view (the phantom draws frontals only): the frontal flipped and cropped."""
    h, w = frontal.shape
    return np.ascontiguousarray(np.fliplr(frontal)[h // 16: h - h // 16, w // 8: w - w // 8])


def report_labels(case, *, truth: bool = False) -> dict[str, str]:
    """Observation -> cell of a phantom case, as CheXpert writes them (``1.0``/``0.0``/``-1.0``/``""``).

    Report-style (the CheXpert labeller on the case's report): 1.0 present, -1.0 worded as
    uncertain, 0.0 absent and negated in the report, blank not mentioned; ``No Finding`` is 1.0 when
    nothing but support devices is positive or uncertain. ``truth=True`` gives the 0/1 ground truth.
    """
    def observations(findings) -> set[str]:
        return {PHANTOM_OBSERVATION[f] for f in findings if f in PHANTOM_OBSERVATION}

    if truth:
        present, uncertain = observations(case.findings), set()
    else:
        present = observations(f for f in case.findings if f not in case.uncertain)
        uncertain = observations(case.uncertain) - present
    sentences = re.split(r"(?<=\.)\s+", " ".join(case.report.values()))
    negated = {o for o, pat in _MENTIONS.items()
               if any(pat.search(s) and _NEGATION.search(s) for s in sentences)}
    cells = {}
    for obs in OBSERVATIONS:
        if obs == "No Finding":
            normal = not (present | uncertain) - {"Support Devices"}
            value = 1.0 if normal else (0.0 if truth else math.nan)
        elif obs in present:
            value = 1.0
        elif truth:
            value = 0.0
        elif obs in uncertain:
            value = -1.0
        else:
            value = 0.0 if obs in negated else math.nan
        cells[obs] = "" if value != value else f"{value:.1f}"
    return cells


_AIMI_TRAIN_BATCH = re.compile(r"CheXpert-v1\.0 batch \d+ \(train \d+\)$")


def _train_batches(folder: Path) -> dict[str, Path]:
    """Train patient folder -> the AIMI batch folder holding it (``CheXpert-v1.0 batch 2 (train 1)``
    ...), when ``folder`` has no ``train/`` and such batch folders sit beside it (as unzipped) or
    in it (batch 1's contents moved up); else empty. One directory listing per batch folder."""
    if (folder / "train").is_dir():
        return {}
    out: dict[str, Path] = {}
    batches = []
    for base in (folder, folder.parent):
        try:
            batches += sorted(p for p in base.iterdir() if p.is_dir() and _AIMI_TRAIN_BATCH.match(p.name))
        except OSError:
            continue
    for batch in batches:
        with os.scandir(batch) as it:
            for e in it:
                if e.name.startswith("patient") and e.is_dir():
                    other = out.setdefault(e.name, batch)
                    if other != batch:
                        raise DataError(f"train patient {e.name} is in two batch folders, {other} and {batch}",
                                        path=folder.parent)
    return out


def _read_split(folder: Path, name: str, batches: dict[str, Path] | None = None) -> list[dict]:
    """Rows of one official CSV as plain records (id, image, patient, labels, meta, official split).

    Columns are parsed whole, each distinct value once (:func:`parse_column`), with the per-cell
    parsers, so an error names the first bad row; paths are checked as strings
    (:func:`safe_join`) and no file is touched. ``batches`` (:func:`_train_batches`) places a
    ``train/<patient>/...`` path in its AIMI batch folder.
    """
    path = find_file(folder, name)
    df = read_table(path)
    cols = resolve_columns(df, path, HEADER)
    official = name.split(".")[0]

    def column(field: str, parse) -> list:
        return parse_column(df[cols[field]], lambda value, row: parse(value, path, row)).tolist()

    labels = np.stack([parse_chexpert_column(df[cols[o]], path=path, field=o) for o in OBSERVATIONS], axis=1)
    frontal, sexes, ages = column("Frontal/Lateral", _frontal), column("Sex", _sex), column("Age", _age)
    views = column("AP/PA", lambda v, p, r: v.strip() if isinstance(v, str) and v.strip() else None)
    out = []
    for i, (raw, row_labels, front, view, sex, age) in enumerate(zip(
            df[cols["Path"]].tolist(), labels.tolist(), frontal, views, sexes, ages)):
        line = i + 2
        if not isinstance(raw, str) or not raw.strip():
            raise DataError("is blank; expected an image path", path=path, row=line, field="Path")
        rel = _PREFIX.sub("", raw.strip().replace("\\", "/"))
        found = _PATIENT.search(rel)
        if found is None:
            raise DataError(f"{raw!r} has no 'patient<digits>/study<digits>/' part", path=path, row=line,
                            field="Path")
        meta = {"sex": sex, "age": age, "frontal": front, "view": view or (None if front else "Lateral"),
                "study": f"{found.group(1)}/{found.group(2)}"}
        base, inner = folder, rel
        if batches and rel.startswith("train/") and found.group(1) in batches:
            base, inner = batches[found.group(1)], rel[len("train/"):]
        out.append({"id": rel, "image": safe_join(base, inner, source=path, row=line),
                    "patient": found.group(1), "labels": dict(zip(OBSERVATIONS, row_labels)), "meta": meta,
                    "official": official})
    return out


def _frontal(value, path: Path, line: int) -> bool:
    v = str(value).strip().lower() if isinstance(value, str) else ""
    if v not in ("frontal", "lateral"):
        raise DataError(f"{value!r}; expected 'Frontal' or 'Lateral'", path=path, row=line, field="Frontal/Lateral")
    return v == "frontal"


def _sex(value, path: Path, line: int) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    key = value.strip().lower()
    if key not in _SEX:
        raise DataError(f"{value!r}; expected 'Male', 'Female' or 'Unknown'", path=path, row=line, field="Sex")
    return _SEX[key]


def _age(value, path: Path, line: int) -> int | None:
    """Age in years; 0 and blank mean unknown."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        age = float(value)
    except ValueError:
        raise DataError(f"{value!r} is not an age in years", path=path, row=line, field="Age") from None
    if not math.isfinite(age) or age < 0 or age != math.floor(age):
        raise DataError(f"{value!r} is not an age in years", path=path, row=line, field="Age")
    return int(age) or None

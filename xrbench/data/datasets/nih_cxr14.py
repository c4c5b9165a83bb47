"""NIH ChestX-ray14: 14 text-mined findings per image, official test list, boxes for 8 findings."""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np

from xrbench.data.base import DatasetLoader, patient_split
from xrbench.data.images import atomic_write_bytes, scale_to_file, write_raster
from xrbench.data.paths import index_by_name, locate_root
from xrbench.data.sample import Box, Sample
from xrbench.data.tables import find_file, parse_column, parse_float, read_table, resolve_columns
from xrbench.errors import DataError
from xrbench.registry import DATASETS

#: the 14 findings in the spelling of ``Finding Labels`` (``Pleural_Thickening`` with an underscore)
FINDINGS = (
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema", "Fibrosis", "Hernia",
    "Infiltration", "Mass", "Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax",
)
NO_FINDING = "No Finding"
#: the classic file and its 2020 revision (same images and labels, header without a trailing comma)
ENTRY_FILES = ("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv")
BBOX_FILE = "BBox_List_2017.csv"
#: side of the distributed PNGs, the space of the BBox_List coordinates
BOX_SPACE = 1024
MAX_AGE = 100

_ENTRY_COLUMNS = ("Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age",
                  ("Patient Gender", "Patient Sex"), "View Position")
_BBOX_COLUMNS = ("Image Index", "Finding Label", ("Bbox [x", "x"), "y", "w", ("h]", "h"))
#: findings the official BBox list has boxes for
BOX_FINDINGS = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
                "Pneumothorax")
#: phantom finding -> NIH finding (the phantom's other findings are not among the 14)
PHANTOM_FINDING = {**{f: f for f in FINDINGS if f not in ("Effusion", "Pleural_Thickening")},
                   "Pleural Effusion": "Effusion", "Pleural Thickening": "Pleural_Thickening"}
#: the demo asks the phantom for every one of the 14 often enough to be scored on a small test set
DEMO_PREVALENCE = dict.fromkeys(PHANTOM_FINDING, 0.15)
_AGE = re.compile(r"^(\d+)\s*[Yy]?$")


def _key(label: str) -> str:
    return re.sub(r"[\s_]+", " ", label.strip().lower())


#: accepted label spellings -> official name; the BBox list says ``Infiltrate``
_LABELS = {_key(f): f for f in FINDINGS} | {"infiltrate": "Infiltration"}


@DATASETS.register("nih-cxr14")
class NIHChestXray14(DatasetLoader):
    """NIH ChestX-ray14 (Wang et al. 2017).

    Root: the folder holding ``Data_Entry_2017.csv`` (or ``Data_Entry_2017_v2020.csv``; the
    2020 file is used when both are there) and the split lists, or its parent. Images are found by
    file name anywhere below it (``images/`` or the Kaggle ``images_0XX/images/``); an image not
    found keeps the path ``images/<name>`` for ``xrbench data check`` to report.
    Labels: the 14 findings, 1/0 (``No Finding`` = all 0). Splits: ``test_list.txt`` is ``test``;
    ``val`` is carved from ``train_val_list.txt`` by a seeded, patient-disjoint
    ``patient_split(val=0.1)``. Boxes from ``BBox_List_2017.csv`` (when present; ``Infiltrate`` ->
    ``Infiltration``) are given in 1024-px space and scaled to the PNG actually on disk.
    ``meta['age']`` is None for ages above 100 (impossible values in the file; the value read is
    kept in ``meta['age_reported']``).
    """

    name = "nih-cxr14"
    anatomy = "chest"
    title = "NIH ChestX-ray14"
    source = "https://nihcc.app.box.com/v/ChestXray-NIHCC"
    licence = "Unrestricted use with acknowledgement of the NIH Clinical Center and citation of Wang et al. 2017"
    label_names = FINDINGS
    demo_size = 100

    def load(self) -> list[Sample]:
        folder = locate_root(self.root, *[n + gz for n in ENTRY_FILES for gz in ("", ".gz")])
        entries = _read_entries(find_file(folder, *ENTRY_FILES))
        test = _read_list(folder, "test_list.txt")
        trainval = _read_list(folder, "train_val_list.txt")
        both = sorted(test & trainval)
        if both:
            raise DataError(f"{len(both)} image(s) are in both test_list.txt and train_val_list.txt, "
                            f"e.g. {both[0]}", path=folder)
        images = index_by_name(folder, (".png",), allow_symlinks=self.allow_symlinks)
        boxes = _read_boxes(folder, {e["name"] for e in entries})
        assign = patient_split([e["patient"] for e in entries if e["name"] in trainval],
                               seed=self.seed, val=0.1, salt=self.name)
        samples = []
        for e in entries:
            if e["name"] not in test and e["name"] not in trainval:
                raise DataError(f"image {e['name']} is in neither test_list.txt nor train_val_list.txt",
                                path=folder)
            image = images.get(e["name"], folder / "images" / e["name"])
            found = boxes.get(e["name"], [])
            if found:
                sx, sy = scale_to_file(image, BOX_SPACE, BOX_SPACE)
                found = [b.scaled(sx, sy) for b in found]
            samples.append(Sample(id=e["name"], image=image, patient=e["patient"],
                                  split="test" if e["name"] in test else assign[e["patient"]],
                                  labels=e["labels"], boxes=found, meta=e["meta"]))
        return samples

    @classmethod
    def write_demo(cls, dest: Path, *, n: int, seed: int) -> None:
        """Synthetic ChestX-ray14: 8-bit PNGs in ``images/``, the classic CSVs (trailing commas) and lists.

        Labels are the report's mentions, as the NIH text mining made them: a finding worded as
        uncertain counts as present. Test images get their phantom boxes of the 8 boxed findings,
        written in 1024-px space (the PNGs are smaller, as in a resized mirror).
        """
        from xrbench.data.phantom.chest import generate_chest

        dest = Path(dest)
        cases = generate_chest(n, seed=seed, prevalence=DEMO_PREVALENCE)
        rng = np.random.default_rng(seed)
        patients = list(dict.fromkeys(c.patient for c in cases))
        test = set(rng.permutation(patients)[: max(1, round(0.25 * len(patients)))].tolist())
        number = {p: i for i, p in enumerate(patients, start=1)}
        follow: dict[str, int] = {}
        entries, boxes, lists = [], [], {"train_val_list.txt": [], "test_list.txt": []}
        for case in cases:
            follow[case.patient] = follow.get(case.patient, -1) + 1
            name = f"{number[case.patient]:08d}_{follow[case.patient]:03d}.png"
            found = sorted({PHANTOM_FINDING[f] for f in (*case.findings, *case.uncertain) if f in PHANTOM_FINDING},
                           key=FINDINGS.index)
            width, height = (int(v) for v in rng.integers(2000, 3000, size=2))
            spacing = f"{rng.choice([0.139, 0.143, 0.168]):.3f}"
            entries.append([name, "|".join(found) or NO_FINDING, str(follow[case.patient]),
                            str(number[case.patient]), str(case.age), case.sex, case.view, str(width),
                            str(height), spacing, spacing, ""])
            write_raster(dest / "images" / name, case.image, bits=8)
            lists["test_list.txt" if case.patient in test else "train_val_list.txt"].append(name)
            scale = BOX_SPACE / case.image.shape[1]
            for finding, x0, y0, x1, y1 in case.boxes:
                label = PHANTOM_FINDING.get(finding)
                if case.patient in test and label in BOX_FINDINGS:
                    boxes.append([name, "Infiltrate" if label == "Infiltration" else label,
                                  *(f"{v * scale:.6f}" for v in (x0, y0, x1 - x0, y1 - y0))])
        head = ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender",
                "View Position", "OriginalImage[Width", "Height]", "OriginalImagePixelSpacing[x", "y]", ""]
        _write_csv(dest / "Data_Entry_2017.csv", head, entries)
        _write_csv(dest / BBOX_FILE, ["Image Index", "Finding Label", "Bbox [x", "y", "w", "h]", "", "", ""], boxes)
        for name, lines in lists.items():
            atomic_write_bytes(dest / name, "".join(f"{x}\n" for x in sorted(lines)).encode())


def _write_csv(path: Path, head: list[str], rows: list[list[str]]) -> None:
    """Written as NIH did: bracketed header names unquoted, so that the commas inside them split."""
    buf = io.StringIO()
    buf.write(",".join(head) + "\n")
    csv.writer(buf, lineterminator="\n").writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def _label(text: str, path: Path, line: int, field: str) -> str:
    try:
        return _LABELS[_key(text)]
    except KeyError:
        raise DataError(f"unknown finding {text!r}; expected one of {list(FINDINGS)} or {NO_FINDING!r}",
                        path=path, row=line, field=field) from None


def _read_entries(path: Path) -> list[dict]:
    """One record per row; the label, age, sex, view and follow-up columns are parsed once per
    distinct value (:func:`parse_column`), with errors naming the first bad row."""
    df = read_table(path)
    cols = resolve_columns(df, path, _ENTRY_COLUMNS)

    def findings(value, line: int) -> tuple[str, ...]:
        parts = [p.strip() for p in _text(value, path, line, "Finding Labels").split("|")]
        return () if parts == [NO_FINDING] else tuple(_label(p, path, line, "Finding Labels") for p in parts)

    def sex(value, line: int) -> str | None:
        out = value.strip().upper() if isinstance(value, str) and value.strip() else None
        if out not in ("M", "F", None):
            raise DataError(f"{out!r}; expected 'M' or 'F'", path=path, row=line, field=cols["Patient Gender"])
        return out

    def column(name: str, parse) -> list:
        return parse_column(df[cols[name]], parse).tolist()

    found = column("Finding Labels", findings)
    ages = column("Patient Age", lambda v, line: _age(v, path, line))
    sexes = column("Patient Gender", sex)
    views = column("View Position", lambda v, line: v.strip() if isinstance(v, str) else None)
    follows = column("Follow-up #", lambda v, line: int(parse_float(v, path=path, row=line, field="Follow-up #",
                                                                    allow_blank=False)))
    out = []
    for i, (name, patient, positives, (age, reported), sx, view, follow) in enumerate(zip(
            df[cols["Image Index"]].tolist(), df[cols["Patient ID"]].tolist(), found, ages, sexes, views, follows)):
        line = i + 2
        name = _text(name, path, line, "Image Index")
        labels = dict.fromkeys(FINDINGS, 0.0)
        for f in positives:
            labels[f] = 1.0
        meta = {"sex": sx, "age": age, "view": view, "follow_up": follow}
        if reported is not None:
            meta["age_reported"] = reported
        patient = _text(patient, path, line, "Patient ID")
        if patient.isascii() and patient.isdigit():
            patient = str(int(patient))
        out.append({"name": name, "patient": patient, "labels": labels, "meta": meta})
    return out


def _text(value, path: Path, line: int, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DataError("is blank", path=path, row=line, field=field)
    return value.strip()


def _age(value, path: Path, line: int) -> tuple[int | None, int | None]:
    """(age, implausible age as reported): ages above 100 are errors in the file, kept but flagged."""
    if not isinstance(value, str) or not value.strip():
        return None, None
    m = _AGE.match(value.strip())
    if m is None:
        raise DataError(f"{value!r} is not an age in years", path=path, row=line, field="Patient Age")
    age = int(m.group(1))
    return (None, age) if age > MAX_AGE else (age, None)


def _read_list(folder: Path, name: str) -> set[str]:
    path = find_file(folder, name)
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def _read_boxes(folder: Path, known: set[str]) -> dict[str, list[Box]]:
    """Image name -> boxes in 1024-px xyxy; empty when the optional BBox list is absent."""
    path = find_file(folder, BBOX_FILE, required=False)
    if path is None:
        return {}
    df = read_table(path)
    cols = resolve_columns(df, path, _BBOX_COLUMNS)
    out: dict[str, list[Box]] = {}
    for i, rec in enumerate(df.to_dict("records")):
        line = i + 2
        name = _text(rec[cols["Image Index"]], path, line, "Image Index")
        if name not in known:
            raise DataError(f"image {name} is not in the Data_Entry file", path=path, row=line,
                            field="Image Index")
        label = _label(_text(rec[cols["Finding Label"]], path, line, "Finding Label"), path, line, "Finding Label")
        x, y, w, h = (parse_float(rec[cols[c]], path=path, row=line, field=cols[c], allow_blank=False)
                      for c in ("Bbox [x", "y", "w", "h]"))
        if w <= 0 or h <= 0:
            raise DataError(f"box width/height {w}, {h}; expected positive", path=path, row=line)
        out.setdefault(name, []).append(Box(x, y, x + w, y + h, label))
    return out

"""MS-CXR: radiologist phrase <-> box pairs on MIMIC-CXR-JPG images (phrase grounding)."""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from xrbench.data.base import DatasetLoader, patient_split
from xrbench.data.images import atomic_write_bytes, scale_to_file
from xrbench.data.paths import locate_root, safe_join
from xrbench.data.sample import Box, Phrase, Sample
from xrbench.data.tables import find_file, parse_float, read_table, resolve_columns
from xrbench.errors import DataError
from xrbench.registry import DATASETS

#: v1.1.0 (with a ``split`` column) is preferred over v1.0.0 (without)
CSV_FILES = ("MS_CXR_Local_Alignment_v1.1.0.csv", "MS_CXR_Local_Alignment_v1.0.0.csv")
CATEGORIES = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Lung Opacity", "Pleural Effusion",
              "Pneumonia", "Pneumothorax")
COLUMNS = ("dicom_id", "category_name", "label_text", "path", "x", "y", "w", "h", "image_width", "image_height")
_SPLITS = {"train": "train", "val": "val", "validate": "val", "test": "test"}
_STUDY = re.compile(r"(?:^|/)p(\d+)/s(\d+)/[^/]+$")
_CANONICAL = {c.lower(): c for c in CATEGORIES}
#: the demo asks the phantom for the grounded findings often enough that most images carry a phrase
DEMO_PREVALENCE = dict.fromkeys(CATEGORIES, 0.3)


@DATASETS.register("ms-cxr")
class MSCXR(DatasetLoader):
    """MS-CXR v1.0.0 / v1.1.0 (``MS_CXR_Local_Alignment_v*.csv``), one sample per image.

    Root: the folder holding the CSV, or its parent. Images are read from a MIMIC-CXR-JPG tree:
    option ``mimic_root`` (a folder holding ``files/``, or ``files/`` itself), else the first of
    the root itself, a ``mimic-cxr-jpg*`` folder (or its version sub-folder) next to the CSV folder
    or up to three levels above it (``physionet.org/files/{ms-cxr,mimic-cxr-jpg}/<version>``).
    ``phrases``: the rows of an image grouped by (label_text, category) in file order, one box per
    row, with categories spelled as in ``CATEGORIES`` (matched case-insensitively; other spellings
    are kept as written). Boxes are given in the original DICOM pixels (``image_width`` x
    ``image_height``) and scaled to the image file actually read. ``boxes`` stays empty: every box
    belongs to a phrase. ``group`` is the MIMIC study id, ``patient`` the subject id from ``path``.
    Splits: the ``split`` column of v1.1.0; v1.0.0 has none, so a seeded, patient-disjoint
    ``patient_split(val=0.1, test=0.3)`` is used.
    """

    name = "ms-cxr"
    anatomy = "chest"
    title = "MS-CXR (phrase grounding on MIMIC-CXR)"
    source = "https://physionet.org/content/ms-cxr/"
    licence = "PhysioNet Credentialed Health Data License 1.5.0 (requires MIMIC-CXR access)"
    label_names = ()
    options_spec = {"mimic_root": (None, None)}
    demo_size = 100

    def load(self) -> list[Sample]:
        folder = locate_root(self.root, *[n + gz for n in CSV_FILES for gz in ("", ".gz")])
        path = find_file(folder, *CSV_FILES)
        images = self._mimic_root(folder)
        if images not in self.image_roots:
            self.image_roots.append(images)  # the MIMIC tree is a root of its own (symlink policy)
        df = read_table(path)
        cols = resolve_columns(df, path, COLUMNS)
        has_split = "split" in {c.strip().lower() for c in df.columns}
        if has_split:
            cols |= resolve_columns(df, path, ("split",))
        by_image: dict[str, dict] = {}
        for i, rec in enumerate(df.to_dict("records")):
            line = i + 2
            row = _parse_row(rec, cols, path, line, has_split)
            first = by_image.setdefault(row["dicom_id"], {**row, "line": line, "phrases": {}})
            for key in ("path", "size", "split"):
                if row[key] != first[key]:
                    raise DataError(f"{key} {row[key]!r} differs from {first[key]!r} on row {first['line']} "
                                    f"of the same dicom_id", path=path, row=line, field=key)
            first["phrases"].setdefault((row["text"], row["category"]), []).append(row["box"])
        if not has_split:
            assign = patient_split([r["subject"] for r in by_image.values()], seed=self.seed, val=0.1,
                                   test=0.3, salt=self.name)
        samples = []
        for dicom, r in by_image.items():
            rel = r["path"]
            if images.name == "files" and rel.startswith("files/"):
                rel = rel[len("files/"):]
            image = safe_join(images, rel, source=path, row=r["line"])
            sx, sy = scale_to_file(image, *r["size"])
            phrases = [Phrase(text, tuple(b.scaled(sx, sy) for b in boxes), category)
                       for (text, category), boxes in r["phrases"].items()]
            samples.append(Sample(id=dicom, image=image, patient=r["subject"],
                                  split=r["split"] if has_split else assign[r["subject"]],
                                  phrases=phrases, group=r["study"]))
        return samples

    def _mimic_root(self, folder: Path) -> Path:
        given = self.options["mimic_root"]
        if given is not None:
            base = Path(given).expanduser()
            if not base.is_dir():
                raise DataError("mimic_root does not exist", path=base)
            return base
        if (folder / "files").is_dir():
            return folder
        base = folder
        for _ in range(4):
            for cand in sorted(base.glob("mimic-cxr-jpg*")):
                if (cand / "files").is_dir():
                    return cand
                versions = sorted(p for p in cand.iterdir() if (p / "files").is_dir()) if cand.is_dir() else []
                if versions:
                    return versions[-1]
            base = base.parent
        return folder

    @classmethod
    def write_demo(cls, dest: Path, *, n: int, seed: int) -> None:
        """Synthetic MS-CXR v1.1.0: the CSV on top of a MIMIC-CXR-JPG demo tree written in ``dest``.

        The tree is the MIMIC-CXR demo's own (the same phantom cases, byte for byte), as the real
        MS-CXR annotates MIMIC-CXR images: their features are extracted once and served to both
        datasets by content. Its images with a box of the 8 categories are kept (at most ``n``). Phrases
        name the finding with its size and side as a report would (``small left pleural
        effusion``); boxes on both sides of one finding make one ``bilateral`` phrase with two
        boxes. Coordinates are stated in the demo's original size (``DEMO_ORIGINAL_SIZE``).
        """
        from xrbench.data.datasets.mimic_cxr import DEMO_ORIGINAL_SIZE, demo_cases, write_demo_tree
        from xrbench.data.demo import demo_size

        images = write_demo_tree(Path(dest), *demo_cases(demo_size("mimic-cxr"), seed=seed), seed=seed)
        rows = []
        for img in [i for i in images if any(b[0] in CATEGORIES for b in i.case.boxes)][:n]:
            size = img.case.image.shape[1]
            scale = DEMO_ORIGINAL_SIZE / size
            for text, category, boxes in demo_phrases(img.case):
                for x0, y0, x1, y1 in boxes:
                    xywh = (round(v * scale) for v in (x0, y0, x1 - x0, y1 - y0))
                    rows.append([img.dicom_id, category, text, img.path, *xywh, DEMO_ORIGINAL_SIZE,
                                 DEMO_ORIGINAL_SIZE, img.split])
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([[*COLUMNS, "split"], *rows])
        atomic_write_bytes(Path(dest) / CSV_FILES[0], buf.getvalue().encode())


def demo_phrases(case) -> list[tuple[str, str, list[tuple[float, float, float, float]]]]:
    """(phrase, category, boxes) for each grounded finding of a phantom case, worded from its box."""
    size = case.image.shape[1]
    by_finding: dict[str, list[tuple[float, float, float, float]]] = {}
    for finding, *box in case.boxes:
        if finding in CATEGORIES:
            by_finding.setdefault(finding, []).append(tuple(box))
    out = []
    for finding, boxes in by_finding.items():
        severity = case.findings.get(finding, 0.5)
        grade = ("small", "moderate", "large")[min(2, int(severity * 3))]
        degree = ("mild", "moderate", "severe")[min(2, int(severity * 3))]
        sides = {"right" if (b[0] + b[2]) / 2 < size / 2 else "left" for b in boxes}  # image left = patient right
        side = "bilateral" if len(sides) == 2 else sides.pop()
        centre = min((b[1] + b[3]) / 2 for b in boxes) / size
        zone = "upper" if centre < 0.4 else ("mid" if centre < 0.6 else "lower")
        text = {
            "Cardiomegaly": f"{degree} cardiomegaly",
            "Edema": f"{degree} pulmonary edema",
            "Pleural Effusion": f"{grade} {side} pleural effusion{'s' if side == 'bilateral' else ''}",
            "Pneumothorax": f"{grade} {side} {'apical ' if zone == 'upper' else ''}pneumothorax",
            "Atelectasis": f"{side} {'upper lobe' if zone == 'upper' else 'basilar'} atelectasis",
            "Lung Opacity": f"{side} {zone} zone opacity",
        }.get(finding, f"{side} {zone} zone {finding.lower()}")
        out.append((text, finding, boxes))
    return out


def _parse_row(rec: dict, cols: dict[str, str], path: Path, line: int, has_split: bool) -> dict:
    def text(field: str) -> str:
        value = rec[cols[field]]
        if not isinstance(value, str) or not value.strip():
            raise DataError("is blank", path=path, row=line, field=field)
        return value.strip()

    def number(field: str) -> float:
        return parse_float(rec[cols[field]], path=path, row=line, field=field, allow_blank=False)

    rel = text("path").replace("\\", "/")
    m = _STUDY.search(rel)
    if m is None:
        raise DataError(f"{rel!r}; expected a MIMIC-CXR-JPG path files/pXX/p<subject>/s<study>/<dicom_id>.jpg",
                        path=path, row=line, field="path")
    x, y, w, h = (number(f) for f in ("x", "y", "w", "h"))
    width, height = number("image_width"), number("image_height")
    if w <= 0 or h <= 0 or width <= 0 or height <= 0:
        raise DataError(f"box w, h = {w}, {h} in a {width} x {height} image; expected positive sizes",
                        path=path, row=line)
    category = text("category_name")
    category = _CANONICAL.get(category.lower(), category)
    split = None
    if has_split:
        value = text("split").lower()
        if value not in _SPLITS:
            raise DataError(f"{value!r}; expected train, val or test", path=path, row=line, field="split")
        split = _SPLITS[value]
    return {"dicom_id": text("dicom_id"), "path": rel, "subject": m.group(1), "study": m.group(2),
            "size": (width, height), "split": split, "text": text("label_text"), "category": category,
            "box": Box(x, y, x + w, y + h, category)}

"""MIMIC-CXR-JPG v2.x with the MIMIC-CXR free-text reports: images, CheXpert labels, official split.

The reports are a separate PhysioNet download (``mimic-cxr-reports.zip``, one ``s<study>.txt`` per
study next to the study folder); they are split into sections with the logic of the official
``txt/section_parser.py`` of MIT-LCP/mimic-cxr, with its per-study corrections
(``custom_mimic_cxr_rules``).
"""
from __future__ import annotations

import csv
import gzip
import io
import os
import re
import textwrap
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xrbench.data.base import DatasetLoader, patient_split
from xrbench.data.images import atomic_write_bytes, write_raster
from xrbench.data.labels import parse_chexpert_column
from xrbench.data.paths import locate_root, safe_join
from xrbench.data.sample import Sample
from xrbench.data.tables import find_file, parse_column, read_table, resolve_columns
from xrbench.errors import ConfigError, DataError
from xrbench.registry import DATASETS

#: the 14 label columns of ``mimic-cxr-2.0.0-chexpert.csv`` (alphabetical, as in the file)
LABELS = (
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum", "Fracture",
    "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other", "Pneumonia",
    "Pneumothorax", "Support Devices",
)
METADATA = "mimic-cxr-2.0.0-metadata.csv"
CHEXPERT = "mimic-cxr-2.0.0-chexpert.csv"
#: the same 14 labels by the NegBio labeller (option ``labels="negbio"``), same columns
NEGBIO = "mimic-cxr-2.0.0-negbio.csv"
SPLIT = "mimic-cxr-2.0.0-split.csv"
_SPLITS = {"train": "train", "validate": "val", "test": "test"}
_REPORT_DIRS = ("mimic-cxr-reports/files", "files")
#: the reports as PhysioNet serves them, when not unzipped (members ``files/p10/p10000032/s50414267.txt``)
REPORTS_ZIP = "mimic-cxr-reports.zip"
_ZIP_MEMBER = re.compile(r"(?:^|/)(p\d\d/p\d+/s\d+\.txt)$")  # under files/ or any other prefix
#: the header of the official metadata file
METADATA_HEADER = ("dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition", "Rows",
                   "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning",
                   "ViewCodeSequence_CodeMeaning", "PatientOrientationCodeSequence_CodeMeaning")
#: the demo states this as the original DICOM size (Rows/Columns); its JPGs are smaller, as a resized mirror's
DEMO_ORIGINAL_SIZE = 2048
_INDICATIONS = ("___ with shortness of breath.", "___ year old with cough and fever, evaluate for pneumonia.",
                "___ with chest pain.", "Evaluate for interval change.", "___ with hypoxia.",
                "Preoperative evaluation.", "___ with dyspnea on exertion, assess for edema.")


@DATASETS.register("mimic-cxr")
class MIMICCXR(DatasetLoader):
    """MIMIC-CXR-JPG (images, ``-metadata``, ``-chexpert`` and ``-split`` CSVs, ``.csv`` or ``.csv.gz``).

    Root: the folder holding the CSVs and ``files/`` (e.g. ``physionet.org/files/mimic-cxr-jpg/2.0.0``)
    or its parent. Splits: the official ``split`` column (``validate`` -> ``val``).
    Labels: the per-study CheXpert labels, raw (1 / 0 / -1 uncertain / NaN), on every image of the
    study; a study missing from the labels file gets no labels. ``group`` is the study id.
    Option ``labels``: ``chexpert`` (default, ``-chexpert.csv``) or ``negbio`` (``-negbio.csv``,
    the release's other labeller). Policy ``views``: only images whose ``ViewPosition`` is listed
    are loaded (default the frontal ``PA``/``AP``; ``"all"`` keeps every image, blank view included).
    Reports: from ``reports_root`` (a folder holding ``files/`` or ``mimic-cxr-reports/files/``,
    that ``files/`` itself, or ``mimic-cxr-reports.zip``) or, when not given, the first of
    ``mimic-cxr-reports/files``, ``files`` and an unextracted ``mimic-cxr-reports.zip`` (below the
    root, the dataset folder, or a sibling ``mimic-cxr/<version>`` project folder, as PhysioNet's
    ``wget -r`` leaves it, or ``mimic-cxr-<version>.physionet.org`` from ``gsutil``) that holds
    them; ``text`` maps section name -> whitespace-normalised text and is empty where no report
    exists.
    """

    name = "mimic-cxr"
    anatomy = "chest"
    title = "MIMIC-CXR-JPG with MIMIC-CXR reports"
    source = "https://physionet.org/content/mimic-cxr-jpg/"
    licence = "PhysioNet Credentialed Health Data License 1.5.0 (credentialed access, DUA)"
    label_names = LABELS
    options_spec = {"views": (("PA", "AP"), None), "reports_root": (None, None),
                    "labels": ("chexpert", ("chexpert", "negbio"))}
    demo_size = 130

    def load(self) -> list[Sample]:
        views = _views(self.options["views"])
        folder = locate_root(self.root, METADATA, METADATA + ".gz")
        labels = _read_labels(find_file(folder, NEGBIO if self.options["labels"] == "negbio" else CHEXPERT))
        splits = _read_split(find_file(folder, SPLIT))
        path = find_file(folder, METADATA)
        df = read_table(path)
        cols = resolve_columns(df, path, ("dicom_id", "subject_id", "study_id", "ViewPosition"))
        rows = []
        columns = [df[cols[c]].tolist() for c in ("ViewPosition", "dicom_id", "subject_id", "study_id")]
        for i, (view, dicom, subject, study) in enumerate(zip(*columns)):
            line = i + 2
            view = view.strip() if isinstance(view, str) and view.strip() else None
            if views is not None and (view or "").upper() not in views:
                continue
            dicom = _cell(dicom, path, line, "dicom_id")
            subject = _digits(subject, path, line, "subject_id")
            study = _digits(study, path, line, "study_id")
            if dicom not in splits:
                raise DataError(f"dicom_id {dicom} has no row in {SPLIT}", path=path, row=line)
            rel = f"files/p{subject[:2]}/p{subject}/s{study}/{dicom}.jpg"
            rows.append((dicom, subject, study, view, safe_join(folder, rel, source=path, row=line)))
        reports = self._reports_dir(folder, [(r[1], r[2]) for r in rows])
        texts: dict[str, dict[str, str]] = {}
        samples = []
        self.reports = {"folder": reports, "studies_without_report": 0}
        with _report_reader(reports) as read:
            for dicom, subject, study, view, image in rows:
                if study not in texts:
                    raw = read(subject, study)
                    texts[study] = report_sections(raw, f"s{study}") if raw is not None else {}
                    self.reports["studies_without_report"] += not texts[study]
                samples.append(Sample(id=dicom, image=image, patient=subject, split=splits[dicom],
                                      labels=dict(labels.get((subject, study), {})), text=dict(texts[study]),
                                      group=study, meta={"view": view}))
        return samples

    def report_extra(self) -> dict[str, int | list[str]]:
        """Where the reports were found, and how many studies have none (all of them when the
        reports were not found: the report tasks then keep nothing)."""
        self.samples()
        folder = self.reports["folder"]
        return {"reports_folder": [str(folder)] if folder else ["not found (see docs/datasets.md)"],
                "studies_without_report": self.reports["studies_without_report"]}

    def _reports_dir(self, folder: Path, studies: list[tuple[str, str]]) -> Path | None:
        """The ``files/`` folder (or ``mimic-cxr-reports.zip``) that holds the reports, or None
        when none is found."""
        given = self.options["reports_root"]
        if given is not None:
            base = Path(given).expanduser()
            if base.is_file() and base.suffix.lower() == ".zip":
                return base
            if not base.is_dir():
                raise DataError("reports_root does not exist", path=base)
            found = next((c for c in [*(base / d for d in _REPORT_DIRS), base] if _has_reports(c, studies)), None)
            if found is None and (base / REPORTS_ZIP).is_file():
                return base / REPORTS_ZIP
            return found or (base / "files" if (base / "files").is_dir() else base)
        bases = list(dict.fromkeys([self.root, folder, *_report_projects(folder)]))
        for cand in [b / d for b in bases for d in _REPORT_DIRS]:
            if _has_reports(cand, studies):
                return cand
        return next((b / REPORTS_ZIP for b in bases if (b / REPORTS_ZIP).is_file()), None)

    @classmethod
    def write_demo(cls, dest: Path, *, n: int, seed: int) -> None:
        """Synthetic MIMIC-CXR-JPG: phantom studies (some with a lateral), the three CSVs as ``.csv.gz``
        and official-style reports in a separate ``mimic-cxr-reports/files`` tree."""
        write_demo_tree(Path(dest), *demo_cases(n, seed=seed), seed=seed)


def _report_projects(folder: Path) -> list[Path]:
    """Version folders of a ``mimic-cxr`` project next to the JPG one, up to three levels above
    ``folder``: PhysioNet serves the reports with MIMIC-CXR, not MIMIC-CXR-JPG, so ``wget -r``
    leaves them in ``physionet.org/files/mimic-cxr/<version>/`` (``mimic-cxr-reports.zip`` unzips
    to ``files/`` there) beside ``physionet.org/files/mimic-cxr-jpg/<version>/``. The JPG's own
    version comes first, then the others, newest first. ``gsutil cp -r`` of the project's bucket
    (the download the MIMIC-CXR site recommends) leaves ``mimic-cxr-<version>.physionet.org/``
    instead; those come after, newest first."""
    out: list[Path] = []
    for base in list(folder.parents)[:3]:
        project = base / "mimic-cxr"
        if project.is_dir():
            versions = sorted((p for p in project.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True)
            out += sorted(versions, key=lambda p: p.name != folder.name)
        out += sorted((p for p in base.glob("mimic-cxr-[0-9]*.physionet.org") if p.is_dir()), reverse=True)
    return out


def demo_cases(n: int, *, seed: int) -> tuple[list, int]:
    """(phantom cases, number of lateral studies) of an ``n``-image MIMIC-CXR demo: MS-CXR's demo
    annotates the very same images, as the real MS-CXR annotates MIMIC-CXR's."""
    from xrbench.data.datasets.chexpert import DEMO_PREVALENCE
    from xrbench.data.phantom.chest import generate_chest

    n_lateral = max(1, n // 10)
    return generate_chest(n - n_lateral, seed=seed, prevalence=DEMO_PREVALENCE), n_lateral


@dataclass(frozen=True)
class DemoImage:
    """One frontal image of a demo tree, for writers that annotate it further (MS-CXR)."""

    dicom_id: str
    subject: str
    study: str
    split: str  # train / val / test
    case: object  # the phantom ChestCase drawn

    @property
    def path(self) -> str:
        return f"files/p{self.subject[:2]}/p{self.subject}/s{self.study}/{self.dicom_id}.jpg"


def write_demo_tree(dest: Path, cases: list, n_lateral: int = 0, *, seed: int) -> list[DemoImage]:
    """Write phantom cases as MIMIC-CXR-JPG + reports under ``dest``: one study per case.

    ``n_lateral`` studies also get a ``LATERAL`` image (the frontal flipped and cropped). Labels are
    what the CheXpert labeller would read in the report; the split is patient-disjoint.
    """
    from xrbench.data.datasets.chexpert import lateral_standin, report_labels

    rng = np.random.default_rng(seed)
    subjects = _unique_ids(rng, 10_000_000, len({c.patient for c in cases}))
    subject = dict(zip(dict.fromkeys(c.patient for c in cases), subjects))
    studies = _unique_ids(rng, 50_000_000, len(cases))
    split = patient_split(subjects, seed=seed, val=0.15, test=0.25, salt="mimic-cxr-demo")
    laterals = set(rng.choice(len(cases), size=min(n_lateral, len(cases)), replace=False).tolist())
    seen: set[str] = set()
    meta, labels, splits, out = [], [], [], []
    for i, (case, study) in enumerate(zip(cases, studies)):
        sub = subject[case.patient]
        img = DemoImage(_dicom_id(rng), sub, study, split[sub], case)
        views = [(img.dicom_id, case.view, case.image)]
        if i in laterals:
            views.append((_dicom_id(rng), "LATERAL", lateral_standin(case.image)))
        exam = "CHEST (PA AND LAT)" if case.view == "PA" else "CHEST (PORTABLE AP)"
        date = f"21{rng.integers(10, 90)}{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}"
        hms = rng.integers(0, (24, 60, 60, 1000))
        time = f"{hms[0]:02d}{hms[1]:02d}{hms[2]:02d}.{hms[3]:03d}"
        for dicom, view, pixels in views:
            write_raster(dest / f"files/p{sub[:2]}/p{sub}/s{study}/{dicom}.jpg", pixels)
            meaning = {"PA": "postero-anterior", "AP": "antero-posterior", "LATERAL": "lateral"}[view]
            meta.append([dicom, sub, study, exam, view, DEMO_ORIGINAL_SIZE, DEMO_ORIGINAL_SIZE, date, time, exam,
                         meaning, "Erect" if view != "AP" else ""])
            splits.append([dicom, study, sub, "validate" if img.split == "val" else img.split])
        cells = report_labels(case)
        labels.append([sub, study, *(cells[n] for n in LABELS)])
        report = _report(case, exam, rng, prior=sub in seen)
        seen.add(sub)
        atomic_write_bytes(dest / f"mimic-cxr-reports/files/p{sub[:2]}/p{sub}/s{study}.txt", report.encode())
        out.append(img)
    _write_gz(dest / (METADATA + ".gz"), METADATA_HEADER, meta)
    _write_gz(dest / (CHEXPERT + ".gz"), ("subject_id", "study_id", *LABELS), labels)
    _write_gz(dest / (SPLIT + ".gz"), ("dicom_id", "study_id", "subject_id", "split"), splits)
    return out


def _unique_ids(rng: np.random.Generator, base: int, n: int) -> list[str]:
    """``n`` distinct 8-digit ids from ``base`` (subjects 1xxxxxxx, studies 5xxxxxxx)."""
    ids: dict[int, None] = {}
    while len(ids) < n:
        ids[base + int(rng.integers(0, 10_000_000))] = None
    return [str(i) for i in ids]


def _dicom_id(rng: np.random.Generator) -> str:
    return "-".join(rng.bytes(4).hex() for _ in range(5))


def _report(case, exam: str, rng: np.random.Generator, *, prior: bool) -> str:
    """The case's report in the official layout: ``FINAL REPORT``, `` HEADER:`` lines, 79-char lines."""
    def para(text: str) -> list[str]:
        return [" " + line for line in textwrap.wrap(" ".join(text.split()), width=78)]

    technique = "Chest PA and lateral views." if "PA" in exam else "Single portable AP view of the chest."
    lines = [" " * 33 + "FINAL REPORT", f" EXAMINATION:  {exam}", " ",
             *para(f"INDICATION:  {_INDICATIONS[int(rng.integers(len(_INDICATIONS)))]}"), " ",
             f" TECHNIQUE:  {technique}", " ",
             f" COMPARISON:  {'___.' if prior else 'None.'}", " ",
             " FINDINGS: ", " ", *para(case.report.get("findings", "")), " ",
             " IMPRESSION: ", " ", *para(case.report.get("impression", ""))]
    return "\n".join(lines) + "\n"


def _write_gz(path: Path, header: tuple[str, ...], rows: list[list]) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([list(header), *rows])
    atomic_write_bytes(path, gzip.compress(buf.getvalue().encode(), mtime=0))


def _views(value) -> frozenset[str] | None:
    if isinstance(value, str):
        if value.strip().lower() == "all":
            return None
        value = value.split(",")
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"dataset 'mimic-cxr': option views={value!r}; expected 'all' or a list of "
                          "ViewPosition values such as ['PA', 'AP']")
    return frozenset(v.strip().upper() for v in value)


def _cell(value, path: Path, line: int, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DataError("is blank", path=path, row=line, field=field)
    return value.strip()


def _digits(value, path: Path, line: int, field: str) -> str:
    """An id such as subject_id/study_id as its digits (``10000032``; ``10000032.0`` from a float)."""
    text = _cell(value, path, line, field)
    m = re.fullmatch(r"(\d+)(?:\.0+)?", text)
    if m is None:
        raise DataError(f"{text!r}; expected a numeric id", path=path, row=line, field=field)
    return m.group(1)


def _read_labels(path: Path) -> dict[tuple[str, str], dict[str, float]]:
    df = read_table(path)
    cols = resolve_columns(df, path, ("subject_id", "study_id", *LABELS))
    values = np.stack([parse_chexpert_column(df[cols[n]], path=path, field=n) for n in LABELS], axis=1)
    out = {}
    for i, (subject, study, row) in enumerate(zip(df[cols["subject_id"]].tolist(), df[cols["study_id"]].tolist(),
                                                  values.tolist())):
        line = i + 2
        key = (_digits(subject, path, line, "subject_id"), _digits(study, path, line, "study_id"))
        out[key] = dict(zip(LABELS, row))
    return out


def _read_split(path: Path) -> dict[str, str]:
    df = read_table(path)
    cols = resolve_columns(df, path, ("dicom_id", "split"))
    def split(value, row: int) -> str:
        value = _cell(value, path, row, "split")
        if value not in _SPLITS:
            raise DataError(f"{value!r}; expected one of {list(_SPLITS)}", path=path, row=row, field="split")
        return _SPLITS[value]

    splits = parse_column(df[cols["split"]], split).tolist()
    return {_cell(d, path, i + 2, "dicom_id"): sp for i, (d, sp) in enumerate(zip(df[cols["dicom_id"]].tolist(), splits))}


def _report_path(files: Path | str, subject: str, study: str) -> str:
    return f"{files}/p{subject[:2]}/p{subject}/s{study}.txt"


def _has_reports(files: Path, studies: list[tuple[str, str]]) -> bool:
    """Whether ``files`` holds the report of one of the first 20 studies."""
    return any(os.path.isfile(_report_path(files, subject, study)) for subject, study in studies[:20])


@contextmanager
def _report_reader(where: Path | None):
    """A ``read(subject, study)`` -> the raw report text (newlines as ``\\n``) or None, from a
    ``files/`` folder or from ``mimic-cxr-reports.zip`` read in place (closed on exit); every
    report is None when ``where`` is."""
    if where is None:
        yield lambda subject, study: None
    elif where.suffix.lower() != ".zip":
        def read(subject: str, study: str) -> str | None:
            try:
                with open(_report_path(where, subject, study), encoding="utf-8", errors="replace") as f:
                    return f.read()
            except FileNotFoundError:
                return None
        yield read
    else:
        try:
            archive = zipfile.ZipFile(where)
            members = {m.group(1): name for name in archive.namelist() if (m := _ZIP_MEMBER.search(name))}
        except (OSError, zipfile.BadZipFile) as e:
            raise DataError(f"cannot be read as a zip archive ({e})", path=where) from None

        def read_zip(subject: str, study: str) -> str | None:
            name = members.get(f"p{subject[:2]}/p{subject}/s{study}.txt")
            if name is None:
                return None
            text = archive.read(name).decode("utf-8", errors="replace")
            return text.replace("\r\n", "\n").replace("\r", "\n")  # as a text-mode open reads it
        with archive:
            yield read_zip


# --------------------------------------------------------------------------- report sections
# The logic of MIT-LCP/mimic-cxr txt/section_parser.py (section_text, normalize_section_names) and
# txt/create_section_files.py (the last occurrence of a section name wins).

_HEADER = re.compile(r"\n ([A-Z ()/,-]+):\s")
#: frequent header spellings -> section name (the official table, typos included)
_SECTION_NAMES = {
    "comparisons": "comparison", "clinical history": "history", "reason for examination": "indication",
    "reason for exam": "indication", "clinical information": "history", "exam": "examination",
    "clinical indication": "indication", "conclusion": "impression", "chest, two views": "findings",
    "recommendation(s)": "recommendations", "type of examination": "examination",
    "reference exam": "comparison", "patient history": "history", "comparison exam": "comparison",
    "findings and impression": "impression", "comparison film": "comparison",
    "findings/impression": "impression", "pfi": "history", "recommendation": "recommendations",
    "wetread": "wet read", "ndication": "impression", "impresson": "impression",
    "imprression": "impression", "imoression": "impression", "impressoin": "impression",
    "imprssion": "impression", "impresion": "impression", "imperssion": "impression",
    "mpression": "impression", "impession": "impression", "findings/ impression": "impression",
    "finding": "findings", "findins": "findings", "findindgs": "findings", "findgings": "findings",
    "findngs": "findings", "findnings": "findings", "finidngs": "findings", "idication": "indication",
    "reference findings": "findings", "comparision": "comparison", "comparsion": "comparison",
    "comparrison": "comparison", "comparisions": "comparison",
}
_MAIN_SECTIONS = ("impression", "findings", "history", "comparison", "addendum")
_FINDINGS_LIKE = re.compile(
    "(chest|portable|pa and lateral|lateral and pa|ap and lateral|lateral and ap|frontal and|two views|"
    "frontal view|pa view|ap view|one view|lateral view|bone window|frontal upright|frontal semi-upright|"
    "ribs|pa and lat)")


def _section_name(raw: str) -> str:
    name = raw.lower().strip()
    if name in _SECTION_NAMES:
        return _SECTION_NAMES[name]
    main = next((m for m in _MAIN_SECTIONS if m in name), None)
    if main is not None:
        return main
    return "findings" if _FINDINGS_LIKE.search(name) else name


def section_text(text: str) -> dict[str, str]:
    """Report sections by name, as the official MIMIC-CXR parser splits them.

    Headers are ``\\n <UPPER CASE>:``; the text before the first is ``preamble``; a report without
    headers is ``full report``; empty findings/impression sections are dropped; a report with
    neither gets its last paragraph as ``last_paragraph``. When a name occurs twice, the last wins.
    Values are whitespace-normalised.
    """
    sections: list[tuple[str, str]] = []
    m = _HEADER.search(text)
    if m is None:
        sections.append(("full report", text))
    else:
        sections.append(("preamble", text[:m.start(1)]))
        while m is not None:
            name, start = m.group(1), m.end()
            skip = text[start:].find("\n")  # the official parser skips to the next line
            m = _HEADER.search(text, start + max(skip, 0))
            sections.append((_section_name(name), text[start:m.start() if m else len(text)]))
    sections = [(n, t) for n, t in sections if not (n in ("findings", "impression") and not t.strip())]
    names = [n for n, _ in sections]
    if "findings" not in names and "impression" not in names and "\n \n" in sections[-1][1]:
        name, last = sections[-1]
        first, *rest = last.split("\n \n")
        sections[-1] = (name, first)
        sections.append(("last_paragraph", "\n \n".join(rest)))
    out: dict[str, str] = {}
    for name, body in sections:
        out[name] = " ".join(body.split())
    return {k: v for k, v in out.items() if v}


# txt/section_parser.py custom_mimic_cxr_rules(): reports the official parser mis-splits.
#: study -> the section that holds the report's conclusion (mis-named, e.g. in RECOMMENDATIONS)
CUSTOM_SECTION_NAMES = {
    "s50913680": "recommendations", "s59363654": "examination", "s59279892": "technique",
    "s59768032": "recommendations", "s57936451": "indication", "s50058765": "indication",
    "s53356173": "examination", "s53202765": "technique", "s50808053": "technique",
    "s51966317": "indication", "s50743547": "examination", "s56451190": "note",
    "s59067458": "recommendations", "s59215320": "examination", "s55124749": "indication",
    "s54365831": "indication", "s59087630": "recommendations", "s58157373": "recommendations",
    "s56482935": "recommendations", "s58375018": "recommendations", "s54654948": "indication",
    "s55157853": "examination", "s51491012": "history",
}
#: study -> [start, end) character span of its findings in the raw report ([0, 0]: none at all)
CUSTOM_INDICES = {
    "s50525523": (201, 349), "s57564132": (233, 554), "s59982525": (313, 717), "s53488209": (149, 475),
    "s54875119": (234, 988), "s50196495": (59, 399), "s56579911": (59, 218), "s52648681": (292, 631),
    "s59889364": (172, 453), "s53514462": (73, 377), "s59505494": (59, 450), "s53182247": (59, 412),
    "s51410602": (47, 320), "s56412866": (522, 822), "s54986978": (59, 306), "s59003148": (262, 505),
    "s57150433": (61, 394), "s56760320": (219, 457), "s59562049": (158, 348), "s52674888": (145, 296),
    "s55258338": (192, 568), "s59330497": (140, 655), "s52119491": (179, 454),
    "s58235663": (0, 0), "s50798377": (0, 0), "s54168089": (0, 0), "s53071062": (0, 0),
    "s56724958": (0, 0), "s54231141": (0, 0), "s53607029": (0, 0), "s52035334": (0, 0),
}


def report_sections(text: str, study: str) -> dict[str, str]:
    """:func:`section_text` with the official per-study corrections (``study`` as ``s<id>``).

    As ``txt/create_section_files.py`` applies them: a study in :data:`CUSTOM_INDICES` has as its
    findings the given span of the raw text (none for an empty span) and no impression; a study
    in :data:`CUSTOM_SECTION_NAMES` has as its impression the last section of the given name.
    """
    sections = section_text(text)
    if study in CUSTOM_INDICES:
        start, end = CUSTOM_INDICES[study]
        sections = {k: v for k, v in sections.items() if k not in ("findings", "impression")}
        span = " ".join(text[start:end].split())
        return {**sections, "findings": span} if span else sections
    if study in CUSTOM_SECTION_NAMES and CUSTOM_SECTION_NAMES[study] in sections:
        sections["impression"] = sections[CUSTOM_SECTION_NAMES[study]]
    return sections

"""MURA v1.1 (Stanford musculoskeletal radiographs): normal/abnormal upper-limb studies.

Official layout (``research/datasets.md`` §9)::

    MURA-v1.1/train_image_paths.csv        header-less, one image path per line
    MURA-v1.1/train_labeled_studies.csv    header-less, ``<study dir>/,<0|1>``
    MURA-v1.1/valid_image_paths.csv, valid_labeled_studies.csv
    MURA-v1.1/{train,valid}/XR_<PART>/patient<NNNNN>/study<n>_{positive|negative}/image<n>.png

Paths in the CSVs start with ``MURA-v1.1/`` and are relative to that folder's parent.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from xrbench.data.base import DatasetLoader, patient_split
from xrbench.data.images import write_raster
from xrbench.data.paths import locate_root, safe_join
from xrbench.data.sample import Sample
from xrbench.data.tables import find_file, read_table
from xrbench.errors import DataError
from xrbench.registry import DATASETS

#: ``<split>/XR_<PART>/patient<id>/study<n>_<positive|negative>/<file>`` below the MURA folder
_IMAGE_RE = re.compile(r"^(train|valid)/XR_([A-Z]+)/(patient\d+)/(study\d+_(positive|negative))/([^/]+)$")
_OFFICIAL = {"train": "train", "valid": "test"}  # the official test set is hidden
_PREFIX = "MURA-v1.1"


@DATASETS.register("mura")
class MURA(DatasetLoader):
    """MURA v1.1, one sample per image with its study's label.

    - Labels are per study (``*_labeled_studies.csv``); every image of a study carries it,
      ``group`` is the study folder so that metrics can aggregate per study. The folder suffix
      (``_positive``/``_negative``) must agree with the CSV label, else :class:`DataError`.
    - Splits: official ``valid`` -> ``test`` (the real test set is hidden); ``val`` is carved from
      ``train`` by patient (10%, seeded, hash-based). ``patient`` is ``patientNNNNN``: one patient
      may have studies of several body parts, and all of them fall in the same split.
    - Policy: paths whose file name starts with ``._`` (macOS resource forks that some copies list
      in ``*_image_paths.csv``) are not images and are skipped; ``xrbench data check`` prints
      their count (:meth:`report_extra`).
    - The first folder of each CSV path (``MURA-v1.1``) is replaced by the dataset folder found,
      so a renamed folder still loads; the root may be that folder or its parent.
    """

    name = "mura"
    anatomy = "upper limb"
    title = "MURA v1.1 (musculoskeletal radiographs, 7 upper-limb parts)"
    source = "https://stanfordmlgroup.github.io/competitions/mura/"
    licence = "Stanford University School of Medicine MURA Dataset Research Use Agreement"
    label_names = ("abnormal",)
    demo_size = 160
    #: filled by :meth:`load`: ``._*`` entries of the image lists that were skipped
    skipped_resource_forks: int = 0

    def load(self) -> list[Sample]:
        folder = locate_root(self.root, "train_labeled_studies.csv", "train_labeled_studies.csv.gz")
        self.skipped_resource_forks = 0
        rows: list[tuple[str, Path, str, str, str, int]] = []  # id, path, official, part, patient, y
        for official in ("train", "valid"):
            rows.extend(self._read_split(folder, official))
        train_patients = [r[4] for r in rows if r[2] == "train"]
        carve = patient_split(train_patients, seed=self.seed, val=0.1, salt=self.name)
        samples = []
        for sid, path, official, part, patient, y in rows:
            split = carve[patient] if official == "train" else _OFFICIAL[official]
            samples.append(Sample(id=sid, image=path, patient=patient, split=split,
                                  labels={"abnormal": float(y)}, target=y,
                                  group=sid.rsplit("/", 1)[0],
                                  meta={"body_part": part, "official_split": official}))
        return samples

    def report_extra(self) -> dict[str, int | list[str]]:
        return {"skipped_resource_forks": self.skipped_resource_forks}

    def _read_split(self, folder: Path, official: str) -> list[tuple[str, Path, str, str, str, int]]:
        studies = _read_study_labels(find_file(folder, f"{official}_labeled_studies.csv"), official)
        paths_csv = find_file(folder, f"{official}_image_paths.csv")
        table = read_table(paths_csv, header=None)
        if table.shape[1] != 1:
            raise DataError(f"expected one column (an image path per line), found {table.shape[1]}",
                            path=paths_csv)
        out, seen_studies, first_row = [], set(), {}
        for i, raw in enumerate(table.iloc[:, 0].tolist()):
            row = i + 1
            rel = _strip_prefix(raw, paths_csv, row)
            if rel.rsplit("/", 1)[-1].startswith("._"):
                self.skipped_resource_forks += 1
                continue
            if first_row.setdefault(rel, row) != row:
                raise DataError(f"image path {raw!r} is listed twice (first on row {first_row[rel]})",
                                path=paths_csv, row=row)
            m = _IMAGE_RE.match(rel)
            if m is None or m.group(1) != official:
                raise DataError(f"image path {raw!r} does not match "
                                f"'{_PREFIX}/{official}/XR_<PART>/patient<id>/study<n>_<positive|negative>/<file>'",
                                path=paths_csv, row=row)
            study = rel.rsplit("/", 1)[0]
            if study not in studies:
                raise DataError(f"study {study!r} of this image is not in {official}_labeled_studies.csv",
                                path=paths_csv, row=row)
            label = studies[study]
            if label != (m.group(5) == "positive"):
                raise DataError(f"study {study!r} is labelled {label} in {official}_labeled_studies.csv "
                                f"but its folder says '{m.group(5)}'", path=paths_csv, row=row)
            seen_studies.add(study)
            out.append((rel, safe_join(folder, rel, source=paths_csv, row=row), official,
                        m.group(2), m.group(3), label))
        missing = sorted(set(studies) - seen_studies)
        if missing:
            raise DataError(f"{len(missing)} labelled stud{'y has' if len(missing) == 1 else 'ies have'} "
                            f"no image in {paths_csv.name}, e.g. {missing[0]!r}", path=paths_csv)
        return out

    @classmethod
    def write_demo(cls, dest: Path, *, n: int, seed: int) -> None:
        """Synthetic MURA: phantom upper-limb studies of 1-3 images in the official tree and CSVs."""
        from xrbench.data.phantom.limbs import generate_studies

        dest = Path(dest)
        folder = dest / _PREFIX
        studies = generate_studies(n, seed=seed)
        rng = np.random.default_rng(seed)
        patients = sorted({s.patient for s in studies})
        valid_patients = set(rng.choice(patients, size=max(1, len(patients) // 5), replace=False).tolist())
        image_lines: dict[str, list[str]] = {"train": [], "valid": []}
        study_lines: dict[str, list[str]] = {"train": [], "valid": []}
        study_no: dict[tuple[str, str], int] = {}
        for st in studies:
            official = "valid" if st.patient in valid_patients else "train"
            key = (st.patient, st.part)
            study_no[key] = study_no.get(key, 0) + 1
            suffix = "positive" if st.abnormal else "negative"
            study_dir = f"{_PREFIX}/{official}/XR_{st.part}/{st.patient}/study{study_no[key]}_{suffix}"
            study_lines[official].append(f"{study_dir}/,{int(st.abnormal)}")
            for k, case in enumerate(st.images, start=1):
                rel = f"{study_dir}/image{k}.png"
                write_raster(dest / rel, case.image, bits=8)
                image_lines[official].append(rel)
        for official in ("train", "valid"):
            _write_lines(folder / f"{official}_image_paths.csv", image_lines[official])
            _write_lines(folder / f"{official}_labeled_studies.csv", study_lines[official])


def _strip_prefix(raw: object, source: Path, row: int) -> str:
    """A CSV path without its first folder (``MURA-v1.1``) and trailing ``/``, checked to be a plain
    relative path (string operations: 200k rows)."""
    text = str(raw).strip().replace("\\", "/") if raw == raw else ""
    _, sep, rest = text.partition("/")
    rest = rest.rstrip("/")
    if not sep or not rest or text.startswith("/"):
        raise DataError(f"path {raw!r} must look like '{_PREFIX}/<split>/...'", path=source, row=row)
    return rest


def _read_study_labels(path: Path, official: str) -> dict[str, int]:
    """``study dir (no prefix, no trailing slash) -> 0/1`` from a header-less labeled_studies CSV."""
    table = read_table(path, header=None)
    if table.shape[1] != 2:
        raise DataError(f"expected two columns '<study dir>/,<label>', found {table.shape[1]}", path=path)
    out: dict[str, int] = {}
    for i, (raw, label) in enumerate(table.itertuples(index=False, name=None)):
        row = i + 1
        study = _strip_prefix(raw, path, row)
        if str(label).strip() not in ("0", "1"):
            raise DataError(f"{label!r} is not 0 or 1", path=path, row=row, field="label")
        if study in out:
            raise DataError(f"study {study!r} is listed twice", path=path, row=row)
        out[study] = int(str(label).strip())
    return out


def _write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))

"""SIIM-ACR Pneumothorax Segmentation (2019): chest DICOMs with run-length-encoded pneumothorax masks.

Layout (Kaggle / the ``siim-train-test`` mirror; root = the folder holding the CSV, or its parent)::

    train-rle.csv            header ``ImageId, EncodedPixels`` (a space before EncodedPixels)
      or stage_2_train.csv   header ``ImageId,EncodedPixels`` (stage 2; preferred when both exist)
    dicom-images-train/<StudyUID>/<SeriesUID>/<SOPInstanceUID>.dcm
    dicom-images-test/<StudyUID>/<SeriesUID>/<SOPInstanceUID>.dcm

``ImageId`` is the SOPInstanceUID, i.e. the DICOM's file name. DICOMs are found by indexing the
whole root (the UID folders cannot be derived from the CSV). ``EncodedPixels`` is the SIIM
relative column-major RLE (:mod:`xrbench.data.masks`); ``-1`` or blank means no pneumothorax;
an image with several pneumothoraces has several rows, OR-ed into one mask
(``MaskRef(kind="siim-rle", source=<its non-empty RLE strings>)``). Label: ``Pneumothorax`` is 1
when any row of the image has a mask.

Mask size: an RLE is only meaningful at its image's size, so the loader reads Rows/Columns from
the DICOM header of every positive image (2-3k header reads on the real data) and validates its
RLE there, naming the CSV row. Negative images get the size most positive images have (the real
images are all 1024x1024; 1024x1024 when no image is positive) without a header read.

Not loaded, and listed for ``xrbench data check``: ``unlabelled`` = DICOMs under the root with no
CSV row (some train DICOMs, and the stage-1 test images when only ``train-rle.csv`` is present);
``missing`` = CSV ImageIds with no DICOM under the root.

Splits: the release has no labelled test split, so train/val/test are carved from the labelled
images with ``patient_split`` (val 0.1, test 0.2). ``patient`` is the ImageId: the CSV carries no
patient id, and reading the DICOM PatientID of 12k files would cost a header read per image; for
the same reason no sex/age/view metadata is read (reading it for positives only would leak the
label into ``meta``).
"""
from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np

from xrbench.data.base import DatasetLoader, patient_split
from xrbench.data.images import image_size, write_dicom
from xrbench.data.masks import is_empty_rle, rle_encode, rle_runs
from xrbench.data.paths import index_by_name, locate_root
from xrbench.data.sample import MaskRef, Sample
from xrbench.data.tables import find_file, read_table, resolve_columns
from xrbench.errors import DataError
from xrbench.registry import DATASETS

LABEL = "Pneumothorax"
#: the size of every real SIIM-ACR image, used for negatives when no positive image says otherwise
DEFAULT_SIZE = (1024, 1024)
CSV_NAMES = ("stage_2_train.csv", "train-rle.csv")


@DATASETS.register("siim-acr")
class SIIMACR(DatasetLoader):
    """SIIM-ACR Pneumothorax: one label and a mask per image; see the module docstring."""

    name = "siim-acr"
    anatomy = "chest"
    title = "SIIM-ACR Pneumothorax Segmentation"
    source = "https://www.kaggle.com/c/siim-acr-pneumothorax-segmentation"
    licence = "Kaggle competition rules (SIIM-ACR Pneumothorax Segmentation); terms beyond that not stated"
    label_names = (LABEL,)
    demo_size = 130
    #: filled by :meth:`load`: ImageIds of DICOMs without a CSV row / of CSV rows without a DICOM
    unlabelled: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    def load(self) -> list[Sample]:
        root = locate_root(self.root, *CSV_NAMES, *(f"{n}.gz" for n in CSV_NAMES))
        path = find_file(root, *CSV_NAMES)
        rows = _read_rle_rows(path)
        found = index_by_name(root, (".dcm",), allow_symlinks=self.allow_symlinks)
        dicoms = {Path(name).stem: p for name, p in found.items()}
        self.unlabelled = tuple(sorted(set(dicoms) - set(rows)))
        self.missing = tuple(image_id for image_id in rows if image_id not in dicoms)
        present = [image_id for image_id in rows if image_id in dicoms]
        sizes = {image_id: image_size(dicoms[image_id]) for image_id in present
                 if any(not is_empty_rle(rle) for _, rle in rows[image_id])}
        default = Counter(sizes.values()).most_common(1)[0][0] if sizes else DEFAULT_SIZE
        assign = patient_split(present, seed=self.seed, val=0.1, test=0.2, salt=self.name)
        out = []
        for image_id in present:
            height, width = sizes.get(image_id, default)
            strings = []
            for row, rle in rows[image_id]:
                rle_runs(rle, height, width, path=path, row=row, field="EncodedPixels")
                if not is_empty_rle(rle):
                    strings.append(rle.strip())
            out.append(Sample(id=image_id, image=dicoms[image_id], patient=image_id,
                              split=assign[image_id], labels={LABEL: float(bool(strings))},
                              mask=MaskRef(kind="siim-rle", source=tuple(strings), height=height, width=width)))
        return out

    def report_extra(self) -> dict[str, int | list[str]]:
        """For ``xrbench data check``: DICOMs without a CSV row, and CSV ImageIds without a DICOM."""
        return {"unlabelled": list(self.unlabelled), "missing": list(self.missing)}

    @classmethod
    def write_demo(cls, dest: Path, *, n: int, seed: int) -> None:
        """Synthetic chest phantoms in the Kaggle layout (see :func:`_write_demo`)."""
        _write_demo(Path(dest), n=n, seed=seed)


def _read_rle_rows(path: Path) -> dict[str, list[tuple[int, str]]]:
    """ImageId -> its (file line, EncodedPixels) rows, in file order; blank cells read as ``-1``."""
    df = read_table(path)
    cols = resolve_columns(df, path, ("ImageId", "EncodedPixels"))
    rows: dict[str, list[tuple[int, str]]] = {}
    for i, (image_id, rle) in enumerate(zip(df[cols["ImageId"]].tolist(), df[cols["EncodedPixels"]].tolist())):
        line = i + 2  # header is line 1
        if not isinstance(image_id, str) or not image_id.strip():
            raise DataError("is blank; expected a SOPInstanceUID", path=path, row=line, field=cols["ImageId"])
        rows.setdefault(image_id.strip(), []).append((line, rle if isinstance(rle, str) else "-1"))
    return rows


# --------------------------------------------------------------------------- demo writer


def _write_demo(dest: Path, *, n: int, seed: int) -> None:
    """Phantoms with pneumothorax prevalence 0.35, as DICOMs in the nested UID tree (8-bit like the
    real files, every 4th MONOCHROME1). ``train-rle.csv`` has the real header with its leading
    space, `` -1`` for negatives and the phantom's pneumothorax mask as RLE; every 3rd positive is
    split into two rows (upper and lower part). Every 20th image goes to ``dicom-images-test`` and
    every 25th train image gets no CSV row: both are unlabelled, as in the real download. The demo
    has one image per patient, as the loader assumes. Synthetic data."""
    from xrbench.data.phantom.chest import generate_chest

    cases = generate_chest(n, seed=seed, images_per_patient=1.0, prevalence={LABEL: 0.35})
    lines = ["ImageId, EncodedPixels"]
    positives = 0
    for i, case in enumerate(cases):
        study, series, sop = (_uid(f"siim|{seed}|{i}|{level}") for level in ("study", "series", "sop"))
        tree = "dicom-images-test" if i % 20 == 19 else "dicom-images-train"
        write_dicom(dest / tree / study / series / f"{sop}.dcm", case.image, bits_stored=8,
                    photometric="MONOCHROME1" if i % 4 == 1 else "MONOCHROME2", patient_id=sop,
                    study_uid=study, series_uid=series, sop_uid=sop, view=case.view, sex=case.sex,
                    age=f"{case.age:03d}Y", body_part="CHEST")
        if tree == "dicom-images-test" or i % 25 == 24:
            continue
        mask = case.masks.get(LABEL) if LABEL in case.findings else None
        if mask is None or not mask.any():
            lines.append(f"{sop}, -1")
            continue
        positives += 1
        for part in (_split_rows(mask) if positives % 3 == 0 else [mask]):
            lines.append(f"{sop}, {rle_encode(part)}")
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "train-rle.csv").write_text("\n".join(lines) + "\n")


def _split_rows(mask: np.ndarray) -> list[np.ndarray]:
    """A mask cut at the middle row of its extent into two non-empty parts (one when it is 1 row)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cut = (rows[0] + rows[-1] + 1) // 2
    upper, lower = mask.copy(), mask.copy()
    upper[cut:] = False
    lower[:cut] = False
    return [p for p in (upper, lower) if p.any()]


def _uid(key: str) -> str:
    """A valid, unique DICOM UID (``2.25.<128-bit int>``) derived from a key."""
    return "2.25." + str(int(hashlib.md5(key.encode()).hexdigest(), 16))

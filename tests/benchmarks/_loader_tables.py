"""Generated full-scale tables in each dataset's official layout, for the loader benchmarks.

Each writer creates the metadata files of ~200k rows and only the image files the loader itself
touches at load time (most loaders touch none: paths come from the tables). Values are random but
valid, so the benchmarks time the real reading code end to end.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

ROWS = 200_000


def _write(path: Path, lines: list[str], gz: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    if gz:
        path.write_bytes(gzip.compress(text.encode(), compresslevel=1, mtime=0))
    else:
        path.write_text(text)


def _touch_all(paths: list[Path]) -> None:
    """Empty files (the loaders that walk the tree only list names)."""
    for d in {p.parent for p in paths}:
        d.mkdir(parents=True, exist_ok=True)
    for p in paths:
        os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o644))


def chexpert(dest: Path, n: int = ROWS, seed: int = 0) -> Path:
    """``CheXpert-v1.0-small/{train,valid}.csv``: ``n`` train rows (3 per patient), 234 valid rows."""
    from xrbench.data.datasets.chexpert import HEADER

    rng = np.random.default_rng(seed)
    cells = np.array(["1.0", "0.0", "-1.0", ""])
    folder = dest / "CheXpert-v1.0-small"
    for split, rows in (("train", n), ("valid", 234)):
        labels = cells[rng.choice(4, size=(rows, 14), p=[0.15, 0.15, 0.1, 0.6])]
        lines = [",".join(HEADER)]
        for i in range(rows):
            patient = i // 3 + (1 if split == "train" else 64541)
            view = "Frontal,AP" if i % 3 else "Lateral,"
            lines.append(f"CheXpert-v1.0-small/{split}/patient{patient:05d}/study{i % 3 + 1}/view1_frontal.jpg,"
                         f"{'Male' if i % 2 else 'Female'},{20 + i % 70},{view}," + ",".join(labels[i]))
        _write(folder / f"{split}.csv", lines)
    return dest


_MIMIC_REPORT = ("                                 FINAL REPORT\n EXAMINATION:  CHEST (PA AND LAT)\n \n"
                 " INDICATION:  ___ with cough.\n \n FINDINGS: \n \n The lungs are clear.  No pleural effusion or\n"
                 " pneumothorax.\n \n IMPRESSION: \n \n No acute cardiopulmonary process.\n")


def mimic(dest: Path, n: int = ROWS, seed: int = 0) -> Path:
    """The three MIMIC-CXR-JPG CSVs (``.csv.gz``), ``n`` images, 2 per study, and a report per study
    in ``mimic-cxr-reports/files`` (the loader reads every frontal study's report at load time)."""
    from xrbench.data.datasets.mimic_cxr import CHEXPERT, LABELS, METADATA, METADATA_HEADER, SPLIT

    rng = np.random.default_rng(seed)
    cells = np.array(["1.0", "0.0", "-1.0", ""])
    meta, split, label = [",".join(METADATA_HEADER)], ["dicom_id,study_id,subject_id,split"], \
        [",".join(("subject_id", "study_id", *LABELS))]
    values = cells[rng.choice(4, size=(n // 2 + 1, len(LABELS)), p=[0.15, 0.15, 0.1, 0.6])]
    for i in range(n):
        subject, study, dicom = 10_000_000 + i // 6, 50_000_000 + i // 2, f"{i:08x}-dicom"
        view = ("PA", "AP", "LATERAL")[i % 3]
        meta.append(f"{dicom},{subject},{study},CHEST,{view},3056,2544,21800101,101010.000,CHEST,x,Erect")
        split.append(f"{dicom},{study},{subject},{('train', 'validate', 'test')[(i // 6) % 3] if i % 50 else 'test'}")
        if i % 2 == 0:
            label.append(f"{subject},{study}," + ",".join(values[i // 2]))
            report = dest / f"mimic-cxr-reports/files/p{str(subject)[:2]}/p{subject}/s{study}.txt"
            if i % 6 == 0:
                report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text(_MIMIC_REPORT)
    _write(dest / (METADATA + ".gz"), meta, gz=True)
    _write(dest / (SPLIT + ".gz"), split, gz=True)
    _write(dest / (CHEXPERT + ".gz"), label, gz=True)
    return dest


def nih(dest: Path, n: int = ROWS, seed: int = 0, files: bool = True) -> Path:
    """``Data_Entry_2017.csv``, the two lists and ``images_0XX/images/*.png`` (empty files: the
    loader indexes the tree by file name, it does not read them)."""
    from xrbench.data.datasets.nih_cxr14 import FINDINGS

    rng = np.random.default_rng(seed)
    lines = ["Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
             "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"]
    names, test, trainval = [], [], []
    for i in range(n):
        patient, follow = i // 4 + 1, i % 4
        name = f"{patient:08d}_{follow:03d}.png"
        k = int(rng.integers(0, 3))
        found = "|".join(sorted(rng.choice(FINDINGS, size=k, replace=False))) if k else "No Finding"
        lines.append(f"{name},{found},{follow},{patient},{30 + i % 60},{'MF'[i % 2]},PA,2500,2048,0.143,0.143,")
        names.append(name)
        (test if patient % 5 == 0 else trainval).append(name)
    _write(dest / "Data_Entry_2017.csv", lines)
    _write(dest / "test_list.txt", test)
    _write(dest / "train_val_list.txt", trainval)
    if files:
        _touch_all([dest / f"images_{1 + i * 12 // n:03d}" / "images" / name for i, name in enumerate(names)])
    return dest


def mura(dest: Path, n: int = ROWS, seed: int = 0) -> Path:
    """``MURA-v1.1/{train,valid}_{image_paths,labeled_studies}.csv``, 3 images per study."""
    parts = ("ELBOW", "FINGER", "FOREARM", "HAND", "HUMERUS", "SHOULDER", "WRIST")
    folder = dest / "MURA-v1.1"
    for official, rows in (("train", n), ("valid", n // 20)):
        paths, studies = [], []
        for i in range(0, rows, 3):
            patient, y = i // 6 + (1 if official == "train" else 900_000), (i // 3) % 2
            study = f"MURA-v1.1/{official}/XR_{parts[i % 7]}/patient{patient:05d}/study{(i // 3) % 2 + 1}_" \
                    f"{'positive' if y else 'negative'}"
            studies.append(f"{study}/,{y}")
            paths += [f"{study}/image{k}.png" for k in (1, 2, 3)]
        _write(folder / f"{official}_image_paths.csv", paths)
        _write(folder / f"{official}_labeled_studies.csv", studies)
    return dest


def vindr_cxr(dest: Path, n: int = ROWS, seed: int = 0) -> Path:
    """PhysioNet ``annotations/``: ``n`` image-label rows (3 readers per image) and ``n`` box rows."""
    from xrbench.data.datasets.vindr_cxr import IMAGE_LABELS

    rng = np.random.default_rng(seed)
    for official, rows in (("train", n), ("test", n // 10)):
        votes = rng.random((rows, len(IMAGE_LABELS))) < 0.05
        labels = [",".join(("image_id", "rad_id", *IMAGE_LABELS))]
        boxes = ["image_id,rad_id,class_name,x_min,y_min,x_max,y_max"]
        for i in range(rows):
            image, reader = f"{official}{i // 3:010x}", f"R{i % 3 + 1}"
            labels.append(f"{image},{reader}," + ",".join("1" if v else "0" for v in votes[i]))
            if i % 2:
                x, y = rng.integers(0, 2000, 2)
                boxes.append(f"{image},{reader},Cardiomegaly,{x},{y},{x + 200},{y + 150}")
            else:
                boxes.append(f"{image},{reader},No finding,,,,")
        _write(dest / "annotations" / f"image_labels_{official}.csv", labels)
        _write(dest / "annotations" / f"annotations_{official}.csv", boxes)
    return dest


def vindr_spinexr(dest: Path, n: int = ROWS, seed: int = 0) -> Path:
    """``annotations/{train,test}.csv``: ``n`` lesion rows, 2 per image."""
    rng = np.random.default_rng(seed)
    kinds = ("Osteophytes", "Disc space narrowing", "Surgical implant", "No finding")
    for official, rows in (("train", n), ("test", n // 5)):
        lines = ["image_id,series_id,study_id,rad_id,lesion_type,xmin,ymin,xmax,ymax"]
        for i in range(rows):
            image, study = f"{official}{i // 2:010x}", f"{official}s{i // 4:08x}"
            kind = kinds[i % 4]
            if kind == "No finding":
                lines.append(f"{image},se{i // 2},{study},rad1,{kind},,,,")
            else:
                x, y = rng.integers(0, 2000, 2)
                lines.append(f"{image},se{i // 2},{study},rad1,{kind},{x},{y},{x + 50},{y + 40}")
        _write(dest / "annotations" / f"{official}.csv", lines)
    return dest


def fracatlas(dest: Path, n: int = ROWS, seed: int = 0) -> Path:
    """``FracAtlas/dataset.csv`` with ``n`` rows and a COCO JSON with a box + polygon per fractured image."""
    import json

    from xrbench.data.datasets.fracatlas import COCO_REL, COLUMNS

    folder = dest / "FracAtlas"
    lines, images, anns = [",".join(COLUMNS)], [], []
    for i in range(n):
        fractured = int(i % 5 == 0)
        image_id = f"IMG{i:07d}.jpg"
        lines.append(",".join([image_id, "1", "0", "0", "0", "0", "0", "0", str(fractured), str(fractured),
                               "1", "0", "0"]))
        if fractured:
            images.append({"id": i, "file_name": image_id, "height": 512, "width": 384})
            anns.append({"id": i, "image_id": i, "category_id": 1, "bbox": [10, 20, 30, 40],
                         "segmentation": [[10, 20, 40, 20, 40, 60, 10, 60]]})
    _write(folder / "dataset.csv", lines)
    (folder / "images" / "Fractured").mkdir(parents=True, exist_ok=True)
    (folder / COCO_REL).parent.mkdir(parents=True, exist_ok=True)
    (folder / COCO_REL).write_text(json.dumps({"images": images, "annotations": anns,
                                               "categories": [{"id": 1, "name": "fractured"}]}))
    return dest


def rsna_boneage(dest: Path, n: int = ROWS, seed: int = 0, files: bool = True) -> Path:
    """Kaggle ``boneage-training-dataset.csv`` with ``n`` rows and the images as empty files (the
    loader finds images by a walk of the tree; it does not read them)."""
    lines = ["id,boneage,male"]
    lines += [f"{1377 + i},{6 + i % 220},{'True' if i % 2 else 'False'}" for i in range(n)]
    _write(dest / "boneage-training-dataset.csv", lines)
    if files:
        folder = dest / "boneage-training-dataset" / "boneage-training-dataset"
        _touch_all([folder / f"{1377 + i}.png" for i in range(n)])
    return dest


def siim(dest: Path, n: int = ROWS, seed: int = 0) -> Path:
    """``train-rle.csv`` with ``n`` rows (all negative) and an empty DICOM per image in the UID tree
    (the loader indexes the tree by name; negatives are not read)."""
    lines = ["ImageId, EncodedPixels"] + [f"1.2.276.0.7230010.3.1.4.{i}, -1" for i in range(n)]
    _write(dest / "train-rle.csv", lines)
    _touch_all([dest / "dicom-images-train" / f"1.2.276.0.7230010.3.1.2.{i // 100}" /
                f"1.2.276.0.7230010.3.1.3.{i}" / f"1.2.276.0.7230010.3.1.4.{i}.dcm" for i in range(n)])
    return dest


def knee(dest: Path, n: int = ROWS, seed: int = 0) -> Path:
    """``{train,val,test}/{0..4}/*.png`` (empty files: the folders are the table)."""
    paths = [dest / ("train", "train", "train", "val", "test")[i % 5] / str(i % 7 % 5) / f"{9_000_000 + i}L.png"
             for i in range(n)]
    _touch_all(paths)
    return dest


def isbi(dest: Path, n: int = 4_000, seed: int = 0) -> Path:
    """``RawImage/{TrainingData,Test1Data}`` (empty BMPs) and both readers' annotation files.

    The real dataset has 400 images and the loader reads one text file per image and reader, so
    this benchmark uses 10x the real size instead of 200k rows.
    """
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        stem = f"{i + 1:04d}"
        paths.append(dest / "RawImage" / ("TrainingData" if i < n // 2 else "Test1Data") / f"{stem}.bmp")
        for reader in ("400_senior", "400_junior"):
            pts = rng.integers(0, 1900, (21, 2))
            _write(dest / "AnnotationsByMD" / reader / f"{stem}.txt", [f"{x},{y}" for x, y in pts])
    _touch_all(paths)
    return dest

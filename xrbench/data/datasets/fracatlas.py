"""FracAtlas (Abedeen et al., Sci Data 2023): fracture labels, boxes and polygon masks.

Official layout (``research/datasets.md`` §11), note the spaces in folder names::

    FracAtlas/dataset.csv                      image_id, hand, leg, hip, shoulder, mixed, hardware,
                                               multiscan, fractured, fracture_count, frontal, lateral, oblique
    FracAtlas/images/{Fractured,Non_fractured}/IMG<7 digits>.jpg
    FracAtlas/Annotations/COCO JSON/COCO_fracture_masks.json     bbox xywh + polygon segmentation
    FracAtlas/Annotations/YOLO/<stem>.txt                        (not read: COCO carries the same boxes)
    FracAtlas/Utilities/Fracture Split/{train,valid,test}.csv    column image_id, fractured images only
"""
from __future__ import annotations

import json
import math
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from xrbench.data.base import DatasetLoader, patient_split
from xrbench.data.images import write_raster
from xrbench.data.paths import locate_root, safe_join
from xrbench.data.sample import Box, MaskRef, Sample
from xrbench.data.tables import find_file, parse_column, read_table, resolve_columns
from xrbench.errors import DataError
from xrbench.registry import DATASETS

REGIONS = ("hand", "leg", "hip", "shoulder")
VIEWS = ("frontal", "lateral", "oblique")
FLAGS = REGIONS + ("mixed", "hardware", "multiscan", "fractured") + VIEWS
COLUMNS = ("image_id",) + FLAGS[:8] + ("fracture_count",) + VIEWS  # dataset.csv order
COCO_REL = "Annotations/COCO JSON/COCO_fracture_masks.json"
SPLIT_DIR = "Utilities/Fracture Split"
_OFFICIAL_SPLITS = {"train": "train.csv", "val": "valid.csv", "test": "test.csv"}


@DATASETS.register("fracatlas")
class FracAtlas(DatasetLoader):
    """FracAtlas: one sample per row of ``dataset.csv``; target = ``fractured`` (0/1).

    - Image path: ``images/Fractured/<id>`` when the CSV says fractured, else
      ``images/Non_fractured/<id>``. Some real files sit in both folders; the CSV label decides, so
      the copy in the other folder is ignored (no image is stat-ed). The 59 truncated JPEGs of the
      real release are decoded as far as their data goes, and reported: a ``truncated_images``
      warning on each record using one, ``truncated`` in ``xrbench data check --deep``.
    - Boxes and masks come from the COCO JSON (bbox xywh -> xyxy, label = category name, no box is
      dropped); ``mask`` is ``MaskRef("polygons")`` with every polygon of the image (OR-ed) for
      images listed in the COCO ``images``, and ``None`` for the others (non-fractured images,
      i.e. an empty mask).
    - No patient ids are published, so each image is its own patient (``patient`` = image stem).
    - Option ``split``: ``seeded`` (default, for classification) = a seeded hash split of all images,
      70/10/20 train/val/test; ``official-fractured`` (for segmentation) = exactly the images listed
      in ``Utilities/Fracture Split`` (``train``/``valid``/``test`` -> train/val/test), which cover
      fractured images only.
    """

    name = "fracatlas"
    anatomy = "limbs, hip, shoulder"
    title = "FracAtlas (musculoskeletal radiographs with fracture boxes and masks)"
    source = "https://figshare.com/articles/dataset/The_dataset/22363012"
    licence = "CC BY 4.0"
    label_names = ("fractured", "hardware")
    options_spec = {"split": ("seeded", ("seeded", "official-fractured"))}
    demo_size = 110

    def load(self) -> list[Sample]:
        folder = locate_root(self.root, "images/Fractured")
        rows = _read_dataset_csv(find_file(folder, "dataset.csv"))
        coco = _read_coco(folder / COCO_REL, set(rows))
        if self.options["split"] == "official-fractured":
            splits = _read_official_split(folder / SPLIT_DIR, set(rows))
        else:
            stems = [PurePosixPath(i).stem for i in rows]
            by_stem = patient_split(stems, seed=self.seed, val=0.1, test=0.2, salt=self.name)
            splits = {i: by_stem[PurePosixPath(i).stem] for i in rows}
        samples = []
        for image_id, flags in rows.items():
            if image_id not in splits:
                continue  # official-fractured: only the listed images (see the class docstring)
            sub = "Fractured" if flags["fractured"] else "Non_fractured"
            boxes, mask = coco.get(image_id, ([], None))
            stem = PurePosixPath(image_id).stem
            samples.append(Sample(
                id=stem, image=safe_join(folder, f"images/{sub}/{image_id}"), patient=stem,
                split=splits[image_id], target=flags["fractured"], boxes=boxes, mask=mask,
                labels={"fractured": float(flags["fractured"]), "hardware": float(flags["hardware"])},
                meta=_meta(flags)))
        return samples

    @classmethod
    def write_demo(cls, dest: Path, *, n: int, seed: int) -> None:
        """Synthetic FracAtlas: phantom limbs as JPGs with the CSV, COCO JSON, YOLO txts and splits.

        Reproduces the real quirk of a non-fractured image also present in ``images/Fractured``.
        """
        from xrbench.data.phantom.limbs import generate_fracatlas

        folder = Path(dest) / "FracAtlas"
        cases = generate_fracatlas(n, seed=seed)
        csv_lines = [",".join(COLUMNS)]
        coco: dict[str, Any] = {"images": [], "annotations": [],
                                "categories": [{"id": 1, "name": "fractured"}]}
        fractured_ids: list[str] = []
        duplicated = False
        for k, case in enumerate(cases):
            image_id = f"IMG{k:07d}.jpg"
            sub = "Fractured" if case.fractured else "Non_fractured"
            write_raster(folder / "images" / sub / image_id, case.image)
            if not case.fractured and not duplicated:
                write_raster(folder / "images" / "Fractured" / image_id, case.image)
                duplicated = True
            flags = {**{r: int(case.part == r) for r in REGIONS}, "mixed": 0,
                     "hardware": int(case.hardware), "multiscan": 0, "fractured": int(case.fractured),
                     "fracture_count": len(case.fractures), **{v: int(case.view == v) for v in VIEWS}}
            csv_lines.append(",".join([image_id] + [str(flags[c]) for c in COLUMNS[1:]]))
            h, w = case.image.shape
            yolo = []
            if case.fractured:
                fractured_ids.append(image_id)
                coco["images"].append({"id": len(coco["images"]) + 1, "file_name": image_id,
                                       "width": w, "height": h})
                for fr in case.fractures:
                    x0, y0, x1, y1 = fr.box
                    coco["annotations"].append({
                        "id": len(coco["annotations"]) + 1, "image_id": len(coco["images"]),
                        "category_id": 1, "iscrowd": 0, "area": round((x1 - x0) * (y1 - y0), 2),
                        "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                        "segmentation": [[round(float(v), 2) for v in fr.polygon]]})
                    yolo.append(f"0 {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} "
                                f"{(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}")
            _write_text(folder / "Annotations" / "YOLO" / f"{PurePosixPath(image_id).stem}.txt",
                        "".join(y + "\n" for y in yolo))
        _write_text(folder / "dataset.csv", "\n".join(csv_lines) + "\n")
        _write_text(folder / COCO_REL, json.dumps(coco))
        order = np.random.default_rng(seed).permutation(len(fractured_ids))
        cut1, cut2 = int(round(0.8 * len(order))), int(round(0.9 * len(order)))
        for name, idx in (("train.csv", order[:cut1]), ("valid.csv", order[cut1:cut2]), ("test.csv", order[cut2:])):
            ids = sorted(fractured_ids[i] for i in idx)
            _write_text(folder / SPLIT_DIR / name, "image_id\n" + "".join(i + "\n" for i in ids))


def _read_dataset_csv(path: Path) -> dict[str, dict[str, int]]:
    """``image_id -> {flag: 0/1, fracture_count: int}``; every flag must be 0 or 1 (each column is
    parsed once per distinct value, errors name the first bad row)."""
    table = read_table(path)
    cols = resolve_columns(table, path, COLUMNS)

    def parser(name: str):
        def one(value, row: int) -> int:
            raw = str(value).strip()
            if not raw.isdigit() or (name != "fracture_count" and raw not in ("0", "1")):
                expected = "a count" if name == "fracture_count" else "0 or 1"
                raise DataError(f"{value!r} is not {expected}", path=path, row=row, field=name)
            return int(raw)
        return one

    values = [parse_column(table[cols[name]], parser(name)).tolist() for name in COLUMNS[1:]]
    out: dict[str, dict[str, int]] = {}
    for i, (raw_id, *flags) in enumerate(zip(table[cols["image_id"]].tolist(), *values)):
        row = i + 2  # 1-based file line, after the header
        image_id = str(raw_id).strip()
        if not image_id or image_id == "nan" or "/" in image_id or "\\" in image_id:
            raise DataError(f"{raw_id!r} is not a file name", path=path, row=row, field="image_id")
        if image_id in out:
            raise DataError(f"{image_id!r} is listed twice", path=path, row=row, field="image_id")
        out[image_id] = dict(zip(COLUMNS[1:], flags))
    return out


def _read_coco(path: Path, known: set[str]) -> dict[str, tuple[list[Box], MaskRef]]:
    """``image_id -> (boxes, polygon MaskRef)`` for every image listed in the COCO JSON.

    Every part is type-checked (objects where COCO has objects, int or string ids, positive integer
    sizes, finite numbers), so a malformed file is a DataError naming the entry, never a crash.
    """
    if not path.is_file():
        raise DataError("COCO annotation file is missing", path=path)
    try:
        coco = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"not a JSON file ({e.__class__.__name__}: {e})", path=path) from None
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list) \
            or not isinstance(coco.get("annotations"), list) or not isinstance(coco.get("categories", []), list):
        raise DataError("not a COCO JSON: expected an object with lists 'images' and 'annotations' "
                        "(and optionally 'categories')", path=path)
    categories: dict[Any, str] = {}
    for k, c in enumerate(coco.get("categories", [])):
        if not isinstance(c, dict) or not _is_id(c.get("id")) or "name" not in c:
            raise DataError("needs an int or string 'id' and a 'name'", path=path, field=f"categories[{k}]")
        categories[c["id"]] = str(c["name"])
    by_id: dict[Any, tuple[str, int, int]] = {}
    for k, im in enumerate(coco["images"]):
        if not isinstance(im, dict) or not _is_id(im.get("id")) or not isinstance(im.get("file_name"), str) \
                or not _is_size(im.get("height")) or not _is_size(im.get("width")):
            raise DataError("needs an int or string 'id', a 'file_name' and positive integer 'height' and "
                            "'width'", path=path, field=f"images[{k}]")
        name = PurePosixPath(im["file_name"].replace("\\", "/")).name
        by_id[im["id"]] = (name, int(im["height"]), int(im["width"]))
        if name not in known:
            raise DataError(f"image {name!r} is not in dataset.csv", path=path, field=f"images[{k}]")
    boxes: dict[str, list[Box]] = {name: [] for name, _, _ in by_id.values()}
    polys: dict[str, list[tuple[float, ...]]] = {name: [] for name, _, _ in by_id.values()}
    for k, ann in enumerate(coco["annotations"]):
        where = f"annotations[{k}]"
        if not isinstance(ann, dict):
            raise DataError(f"{ann!r:.60} is not an object; expected {{'image_id': ..., 'bbox': ...}}",
                            path=path, field=where)
        if not _is_id(ann.get("image_id")) or ann["image_id"] not in by_id:
            raise DataError(f"image_id {ann.get('image_id')!r} is not in 'images'", path=path, field=where)
        name = by_id[ann["image_id"]][0]
        x, y, bw, bh = _numbers(ann.get("bbox"), path, where + ".bbox", count=4)
        if bw < 0 or bh < 0:
            raise DataError(f"bbox {ann['bbox']} has a negative size", path=path, field=where + ".bbox")
        category = ann.get("category_id")
        if categories and (not _is_id(category) or category not in categories):
            raise DataError(f"category_id {category!r} is not in 'categories'", path=path, field=where)
        label = categories.get(category, "fractured") if _is_id(category) else "fractured"
        boxes[name].append(Box(x, y, x + bw, y + bh, label))
        seg = ann.get("segmentation", [])
        if not isinstance(seg, list):
            raise DataError("segmentation is RLE; expected polygon lists", path=path, field=where)
        for j, poly in enumerate(seg):
            flat = _numbers(poly, path, f"{where}.segmentation[{j}]")
            if len(flat) < 6 or len(flat) % 2:
                raise DataError(f"polygon has {len(flat)} numbers; expected x,y pairs of 3+ points",
                                path=path, field=f"{where}.segmentation[{j}]")
            polys[name].append(tuple(flat))
    return {name: (boxes[name], MaskRef("polygons", tuple(polys[name]), h, w)) for name, h, w in by_id.values()}


def _is_id(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _is_size(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and value == int(value) and value > 0


def _numbers(value: Any, path: Path, field: str, count: int | None = None) -> list[float]:
    """A list of finite numbers (JSON numbers, not strings or booleans)."""
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                              and math.isfinite(v) for v in value):
        raise DataError(f"{value!r:.60} is not a list of finite numbers", path=path, field=field)
    out = [float(v) for v in value]
    if count is not None and len(out) != count:
        raise DataError(f"{value!r} has {len(out)} numbers; expected {count}", path=path, field=field)
    return out


def _read_official_split(folder: Path, known: set[str]) -> dict[str, str]:
    """``image_id -> train/val/test`` from the three ``Fracture Split`` CSVs."""
    out: dict[str, str] = {}
    for split, name in _OFFICIAL_SPLITS.items():
        path = find_file(folder, name)
        table = read_table(path)
        col = resolve_columns(table, path, ["image_id"])["image_id"]
        for i, raw in enumerate(table[col].tolist()):
            image_id = str(raw).strip()
            if image_id not in known:
                raise DataError(f"{raw!r} is not in dataset.csv", path=path, row=i + 2, field="image_id")
            if image_id in out:
                raise DataError(f"{image_id!r} is already in the {out[image_id]} split",
                                path=path, row=i + 2, field="image_id")
            out[image_id] = split
    return out


def _meta(flags: dict[str, int]) -> dict[str, Any]:
    regions = [r for r in REGIONS if flags[r]]
    if flags["mixed"] or len(regions) > 1:
        body_part = "mixed"
    else:
        body_part = regions[0] if regions else "unknown"
    return {"body_part": body_part,
            "regions": regions, "views": [v for v in VIEWS if flags[v]], "mixed": flags["mixed"],
            "multiscan": flags["multiscan"], "hardware": flags["hardware"],
            "fracture_count": flags["fracture_count"]}


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)

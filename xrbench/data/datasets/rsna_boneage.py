"""RSNA Pediatric Bone Age (2017): hand radiographs with bone age in months and sex.

Copies differ (``research/datasets.md`` §10), so the tables are recognised by their columns, not
their names, anywhere under the root:

==========  ===================================================  ======================================
table       columns (id, bone age, sex)                          where it usually is
==========  ===================================================  ======================================
train       ``id, boneage, male`` (male True/False)              Kaggle ``boneage-training-dataset.csv``,
                                                                 RSNA ``Bone Age Training Set/train.csv``
validation  ``Image ID, male, Bone Age (months)``                ``Bone Age Validation Set/Validation Dataset.csv``
test        ``Case ID, Sex, Ground truth bone age (months)``     test ground truth (Sex M/F)
==========  ===================================================  ======================================

Images are found by a recursive ``<id>.png`` index, the extension in any case (the Kaggle copy
nests them twice: ``boneage-training-dataset/boneage-training-dataset/<id>.png``); ``._*`` files
(macOS archive litter) are skipped.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from xrbench.data.base import DatasetLoader, patient_split
from xrbench.data.images import write_raster
from xrbench.data.sample import Sample
from xrbench.data.tables import parse_float, read_table, resolve_columns
from xrbench.errors import DataError
from xrbench.registry import DATASETS

#: table kind -> (id, bone age, sex) column spellings; matched case- and space-insensitively
SCHEMAS: dict[str, tuple[str, str, str]] = {
    "train": ("id", "boneage", "male"),
    "validation": ("Image ID", "Bone Age (months)", "male"),
    "test": ("Case ID", "Ground truth bone age (months)", "Sex"),
}
#: a column name that holds a bone age ("boneage", "Bone Age (months)", ...), not "image_path"
_AGE_WORD = re.compile(r"\bage\b|boneage")
_SPLIT_OF = {"train": "train", "validation": "val", "test": "test"}
_MALE = {"true": True, "false": False, "1": True, "0": False, "m": True, "f": False,
         "male": True, "female": False}


@DATASETS.register("rsna-boneage")
class RSNABoneAge(DatasetLoader):
    """RSNA bone age: ``target`` = bone age in months (float), ``meta["sex"]`` = ``M``/``F``.

    - Splits: official train -> train, validation -> val, test with ground truth -> test. A split
      whose table is absent is carved from train (10% each, seeded hash split); the Kaggle copy
      ships only train with labels. The Kaggle test table (``Case ID, Sex``, no bone age), other
      CSVs and spreadsheets are not read; ``xrbench data check`` lists them (:meth:`report_extra`).
      A CSV with a schema's id column and a bone-age column but not all of its columns is a
      DataError naming the missing ones (a damaged table is not silently replaced by a carve).
      Ground truth kept only as ``.xlsx`` (some copies) must be saved as CSV first: a spreadsheet
      under the root with no test table is a DataError (not a silently carved test split).
    - No patient ids are published: each image is its own patient. Sample ids are
      ``<table>/<id>`` (e.g. ``train/1377``), unique even if two tables reuse a number.
    - Image lookup: ``<id>.png`` in an image folder of the table's own split, preferring files
      under the table's folder, then the first in path order. A PNG's split is the nearest of
      its folders (below the root) whose name says ``train``, ``valid`` or ``test``, as every
      copy names them (``boneage-training-dataset``, ``Bone Age Validation Set``,
      ``boneage-test-dataset``). Images never fall back across splits: a test row whose PNG is
      absent from the test folders is missing (``<table folder>/<id>.png``, reported by
      ``xrbench data check``), even if a training image has that name. PNGs in folders that name
      no split are not used and are counted in ``images_outside_split_folders``.
    """

    name = "rsna-boneage"
    anatomy = "hand"
    title = "RSNA Pediatric Bone Age Challenge (2017)"
    source = "https://www.rsna.org/rsnai/ai-image-challenge/rsna-pediatric-bone-age-challenge-2017"
    licence = "RSNA challenge data; terms set by RSNA (research use)"
    label_names = ()
    demo_size = 100
    #: filled by :meth:`load`: tables found but not read (relative paths); PNGs in no split folder
    ignored: tuple[str, ...] = ()
    unplaced: int = 0

    def load(self) -> list[Sample]:
        root = Path(self.root).expanduser()
        if not root.is_dir():
            raise DataError("dataset root does not exist", path=root)
        tables, pngs, ignored = _scan(root)
        self.ignored = tuple(str(p.relative_to(root)) for p in ignored)
        self.unplaced = sum(len(v) for k, v in pngs.items() if k[0] is None)
        if "train" not in tables:
            raise DataError("no training table found: expected a CSV with columns id, boneage, male "
                            "(boneage-training-dataset.csv or Bone Age Training Set/train.csv)", path=root)
        sheets = [p for p in ignored if p.name.lower().endswith((".xlsx", ".xls"))]
        if "test" not in tables and sheets:
            # the RSNA test ground truth comes as a spreadsheet in some copies: carving a test split
            # from train instead would give numbers that no one else's test set gives
            raise DataError("looks like the test ground truth, but xrbench reads CSV only: save it as CSV "
                            "(columns Case ID, Sex, Ground truth bone age (months)) or move it out of the "
                            "dataset folder to carve the test split from train", path=sheets[0])
        rows = []
        for kind in SCHEMAS:
            if kind in tables:
                rows.extend(_read_rows(tables[kind], kind, pngs))
        carve = patient_split([r[0] for r in rows if r[1] == "train"], seed=self.seed, salt=self.name,
                              val=0.0 if "validation" in tables else 0.1,
                              test=0.0 if "test" in tables else 0.1)
        return [Sample(id=sid, image=path, patient=sid, split=carve[sid] if kind == "train" else _SPLIT_OF[kind],
                       target=months, meta={"sex": "M" if male else "F", "official_split": kind})
                for sid, kind, path, months, male in rows]

    def report_extra(self) -> dict[str, int | list[str]]:
        return {"ignored_tables": list(self.ignored), "images_outside_split_folders": self.unplaced}

    @classmethod
    def write_demo(cls, dest: Path, *, n: int, seed: int) -> None:
        """Synthetic bone age: Kaggle training layout plus the RSNA validation and test tables."""
        from xrbench.data.phantom.hand import generate_hands

        dest = Path(dest)
        cases = generate_hands(n, seed=seed)
        n_val = n_test = max(1, n // 7)
        groups = {"test": cases[:n_test], "validation": cases[n_test:n_test + n_val],
                  "train": cases[n_test + n_val:]}
        image_dirs = {"train": "boneage-training-dataset/boneage-training-dataset",
                      "validation": "Bone Age Validation Set/boneage-validation-dataset-1",
                      "test": "boneage-test-dataset/boneage-test-dataset"}
        first_id = {"train": 1377, "validation": 20000, "test": 4360}
        lines = {"train": ["id,boneage,male"], "validation": ["Image ID,male,Bone Age (months)"],
                 "test": ["Case ID,Sex,Ground truth bone age (months)"]}
        kaggle_test = ["Case ID,Sex"]
        for kind, group in groups.items():
            for k, case in enumerate(group):
                cid = first_id[kind] + k
                write_raster(dest / image_dirs[kind] / f"{cid}.png", case.image)
                if kind == "train":
                    lines[kind].append(f"{cid},{case.bone_age:g},{'True' if case.male else 'False'}")
                elif kind == "validation":
                    lines[kind].append(f"{cid},{'TRUE' if case.male else 'FALSE'},{case.bone_age:g}")
                else:
                    sex = "M" if case.male else "F"
                    lines[kind].append(f"{cid},{sex},{case.bone_age:g}")
                    kaggle_test.append(f"{cid},{sex}")
        files = {"train": "boneage-training-dataset.csv",
                 "validation": "Bone Age Validation Set/Validation Dataset.csv",
                 "test": "Bone Age Test Set/Bone age ground truth.csv"}
        for kind, rel in files.items():
            _write_lines(dest / rel, lines[kind])
        _write_lines(dest / "boneage-test-dataset.csv", kaggle_test)


def split_of_folder(rel_dir: str) -> str | None:
    """The table kind a folder's images belong to: the nearest folder name saying train, valid or test."""
    for part in reversed([p.lower() for p in Path(rel_dir).parts]):
        for kind, word in (("validation", "valid"), ("test", "test"), ("train", "train")):
            if word in part:
                return kind
    return None


def _scan(root: Path) -> tuple[dict[str, Path], dict[tuple[str | None, str], list[Path]], list[Path]]:
    """One walk of the root: the tables by kind, every PNG by (split kind of its folder, file
    name), the tables not read."""
    tables: dict[str, list[Path]] = {}
    pngs: dict[tuple[str | None, str], list[Path]] = {}
    ignored: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        kind_of_dir = split_of_folder(os.path.relpath(dirpath, root))
        for f in sorted(filenames):
            low = f.lower()
            if f.startswith("._"):
                continue  # AppleDouble files of archives made on macOS, not images or tables
            if low.endswith(".png"):  # keyed in lower case: 1377.PNG is image 1377 as well
                pngs.setdefault((kind_of_dir, low), []).append(Path(dirpath) / f)
            elif low.endswith((".csv", ".csv.gz")):
                kind = _table_kind(Path(dirpath) / f)
                if kind is None:
                    ignored.append(Path(dirpath) / f)
                else:
                    tables.setdefault(kind, []).append(Path(dirpath) / f)
            elif low.endswith((".xlsx", ".xls")):
                ignored.append(Path(dirpath) / f)
    for kind, paths in tables.items():
        if len(paths) > 1:
            raise DataError(f"several {kind} tables found ({', '.join(map(str, paths))}); "
                            "point the root at one copy of the dataset", path=root)
    return {k: v[0] for k, v in tables.items()}, pngs, ignored


def _table_kind(path: Path) -> str | None:
    """Which schema a CSV's header matches (None: not a bone-age table with ground truth)."""
    try:
        header = pd.read_csv(path, nrows=0, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, EOFError):
        return None
    names = {str(c).strip().lower() for c in header.columns}
    for kind, cols in SCHEMAS.items():
        if all(c.lower() in names for c in cols):
            return kind
    for kind, cols in SCHEMAS.items():
        # a schema's id column plus a bone-age column: a table with ground truth whose header is
        # damaged or misspelt, not one to set aside (the Kaggle test table has no age column)
        if cols[0].lower() in names and any(_AGE_WORD.search(n) for n in names - {cols[0].lower()}):
            missing = [c for c in cols if c.lower() not in names]
            raise DataError(f"looks like the {kind} table but misses column(s) "
                            f"{', '.join(map(repr, missing))}; found columns {list(header.columns)}", path=path)
    return None


def _read_rows(path: Path, kind: str, pngs: dict[tuple[str | None, str], list[Path]]
               ) -> list[tuple[str, str, Path, float, bool]]:
    """``(sample id, table kind, image path, bone age months, male)`` for each row of one table."""
    table = read_table(path, encoding="utf-8-sig")
    id_col, age_col, sex_col = SCHEMAS[kind]
    cols = resolve_columns(table, path, SCHEMAS[kind])
    out = []
    for i, rec in enumerate(table.to_dict("records")):
        row = i + 2
        cid = str(rec[cols[id_col]]).strip()
        if not cid or cid == "nan" or not cid.replace("-", "").replace("_", "").isalnum():
            raise DataError(f"{rec[cols[id_col]]!r} is not an image id", path=path, row=row, field=id_col)
        months = parse_float(rec[cols[age_col]], path=path, row=row, field=age_col, allow_blank=False)
        if not 0 <= months <= 300:
            raise DataError(f"bone age {months} is outside 0-300 months", path=path, row=row, field=age_col)
        sex = str(rec[cols[sex_col]]).strip().lower()
        if sex not in _MALE:
            raise DataError(f"{rec[cols[sex_col]]!r} is not a sex (True/False, M/F)", path=path, row=row,
                            field=sex_col)
        out.append((f"{kind}/{cid}", kind, _image_for(cid, kind, path.parent, pngs), months, _MALE[sex]))
    return out


def _image_for(cid: str, kind: str, table_dir: Path, pngs: dict[tuple[str | None, str], list[Path]]) -> Path:
    """``<cid>.png`` in a folder of the table's own split (never another split's), else the
    missing path ``<table folder>/<cid>.png``."""
    found = pngs.get((kind, f"{cid}.png".lower()), [])
    near = [p for p in found if table_dir in p.parents]
    return (near or found or [table_dir / f"{cid}.png"])[0]


def _write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")

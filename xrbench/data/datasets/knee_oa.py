"""Knee osteoarthritis severity (Kaggle "Knee Osteoarthritis Dataset with Severity Grading", from
Chen 2018's OAI-derived KL dataset): AP knee-joint crops, Kellgren-Lawrence grade 0-4.

Official layout: an ImageFolder tree ``{train,val,test,auto_test}/{0,1,2,3,4}/*.png`` where the
folder name is the KL grade. Mirrors nest it (``KneeXrayData/ClsKLData/kneeKL224/``), so the folder
holding ``train/`` is found at any depth up to 4 (shallowest, then first in sorted order: with both
``kneeKL224`` and ``kneeKL299`` present, ``kneeKL224`` is read). ``auto_test`` duplicates ``test``
and is ignored; an empty grade folder is fine; non-image files are ignored; any other non-hidden
folder inside a split is an error (it would otherwise be dropped silently). Should a mirror lack
``val``, it is carved from train (seeded ``patient_split``).

File names are the OAI subject id and the side (``9001695L.png``, ``9001695R.png``), so ``patient``
is the subject id: a person's two knees are one bootstrap unit, and a carved ``val`` keeps them
together. A name of another form is its own patient (its stem). Nothing in the public release
says its split keeps a person's two knees together; where it does not, that is the dataset's
split and it is used as is (``xrbench data check`` lists those persons as ``patients_in_two_official_splits``
instead of failing).
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np

from xrbench.data.base import DatasetLoader, patient_split
from xrbench.data.images import write_raster
from xrbench.data.paths import find_dir
from xrbench.data.phantom.knee import knee_radiograph
from xrbench.data.sample import Sample
from xrbench.errors import DataError
from xrbench.registry import DATASETS

GRADES = ("0", "1", "2", "3", "4")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
#: an OAI knee image name: the 7-digit subject id, then the side
_OAI_KNEE = re.compile(r"(\d{7})[LR]", re.IGNORECASE)
#: share of images per grade in the demo (the real data is skewed towards 0-2 as well)
DEMO_GRADE_P = (0.3, 0.2, 0.2, 0.18, 0.12)


@DATASETS.register("knee-oa")
class KneeOA(DatasetLoader):
    """Official train/val/test folders (``auto_test`` ignored); target = KL grade 0-4."""

    name = "knee-oa"
    anatomy = "knee"
    title = "Knee Osteoarthritis Severity Grading (KL 0-4)"
    source = "https://www.kaggle.com/datasets/shashwatwork/knee-osteoarthritis-dataset-with-severity"
    licence = "Kaggle mirror of Chen 2018 (Mendeley Data, reportedly CC BY 4.0); OAI data use terms apply"
    label_names = ()
    demo_size = 110
    official_splits_share_patients = True

    def load(self) -> list[Sample]:
        if not self.root.is_dir():
            raise DataError("dataset root does not exist", path=self.root)
        train_dir = find_dir(self.root, "train")
        if train_dir is None:
            raise DataError("no 'train' folder found (looked up to 4 levels deep; expected "
                            "{train,val,test}/{0,1,2,3,4}/*.png)", path=self.root)
        base = train_dir.parent
        if not (base / "test").is_dir():
            raise DataError("has 'train' but no 'test' folder beside it", path=base)
        out = self._read_split(base / "train", "train")
        if (base / "val").is_dir():
            out += self._read_split(base / "val", "val")
        else:
            splits = patient_split([s.patient for s in out], seed=self.seed, salt=self.name)
            for s in out:
                s.split = splits[s.patient]
        return out + self._read_split(base / "test", "test")

    @staticmethod
    def _read_split(folder: Path, split: str) -> list[Sample]:
        out = []
        for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if sub.name not in GRADES:
                raise DataError(f"unexpected folder '{sub.name}'; a split holds only the KL grade "
                                f"folders {', '.join(GRADES)}", path=sub)
            grade = int(sub.name)
            for f in sorted(sub.iterdir()):
                if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file() and not f.name.startswith("."):
                    out.append(Sample(id=f"{split}/{sub.name}/{f.name}", image=f, patient=_patient(f.stem), split=split,
                                      target=grade, meta={"kl_grade": grade, "body_part": "knee",
                                                          "view": "AP"}))
        return out

    @classmethod
    def write_demo(cls, dest: Path, *, n: int, seed: int) -> None:
        """Synthetic phantom knee crops (224x224 PNG) in the official tree; ``auto_test`` copies
        ``test``; every grade folder exists even when empty."""
        dest = Path(dest)
        rng = np.random.default_rng(seed)
        for split in ("train", "val", "test", "auto_test"):
            for g in GRADES:
                (dest / split / g).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            u = i / max(n, 1)
            split = "train" if u < 0.6 else ("val" if u < 0.75 else "test")
            grade = int(rng.choice(len(GRADES), p=DEMO_GRADE_P))
            side = "LR"[int(rng.integers(2))]
            case = knee_radiograph(int(rng.integers(2**31)), grade)
            path = dest / split / str(grade) / f"{9000000 + 17 * i + int(rng.integers(17))}{side}.png"
            write_raster(path, case.image)
            if split == "test":
                shutil.copyfile(path, dest / "auto_test" / str(grade) / path.name)


def _patient(stem: str) -> str:
    """The OAI subject id of ``9001695L``, else the stem itself."""
    m = _OAI_KNEE.fullmatch(stem)
    return m.group(1) if m else stem

"""ISBI 2015 cephalometric landmark challenge: 400 lateral cephalograms, 19 landmarks each.

Official layout (challenge site; the figshare copy nests ``RawImage/RawImage``)::

    RawImage/TrainingData/001.bmp ... 150.bmp
    RawImage/Test1Data/151.bmp ... 300.bmp
    RawImage/Test2Data/301.bmp ... 400.bmp
    AnnotationsByMD/400_senior/001.txt ... 400.txt
    AnnotationsByMD/400_junior/001.txt ... 400.txt

Hidden files (``._001.bmp``, the AppleDouble litter of archives made on macOS) are not images.
Each annotation file starts with 19 lines ``x,y`` (integer pixels of the image); lines after the
19th are not landmarks and are ignored; blank lines and spaces are tolerated. The folders are found
at any nesting depth (mirrors differ). The real images are 1935x2400 px at 0.1 mm/pixel, so
``spacing_mm`` is 0.1; landmarks are in the pixels of the image file as read and are never rescaled
(the demo writes small BMPs annotated in their own pixels, with the spacing of the real ones).

Options: ``annotation`` = ``average`` (mean of the two doctors, the common choice in the literature;
default), ``senior`` (the challenge ground truth) or ``junior``; ``test_set`` = ``test1`` (default),
``test2`` or ``both``. ``TrainingData`` is the train split with ``val`` carved from it by a seeded
split of image ids (one image per patient); the chosen test folder(s) form ``test``.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from xrbench.data.base import DatasetLoader, patient_split
from xrbench.data.images import write_raster
from xrbench.data.paths import find_dir
from xrbench.data.phantom.skull import CEPH_LANDMARKS, cephalogram
from xrbench.data.sample import Sample
from xrbench.errors import DataError
from xrbench.registry import DATASETS

N_LANDMARKS = 19
SPACING_MM = 0.1
SUBSETS = {"TrainingData": "train", "Test1Data": "test", "Test2Data": "test"}
_TEST_FOLDERS = {"test1": ("Test1Data",), "test2": ("Test2Data",), "both": ("Test1Data", "Test2Data")}
_SEP = re.compile(r"[,\s]+")


@DATASETS.register("isbi2015-ceph")
class ISBI2015Ceph(DatasetLoader):
    """ISBI 2015 challenge 1: TrainingData -> train/val (seeded split of ids), Test1/Test2 -> test."""

    name = "isbi2015-ceph"
    anatomy = "skull"
    title = "ISBI 2015 Cephalometric X-ray Landmark Detection"
    source = "http://www-o.ntust.edu.tw/~cweiwang/ISBI2015/challenge1/"
    licence = "Research use under the challenge terms (cite Wang et al. 2016); no explicit open licence"
    label_names = ()
    options_spec = {"annotation": ("average", ("average", "senior", "junior")),
                    "test_set": ("test1", ("test1", "test2", "both"))}
    demo_size = 120

    def load(self) -> list[Sample]:
        readers = {"average": ("400_senior", "400_junior")}.get(self.options["annotation"],
                                                                 (f"400_{self.options['annotation']}",))
        ann_dirs = [self._folder(name) for name in readers]
        subsets = ("TrainingData",) + _TEST_FOLDERS[self.options["test_set"]]
        out: list[Sample] = []
        for subset in subsets:
            folder = self._folder(subset)
            # hidden names are not images: ``._001.bmp`` is the AppleDouble file that a tar or zip
            # made on macOS carries beside ``001.bmp``
            images = sorted(p for p in folder.iterdir()
                            if p.suffix.lower() == ".bmp" and not p.name.startswith(".") and p.is_file())
            if not images:
                raise DataError("holds no .bmp images", path=folder)
            splits = (patient_split([p.stem for p in images], seed=self.seed, salt=self.name)
                      if SUBSETS[subset] == "train" else {})
            for img in images:
                points = np.mean([read_landmarks(d / f"{img.stem}.txt") for d in ann_dirs], axis=0)
                out.append(Sample(id=img.stem, image=img, patient=img.stem,
                                  split=splits.get(img.stem, "test"), landmarks=points,
                                  spacing_mm=SPACING_MM,
                                  meta={"landmark_names": CEPH_LANDMARKS, "subset": subset,
                                        "annotation": self.options["annotation"], "body_part": "skull",
                                        "view": "lateral"}))
        return out

    def _folder(self, name: str) -> Path:
        if not self.root.is_dir():
            raise DataError("dataset root does not exist", path=self.root)
        found = find_dir(self.root, name)
        if found is None:
            raise DataError(f"no folder '{name}' found (looked up to 4 levels deep; expected "
                            "RawImage/{TrainingData,Test1Data,Test2Data} and AnnotationsByMD/400_{senior,junior})",
                            path=self.root)
        return found

    @classmethod
    def write_demo(cls, dest: Path, *, n: int, seed: int) -> None:
        """Synthetic phantom cephalograms in the official layout: BMPs, senior annotations, and junior
        ones = senior + small reader noise; each txt ends with 2 extra lines as the real files do."""
        dest = Path(dest)
        rng = np.random.default_rng(seed)
        n_train = int(round(n * 0.375))  # the official 150 / 150 / 100
        n_test1 = int(round(n * 0.375))
        for i in range(n):
            stem = f"{i + 1:03d}"
            subset = "TrainingData" if i < n_train else ("Test1Data" if i < n_train + n_test1 else "Test2Data")
            case = cephalogram(int(rng.integers(2**31)))
            write_raster(dest / "RawImage" / subset / f"{stem}.bmp", case.image)
            senior = np.rint(case.landmarks).astype(int)
            junior = senior + np.rint(rng.normal(0.0, 1.0, senior.shape)).astype(int)
            h, w = case.image.shape
            junior = np.clip(junior, 0, [w - 1, h - 1])
            for reader, pts in (("400_senior", senior), ("400_junior", junior)):
                lines = [f"{x},{y}" for x, y in pts] + [str(int(rng.integers(1, 4))) for _ in range(2)]
                path = dest / "AnnotationsByMD" / reader / f"{stem}.txt"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("\n".join(lines) + "\n")


def read_landmarks(path: Path) -> np.ndarray:
    """The first 19 ``x,y`` points of an annotation file as a float [19, 2] array."""
    if not path.is_file():
        raise DataError("annotation file does not exist", path=path)
    try:
        lines = path.read_text(encoding="utf-8-sig", errors="strict").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot be read as text ({e})", path=path) from None
    points: list[tuple[float, float]] = []
    for number, line in enumerate(lines, start=1):
        if len(points) == N_LANDMARKS:
            break
        if not line.strip():
            continue
        parts = [p for p in _SEP.split(line.strip()) if p]
        try:
            if len(parts) != 2:
                raise ValueError
            point = (float(parts[0]), float(parts[1]))
            if not all(map(np.isfinite, point)):
                raise ValueError
            points.append(point)
        except ValueError:
            raise DataError(f"{line.strip()!r} is not an 'x,y' landmark (landmark {len(points) + 1} of "
                            f"{N_LANDMARKS})", path=path, row=number) from None
    if len(points) < N_LANDMARKS:
        raise DataError(f"holds {len(points)} landmark lines; expected {N_LANDMARKS}", path=path)
    return np.asarray(points, dtype=np.float64)

"""The dataset hash of a result covers every piece of ground truth a task reads."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from xrbench.data.base import manifest_hash
from xrbench.data.sample import Box, MaskRef, Phrase, Sample


def _sample(root: Path) -> Sample:
    return Sample(id="a", image=root / "a.png", patient="p", split="test", labels={"x": 1.0},
                  boxes=[Box(1, 2, 30, 40, "nodule", "R1")],
                  mask=MaskRef("png", root / "masks" / "a.png", 64, 64),
                  landmarks=np.array([[1.0, 2.0], [3.0, np.nan]]), spacing_mm=0.1,
                  text={"findings": "No effusion."},
                  phrases=[Phrase("left effusion", (Box(5, 5, 9, 9, "effusion"),), "Pleural effusion")])


@pytest.mark.parametrize("change", [
    {"boxes": [Box(1, 2, 31, 40, "nodule", "R1")]},
    {"boxes": [Box(1, 2, 30, 40, "mass", "R1")]},
    {"mask": MaskRef("siim-rle", ("1 2 3 4",), 64, 64)},
    {"landmarks": np.array([[1.0, 2.5], [3.0, np.nan]])},
    {"spacing_mm": 0.2},
    {"text": {"findings": "Small effusion."}},
    {"phrases": [Phrase("right effusion", (Box(5, 5, 9, 9, "effusion"),), "Pleural effusion")]},
    {"labels": {"x": 0.0}},
])
def test_any_change_of_ground_truth_changes_the_hash(tmp_path, change):
    s = _sample(tmp_path)
    assert manifest_hash([replace(s, **change)], tmp_path) != manifest_hash([s], tmp_path)


def test_hash_does_not_depend_on_where_the_dataset_lives(tmp_path):
    a, b = tmp_path / "one", tmp_path / "two"
    assert manifest_hash([_sample(a)], a) == manifest_hash([_sample(b)], b)

"""Issue 14 acceptance on the demo: a pretraining manifest listing some CheXpert test images marks
exactly the CheXpert rows as leaked; the CheXpert rows carry ECE, subgroups and their gap."""
from __future__ import annotations

import csv
import json

import pytest

from xrbench.cli import main


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    from xrbench.data.demo import dataset_root
    import xrbench.data.datasets  # noqa: F401  (registers loaders)
    from xrbench.registry import DATASETS

    root = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XRBENCH_HOME", str(root / "home"))
        mp.setenv("XRBENCH_DEMO_SCALE", "0.1")
        test = DATASETS.get("chexpert")(dataset_root("chexpert", None), seed=0).split("test")
        listed = test[:3]
        rel = ["/".join(s.image.parts[-3:]) for s in listed]  # patient/study/view: CheXpert repeats names
        (root / "manifest.csv").write_text("file\n" + "\n".join(rel) + "\n")
        assert main(["run", "--model", "timm:test_resnet", "--task", "chexpert-linear,boneage-regression",
                     "--output", str(root / "out"), "--device", "cpu", "--workers", "0", "--bootstrap", "100",
                     "--pretraining-manifest", str(root / "manifest.csv")]) == 0
        yield root, [s.id for s in listed]


def test_manifest_marks_exactly_the_listed_rows(demo_run):
    root, ids = demo_run
    chex = json.loads(next((root / "out").rglob("chexpert-linear/seed0.json")).read_text())
    bone = json.loads(next((root / "out").rglob("boneage-regression/seed0.json")).read_text())
    assert chex["pretraining_overlap"]["status"] == "overlap" and sorted(chex["pretraining_overlap"]["ids"]) == sorted(ids)
    assert bone["pretraining_overlap"] == {"status": "none", "n": 0, "ids": [],
                                           "manifest": str(root / "manifest.csv")}
    rows = {r["task"]: r for r in csv.DictReader(open(root / "out" / "leaderboard.csv"))}
    assert rows["chexpert-linear"]["leaked"] == "yes" and rows["boneage-regression"]["leaked"] == "no"


def test_chexpert_rows_show_ece_and_subgroup_gaps(demo_run, capsys):
    root, _ = demo_run
    rows = {r["task"]: r for r in csv.DictReader(open(root / "out" / "leaderboard.csv"))}
    assert float(rows["chexpert-linear"]["ece"]) > 0 and rows["boneage-regression"]["ece"] == ""
    assert float(rows["chexpert-linear"]["subgroup_gap"]) >= 0 and rows["chexpert-linear"]["subgroup_gap_attribute"]
    subs = list(csv.DictReader(open(root / "out" / "subgroups.csv")))
    assert {r["attribute"] for r in subs if r["task"] == "chexpert-linear"} >= {"sex", "age_band"}
    assert main(["leaderboard", str(root / "out"), "-o", str(root / "b.html"), "-o", str(root / "b.md")]) == 0
    html = (root / "b.html").read_text()
    assert 'id="subgroups"' in html and "reliability chexpert-linear" in html and 'class="leak"' in html
    assert "## Calibration and subgroups" in (root / "b.md").read_text()

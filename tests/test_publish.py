"""python -m xrbench.results.publish (make leaderboards) on the toy task, with a limit."""
from __future__ import annotations

import csv

import pytest
from _results_fixtures import toy_tasks

from xrbench.results import publish

pytestmark = pytest.mark.slow


def test_publish_runs_merges_and_writes_csv_md_html(tmp_path, xr_home, capsys):
    tasks = toy_tasks(tmp_path / "tasks")
    out = tmp_path / "leaderboards"
    argv = ["--task", "toy-spots-linear", "--include", str(tasks), "--models", "timm:test_resnet",
            "--limit", "10", "--out", str(out), "--bootstrap", "200", "--device", "cpu", "--screenshot", ""]
    assert publish.main(argv) == 0
    rows = list(csv.DictReader(open(out / "demo.csv")))
    assert len(rows) == 1
    r = rows[0]
    assert (r["task"], r["model"], r["weights"], r["data"]) == (
        "toy-spots-linear", "timm:test_resnet", "random-init", "synthetic-demo")
    assert r["n_test"] == "10" and r["git_sha"] and r["xrbench_version"] and r["torch"]  # the limit bites
    assert len(r["dataset_hash"]) >= 8 and len(r["config_hash"]) == 16
    assert "synthetic demo data" in (out / "demo.md").read_text()
    assert "<table id=\"leaderboard\"" in (out / "demo.html").read_text()
    kept = sorted(p.relative_to(out).as_posix() for p in (out / "demo").rglob("*") if p.is_file())
    assert kept == ["demo/timm_test_resnet/toy-spots-linear/seed0.json",
                    "demo/timm_test_resnet/toy-spots-linear/seed0.predictions.jsonl"]
    # a second publish replaces the records (no stale results to mix), without a staging leftover
    assert publish.main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["demo", "demo.csv", "demo.html", "demo.md"]


def test_registered_names_building_the_same_random_network_collapse(capsys):
    encs = publish.offline_encoders(["timm:test_resnet", "timm:test_resnet"])
    assert [e.meta.name for e in encs] == ["timm:test_resnet"]
    assert "same network and weights as an earlier model" in capsys.readouterr().err


def test_unknown_model_exits_2(tmp_path, xr_home, capsys):
    assert publish.main(["--models", "nope", "--out", str(tmp_path), "--screenshot", ""]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err

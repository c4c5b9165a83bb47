"""A run killed with SIGKILL mid-split resumes from its last chunk and gives byte-identical records
and predictions; two runs sharing a store and an output folder leave every row and entry intact."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _results_fixtures import TOY_TASK, ToySpots

pytestmark = pytest.mark.slow

RUN = '''
import sys, time
import xrbench.features.extract as extract
import xrbench.models.base as base
import _results_fixtures  # registers the toy-spots dataset
extract.CHUNK = 8
slow = float(sys.argv[1])
encode = base.Encoder.encode
def slowed(self, x, kinds=None):
    time.sleep(slow)
    return encode(self, x, kinds)
base.Encoder.encode = slowed
from xrbench.cli import main
sys.exit(main(sys.argv[2:]))
'''


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import timm
    import torch
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("kill")
    ToySpots.write_demo(root / "data", n=60, seed=0)
    (root / "tasks").mkdir()
    (root / "tasks" / "toy-spots-linear.yaml").write_text(TOY_TASK)
    (root / "tasks" / "toy-spots-knn.yaml").write_text(
        TOY_TASK.replace("toy-spots-linear", "toy-spots-knn").replace("family: linear", "family: knn")
        .replace("protocol: {name: linear, args: {weight_decays: [0.001, 0.1, 10.0]}}",
                 "protocol: {name: knn, args: {ks: [5]}}"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        save_file({k: v.contiguous() for k, v in timm.create_model("test_resnet", num_classes=0).state_dict().items()},
                  root / "w.safetensors")
    return root


def _cmd(root: Path, out: Path, task: str, slow: float) -> list[str]:
    return [sys.executable, "-c", RUN, str(slow), "run", "--model", "timm:test_resnet", "--weights",
            str(root / "w.safetensors"), "--task", task, "--include", str(root / "tasks"), "--data",
            f"toy-spots={root / 'data'}", "--output", str(out), "--device", "cpu", "--workers", "0",
            "--batch-size", "4", "--bootstrap", "200"]


def _env(home: Path) -> dict:
    return {**os.environ, "XRBENCH_HOME": str(home), "PYTHONPATH": str(Path(__file__).parent)}


def _stable(path: Path) -> dict:
    rec = json.loads(path.read_text())
    for k in ("created", "timings"):
        rec.pop(k)
    rec["provenance"].pop("hostname", None)
    return rec


def test_sigkill_mid_split_then_rerun_gives_byte_identical_records_and_predictions(setup, tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert subprocess.run(_cmd(setup, clean / "out", "toy-spots-linear", 0.0), env=_env(clean / "home"),
                          capture_output=True).returncode == 0
    proc = subprocess.Popen(_cmd(setup, killed / "out", "toy-spots-linear", 0.3), env=_env(killed / "home"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    progress = None
    while time.time() < deadline and proc.poll() is None:
        found = list((killed / "home" / "features").glob(".partial-*/progress.json"))
        if found and json.loads(found[0].read_text())["done"] >= 8:
            progress = found[0]
            break
        time.sleep(0.05)
    assert progress is not None and proc.poll() is None, "the run was not caught mid-split"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = json.loads(progress.read_text())["done"]
    assert 8 <= done < 36  # mid-split (the train split holds 36 images)
    assert subprocess.run(_cmd(setup, killed / "out", "toy-spots-linear", 0.0), env=_env(killed / "home"),
                          capture_output=True).returncode == 0
    a = clean / "out" / "timm_test_resnet" / "toy-spots-linear"
    b = killed / "out" / "timm_test_resnet" / "toy-spots-linear"
    assert _stable(a / "seed0.json") == _stable(b / "seed0.json")
    assert (a / "seed0.predictions.jsonl").read_bytes() == (b / "seed0.predictions.jsonl").read_bytes()


def test_two_runs_sharing_a_store_and_an_output_folder_leave_everything_intact(setup, tmp_path):
    from xrbench.features.store import FeatureStore

    for k in range(3):
        home, out = tmp_path / f"home{k}", tmp_path / f"out{k}"
        procs = [subprocess.Popen(_cmd(setup, out, t, 0.02), env=_env(home), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE) for t in ("toy-spots-linear", "toy-spots-knn")]
        assert [p.wait() for p in procs] == [0, 0], [p.stderr.read().decode()[-500:] for p in procs]
        rows = (out / "leaderboard.csv").read_text().splitlines()
        assert len(rows) == 3 and {r.split(",")[0] for r in rows[1:]} == {"toy-spots-linear", "toy-spots-knn"}
        for t in ("toy-spots-linear", "toy-spots-knn"):
            rec = json.loads((out / "timm_test_resnet" / t / "seed0.json").read_text())
            assert rec["task"] == t and rec["metrics"]
        store = FeatureStore(home / "features")
        assert store.keys() and all(store.verify(key) is None for key in store.keys())

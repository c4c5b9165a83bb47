"""One error path (docs/reliability.md): every failure is one line on stderr naming the file, row,
field or option and what was expected, never a traceback; exit 2 for bad input (usage,
configuration, dataset files, checkpoints), 1 when the machine fails (a real OSError) or on a bug,
130 when interrupted. ``xrbench run`` finds them before any work."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from _results_fixtures import TOY_TASK, ToySpots, toy_tasks, write_result
from xrbench.cli import main
from xrbench.errors import DataError

RUN = ["run", "--model", "timm:test_resnet", "--task", "chexpert-linear"]


def fails(argv: list[str], code: int, capsys) -> str:
    """Run the CLI; assert the exit status and a one-line error without traceback; return it."""
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("xrbench: error: ")]
    assert len(lines) == 1, err
    return lines[0]


def no_work(home: Path, *outputs: Path) -> None:
    """Nothing was generated, extracted or written."""
    assert not (home / "demo").exists() and not (home / "features").exists()
    for out in outputs:
        assert not out.exists()


# -- options ------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra,needle", [
    (["--limit", "-1"], "--limit must be at least 1 (images per split), got -1"),
    (["--limit", "0"], "--limit must be at least 1"),
    (["--batch-size", "-1"], "--batch-size must be at least 1, or 0 for automatic (256 on CUDA, halved on out-of-memory; 32 on CPU), got -1"),
    (["--workers", "-2"], "--workers must be 0 (read in the main process) or more, got -2"),
    (["--bootstrap", "50"], "--bootstrap must be 0 (no confidence intervals) or between 100 and 100000, got 50"),
    (["--seed", "-1"], "--seed: seeds lie between 0 and 4294967295, got -1"),
    (["--seeds", "0,1,1"], "--seeds: seed given twice in 0,1,1"),
    (["--seed", "1", "--seeds", "0,1"], "give either --seed or --seeds, not both"),
    (["--label-fraction", "0.1,0.1"], "--label-fraction: fraction given twice in 0.1,0.1"),
])
def test_option_out_of_range_exits_2_before_work(extra, needle, tmp_path, xr_home, capsys):
    out = tmp_path / "out"
    line = fails(RUN + extra + ["--output", str(out)], 2, capsys)
    assert line.startswith(f"xrbench: error: {needle}")
    no_work(xr_home, out)


def test_bootstrap_zero_is_allowed_by_preflight():
    import argparse

    from xrbench.commands.preflight import check_options

    args = argparse.Namespace(limit=None, batch_size=1, workers=0, bootstrap=0, seed=None, seeds=(3, 1),
                              label_fraction=(0.5, 1.0))
    assert check_options(args) == (3, 1)


def test_label_fraction_outside_0_1_is_an_argparse_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(RUN + ["--label-fraction", "1.5"])
    assert e.value.code == 2
    assert "label fractions must lie in (0, 1]" in capsys.readouterr().err


# -- device -------------------------------------------------------------------------------------
def test_missing_cuda_device_names_it_and_what_is_available(tmp_path, xr_home, capsys):
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    line = fails(RUN + ["--device", "cuda:7", "--output", str(tmp_path / "o")], 2, capsys)
    assert "--device cuda:7" in line
    assert line.endswith("available: " + ", ".join(["cpu"] + [f"cuda:{i}" for i in range(n)]))
    no_work(xr_home)


def test_cuda_without_cuda_and_a_bad_name(monkeypatch, tmp_path, xr_home, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    line = fails(RUN + ["--device", "cuda"], 2, capsys)
    assert "--device cuda: CUDA is not available on this machine" in line and line.endswith("available: cpu")
    line = fails(RUN + ["--device", "banana"], 2, capsys)
    assert "--device 'banana': not a device name; expected cpu, cuda or cuda:N" in line


def test_device_index_beyond_the_count(monkeypatch):
    import torch

    from xrbench.commands.preflight import check_device
    from xrbench.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("cuda:1") == "cuda:1"
    assert check_device(None) == "cuda"
    with pytest.raises(ConfigError, match=r"--device cuda:2: no such device; available: cpu, cuda:0, cuda:1$"):
        check_device("cuda:2")


# -- output folder ------------------------------------------------------------------------------
def test_output_that_is_a_file(tmp_path, xr_home, capsys):
    f = tmp_path / "results.txt"
    f.write_text("mine")
    line = fails(RUN + ["--output", str(f)], 2, capsys)
    assert line == f"xrbench: error: --output {f}: is a file; expected a folder"
    line = fails(RUN + ["--output", str(f / "sub")], 2, capsys)
    assert line == f"xrbench: error: --output {f / 'sub'}: cannot be created: {f} is a file; expected a folder"
    assert f.read_text() == "mine"
    no_work(xr_home)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes into read-only folders; the next test covers the refusal then")
def test_read_only_output_folder(tmp_path, xr_home, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        line = fails(RUN + ["--output", str(ro / "results")], 2, capsys)
    finally:
        ro.chmod(0o755)
    assert line == f"xrbench: error: --output {ro / 'results'}: cannot write here (in {ro}): Permission denied"
    no_work(xr_home)


def test_unwritable_output_folder_found_by_writing(monkeypatch, tmp_path, xr_home, capsys):
    """Writability is tested by creating a file (permission bits lie for root, mounts, ACLs)."""
    import tempfile

    out = tmp_path / "out"
    out.mkdir()

    def refuse(dir=None, **kw):
        if Path(dir) == out:
            raise PermissionError(13, "Permission denied")
        return real(dir=dir, **kw)

    real = tempfile.mkstemp
    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    line = fails(RUN + ["--output", str(out)], 2, capsys)
    assert line == f"xrbench: error: --output {out}: cannot write here: Permission denied"
    assert list(out.iterdir()) == []


def test_xrbench_home_that_is_a_file(monkeypatch, tmp_path, capsys):
    home = tmp_path / "home"
    home.write_text("")
    monkeypatch.setenv("XRBENCH_HOME", str(home))
    line = fails(RUN + ["--output", str(tmp_path / "o")], 2, capsys)
    assert f"XRBENCH_HOME (feature cache and demo data) {home}: is a file; expected a folder" in line


# -- tasks and suites ---------------------------------------------------------------------------
@pytest.mark.parametrize("edit,needle", [
    (lambda t: t.replace("metrics: [auroc]", "metrics: [auroc, aurocc]"),
     "c.yaml: key 'metrics': unknown metric 'aurocc'. Did you mean: auroc"),
    (lambda t: t.replace("{name: linear,", "{name: linaer,"),
     "c.yaml: key 'protocol.name': unknown protocol 'linaer'. Did you mean: linear"),
    (lambda t: t.replace("weight_decays:", "weight_decay:"),
     "c.yaml: key 'protocol.args': got an unexpected keyword argument 'weight_decay'; protocol 'linear' "
     "takes weight_decays, max_iter, class_balanced, refit_on_train_val"),
    (lambda t: t.replace("dataset: toy-spots", "dataset: toy-spot"),
     "c.yaml: key 'dataset': unknown dataset 'toy-spot'. Did you mean: toy-spots"),
    (lambda t: t.replace("family: linear", "dataset_options: {colour: red}\nfamily: linear"),
     "c.yaml: key 'dataset_options': dataset 'toy-spots': unknown option(s) ['colour']"),
])
def test_a_typo_in_the_third_task_fails_before_the_first_runs(edit, needle, tmp_path, xr_home, capsys):
    folder = tmp_path / "tasks"
    folder.mkdir()
    for name in ["a", "b", "c"]:
        text = TOY_TASK.replace("name: toy-spots-linear", f"name: {name}")
        (folder / f"{name}.yaml").write_text(edit(text) if name == "c" else text)
    root = tmp_path / "toy"
    out = tmp_path / "out"
    argv = ["run", "--model", "timm:test_resnet", "--task", "a,b,c", "--include", str(folder),
            "--data", f"toy-spots={root}", "--output", str(out)]
    root.mkdir()
    line = fails(argv, 2, capsys)
    assert f"xrbench: error: {folder / needle}" in line
    no_work(xr_home, out)


def test_suite_file_with_a_python_tag_is_one_line(tmp_path, capsys):
    (tmp_path / "suites").mkdir()
    suite = tmp_path / "suites" / "evil.yaml"
    suite.write_text("name: evil\ntasks: !!python/object/apply:os.system ['touch pwned']\n")
    line = fails(["run", "--model", "xr0", "--task", "evil", "--include", str(tmp_path)], 2, capsys)
    assert line == (f"xrbench: error: {suite}: line 2, column 8: tag '!!python/object/apply:os.system' is "
                    f"not allowed: task and suite files are plain YAML data, never Python objects")
    assert not Path("pwned").exists()
    # also where nothing runs: listing refuses the same file with the same line
    assert fails(["list", "suites", "--include", str(tmp_path)], 2, capsys) == line


def test_task_file_syntax_error_is_one_line(tmp_path, capsys):
    bad = tmp_path / "t.yaml"
    bad.write_text("name: t\nmetrics: [auroc\n")
    line = fails(["list", "tasks", "--include", str(tmp_path)], 2, capsys)
    assert line.startswith(f"xrbench: error: {bad}: not valid YAML: line 3, column 1: expected ',' or ']'")


def test_suite_naming_an_unknown_task_names_the_suite_file(tmp_path, capsys):
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "mine.yaml").write_text("name: mine\ntasks: [chexpert-linear, mura-linaer]\n")
    line = fails(["list", "suites", "--include", str(tmp_path)], 2, capsys)
    assert line.startswith(f"xrbench: error: {tmp_path / 'suites' / 'mine.yaml'}: key 'tasks': unknown task "
                           f"'mura-linaer'. Did you mean: mura-linear")


# -- dataset roots ------------------------------------------------------------------------------
def test_missing_dataset_roots(tmp_path, xr_home, capsys):
    gone = tmp_path / "gone"
    assert fails(RUN + ["--data-root", str(gone)], 2, capsys) == f"xrbench: error: --data-root {gone}: no such folder"
    assert fails(RUN + ["--data", f"chexpert={gone}"], 2, capsys) == \
        f"xrbench: error: --data chexpert={gone}: no such folder"
    line = fails(RUN + ["--data", f"chexpertt={tmp_path}"], 2, capsys)
    assert "unknown dataset 'chexpertt'. Did you mean: chexpert" in line
    no_work(xr_home)


def test_random_init_on_real_data_is_refused_before_work(tmp_path, xr_home, capsys):
    line = fails(RUN + ["--data-root", str(tmp_path), "--output", str(tmp_path / "o")], 2, capsys)
    assert line == ("xrbench: error: model 'timm:test_resnet' has no weights (random-init) and would run on real "
                    "data (chexpert); random-init runs only on the synthetic demo. Pass --weights PATH.")
    no_work(xr_home, tmp_path / "o")


# -- data errors are exit 2 ---------------------------------------------------------------------
def test_an_empty_split_is_a_data_error(tmp_path):
    from xrbench.families import create_family
    from xrbench.families.base import kept_rows
    from xrbench.tasks.schema import TaskSpec

    import yaml

    spec = TaskSpec.model_validate({**yaml.safe_load(TOY_TASK), "where": {"view": "PA"}})
    root = tmp_path / "toy"
    ToySpots.write_demo(root, n=10, seed=0)
    loader = ToySpots(root)
    with pytest.raises(DataError, match=r"task toy-spots-linear: the val split of 'toy-spots' at .* has no "
                                        r"labelled samples matching \{'view': 'PA'\}"):
        kept_rows(create_family(spec), loader.split("val"), "val", loader.root)


def test_coco_annotation_that_is_a_string(tmp_path, capsys):
    from test_datasets_fracatlas import COCO, write_fixture

    from xrbench.data.datasets.fracatlas import FracAtlas

    root = write_fixture(tmp_path, coco={**COCO, "annotations": ["IMG0000000.jpg", *COCO["annotations"]]})
    coco = root / "Annotations" / "COCO JSON" / "COCO_fracture_masks.json"
    with pytest.raises(DataError) as e:
        FracAtlas(root).samples()
    assert str(e.value) == (f"{coco}, field 'annotations[0]': 'IMG0000000.jpg' is not an object; expected "
                            "{'image_id': ..., 'bbox': ...}")
    assert main(["data", "check", "--dataset", "fracatlas", "--root", str(root)]) == 2
    out = capsys.readouterr()
    assert "annotations[0]" in out.out and "Traceback" not in out.out + out.err


# -- one error path for everything else -----------------------------------------------------------
def _raising(monkeypatch, exc: BaseException) -> None:
    import xrbench.commands.list as list_cmd

    def boom(args):
        raise exc

    monkeypatch.setattr(list_cmd, "run", boom)


@pytest.mark.parametrize("exc,code,line", [
    (PermissionError(13, "Permission denied", "/srv/results/leaderboard.csv"), 1,
     "xrbench: error: /srv/results/leaderboard.csv: Permission denied"),
    (OSError(28, "No space left on device", "/srv/features/x.npy"), 1,
     "xrbench: error: /srv/features/x.npy: No space left on device"),
    (KeyboardInterrupt(), 130, "xrbench: error: interrupted"),
    (DataError("expected a number", path="t.csv", row=3, field="age"), 2,
     "xrbench: error: t.csv, row 3, field 'age': expected a number"),
    (ZeroDivisionError("division by zero"), 1,
     "xrbench: error: internal error (ZeroDivisionError: division by zero); rerun with --debug for the "
     "traceback and please report it"),
])
def test_failures_map_to_one_line_and_an_exit_status(exc, code, line, monkeypatch, capsys):
    _raising(monkeypatch, exc)
    assert fails(["list", "tasks"], code, capsys) == line


@pytest.mark.parametrize("argv", [["--debug", "list", "tasks"], ["list", "tasks", "--debug"],
                                  ["list", "--debug", "tasks"]])
def test_debug_shows_the_traceback_and_keeps_the_exit_status(argv, monkeypatch, capsys):
    _raising(monkeypatch, ValueError("multi\nline"))
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "ValueError: multi" in err
    assert err.rstrip().splitlines()[-1] == ("xrbench: error: internal error (ValueError: multi line); rerun "
                                             "with --debug for the traceback and please report it")


def test_a_real_os_error_names_the_path(tmp_path, capsys):
    write_result(tmp_path / "res")
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = fails(["leaderboard", str(tmp_path / "res"), "-o", str(blocker / "board.csv")], 1, capsys)
    assert line.startswith(f"xrbench: error: {blocker}")


# -- foreign leaderboard, end to end ------------------------------------------------------------
def test_run_beside_a_foreign_leaderboard_keeps_it_and_records_the_real_device(tmp_path, xr_home, capsys):
    from safetensors.torch import save_file

    from xrbench.models.timm_adapter import create_timm_encoder

    root = tmp_path / "toy"
    ToySpots.write_demo(root, n=20, seed=0)
    out = tmp_path / "out"
    out.mkdir()
    foreign = out / "leaderboard.csv"
    foreign.write_text("rank,team,score\n1,us,0.99\n")
    weights = tmp_path / "w.safetensors"
    save_file(create_timm_encoder("t", "test_resnet").model.state_dict(), str(weights))
    argv = ["run", "--model", "timm:test_resnet", "--weights", str(weights), "--task", "toy-spots-linear", "--include",
            str(toy_tasks(tmp_path / "tasks")), "--data", f"toy-spots={root}", "--workers", "0",
            "--bootstrap", "0", "--output", str(out), "--device", "cpu"]
    assert main(argv) == 0
    cap = capsys.readouterr()
    assert (f"[xrbench] {foreign} was not written by xrbench (its header is not xrbench's leaderboard "
            f"header): it is left untouched and this run's rows go to {out / 'leaderboard.xrbench.csv'}") in cap.err
    assert f"leaderboard: {out / 'leaderboard.xrbench.csv'}" in cap.out
    assert foreign.read_text() == "rank,team,score\n1,us,0.99\n"
    rows = (out / "leaderboard.xrbench.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("toy-spots-linear,1,timm:test_resnet,")
    record = json.loads(next(out.rglob("seed0.json")).read_text())
    assert record["provenance"]["device"] == "cpu"

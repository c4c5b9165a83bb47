import pytest

from xrbench.cli import main


@pytest.mark.parametrize("argv,needle", [
    (["run", "--model", "nope", "--task", "all"], "unknown model 'nope'"),
    (["run", "--model", "xr1", "--task", "all"], "Did you mean: xr0"),
    (["run", "--model", "xr0", "--task", "nope"], "unknown task 'nope'"),
    (["run", "--model", "xr0", "--task", "chexpert-lin"], "chexpert-linear"),
])
def test_unknown_names_exit_2_with_suggestions(argv, needle, capsys, xr_home):
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


def test_list_commands(capsys):
    assert main(["list", "models"]) == 0
    out = capsys.readouterr().out
    assert "xr0" in out and "efficientnet-lite0-imagenet" in out
    assert main(["list", "tasks"]) == 0
    out = capsys.readouterr().out
    assert "chexpert-knn" in out
    # columns line up even past a long family name (report-generation overflowed a fixed width)
    assert len({line.index(line.split()[-1]) for line in out.splitlines()}) == 1
    assert main(["list", "datasets"]) == 0
    assert "chexpert" in capsys.readouterr().out


def test_misfit_weights_exit_2_naming_file(tmp_path, capsys, xr_home):
    import torch

    bad = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(3, 3)}, bad)
    assert main(["run", "--model", "xr0", "--weights", str(bad), "--task", "chexpert-linear"]) == 2
    err = capsys.readouterr().err
    assert "other.pt: checkpoint does not fit architecture 'vit_base_patch16_224'" in err


def test_corrupt_image_in_a_worker_exits_2_naming_the_file(tmp_path, capsys, xr_home):
    from safetensors.torch import save_file

    from _results_fixtures import ToySpots, toy_tasks
    from xrbench.models.timm_adapter import create_timm_encoder

    root = tmp_path / "toy"
    ToySpots.write_demo(root, n=20, seed=0)
    (root / "007.png").write_bytes(b"\x89PNG\r\n\x1a\ngarbage")
    weights = tmp_path / "w.bin"  # safetensors content under another suffix is recognised
    save_file(create_timm_encoder("t", "test_resnet").model.state_dict(), str(weights))
    argv = ["run", "--model", "timm:test_resnet", "--weights", str(weights), "--task", "toy-spots-linear",
            "--include", str(toy_tasks(tmp_path / "tasks")), "--data", f"toy-spots={root}",
            "--workers", "1", "--output", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"xrbench: error: {root / '007.png'}: cannot be decoded as an image" in err
    assert "Traceback" not in err


def test_list_suites_and_tasks_of_an_include(tmp_path, capsys):
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "mine.yaml").write_text("name: mine\ntasks: [mura-linear, chexpert-knn]\n")
    assert main(["list", "suites", "--include", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "mine         2 tasks: mura-linear, chexpert-knn" in out and "all " in out


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2
    assert "the following arguments are required: command" in capsys.readouterr().err


LIGHT = """
import sys
from xrbench.cli import main
try:
    main({argv!r})
except SystemExit as e:
    assert e.code == 0, e.code
heavy = sorted(m for m in ("torch", "timm", "sklearn", "scipy", "transformers") if m in sys.modules)
assert not heavy, heavy
"""


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["list", "tasks"], ["list", "suites"],
                                  ["list", "datasets"]])
def test_help_and_list_import_neither_torch_nor_timm(argv):
    """`xrbench --help` and `xrbench list tasks|suites|datasets` load no heavy library (a fresh
    interpreter: this one has torch already); tests/benchmarks/test_bench_cli.py times them."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", LIGHT.format(argv=argv)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_debug_after_a_nested_command_and_unknown_arguments(capsys, tmp_path):
    from _results_fixtures import write_result

    write_result(tmp_path)
    assert main(["leaderboard", str(tmp_path), "-o", str(tmp_path / "b.csv"), "--debug"]) == 0
    with pytest.raises(SystemExit) as e:
        main(["data", "check", "--dataset", "mura", "--debug", "--colour", "red"])
    assert e.value.code == 2
    assert "unrecognized arguments: --colour red" in capsys.readouterr().err


def test_score_json_is_strict_json_with_null_for_undefined_metrics(capsys, monkeypatch, tmp_path):
    """`score --json` is read by other programs: NaN (ECE of scores outside [0, 1]) is not JSON."""
    import json

    import xrbench.results.score as score

    nan = float("nan")
    monkeypatch.setattr(score, "score_file", lambda *a, **k: {"auroc_macro": (0.75, 0.5, 0.9), "ece": (nan, nan, nan)})
    assert main(["score", "--task", "chexpert-linear", "--predictions", str(tmp_path / "p.csv"), "--json"]) == 0
    got = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert got == {"auroc_macro": {"value": 0.75, "ci_low": 0.5, "ci_high": 0.9},
                   "ece": {"value": None, "ci_low": None, "ci_high": None}}


def test_a_closed_stdout_pipe_is_no_error(capsys, monkeypatch):
    """`xrbench list models | head -1`: the reader leaving is not a failure (was exit 1, 'Broken pipe')."""
    import xrbench.commands.list as ls

    def closed(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(ls, "run", closed)
    import sys
    stdout = sys.stdout
    try:
        assert main(["list", "models"]) == 0
    finally:
        sys.stdout = stdout
    assert "error" not in capsys.readouterr().err


def test_score_result_must_be_a_record_of_the_task(capsys, tmp_path):
    """--result used to crash (internal error, exit 1) on a malformed JSON or a list, exit 1 on a
    missing file, and took the thresholds of any task's record."""
    from _results_fixtures import write_result

    write_result(tmp_path, task="chexpert-linear")
    record = next(tmp_path.rglob("seed0.json"))
    (tmp_path / "bad.json").write_text("{bad")
    (tmp_path / "list.json").write_text("[1]")
    preds = str(tmp_path / "p.csv")
    for result, needle in [(tmp_path / "bad.json", "bad.json: not a readable JSON file"),
                           (tmp_path / "nothere.json", "nothere.json: not a readable JSON file"),
                           (tmp_path / "list.json", "list.json: not a result record"),
                           (record, "is a record of task 'chexpert-linear', not 'chexpert-knn'")]:
        assert main(["score", "--task", "chexpert-knn", "--predictions", preds, "--result", str(result)]) == 2
        assert needle in capsys.readouterr().err


def test_score_takes_data_like_run(monkeypatch, tmp_path, capsys):
    """`--data generic=DIR` (docs/own-dataset.md) works for score as for run."""
    import xrbench.results.score as score

    seen = {}

    def fake(spec, path, **kw):
        seen.update(kw)
        return {"auroc": (0.5, None, None)}

    monkeypatch.setattr(score, "score_file", fake)
    assert main(["score", "--task", "chexpert-linear", "--predictions", "p.csv", "--data", f"chexpert={tmp_path}"]) == 0
    assert seen["data_roots"] == {"chexpert": tmp_path} and seen["n_boot"] is None
    assert main(["score", "--task", "chexpert-linear", "--predictions", "p.csv", "--data", f"chexpret={tmp_path}"]) == 2
    assert "unknown dataset 'chexpret'. Did you mean: chexpert" in capsys.readouterr().err  # other tests register look-alikes
    assert main(["score", "--task", "chexpert-linear", "--predictions", "p.csv", "--data-root", str(tmp_path / "no")]) == 2
    assert "--data-root" in capsys.readouterr().err


def test_a_data_root_no_task_reads_is_named(tmp_path, capsys):
    """`--data chexpert=DIR --task mura-linear` ran mura on the demo data without a word (the
    SYNTHETIC banner was also suppressed as soon as any --data was given)."""
    from xrbench.commands.preflight import check_roots
    from xrbench.tasks.catalog import TaskCatalog

    specs = TaskCatalog().resolve("mura-linear")
    assert check_roots(specs, None, {"chexpert": tmp_path}) == ()
    assert ("warning: --data chexpert=... is not used: no selected task reads 'chexpert' (they read mura)"
            in capsys.readouterr().err)
    assert check_roots(specs, None, {"mura": tmp_path}) == ("mura",)
    assert "warning" not in capsys.readouterr().err

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
    assert "chexpert-knn" in capsys.readouterr().out
    assert main(["list", "datasets"]) == 0
    assert "chexpert" in capsys.readouterr().out


def test_misfit_weights_exit_1_naming_file(tmp_path, capsys, xr_home):
    import torch

    bad = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(3, 3)}, bad)
    assert main(["run", "--model", "xr0", "--weights", str(bad), "--task", "chexpert-linear"]) == 1
    err = capsys.readouterr().err
    assert "other.pt: checkpoint does not fit architecture 'vit_base_patch16_224'" in err


def test_corrupt_image_in_a_worker_exits_1_naming_the_file(tmp_path, capsys, xr_home):
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
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"xrbench: error: {root / '007.png'}: cannot be decoded as an image" in err
    assert "Traceback" not in err

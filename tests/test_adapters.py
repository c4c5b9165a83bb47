"""Every adapter loads a tiny checkpoint written here and runs chexpert-linear on the demo."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from xrbench.errors import ModelError
from xrbench.models import create_encoder

from _encoder_fixtures import run_chexpert, write_package

# the RAD-DINO image processor, as microsoft/rad-dino ships it
RAD_DINO_PRE = {"crop_size": {"height": 518, "width": 518}, "do_center_crop": True, "do_normalize": True,
                "do_rescale": True, "do_resize": True, "image_mean": [0.5307, 0.5307, 0.5307],
                "image_processor_type": "BitImageProcessor", "image_std": [0.2583, 0.2583, 0.2583],
                "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 518}}


@pytest.fixture(scope="module", autouse=True)
def demo_home(tmp_path_factory):
    """One small demo for the module (chexpert at XRBENCH_DEMO_SCALE=0.1: 40 images)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XRBENCH_HOME", str(tmp_path_factory.mktemp("xrhome")))
        mp.setenv("XRBENCH_DEMO_SCALE", "0.1")
        yield


def write_dinov2(folder, *, registers=0, image=56, pre=None):
    from transformers import Dinov2Config, Dinov2Model, Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    kw = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
              image_size=image, patch_size=14)
    torch.manual_seed(0)
    model = (Dinov2WithRegistersModel(Dinov2WithRegistersConfig(num_register_tokens=registers, **kw))
             if registers else Dinov2Model(Dinov2Config(**kw)))
    model.save_pretrained(folder)
    pre = pre or {**RAD_DINO_PRE, "crop_size": {"height": image, "width": image}, "size": {"shortest_edge": image}}
    (folder / "preprocessor_config.json").write_text(json.dumps(pre))
    return model.eval()


def check_record(rec, enc):
    assert rec.model == enc.meta.name and rec.weights_sha256 == enc.meta.weights_sha256
    assert rec.provenance["encoder"]["embed_dim"] == enc.meta.embed_dim and rec.data == "synthetic-demo"
    assert rec.n["test"] > 0 and 0.0 <= rec.primary.value <= 1.0


def test_hf_dinov2_with_registers_drops_them_and_runs(tmp_path):
    model = write_dinov2(tmp_path / "reg", registers=2)
    enc = create_encoder(f"hf:{tmp_path / 'reg'}")
    m = enc.meta
    assert (m.name, m.input_size, m.patch_size, m.grid, m.embed_dim) == ("hf:reg", 56, 14, 4, 32)
    assert m.mean == (0.5307,) * 3 and m.std == (0.2583,) * 3 and m.value_range == (0.0, 1.0)
    assert m.extra["prefix_tokens"] == 3 and len(m.weights_sha256) == 64
    x = torch.randn(2, 3, 56, 56)
    out = enc.encode(x)
    ref = model(pixel_values=x).last_hidden_state
    torch.testing.assert_close(out["global"], ref[:, 0])
    torch.testing.assert_close(out["patches"], ref[:, 3:].reshape(2, 4, 4, 32))  # CLS + 2 registers dropped
    check_record(run_chexpert(enc, tmp_path), enc)


def test_hf_blocks_follow_dinov2_linear_protocol(tmp_path):
    model = write_dinov2(tmp_path / "plain")
    enc = create_encoder(f"hf:{tmp_path / 'plain'}")
    x = torch.randn(3, 3, 56, 56)
    out = enc.encode(x, kinds=["blocks:2", "blocks:1:avgpool"])
    assert sorted(enc.encode(x)) == ["global", "patches"]  # default unchanged
    hs = model(pixel_values=x, output_hidden_states=True).hidden_states
    expect = torch.cat([model.layernorm(hs[-2])[:, 0], model.layernorm(hs[-1])[:, 0]], dim=-1)
    torch.testing.assert_close(out["blocks:2"], expect)
    torch.testing.assert_close(out["blocks:1:avgpool"][:, :32], out["global"])  # last block's CLS = global
    torch.testing.assert_close(out["blocks:1:avgpool"][:, 32:], out["patches"].flatten(1, 2).mean(1))
    with pytest.raises(ModelError, match="does not provide feature kind 'blocks:3'"):
        out["blocks:3"]


def test_rad_dino_entry_reads_518px_grid_37_from_env(tmp_path, monkeypatch):
    write_dinov2(tmp_path / "rad-dino", image=518, pre=RAD_DINO_PRE)
    with pytest.raises(ModelError, match=r"XRBENCH_RAD_DINO_WEIGHTS.*huggingface.co/microsoft/rad-dino"):
        create_encoder("rad-dino")
    monkeypatch.setenv("XRBENCH_RAD_DINO_WEIGHTS", str(tmp_path / "rad-dino"))
    enc = create_encoder("rad-dino")
    assert (enc.meta.name, enc.meta.input_size, enc.meta.grid) == ("rad-dino", 518, 37)
    out = enc.encode(torch.randn(1, 3, 518, 518))
    assert out["patches"].shape == (1, 37, 37, 32)


def test_hf_checkpoint_with_missing_keys_is_refused_unless_allow_partial(tmp_path):
    from safetensors.torch import load_file, save_file

    write_dinov2(tmp_path / "m")
    sd = load_file(str(tmp_path / "m" / "model.safetensors"))
    sd.pop("layernorm.weight")
    sd["extra.bias"] = torch.zeros(2)
    save_file(sd, str(tmp_path / "m" / "model.safetensors"))
    with pytest.raises(ModelError, match=r"1 missing key\(s\): \[layernorm.weight\]; 1 unexpected key\(s\): "
                                         r"\[extra.bias\].*--allow-partial"):
        create_encoder(f"hf:{tmp_path / 'm'}")
    with pytest.warns(UserWarning, match="loading the rest because of --allow-partial"):
        enc = create_encoder(f"hf:{tmp_path / 'm'}", allow_partial=True)
    assert enc.meta.extra["allow_partial"] is True
    assert enc.meta.extra["missing_keys"] == ["layernorm.weight"] and enc.meta.extra["unexpected_keys"] == ["extra.bias"]


def write_open_clip(folder):
    import open_clip
    from safetensors.torch import save_file

    folder.mkdir()
    cfg = {"embed_dim": 16,
           "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
           "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}}
    (folder / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": cfg, "preprocess_cfg": {"mean": [0.48, 0.46, 0.41], "std": [0.27, 0.26, 0.28]}}))
    torch.manual_seed(0)
    model = open_clip.create_model(f"local-dir:{folder}", load_weights=False).eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return model, open_clip.get_tokenizer(f"local-dir:{folder}")


def test_open_clip_image_and_text_towers_and_run(tmp_path):
    model, tokenizer = write_open_clip(tmp_path / "clip")
    enc = create_encoder(f"open_clip:{tmp_path / 'clip'}")
    m = enc.meta
    assert (m.embed_dim, m.patch_dim, m.input_size, m.grid, m.modalities) == (16, 32, 32, 4, ("image", "text"))
    x = torch.randn(2, 3, 32, 32)
    out = enc.encode(x)
    torch.testing.assert_close(out["global"], model.encode_image(x))
    assert out["patches"].shape == (2, 4, 4, 32)
    texts = ["no acute findings", "large left pleural effusion"]
    emb = enc.encode_text(texts)
    np.testing.assert_allclose(emb, model.encode_text(tokenizer(texts)).detach().numpy(), rtol=1e-5, atol=1e-6)
    assert enc.encode(x, kinds=["blocks:2:avgpool"])["blocks:2:avgpool"].shape == (2, 96)
    check_record(run_chexpert(enc, tmp_path), enc)


def test_biomedclip_entry_needs_a_folder(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="XRBENCH_BIOMEDCLIP_WEIGHTS"):
        create_encoder("biomedclip")
    write_open_clip(tmp_path / "bmc")
    enc = create_encoder("biomedclip", weights=tmp_path / "bmc")
    assert enc.meta.name == "biomedclip" and enc.meta.modalities == ("image", "text")


def test_torchscript_with_sidecar_runs_and_refuses_undeclared_preprocessing(tmp_path):
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 8, stride=8)

        def forward(self, x):
            p = self.conv(x).permute(0, 2, 3, 1)
            return p.mean((1, 2)), p

    torch.manual_seed(0)
    path = tmp_path / "enc.pt"
    torch.jit.trace(Net().eval(), torch.randn(1, 3, 32, 32)).save(str(path))
    with pytest.raises(ModelError, match=r"preprocessing contract must be declared: missing \['input_size', 'mean', 'std'\]"):
        create_encoder(f"torchscript:{path}")
    (tmp_path / "enc.pt.json").write_text(json.dumps({"input_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3,
                                                      "patch_size": 8}))
    enc = create_encoder(f"torchscript:{path}")
    assert (enc.meta.name, enc.meta.embed_dim, enc.meta.grid) == ("torchscript:enc", 8, 4)
    assert enc.meta.weights == str(path) and len(enc.meta.weights_sha256) == 64
    check_record(run_chexpert(enc, tmp_path), enc)


def test_module_factory_with_strict_weights_runs(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    monkeypatch.syspath_prepend(str(tmp_path))
    spec = write_package(tmp_path, "xrb_private_a")
    enc = create_encoder(f"module:{spec}")
    assert (enc.meta.name, enc.meta.embed_dim, enc.meta.weights) == ("tiny-module", 16, "test-fixture")
    sd = {k: v + 1 for k, v in enc.module.state_dict().items()}
    save_file(sd, str(tmp_path / "w.safetensors"))
    loaded = create_encoder(f"module:{spec}", weights=tmp_path / "w.safetensors")
    torch.testing.assert_close(loaded.module.conv.bias, sd["conv.bias"])
    assert loaded.meta.weights == str(tmp_path / "w.safetensors") and loaded.meta.weights_sha256
    save_file({"conv.weight": sd["conv.weight"]}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ModelError, match=r"1 missing key\(s\): \[conv.bias\]; 0 unexpected"):
        create_encoder(f"module:{spec}", weights=tmp_path / "bad.safetensors")
    check_record(run_chexpert(loaded, tmp_path), loaded)
    with pytest.raises(ModelError, match=r"cannot import 'nope_pkg.enc' \(No module named 'nope_pkg'\); is it on PYTHONPATH"):
        create_encoder("module:nope_pkg.enc:make")
    module, factory = spec.rsplit(":", 1)
    with pytest.raises(ModelError, match=rf"'{module}' has no factory '{factory}x'\. Did you mean: {factory}\?"):
        create_encoder(f"module:{spec}x")


def test_timm_blocks_and_partial_checkpoint_recorded_through_cli(tmp_path, monkeypatch, capsys):
    from safetensors.torch import save_file

    from xrbench.cli import main
    from xrbench.models.timm_adapter import create_timm_encoder

    enc = create_timm_encoder("t", "vit_tiny_patch16_224", input_size=32, seed=0)
    x = torch.randn(2, 3, 32, 32)
    out = enc.encode(x, kinds=["blocks:4", "blocks:1"])
    assert out["blocks:4"].shape == (2, 4 * 192)
    torch.testing.assert_close(out["blocks:1"], out["global"])  # CLS of the last block after the norm
    torch.testing.assert_close(out["blocks:4"][:, -192:], out["global"])

    # --allow-partial through the CLI, with the tiny module factory (32 px) to keep it fast
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = write_package(tmp_path, "xrb_private_b")
    tiny = create_encoder(f"module:{spec}")
    save_file({"conv.weight": tiny.module.conv.weight.contiguous()}, str(tmp_path / "partial.safetensors"))
    args = ["run", "--model", f"module:{spec}", "--weights", str(tmp_path / "partial.safetensors"),
            "--task", "chexpert-linear", "--output", str(tmp_path / "out"), "--bootstrap", "100",
            "--workers", "0", "--device", "cpu"]
    assert main(args) == 2
    assert "1 missing key(s): [conv.bias]; 0 unexpected key(s) (--allow-partial loads it anyway" in capsys.readouterr().err
    with pytest.warns(UserWarning, match="loading the rest because of --allow-partial"):
        assert main(args + ["--allow-partial"]) == 0
    rec = json.loads((tmp_path / "out" / "tiny-module" / "chexpert-linear" / "seed0.json").read_text())
    extra = rec["provenance"]["encoder"]["extra"]
    assert extra == {"allow_partial": True, "missing_keys": ["conv.bias"], "unexpected_keys": []}


def test_missing_extra_names_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "transformers", None)
    monkeypatch.setitem(sys.modules, "open_clip", None)
    with pytest.raises(ModelError, match=r"pip install 'xrbench\[hf\]'"):
        create_encoder(f"hf:{tmp_path}")
    with pytest.raises(ModelError, match=r"pip install 'xrbench\[clip\]'"):
        create_encoder(f"open_clip:{tmp_path}")


def test_prefix_errors_and_did_you_mean(tmp_path):
    from xrbench.registry import UnknownNameError

    with pytest.raises(UnknownNameError, match="Did you mean: hf:"):
        create_encoder("hff:/x")
    with pytest.raises(ModelError, match="needs a path"):
        create_encoder("hf:")
    with pytest.raises(ModelError, match="drop --weights"):
        create_encoder(f"hf:{tmp_path}", weights="w.safetensors")
    with pytest.raises(ModelError, match="not a Hugging Face model folder"):
        create_encoder(f"hf:{tmp_path}")


def test_mxr0_records_text_tower_folder(tmp_path, monkeypatch):
    (tmp_path / "pubmedbert").mkdir()
    with pytest.raises(ModelError, match="PubMedBERT-format folder"):
        create_encoder("mxr0", text_weights=str(tmp_path / "pubmedbert"))
    (tmp_path / "pubmedbert" / "config.json").write_text("{}")
    monkeypatch.setenv("XRBENCH_MXR0_TEXT_WEIGHTS", str(tmp_path / "pubmedbert"))
    enc = create_encoder("mxr0")
    assert enc.meta.modalities == ("image", "text") and enc.meta.extra["text_weights"] == str(tmp_path / "pubmedbert")
    with pytest.raises(ModelError, match="has no text tower"):
        create_encoder("xr0", text_weights=str(tmp_path / "pubmedbert"))


def test_text_weights_flag_reaches_the_factory(tmp_path, monkeypatch, capsys):
    from xrbench.cli import main

    monkeypatch.setenv("XRBENCH_HOME", str(tmp_path / "home"))
    folder = tmp_path / "pubmedbert"
    folder.mkdir()
    args = ["run", "--task", "chexpert-linear", "--output", str(tmp_path / "out"), "--text-weights", str(folder)]
    assert main(args + ["--model", "mxr0"]) == 2
    assert "PubMedBERT-format folder" in capsys.readouterr().err
    assert main(args + ["--model", "xr0"]) == 2
    assert "has no text tower" in capsys.readouterr().err


def test_list_models_reads_cards_without_torch_and_info_prints_preprocessing(capsys):
    import subprocess

    code = ("import sys; from xrbench.commands.list import _models; _models(); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rows = {line.split()[0]: line.split() for line in res.stdout.splitlines()}
    assert rows["rad-dino"][1:5] == ["image", "768", "518", "37x37"]
    assert rows["biomedclip"][1] == "image+text" and "hf:<PATH>" in rows
    assert rows["efficientnet-lite0-imagenet"][5] == "packaged"

    from xrbench.cli import main

    assert main(["info", "xr0", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["grid"] == 14 and info["preprocessing"]["size"] == 224 and info["bit_depth"] == "unit"
    assert info["normalised_range"][0][0] == pytest.approx((0 - 0.485) / 0.229, abs=1e-4)

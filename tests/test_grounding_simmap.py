"""The similarity-map grounding baseline: patch tokens projected exactly into the image-text space
(open_clip ViT and timm towers, HF CLIP), a planted map whose box is known in original pixels,
no baseline without a text tower, and a real run whose cached rerun reports the same numbers."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_adapters import write_open_clip
from test_family_report_retrieval import BagOfWords  # noqa: F401  (registers the test text encoder)

from xrbench.data.sample import Box, Phrase, Sample
from xrbench.errors import ModelError
from xrbench.families.base import SplitData, score_units
from xrbench.families.grounding import SIMMAP, SIMMAP_FRACTIONS, Grounding, map_boxes
from xrbench.features.view import FeatureRows
from xrbench.models import create_encoder
from xrbench.models.base import Encoder, EncoderMeta

FAST = {"text_encoder": "test-bow", "epochs": 2, "eval_every": 1, "hidden": 8}


def _spec(args=FAST):
    from xrbench.tasks.catalog import TaskCatalog

    spec = TaskCatalog().resolve("mscxr-grounding")[0]
    return spec.model_copy(update={"protocol": spec.protocol.model_copy(update={"args": args})})


# -- the projection ---------------------------------------------------------------------------
def test_open_clip_vit_projection_reproduces_encode_image_and_open_clips_own_tokens(tmp_path):
    model, _ = write_open_clip(tmp_path / "clip")
    enc = create_encoder(f"open_clip:{tmp_path / 'clip'}")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        # the class token, normalised like the stored grid, through the projection = encode_image
        out = model.visual.forward_intermediates(x, indices=1, normalize_intermediates=True, output_fmt="NLC",
                                                 output_extra_tokens=True)
        cls = out["image_intermediates_prefix"][-1]  # [B, 1, width]
        torch.testing.assert_close(enc.project_patches(cls[:, None]).reshape(2, 16), model.encode_image(x))
        # the stored grid projected = open_clip's own forward(output_tokens) tokens @ proj
        model.visual.output_tokens = True
        _, tokens = model.visual(x)
        model.visual.output_tokens = False
        grid = enc.encode(x)["patches"]
        want = (tokens @ model.visual.proj).reshape(2, 4, 4, 16)
        torch.testing.assert_close(enc.project_patches(grid), want)
    assert enc.project_patches(grid).shape == (2, 4, 4, enc.meta.embed_dim)
    enc.model.visual.proj = None
    with pytest.raises(ModelError, match="proj is None"):
        enc.project_patches(grid)


def test_open_clip_timm_tower_projection_is_its_head(tmp_path):
    """BiomedCLIP's layout: a timm ViT trunk (class-token pool) and a linear ``proj`` head."""
    import open_clip
    from safetensors.torch import save_file

    folder = tmp_path / "bmc"
    folder.mkdir()
    cfg = {"embed_dim": 16, "vision_cfg": {"image_size": 160, "timm_model_name": "test_vit",
                                           "timm_model_pretrained": False, "timm_pool": "", "timm_proj": "linear"},
           "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}}
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {}}))
    torch.manual_seed(0)
    model = open_clip.create_model(f"local-dir:{folder}", load_weights=False).eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    enc = create_encoder(f"open_clip:{folder}")
    x = torch.randn(1, 3, 160, 160)
    with torch.no_grad():
        tokens = model.visual.trunk.forward_features(x)  # [B, 1 + 100, 64], after the trunk's norm
        torch.testing.assert_close(enc.project_patches(tokens[:, None, :1]).reshape(1, 16), model.encode_image(x))
        torch.testing.assert_close(enc.project_patches(enc.encode(x)["patches"]),
                                   model.visual.head(tokens[:, 1:]).reshape(1, 10, 10, 16))
    enc.model.visual.trunk.global_pool = "avg"
    with pytest.raises(ModelError, match="does not pool the class token"):
        enc.project_patches(torch.zeros(1, 10, 10, 64))


def test_hf_clip_projection_is_post_layernorm_then_visual_projection():
    from transformers import CLIPConfig, CLIPModel

    from xrbench.models.hf_adapter import HFEncoder

    torch.manual_seed(0)
    cfg = CLIPConfig(text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                  "num_attention_heads": 2},
                     vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                                    "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
                     projection_dim=16)
    model = CLIPModel(cfg).eval()
    meta = EncoderMeta(name="hf-clip", architecture="hf:CLIPModel", embed_dim=16, input_size=32,
                       mean=(0.5,) * 3, std=(0.25,) * 3, patch_size=8, patch_dim=32)
    enc = HFEncoder(model, meta, n_prefix=1, pooled=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        hidden = model.vision_model(pixel_values=x).last_hidden_state
        out = enc.encode(x)
        torch.testing.assert_close(enc.project_patches(hidden[:, None, :1]).reshape(2, 16), out["global"])
        want = model.visual_projection(model.vision_model.post_layernorm(hidden[:, 1:])).reshape(2, 4, 4, 16)
        torch.testing.assert_close(enc.project_patches(out["patches"]), want)


def test_encoders_without_a_projection_say_so(tiny_encoder):
    with pytest.raises(ModelError, match="encoder 'tiny-vit' has no patch projection into a text space"):
        tiny_encoder.project_patches(torch.zeros(1, 4, 4, 192))


# -- a planted map ------------------------------------------------------------------------------
# a 100 (h) x 200 (w) image padded to 200 x 200 (top 50, left 0), resized to 64: a 4 x 4 grid
# whose cells are 50 x 50 original pixels, rows 0 and 3 half or wholly in the padding
GEO = [100, 200, 200, 50, 0, 64]
TEXTS = {"a finding": 0, "b finding": 1}


class Planted(Encoder):
    """Patch tokens already in the joint space; phrase ``a`` / ``b`` is channel 0 / 1."""

    def __init__(self, modalities=("image", "text")):
        super().__init__(EncoderMeta(name="planted", architecture="test", embed_dim=8, input_size=64,
                                     mean=(0.5,) * 3, std=(0.25,) * 3, patch_size=16, modalities=modalities,
                                     weights="test", weights_sha256="1" * 64))

    def encode_text(self, texts):
        out = np.zeros((len(texts), 8), dtype=np.float32)
        out[np.arange(len(texts)), [TEXTS[t] for t in texts]] = 1.0
        return out

    def project_patches(self, grid):
        return 2.0 * grid  # any per-token map of a positive scale keeps the cosines


class NoProjection(Planted):
    project_patches = Encoder.project_patches


def planted_split(name: str, n: int, rng) -> tuple[SplitData, dict]:
    """Phrase a marks cells rows 2-3, cols c..c+1 (c = i % 3): original [50c, 50, 50c + 100, 100]
    after clipping the padding; phrase b marks cell (1, 3): [150, 0, 200, 50]. Background cells
    lean towards phrase a by 0, 0.25 or 0.5 (each in every image, at cosines 0, 0.24 and 0.45 of a
    maximum of 0.95), so fractions below 0.5 take background cells and 0.5 is the right one."""
    grid = np.zeros((n, 4, 4, 8), dtype=np.float32)
    grid[..., 2:] = rng.normal(size=(n, 4, 4, 6))
    grid[..., 2:] /= np.linalg.norm(grid[..., 2:], axis=-1, keepdims=True)
    grid[..., 0] = rng.choice([0.0, 0.25, 0.5], size=(n, 4, 4))
    grid[:, 0, :3, 0] = [0.0, 0.25, 0.5]
    samples, want = [], {}
    for i in range(n):
        c = i % 3
        grid[i, 2:4, c:c + 2, 0] = 3.0
        grid[i, 1, 3, 1] = 3.0
        a, b = [50.0 * c, 50.0, 50.0 * c + 100, 100.0], [150.0, 0.0, 200.0, 50.0]
        samples.append(Sample(id=f"{name}{i}", image=Path(f"{name}{i}.png"), patient=f"{name}p{i}", split=name,
                              phrases=[Phrase("a finding", (Box(*a, "a"),)), Phrase("b finding", (Box(*b, "b"),))]))
        want |= {f"{name}{i}#0": a, f"{name}{i}#1": b}
    return SplitData(samples, FeatureRows(grid), np.array([GEO] * n)), want


@pytest.fixture
def planted(xr_home):
    rng = np.random.default_rng(0)
    return [planted_split(k, n, rng) for k, n in (("train", 12), ("val", 9), ("test", 9))]


def test_planted_map_gives_the_planted_box_in_original_pixels(planted):
    (train, _), (val, _), (test, want) = planted
    family = Grounding(_spec())
    family.encoder = Planted()
    out = family.fit_predict(train, val, test, seed=0, device="cpu")
    base = out.state["baselines"][SIMMAP]
    assert base["boxes"] == want  # exactly the planted regions, padding clipped
    assert base["val_miou"] == 1.0 and base["threshold"] == 0.5  # the smallest that drops the background
    units = family.units(test.samples)
    scored = score_units(family, units, [family.truth(u, test.samples) for u in units], out.predictions,
                         out.state, n_boot=50, seed=0)
    rep = family.report(scored, test.samples, out.state, n_boot=50, seed=0)["baselines"][SIMMAP]
    assert rep["metrics"]["miou"] == {"value": 1.0, "ci_low": 1.0, "ci_high": 1.0}
    assert rep["metrics"]["acc@0.5"]["value"] == 1.0 and rep["threshold"] == base["threshold"]


def test_map_boxes_threshold_is_relative_to_the_map():
    sim = np.array([[[0.0, 0.2, 0.0], [0.0, 1.0, 0.9], [0.1, 0.0, 0.0]]])
    boxes = map_boxes(sim, [0.0, 0.5, 0.95, 1.0])[0] * 3
    assert boxes.tolist() == [[0, 0, 3, 3], [1, 1, 3, 2], [1, 1, 2, 2], [1, 1, 2, 2]]
    assert (map_boxes(sim * 5 - 2, [0.5]) == map_boxes(sim, [0.5])).all()  # an affine map changes nothing


def test_no_text_tower_no_baseline_and_a_tower_without_projection_is_skipped(planted):
    (train, _), (val, _), (test, _) = planted
    family = Grounding(_spec())
    assert not family.wants_encoder(Planted(modalities=("image",)).meta) and family.wants_encoder(Planted().meta)
    out = family.fit_predict(train, val, test, seed=0, device="cpu")  # the runner set no encoder
    assert out.state == {}
    units = family.units(test.samples)
    scored = score_units(family, units, [family.truth(u, test.samples) for u in units], out.predictions,
                         out.state, n_boot=0, seed=0)
    assert family.report(scored, test.samples, out.state, n_boot=0, seed=0) == {}
    family.encoder = NoProjection()
    out = family.fit_predict(train, val, test, seed=0, device="cpu")
    assert "no patch projection" in out.state["baselines"][SIMMAP]["skipped"]
    rep = family.report(scored, test.samples, out.state, n_boot=0, seed=0)
    assert list(rep["baselines"][SIMMAP]) == ["skipped"]


# -- a real run ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_run_with_open_clip_reports_the_baseline_and_a_cached_rerun_repeats_it(tmp_path, monkeypatch):
    from xrbench.results.predictions import read_rows
    from xrbench.results.record import ResultRecord
    from xrbench.results.score import score_file
    from xrbench.results.summary import summary_table
    from xrbench.runner import RunConfig, Runner

    monkeypatch.setenv("XRBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XRBENCH_DEMO_SCALE", "0.15")
    write_open_clip(tmp_path / "clip")
    enc = create_encoder(f"open_clip:{tmp_path / 'clip'}")
    spec = _spec()
    cfg = RunConfig(output=tmp_path / "out", n_boot=100)
    rec = Runner(enc, cfg, progress=lambda m: None).run_task(spec)[0]
    base = rec.baselines[SIMMAP]
    assert set(base["metrics"]) == set(spec.metrics) and base["threshold"] in SIMMAP_FRACTIONS
    for m in base["metrics"].values():
        assert 0.0 <= m["value"] <= 1.0 and m["ci_low"] is not None and m["ci_low"] <= m["value"] <= m["ci_high"]
    assert base["text_encoder"]["name"] == f"{enc.meta.name}:text-tower"
    folder = next((tmp_path / "out").rglob("seed0.json")).parent
    assert ResultRecord.read(folder / "seed0.json").baselines == rec.baselines
    head, rows = read_rows(folder / "seed0.predictions.jsonl")
    assert sorted(head["state"]["baselines"][SIMMAP]["boxes"]) == sorted(r["id"] for r in rows)
    assert f"baseline {SIMMAP}: miou" in summary_table([rec])
    got = score_file(spec, folder / "seed0.predictions.jsonl", n_boot=100)  # the head's numbers, untouched
    assert got["miou"] == pytest.approx(tuple(vars(rec.metrics["miou"]).values()), abs=1e-12)

    def refit(*a, **k):
        raise AssertionError("the head cache should have served this run")

    monkeypatch.setattr(Grounding, "fit_predict", refit)
    again = Runner(enc, cfg, progress=lambda m: None).run_task(spec)[0]
    assert again.baselines == rec.baselines and again.metrics == rec.metrics

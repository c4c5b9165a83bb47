"""GPU paths (skipped without CUDA): bf16 autocast extraction and the probe on the device."""
import numpy as np
import pytest
import torch

from xrbench.data.images import write_raster
from xrbench.data.sample import Sample
from xrbench.features.extract import encode_samples
from xrbench.metrics.classification import auroc_macro
from xrbench.models import create_encoder
from xrbench.protocols.base import Split
from xrbench.protocols.linear import LinearProbe

pytestmark = pytest.mark.gpu


def test_cuda_bf16_extraction_matches_cpu(tmp_path):
    rng = np.random.default_rng(0)
    samples = []
    for i in range(6):
        write_raster(tmp_path / f"{i}.png", rng.random((96, 80)))
        samples.append(Sample(id=str(i), image=tmp_path / f"{i}.png", patient=str(i), split="test"))
    enc = create_encoder("efficientnet-lite0-imagenet")
    cpu = encode_samples(enc, samples, kinds=["global", "patches"], device="cpu")
    gpu = encode_samples(enc, samples, kinds=["global", "patches"], device="cuda")
    assert gpu["patches"].shape == cpu["patches"].shape == (6, 7, 7, 1280)
    cos = (gpu["global"] * cpu["global"]).sum(1) / (
        np.linalg.norm(gpu["global"], axis=1) * np.linalg.norm(cpu["global"], axis=1))
    assert cos.min() > 0.99  # bf16 autocast stays close to fp32


def test_linear_probe_on_cuda_matches_cpu():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 64)).astype(np.float32)
    y = (x @ rng.normal(size=(64, 3)) > 0).astype(float)
    args = dict(task="multilabel", n_out=3, select=auroc_macro)
    cpu = LinearProbe().run(Split(x[:300], y[:300]), Split(x[300:400], y[300:400]), x[400:], device="cpu", **args)
    gpu = LinearProbe().run(Split(x[:300], y[:300]), Split(x[300:400], y[300:400]), x[400:], device="cuda", **args)
    assert gpu.hparams["weight_decay"] == cpu.hparams["weight_decay"]
    assert abs(auroc_macro(y[400:], gpu.test_scores) - auroc_macro(y[400:], cpu.test_scores)) < 0.01
    assert torch.cuda.is_available()

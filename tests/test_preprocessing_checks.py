"""The first batch is checked against the encoder's declared preprocessing before anything is cached."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from xrbench.errors import ModelError
from xrbench.models.checks import check_first_batch, check_meta, expected_range
from xrbench.models.meta import EncoderMeta

from _encoder_fixtures import write_package
from _results_fixtures import ToySpots, toy_tasks

META = EncoderMeta(name="m", architecture="a", embed_dim=4, input_size=8, mean=(0.5,) * 3, std=(0.25,) * 3)
IDS = ["a", "b", "c"]


def batch(b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x01 = torch.rand(b, 1, 8, 8, generator=g).expand(b, 3, 8, 8)
    return (x01 - 0.5) / 0.25


def outputs(b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"global": torch.randn(b, 4, generator=g), "patches": torch.randn(b, 2, 2, 4, generator=g)}


def test_a_sound_batch_passes_and_the_range_is_derived_from_value_range():
    check_first_batch(batch(), outputs(), META, IDS)
    low, high = expected_range(META)
    assert low.tolist() == [-2.0] * 3 and high.tolist() == [2.0] * 3
    low, high = expected_range(replace(META, value_range=(0.0, 255.0), mean=(127.5,) * 3, std=(63.75,) * 3))
    assert low.tolist() == [-2.0] * 3 and high.tolist() == [2.0] * 3


@pytest.mark.parametrize("x, needle", [
    (batch() * 0.25 + 0.5 + 0.0, None),  # un-normalised [0, 1] pixels lie inside [-2, 2]: not an error
    ((batch() * 0.25 + 0.5) * 255, r"expected inputs in \[-2, -2, -2\] \.\. \[2, 2, 2\] per channel.*found "
                                   r"\[0\.\d+, .*\] \.\. \[2\d\d\.\d*, .*un-normalised, or normalised twice"),
    ((batch() - 0.5) / 0.25, r"found \[-9\.\d+, .*\] \.\. \[5\.\d+"),  # normalised twice
])
def test_inputs_outside_the_declared_range_are_refused(x, needle):
    if needle is None:
        check_first_batch(x, outputs(), META, IDS)
        return
    with pytest.raises(ModelError, match=needle):
        check_first_batch(x, outputs(), META, IDS)


def test_declared_contract_that_cannot_be_standardised_is_refused():
    twice = replace(META, mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375))
    with pytest.raises(ModelError, match=r"gives normalised inputs in \[-2\.118, -2\.036, -1\.804\] \.\. "
                                         r"\[-2\.101, -2\.018, -1\.787\].*normalised twice"):
        check_meta(twice)
    raw = replace(META, value_range=(0.0, 255.0))
    with pytest.raises(ModelError, match=r"\.\. \[1018, 1018, 1018\].*inputs look un-normalised"):
        check_meta(raw)


def test_channels_size_nan_and_constant_images_are_named():
    with pytest.raises(ModelError, match=r"expected input batches \[B, 3, 8, 8\].*found \[3, 1, 8, 8\]"):
        check_first_batch(batch()[:, :1], outputs(), META, IDS)
    x = batch()
    x[1, 0, 0, 0] = float("nan")
    with pytest.raises(ModelError, match="NaN or inf in the preprocessed input of b$"):
        check_first_batch(x, outputs(), META, IDS)
    x = batch()
    x[2] = -2.0
    with pytest.raises(ModelError, match=r"image\(s\) c are all one value after preprocessing \(-2\)"):
        check_first_batch(x, outputs(), META, IDS)


def test_outputs_identical_across_distinct_images_or_of_the_wrong_shape_are_refused():
    same = {"global": torch.ones(3, 4), "patches": torch.randn(3, 2, 2, 4)}
    with pytest.raises(ModelError, match="identical global features for 3 distinct images"):
        check_first_batch(batch(), same, META, IDS)
    x = batch(1).expand(3, -1, -1, -1)  # the same image three times: identical outputs are right
    check_first_batch(x, same, META, IDS)
    with pytest.raises(ModelError, match=r"expected global features \[3, 4\] \(embed_dim\), found \[3, 5\]"):
        check_first_batch(batch(), {"global": torch.randn(3, 5)}, META, IDS)
    bad = outputs()
    bad["patches"][0, 0, 0, 0] = float("inf")
    with pytest.raises(ModelError, match="NaN or inf in the 'patches' features of a"):
        check_first_batch(batch(), bad, META, IDS)


@pytest.mark.parametrize("options, needle", [
    ("constant=True", "identical global features"),
    ("mean=(123.675,) * 3, std=(58.395,) * 3", "normalised twice"),
])
def test_misnormalised_encoder_is_stopped_before_anything_is_cached(tmp_path, monkeypatch, options, needle):
    from xrbench.models import create_encoder
    from xrbench.runner import RunConfig, Runner
    from xrbench.tasks.catalog import TaskCatalog

    monkeypatch.syspath_prepend(str(tmp_path))
    pkg = f"xrb_bad_{abs(hash(options)) % 10**8}"
    write_package(tmp_path, pkg)
    (tmp_path / pkg / "bad.py").write_text(f"from .enc import make as _make\n\ndef make():\n    return _make({options})\n")
    enc = create_encoder(f"module:{pkg}.bad:make")
    root = tmp_path / "toy"
    ToySpots.write_demo(root, n=20, seed=0)
    cfg = RunConfig(output=tmp_path / "out", data_roots={"toy-spots": root}, n_boot=100,
                    feature_root=tmp_path / "features", batch_size=8)
    with pytest.raises(ModelError, match=needle):
        Runner(enc, cfg, progress=lambda m: None).run(TaskCatalog([toy_tasks(tmp_path / "tasks")]).resolve("toy-spots-linear"))
    assert enc.images_encoded <= 8  # stopped at the first batch
    store = tmp_path / "features"
    assert not store.exists() or not any(store.iterdir())  # nothing cached, not even a temp folder
    assert not (tmp_path / "out").exists()

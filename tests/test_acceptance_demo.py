"""The demo separates encoders: real ImageNet weights beat random-init xr0 on chexpert-linear,
and shuffled labels give chance. Runs the real CheXpert demo (200 phantom images) end to end."""
from __future__ import annotations

import numpy as np
import pytest

from xrbench.data.datasets.chexpert import CheXpert
from xrbench.data.demo import demo_root
from xrbench.models import create_encoder
from xrbench.registry import DATASETS
from xrbench.runner import RunConfig, Runner
from xrbench.tasks.catalog import TaskCatalog

pytestmark = pytest.mark.slow


@DATASETS.register("chexpert-shuffled", overwrite=True)
class ShuffledCheXpert(CheXpert):
    """CheXpert with the label dicts permuted across ALL samples (train, val and test together)."""

    name = "chexpert-shuffled"

    def load(self):
        samples = super().load()
        perm = np.random.default_rng(123).permutation(len(samples))
        labels = [samples[i].labels for i in perm]
        for s, lab in zip(samples, labels):
            s.labels = lab
        return samples


@pytest.fixture(scope="module")
def chexpert_demo(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    mp = pytest.MonkeyPatch()
    mp.setenv("XRBENCH_HOME", str(home))
    yield demo_root("chexpert"), home
    mp.undo()


def _run(model, root, home, out, dataset="chexpert"):
    spec = TaskCatalog().resolve("chexpert-linear")[0]
    if dataset != "chexpert":
        spec = spec.model_copy(update={"dataset": dataset})
    cfg = RunConfig(output=out, feature_root=home / "features", n_boot=500)
    cfg.data_roots = {} if dataset == "chexpert" else {dataset: root}
    return Runner(create_encoder(model), cfg).run([spec])[0]


def test_imagenet_weights_beat_random_init_by_more_than_the_cis(chexpert_demo, tmp_path):
    root, home = chexpert_demo
    eff = _run("efficientnet-lite0-imagenet", root, home, tmp_path)
    xr0 = _run("xr0", root, home, tmp_path)
    assert eff.data == xr0.data == "synthetic-demo" and xr0.weights == "random-init"
    assert eff.n["test"] >= 60  # the demo's 66 frontal test images
    assert eff.primary.ci_low > xr0.primary.ci_high, (eff.primary, xr0.primary)


def test_shuffled_labels_give_chance(chexpert_demo, tmp_path):
    root, home = chexpert_demo
    rec = _run("efficientnet-lite0-imagenet", root, home, tmp_path, dataset="chexpert-shuffled")
    assert abs(rec.primary.value - 0.5) < 0.1, rec.primary

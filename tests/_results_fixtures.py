"""Shared by the results tests: hand-written records + predictions CSVs in the runner's exact
layout, and a tiny registered dataset/task for end-to-end runs.

``<root>/<model>/<task>/seed<k>[_lf<f>].json`` next to ``... .predictions.csv`` with the columns
``id,patient,group,y:<label>,score:<label>``; values computed with the registered metric.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

import xrbench.metrics  # noqa: F401
from xrbench.data.base import DatasetLoader
from xrbench.data.images import write_raster
from xrbench.data.sample import Sample
from xrbench.metrics.bootstrap import bootstrap_ci
from xrbench.registry import DATASETS, METRICS
from xrbench.results.record import MetricValue, ResultRecord


def toy_scores(n_patients: int = 100, noise: float = 0.8, seed: int = 0, shared_seed: int = 7):
    """(y [N,1], scores [N,1], patients): two images per patient; the shared noise makes two
    'models' built with the same ``shared_seed`` correlated, as two encoders on one test set are."""
    rng = np.random.default_rng(shared_seed)
    y = (rng.random(2 * n_patients) < 0.4).astype(float)
    shared = rng.normal(size=y.size)
    own = np.random.default_rng(seed).normal(size=y.size)
    s = y + 0.6 * shared + noise * own
    return y[:, None], s[:, None], [f"p{i // 2}" for i in range(y.size)]


def write_result(root: Path, *, model: str = "m1", weights: str = "random-init", task: str = "toy",
                 y: np.ndarray | None = None, s: np.ndarray | None = None, patients: list[str] | None = None,
                 labels: tuple[str, ...] = ("blob",), threshold: float | None = None,
                 seed: int = 0, label_fraction: float = 1.0, dataset_hash: str = "d" * 16,
                 config_hash: str = "c" * 16, task_version: int = 1, data: str = "synthetic-demo",
                 metric: str = "auroc", direction: str = "higher", family: str = "linear",
                 value: float | None = None, ci: tuple[float, float] | None = None,
                 predictions: bool = True, n_boot: int = 200, weights_sha256: str | None = None) -> Path:
    """One record (+ predictions) as the runner writes it: y [N, K] with K = len(labels), or [N]
    (class ids / values: one ``y:target`` column); s [N, len(labels)] scores."""
    if y is None:
        y, s, patients = toy_scores()
    fn = METRICS.get(metric)
    kw = {} if threshold is None else {"threshold": threshold}
    point = float(fn(y, s, labels=list(labels), **kw)) if value is None else value
    if ci is None:
        ci = bootstrap_ci(lambda r: fn(y[r], s[r], labels=list(labels), **kw), len(y), patients,
                          n_boot=n_boot)["value"]
    tag = f"seed{seed}" + ("" if label_fraction == 1.0 else f"_lf{label_fraction:g}")
    out = root / model.replace(":", "_") / task
    out.mkdir(parents=True, exist_ok=True)
    if predictions:
        y2, s2 = np.asarray(y, float).reshape(len(y), -1), np.asarray(s, float).reshape(len(s), -1)
        y_names = list(labels) if y2.shape[1] == len(labels) else ["target"]
        with open(out / f"{tag}.predictions.csv", "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["id", "patient", "group"] + [f"y:{n}" for n in y_names] + [f"score:{n}" for n in labels])
            for i, (yy, ss, p) in enumerate(zip(y2, s2, patients)):
                w.writerow([f"img{i:04d}", p, ""] + ["" if v != v else f"{v:g}" for v in yy] + [f"{v:.8g}" for v in ss])
    rec = ResultRecord(
        task=task, task_version=task_version, family=family, dataset="toy-data", model=model,
        weights=weights, weights_sha256=weights_sha256, primary_metric=metric, direction=direction,
        metrics={metric: MetricValue(point, *ci)}, n={"train": 300, "val": 100, "test": len(y)},
        seed=seed, label_fraction=label_fraction,
        hparams={} if threshold is None else {"thresholds": {metric: threshold}},
        data=data, dataset_hash=dataset_hash, config_hash=config_hash,
        provenance={"xrbench_version": "0.1.0", "git_sha": "abc123", "torch": "2.x", "cuda": None, "device": "cpu"},
        timings={"total_s": 1.5}, predictions=f"{tag}.predictions.csv" if predictions else None)
    path = out / f"{tag}.json"
    path.write_text(rec.to_json())
    return path


# -- a tiny registered dataset + task for end-to-end runs (flow, publish, HTML) ---------------
TOY_TASK = """name: toy-spots-linear
version: 1
description: toy
dataset: toy-spots
family: linear
target: {type: binary, labels: [spot]}
protocol: {name: linear, args: {weight_decays: [0.001, 0.1, 10.0]}}
metrics: [auroc]
primary: {metric: auroc}
bootstrap: {n: 200}
"""


@DATASETS.register("toy-spots", overwrite=True)
class ToySpots(DatasetLoader):
    """Synthetic, for tests only: a soft bright spot (label 'spot') of varying size, strength and
    place on a noisy gradient; two images per patient; splits 3:1:1 by image index."""

    name = "toy-spots"
    anatomy = "none"
    title = "toy spots"
    demo_size = 80

    def load(self) -> list[Sample]:
        out = []
        for p in sorted(self.root.glob("*.png")):
            i = int(p.stem)
            out.append(Sample(id=f"s{p.stem}", image=p, patient=f"p{i // 2}",
                              split=("train", "train", "train", "val", "test")[i % 5],
                              labels={"spot": float((i // 5) % 2)}))
        return out

    @classmethod
    def write_demo(cls, dest: Path, *, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:64, 0:64]
        for i in range(n):
            img = 0.2 + 0.2 * rng.random() * xx / 64 + 0.05 * rng.standard_normal((64, 64))
            if (i // 5) % 2:
                cy, cx = rng.integers(12, 52, 2)
                r = rng.uniform(5, 9)
                img = img + rng.uniform(0.3, 0.6) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
            write_raster(dest / f"{i:03d}.png", np.clip(img, 0, 1))


def toy_tasks(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "toy-spots-linear.yaml").write_text(TOY_TASK)
    return folder

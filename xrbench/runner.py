"""One evaluation run: tasks x one encoder -> result records, predictions and the leaderboard.

Data flow (docs/architecture.md): loader -> samples -> cached features (one extraction per
dataset split, shared by every task) -> protocol (fit on train, select on val, score test once)
-> metrics with patient-level bootstrap CIs -> records -> leaderboard CSV.
"""
from __future__ import annotations

import csv
import io
import logging
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

import xrbench.data.datasets  # noqa: F401  (registers loaders)
import xrbench.metrics  # noqa: F401  (registers metrics)
import xrbench.protocols  # noqa: F401  (registers protocols)
from xrbench.atomic import atomic_write_text
from xrbench.data.base import DatasetLoader, manifest_hash
from xrbench.data.demo import dataset_root, xrbench_home
from xrbench.data.labels import apply_uncertainty
from xrbench.data.sample import Sample
from xrbench.errors import ConfigError, DataError, ModelError
from xrbench.features import distributed as dist
from xrbench.features.extract import FeatureExtractor
from xrbench.features.store import FeatureStore
from xrbench.metrics.evaluate import evaluate, thresholds_on_val
from xrbench.models.base import Encoder
from xrbench.protocols.base import Split
from xrbench.registry import DATASETS, METRICS, PROTOCOLS
from xrbench.results import leaderboard
from xrbench.results.record import MetricValue, ResultRecord, environment
from xrbench.tasks.schema import TaskSpec

log = logging.getLogger(__name__)


@dataclass
class RunConfig:
    output: Path = Path("results")
    data_root: Path | None = None  # None -> synthetic demo
    data_roots: dict[str, Path] = field(default_factory=dict)  # per-dataset overrides
    device: str = "cpu"
    batch_size: int = 32
    num_workers: int = 0
    seeds: tuple[int, ...] = (0,)
    label_fractions: tuple[float, ...] = (1.0,)
    limit: int | None = None
    n_boot: int = 1000
    feature_root: Path | None = None


@dataclass
class TaskData:
    samples: dict[str, list[Sample]]
    features: dict[str, np.ndarray]
    dataset_hash: str
    synthetic: bool


def resolve_root(dataset: str, cfg: RunConfig) -> tuple[Path, bool]:
    """(root, synthetic): explicit per-dataset root, DIR/<dataset>, DIR itself, or the demo."""
    if dataset in cfg.data_roots:
        return cfg.data_roots[dataset], False
    return dataset_root(dataset, cfg.data_root), cfg.data_root is None


def _matches(sample: Sample, where: dict) -> bool:
    return all(sample.meta.get(k) == v for k, v in where.items())


def _limit(samples: list[Sample], n: int | None) -> list[Sample]:
    if n is None or len(samples) <= n:
        return samples
    idx = np.random.default_rng(0).choice(len(samples), n, replace=False)
    return [samples[i] for i in sorted(idx)]


def targets(spec: TaskSpec, samples: list[Sample]) -> np.ndarray:
    """The y array a protocol sees: [N, K] float with NaN, or [N] class ids / values."""
    t = spec.target
    if t.type in ("multilabel", "binary"):
        rows = [apply_uncertainty({k: s.labels.get(k, float("nan")) for k in t.labels},
                                  t.uncertain, t.blank) for s in samples]
        return np.array([[r[k] for k in t.labels] for r in rows], dtype=np.float64).reshape(len(samples), -1)
    if t.type == "multiclass":
        return np.array([int(s.target) for s in samples], dtype=np.int64)
    if t.type == "regression":
        return np.array([float(s.target) for s in samples], dtype=np.float64)
    if t.type == "retrieval":
        if not t.relevance:
            raise ConfigError(f"task {spec.name}: key 'target.relevance' is required for retrieval")
        return np.array([str(s.meta.get(t.relevance)) for s in samples], dtype=object)
    raise ConfigError(f"task {spec.name}: target type {t.type!r} is not supported by this runner")


def subsample_patients(samples: list[Sample], y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Row indices of a seeded, patient-level, label-stratified subsample of the training split."""
    if fraction >= 1.0:
        return np.arange(len(samples))
    by_patient: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_patient.setdefault(s.patient, []).append(i)
    # stratify on the patient's "any positive" (or class) so rare labels survive subsampling
    def stratum(rows: list[int]) -> str:
        v = y[rows]
        return str(int(v.max())) if v.ndim == 1 else str(int(np.nanmax(np.nan_to_num(v, nan=0)) > 0))
    strata: dict[str, list[str]] = {}
    for p, rows in sorted(by_patient.items()):
        strata.setdefault(stratum(rows), []).append(p)
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for _, patients in sorted(strata.items()):
        n = max(1, int(round(fraction * len(patients))))
        for p in rng.choice(patients, n, replace=False):
            keep += by_patient[p]
    return np.array(sorted(keep))


class Runner:
    def __init__(self, encoder: Encoder, cfg: RunConfig, *, progress: Callable[[str], None] | None = None):
        self.encoder, self.cfg = encoder, cfg
        store = FeatureStore(cfg.feature_root or xrbench_home() / "features")
        self.extractor = FeatureExtractor(encoder, store, device=cfg.device, batch_size=cfg.batch_size,
                                          num_workers=cfg.num_workers)
        self.say = progress or (lambda m: tqdm.write(m, file=sys.stderr))
        self._loaders: dict[tuple, DatasetLoader] = {}
        self._warned_random = False

    # -- data ---------------------------------------------------------------------------
    def _loader(self, spec: TaskSpec) -> tuple[DatasetLoader, bool]:
        root, synthetic = resolve_root(spec.dataset, self.cfg)
        key = (spec.dataset, str(root), tuple(sorted(spec.dataset_options.items())))
        if key not in self._loaders:
            self._loaders[key] = DATASETS.get(spec.dataset)(root, seed=0, **spec.dataset_options)
        return self._loaders[key], synthetic

    def task_data(self, spec: TaskSpec) -> TaskData:
        loader, synthetic = self._loader(spec)
        if self.encoder.meta.is_random and not synthetic:
            raise ModelError(f"model '{self.encoder.meta.name}' has no weights (random-init); random-init "
                             f"runs only on the synthetic demo. Pass --weights PATH or set "
                             f"XRBENCH_{self.encoder.meta.name.upper()}_WEIGHTS.")
        if self.encoder.meta.is_random and not self._warned_random:
            warnings.warn(f"'{self.encoder.meta.name}' runs with random-init weights on synthetic demo "
                          f"data: every result says weights=random-init", stacklevel=2)
            self._warned_random = True
        samples, feats = {}, {}
        for split in ("train", "val", "test"):
            # features cover the whole split (shared by every task of the dataset); rows are picked after
            full = _limit(loader.split(split), self.cfg.limit)
            arr = self.extractor.features(spec.dataset, split, full, loader.image_manifest_hash(full),
                                          [spec.features])[spec.features]
            rows = task_rows(spec, full, split, loader)
            samples[split] = [full[i] for i in rows]
            feats[split] = np.asarray(arr[rows], dtype=np.float32)
        # the hash of what was actually evaluated (after --limit and the task's row selection)
        used = samples["train"] + samples["val"] + samples["test"]
        return TaskData(samples, feats, manifest_hash(used, loader.root), synthetic)

    # -- one task ---------------------------------------------------------------------------
    def run_task(self, spec: TaskSpec) -> list[ResultRecord]:
        t0 = time.perf_counter()
        ext0 = self.extractor.seconds
        data = self.task_data(spec)
        extract_s = self.extractor.seconds - ext0
        ys = {k: targets(spec, v) for k, v in data.samples.items()}
        kind = spec.target.type
        labels, n_out = output_labels(spec, ys)
        primary_fn = METRICS.get(spec.primary.metric)
        sign = 1.0 if spec.primary.direction == "higher" else -1.0

        def select(y, s):
            v = primary_fn(y, s, labels=labels)
            return sign * (v if not isinstance(v, dict) else float(np.nanmean(list(v.values()))))

        records = []
        for fraction in self.cfg.label_fractions:
            for seed in self.cfg.seeds:
                t1 = time.perf_counter()
                keep = (np.arange(len(ys["train"])) if kind == "retrieval"  # the gallery is never subsampled
                        else subsample_patients(data.samples["train"], ys["train"], fraction, seed))
                proto = PROTOCOLS.get(spec.protocol.name)(**spec.protocol.args)
                device = probe_device(self.cfg.device, data.features["train"][keep].size)
                res = proto.run(Split(data.features["train"][keep], ys["train"][keep]),
                                Split(data.features["val"], ys["val"]), data.features["test"],
                                task=kind, n_out=n_out, select=select, seed=seed, device=device)
                res.hparams["probe_device"] = device
                fit_s = time.perf_counter() - t1
                rec = self._score(spec, data, ys, res, labels, seed, fraction, keep,
                                  {"extract_s": round(extract_s, 3), "fit_s": round(fit_s, 3),
                                   "total_s": round(time.perf_counter() - t0, 3)})
                records.append(rec)
        return records

    def _score(self, spec, data, ys, res, labels, seed, fraction, keep, timings) -> ResultRecord:
        test = data.samples["test"]
        y, s = ys["test"], res.test_scores
        ranked_ids = None
        if spec.target.type == "retrieval":  # ranked gallery indices -> relevance
            gallery = data.samples["train"]
            ranked_ids = [[gallery[j].id for j in row] for row in s.astype(int)]
            y, s = retrieval_relevance(ys["train"], y, s.astype(int))
        y_val, s_val = ys["val"], res.val_scores
        units = [t.patient for t in test]
        if spec.aggregate == "group-mean":
            y, s, units = _group_mean(test, y, s)
            if s_val is not None:
                y_val, s_val, _ = _group_mean(data.samples["val"], y_val, s_val)
        elif spec.bootstrap.unit == "group":
            units = [t.group or t.patient for t in test]
        elif spec.bootstrap.unit == "sample":
            units = [t.id for t in test]
        thresholds = thresholds_on_val(spec.metrics, spec.target.type, y_val, s_val)
        values = evaluate(spec.metrics, y, s, units, labels=labels, thresholds=thresholds,
                          n_boot=self.cfg.n_boot, seed=seed)
        metrics = {k: MetricValue(*v) for k, v in values.items()}
        enc = self.encoder.meta
        tag = f"seed{seed}" + ("" if fraction == 1.0 else f"_lf{fraction:g}")
        out_dir = self.cfg.output / _safe(enc.name) / spec.name
        pred_path = out_dir / f"{tag}.predictions.csv"
        if dist.is_main():
            atomic_write_text(pred_path, _predictions_csv(test, y, s, labels, ranked_ids=ranked_ids,
                                                          aggregated=spec.aggregate == "group-mean"))
        rec = ResultRecord(
            task=spec.name, task_version=spec.version, family=spec.family, dataset=spec.dataset,
            model=enc.name, weights=enc.weights, weights_sha256=enc.weights_sha256,
            primary_metric=spec.primary.metric, direction=spec.primary.direction, metrics=metrics,
            n={"train": int(len(keep)), "val": len(data.samples["val"]), "test": len(test),
               "test_scored": len(y), "test_units": len(set(units))},
            seed=seed, label_fraction=fraction,
            hparams={**res.hparams, **({"thresholds": thresholds} if thresholds else {})},
            data="synthetic-demo" if data.synthetic else "real", dataset_hash=data.dataset_hash,
            config_hash=spec.config_hash(),
            provenance={**environment(self.cfg.device), "encoder": enc.to_dict(),
                        "preprocessing": enc.preprocessing(), "n_boot": self.cfg.n_boot,
                        "val_selection_score": res.val_score},
            timings=timings, predictions=pred_path.name)
        if dist.is_main():
            atomic_write_text(out_dir / f"{tag}.json", rec.to_json())
        return rec

    # -- many tasks -------------------------------------------------------------------------
    def run(self, specs: list[TaskSpec]) -> list[ResultRecord]:
        records = []
        bar = tqdm(specs, desc="tasks", unit="task", disable=None, leave=False)
        for spec in bar:
            bar.set_postfix_str(spec.name)
            self.say(f"[xrbench] {spec.name} ({spec.dataset}, {spec.protocol.name})")
            recs = self.run_task(spec)
            if dist.is_main():
                leaderboard.update(self.cfg.output / "leaderboard.csv", recs)
            records += recs
        return records


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


#: below this many feature values a head trains faster on the CPU than on a GPU (L-BFGS line
#: searches synchronise with the host at every step; measured in docs/benchmarks.md)
PROBE_GPU_MIN = 4_000_000


def probe_device(device: str, n_values: int) -> str:
    """The extraction device for large training sets, the CPU for small ones."""
    return device if device.startswith("cuda") and n_values >= PROBE_GPU_MIN else "cpu"


def task_rows(spec: TaskSpec, samples: list[Sample], split: str, loader: DatasetLoader) -> list[int]:
    """Rows of a split that the task uses: matching ``where``, with at least one known target."""
    rows = [i for i, smp in enumerate(samples) if _matches(smp, spec.where)]
    if spec.target.type in ("multilabel", "binary") and rows:
        y = targets(spec, [samples[i] for i in rows])
        rows = [i for i, known in zip(rows, ~np.all(np.isnan(y), axis=1)) if known]
    elif spec.target.type in ("multiclass", "regression"):
        rows = [i for i in rows if samples[i].target is not None]
    if not rows:
        raise DataError(f"task {spec.name}: the {split} split of '{spec.dataset}' at {loader.root} has "
                        f"no labelled samples matching {spec.where or 'the task'}")
    return rows


def output_labels(spec: TaskSpec, ys: dict[str, np.ndarray]) -> tuple[list[str], int]:
    """Names of the prediction columns and their number."""
    labels = list(spec.target.labels)
    if spec.target.type in ("multilabel", "binary"):
        return labels, ys["train"].shape[1]
    if spec.target.type == "multiclass":
        n = len(labels) or int(max(v.max() for v in ys.values())) + 1
        return labels or [str(i) for i in range(n)], n
    return labels or ["target"], 1


def _group_mean(samples: list[Sample], y: np.ndarray, s: np.ndarray):
    """Average scores over each group's images (MURA scores studies, not images)."""
    groups: dict[str, list[int]] = {}
    for i, smp in enumerate(samples):
        groups.setdefault(smp.group or smp.id, []).append(i)
    idx = list(groups.values())
    gy = np.stack([y[r[0]] for r in idx])
    gs = np.stack([s[r].mean(0) for r in idx])
    units = [samples[r[0]].patient for r in idx]
    return gy, gs, units


def _group_ids(samples: list[Sample]) -> list[Sample]:
    """One representative sample per group, in the order :func:`_group_mean` uses."""
    seen: dict[str, Sample] = {}
    for smp in samples:
        seen.setdefault(smp.group or smp.id, smp)
    return list(seen.values())


def retrieval_relevance(gallery_y: np.ndarray, query_y: np.ndarray, ranked: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(number of relevant gallery items per query, [Q, K] 0/1 relevance of the ranked results)."""
    rel = (gallery_y[ranked] == query_y[:, None]).astype(np.float64)
    n_rel = np.array([(gallery_y == q).sum() for q in query_y], dtype=np.float64)
    return n_rel, rel


def _predictions_csv(samples: list[Sample], y: np.ndarray, s: np.ndarray, labels: list[str], *,
                     aggregated: bool = False, ranked_ids: list[list[str]] | None = None) -> str:
    """Per-sample (or per-group) test predictions: enough to recompute every metric and CI.

    Columns: id, patient, group, y:<label>..., score:<label>... . Aggregated tasks write one row
    per group (id = group). Retrieval writes y:target (relevant items in the gallery) and
    rank:1..k, the gallery sample ids in ranked order.
    """
    rows = _group_ids(samples) if aggregated else samples
    y2 = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    y_names = labels if y2.shape[1] == len(labels) else ["target"]
    s2 = np.asarray(s, dtype=np.float64).reshape(len(s), -1)
    if ranked_ids is not None:
        s_head = [f"rank:{i + 1}" for i in range(s2.shape[1])]
        cells = ranked_ids
    else:
        s_names = labels if s2.shape[1] == len(labels) else [str(i) for i in range(s2.shape[1])]
        s_head = [f"score:{n}" for n in s_names]
        cells = [[f"{v:.8g}" for v in ss] for ss in s2]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "patient", "group"] + [f"y:{n}" for n in y_names] + s_head)
    for smp, yy, cc in zip(rows, y2, cells):
        ident = (smp.group or smp.id) if aggregated else smp.id
        w.writerow([ident, smp.patient, smp.group or ""] + ["" if v != v else f"{v:g}" for v in yy] + list(cc))
    return buf.getvalue()

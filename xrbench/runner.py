"""One evaluation run: tasks x one encoder -> result records, predictions and the leaderboard.

Data flow (docs/architecture.md): loader -> samples -> cached features (one extraction per
dataset split, shared by every task) -> protocol (fit on train, select on val, score test once)
-> metrics with patient-level bootstrap CIs -> records -> leaderboard CSV.
"""
from __future__ import annotations

import logging
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

import xrbench.data.datasets  # noqa: F401  (registers loaders)
from xrbench.atomic import atomic_write_text
from xrbench.data.base import DatasetLoader, manifest_hash
from xrbench.data.demo import dataset_root, xrbench_home
from xrbench.data.sample import SPLITS
from xrbench.errors import ModelError
from xrbench.families import create_family
from xrbench.families.base import (HeadOutput, Scored, SplitData, TaskFamily, kept_rows, limit_samples,
                                   score_units, subsample_patients, unit_statistics)
from xrbench.families.global_features import PROBE_GPU_MIN
from xrbench.families.head_cache import HeadCache, head_key, stats_key
from xrbench.features import distributed as dist
from xrbench.features.extract import FeatureExtractor
from xrbench.features.pixels import PixelCache
from xrbench.features.store import FeatureStore
from xrbench.features.view import FeatureRows, take
from xrbench.models.base import Encoder
from xrbench.models.meta import grid_pool
from xrbench.registry import DATASETS
from xrbench.results import leak, leaderboard
from xrbench.results.predictions import predictions_header, predictions_jsonl
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
    #: head outputs are cached beside the features, so a rerun on cached features only scores
    head_cache: bool = True
    pixel_cache: bool = True  # decoded pixels shared by encoders of one input size (features/pixels.py)
    pixel_root: Path | None = None  # default: pixels/ beside feature_root, or $XRBENCH_HOME/pixels
    compile: bool = False  # torch.compile the encoder's forward
    pretraining_manifest: Path | None = None  # else the encoder's extra["pretraining_manifest"]


@dataclass
class TaskData:
    splits: dict[str, SplitData]
    dataset_hash: str
    synthetic: bool
    feature_keys: list[str]
    #: split -> ids of the task's rows whose image file was truncated (decoded partially)
    truncated: dict[str, list[str]] = field(default_factory=dict)


def resolve_root(dataset: str, cfg: RunConfig) -> tuple[Path, bool]:
    """(root, synthetic): explicit per-dataset root, DIR/<dataset>, DIR itself, or the demo."""
    if dataset in cfg.data_roots:
        return cfg.data_roots[dataset], False
    return dataset_root(dataset, cfg.data_root), cfg.data_root is None


class Runner:
    def __init__(self, encoder: Encoder, cfg: RunConfig, *, progress: Callable[[str], None] | None = None):
        self.encoder, self.cfg = encoder, cfg
        store = FeatureStore(cfg.feature_root or xrbench_home() / "features")
        self.heads = HeadCache(store.root / ".heads" if cfg.head_cache and dist.is_main() else None)
        pixel_root = cfg.pixel_root or (cfg.feature_root.parent if cfg.feature_root else xrbench_home()) / "pixels"
        pixels = PixelCache(pixel_root) if cfg.pixel_cache else None
        self.extractor = FeatureExtractor(encoder, store, device=cfg.device, batch_size=cfg.batch_size,
                                          num_workers=cfg.num_workers, pixels=pixels, compile=cfg.compile)
        self.say = progress or (lambda m: tqdm.write(m, file=sys.stderr))
        self._loaders: dict[tuple, DatasetLoader] = {}
        self._kinds: dict[str, set[str]] = {}  # dataset -> feature kinds the run's tasks need
        self._warned_random = False
        manifest = cfg.pretraining_manifest or encoder.meta.extra.get("pretraining_manifest")
        self.manifest = leak.read_manifest(manifest) if manifest else None

    # -- data ---------------------------------------------------------------------------
    def _loader(self, spec: TaskSpec) -> tuple[DatasetLoader, bool]:
        root, synthetic = resolve_root(spec.dataset, self.cfg)
        key = (spec.dataset, str(root), tuple(sorted(spec.dataset_options.items())))
        if key not in self._loaders:
            self._loaders[key] = DATASETS.get(spec.dataset)(root, seed=0, **spec.dataset_options)
        return self._loaders[key], synthetic

    def task_data(self, spec: TaskSpec, family: TaskFamily) -> TaskData:
        loader, synthetic = self._loader(spec)
        family.check_dataset(loader)
        if self.encoder.meta.is_random and not synthetic:
            raise ModelError(f"model '{self.encoder.meta.name}' has no weights (random-init); random-init "
                             f"runs only on the synthetic demo. Pass --weights PATH or set "
                             f"XRBENCH_{self.encoder.meta.name.upper()}_WEIGHTS.")
        if self.encoder.meta.is_random and not self._warned_random:
            warnings.warn(f"'{self.encoder.meta.name}' runs with random-init weights on synthetic demo "
                          f"data: every result says weights=random-init", stacklevel=2)
            self._warned_random = True
        splits, keys, truncated = {}, [], {}
        kinds = sorted(self._kinds.get(spec.dataset, set()) | {spec.features})
        for split in SPLITS:
            # features cover the whole split (shared by every task of the dataset, every kind any of
            # them needs from one forward pass); rows are picked after
            full = limit_samples(loader.split(split), self.cfg.limit)
            digests = loader.image_digests(full)  # checked once: symlinks, aliases, split leaks
            manifest = loader.image_manifest_hash(full, digests)
            got = self.extractor.features_and_geometry(spec.dataset, split, full, manifest, kinds,
                                                       digests=digests)
            keys.append(self.extractor.key(spec.dataset, split, manifest, spec.features))
            arr, geo = got[spec.features]
            rows = kept_rows(family, full, split, loader.root)
            partial = set(self.extractor.store.truncated(keys[-1]))
            truncated[split] = [full[i].id for i in rows if full[i].id in partial]
            feats = (FeatureRows(arr, rows) if grid_pool(spec.features)
                     else np.asarray(arr[rows], dtype=np.float32))
            splits[split] = SplitData([full[i] for i in rows], feats, np.asarray(geo[rows]))
        # the hash of what was actually evaluated (after --limit and the task's row selection)
        used = [s for split in SPLITS for s in splits[split].samples]
        return TaskData(splits, manifest_hash(used, loader.root), synthetic, keys, truncated)

    # -- one task ---------------------------------------------------------------------------
    def run_task(self, spec: TaskSpec) -> list[ResultRecord]:
        t0 = time.perf_counter()
        ext0 = self.extractor.seconds
        family = create_family(spec)
        data = self.task_data(spec, family)
        extract_s = self.extractor.seconds - ext0
        train, val, test = (data.splits[k] for k in SPLITS)
        family.prepare({k: data.splits[k].samples for k in SPLITS})  # what the scorer needs, head or cache
        overlap = leak.overlap(self.manifest, test.samples)
        records = []
        for fraction in self.cfg.label_fractions:
            for seed in self.cfg.seeds:
                t1 = time.perf_counter()
                keep = subsample_patients(family, train.samples, fraction, seed)
                sub = SplitData([train.samples[i] for i in keep], take(train.features, keep),
                                train.geometry[keep])
                key = head_key(family, feature_keys=data.feature_keys, dataset_hash=data.dataset_hash,
                               seed=seed, fraction=fraction, device=self.cfg.device,
                               kept=[[s.id for s in d.samples] for d in (sub, val, test)])
                out = self.heads.get(key)
                if out is None:
                    if family.wants_encoder(self.encoder.meta):
                        family.encoder = self.encoder
                    with head_threads(spec.features, sub.features):
                        out = family.fit_predict(sub, val, test, seed=seed, device=self.cfg.device)
                    self.heads.put(key, out)
                fit_s = time.perf_counter() - t1
                units = family.units(test.samples)
                truths = [family.truth(u, test.samples) for u in units]
                skey = stats_key(key)
                stats = self.heads.get_stats(skey)
                if stats is None or len(stats) != len(units):
                    stats = unit_statistics(family, truths, out.predictions, out.state)
                    self.heads.put_stats(skey, stats)
                scored = score_units(family, units, truths, out.predictions, out.state,
                                     n_boot=self.cfg.n_boot, seed=seed, stats=stats)
                extra = family.report(scored, test.samples, out.state, n_boot=self.cfg.n_boot, seed=seed)
                timings = {"extract_s": round(extract_s, 3), "fit_s": round(fit_s, 3),
                           "total_s": round(time.perf_counter() - t0, 3)}
                extra = {**extra, "warnings": out.warnings + scored.warnings + truncated_warnings(data.truncated),
                         "pretraining_overlap": overlap}
                records.append(self._record(spec, family, data, out, scored, seed, fraction, len(keep), timings,
                                            extra))
        return records

    def _record(self, spec: TaskSpec, family: TaskFamily, data: TaskData, out: HeadOutput, scored: Scored,
                seed: int, fraction: float, n_train: int, timings: dict, extra: dict) -> ResultRecord:
        enc = self.encoder.meta
        tag = f"seed{seed}" + ("" if fraction == 1.0 else f"_lf{fraction:g}")
        out_dir = self.cfg.output / _safe(enc.name) / spec.name
        pred_path = out_dir / f"{tag}.predictions.jsonl"
        if dist.is_main():
            head = predictions_header(spec, family, out.state, seed=seed, n_boot=self.cfg.n_boot)
            atomic_write_text(pred_path, predictions_jsonl(head, scored, out.predictions))
        test = data.splits["test"].samples
        rec = ResultRecord(
            task=spec.name, task_version=spec.version, family=spec.family, dataset=spec.dataset,
            model=enc.name, weights=enc.weights, weights_sha256=enc.weights_sha256,
            primary_metric=spec.primary.metric, direction=spec.primary.direction,
            metrics={k: MetricValue(*v) for k, v in scored.metrics.items()},
            n={"train": int(n_train), "val": len(data.splits["val"].samples), "test": len(test),
               "test_scored": len(scored.units), "test_units": len(set(scored.boot_units))},
            seed=seed, label_fraction=fraction, hparams=out.hparams,
            data="synthetic-demo" if data.synthetic else "real", dataset_hash=data.dataset_hash,
            config_hash=spec.config_hash(),
            provenance={**environment(self.cfg.device), "encoder": enc.to_dict(),
                        "preprocessing": enc.preprocessing(), "n_boot": self.cfg.n_boot,
                        "val_selection_score": out.val_score},
            timings=timings, predictions=pred_path.name, **extra)
        if dist.is_main():
            atomic_write_text(out_dir / f"{tag}.json", rec.to_json())
        return rec

    # -- many tasks -------------------------------------------------------------------------
    def run(self, specs: list[TaskSpec]) -> list[ResultRecord]:
        records = []
        for spec in specs:
            self._kinds.setdefault(spec.dataset, set()).add(spec.features)
        bar = tqdm(specs, desc="tasks", unit="task", disable=None, leave=False)
        for spec in bar:
            bar.set_postfix_str(spec.name)
            self.say(f"[xrbench] {spec.name} ({spec.dataset}, {spec.protocol.name})")
            recs = self.run_task(spec)
            if dist.is_main():
                leaderboard.update(self.cfg.output / "leaderboard.csv", recs)
            records += recs
        return records


def truncated_warnings(truncated: dict[str, list[str]], shown: int = 5) -> list[str]:
    """The ``truncated_images`` warning when any row of the task comes from a truncated image file
    (decoded as far as its data goes, see xrbench/data/images.py): count per split, first ids."""
    ids = [i for split in SPLITS for i in truncated.get(split, [])]
    if not ids:
        return []
    per = ", ".join(f"{split} {len(truncated.get(split, []))}" for split in SPLITS)
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return [f"truncated_images: {len(ids)} image file(s) end early and were decoded partially ({per}): "
            f"{', '.join(ids[:shown])}{more}"]


@contextmanager
def head_threads(kind: str, train_features):
    """One CPU thread while a small head trains. Its ops are tiny (a 768 x 384 map, a 14 x 14 grid
    batch): with two threads each op waits on the other core, and a head trained 50x slower on
    this 2-core machine whenever that core was busy (measured: 150 AdamW steps 0.54 s vs 27 s).
    Only the linear probe on large global feature sets (L-BFGS over millions of values) keeps
    every thread."""
    n = int(np.prod(getattr(train_features, "shape", (0,))))
    if not grid_pool(kind) and n >= PROBE_GPU_MIN:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)

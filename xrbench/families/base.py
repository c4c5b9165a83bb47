"""The task-family contract: one module per family, and ``run``, ``score`` and ``compare`` go
through it, so that no path re-implements another.

A family (MTEB's ``AbsTask`` families, lm-evaluation-harness' per-sample ``process_results`` vs
corpus ``aggregation``) says:

- which samples a task keeps (:meth:`TaskFamily.keep`) and the target of one sample (:meth:`target`);
- the stratum of a sample for label-fraction subsampling (:meth:`stratum`);
- the scoring units of the test split (:meth:`units`: a sample, or a group such as a MURA study)
  and the bootstrap unit of each (patient, group or sample, from the task's ``bootstrap.unit``);
- its head (:meth:`fit_predict`): fit on train, choose hyper-parameters on val only, predict test
  once, returning one JSON-able prediction per test unit, in the pixels of the original image;
- its scorer, split into per-unit sufficient statistics (:meth:`unit_stats`, computed once per
  unit) and an aggregate over any multiset of units (:meth:`aggregate`), so that the bootstrap
  resamples statistics instead of re-running COCOeval or HD95 on raw predictions a thousand times.

The predictions file (version 2, :mod:`xrbench.results.predictions`) stores, per test unit, the
prediction and its statistics, under a header holding the task definition and the scorer state
(thresholds chosen on val): ``score`` recomputes the statistics from the prediction and the
dataset's truth, ``compare`` aggregates the stored statistics of two runs on the same resamples.
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import numpy as np

from xrbench.data.sample import Sample
from xrbench.errors import ConfigError, DataError
from xrbench.metrics.bootstrap import bootstrap_ci
from xrbench.registry import Registry
from xrbench.tasks.schema import TaskSpec

FAMILIES: Registry = Registry("task family")
#: warn when a test label has fewer positives than this (its metric rests on a handful of images)
FEW_POSITIVES = 10

#: the module of each family, imported when a task of that family is built: a CheXpert run does
#: not pay for MONAI, torchvision or the text models (seconds of imports on a 2-core machine)
FAMILY_MODULES = {"linear": "global_features", "knn": "global_features", "regression": "global_features",
                  "retrieval": "global_features", "segmentation": "segmentation",
                  "localization": "localization", "landmarks": "landmarks", "grounding": "grounding",
                  "report-retrieval": "report_retrieval", "report-generation": "report_generation"}


def family_class(name: str) -> type:
    """The registered family ``name``, importing its module on first use."""
    if name not in FAMILIES and name in FAMILY_MODULES:
        import importlib

        importlib.import_module(f"xrbench.families.{FAMILY_MODULES[name]}")
    return FAMILIES.get(name)


@dataclass
class Unit:
    """One scoring unit of a split: a sample, or a group of samples scored together."""

    id: str
    patient: str
    group: str
    rows: list[int]  # indices into the split's samples


@dataclass
class SplitData:
    """The kept samples of one split and their features (an array or a lazy patch-grid view)."""

    samples: list[Sample]
    features: Any
    geometry: np.ndarray | None = None  # [N, 6] original h, w, padded side, top, left, input size


@dataclass
class HeadOutput:
    """What a head returns: one prediction per test unit, and how it chose its hyper-parameters."""

    predictions: list[Any]
    hparams: dict = field(default_factory=dict)
    val_score: float = float("nan")
    #: scorer state chosen on val (decision thresholds), stored with the predictions
    state: dict = field(default_factory=dict)
    #: what makes the number less trustworthy (``code: detail``), shown beside it (docs/results.md)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Scored:
    """Per-unit statistics of a test split and the metrics (value, CI) they aggregate to."""

    units: list[Unit]
    boot_units: list[str]
    stats: list[dict]
    metrics: dict[str, tuple[float, float | None, float | None]]
    warnings: list[str] = field(default_factory=list)


class TaskFamily(ABC):
    """Base class of every family; subclasses are registered in :data:`FAMILIES` by name."""

    name: ClassVar[str] = ""
    #: whether label fractions subsample the training split (a retrieval gallery is never subsampled)
    subsample_train: ClassVar[bool] = True
    #: splits whose samples the scorer needs besides test (retrieval: the gallery)
    context_splits: ClassVar[tuple[str, ...]] = ()
    #: whether the head needs the image encoder itself (its text tower: zero-shot baselines); the
    #: runner then sets :attr:`encoder` before :meth:`fit_predict` (see :meth:`wants_encoder`)
    needs_encoder: ClassVar[bool] = False
    #: what a kept sample carries, for the error when a split keeps none
    kept_samples: ClassVar[str] = "labelled samples"

    def __init__(self, spec: TaskSpec):
        self.spec = spec
        self.context: dict = {}
        self.encoder = None

    def wants_encoder(self, meta) -> bool:
        """Whether the head needs the encoder of this :class:`EncoderMeta` (default
        :attr:`needs_encoder`); a family that uses only some encoders (a text tower's baseline)
        says so from the metadata, so that the others are never built for it."""
        return self.needs_encoder

    def check(self) -> None:
        """Refuse, before any work, a task whose head or head arguments this family does not know."""

    # -- data ---------------------------------------------------------------------------------
    def keep(self, sample: Sample) -> bool:
        """A task keeps the samples matching its ``where`` filter that carry a known target."""
        return all(sample.meta.get(k) == v for k, v in self.spec.where.items()) and self.has_target(sample)

    def has_target(self, sample: Sample) -> bool:
        return True

    @abstractmethod
    def target(self, sample: Sample) -> Any:
        """The ground truth of one sample as the head and the scorer see it."""

    def stratum(self, sample: Sample) -> str:
        """The stratum of a sample for label-fraction subsampling (rare labels must survive)."""
        return ""

    def check_dataset(self, loader) -> None:
        """Refuse, before any feature is computed, a task that asks the dataset for what it does not
        have (a label name with a typo would otherwise read as blank on every image)."""

    def prepare(self, splits: dict[str, list[Sample]]) -> None:
        """Build what the scorer needs from the non-test splits (:attr:`context_splits`)."""

    def units(self, samples: Sequence[Sample]) -> list[Unit]:
        """Scoring units of a split: one per sample, or one per group when the task says so."""
        if self.spec.aggregate == "group-mean":
            groups: dict[str, list[int]] = {}
            for i, s in enumerate(samples):
                groups.setdefault(s.group or s.id, []).append(i)
            return [Unit(g, samples[r[0]].patient, g, r) for g, r in groups.items()]
        return [Unit(s.id, s.patient, s.group or "", [i]) for i, s in enumerate(samples)]

    def boot_unit(self, unit: Unit) -> str:
        """The unit a bootstrap resamples: patients by default (images of a patient correlate)."""
        if self.spec.aggregate == "group-mean":
            return unit.patient
        return {"patient": unit.patient, "group": unit.group or unit.patient,
                "sample": unit.id}[self.spec.bootstrap.unit]

    def boot_unit_name(self) -> str:
        return "patient" if self.spec.aggregate == "group-mean" else self.spec.bootstrap.unit

    def truth(self, unit: Unit, samples: Sequence[Sample]) -> Any:
        """The ground truth of a unit (that of its first sample: a group shares one label)."""
        return self.target(samples[unit.rows[0]])

    # -- head ---------------------------------------------------------------------------------
    @abstractmethod
    def fit_predict(self, train: SplitData, val: SplitData, test: SplitData, *, seed: int,
                    device: str) -> HeadOutput:
        """Fit on train, select on val only, predict every test unit once."""

    # -- scorer -------------------------------------------------------------------------------
    @abstractmethod
    def unit_stats(self, truth: Any, prediction: Any, state: dict) -> dict:
        """Sufficient statistics of one unit (JSON-able), computed once."""

    @abstractmethod
    def aggregate(self, table: dict[str, np.ndarray], rows: np.ndarray, state: dict) -> dict[str, float]:
        """Every metric of the task over the units ``rows`` (a multiset) of a stacked table."""

    def aggregate_weighted(self, table: dict[str, np.ndarray], weights: np.ndarray,
                           state: dict) -> dict[str, np.ndarray] | None:
        """Every metric for every bootstrap replicate at once, from unit weights [B, N] (a unit
        weighs the times it was drawn); None when the family has no vectorised aggregate."""
        return None

    def stack(self, stats: list[dict]) -> dict[str, np.ndarray]:
        """Per-unit statistics as column arrays; :meth:`aggregate` indexes their first axis."""
        if not stats:
            return {}
        return {k: np.asarray([s[k] for s in stats], dtype=np.float64) for k in stats[0]}

    def test_warnings(self, table: dict[str, np.ndarray]) -> list[str]:
        """Warnings the test split's stacked statistics raise: few positives of a label, or a head
        whose every test prediction is empty (a floor value, not a measurement of the encoder)."""
        return []

    def report(self, scored: Scored, samples: Sequence[Sample], state: dict, *, n_boot: int,
               seed: int) -> dict:
        """Extra record fields beyond the metrics (subgroups, reliability curve); none by default."""
        return {}

    def known_metrics(self) -> list[str]:
        """Metric names a task of this family may list (the registered metrics by default)."""
        import xrbench.metrics  # noqa: F401  (registers metrics)
        from xrbench.registry import METRICS

        return METRICS.names()

    def check_metrics(self) -> None:
        """Refuse a metric this family does not compute, with did-you-mean."""
        from xrbench.registry import UnknownNameError, closest

        known = self.known_metrics()
        for name in self.spec.metrics:
            if name not in known:
                raise ConfigError(str(UnknownNameError("metric", name, closest(name, known), known)))

    # -- predictions I/O ----------------------------------------------------------------------
    def prediction_from_row(self, row: dict, *, path, line: int) -> Any:
        """A prediction from a version-2 predictions row (``row["prediction"]``)."""
        if "prediction" not in row:
            raise DataError("expected a 'prediction' field", path=path, row=line)
        return row["prediction"]

    def predictions_from_columns(self, ids: list[str], cols: dict[str, list], *, path) -> dict[str, Any]:
        """Predictions from a flat CSV/JSONL file made elsewhere (``score:<label>``, ``rank:k``)."""
        raise DataError(f"task family '{self.spec.family}' takes predictions in the version-2 JSONL format "
                        f"(docs/results.md, 'Predictions made elsewhere'), not a flat table", path=path)

    def header(self) -> dict:
        """What a predictions file needs, besides the task definition, to be re-aggregated."""
        return {}

    def restore(self, header: dict) -> None:
        """Take back what :meth:`header` recorded (a predictions file read without its dataset)."""


def create_family(spec: TaskSpec) -> TaskFamily:
    """The family object of a task (by the task's ``family``)."""
    return family_class(spec.family)(spec)


def jsonable(o):
    """``json.dumps(default=...)`` for numpy scalars and arrays."""
    if hasattr(o, "item") and getattr(o, "ndim", 0) == 0:
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def unit_statistics(family: TaskFamily, truths: list, predictions: list, state: dict) -> list[dict]:
    """Every unit's statistics, in the JSON form a predictions file (or the head cache) holds them,
    so that a run, a cached rerun, ``score`` and ``compare`` aggregate the very same numbers."""
    if len(truths) != len(predictions):
        raise ConfigError(f"{len(predictions)} predictions for {len(truths)} test units")
    stats = [family.unit_stats(t, p, state) for t, p in zip(truths, predictions)]
    return json.loads(json.dumps(stats, default=jsonable))


def score_units(family: TaskFamily, units: list[Unit], truths: list, predictions: list, state: dict,
                *, n_boot: int, seed: int, stats: list[dict] | None = None) -> Scored:
    """Statistics of every unit (unless given, e.g. cached), then every metric with its bootstrap CI
    over the boot units."""
    if stats is None:
        stats = unit_statistics(family, truths, predictions, state)
    boot = [family.boot_unit(u) for u in units]
    warns = family.test_warnings(family.stack(stats)) if stats else []
    metrics = aggregate_with_ci(family, stats, boot, state, n_boot=n_boot, seed=seed, warnings=warns)
    return Scored(units, boot, stats, metrics, warns)


def aggregate_with_ci(family: TaskFamily, stats: list[dict], boot_units: list[str], state: dict, *,
                      n_boot: int, seed: int, warnings: list[str] | None = None
                      ) -> dict[str, tuple[float, float | None, float | None]]:
    """name -> (value, ci_low, ci_high): the aggregate of all units and its percentile bootstrap.

    A value whose bootstrap is undefined on too many replicates gets no CI (NaN bounds), and a
    ``ci_unreliable`` line in ``warnings`` when a list is given."""
    table = family.stack(stats)
    point = family.aggregate(table, np.arange(len(stats)), state)
    batch = None
    if stats and family.aggregate_weighted(table, np.ones((1, len(stats))), state) is not None:
        batch = lambda w: family.aggregate_weighted(table, w, state)  # noqa: E731
    cis = (bootstrap_ci(lambda rows: family.aggregate(table, rows, state), len(stats), boot_units,
                        n_boot=n_boot, seed=seed, batch_metric=batch) if n_boot and stats else {})
    if warnings is not None:
        warnings += [f"ci_unreliable: {k} is undefined on {ci.undefined:.0%} of bootstrap replicates; "
                     f"no CI reported" for k, ci in cis.items() if ci.unreliable and point.get(k) == point.get(k)]
    return {k: (float(v), *cis.get(k, (None, None))) for k, v in point.items()}


def limit_samples(samples: list[Sample], n: int | None) -> list[Sample]:
    """A seeded subset of at most ``n`` samples, in dataset order (``--limit``, smoke tests)."""
    if n is None or len(samples) <= n:
        return samples
    idx = np.random.default_rng(0).choice(len(samples), n, replace=False)
    return [samples[i] for i in sorted(idx)]


def kept_rows(family: TaskFamily, samples: Sequence[Sample], split: str, root) -> list[int]:
    """Rows of a split the task keeps; a task with nothing to evaluate is a data error."""
    rows = [i for i, s in enumerate(samples) if family.keep(s)]
    if not rows:
        spec = family.spec
        raise DataError(f"task {spec.name}: the {split} split of '{spec.dataset}' at {root} has no "
                        f"{family.kept_samples} matching {spec.where or 'the task'}")
    return rows


def subsample_patients(family: TaskFamily, samples: Sequence[Sample], fraction: float, seed: int) -> np.ndarray:
    """Row indices of a seeded, patient-level subsample of the training split, stratified on each
    patient's largest stratum (any positive, or its class) so that rare labels survive."""
    if fraction >= 1.0 or not family.subsample_train:
        return np.arange(len(samples))
    by_patient: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_patient.setdefault(s.patient, []).append(i)
    strata: dict = {}
    for p, rows in sorted(by_patient.items()):
        strata.setdefault(max(family.stratum(samples[i]) for i in rows), []).append(p)
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for _, patients in sorted(strata.items()):
        n = max(1, int(round(fraction * len(patients))))
        for p in rng.choice(patients, n, replace=False):
            keep += by_patient[p]
    return np.array(sorted(keep))

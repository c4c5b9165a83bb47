"""The families on frozen global features: classification (linear probe, kNN), regression, retrieval.

Their heads are the protocols of :mod:`xrbench.protocols` (fit on train, choose hyper-parameters
on val through a selection callback, predict test once); their statistics are the per-unit truth
and scores, and their aggregate is the registered metric functions, so a number is computed by
the same code whichever way the predictions were produced.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

import xrbench.metrics  # noqa: F401  (registers metrics)
import xrbench.protocols  # noqa: F401  (registers protocols)
from xrbench.data.labels import apply_uncertainty
from xrbench.data.sample import Sample
from xrbench.errors import ConfigError, DataError
from xrbench.families.base import (FAMILIES, FEW_POSITIVES, HeadOutput, Scored, SplitData, TaskFamily, Unit,
                                   aggregate_with_ci)
from xrbench.metrics.classification import THRESHOLDED, choose_threshold, reliability
from xrbench.protocols.base import Split
from xrbench.registry import METRICS, PROTOCOLS, closest

#: below this many feature values a head trains faster on the CPU than on a GPU (L-BFGS line
#: searches synchronise with the host at every step; measured in docs/benchmarks.md)
PROBE_GPU_MIN = 4_000_000


#: calibration metrics reported beside the primary metric of every classification task
CALIBRATION = ("ece", "brier")
#: warn when more than this share of the feature dimensions is constant on train
CONSTANT_SHARE = 0.5
#: the sample attributes a subgroup report splits on, when the loader fills them (Sample.meta)
SUBGROUP_ATTRIBUTES = ("sex", "age", "view", "body_part")
#: age bands of the subgroup report, in years: [lo, hi)
AGE_BANDS = ((0, 40, "<40"), (40, 60, "40-60"), (60, 80, "60-80"), (80, float("inf"), ">=80"))


def probe_device(device: str, n_values: int) -> str:
    """The extraction device for large training sets, the CPU for small ones."""
    return device if device.startswith("cuda") and n_values >= PROBE_GPU_MIN else "cpu"


def constant_prediction_warnings(scores: np.ndarray) -> list[str]:
    """Every test unit got the same score: the head predicts a constant (collapsed features, or
    nothing learnable), so its AUROC is 0.5 and its kappa 0 by construction, not by measurement."""
    s = np.asarray(scores, dtype=np.float64)
    if len(s) < 2 or np.ptp(s, axis=0).max(initial=0.0) > 1e-12 * max(1.0, float(np.abs(s).max())):
        return []
    return [f"constant_predictions: all {len(s)} test predictions are identical"]


def feature_warnings(x: np.ndarray) -> list[str]:
    """Near-constant training features: an encoder that collapsed (or a broken checkpoint) still
    gives numbers, a probe on them is a probe on the bias."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        return []
    if np.all(np.ptp(x, axis=0) <= 1e-12 * np.maximum(1.0, np.abs(x).max(0))):
        return [f"constant_features: all {len(x)} training feature vectors are identical"]
    sd = x.std(0)
    const = sd <= 1e-6 * np.maximum(1.0, np.abs(x.mean(0)))
    if const.mean() > CONSTANT_SHARE:
        return [f"constant_features: {int(const.sum())} of {x.shape[1]} feature dimensions are constant "
                f"on train"]
    return []


def age_band(age) -> str | None:
    try:
        a = float(age)
    except (TypeError, ValueError):
        return None
    return next((name for lo, hi, name in AGE_BANDS if lo <= a < hi), None) if a == a else None


class GlobalFamily(TaskFamily):
    """A protocol head on global features; subclasses define targets and the y array."""

    kind: str = ""  # what the protocol is told: binary, multilabel, multiclass, regression, retrieval

    def check(self) -> None:
        import inspect

        from xrbench.registry import UnknownNameError

        try:
            protocol = PROTOCOLS.get(self.spec.protocol.name)
        except UnknownNameError as e:
            raise ConfigError(f"key 'protocol.name': {e}") from None
        try:
            inspect.signature(protocol).bind(**self.spec.protocol.args)
        except TypeError as e:
            params = list(inspect.signature(protocol).parameters)
            raise ConfigError(f"key 'protocol.args': {e}; protocol '{self.spec.protocol.name}' "
                              f"takes {', '.join(params) or 'no arguments'}") from None

    def y_array(self, samples: Sequence[Sample]) -> np.ndarray:
        return np.asarray([self.target(s) for s in samples])

    def n_out(self, ys: list[np.ndarray]) -> int:
        return 1

    def labels(self) -> list[str]:
        return ["target"]

    def _metric_kwargs(self, name: str, state: dict) -> dict:
        th = state.get("thresholds", {})
        return {"threshold": th[name]} if name in th else {}

    def unit_scores(self, units: list[Unit], scores: np.ndarray) -> np.ndarray:
        """Scores of each unit: the mean over a group's images (MURA's official evaluation)."""
        if all(len(u.rows) == 1 for u in units):
            return scores[[u.rows[0] for u in units]]
        return np.stack([scores[u.rows].mean(0) for u in units])

    def fit_predict(self, train: SplitData, val: SplitData, test: SplitData, *, seed: int,
                    device: str) -> HeadOutput:
        ys = {k: self.y_array(d.samples) for k, d in (("train", train), ("val", val), ("test", test))}
        n_out = self.n_out(list(ys.values()))
        val_units = self.units(val.samples)
        val_truth = self.stack_truth([self.truth(u, val.samples) for u in val_units])
        select = self.selector(val_units, val_truth)
        proto = PROTOCOLS.get(self.spec.protocol.name)(**self.spec.protocol.args)
        dev = probe_device(device, np.asarray(train.features).size)
        warns = self.val_warnings(val_truth) + feature_warnings(train.features)
        res = proto.run(Split(train.features, ys["train"]), Split(val.features, ys["val"]), test.features,
                        task=self.kind, n_out=n_out, select=select, seed=seed, device=dev)
        if not np.isfinite(res.val_score):
            raise DataError(f"task {self.spec.name}: nothing can be selected on the val split: the primary "
                            f"metric '{self.spec.primary.metric}' is undefined on val for every candidate "
                            f"({', '.join(warns) or 'val has too few labelled samples'})")
        state = self.choose_state(val_units, val_truth, res.val_scores)
        preds = self.test_predictions(test, res.test_scores)
        return HeadOutput(preds, {**res.hparams, **state, "probe_device": dev}, res.val_score, state,
                          warns + list(res.warnings))

    def val_warnings(self, val_truth: np.ndarray) -> list[str]:
        """What makes selection on val shaky; a val split with no known label at all is an error."""
        return []

    def test_predictions(self, test: SplitData, scores: np.ndarray) -> list[Any]:
        us = self.unit_scores(self.units(test.samples), np.asarray(scores, dtype=np.float64))
        return [[float(v) for v in np.atleast_1d(row)] for row in us]

    def stack_truth(self, truths: list) -> np.ndarray:
        return np.asarray(truths, dtype=np.float64)

    def selector(self, val_units: list[Unit], val_truth: np.ndarray):
        """Primary metric on val units, decided at the val-chosen threshold when it needs one."""
        primary = self.spec.primary.metric
        fn = METRICS.get(primary)
        sign = 1.0 if self.spec.primary.direction == "higher" else -1.0
        labels = self.labels()

        def select(_y: np.ndarray, s: np.ndarray) -> float:
            s_units = self.unit_scores(val_units, np.asarray(s, dtype=np.float64).reshape(len(s), -1))
            kw = {}
            if self.kind == "binary" and primary in THRESHOLDED:
                kw["threshold"] = choose_threshold(primary, val_truth, s_units)
            v = fn(val_truth, s_units, labels=labels, **kw)
            return sign * (v if not isinstance(v, dict) else float(np.nanmean(list(v.values()))))

        return select

    def choose_state(self, val_units: list[Unit], val_truth: np.ndarray, val_scores) -> dict:
        """Decision thresholds of binary hard-decision metrics, chosen on val units only."""
        if self.kind != "binary" or val_scores is None:
            return {}
        s_units = self.unit_scores(val_units, np.asarray(val_scores, dtype=np.float64))
        th = {m: choose_threshold(m, val_truth, s_units) for m in self.spec.metrics if m in THRESHOLDED}
        return {"thresholds": th} if th else {}

    # -- scorer ---------------------------------------------------------------------------------
    def unit_stats(self, truth: Any, prediction: Any, state: dict) -> dict:
        return {"y": truth, "s": list(prediction)}

    def stack(self, stats: list[dict]) -> dict[str, np.ndarray]:
        return {"y": self.stack_truth([s["y"] for s in stats]),
                "s": np.asarray([s["s"] for s in stats], dtype=np.float64).reshape(len(stats), -1)}

    def aggregate(self, table: dict[str, np.ndarray], rows: np.ndarray, state: dict) -> dict[str, float]:
        y, s = table["y"][rows], table["s"][rows]
        out: dict[str, float] = {}
        for name in self.metric_names():
            v = METRICS.get(name)(y, s, labels=self.labels(), **self._metric_kwargs(name, state))
            out.update(v if isinstance(v, dict) else {name: v})
        return out

    def aggregate_weighted(self, table: dict[str, np.ndarray], weights: np.ndarray,
                           state: dict) -> dict[str, np.ndarray] | None:
        names = self.metric_names()
        fns = [METRICS.get(name) for name in names]
        if not all(hasattr(fn, "weighted") for fn in fns):
            return None
        out: dict[str, np.ndarray] = {}
        for name, fn in zip(names, fns):
            v = fn.weighted(table["y"], table["s"], weights, labels=self.labels(),
                            **self._metric_kwargs(name, state))
            out.update(v if isinstance(v, dict) else {name: v})
        return out

    def metric_names(self) -> list[str]:
        """The metrics an aggregate computes: the task's."""
        return list(self.spec.metrics)

    def report(self, scored: Scored, samples: Sequence[Sample], state: dict, *, n_boot: int, seed: int) -> dict:
        return {"subgroups": self.subgroups(scored, samples, state, n_boot=n_boot, seed=seed)}

    def subgroups(self, scored: Scored, samples: Sequence[Sample], state: dict, *, n_boot: int,
                  seed: int) -> dict:
        """The primary metric per value of each sample attribute the loader fills (sex, age band,
        view, body part), each with its bootstrap CI over the subgroup's units (same seed), and the
        largest gap between two groups of one attribute. Attributes with fewer than two groups are
        left out; a group's value is NaN where the metric is undefined in it (one class)."""
        primary = self.spec.primary.metric
        out: dict = {}
        gaps: dict[str, dict] = {}
        for attr in SUBGROUP_ATTRIBUTES:
            groups: dict[str, list[int]] = {}
            for i, u in enumerate(scored.units):
                v = samples[u.rows[0]].meta.get(attr)
                g = age_band(v) if attr == "age" else (None if v is None else str(v))
                if g is not None:
                    groups.setdefault(g, []).append(i)
            if len(groups) < 2:
                continue
            table = {}
            for g, idx in sorted(groups.items()):
                m = aggregate_with_ci(self, [scored.stats[i] for i in idx], [scored.boot_units[i] for i in idx],
                                      state, n_boot=n_boot, seed=seed)
                v, lo, hi = m.get(primary, (float("nan"), None, None))
                table[g] = {"value": v, "ci_low": _none(lo), "ci_high": _none(hi), "n": len(idx)}
            out["age_band" if attr == "age" else attr] = table
            ok = {g: r["value"] for g, r in table.items() if r["value"] == r["value"]}
            if len(ok) >= 2:
                lo_g, hi_g = min(ok, key=ok.get), max(ok, key=ok.get)
                gaps["age_band" if attr == "age" else attr] = {"value": ok[hi_g] - ok[lo_g], "groups": [lo_g, hi_g]}
        if gaps:
            attr = max(gaps, key=lambda a: gaps[a]["value"])
            out["max_gap"] = {"attribute": attr, **gaps[attr], "per_attribute": gaps}
        return out

    def predictions_from_columns(self, ids: list[str], cols: dict[str, list], *, path) -> dict[str, Any]:
        labels = self.labels()
        names = [f"score:{n}" for n in labels]
        if not all(n in cols for n in names):
            numbered = [f"score:{i}" for i in range(len(labels))]
            if all(n in cols for n in numbered):
                names = numbered
            elif len(labels) == 1 and "score" in cols:
                names = ["score"]
            else:
                raise DataError(f"expected score columns {names}; found {sorted(cols)}", path=path)
        m = np.empty((len(ids), len(names)), dtype=np.float64)
        for k, n in enumerate(names):
            for i, v in enumerate(cols[n]):
                try:
                    m[i, k] = float(v)
                except (TypeError, ValueError):
                    m[i, k] = np.nan
                if not np.isfinite(m[i, k]):  # NaN or inf would make AUROC / ECE silently wrong
                    raise DataError(f"score {v!r} of id '{ids[i]}' is not a finite number", path=path,
                                    field=n)
        return {i: [float(v) for v in row] for i, row in zip(ids, m)}


@FAMILIES.register("linear")
@FAMILIES.register("knn")
class Classification(GlobalFamily):
    """Binary, multi-label (NaN = unknown, masked) and multi-class targets; linear probe or kNN."""

    def __init__(self, spec):
        super().__init__(spec)
        self.kind = spec.target.type
        if self.kind not in ("binary", "multilabel", "multiclass"):
            raise ConfigError(f"task {spec.name}: family '{spec.family}' takes a binary, multilabel or "
                              f"multiclass target, not {self.kind!r}")
        self._n_classes: int | None = len(spec.target.labels) or None

    def check_dataset(self, loader) -> None:
        if self.kind == "multiclass":  # its labels name classes, not label columns
            return
        known = list(dict.fromkeys([*loader.label_names, *(k for s in loader.samples() for k in s.labels)]))
        missing = [k for k in self.spec.target.labels if k not in known]
        if not known or not missing:
            return
        hint = closest(missing[0], known)
        raise ConfigError(f"{self.spec.source or self.spec.name}: key 'target.labels': {missing} "
                          f"{'is' if len(missing) == 1 else 'are'} not a label of dataset '{self.spec.dataset}' "
                          f"(its labels: {known})" + (f". Did you mean: {', '.join(hint)}?" if hint else ""))

    def target(self, sample: Sample) -> Any:
        t = self.spec.target
        if self.kind == "multiclass":
            k = int(sample.target)
            if t.labels and not 0 <= k < len(t.labels):  # would reach the head as a shape mismatch
                raise DataError(f"sample '{sample.id}': class {sample.target!r} is outside the task's "
                                f"{len(t.labels)} classes {t.labels} (key 'target.labels')", path=sample.image,
                                field="target")
            return k
        row = apply_uncertainty({k: sample.labels.get(k, float("nan")) for k in t.labels}, t.uncertain, t.blank)
        return [float(row[k]) for k in t.labels]

    def has_target(self, sample: Sample) -> bool:
        if self.kind == "multiclass":
            return sample.target is not None
        return not all(v != v for v in self.target(sample))

    def stratum(self, sample: Sample) -> int:
        v = self.target(sample)
        return int(v) if self.kind == "multiclass" else int(np.nanmax(np.nan_to_num(v, nan=0)) > 0)

    def y_array(self, samples: Sequence[Sample]) -> np.ndarray:
        if self.kind == "multiclass":
            return np.array([self.target(s) for s in samples], dtype=np.int64)
        return np.array([self.target(s) for s in samples], dtype=np.float64).reshape(len(samples), -1)

    def stack_truth(self, truths: list) -> np.ndarray:
        if self.kind == "multiclass":
            return np.asarray(truths, dtype=np.int64).reshape(-1)
        return np.asarray(truths, dtype=np.float64).reshape(len(truths), -1)

    def n_out(self, ys: list[np.ndarray]) -> int:
        if self.kind == "multiclass":
            if self._n_classes is None:
                self._n_classes = int(max(int(v.max()) for v in ys if len(v))) + 1
            return self._n_classes
        return len(self.spec.target.labels)

    def labels(self) -> list[str]:
        if self.kind == "multiclass" and not self.spec.target.labels:
            return [str(i) for i in range(self._n_classes or 0)]
        return list(self.spec.target.labels)

    def header(self) -> dict:
        return {"labels": self.labels()}

    def metric_names(self) -> list[str]:
        """The task's metrics plus calibration (ECE, Brier) beside them: probes output probabilities."""
        return list(self.spec.metrics) + [m for m in CALIBRATION if m not in self.spec.metrics]

    def _label_counts(self, y: np.ndarray) -> dict[str, tuple[int, int]]:
        """label -> (positives, known) of a truth array (multiclass: class -> (members, all))."""
        names = self.labels()
        if self.kind == "multiclass":
            y = np.asarray(y).reshape(-1).astype(int)
            return {n: (int((y == k).sum()), len(y)) for k, n in enumerate(names)}
        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        return {n: (int(np.nansum(y[:, k] > 0.5)), int((~np.isnan(y[:, k])).sum())) for k, n in enumerate(names)}

    def test_warnings(self, table: dict[str, np.ndarray]) -> list[str]:
        what = "members" if self.kind == "multiclass" else "positives"
        return [f"few_test_positives: {n} has {p} test {what} (< {FEW_POSITIVES})"
                for n, (p, known) in self._label_counts(table["y"]).items()
                if known and p < FEW_POSITIVES] + constant_prediction_warnings(table["s"])

    def val_warnings(self, val_truth: np.ndarray) -> list[str]:
        counts = self._label_counts(val_truth)
        if not any(known for _, known in counts.values()):
            raise DataError(f"task {self.spec.name}: the val split has no known label "
                            f"({', '.join(counts)}); nothing can be selected on it")
        if self.kind == "multiclass":
            present = [n for n, (p, _) in counts.items() if p]
            return [f"val_one_class: the val split holds only class {present[0]}"] if len(present) < 2 else []
        out = []
        for n, (p, known) in counts.items():
            if not known:
                out.append(f"val_no_labels: {n} is unknown on every val sample")
            elif p in (0, known):
                out.append(f"val_one_class: {n} is {'all positive' if p else 'all negative'} on val")
        return out

    def report(self, scored: Scored, samples: Sequence[Sample], state: dict, *, n_boot: int, seed: int) -> dict:
        out = super().report(scored, samples, state, n_boot=n_boot, seed=seed)
        table = self.stack(scored.stats)
        curve = reliability(table["y"], table["s"]) if scored.stats else None
        return {**out, "reliability": curve} if curve else out

    def restore(self, header: dict) -> None:
        if self.kind == "multiclass" and header.get("labels"):
            self._n_classes = len(header["labels"])


@FAMILIES.register("regression")
class Regression(GlobalFamily):
    """A continuous target (bone age in months); ridge or kNN regression."""

    kind = "regression"

    def target(self, sample: Sample) -> float:
        return float(sample.target)

    def has_target(self, sample: Sample) -> bool:
        return sample.target is not None

    def y_array(self, samples: Sequence[Sample]) -> np.ndarray:
        return np.array([self.target(s) for s in samples], dtype=np.float64)

    def test_warnings(self, table: dict[str, np.ndarray]) -> list[str]:
        return constant_prediction_warnings(table["s"])


@FAMILIES.register("retrieval")
class Retrieval(GlobalFamily):
    """Image-to-image retrieval: test queries against the training gallery, nothing is trained.

    A prediction is the ranked list of gallery ids; relevance (same value of ``target.relevance``)
    is judged afterwards from the gallery's labels, so the head never sees a test label.
    """

    kind = "retrieval"
    subsample_train = False
    context_splits = ("train",)

    def __init__(self, spec):
        super().__init__(spec)
        if not spec.target.relevance:
            raise ConfigError(f"task {spec.name}: key 'target.relevance' is required for retrieval")

    def target(self, sample: Sample) -> str:
        return str(sample.meta.get(self.spec.target.relevance))

    def y_array(self, samples: Sequence[Sample]) -> np.ndarray:
        return np.array([self.target(s) for s in samples], dtype=object)

    def prepare(self, splits: dict[str, list[Sample]]) -> None:
        gallery = splits["train"]
        self.context = {"gallery": {s.id: self.target(s) for s in gallery},
                        "counts": _counts(self.target(s) for s in gallery)}

    def fit_predict(self, train: SplitData, val: SplitData, test: SplitData, *, seed: int,
                    device: str) -> HeadOutput:
        self.prepare({"train": train.samples})
        proto = PROTOCOLS.get(self.spec.protocol.name)(**self.spec.protocol.args)
        res = proto.run(Split(train.features, None), Split(val.features, None), test.features,
                        task=self.kind, n_out=1, select=None, seed=seed, device="cpu")
        ids = [s.id for s in train.samples]
        return HeadOutput([[ids[j] for j in row] for row in np.asarray(res.test_scores, dtype=int)],
                          dict(res.hparams), res.val_score, {})

    def unit_stats(self, truth: Any, prediction: Any, state: dict) -> dict:
        gallery = self.context["gallery"]
        try:
            rel = [1.0 if gallery[g] == truth else 0.0 for g in prediction]
        except KeyError as e:
            raise DataError(f"ranked id {e} is not in the gallery (train split)") from None
        return {"n_rel": float(self.context["counts"].get(truth, 0)), "rel": rel}

    def stack(self, stats: list[dict]) -> dict[str, np.ndarray]:
        return {"y": np.asarray([s["n_rel"] for s in stats], dtype=np.float64),
                "s": np.asarray([s["rel"] for s in stats], dtype=np.float64).reshape(len(stats), -1)}

    def report(self, scored: Scored, samples: Sequence[Sample], state: dict, *, n_boot: int, seed: int) -> dict:
        return {}  # no subgroup report for retrieval (relevance, not a per-sample metric)

    def predictions_from_columns(self, ids: list[str], cols: dict[str, list], *, path) -> dict[str, Any]:
        ranks = sorted((c for c in cols if c.startswith("rank:")), key=lambda c: int(c.split(":")[1]))
        if not ranks:
            raise DataError("retrieval predictions need rank:1..k columns (gallery ids)", path=path)
        return {i: [str(cols[c][k]) for c in ranks] for k, i in enumerate(ids)}


def _none(v):
    return None if v is None or v != v else float(v)


def _counts(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out

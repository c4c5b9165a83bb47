"""NEW vs BASELINE per task: the difference of the primary metric with a CI, and a verdict.

Paired (preferred): both sides saved per-unit predictions. Units are joined on id, bootstrap units
are resampled with replacement, and the metric is recomputed on both sides from the *same*
resample; the percentile interval of (new - baseline) over the resamples is the CI. Pairing
removes the test-set sampling noise both models share, so real differences show with far fewer
samples. With several seeds a side's value is the mean over its seeds on each resample.

Unpaired (fallback, and said so): without predictions, each side's 95% CI gives a standard error
(width / 3.92) and the difference gets a normal interval with the two errors added in quadrature.

Verdict, with g the difference turned so that positive means better (sign flipped for
lower-is-better metrics): ``worse`` if the whole CI of g lies below -tolerance, ``better`` if it
lies above +tolerance, else ``same``. Without any CI the point estimate is held against the
tolerance (stricter: any drop beyond it fails).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

import numpy as np

from xrbench.metrics.bootstrap import bootstrap_ci
from xrbench.results.leaderboard import num
from xrbench.results.merge import Entry, ResultsError, check_comparable, load
from xrbench.results.predictions import NotRescorable, SavedPredictions, read_saved_predictions, take

Z95 = NormalDist().inv_cdf(0.975)


class Unpaired(Exception):
    """Why a paired comparison is impossible (the reason is shown in the output)."""


@dataclass
class Comparison:
    task: str
    label_fraction: str
    metric: str
    direction: str
    new: Entry
    base: Entry
    delta: float  # new - baseline, metric units
    ci_low: float
    ci_high: float
    paired: bool
    method: str
    verdict: str = "same"


@dataclass
class Report:
    comparisons: list[Comparison]
    only_new: list[str] = field(default_factory=list)
    only_base: list[str] = field(default_factory=list)
    tolerance: float = 0.0
    alpha: float = 0.05
    new_paths: list[str] = field(default_factory=list)
    base_paths: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.verdict == "worse"]

    @property
    def exit_code(self) -> int:
        return 1 if self.regressions else 0


# -- statistics ------------------------------------------------------------------------------
def verdict(delta: float, lo: float, hi: float, direction: str, tolerance: float) -> str:
    sign = 1.0 if direction == "higher" else -1.0
    if lo != lo or hi != hi:
        g = sign * delta
        return "worse" if g < -tolerance else "better" if g > tolerance else "same"
    g_lo, g_hi = sorted((sign * lo, sign * hi))
    return "worse" if g_hi < -tolerance else "better" if g_lo > tolerance else "same"


def unpaired_ci(new: dict[str, str], base: dict[str, str], alpha: float) -> tuple[float, float, float]:
    """(delta, lo, hi) from the two rows' 95% CIs (normal approximation, independent errors)."""
    d = num(new["value"]) - num(base["value"])
    se = [(num(r["ci_high"]) - num(r["ci_low"])) / (2 * Z95) for r in (new, base)]
    if any(v != v for v in se):
        return d, math.nan, math.nan
    half = NormalDist().inv_cdf(1 - alpha / 2) * math.hypot(*se)
    return d, d - half, d + half


def _load_side(entry: Entry, metric: str, side: str) -> list[SavedPredictions]:
    """Each seed's saved predictions, checked to reproduce the recorded primary value."""
    files = entry.prediction_files()
    if files is None:
        raise Unpaired(f"{side} has no per-sample predictions" +
                       (" (a leaderboard CSV)" if not entry.records else " (predictions file missing)"))
    out = []
    for f, rec in zip(files, entry.records):
        try:
            saved = read_saved_predictions(f, record=rec)
        except NotRescorable as why:
            raise Unpaired(f"{side}: {why}") from None
        try:
            got, want = _primary(saved.values(), metric), float(rec.primary.value)
        except (ValueError, IndexError, TypeError, KeyError) as e:  # a file the metric cannot take as it is
            raise Unpaired(f"{side} predictions cannot be re-scored with {metric} ({e})") from None
        if not ((got != got and want != want) or abs(got - want) <= 1e-3 * max(1.0, abs(want))):
            raise Unpaired(f"{side} predictions do not reproduce the recorded {metric} "
                           f"({got:.6g} vs {want:.6g} in {f.name})")
        out.append(saved)
    return out


def _primary(values: dict[str, float], metric: str) -> float:
    if metric in values:
        return float(values[metric])
    sub = [v for k, v in values.items() if k.startswith(metric.split("_per_")[0] + "/")]
    if not sub:
        raise KeyError(f"the aggregate has no value '{metric}'")
    return float(np.nanmean(sub))


def paired_ci(new: Entry, base: Entry, *, alpha: float, n_boot: int) -> tuple[float, float, float, str]:
    """(delta, lo, hi, method) of a paired bootstrap over the units both sides scored; raises
    :class:`Unpaired` with a reason."""
    metric = new.row["metric"]
    sn, sb = _load_side(new, metric, "NEW"), _load_side(base, metric, "BASELINE")
    common = set.intersection(*(set(x.ids) for x in sn + sb))
    ids = [i for i in sn[0].ids if i in common]
    if not ids:
        raise Unpaired("no unit id is common to the two sides' predictions")
    n_all = max(len(x.ids) for x in sn + sb)
    sn = [take(x, ids) for x in sn]
    sb = [take(x, ids) for x in sb]
    truth = sn[0].truth_key()
    if not all(_same(x.truth_key(), truth) for x in sn + sb):
        raise Unpaired("the two sides' labels differ for the same unit ids")
    tables = [(x, x.family.stack(x.stats)) for x in sn + sb]
    k = len(sn)

    def diff(rows: np.ndarray) -> float:
        vals = [_primary(x.family.aggregate(t, rows, x.state), metric) for x, t in tables]
        return float(np.nanmean(vals[:k])) - float(np.nanmean(vals[k:]))

    units = sn[0].boot_units
    delta = diff(np.arange(len(ids)))
    lo, hi = bootstrap_ci(diff, len(ids), units, n_boot=n_boot, seed=0, alpha=alpha)["value"]
    joined = "" if len(ids) >= n_all else f", joined on {len(ids)} of {n_all} units"
    return delta, lo, hi, (f"paired bootstrap, {len(set(units))} {sn[0].family.boot_unit_name()}s, "
                           f"{n_boot} resamples{joined}")


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(x == y or (x != x and y != y) or
                                    (isinstance(x, list) and np.array_equal(x, y, equal_nan=True))
                                    for x, y in zip(a, b))


# -- the comparison ------------------------------------------------------------------------
def _by_key(entries: list[Entry], side: str) -> dict[tuple[str, str], Entry]:
    out: dict[tuple[str, str], Entry] = {}
    for e in entries:
        k = (e.row["task"], e.row["label_fraction"])
        if k in out:
            a, b = out[k], e
            raise ResultsError(f"{side} holds several models for task '{k[0]}' (label fraction {k[1]}): "
                               f"'{a.row['model']}' ({a.row['weights']}) from {a.sources[0]} and "
                               f"'{b.row['model']}' ({b.row['weights']}) from {b.sources[0]}; "
                               f"pass one model's folder (e.g. results/<model>)")
        out[k] = e
    return out


def _names(keys: set[tuple[str, str]]) -> list[str]:
    return [t if lf == "1" else f"{t} (label fraction {lf})" for t, lf in sorted(keys)]


def compare(new: list[Path], base: list[Path], *, tolerance: float = 0.0, alpha: float = 0.05,
            tasks: list[str] | None = None, n_boot: int = 1000) -> Report:
    """Compare every (task, label fraction) present in both NEW and BASELINE."""
    a, b = _by_key(load(new, what="compare"), "NEW"), _by_key(load(base, what="compare"), "BASELINE")
    if tasks:
        for t in tasks:
            for side, d in (("NEW", a), ("BASELINE", b)):
                if not any(k[0] == t for k in d):
                    raise ResultsError(f"task '{t}' (from --tasks) has no result in {side}")
        a = {k: v for k, v in a.items() if k[0] in tasks}
        b = {k: v for k, v in b.items() if k[0] in tasks}
    common = sorted(set(a) & set(b), key=lambda k: (k[0], num(k[1])))
    if not common:
        raise ResultsError(f"NEW and BASELINE have no task in common (NEW: {sorted({k[0] for k in a})}; "
                           f"BASELINE: {sorted({k[0] for k in b})})")
    out = []
    for k in common:
        en, eb = a[k], b[k]
        check_comparable([en, eb], what="compare")
        try:
            delta, lo, hi, method = paired_ci(en, eb, alpha=alpha, n_boot=n_boot)
            paired = True
        except Unpaired as why:
            delta, lo, hi = unpaired_ci(en.row, eb.row, alpha)
            method, paired = f"unpaired (from the two CIs): {why}", False
            if lo != lo:
                method = f"point estimate only, no CI: {why}"
        c = Comparison(k[0], k[1], en.row["metric"], en.row["direction"], en, eb, delta, lo, hi, paired, method)
        c.verdict = verdict(delta, lo, hi, c.direction, tolerance)
        out.append(c)
    return Report(out, _names(set(a) - set(b)), _names(set(b) - set(a)), tolerance, alpha,
                  [str(p) for p in new], [str(p) for p in base])

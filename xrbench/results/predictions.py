"""Reading the predictions CSV that ``xrbench run`` saves next to each record (truth included).

Unlike :mod:`xrbench.results.score` (predictions made elsewhere, truth from the dataset), this
needs no dataset: ``xrbench compare`` works from result folders alone.

Format (runner ``_predictions_csv``): ``id,patient,group,y:<label>...,score:<label>...``, one row
per test sample (per group for group-mean tasks). When the y columns carry the names of the score
columns, y is an [N, K] 1/0/NaN matrix (multi-label, binary, regression); a single ``y:target``
column beside several score columns is a class id (multi-class). That is what the runner handed
to the metric functions, so a metric recomputed from the file reproduces the recorded value.
Retrieval files hold ``rank:1..k`` gallery ids instead of scores: their relevance needs the
dataset, so they cannot be re-scored from the file (:class:`NotRescorable`).
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from xrbench.results.merge import ResultsError


class NotRescorable(Exception):
    """A valid predictions file whose metric cannot be recomputed from the file alone."""


@dataclass(frozen=True)
class Predictions:
    path: Path
    ids: list[str]
    patients: list[str]
    groups: list[str]
    y: np.ndarray
    s: np.ndarray
    labels: list[str]  # the score columns: what the runner passed as ``labels``


def _floats(cells: list[str], path: Path, row: int, names: list[str], *, blank_ok: bool) -> list[float]:
    out = []
    for c, name in zip(cells, names):
        if c == "" and blank_ok:
            out.append(math.nan)
            continue
        try:
            out.append(float(c))
        except ValueError:
            raise ResultsError(f"{path}: row {row}, field '{name}': expected a number, got {c!r}") from None
    return out


def read_saved_predictions(path: Path) -> Predictions:
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ResultsError(f"{path}: not a readable predictions CSV: {e}") from None
    if not rows or rows[0][:3] != ["id", "patient", "group"]:
        raise ResultsError(f"{path}: not a predictions CSV: the header must start with id,patient,group")
    head = rows[0]
    ycols = [h for h in head[3:] if h.startswith("y:")]
    scols = [h for h in head[3:] if h.startswith("score:")]
    if ycols and not scols and any(h.startswith("rank:") for h in head[3:]):
        raise NotRescorable("retrieval predictions are ranked gallery ids; their relevance needs the dataset")
    if not ycols or not scols or head[3:] != ycols + scols:
        raise ResultsError(f"{path}: predictions header must be id,patient,group,y:<label>...,score:<label>...")
    ys, ss = [], []
    for i, r in enumerate(rows[1:], start=2):
        if len(r) != len(head):
            raise ResultsError(f"{path}: row {i}: {len(r)} fields, the header has {len(head)}")
        ys.append(_floats(r[3:3 + len(ycols)], path, i, ycols, blank_ok=True))
        ss.append(_floats(r[3 + len(ycols):], path, i, scols, blank_ok=False))
    ids = [r[0] for r in rows[1:]]
    if len(set(ids)) != len(ids):
        raise ResultsError(f"{path}: sample ids are not unique")
    y = np.asarray(ys, dtype=np.float64).reshape(len(ids), len(ycols))
    s = np.asarray(ss, dtype=np.float64).reshape(len(ids), len(scols))
    labels = [h[len("score:"):] for h in scols]
    if [h[len("y:"):] for h in ycols] != labels:  # one target column: the class id
        if len(ycols) != 1 or not (np.all(np.isfinite(y)) and np.all(y == np.round(y))):
            raise ResultsError(f"{path}: y columns {ycols} match neither the score columns nor one "
                               f"integer class column 'y:target'")
        y = y[:, 0].astype(np.int64)
    return Predictions(Path(path), ids, [r[1] for r in rows[1:]], [r[2] for r in rows[1:]], y, s, labels)


def take(p: Predictions, ids: list[str]) -> Predictions:
    """The rows of ``ids``, in that order."""
    pos = {sid: i for i, sid in enumerate(p.ids)}
    rows = np.array([pos[sid] for sid in ids], dtype=np.int64)
    return replace(p, ids=list(ids), patients=[p.patients[i] for i in rows],
                   groups=[p.groups[i] for i in rows], y=p.y[rows], s=p.s[rows])

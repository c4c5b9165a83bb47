"""The predictions file ``xrbench run`` saves beside each record, and its reader.

Version 2 (``seed0.predictions.jsonl``), one JSON object per line:

- line 1, the header: ``{"format": "xrbench-predictions", "version": 2, "task", "task_version",
  "family", "spec": <the task definition>, "labels", "state": <scorer state chosen on val, e.g.
  thresholds>, "seed", "n_boot"}``;
- then one row per test unit (a sample, or a group for tasks scored per group):
  ``{"id", "patient", "group", "boot_unit", "prediction", "stats"}``. ``prediction`` is in the
  pixels of the original image (scores, ranked gallery ids, an RLE mask, scored boxes, landmark
  points); ``stats`` are its per-unit sufficient statistics.

``xrbench score`` recomputes the statistics from ``prediction`` and the dataset's own truth;
``xrbench compare`` needs no dataset: it aggregates the stored statistics of two runs on the same
bootstrap resamples. Version-1 CSVs (``id,patient,group,y:<label>...,score:<label>...``, written
before version 2) are still read, as classification or regression scores.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from xrbench.families.base import Scored, TaskFamily, create_family, jsonable
from xrbench.results.merge import ResultsError
from xrbench.tasks.schema import TaskSpec

FORMAT = "xrbench-predictions"
VERSION = 2


class NotRescorable(Exception):
    """A valid predictions file whose metric cannot be recomputed from the file alone."""


@dataclass(frozen=True)
class SavedPredictions:
    """The rows of one saved predictions file, and the family that aggregates their statistics."""

    path: Path
    family: TaskFamily
    state: dict
    ids: list[str]
    boot_units: list[str]
    stats: list[dict]
    predictions: list[Any]

    def values(self, rows: np.ndarray | None = None) -> dict[str, float]:
        table = self.family.stack(self.stats)
        rows = np.arange(len(self.ids)) if rows is None else rows
        return self.family.aggregate(table, rows, self.state)

    def truth_key(self) -> list:
        """What must be equal on both sides of a paired comparison (the truth, where stored)."""
        return [s.get("y") for s in self.stats]


def predictions_header(spec: TaskSpec, family: TaskFamily, state: dict, *, seed: int, n_boot: int) -> dict:
    return {"format": FORMAT, "version": VERSION, "task": spec.name, "task_version": spec.version,
            "family": spec.family, "spec": spec.model_dump(mode="json"), **family.header(),
            "state": state, "seed": seed, "n_boot": n_boot}


def predictions_jsonl(header: dict, scored: Scored, predictions: list[Any]) -> str:
    lines = [json.dumps(header, sort_keys=True, default=jsonable)]
    for u, boot, pred, st in zip(scored.units, scored.boot_units, predictions, scored.stats):
        lines.append(json.dumps({"id": u.id, "patient": u.patient, "group": u.group, "boot_unit": boot,
                                 "prediction": pred, "stats": st}, default=jsonable))
    return "\n".join(lines) + "\n"


def read_header(path: Path) -> dict | None:
    """The version-2 header of ``path``, or None when the file is not a version-2 file."""
    try:
        with open(path) as f:
            first = f.readline()
        head = json.loads(first)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return head if isinstance(head, dict) and head.get("format") == FORMAT else None


def read_rows(path: Path) -> tuple[dict, list[dict]]:
    """(header, rows) of a version-2 file; every malformed line is named."""
    head = read_header(path)
    if head is None:
        raise ResultsError(f"{path}: not an xrbench predictions file (version 2 JSONL)")
    if head.get("version") != VERSION:
        raise ResultsError(f"{path}: predictions version {head.get('version')!r}; this xrbench reads {VERSION}")
    rows, lines = [], {}
    with open(path) as f:
        next(f)
        for i, line in enumerate(f, start=2):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ResultsError(f"{path}: line {i}: not JSON ({e.msg})") from None
            if not isinstance(row, dict) or "id" not in row:
                raise ResultsError(f"{path}: line {i}: expected an object with an 'id'")
            if str(row["id"]) in lines:
                raise ResultsError(f"{path}: line {i}: id {str(row['id'])!r} is also on line {lines[str(row['id'])]}; "
                                   f"unit ids must be unique")
            lines[str(row["id"])] = i
            rows.append(row)
    return head, rows


def family_of(head: dict, path: Path) -> TaskFamily:
    try:
        spec = TaskSpec.model_validate(head["spec"])
    except Exception as e:  # noqa: BLE001 - any malformed header is the same user error
        raise ResultsError(f"{path}: the header's task definition is not valid ({e})") from None
    family = create_family(spec)
    family.restore(head)
    return family


def read_saved_predictions(path: Path, *, record=None) -> SavedPredictions:
    """A version-2 file, or a version-1 CSV (for which ``record`` supplies task and metric)."""
    path = Path(path)
    if path.suffix == ".csv":
        return _read_v1(path, record)
    head, rows = read_rows(path)
    try:
        stats = [r["stats"] for r in rows]
    except KeyError:
        raise ResultsError(f"{path}: a row has no 'stats'") from None
    return SavedPredictions(path, family_of(head, path), head.get("state") or {},
                            [str(r["id"]) for r in rows], [str(r.get("boot_unit", r.get("patient")))
                                                          for r in rows], stats,
                            [r.get("prediction") for r in rows])


def take(p: SavedPredictions, ids: list[str]) -> SavedPredictions:
    """The rows of ``ids``, in that order."""
    pos = {sid: i for i, sid in enumerate(p.ids)}
    rows = [pos[sid] for sid in ids]
    return replace(p, ids=list(ids), boot_units=[p.boot_units[i] for i in rows],
                   stats=[p.stats[i] for i in rows], predictions=[p.predictions[i] for i in rows])


# -- version 1 -----------------------------------------------------------------------------------
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


def _read_v1(path: Path, record) -> SavedPredictions:
    """A version-1 CSV: y and score columns, scored with the record's primary metric."""
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
        raise NotRescorable("version-1 retrieval predictions are ranked gallery ids; their relevance "
                            "needs the dataset (version-2 files carry it)")
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
    labels = [h[len("score:"):] for h in scols]
    multiclass = [h[len("y:"):] for h in ycols] != labels
    if multiclass and (len(ycols) != 1 or not all(v[0] == v[0] and v[0] == round(v[0]) for v in ys)):
        raise ResultsError(f"{path}: y columns {ycols} match neither the score columns nor one "
                           f"integer class column 'y:target'")
    if record is None:
        raise ResultsError(f"{path}: a version-1 predictions file needs its result record")
    spec = TaskSpec(name=record.task, version=record.task_version, description="version-1 predictions",
                    dataset=record.dataset, family="linear",
                    target={"type": "multiclass" if multiclass else "multilabel", "labels": labels},
                    protocol={"name": "linear"}, metrics=[record.primary_metric],
                    primary={"metric": record.primary_metric, "direction": record.direction})
    family = create_family(spec)
    truth = [int(v[0]) for v in ys] if multiclass else ys
    stats = [{"y": t, "s": s} for t, s in zip(truth, ss)]
    state = {"thresholds": (record.hparams or {}).get("thresholds") or {}}
    patients = [r[1] for r in rows[1:]]
    return SavedPredictions(path, family, state, ids, patients, stats, ss)


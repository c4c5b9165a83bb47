"""The leaderboard CSV: one row per (model, weights, task, label fraction), provenance included."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from xrbench.results.record import ResultRecord, atomic_write_text

COLUMNS = ["task", "task_version", "model", "weights", "metric", "direction", "value", "ci_low",
           "ci_high", "n_train", "n_val", "n_test", "seed", "label_fraction", "data",
           "xrbench_version", "git_sha", "dataset_hash", "config_hash", "device", "seconds"]
KEY = ("model", "weights", "task", "label_fraction")


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if v != v else f"{v:.6g}"
    return str(v)


def row_of(rec: ResultRecord) -> dict[str, str]:
    p = rec.primary
    return {k: _fmt(v) for k, v in {
        "task": rec.task, "task_version": rec.task_version, "model": rec.model, "weights": rec.weights,
        "metric": rec.primary_metric, "direction": rec.direction, "value": p.value, "ci_low": p.ci_low,
        "ci_high": p.ci_high, "n_train": rec.n.get("train"), "n_val": rec.n.get("val"),
        "n_test": rec.n.get("test"), "seed": rec.seed, "label_fraction": rec.label_fraction,
        "data": rec.data, "xrbench_version": rec.provenance.get("xrbench_version"),
        "git_sha": rec.provenance.get("git_sha"), "dataset_hash": rec.dataset_hash,
        "config_hash": rec.config_hash, "device": rec.provenance.get("device"),
        "seconds": round(float(rec.timings.get("total_s", 0.0)), 2)}.items()}


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in sorted(rows, key=lambda r: (r["task"], r["model"], r["weights"], r["label_fraction"])):
        w.writerow(r)
    atomic_write_text(path, buf.getvalue())


def update(path: Path, records: list[ResultRecord]) -> None:
    """Insert or replace the rows of ``records`` in the CSV at ``path`` (atomic)."""
    rows = {tuple(r.get(k, "") for k in KEY): r for r in read_rows(path)}
    for rec in records:
        r = row_of(rec)
        rows[tuple(r[k] for k in KEY)] = r
    write_rows(path, list(rows.values()))

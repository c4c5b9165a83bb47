"""The leaderboard CSV: one row per (model, weights, task, label fraction), provenance included.

The column order is a contract (docs/results.md): the first 21 columns are those of the first
release, later columns are only ever appended. Several seeds of one key fold into one row: the
value is the mean over seeds, ``sd`` their standard deviation, the CI the mean of the per-seed
CI bounds; a column whose value differs between seeds lists the per-seed values joined by ';'.

A ``leaderboard.csv`` that xrbench did not write (another header, ragged or unparsable rows) is
never merged into or overwritten: :func:`update` writes beside it, to ``leaderboard.xrbench.csv``
(docs/reliability.md). Updates hold a lock on the folder, so concurrent runs sharing an output
folder keep each other's rows.
"""
from __future__ import annotations

import csv
import io
import itertools
import math
from pathlib import Path

from xrbench.atomic import atomic_write_text, folder_lock
from xrbench.results.record import ResultRecord

COLUMNS = ["task", "task_version", "model", "weights", "metric", "direction", "value", "ci_low",
           "ci_high", "n_train", "n_val", "n_test", "seed", "label_fraction", "data",
           "xrbench_version", "git_sha", "dataset_hash", "config_hash", "device", "seconds",
           # appended in schema 2 (xrbench leaderboard / compare)
           "family", "dataset", "weights_sha256", "n_seeds", "sd", "torch", "cuda",
           # appended in schema 3 (docs/results.md, "Numbers people can trust")
           "warnings", "leaked", "ece", "brier", "subgroup_gap", "subgroup_gap_attribute"]
KEY = ("model", "weights", "task", "label_fraction")
#: the columns of the first release: every leaderboard xrbench ever wrote starts with them
FIRST_RELEASE = 21
_NUMERIC = ("task_version", "value", "ci_low", "ci_high", "label_fraction", "seconds")


def fmt(v) -> str:
    """A CSV cell: '' for missing/NaN, 6 significant digits for floats."""
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if v != v else f"{v:.6g}"
    return str(v)


def num(text: str | None) -> float:
    """A CSV cell as a float; NaN when empty or not a number."""
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def key_of(row: dict[str, str]) -> tuple[str, ...]:
    """The row key, with the label fraction normalised ('1.0' and '1' are one key)."""
    return tuple(fmt(num(row.get(k))) if k == "label_fraction" else row.get(k, "") for k in KEY)


def _mean(vals: list[float]) -> float:
    vals = [v for v in vals if v == v]
    return sum(vals) / len(vals) if vals else math.nan


def _sd(vals: list[float]) -> float:
    vals = [v for v in vals if v == v]
    if len(vals) < 2:
        return math.nan
    m = sum(vals) / len(vals)
    return math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))


def _per_seed(values: list) -> str:
    """One value when all seeds agree, else the per-seed values joined by ';'."""
    cells = [fmt(v) for v in values]
    return cells[0] if len(set(cells)) == 1 else ";".join(cells)


def row_of(records: list[ResultRecord]) -> dict[str, str]:
    """The CSV row of the records of one key (one record per seed), sorted by seed."""
    recs = sorted(records, key=lambda r: r.seed)
    first = recs[0]
    prov = [r.provenance for r in recs]
    return {
        "task": first.task, "task_version": fmt(first.task_version), "model": first.model,
        "weights": first.weights, "metric": first.primary_metric, "direction": first.direction,
        "value": fmt(_mean([r.primary.value for r in recs])),
        "ci_low": fmt(_mean([_nan(r.primary.ci_low) for r in recs])),
        "ci_high": fmt(_mean([_nan(r.primary.ci_high) for r in recs])),
        "n_train": _per_seed([r.n.get("train") for r in recs]),
        "n_val": _per_seed([r.n.get("val") for r in recs]),
        "n_test": _per_seed([r.n.get("test") for r in recs]),
        "seed": ";".join(str(r.seed) for r in recs), "label_fraction": fmt(float(first.label_fraction)),
        "data": _per_seed([r.data for r in recs]),
        "xrbench_version": _per_seed([p.get("xrbench_version") for p in prov]),
        "git_sha": _per_seed([p.get("git_sha") for p in prov]),
        "dataset_hash": _per_seed([r.dataset_hash for r in recs]),
        "config_hash": _per_seed([r.config_hash for r in recs]),
        "device": _per_seed([p.get("device") for p in prov]),
        "seconds": fmt(round(sum(float(r.timings.get("total_s", 0.0)) for r in recs), 2)),
        "family": first.family, "dataset": first.dataset,
        "weights_sha256": _per_seed([r.weights_sha256 for r in recs]),
        "n_seeds": str(len(recs)), "sd": fmt(_sd([r.primary.value for r in recs])),
        "torch": _per_seed([p.get("torch") for p in prov]),
        "cuda": _per_seed([p.get("cuda") for p in prov]),
        "warnings": "; ".join(dict.fromkeys(w for r in recs for w in r.warnings)),
        "leaked": _leaked(recs),
        "ece": fmt(_mean([_metric(r, "ece") for r in recs])),
        "brier": fmt(_mean([_metric(r, "brier") for r in recs])),
        "subgroup_gap": fmt(_mean([_nan((r.subgroups.get("max_gap") or {}).get("value")) for r in recs])),
        "subgroup_gap_attribute": _per_seed([(r.subgroups.get("max_gap") or {}).get("attribute") for r in recs]),
    }


def _metric(r: ResultRecord, name: str) -> float:
    m = r.metrics.get(name)
    return math.nan if m is None else _nan(m.value)


def _leaked(recs: list[ResultRecord]) -> str:
    """'yes' when any seed's test split overlaps the pretraining manifest, 'no' when checked and
    clean, 'unknown' without a manifest."""
    status = {(r.pretraining_overlap or {}).get("status", "unknown") for r in recs}
    return "yes" if "overlap" in status else "unknown" if "unknown" in status else "no"


#: the subgroup file written beside a leaderboard CSV: one row per (result, attribute, group)
SUBGROUP_COLUMNS = ["task", "model", "weights", "label_fraction", "seed", "metric", "attribute", "group",
                    "value", "ci_low", "ci_high", "n"]


def subgroup_rows(records: list[ResultRecord]) -> list[dict[str, str]]:
    out = []
    for r in records:
        for attr, groups in r.subgroups.items():
            if attr == "max_gap":
                continue
            for g, v in groups.items():
                out.append({"task": r.task, "model": r.model, "weights": r.weights,
                            "label_fraction": fmt(float(r.label_fraction)), "seed": str(r.seed),
                            "metric": r.primary_metric, "attribute": attr, "group": g,
                            "value": fmt(_nan(v.get("value"))), "ci_low": fmt(_nan(v.get("ci_low"))),
                            "ci_high": fmt(_nan(v.get("ci_high"))), "n": fmt(v.get("n"))})
    return out


def subgroups_path(path: Path) -> Path:
    """``subgroups.csv`` beside ``leaderboard.csv`` (``<stem>.subgroups.csv`` beside another name)."""
    return path.with_name("subgroups.csv" if path.name == "leaderboard.csv" else f"{path.stem}.subgroups.csv")


def subgroups_csv(rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SUBGROUP_COLUMNS, extrasaction="ignore", restval="", lineterminator="\n")
    w.writeheader()
    for r in sorted(rows, key=lambda r: (r["task"], r["model"], r["weights"], num(r["label_fraction"]),
                                         r["seed"], r["attribute"], r["group"])):
        w.writerow(r)
    return buf.getvalue()


def _nan(v: float | None) -> float:
    return math.nan if v is None else float(v)


def rows_of(records: list[ResultRecord]) -> list[dict[str, str]]:
    """One row per key; the records of a key are its seeds."""
    groups: dict[tuple, list[ResultRecord]] = {}
    for rec in records:
        groups.setdefault((rec.model, rec.weights, rec.task, fmt(float(rec.label_fraction))), []).append(rec)
    return [row_of(g) for g in groups.values()]


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def sort_key(row: dict[str, str]) -> tuple:
    return (row.get("task", ""), row.get("model", ""), row.get("weights", ""), num(row.get("label_fraction")))


def to_csv(rows: list[dict[str, str]]) -> str:
    """The canonical CSV text: COLUMNS in order, rows sorted by (task, model, weights, fraction)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", restval="", lineterminator="\n")
    w.writeheader()
    for r in sorted(rows, key=sort_key):
        w.writerow(r)
    return buf.getvalue()


def write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    atomic_write_text(path, to_csv(rows))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def foreign_reason(path: Path) -> str | None:
    """Why ``path`` is not a leaderboard xrbench wrote; None when it is one (or is absent or empty).

    Ours: a header that is a prefix of :data:`COLUMNS` (older releases wrote fewer columns, never
    other ones), and rows with a cell per column, a task, a model and numbers where numbers go.
    """
    if not path.exists():
        return None
    if not path.is_file():
        return "it is not a file"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return "it is not UTF-8 text"
    lines = csv.reader(io.StringIO(text))
    try:
        header = next(lines, None)
        if header is None:
            return None
        if len(header) < FIRST_RELEASE or header != COLUMNS[: len(header)]:
            return "its header is not xrbench's leaderboard header"
        for row in lines:
            if not row:
                continue
            where = f"line {lines.line_num}"
            if len(row) != len(header):
                return f"{where} has {len(row)} cells; the header has {len(header)}"
            cells = dict(zip(header, row))
            if not cells["task"] or not cells["model"]:
                return f"{where} has no task or model"
            bad = [k for k in _NUMERIC if cells[k] and not _is_number(cells[k])]
            if bad:
                return f"{where}, column '{bad[0]}': {cells[bad[0]]!r} is not a number"
    except csv.Error as e:
        return f"it is not a CSV file ({e})"
    return None


def destination(path: Path) -> tuple[Path, str | None]:
    """(where rows for ``path`` go, why not ``path`` itself or None).

    ``path`` itself unless it holds a file xrbench did not write; then the first of
    ``<stem>.xrbench.csv``, ``<stem>.xrbench-2.csv``, ... beside it that is absent or ours.
    """
    reason = foreign_reason(path)
    if reason is None:
        return path, None
    for k in itertools.count(1):
        alt = path.with_name(f"{path.stem}.xrbench{'' if k == 1 else f'-{k}'}{path.suffix}")
        if foreign_reason(alt) is None:
            return alt, f"{path} was not written by xrbench ({reason})"
    raise AssertionError("unreachable")


def update(path: Path, records: list[ResultRecord]) -> Path:
    """Insert or replace the rows of ``records`` (seeds of one key fold into one row), atomically.

    Returns the file written: ``path``, or the fresh file beside it when ``path`` is foreign
    (:func:`destination`; the CLI says so on stderr before any work).
    """
    with folder_lock(path.parent):
        path = destination(path)[0]
        rows = {key_of(r): r for r in read_rows(path)}
        for r in rows_of(records):
            rows[key_of(r)] = r
        # the subgroup rows of the replaced results are replaced too, under the same lock
        sub_path = subgroups_path(path)
        new = {tuple(r[k] for k in KEY) for r in subgroup_rows(records)} | \
            {(rec.model, rec.weights, rec.task, fmt(float(rec.label_fraction))) for rec in records}
        subs = [r for r in read_rows(sub_path) if tuple(r.get(k, "") for k in KEY) not in new]
        write_rows(path, list(rows.values()))
        if subs or subgroup_rows(records) or sub_path.exists():
            atomic_write_text(sub_path, subgroups_csv(subs + subgroup_rows(records)))
    return path

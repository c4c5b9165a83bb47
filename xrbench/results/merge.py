"""Reading result records and leaderboard CSVs from many runs, and refusing to mix what differs.

Inputs are record JSON files, folders (searched recursively for record JSONs; CSVs inside a folder
are ignored because ``xrbench run`` writes its own leaderboard.csv next to the records), and
leaderboard CSV files. Numbers of one task are comparable only if the task version, dataset
manifest hash, config hash, data kind (synthetic-demo / real), primary metric, direction and test
size agree; anything else is refused with both values and both files named (docs/results.md).
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from xrbench.errors import ConfigError
from xrbench.results.leaderboard import COLUMNS, KEY, fmt, key_of, num, row_of
from xrbench.results.record import ResultRecord

_RECORD_KEYS = {"task", "metrics", "primary_metric", "model"}
_CSV_REQUIRED = (*KEY, "task_version", "metric", "direction", "value", "ci_low", "ci_high", "n_test",
                 "data", "dataset_hash", "config_hash")
#: the facts that must agree between every result of one task, with why they matter
COMPARABLE = {
    "task_version": "the task definition changed",
    "dataset_hash": "the evaluated samples differ: other dataset files, or another --limit",
    "config_hash": "the task configuration differs",
    "data": "synthetic-demo and real results never mix",
    "metric": "the primary metric differs",
    "direction": "the metric direction differs",
    "n_test": "the test sets differ in size (e.g. a --limit run)",
}


class ResultsError(ConfigError):
    """Result files are missing, malformed or not comparable (exit status 2)."""


@dataclass
class Entry:
    """One (model, weights, task, label fraction) result: its seeds' records, or one CSV row."""

    row: dict[str, str]
    records: list[ResultRecord]  # sorted by seed; empty when the entry comes from a CSV
    sources: list[Path]  # one JSON per record, or the CSV file

    @property
    def key(self) -> tuple[str, ...]:
        return key_of(self.row)

    def prediction_files(self) -> list[Path] | None:
        """The per-sample predictions CSV of every seed, or None if any is not recorded/present."""
        if not self.records:
            return None
        files = [src.parent / rec.predictions if rec.predictions else None
                 for rec, src in zip(self.records, self.sources)]
        return files if all(f is not None and f.is_file() for f in files) else None

    def facts(self) -> list[tuple[dict[str, str], Path]]:
        """The COMPARABLE facts of each source (each record, or the CSV row) with its file."""
        if not self.records:
            return [({k: self.row.get(k, "") for k in COMPARABLE}, self.sources[0])]
        return [({"task_version": fmt(r.task_version), "dataset_hash": r.dataset_hash,
                  "config_hash": r.config_hash, "data": r.data, "metric": r.primary_metric,
                  "direction": r.direction, "n_test": fmt(r.n.get("test"))}, src)
                for r, src in zip(self.records, self.sources)]


# -- reading ---------------------------------------------------------------------------------
def read_record(path: Path, *, required: bool) -> ResultRecord | None:
    """The record in ``path``; None for a JSON that is not a record (unless ``required``)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultsError(f"{path}: not a readable JSON file: {e}") from None
    if not (isinstance(data, dict) and _RECORD_KEYS <= data.keys()):
        if required:
            raise ResultsError(f"{path}: not a result record (expected keys {sorted(_RECORD_KEYS)})")
        return None
    try:
        rec = ResultRecord.from_dict(data)
        p = rec.primary
        ok = (isinstance(p.value, (int, float)) and rec.direction in ("higher", "lower")
              and isinstance(rec.seed, int) and isinstance(rec.label_fraction, (int, float))
              and isinstance(rec.n, dict))
    except (TypeError, KeyError, AttributeError) as e:
        raise ResultsError(f"{path}: malformed result record: {e}") from None
    if not ok:
        raise ResultsError(f"{path}: malformed result record: primary value must be a number, "
                           f"direction 'higher' or 'lower', seed an integer, n a mapping")
    return rec


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a leaderboard CSV as canonical rows (first-release files with fewer columns are accepted)."""
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in reader.fieldnames or []]
            missing = [c for c in _CSV_REQUIRED if c not in header]
            if missing:
                raise ResultsError(f"{path}: not a leaderboard CSV: missing column(s) {missing}")
            rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items() if k is not None}
                    for r in reader]
            rows = [{c: r.get(c, "") for c in COLUMNS} for r in rows]  # older files: new columns empty
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ResultsError(f"{path}: not a readable CSV file: {e}") from None
    for i, r in enumerate(rows, start=2):
        if r["value"] and math.isnan(num(r["value"])) and r["value"].lower() != "nan":
            raise ResultsError(f"{path}: row {i}, field 'value': expected a number, got {r['value']!r}")
        if r["direction"] not in ("higher", "lower"):
            raise ResultsError(f"{path}: row {i}, field 'direction': expected 'higher' or 'lower', "
                               f"got {r['direction']!r}")
        if math.isnan(num(r["label_fraction"])):
            raise ResultsError(f"{path}: row {i}, field 'label_fraction': expected a number")
        r["label_fraction"] = fmt(num(r["label_fraction"]))  # '1.0' and '1' are one fraction
    return rows


def _collect(inputs: list[Path]) -> tuple[list[tuple[ResultRecord, Path]], list[tuple[dict, Path]]]:
    records: list[tuple[ResultRecord, Path]] = []
    rows: list[tuple[dict, Path]] = []
    for p in map(Path, inputs):
        if p.is_dir():
            found = [(rec, f) for f in sorted(p.rglob("*.json")) if not f.name.startswith(".")
                     for rec in [read_record(f, required=False)] if rec is not None]
            if not found:
                raise ResultsError(f"{p}: no result records (*.json) in this folder")
            records += found
        elif p.suffix.lower() == ".json" and p.is_file():
            records.append((read_record(p, required=True), p))
        elif p.suffix.lower() == ".csv" and p.is_file():
            rows += [(r, p) for r in read_csv_rows(p)]
        elif not p.exists():
            raise ResultsError(f"{p}: no such file or folder")
        else:
            raise ResultsError(f"{p}: expected a result folder, a record .json or a leaderboard .csv")
    return records, rows


def _same_result(a: dict[str, str], b: dict[str, str]) -> bool:
    return all(a.get(k, "") == b.get(k, "") for k in ("value", "seed", "dataset_hash", "config_hash"))


def load(inputs: list[Path], *, what: str = "merge") -> list[Entry]:
    """Entries of ``inputs``, one per key; duplicates of one result collapse, conflicts refuse."""
    records, csv_rows = _collect(inputs)
    by_key: dict[tuple, dict[int, tuple[ResultRecord, Path]]] = {}
    for rec, path in records:
        key = (rec.model, rec.weights, rec.task, fmt(float(rec.label_fraction)))
        seeds = by_key.setdefault(key, {})
        if rec.seed in seeds:
            other, opath = seeds[rec.seed]
            if (other.primary.value, other.weights_sha256, other.dataset_hash, other.config_hash) != \
                    (rec.primary.value, rec.weights_sha256, rec.dataset_hash, rec.config_hash):
                raise ResultsError(f"two different results for model '{rec.model}' ({rec.weights}), task "
                                   f"'{rec.task}', seed {rec.seed}: {opath} and {path}; pass only one")
            continue  # the same result copied twice
        seeds[rec.seed] = (rec, path)
    entries: dict[tuple, Entry] = {}
    for seeds in by_key.values():
        pairs = [seeds[s] for s in sorted(seeds)]
        shas = {r.weights_sha256 for r, _ in pairs}
        if len(shas) > 1:
            raise ResultsError(f"model '{pairs[0][0].model}' with weights '{pairs[0][0].weights}' names "
                               f"different files (sha256 {sorted(map(str, shas))}) in "
                               f"{pairs[0][1]} and {pairs[-1][1]}; give the runs distinct weights paths")
        e = Entry(row_of([r for r, _ in pairs]), [r for r, _ in pairs], [p for _, p in pairs])
        entries[e.key] = e
    for row, path in csv_rows:
        k = key_of(row)
        if k in entries:
            if not _same_result(entries[k].row, row):
                raise ResultsError(f"two different results for model '{row['model']}' ({row['weights']}), "
                                   f"task '{row['task']}', label fraction {row['label_fraction']}: "
                                   f"{entries[k].sources[0]} and {path}; pass only one")
            continue
        entries[k] = Entry(row, [], [path])
    out = list(entries.values())
    check_comparable(out, what=what)
    return out


def check_comparable(entries: list[Entry], *, what: str = "merge") -> None:
    """Raise :class:`ResultsError` naming the task, the two values and the two files on a mismatch."""
    first: dict[str, tuple[dict[str, str], Path]] = {}
    for e in entries:
        task = e.row["task"]
        for facts, path in e.facts():
            if task not in first:
                first[task] = (facts, path)
                continue
            ref, ref_path = first[task]
            for k, why in COMPARABLE.items():
                if facts[k] != ref[k]:
                    raise ResultsError(f"task '{task}': {k} disagrees ({why}): {ref[k]!r} in {ref_path} vs "
                                       f"{facts[k]!r} in {path}; refusing to {what} incomparable numbers")


def merge(inputs: list[Path]) -> list[dict[str, str]]:
    """The canonical leaderboard rows of ``inputs`` (see :func:`load`)."""
    return [e.row for e in load(inputs)]

"""Scoring predictions with exactly the code ``xrbench run`` uses: the task family's statistics
and aggregate, with the truth taken from the dataset, never from the file.

A version-2 predictions file saved by ``xrbench run`` (:mod:`xrbench.results.predictions`) is
re-scored as it stands: its header holds the scorer state and seed, so the numbers are the run's.
Predictions made elsewhere, one row per test unit (per study for tasks scored per group):
- CSV: an ``id`` column and ``score:<label>`` columns (one per task label / class; a single
  ``score`` column is accepted for one-output tasks), or ``rank:1..k`` columns of gallery ids
  for retrieval. Other columns (``patient``, ``y:*``) are ignored: the truth comes from the dataset.
- JSONL: ``{"id": ..., "scores": {label: value} | [values] | value}`` or ``{"id": ..., "ranking": [ids]}``.
Ids must match the task's test samples exactly: missing, duplicated or unknown ids are refused.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from xrbench.errors import DataError
from xrbench.families import create_family
from xrbench.families.base import kept_rows, limit_samples, score_units
from xrbench.registry import DATASETS
from xrbench.results.predictions import read_header, read_rows
from xrbench.runner import resolve_root
from xrbench.tasks.schema import TaskSpec


def read_predictions(path: Path) -> tuple[list[str], dict[str, list]]:
    """(ids in file order, column -> values) from a CSV or JSONL predictions file."""
    path = Path(path)
    if not path.is_file():
        raise DataError("predictions file does not exist", path=path)
    if path.suffix in (".jsonl", ".ndjson"):
        ids, cols = [], {}
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                ids.append(str(obj["id"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                raise DataError("expected a JSON object with an 'id'", path=path, row=i) from None
            if "ranking" in obj:
                for k, v in enumerate(obj["ranking"], 1):
                    cols.setdefault(f"rank:{k}", []).append(str(v))
                continue
            sc = obj.get("scores", obj.get("score"))
            if sc is None:
                raise DataError("needs 'scores' or 'ranking'", path=path, row=i)
            items = sc.items() if isinstance(sc, dict) else enumerate(sc if isinstance(sc, list) else [sc])
            for k, v in items:
                cols.setdefault(f"score:{k}", []).append(v)
        lengths = {len(v) for v in cols.values()}
        if lengths and lengths != {len(ids)}:
            raise DataError("rows do not all carry the same score keys", path=path)
        return ids, cols
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"cannot be read as CSV ({e})", path=path) from None
    df.columns = [c.strip() for c in df.columns]
    if "id" not in df.columns:
        raise DataError(f"missing column 'id'; found {list(df.columns)}", path=path)
    return list(df["id"]), {c: list(df[c]) for c in df.columns if c.startswith(("score", "rank:"))}


def check_ids(found: list[str], expected: list[str], path: Path) -> None:
    seen, dups = set(), []
    for i in found:
        if i in seen:
            dups.append(i)
        seen.add(i)
    unknown = sorted(seen - set(expected))
    missing = sorted(set(expected) - seen)
    problems = []
    for what, ids in (("duplicated", dups), ("unknown", unknown), ("missing", missing)):
        if ids:
            problems.append(f"{len(ids)} {what} id(s), e.g. {ids[:5]}")
    if problems:
        hint = ("; a run with --limit N is scored with the same --limit N" if missing and not unknown and not dups
                else "")
        raise DataError("predictions do not match the task's test samples: " + "; ".join(problems)
                        + f" (expected {len(expected)} ids){hint}", path=path)


def score_file(spec: TaskSpec, predictions: Path, *, data_root: Path | None = None,
               data_roots: dict | None = None, limit: int | None = None, thresholds: dict | None = None,
               n_boot: int | None = None, seed: int | None = None) -> dict[str, tuple]:
    """Every metric (value, CI) of a predictions file, truth from the dataset, through the family.

    A version-2 file written by ``xrbench run`` carries its scorer state (val-chosen thresholds),
    seed and number of bootstrap replicates, so re-scoring it reproduces the run's numbers exactly; ``thresholds`` override.
    """
    from xrbench.runner import RunConfig

    family = create_family(spec)
    cfg = RunConfig(data_root=data_root, data_roots=data_roots or {}, limit=limit)
    root, _ = resolve_root(spec.dataset, cfg)
    loader = DATASETS.get(spec.dataset)(root, seed=0, **spec.dataset_options)
    family.check_dataset(loader)
    split = {}
    for name in ("test", *family.context_splits):
        full = limit_samples(loader.split(name), limit)
        split[name] = [full[i] for i in kept_rows(family, full, name, loader.root)]
    family.prepare(split)
    test = split["test"]
    units = family.units(test)
    path = Path(predictions)
    head = read_header(path) if path.is_file() else None
    state: dict = {}
    if head is not None:
        if head.get("task") != spec.name:
            raise DataError(f"predictions of task '{head.get('task')}', not '{spec.name}'", path=path)
        _, rows = read_rows(path)
        ids = [str(r["id"]) for r in rows]
        check_ids(ids, [u.id for u in units], path)
        preds = {str(r["id"]): family.prediction_from_row(r, path=path, line=k + 2) for k, r in enumerate(rows)}
        family.restore(head)
        state = dict(head.get("state") or {})
        seed = head.get("seed", 0) if seed is None else seed
        n_boot = head.get("n_boot", 1000) if n_boot is None else n_boot
    else:
        ids, cols = read_predictions(path)
        preds = family.predictions_from_columns(ids, cols, path=path)  # first: a dense task takes no flat file
        check_ids(ids, [u.id for u in units], path)
    if thresholds:
        state["thresholds"] = {**state.get("thresholds", {}), **thresholds}
    truths = [family.truth(u, test) for u in units]
    scored = score_units(family, units, truths, [preds[u.id] for u in units], state,
                         n_boot=1000 if n_boot is None else n_boot, seed=0 if seed is None else seed)
    return scored.metrics

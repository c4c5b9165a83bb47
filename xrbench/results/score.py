"""Scoring predictions produced elsewhere with exactly the metric code ``xrbench run`` uses.

Predictions file (CSV or JSONL), one row per test sample (per study for tasks scored per group):
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
from xrbench.metrics.evaluate import evaluate
from xrbench.registry import DATASETS
from xrbench.runner import (_group_ids, _group_mean, _limit, output_labels, resolve_root,
                            retrieval_relevance, targets, task_rows)
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
        raise DataError("predictions do not match the task's test samples: " + "; ".join(problems)
                        + f" (expected {len(expected)} ids)", path=path)


def _score_matrix(cols: dict[str, list], order: list[int], labels: list[str], path: Path) -> np.ndarray:
    names = [f"score:{n}" for n in labels]
    if not all(n in cols for n in names):
        numbered = [f"score:{i}" for i in range(len(labels))]
        if all(n in cols for n in numbered):
            names = numbered
        elif len(labels) == 1 and "score" in cols:
            names = ["score"]
        else:
            raise DataError(f"expected score columns {names}; found {sorted(cols)}", path=path)
    try:
        m = np.array([[float(cols[n][i]) for n in names] for i in order], dtype=np.float64)
    except ValueError as e:
        raise DataError(f"a score is not a number ({e})", path=path) from None
    if np.isnan(m).any():
        raise DataError("scores contain NaN", path=path)
    return m


def score_file(spec: TaskSpec, predictions: Path, *, data_root: Path | None = None,
               data_roots: dict | None = None, limit: int | None = None, thresholds: dict | None = None,
               n_boot: int = 1000, seed: int = 0) -> dict[str, tuple]:
    from xrbench.runner import RunConfig

    cfg = RunConfig(data_root=data_root, data_roots=data_roots or {}, limit=limit)
    root, _ = resolve_root(spec.dataset, cfg)
    loader = DATASETS.get(spec.dataset)(root, seed=0, **spec.dataset_options)
    split = {}
    for name in ("train", "test") if spec.target.type == "retrieval" else ("test",):
        full = _limit(loader.split(name), limit)
        split[name] = [full[i] for i in task_rows(spec, full, name, loader)]
    test = split["test"]
    y = targets(spec, test)
    labels, _ = output_labels(spec, {"train": y})
    units = [s.patient for s in test]
    if spec.aggregate == "group-mean":
        reps = _group_ids(test)
        expected = [s.group or s.id for s in reps]
        y, _, units = _group_mean(test, y, np.zeros((len(y), 1)))
    else:
        expected = [s.id for s in test]
    ids, cols = read_predictions(predictions)
    check_ids(ids, expected, Path(predictions))
    where = {i: k for k, i in enumerate(ids)}
    order = [where[e] for e in expected]
    if spec.target.type == "retrieval":
        gallery = split["train"]
        pos = {s.id: j for j, s in enumerate(gallery)}
        ranks = sorted((c for c in cols if c.startswith("rank:")), key=lambda c: int(c.split(":")[1]))
        if not ranks:
            raise DataError("retrieval predictions need rank:1..k columns (gallery ids)", path=predictions)
        try:
            ranked = np.array([[pos[cols[c][i]] for c in ranks] for i in order])
        except KeyError as e:
            raise DataError(f"ranked id {e} is not in the gallery (train split)", path=predictions) from None
        y, s = retrieval_relevance(targets(spec, gallery), y, ranked)
        labels = ["target"]
    else:
        s = _score_matrix(cols, order, labels if spec.target.type != "regression" else ["target"],
                          Path(predictions))
    return evaluate(spec.metrics, y, s, units, labels=labels, thresholds=thresholds, n_boot=n_boot, seed=seed)

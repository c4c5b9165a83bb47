"""``xrbench score``: score predictions made elsewhere with the suite's own metric code."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from xrbench.commands.run import _data_override
from xrbench.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser("score", help="score a predictions file (CSV/JSONL keyed by sample id)")
    p.add_argument("--task", required=True, help="the one task the predictions are for")
    p.add_argument("--predictions", required=True, type=Path, metavar="FILE",
                   help="a version-2 .predictions.jsonl written by xrbench run, or a CSV / JSONL made "
                        "elsewhere: id + score:<label> columns, or rank:1..k (docs/results.md)")
    p.add_argument("--include", action="append", default=[], metavar="DIR",
                   help="extra folder of task YAMLs, as for xrbench run")
    p.add_argument("--data-root", type=Path, help="folder holding the datasets, as for xrbench run "
                   "(the truth comes from the dataset); without it the synthetic demo is used")
    p.add_argument("--data", action="append", type=_data_override, default=[], metavar="DATASET=PATH",
                   help="root of one dataset (repeatable), as for xrbench run")
    p.add_argument("--limit", type=int, default=None, help="as given to xrbench run, if it was")
    p.add_argument("--result", type=Path, help="a result JSON whose val-chosen thresholds to use")
    p.add_argument("--threshold", action="append", default=[], metavar="METRIC=VALUE",
                   help="decision threshold of a binary hard-decision metric (default 0.5)")
    p.add_argument("--seed", type=int, default=None,
                   help="bootstrap seed (default: the run's, from a saved predictions file; else 0)")
    p.add_argument("--bootstrap", type=int, default=None,
                   help="bootstrap replicates (default: the run's, from a saved predictions file; else 1000)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xrbench.results.score import score_file
    from xrbench.tasks.catalog import TaskCatalog

    specs = TaskCatalog(args.include).resolve(args.task)
    if len(specs) != 1:
        raise ConfigError("--task must name exactly one task")
    from xrbench.commands.preflight import check_roots

    check_roots(specs, args.data_root, dict(args.data))  # as for run: unknown names, missing folders
    thresholds = {}
    if args.result:
        from xrbench.results.merge import read_record

        rec = read_record(args.result, required=True)
        if rec.task != specs[0].name:
            raise ConfigError(f"{args.result}: --result is a record of task '{rec.task}', not '{specs[0].name}'")
        thresholds.update((rec.hparams or {}).get("thresholds", {}))
    for item in args.threshold:
        name, _, value = item.partition("=")
        try:
            thresholds[name] = float(value)
        except ValueError:
            raise ConfigError(f"--threshold expects METRIC=NUMBER, got {item!r}") from None
    values = score_file(specs[0], args.predictions, data_root=args.data_root, data_roots=dict(args.data),
                        limit=args.limit,
                        thresholds=thresholds, n_boot=args.bootstrap, seed=args.seed)
    if args.json:
        def finite(x):  # strict JSON has no NaN: an undefined metric is null
            return None if x is None or not math.isfinite(x) else x

        print(json.dumps({k: {"value": finite(v), "ci_low": finite(lo), "ci_high": finite(hi)}
                          for k, (v, lo, hi) in values.items()}, indent=2))
    else:
        for k, (v, lo, hi) in values.items():
            ci = "" if lo is None else f"  [{lo:.4f}, {hi:.4f}]"
            print(f"{k:28s} {v:.4f}{ci}")
    return 0

"""``xrbench leaderboard``: merge result records and leaderboard CSVs into CSV / Markdown / HTML."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("leaderboard", help="merge results of several runs into one leaderboard",
                       description="Merge result records (JSON files, folders searched recursively) and "
                                   "leaderboard CSVs into one table. Refuses (exit 2) to mix results of a "
                                   "task whose version, dataset hash, config hash or data kind differ.")
    p.add_argument("results", nargs="+", type=Path, metavar="RESULTS",
                   help="result folder, record .json or leaderboard .csv (repeatable)")
    p.add_argument("-o", "--output", action="append", type=Path, required=True, metavar="FILE",
                   help="output file; its suffix picks the format: .csv, .md, .html (repeatable)")
    p.add_argument("--leaked", choices=("mark", "refuse"), default="mark",
                   help="rows whose test split overlaps the encoder's pretraining manifest: mark them "
                        "(default) or leave them out")
    p.add_argument("--title", default="xrbench leaderboard", help="title of the Markdown/HTML page")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xrbench.results import export
    from xrbench.results.merge import load

    for out in args.output:
        export.check_suffix(out)  # before any reading: a typo costs nothing
    from xrbench.results.board import filter_leaked

    entries = load(args.results)
    rows, left_out = filter_leaked([e.row for e in entries], args.leaked)
    kept = {id(r) for r in rows}
    records = [rec for e in entries if id(e.row) in kept for rec in e.records]
    for r in left_out:
        print(f"left out (leaked): {r['model']} ({r['weights']}) on {r['task']}")
    for out in args.output:
        export.write(rows, out, args.title, records)
        print(f"wrote {out}")
    tasks = {r["task"] for r in rows}
    models = {(r["model"], r["weights"]) for r in rows}
    print(f"{len(rows)} rows: {len(models)} model(s) x {len(tasks)} task(s), from "
          f"{sum(len(e.sources) for e in entries)} source(s)")
    return 0

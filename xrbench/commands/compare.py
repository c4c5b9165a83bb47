"""``xrbench compare``: a CI gate. Exit 0 when no task got worse, 1 on a regression, 2 on bad input."""
from __future__ import annotations

import argparse
from pathlib import Path


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"--alpha must lie in (0, 1), got {text!r}")
    return v


def _tolerance(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"--tolerance must be >= 0, got {text!r}")
    return v


def register(sub) -> None:
    p = sub.add_parser("compare", help="compare NEW results with a BASELINE; exit 1 on a regression",
                       description="For every task in both NEW and BASELINE: the difference of the primary "
                                   "metric with a paired bootstrap CI from the saved per-sample predictions "
                                   "(unpaired from the two CIs when predictions are absent), and a verdict. "
                                   "Exit 0: nothing worse; 1: a task regressed beyond --tolerance; 2: bad input.")
    p.add_argument("new", type=Path, metavar="NEW", help="result folder, record .json or leaderboard .csv")
    p.add_argument("baseline", type=Path, metavar="BASELINE", help="result folder, record .json or leaderboard .csv")
    p.add_argument("--tolerance", type=_tolerance, default=0.0, metavar="X",
                   help="allowed drop in metric units (default 0): worse = the CI of the change lies "
                        "entirely beyond -X")
    p.add_argument("--alpha", type=_fraction, default=0.05, metavar="A",
                   help="CI level 1-A for the difference (default 0.05: 95%%)")
    p.add_argument("--tasks", nargs="+", default=None, metavar="TASK",
                   help="only these tasks (names, space- or comma-separated)")
    p.add_argument("--markdown", type=Path, metavar="FILE", help="also write a Markdown summary here")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="paired bootstrap resamples")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xrbench.results import compare_report
    from xrbench.results.compare import compare
    from xrbench.atomic import atomic_write_text

    tasks = [t.strip() for part in args.tasks or [] for t in part.split(",") if t.strip()] or None
    report = compare([args.new], [args.baseline], tolerance=args.tolerance, alpha=args.alpha,
                     tasks=tasks, n_boot=args.bootstrap)
    print(compare_report.text(report))
    if args.markdown:
        atomic_write_text(args.markdown, compare_report.markdown(report))
    return report.exit_code

"""``xrbench list``: registered models, tasks, suites, datasets."""
from __future__ import annotations

import argparse


def register(sub) -> None:
    ls = sub.add_parser("list", help="list registered models, tasks, suites or datasets")
    ls.add_argument("what", choices=["models", "tasks", "suites", "datasets"])
    ls.add_argument("--include", action="append", default=[], metavar="DIR")
    ls.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # each listing imports only what it shows: tasks and suites need neither torch nor the loaders
    if args.what == "models":
        import xrbench.models  # noqa: F401
        from xrbench.registry import MODELS

        for name, f in MODELS.items():
            print(f"{name:32s} {(f.__doc__ or '').strip().splitlines()[0]}")
        print(f"{'timm:<architecture>':32s} any timm architecture, weights from --weights")
    elif args.what == "datasets":
        import xrbench.data.datasets  # noqa: F401
        from xrbench.registry import DATASETS

        for name, cls in DATASETS.items():
            print(f"{name:16s} {cls.anatomy:14s} {cls.title}")
    else:
        from xrbench.tasks.catalog import TaskCatalog

        cat = TaskCatalog(args.include)
        if args.what == "tasks":
            for name, spec in cat.tasks.items():
                print(f"{name:26s} {spec.dataset:14s} {spec.family:12s} {spec.primary.metric}")
        else:
            for name, tasks in sorted(cat.suites.items()):
                print(f"{name:12s} {len(tasks)} tasks: {', '.join(tasks)}")
    return 0



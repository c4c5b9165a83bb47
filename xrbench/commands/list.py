"""``xrbench list``: registered models, tasks, suites, datasets (models without importing torch)."""
from __future__ import annotations

import argparse


def register(sub) -> None:
    ls = sub.add_parser("list", help="list registered models, tasks, suites or datasets")
    ls.add_argument("what", choices=["models", "tasks", "suites", "datasets"])
    ls.add_argument("--include", action="append", default=[], metavar="DIR")
    ls.set_defaults(func=run)


def _models() -> None:
    """One row per registry entry, from its static card: nothing is built, torch is not imported."""
    import xrbench.models  # noqa: F401  (registers the zoo)
    from xrbench.registry import MODELS

    rows = [("model", "modalities", "dim", "input", "grid", "weights", "about")]
    for name, f in MODELS.items():
        c = getattr(f, "card", None)
        if c is None:  # registered by other code without a card
            rows.append((name, "?", "?", "?", "?", "?", ((f.__doc__ or "").strip().splitlines() or [""])[0]))
            continue
        shown = f"{name}<{'ARCH' if name == 'timm:' else 'SPEC' if name == 'module:' else 'PATH'}>" \
            if name.endswith(":") else name
        extra = f" [pip install 'xrbench[{c.extra_requires}]']" if c.extra_requires else ""
        rows.append((shown, "+".join(c.modalities), c.embed_dim or "-", c.input_size or "-",
                     f"{c.grid}x{c.grid}" if c.grid else "-", c.weights_status(), c.summary + extra))
    widths = [max(len(str(r[i])) for r in rows) for i in range(6)]
    for r in rows:
        print("  ".join(f"{str(v):{w}s}" for v, w in zip(r[:6], widths)) + "  " + str(r[6]))


def run(args: argparse.Namespace) -> int:
    # each listing imports only what it shows: tasks and suites need neither torch nor the loaders
    if args.what == "models":
        _models()
    elif args.what == "datasets":
        import xrbench.data.datasets  # noqa: F401
        from xrbench.registry import DATASETS

        rows = [(name, cls.anatomy, cls.title) for name, cls in DATASETS.items()]
        widths = [max(len(r[i]) for r in rows) for i in range(2)]
        for name, anatomy, title in rows:
            print(f"{name:{widths[0]}s}  {anatomy:{widths[1]}s}  {title}")
    else:
        from xrbench.tasks.catalog import TaskCatalog

        cat = TaskCatalog(args.include)
        if args.what == "tasks":
            rows = [(name, spec.dataset, spec.family, spec.primary.metric) for name, spec in cat.tasks.items()]
            widths = [max(len(r[i]) for r in rows) for i in range(3)] if rows else [0, 0, 0]
            for r in rows:  # columns as wide as their longest entry (report-generation, user tasks)
                print("  ".join(f"{v:{w}s}" for v, w in zip(r[:3], widths)) + "  " + r[3])
        else:
            for name, tasks in sorted(cat.suites.items()):
                print(f"{name:12s} {len(tasks)} tasks: {', '.join(tasks)}")
    return 0

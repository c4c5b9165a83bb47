"""The committed demo leaderboards (``make leaderboards``): every registered encoder that runs
offline, on ``--task all`` over the synthetic demo data -> ``leaderboards/demo.{csv,md,html}``.

The records and per-sample predictions are kept in ``leaderboards/demo/<model>/<task>/`` so any new
run can be compared with them, paired (``xrbench compare results/xr0 leaderboards/demo/xr0``).
Encoders that cannot be built offline (no package, no weights folder) are skipped with a note;
registered names that build the same network with the same random-init (the XR-0 family without
weights) would repeat the same numbers, so they collapse to the shortest name (``xr0``).

    python -m xrbench.results.publish [--task all] [--models a,b] [--limit N] [--out leaderboards]
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from xrbench.errors import ConfigError, XRBenchError
from xrbench.models.base import Encoder
from xrbench.registry import UnknownNameError


def offline_encoders(names: list[str] | None = None) -> list[Encoder]:
    """The encoders of ``names`` (default: every registered model), those that build offline."""
    from xrbench.models import create_encoder
    from xrbench.registry import MODELS

    chosen = names or sorted(MODELS.names(), key=lambda n: (len(n), n))
    out: list[Encoder] = []
    seen: set[tuple] = set()
    for name in chosen:
        try:
            enc = create_encoder(name)
        except (XRBenchError, ImportError, OSError) as e:
            if names:  # asked for by name: an error, not a skip
                raise
            print(f"[publish] skipping '{name}': cannot be built offline ({e})", file=sys.stderr)
            continue
        m = enc.meta
        signature = (m.architecture, m.weights, m.weights_sha256, m.extra.get("init_seed"))
        if signature in seen:
            print(f"[publish] skipping '{name}': same network and weights as an earlier model", file=sys.stderr)
            continue
        seen.add(signature)
        out.append(enc)
    return out


def _default_screenshot() -> str:
    return "docs/leaderboard.png" if Path("docs").is_dir() else ""


def parse(argv: list[str] | None) -> argparse.Namespace:
    from xrbench.commands.run import _ints

    p = argparse.ArgumentParser(prog="python -m xrbench.results.publish", description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="all", help="task, suite or comma-separated list (default: all)")
    p.add_argument("--include", action="append", default=[], metavar="DIR", help="extra task folder")
    p.add_argument("--models", default=None, help="comma-separated models (default: every offline encoder)")
    p.add_argument("--limit", type=int, default=None, help="at most N images per split (quick checks only)")
    p.add_argument("--out", type=Path, default=Path("leaderboards"), help="output folder")
    p.add_argument("--name", default="demo", help="file stem: <out>/<name>.csv/.md/.html and <out>/<name>/")
    p.add_argument("--seeds", type=_ints, default=(0,), help="e.g. 0,1,2 (default 0)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates for CIs")
    p.add_argument("--device", default=None, help="cpu, cuda (default: cuda if available)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--screenshot", default=_default_screenshot(),
                   help="PNG of the HTML page via headless Chromium (default docs/leaderboard.png when "
                        "docs/ exists; '' to skip)")
    p.add_argument("--title", default="xrbench demo leaderboard (synthetic data)")
    return p.parse_args(argv)


def publish(args: argparse.Namespace) -> list[Path]:
    """Run, merge, write; returns the files written."""
    from xrbench.commands.run import default_device
    from xrbench.results import export
    from xrbench.results.merge import load
    from xrbench.runner import RunConfig, Runner
    from xrbench.tasks.catalog import TaskCatalog

    specs = TaskCatalog(args.include).resolve(args.task)
    encoders = offline_encoders([m.strip() for m in args.models.split(",") if m.strip()] if args.models else None)
    if not encoders:
        raise ConfigError("no encoder can be built offline; nothing to publish")
    records = args.out / args.name
    staging = args.out / f".{args.name}.tmp"  # a failed run never leaves a half-replaced folder
    shutil.rmtree(staging, ignore_errors=True)
    device = args.device or default_device()
    for enc in encoders:
        print(f"[publish] {enc.meta.name} ({enc.meta.weights}) x {len(specs)} task(s)", file=sys.stderr)
        cfg = RunConfig(output=staging, device=device, batch_size=args.batch_size, seeds=tuple(args.seeds),
                        limit=args.limit, n_boot=args.bootstrap)
        Runner(enc, cfg).run(specs)
    (staging / "leaderboard.csv").unlink(missing_ok=True)  # the run's own CSV; the merged one is published
    shutil.rmtree(records, ignore_errors=True)
    staging.rename(records)
    entries = load([records])
    rows, recs = [e.row for e in entries], [r for e in entries for r in e.records]
    written = []
    for suffix in (".csv", ".md", ".html"):
        path = args.out / f"{args.name}{suffix}"
        export.write(rows, path, args.title, recs)
        written.append(path)
    if args.screenshot:
        from xrbench.results.browser import find_chromium, screenshot

        if find_chromium() is None:
            print("[publish] no Chromium: screenshot skipped", file=sys.stderr)
        else:
            written.append(screenshot(args.out / f"{args.name}.html", Path(args.screenshot)))
    return written


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        written = publish(args)
    except (ConfigError, UnknownNameError) as e:
        print(f"publish: error: {e}", file=sys.stderr)
        return 2
    except XRBenchError as e:
        print(f"publish: error: {e}", file=sys.stderr)
        return 1
    for p in written:
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``xrbench cache list|prune|verify``: what the caches under $XRBENCH_HOME hold, and cleaning them.

The caches are content-addressed stores (features, decoded pixels, text embeddings); deleting an
entry only costs its recomputation. ``verify`` checksums every entry and names the bad ones.
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

CACHES = ("features", "pixels", "text")


def register(sub) -> None:
    c = sub.add_parser("cache", help="report, verify and prune the feature / pixel / text caches")
    c.add_argument("action", choices=["list", "prune", "verify"],
                   help="list: entries and sizes; verify: checksum every entry, exit 1 naming bad ones; "
                        "prune: remove entries older than --older-than DAYS")
    c.add_argument("--older-than", type=float, metavar="DAYS",
                   help="prune: remove entries not written for DAYS days (required for prune)")
    c.add_argument("--home", type=Path, help="cache home (default $XRBENCH_HOME)")
    c.set_defaults(func=run)


def _entries(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []


def _bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _what(entry: Path) -> str:
    """`` (dataset/split/kind, encoder)`` from an entry's meta.json, when it can be read."""
    import json

    try:
        m = json.loads((entry / "meta.json").read_text())
    except (OSError, ValueError):
        return ""
    parts = [m.get(k) for k in ("dataset", "split", "kind") if m.get(k)]
    enc = (m.get("encoder") or {}).get("name")
    size = m.get("size")
    return f" ({'/'.join(parts)}{', ' + enc if enc else ''}{f', {size} px' if size else ''})" if parts or size else ""


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""  # pragma: no cover


def run(args: argparse.Namespace) -> int:
    from xrbench.data.demo import xrbench_home
    from xrbench.errors import ConfigError

    home = args.home or xrbench_home()
    if args.action == "prune" and args.older_than is None:
        raise ConfigError("xrbench cache prune needs --older-than DAYS")
    if args.action == "list":
        print(f"{'cache':10s} {'entries':>8s} {'size':>10s}  folder")
        for name in CACHES:
            root = home / name
            ents = _entries(root)
            side = [p for p in root.iterdir() if p.name.startswith(".")] if root.is_dir() else []
            print(f"{name:10s} {len(ents):8d} {_human(sum(map(_bytes, ents))):>10s}  {root}"
                  + (f"  (+{_human(sum(map(_bytes, side)))} partial/quarantined)" if side else ""))
        return 0
    if args.action == "prune":
        cutoff = time.time() - args.older_than * 86400
        freed, removed = 0, 0
        for name in CACHES:
            for p in _entries(home / name) + [q for q in ((home / name / ".quarantine").glob("*"))]:
                if max((f.stat().st_mtime for f in p.rglob("*")), default=p.stat().st_mtime) < cutoff:
                    freed += _bytes(p)
                    shutil.rmtree(p, ignore_errors=True)
                    removed += 1
        print(f"removed {removed} entries older than {args.older_than:g} days, freed {_human(freed)}")
        return 0
    from xrbench.features.store import FeatureStore

    bad = 0
    for name in ("features", "pixels"):
        store = FeatureStore(home / name)
        for key in store.keys():
            why = store.verify(key)
            if why:
                bad += 1
                print(f"BAD {name}/{key}{_what(store.path(key))}: {why}")
        print(f"{name}: {len(store.keys())} entries checked")
    print("all entries sound" if not bad else f"{bad} bad entries (they are rebuilt when next needed; "
          f"remove them with rm -r or let the next run quarantine them)")
    return 1 if bad else 0

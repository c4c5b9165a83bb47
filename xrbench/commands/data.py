"""``xrbench data check`` and ``xrbench data preview``: validate a dataset folder, look at its ground truth.

Without ``--root`` both work on the synthetic demo data. Exit status of ``check``: 0 when the
dataset is sound, 2 when anything is wrong (the report says what): bad input, as everywhere.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from xrbench.errors import ConfigError


def _option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with the value read as YAML (``split=official-fractured``, ``views=[PA]``)."""
    import yaml

    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as e:
        raise argparse.ArgumentTypeError(f"option {key.strip()!r}: cannot read {value!r} ({e})") from None


def register(sub) -> None:
    data = sub.add_parser("data", help="check a dataset folder, or preview its images with their ground truth")
    dsub = data.add_subparsers(dest="data_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", type=Path, help="the dataset folder (or a folder holding <dataset>/); "
                        "default: the synthetic demo data")
    common.add_argument("--option", action="append", type=_option, default=[], metavar="KEY=VALUE",
                        help="a dataset option (see docs/datasets.md), repeatable")
    check = dsub.add_parser("check", parents=[common], help="validate a dataset's layout, images, masks and splits")
    check.add_argument("--dataset", required=True, help="registered dataset name (xrbench list datasets)")
    check.add_argument("--json", action="store_true", help="print one JSON object (docs/datasets.md)")
    check.add_argument("--deep", action="store_true", help="decode every image and mask, not only headers")
    check.add_argument("--workers", type=int, default=4, help="threads reading files (default 4)")
    check.add_argument("--allow-symlinks", action="store_true",
                       help="accept images reached through symlinks that leave the dataset root "
                       "(symlinked storage); by default they are errors")
    preview = dsub.add_parser("preview", parents=[common], help="a PNG contact sheet with the ground truth drawn")
    preview.add_argument("--dataset", help="registered dataset name")
    preview.add_argument("--all", action="store_true", help="one tile per demo dataset (the docs' picture)")
    preview.add_argument("-o", "--output", type=Path, help="PNG to write (default <dataset>-preview.png, "
                         "phantoms.png with --all)")
    preview.add_argument("--n", type=int, default=6, help="images on the sheet (default 6)")
    data.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return _check(args) if args.data_command == "check" else _preview(args)


def _check(args: argparse.Namespace) -> int:
    from xrbench.data.check import check_dataset, format_report

    report = check_dataset(args.dataset, args.root, deep=args.deep, options=dict(args.option),
                           workers=args.workers, allow_symlinks=args.allow_symlinks)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0 if report["ok"] else 2  # bad input, as everywhere (xrbench/cli.py)


def _preview(args: argparse.Namespace) -> int:
    from xrbench.data.preview import preview_all, preview_dataset, save_png

    if args.all == bool(args.dataset):
        raise ConfigError("give either --dataset NAME or --all")
    if args.n < 1:
        raise ConfigError(f"--n must be at least 1, got {args.n}")
    if args.all:
        if args.root is not None or args.option:
            raise ConfigError("--all previews the demo data; it takes no --root or --option")
        image, failed = preview_all()
        out = args.output or Path("phantoms.png")
    else:
        image, failed = preview_dataset(args.dataset, args.root, n=args.n, options=dict(args.option)), []
        out = args.output or Path(f"{args.dataset}-preview.png")
    save_png(image, out)
    for line in failed:
        print(f"[xrbench] not in the preview: {line}", file=sys.stderr)
    print(f"wrote {out} ({image.width}x{image.height})")
    return 1 if failed else 0

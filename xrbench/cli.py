"""The ``xrbench`` command line. Each sub-command lives in :mod:`xrbench.commands`.

Exit status: 0 success, 1 failure (bad data, bad weights, a regression), 2 usage errors
(unknown names, invalid configuration).
"""
from __future__ import annotations

import argparse
import logging
import sys
import warnings

from xrbench.errors import ConfigError, XRBenchError
from xrbench.registry import UnknownNameError

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    from xrbench import commands

    p = argparse.ArgumentParser(prog="xrbench", description="Evaluate frozen X-ray encoders.")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)
    for module in commands.MODULES:
        module.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    warnings.formatwarning = lambda msg, cat, *a, **k: f"[xrbench] warning: {msg}\n"
    try:
        return int(args.func(args) or 0)
    except (UnknownNameError, ConfigError) as e:
        print(f"xrbench: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except XRBenchError as e:
        print(f"xrbench: error: {e}", file=sys.stderr)
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())

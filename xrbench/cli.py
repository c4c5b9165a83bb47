"""The ``xrbench`` command line. Each sub-command lives in :mod:`xrbench.commands`.

Exit status (docs/reliability.md): 0 success; 1 the machine failed (a file that cannot be read or
written), a regression, a bad cache entry, or a bug; 2 bad input the user can fix (usage, unknown
names, options, task and dataset files, weights, a failed ``data check``); 130 interrupted. A failure is one line on stderr naming the file, row, field or
option at fault; ``--debug`` adds the traceback.
"""
from __future__ import annotations

import argparse
import logging
import sys
import traceback
import warnings

from xrbench.errors import XRBenchError
from xrbench.registry import UnknownNameError

#: 2 for any bad input (options, task files, dataset files, checkpoints): the user can fix it; 1 when the
#: machine failed (a real OSError) or xrbench has a bug; 130 when interrupted
EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    from xrbench import commands

    p = argparse.ArgumentParser(prog="xrbench", description="Evaluate frozen X-ray encoders.")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--debug", action="store_true",
                   help="on an error, show the traceback too (also accepted after the command)")
    sub = p.add_subparsers(dest="command", required=True)
    for module in commands.MODULES:
        module.register(sub)
    return p


def one_line(e: BaseException) -> str:
    """The message of ``e`` on one line (some libraries' messages span several)."""
    if isinstance(e, OSError) and e.filename is not None:
        text = f"{e.filename}: {e.strerror or e}"
        if e.filename2 is not None:
            text = f"{e.filename} -> {e.filename2}: {e.strerror or e}"
    else:
        text = str(e)
    return " ".join(text.split()) or type(e).__name__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # `--debug` may also come after the command (`xrbench data check ... --debug`)
        unknown = [a for a in extra if a != "--debug"]
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.debug = True
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    warnings.formatwarning = lambda msg, cat, *a, **k: f"[xrbench] warning: {msg}\n"
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `xrbench score ... | head`: the reader left, nothing is wrong
        sys.stdout = None  # no flush of the dead pipe at exit
        return EXIT_OK
    except (Exception, KeyboardInterrupt) as e:
        code, text = classify(e)
        if args.debug:
            traceback.print_exception(e)
        print(f"xrbench: error: {text}", file=sys.stderr)
        return code


def classify(e: BaseException) -> tuple[int, str]:
    """(exit status, one-line message) of an exception that ends a command."""
    if isinstance(e, (UnknownNameError, XRBenchError)):  # usage, configuration, data and model errors
        return EXIT_BAD_INPUT, one_line(e)
    if isinstance(e, OSError):  # permission denied, disk full, a folder vanished: the path says which
        return EXIT_FAIL, one_line(e)
    if isinstance(e, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    # a bug: still one line; the traceback with --debug
    return EXIT_FAIL, f"internal error ({type(e).__name__}: {one_line(e)}); rerun with --debug for the " \
                      f"traceback and please report it"


if __name__ == "__main__":
    sys.exit(main())

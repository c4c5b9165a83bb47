"""What ``xrbench run`` checks before any work: options, device, output folder, tasks, dataset roots.

Every check is cheap and leaves nothing behind (no extraction, no demo data, no folders), and
raises the error the CLI turns into one line and an exit code (docs/reliability.md), so a typo
costs a second instead of an extraction.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from xrbench.errors import ConfigError, ModelError

#: the bootstrap needs enough replicates for a percentile interval; the task schema allows the same
BOOTSTRAP_MIN, BOOTSTRAP_MAX = 100, 100_000
SEED_MAX = 2**32 - 1


@dataclass(frozen=True)
class Plan:
    """The checked run: what the options resolved to."""

    seeds: tuple[int, ...]
    device: str
    leaderboard: Path
    #: datasets read from the user's folders (the others come from the synthetic demo)
    real: tuple[str, ...]


def check_options(args: argparse.Namespace) -> tuple[int, ...]:
    """Ranges of the numeric options; returns the seeds to run."""
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1 (images per split), got {args.limit}")
    if args.batch_size < 0:
        raise ConfigError(f"--batch-size must be at least 1, or 0 for automatic (256 on CUDA, halved on "
                          f"out-of-memory; 32 on CPU), got {args.batch_size}")
    if args.workers < 0:
        raise ConfigError(f"--workers must be 0 (read in the main process) or more, got {args.workers}")
    if args.bootstrap != 0 and not BOOTSTRAP_MIN <= args.bootstrap <= BOOTSTRAP_MAX:
        raise ConfigError(f"--bootstrap must be 0 (no confidence intervals) or between {BOOTSTRAP_MIN} "
                          f"and {BOOTSTRAP_MAX}, got {args.bootstrap}")
    if args.seeds and args.seed is not None:
        raise ConfigError("give either --seed or --seeds, not both")
    seeds = args.seeds or ((args.seed,) if args.seed is not None else (0,))
    option = "--seeds" if args.seeds else "--seed"
    for s in seeds:
        if not 0 <= s <= SEED_MAX:
            raise ConfigError(f"{option}: seeds lie between 0 and {SEED_MAX}, got {s}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{option}: seed given twice in {','.join(map(str, seeds))}")
    fractions = [float(f) for f in args.label_fraction]
    if len(set(fractions)) != len(fractions):
        raise ConfigError(f"--label-fraction: fraction given twice in {','.join(f'{f:g}' for f in fractions)}")
    return tuple(seeds)


def check_device(text: str | None) -> str:
    """The device to run on: ``text`` if this machine has it, the default when None."""
    import torch

    n_cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if text is None:
        return "cuda" if n_cuda else "cpu"
    available = ", ".join(["cpu"] + [f"cuda:{i}" for i in range(n_cuda)])
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {text!r}: not a device name; expected cpu, cuda or cuda:N "
                          f"(available here: {available})") from None
    if dev.type == "cpu":
        return text
    if dev.type == "cuda":
        if n_cuda == 0:
            raise ConfigError(f"--device {text}: CUDA is not available on this machine (torch "
                              f"{torch.__version__}, CUDA build {torch.version.cuda}); available: {available}")
        if dev.index is not None and dev.index >= n_cuda:
            raise ConfigError(f"--device {text}: no such device; available: {available}")
        return text
    if dev.type == "mps" and torch.backends.mps.is_available():
        return text
    raise ConfigError(f"--device {text}: not available on this machine; available: {available}")


def check_writable(folder: Path, what: str) -> None:
    """``folder`` is (or can become) a folder this process can write in.

    Tested by creating and removing a file in its nearest existing ancestor: permission bits do
    not tell (root ignores them; read-only mounts, ACLs and quotas do not show in them).
    """
    folder = Path(folder).expanduser()
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        detail = "is a file" if probe == folder else f"cannot be created: {probe} is a file"
        raise ConfigError(f"{what} {folder}: {detail}; expected a folder")
    try:
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".xrbench-write-check-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        where = "" if probe == folder else f" (in {probe})"
        raise ConfigError(f"{what} {folder}: cannot write here{where}: {e.strerror}") from None


def check_tasks(specs: list) -> None:
    """Each task's protocol (and its arguments) and dataset (and its options) exist.

    Metric names were checked when the tasks were selected (``TaskCatalog.resolve``).
    """
    import xrbench.data.datasets  # noqa: F401  (registers loaders)
    from xrbench.families import create_family
    from xrbench.registry import DATASETS, UnknownNameError

    for spec in specs:
        where = spec.source or spec.name
        try:
            create_family(spec).check()  # its head and the head's arguments
        except (ConfigError, UnknownNameError) as e:
            raise ConfigError(f"{where}: {e}") from None
        try:
            loader = DATASETS.get(spec.dataset)
        except UnknownNameError as e:
            raise ConfigError(f"{where}: key 'dataset': {e}") from None
        try:
            loader.check_options(spec.dataset_options)  # reads nothing
        except ConfigError as e:
            raise ConfigError(f"{where}: key 'dataset_options': {e}") from None


def check_roots(specs: list, data_root: Path | None, data_roots: dict[str, Path]) -> tuple[str, ...]:
    """Every user-given dataset folder exists; returns the datasets read from them."""
    import xrbench.data.datasets  # noqa: F401  (registers loaders)
    from xrbench.registry import DATASETS

    for name, root in data_roots.items():
        DATASETS.get(name)  # unknown dataset in --data: did-you-mean, exit 2
        if not Path(root).is_dir():
            raise ConfigError(f"--data {name}={root}: no such folder")
    if data_root is not None and not Path(data_root).expanduser().is_dir():
        raise ConfigError(f"--data-root {data_root}: no such folder")
    used = dict.fromkeys(s.dataset for s in specs)
    for name in data_roots:
        if name not in used:  # a typo'd --task, or a --data meant for another run: say so, do not stop
            print(f"[xrbench] warning: --data {name}=... is not used: no selected task reads '{name}' "
                  f"(they read {', '.join(used)})", file=sys.stderr)
    return tuple(d for d in used if d in data_roots or data_root is not None)


def check_run(args: argparse.Namespace, specs: list, seeds: tuple[int, ...]) -> Plan:
    """The checks of ``xrbench run`` that need no encoder, after :func:`check_options` and the
    selection of ``specs`` (which checks their metrics)."""
    from xrbench.data.demo import xrbench_home
    from xrbench.results import leaderboard

    check_tasks(specs)
    real = check_roots(specs, args.data_root, dict(args.data))
    device = check_device(args.device)
    check_writable(args.output, "--output")
    check_writable(xrbench_home(), "XRBENCH_HOME (feature cache and demo data)")
    board, why = leaderboard.destination(Path(args.output) / "leaderboard.csv")
    if why:
        print(f"[xrbench] {why}: it is left untouched and this run's rows go to {board}", file=sys.stderr)
    return Plan(seeds=seeds, device=device, leaderboard=board, real=real)


def check_encoder(meta, real: tuple[str, ...]) -> None:
    """A random-init encoder runs only on the synthetic demo."""
    if meta.is_random and real:
        env = "" if ":" in meta.name else f" or set XRBENCH_{meta.name.upper()}_WEIGHTS"
        raise ModelError(f"model '{meta.name}' has no weights (random-init) and would run on real data "
                         f"({', '.join(real)}); random-init runs only on the synthetic demo. Pass "
                         f"--weights PATH{env}.")

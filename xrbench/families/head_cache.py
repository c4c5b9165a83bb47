"""A cache of head outputs, so that a rerun on cached features does not train the heads again.

Heads are deterministic given their inputs, so an output is keyed by everything it depends on: the
feature-store keys of the three splits (encoder, weights, preprocessing, images), the rows the task
kept, the hash of their ground truth (an edited label refits), the task definition, the seed and
label fraction, the device kind, and the source of the family and protocol code (a changed head
never serves a stale output). The test units' scorer statistics are kept beside the output, keyed
also by the metrics code: a rerun then neither trains nor runs a scorer (METEOR's JVM, MONAI's
HD95), only aggregates and bootstraps, and reproduces the first run's numbers exactly. Entries are
JSON written atomically.
"""
from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

from xrbench.atomic import atomic_write_text
from xrbench.families.base import HeadOutput, TaskFamily


@lru_cache(maxsize=None)
def _source_hash(module_file: str) -> str:
    return hashlib.sha256(Path(module_file).read_bytes()).hexdigest()


def code_hash(family: TaskFamily) -> str:
    """The source of the family's module, its base classes' modules, the protocols, and the metrics
    and text packages: heads select on val metrics, and the report decoder's vocabulary is built
    with the NLG tokenizer, so a change there changes the head (it did: a new tokenizer once reused
    decoders trained on the old one's words)."""
    import xrbench.families.base as base
    import xrbench.metrics as metrics
    import xrbench.protocols as protocols
    import xrbench.text as text

    files = {inspect.getfile(c) for c in type(family).__mro__ if c.__module__.startswith("xrbench.")}
    files |= {base.__file__} | {str(p) for p in Path(protocols.__file__).parent.glob("*.py")}
    files |= {str(p) for pkg in (metrics, text) for p in Path(pkg.__file__).parent.rglob("*.py")}
    return hashlib.sha256("".join(_source_hash(f) for f in sorted(files)).encode()).hexdigest()[:16]


def head_key(family: TaskFamily, *, feature_keys: list[str], kept: list[list[str]], dataset_hash: str,
             seed: int, fraction: float, device: str) -> str:
    payload = {"features": feature_keys, "kept": hashlib.sha256(json.dumps(kept).encode()).hexdigest(),
               "truth": dataset_hash,
               "task": family.spec.config_hash(), "seed": seed, "fraction": fraction,
               "device": device.split(":")[0], "code": code_hash(family)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def stats_key(head: str) -> str:
    """The key of the test units' statistics: the head's key and the metrics' source."""
    import xrbench.metrics as metrics

    files = sorted(str(p) for p in Path(metrics.__file__).parent.rglob("*.py"))
    return hashlib.sha256((head + "".join(_source_hash(f) for f in files)).encode()).hexdigest()[:24]


class HeadCache:
    def __init__(self, root: Path | None):
        self.root = None if root is None else Path(root)

    def get(self, key: str) -> HeadOutput | None:
        if self.root is None:
            return None
        try:
            return HeadOutput(**json.loads((self.root / f"{key}.json").read_text()))
        except (OSError, ValueError, TypeError):  # missing, truncated or from another version: refit
            return None

    def put(self, key: str, out: HeadOutput) -> None:
        if self.root is not None:
            atomic_write_text(self.root / f"{key}.json", json.dumps(asdict(out), allow_nan=True))

    def get_stats(self, key: str) -> list[dict] | None:
        if self.root is None:
            return None
        try:
            stats = json.loads((self.root / f"{key}.stats.json").read_text())
        except (OSError, ValueError):
            return None
        return stats if isinstance(stats, list) else None

    def put_stats(self, key: str, stats: list[dict]) -> None:
        if self.root is not None:
            atomic_write_text(self.root / f"{key}.stats.json", json.dumps(stats, allow_nan=True))

"""The embedded default data: each dataset's phantom, written once into ``XRBENCH_HOME``.

Numbers computed on it are real numbers on synthetic data, and every result says so
(``data = synthetic-demo``).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from xrbench.atomic import publish_dir
from xrbench.registry import DATASETS

#: bump when any phantom or writer changes, so stale demo folders are not reused
PHANTOM_VERSION = 3


def xrbench_home() -> Path:
    return Path(os.environ.get("XRBENCH_HOME", Path.home() / ".cache" / "xrbench")).expanduser()


def demo_scale() -> float:
    """``XRBENCH_DEMO_SCALE`` multiplies every dataset's demo size (tests use small scales)."""
    return float(os.environ.get("XRBENCH_DEMO_SCALE", "1"))


def demo_size(dataset: str) -> int:
    """Images the demo of ``dataset`` holds at the current ``XRBENCH_DEMO_SCALE``."""
    return max(24, int(round(DATASETS.get(dataset).demo_size * demo_scale())))


def demo_root(dataset: str, *, seed: int = 0, quiet: bool = False) -> Path:
    """The demo folder of ``dataset``, generated on first use (atomically: tmp dir + rename)."""
    loader = DATASETS.get(dataset)
    n = demo_size(dataset)
    root = xrbench_home() / "demo" / f"{dataset}-v{PHANTOM_VERSION}-n{n}-s{seed}"
    if root.is_dir():
        return root
    if not quiet:
        print(f"[xrbench] generating synthetic demo data for '{dataset}' ({n} images) in {root}",
              file=sys.stderr)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
    try:
        loader.write_demo(tmp, n=n, seed=seed)
        publish_dir(tmp, root)
    except OSError:
        if root.is_dir():  # a concurrent process finished first
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def dataset_root(name: str, root: Path | None) -> Path:
    """Where dataset ``name`` lives: ``root/<name>`` when that folder exists (the ``--data-root DIR``
    convention), else ``root`` itself; the synthetic demo folder when ``root`` is None."""
    if root is None:
        return demo_root(name)
    root = Path(root).expanduser()
    return root / name if (root / name).is_dir() else root

"""The result record: one JSON per (model, task, seed, label fraction), with full provenance."""
from __future__ import annotations

import json
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path


SCHEMA_VERSION = 1


@dataclass
class MetricValue:
    value: float
    ci_low: float | None = None
    ci_high: float | None = None


@dataclass
class ResultRecord:
    task: str
    task_version: int
    family: str
    dataset: str
    model: str
    weights: str
    weights_sha256: str | None
    primary_metric: str
    direction: str
    metrics: dict[str, MetricValue]
    n: dict[str, int]
    seed: int
    label_fraction: float
    hparams: dict
    data: str  # "synthetic-demo" or "real"
    dataset_hash: str
    config_hash: str
    provenance: dict
    timings: dict
    predictions: str | None = None
    schema_version: int = SCHEMA_VERSION
    # added after the first schema; records written before load with these defaults
    #: what makes the number less trustworthy, ``code: detail`` (docs/results.md, "Warnings")
    warnings: list[str] = field(default_factory=list)
    #: primary metric per subgroup: {attribute: {group: {value, ci_low, ci_high, n}}, "max_gap": {...}}
    subgroups: dict = field(default_factory=dict)
    #: reliability diagram of probabilistic outputs: {bins, confidence, frequency, count}
    reliability: dict | None = None
    #: overlap of the encoder's pretraining manifest with the test split (xrbench.results.leak)
    pretraining_overlap: dict = field(default_factory=lambda: {"status": "unknown", "n": None, "ids": []})
    #: training-free reference methods scored on the same units: {name: {metrics: {m: {value,
    #: ci_low, ci_high}}, ...}} (grounding's similarity map); not part of the leaderboard
    baselines: dict = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def primary(self) -> MetricValue:
        return self.metrics[self.primary_metric]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False, default=_jsonable)

    @classmethod
    def from_dict(cls, d: dict) -> "ResultRecord":
        d = dict(d)
        d["metrics"] = {k: MetricValue(**v) for k, v in d["metrics"].items()}
        return cls(**d)

    @classmethod
    def read(cls, path: str | Path) -> "ResultRecord":
        return cls.from_dict(json.loads(Path(path).read_text()))


def _jsonable(o):
    if hasattr(o, "item"):
        return o.item()
    return str(o)


@lru_cache(maxsize=1)
def git_sha() -> str | None:
    """Commit of the xrbench checkout (with ``-dirty`` if it has local changes), if it is one."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        if not sha:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha[:12] + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: str) -> dict:
    import torch

    from xrbench import __version__

    dev_name = device
    if device.startswith("cuda") and torch.cuda.is_available():
        dev_name = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return {"xrbench_version": __version__, "git_sha": git_sha(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "device": dev_name, "python": platform.python_version(),
            "platform": platform.platform(), "hostname": platform.node()}

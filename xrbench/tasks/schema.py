"""The task definition: a YAML file validated strictly (unknown keys and wrong types are errors)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from xrbench.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Target(_Strict):
    """What is predicted. ``labels``: the label columns (multilabel/binary), class names (multiclass,
    box classes) or landmark names; dense types: ``mask`` (segmentation), ``boxes`` (localization),
    ``landmarks``, ``phrase-boxes`` (grounding), ``report`` (generation)."""

    type: Literal["multilabel", "binary", "multiclass", "regression", "retrieval", "mask", "boxes",
                  "landmarks", "phrase-boxes", "report"]
    labels: list[str] = Field(default_factory=list)
    #: CheXpert-style -1 handling: ignore (masked), ones, zeros; blank (not mentioned): negative or ignore
    uncertain: Literal["ignore", "ones", "zeros"] = "ignore"
    blank: Literal["negative", "ignore"] = "negative"
    #: for retrieval: the sample field (meta key) that defines relevance
    relevance: str | None = None


class Protocol(_Strict):
    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class Primary(_Strict):
    metric: str
    direction: Literal["higher", "lower"] = "higher"


class Bootstrap(_Strict):
    n: int = Field(1000, ge=100, le=100000)
    unit: Literal["patient", "group", "sample"] = "patient"


class TaskSpec(_Strict):
    name: str
    version: int = Field(ge=1)
    description: str
    dataset: str
    dataset_options: dict[str, Any] = Field(default_factory=dict)
    family: Literal["linear", "knn", "regression", "retrieval", "segmentation", "localization",
                    "landmarks", "grounding", "report-generation"]
    #: sample filter on ``meta`` values, e.g. {frontal: true}
    where: dict[str, Any] = Field(default_factory=dict)
    features: Literal["global", "patches"] = "global"
    target: Target
    protocol: Protocol
    metrics: list[str]
    primary: Primary
    #: score per group (e.g. MURA study): predictions averaged over a group's images
    aggregate: Literal["none", "group-mean"] = "none"
    bootstrap: Bootstrap = Field(default_factory=Bootstrap)
    source: str | None = Field(default=None, exclude=True)

    @field_validator("metrics")
    @classmethod
    def _nonempty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one metric is required")
        return v

    def config_hash(self) -> str:
        import hashlib
        import json

        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


def load_task_file(path: Path) -> TaskSpec:
    """Parse and validate one task YAML; errors name the file and the offending key."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a task file must be a mapping of keys to values")
    try:
        spec = TaskSpec.model_validate(data)
    except ValidationError as e:
        msgs = []
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            msgs.append(f"key '{loc}': {msg}")
        raise ConfigError(f"{path}: invalid task definition: " + "; ".join(msgs)) from None
    if spec.primary.metric not in spec.metrics:
        raise ConfigError(f"{path}: key 'primary.metric': {spec.primary.metric!r} is not in 'metrics'")
    return spec.model_copy(update={"source": str(path)})

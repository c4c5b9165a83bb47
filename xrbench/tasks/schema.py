"""The task definition: a YAML file validated strictly (unknown keys and wrong types are errors)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from xrbench.errors import ConfigError, validation_messages


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
                    "landmarks", "grounding", "report-generation", "report-retrieval"]
    #: sample filter on ``meta`` values, e.g. {frontal: true}
    where: dict[str, Any] = Field(default_factory=dict)
    #: ``global``, ``patches`` (the grid), or ``blocks:N`` / ``blocks:N:avgpool`` (class tokens of the
    #: last N blocks, plus the mean patch token: DINOv2's linear protocol uses blocks:4:avgpool)
    features: str = Field("global", pattern=r"^(global|patches(:pool[2-9])?|blocks:[1-9][0-9]?(:avgpool)?)$")
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


def read_yaml(path: Path) -> Any:
    """``yaml.safe_load`` of a task or suite file; a syntax error or a Python tag is a one-line error.

    safe_load never constructs Python objects, so ``!!python/object`` cannot run code; the
    message says so instead of PyYAML's multi-line report.
    """
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        if isinstance(e, yaml.constructor.ConstructorError) and "tag:yaml.org,2002:python/" in problem:
            tag = problem.split("tag:yaml.org,2002:", 1)[1].rstrip("'\"")
            raise ConfigError(f"{path}: {where}tag '!!{tag}' is not allowed: task and suite files are "
                              f"plain YAML data, never Python objects") from None
        raise ConfigError(f"{path}: not valid YAML: {where}{problem}") from None


def check_metrics(spec: TaskSpec) -> None:
    """Every metric of ``spec`` is one its family computes; else a did-you-mean error naming the file.

    Run when a task is selected (``TaskCatalog.resolve``), not when it is listed: the families
    import the metric code, which ``xrbench list`` does not need.
    """
    from xrbench.families import create_family

    try:
        create_family(spec).check_metrics()
    except ConfigError as e:
        raise ConfigError(f"{spec.source or spec.name}: key 'metrics': {e}") from None


def load_task_file(path: Path) -> TaskSpec:
    """Parse and validate one task YAML; errors name the file and the offending key."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a task file must be a mapping of keys to values")
    try:
        spec = TaskSpec.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{path}: invalid task definition: " + "; ".join(validation_messages(TaskSpec, e))) \
            from None
    if spec.primary.metric not in spec.metrics:
        raise ConfigError(f"{path}: key 'primary.metric': {spec.primary.metric!r} is not in 'metrics'")
    return spec.model_copy(update={"source": str(path)})

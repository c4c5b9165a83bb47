"""Error types whose messages name the file, row or field at fault and what was expected."""
from __future__ import annotations

from pathlib import Path


class XRBenchError(Exception):
    """Base class: every error xrbench raises on bad input or configuration."""


class DataError(XRBenchError):
    """A dataset file is missing, malformed or inconsistent with its official layout."""

    def __init__(self, message: str, *, path: str | Path | None = None, row: int | None = None,
                 field: str | None = None):
        self.path, self.row, self.field = path, row, field
        where = []
        if path is not None:
            where.append(str(path))
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{': '.join([', '.join(where), message]) if where else message}")


class ConfigError(XRBenchError):
    """A task/suite YAML or a CLI option is invalid."""


class ModelError(XRBenchError):
    """An encoder cannot be built or its weights do not fit its architecture."""


def validation_messages(model: type, error) -> list[str]:
    """One ``key 'a.b': message`` per error of a pydantic ``ValidationError`` of ``model``; an
    unknown key says which known key of its level it most resembles (``colums`` -> ``columns``)."""
    from xrbench.registry import closest

    msgs = []
    for err in error.errors():
        loc = [str(p) for p in err["loc"]]
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            known = _known_keys(model, err["loc"][:-1])
            hint = closest(loc[-1], known) if known else []
            msg = "unknown key" + (f". Did you mean: {', '.join(hint)}?" if hint else
                                   f" (known: {', '.join(known)})" if known else "")
        msgs.append(f"key '{'.'.join(loc) or '(top level)'}': {msg}")
    return msgs


def _known_keys(model: type, loc: tuple) -> list[str]:
    """The field names of the (nested) model that holds location ``loc``."""
    import typing

    def find_model(ann):
        if isinstance(ann, type) and hasattr(ann, "model_fields"):
            return ann
        for a in typing.get_args(ann):
            if (m := find_model(a)) is not None:
                return m
        return None

    cls = model
    for part in loc:
        fields = getattr(cls, "model_fields", None)
        if fields is None or part not in fields:
            continue  # a list index or dict key: the model is that of the items
        cls = find_model(fields[part].annotation)
        if cls is None:
            return []
    return sorted(getattr(cls, "model_fields", {}))

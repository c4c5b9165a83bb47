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

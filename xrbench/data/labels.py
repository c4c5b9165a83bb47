"""CheXpert-style label values (1 / 0 / -1 uncertain / blank), read raw and resolved by a policy.

CheXpert and MIMIC-CXR store four states per observation. Loaders keep them raw in
``Sample.labels`` (1.0, 0.0, ``UNCERTAIN`` = -1.0, NaN = not mentioned); a task resolves them with
:func:`apply_uncertainty`, so that the policy is part of the task's configuration, not the data.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from xrbench.data.sample import UNCERTAIN
from xrbench.data.tables import parse_column, parse_float
from xrbench.errors import ConfigError, DataError

#: policy -> what an uncertain (-1) label becomes (Irvin et al. 2019: U-Ignore, U-Ones, U-Zeros)
UNCERTAINTY_POLICIES: dict[str, float] = {"ignore": math.nan, "ones": 1.0, "zeros": 0.0}
#: blank policy -> what a not-mentioned (NaN) label becomes
BLANK_POLICIES: dict[str, float] = {"negative": 0.0, "ignore": math.nan}

_STATES = (1.0, 0.0, UNCERTAIN)


def apply_uncertainty(labels: dict[str, float], policy: str, blank: str = "negative") -> dict[str, float]:
    """Resolve raw CheXpert-style labels to 1 / 0 / NaN (NaN = masked out of the loss and metrics).

    ``policy`` says what an uncertain (-1) label becomes: ``ignore`` -> NaN, ``ones`` -> 1,
    ``zeros`` -> 0. ``blank`` says what a not-mentioned (NaN) label becomes: ``negative`` -> 0
    (the common reading: the report did not mention it, so it is taken as absent), ``ignore`` -> NaN.
    """
    if policy not in UNCERTAINTY_POLICIES:
        raise ConfigError(f"uncertainty policy {policy!r} not in {list(UNCERTAINTY_POLICIES)}")
    if blank not in BLANK_POLICIES:
        raise ConfigError(f"blank-label policy {blank!r} not in {list(BLANK_POLICIES)}")
    out = {}
    for name, value in labels.items():
        if value != value:
            out[name] = BLANK_POLICIES[blank]
        elif value == UNCERTAIN:
            out[name] = UNCERTAINTY_POLICIES[policy]
        else:
            out[name] = float(value)
    return out


def parse_chexpert_value(value, *, path: Path, row: int, field: str) -> float:
    """One CheXpert-style cell: ``1.0``/``0.0``/``-1.0`` (or ``1``/``0``/``-1``) or blank -> NaN."""
    x = parse_float(value, path=path, row=row, field=field)
    if x == x and x not in _STATES:
        raise DataError(f"{value!r} is not a label value; expected 1.0, 0.0, -1.0 or blank",
                        path=path, row=row, field=field)
    return x


def parse_chexpert_column(values: pd.Series, *, path: Path, field: str, first_row: int = 2) -> np.ndarray:
    """A whole CheXpert-style column as float64, with exactly the verdicts (and errors, naming the
    first bad row) of :func:`parse_chexpert_value`, parsing each distinct value once."""
    def one(value, row: int) -> float:
        return parse_chexpert_value(value, path=path, row=row, field=field)

    return parse_column(values, one, first_row=first_row).astype(np.float64)

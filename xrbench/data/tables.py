"""Reading the metadata files of official dataset layouts, tolerantly and with clear errors.

Real downloads differ in small ways (``.csv`` vs ``.csv.gz``, a leading space in a header, a
trailing comma on every row, a column spelled two ways); these helpers absorb those and name the
file and column when something is really wrong.
"""
from __future__ import annotations

import csv
import gzip
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from xrbench.errors import DataError


def find_file(root: Path, *names: str, required: bool = True) -> Path | None:
    """The first of ``names`` (each also tried with ``.gz`` added or removed) that exists under root."""
    tried = []
    for name in names:
        for cand in (name, name + ".gz", name[:-3] if name.endswith(".gz") else None):
            if cand is None:
                continue
            p = root / cand
            tried.append(cand)
            if p.is_file():
                return p
    if required:
        raise DataError(f"none of the expected files exist: {', '.join(dict.fromkeys(tried))}", path=root)
    return None


def read_table(path: Path, *, header: int | None = 0, dtype=str, **kwargs) -> pd.DataFrame:
    """Read a CSV/CSV.GZ; column names are stripped; empty ``Unnamed: N`` columns are dropped.

    A trailing comma on the data rows but not on the header is dropped (``index_col=False``): by
    default pandas would take the first column as the index and shift every column by one. A row
    with a non-empty field beyond the header is a DataError naming the row.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # pandas' "loss of data" warning
            df = pd.read_csv(path, header=header, dtype=dtype, keep_default_na=False, na_values=[""],
                             skipinitialspace=False, index_col=False, **kwargs)
    except pd.errors.ParserWarning as e:
        row, width = _row_longer_than_header(path, kwargs.get("encoding") or "utf-8")
        raise DataError(f"has more fields than the {width} of the header ({e})", path=path, row=row) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, EOFError) as e:
        raise DataError(f"cannot be read as CSV ({e.__class__.__name__}: {e})", path=path) from None
    if header is not None:
        df.columns = [str(c).strip() for c in df.columns]
        empty_unnamed = [c for c in df.columns if c.startswith("Unnamed:") and df[c].isna().all()]
        df = df.drop(columns=empty_unnamed)
    return df


def _row_longer_than_header(path: Path, encoding: str) -> tuple[int | None, int]:
    """(file line of the first row with a non-empty field beyond the header, header width)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding=encoding, errors="replace", newline="") as f:
        rows = csv.reader(f)
        width = len(next(rows, []))
        for line, row in enumerate(rows, start=2):
            if any(cell.strip() for cell in row[width:]):
                return line, width
    return None, width


def resolve_columns(df: pd.DataFrame, path: Path, wanted: Iterable[str | tuple[str, ...]]) -> dict[str, str]:
    """Map each wanted column (or tuple of accepted spellings, first is canonical) to the actual name.

    Matching ignores case and surrounding spaces. Raises a DataError naming the file, the missing
    column(s) and the columns that were found.
    """
    by_key = {c.strip().lower(): c for c in df.columns}
    out, missing = {}, []
    for w in wanted:
        options = (w,) if isinstance(w, str) else tuple(w)
        hit = next((by_key[o.strip().lower()] for o in options if o.strip().lower() in by_key), None)
        if hit is None:
            missing.append(" or ".join(repr(o) for o in options))
        else:
            out[options[0]] = hit
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)}; found columns {list(df.columns)}",
                        path=path)
    return out


def parse_float(value, *, path: Path, row: int, field: str, allow_blank: bool = True) -> float:
    """A float from a CSV cell; blank -> NaN (when allowed); anything else is a DataError."""
    if value is None or (isinstance(value, float) and value != value) or str(value).strip() == "":
        if allow_blank:
            return float("nan")
        raise DataError("is blank; expected a number", path=path, row=row, field=field)
    try:
        return float(str(value).strip())
    except ValueError:
        raise DataError(f"{value!r} is not a number", path=path, row=row, field=field) from None


def parse_column(values: pd.Series, parse: Callable[[Any, int], Any], *, first_row: int = 2) -> np.ndarray:
    """``parse(cell, row)`` applied to a whole column, once per distinct value (an object array).

    Label, sex and view columns hold a handful of distinct values in 200k rows, so this costs one
    ``factorize`` and a few calls. Values are parsed in order of first appearance, so the error
    raised is the one for the first bad row, as a per-row loop would give. ``first_row`` is the
    file line of the first cell.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    firsts = np.full(len(uniques) + 1, -1, dtype=np.int64)
    order = np.unique(codes, return_index=True)
    firsts[order[0]] = order[1]  # code -1 (blank) lands in the last slot
    parsed = np.empty(len(uniques) + 1, dtype=object)
    jobs = sorted((int(firsts[k]), k) for k in range(-1, len(uniques)) if firsts[k] >= 0)
    for row, k in jobs:
        parsed[k] = parse(values.iloc[row], first_row + row)
    return parsed[codes]

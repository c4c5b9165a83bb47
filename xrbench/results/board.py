"""The wide leaderboard view (model rows x task columns) and the rank rule, shared by Markdown/HTML.

Rank rule (docs/results.md): within one (task, label fraction), a result's rank is 1 + the number
of results whose confidence interval lies entirely on the better side of its own interval. Results
whose CIs overlap are therefore tied, and a result without a CI counts as the interval [value,
value]. The mean rank of a row averages its ranks over the tasks it has.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from xrbench.results.leaderboard import num


@dataclass
class Cell:
    value: float
    ci_low: float
    ci_high: float
    sd: float
    n_seeds: int
    rank: int | None = None
    best: bool = False
    warnings: list[str] = field(default_factory=list)
    leaked: str = "unknown"  # yes / no / unknown (no pretraining manifest)
    ece: float = math.nan
    brier: float = math.nan
    gap: float = math.nan  # largest subgroup gap of the primary metric
    gap_attribute: str = ""


@dataclass
class Task:
    name: str
    family: str
    metric: str
    direction: str
    data: str


@dataclass
class Series:
    """One leaderboard row: a model with its weights at one label fraction."""

    model: str
    weights: str
    label_fraction: str
    cells: dict[str, Cell] = field(default_factory=dict)

    @property
    def mean_rank(self) -> float:
        ranks = [c.rank for c in self.cells.values() if c.rank is not None]
        return sum(ranks) / len(ranks) if ranks else math.nan


@dataclass
class Board:
    tasks: list[Task]
    series: list[Series]
    rows: list[dict[str, str]]

    @property
    def synthetic(self) -> bool:
        return any(t.data == "synthetic-demo" for t in self.tasks)


def ci_ranks(cells: list[Cell], direction: str) -> list[int | None]:
    """Rank of each cell: 1 + how many others are better with non-overlapping CIs (None if no value)."""
    def interval(c: Cell) -> tuple[float, float]:
        lo, hi = c.ci_low, c.ci_high
        return (c.value, c.value) if lo != lo or hi != hi else (lo, hi)

    out: list[int | None] = []
    for c in cells:
        if c.value != c.value:
            out.append(None)
            continue
        lo, hi = interval(c)
        better = 0
        for o in cells:
            if o is c or o.value != o.value:
                continue
            olo, ohi = interval(o)
            better += (olo > hi) if direction == "higher" else (ohi < lo)
        out.append(1 + better)
    return out


def build(rows: list[dict[str, str]]) -> Board:
    """The board of canonical leaderboard rows: ranks, per-task best, rows sorted by mean rank."""
    tasks: dict[str, Task] = {}
    series: dict[tuple, Series] = {}
    for r in rows:
        t = r["task"]
        tasks.setdefault(t, Task(t, r.get("family") or "other", r.get("metric", ""),
                                 r.get("direction", "higher"), r.get("data", "")))
        key = (r["model"], r["weights"], r["label_fraction"])
        s = series.setdefault(key, Series(*key))
        n = num(r.get("n_seeds"))
        n_seeds = int(n) if n == n else len((r.get("seed") or "0").split(";"))
        s.cells[t] = Cell(num(r["value"]), num(r["ci_low"]), num(r["ci_high"]), num(r.get("sd")), n_seeds,
                          warnings=[w.strip() for w in (r.get("warnings") or "").split("; ") if w.strip()],
                          leaked=r.get("leaked") or "unknown", ece=num(r.get("ece")), brier=num(r.get("brier")),
                          gap=num(r.get("subgroup_gap")), gap_attribute=r.get("subgroup_gap_attribute") or "")
    for t in tasks.values():
        for lf in {s.label_fraction for s in series.values()}:
            group = [s.cells[t.name] for s in series.values() if s.label_fraction == lf and t.name in s.cells]
            for c, rank in zip(group, ci_ranks(group, t.direction)):
                c.rank = rank
            values = [c.value for c in group if c.value == c.value]
            if values:
                top = max(values) if t.direction == "higher" else min(values)
                for c in group:
                    c.best = c.value == top

    def order(s: Series) -> tuple:
        return (math.inf if s.mean_rank != s.mean_rank else s.mean_rank, -num(s.label_fraction), s.model, s.weights)

    ordered = sorted(series.values(), key=order)
    return Board(sorted(tasks.values(), key=lambda t: (t.family, t.name)), ordered, rows)


def show(v: float) -> str:
    """A value for people: 3 decimals (1 above 100), '' when missing."""
    if v != v:
        return ""
    return f"{v:.1f}" if abs(v) >= 100 else f"{v:.3f}"


def show_rank(v: float) -> str:
    return "" if v != v else f"{v:.2f}"


def show_ci(c: Cell) -> str:
    return "" if c.ci_low != c.ci_low or c.ci_high != c.ci_high else f"[{show(c.ci_low)}, {show(c.ci_high)}]"


def filter_leaked(rows: list[dict[str, str]], policy: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(rows kept, rows left out): ``refuse`` leaves out rows whose test split overlaps the
    encoder's pretraining manifest; ``mark`` keeps them (the pages mark them)."""
    if policy not in ("mark", "refuse"):
        raise ValueError(f"leaked policy must be 'mark' or 'refuse', not {policy!r}")
    if policy == "mark":
        return rows, []
    return [r for r in rows if r.get("leaked") != "yes"], [r for r in rows if r.get("leaked") == "yes"]


def arrow(direction: str) -> str:
    return "↑" if direction == "higher" else "↓"

"""A comparison report as plain text (terminal, CI log) and Markdown (PR comment, job summary)."""
from __future__ import annotations

from xrbench.results.board import arrow, show
from xrbench.results.compare import Comparison, Report
from xrbench.results.leaderboard import num
from xrbench.results.markdown import esc

MARK = {"worse": "❌ worse", "better": "✅ better", "same": "➖ same"}


def _signed(v: float) -> str:
    return "" if v != v else ("+" if v > 0 else "") + show(v)


def _value(row: dict[str, str]) -> str:
    v, lo, hi = num(row["value"]), num(row["ci_low"]), num(row["ci_high"])
    return show(v) + ("" if lo != lo or hi != hi else f" [{show(lo)}, {show(hi)}]")


def _delta(c: Comparison) -> str:
    return _signed(c.delta) + ("" if c.ci_low != c.ci_low else f" [{_signed(c.ci_low)}, {_signed(c.ci_high)}]")


def _models(c_list: list[Comparison], side: str) -> str:
    pairs = sorted({(getattr(c, side).row["model"], getattr(c, side).row["weights"]) for c in c_list})
    return "; ".join(f"{m} ({w})" for m, w in pairs)


def headline(r: Report) -> str:
    n = len(r.comparisons)
    bad = r.regressions
    if bad:
        return f"{len(bad)} of {n} task(s) regressed: {', '.join(c.task for c in bad)}"
    return f"no regression ({n} task(s) compared)"


def _rows(r: Report) -> list[list[str]]:
    return [[c.task + ("" if c.label_fraction == "1" else f" (lf {c.label_fraction})"),
             f"{c.metric} {arrow(c.direction)}", _value(c.base.row), _value(c.new.row), _delta(c),
             c.method, c.verdict] for c in r.comparisons]


def _settings(r: Report) -> str:
    return (f"tolerance {r.tolerance:g} (metric units), CI level {100 * (1 - r.alpha):g}%; "
            f"Δ = new − baseline")


def text(r: Report) -> str:
    head = ["task", "metric", "baseline [CI]", "new [CI]", "Δ [CI]", "method", "verdict"]
    body = _rows(r)
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [f"xrbench compare: {headline(r)}", f"NEW: {_models(r.comparisons, 'new')}",
           f"BASELINE: {_models(r.comparisons, 'base')}", _settings(r), "", line(head),
           line(["-" * w for w in widths])] + [line(b) for b in body]
    out += _missing(r)
    return "\n".join(out)


def _missing(r: Report) -> list[str]:
    out = []
    if r.only_new:
        out.append(f"only in NEW (not compared): {', '.join(r.only_new)}")
    if r.only_base:
        out.append(f"only in BASELINE (not compared): {', '.join(r.only_base)}")
    return out


def markdown(r: Report) -> str:
    icon = "❌" if r.regressions else "✅"
    out = [f"### {icon} xrbench compare: {headline(r)}", "",
           f"- **NEW**: {esc(_models(r.comparisons, 'new'))} — `{esc(' '.join(r.new_paths))}`",
           f"- **BASELINE**: {esc(_models(r.comparisons, 'base'))} — `{esc(' '.join(r.base_paths))}`",
           f"- {_settings(r)}", "",
           "| task | metric | baseline [CI] | new [CI] | Δ [CI] | method | verdict |",
           "|---|---|---|---|---|---|---|"]
    for row, c in zip(_rows(r), r.comparisons):
        row[-1] = MARK[c.verdict]
        out.append("| " + " | ".join(esc(x) for x in row) + " |")
    missing = _missing(r)
    return "\n".join(out + ([""] + [f"- {m}" for m in missing] if missing else [])) + "\n"

"""Inline SVG bar charts: one panel per task family, one bar per leaderboard row (model).

Metrics of different families live on different scales (AUROC vs MAE in months), so each family
gets its own panel and axis; a bar is the mean primary metric over the family's tasks that row has,
its whisker the mean of their CI bounds. Pure string building: the page needs no library.
"""
from __future__ import annotations

from dataclasses import dataclass
from html import escape

from xrbench.results.board import Board, Series, arrow, show

PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac"]
BAR, GAP, LEFT, TOP, BOTTOM, HEIGHT, MIN_WIDTH = 24, 8, 46, 34, 14, 210, 180


@dataclass
class Bar:
    series: int
    value: float
    ci_low: float
    ci_high: float
    n_tasks: int


@dataclass
class Panel:
    family: str
    direction: str
    metric: str
    n_tasks: int
    bars: list[Bar]


def _mean(vals: list[float]) -> float:
    vals = [v for v in vals if v == v]
    return sum(vals) / len(vals) if vals else float("nan")


def panels(board: Board) -> list[Panel]:
    groups: dict[tuple[str, str], list] = {}
    for t in board.tasks:
        groups.setdefault((t.family, t.direction), []).append(t)
    out = []
    for (family, direction), tasks in groups.items():
        metrics = {t.metric for t in tasks}
        bars = []
        for i, s in enumerate(board.series):
            cells = [c for t in tasks if (c := s.cells.get(t.name)) is not None and c.value == c.value]
            if cells:
                bars.append(Bar(i, _mean([c.value for c in cells]), _mean([c.ci_low for c in cells]),
                                _mean([c.ci_high for c in cells]), len(cells)))
        out.append(Panel(family, direction, metrics.pop() if len(metrics) == 1 else "mean primary metric",
                         len(tasks), bars))
    return out


def _scale(panel: Panel) -> tuple[float, float]:
    vals = [v for b in panel.bars for v in (b.value, b.ci_low, b.ci_high) if v == v]
    lo, hi = min([0.0, *vals]), max([0.0, *vals])
    if lo >= 0 and hi <= 1 and panel.direction == "higher":
        return 0.0, 1.0
    return lo, (hi * 1.1 if hi > 0 else 1.0)


def label(s: Series) -> str:
    return f"{s.model} · {s.weights}" + ("" if s.label_fraction == "1" else f" · {s.label_fraction} labels")


def panel_svg(panel: Panel, series: list[Series]) -> str:
    lo, hi = _scale(panel)
    width = max(MIN_WIDTH, LEFT + max(1, len(panel.bars)) * (BAR + GAP) + GAP)
    plot_h = HEIGHT - TOP - BOTTOM

    def y(v: float) -> float:
        return TOP + plot_h * (1 - (v - lo) / (hi - lo))

    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" '
             f'viewBox="0 0 {width} {HEIGHT}" role="img" aria-label="{escape(panel.family)}">',
             f'<text x="4" y="14" class="ptitle">{escape(panel.family)} ({panel.n_tasks} task'
             f'{"s" if panel.n_tasks != 1 else ""})</text>',
             f'<text x="4" y="27" class="psub">{escape(panel.metric)} {arrow(panel.direction)}</text>']
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        parts.append(f'<line x1="{LEFT - 3}" x2="{width - 2}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>'
                     f'<text x="{LEFT - 6}" y="{y(v) + 3:.1f}" class="tick">{show(v)}</text>')
    for j, b in enumerate(panel.bars):
        x = LEFT + GAP + j * (BAR + GAP)
        top, base = y(b.value), y(0.0)  # lo <= 0 always: bars grow from zero
        s = series[b.series]
        tip = f"{label(s)}: {show(b.value)} [{show(b.ci_low)}, {show(b.ci_high)}], mean of {b.n_tasks} task(s)"
        parts.append(f'<rect class="bar" x="{x}" y="{min(top, base):.1f}" width="{BAR}" '
                     f'height="{abs(base - top):.1f}" fill="{PALETTE[b.series % len(PALETTE)]}">'
                     f'<title>{escape(tip)}</title></rect>')
        if b.ci_low == b.ci_low and b.ci_high == b.ci_high:
            cx = x + BAR / 2
            parts.append(f'<path class="ci" d="M{cx},{y(b.ci_low):.1f}V{y(b.ci_high):.1f}M{cx - 4},{y(b.ci_low):.1f}'
                         f'h8M{cx - 4},{y(b.ci_high):.1f}h8"/>')
    parts.append("</svg>")
    return "".join(parts)


def charts_html(board: Board) -> str:
    """The panels plus a shared colour legend, as an HTML fragment."""
    legend = "".join(f'<li><span class="swatch" style="background:{PALETTE[i % len(PALETTE)]}"></span>'
                     f'{escape(label(s))}</li>' for i, s in enumerate(board.series))
    svgs = "".join(panel_svg(p, board.series) for p in panels(board))
    return f'<div class="charts">{svgs}</div><ul class="legend">{legend}</ul>'


def reliability_svg(task: str, curves: list[tuple[int, dict]], series: list[Series], size: int = 220) -> str:
    """A reliability diagram: observed frequency against mean confidence per bin (bins with
    samples), one polyline per leaderboard row in its legend colour; the diagonal is calibrated."""
    pad, top = 34, 30
    side = size - pad - 10

    def xy(c: float, f: float) -> str:
        return f"{pad + side * c:.1f},{top + side * (1 - f):.1f}"

    parts = [f'<svg class="chart reliability" xmlns="http://www.w3.org/2000/svg" width="{size}" '
             f'height="{top + side + 22}" role="img" aria-label="reliability {escape(task)}">',
             f'<text x="4" y="14" class="ptitle">{escape(task)}</text>',
             f'<text x="4" y="26" class="psub">observed frequency vs confidence</text>',
             f'<rect x="{pad}" y="{top}" width="{side}" height="{side}" fill="none" class="grid"/>',
             f'<path d="M{xy(0, 0)}L{xy(1, 1)}" class="grid" stroke-dasharray="4 3"/>']
    for v in (0.0, 0.5, 1.0):
        parts.append(f'<text x="{pad - 4}" y="{top + side * (1 - v) + 3:.1f}" class="tick">{v:g}</text>'
                     f'<text x="{pad + side * v:.1f}" y="{top + side + 14}" class="tick" '
                     f'style="text-anchor:middle">{v:g}</text>')
    for i, curve in curves:
        pts = [(c, f) for c, f, n in zip(curve["confidence"], curve["frequency"], curve["count"])
               if n and c is not None and f is not None]
        if not pts:
            continue
        colour = PALETTE[i % len(PALETTE)]
        tip = f"{label(series[i])}: {sum(curve['count'])} predictions in {len(pts)} non-empty bins"
        parts.append(f'<polyline class="rel" fill="none" stroke="{colour}" stroke-width="1.6" '
                     f'points="{" ".join(xy(c, f) for c, f in pts)}"><title>{escape(tip)}</title></polyline>')
        parts += [f'<circle cx="{xy(c, f).split(",")[0]}" cy="{xy(c, f).split(",")[1]}" r="2" fill="{colour}"/>'
                  for c, f in pts]
    parts.append("</svg>")
    return "".join(parts)

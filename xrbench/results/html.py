"""A self-contained leaderboard page: inline CSS, JS and SVG; nothing fetched, opens from disk.

Tables sort by clicking a header; the order lives in the address hash
(``#sort=KEY&order=asc|desc[&table=results]``) so a sorted view can be linked, and so tests can
load a sorted page. The first click on a metric column puts the best results first.
"""
from __future__ import annotations

from datetime import datetime, timezone
from html import escape

from xrbench.results.board import Board, Cell, arrow, build, show, show_ci, show_rank
from xrbench.results.chart import PALETTE, charts_html, label, reliability_svg
from xrbench.results.leaderboard import COLUMNS, num
from xrbench.results.markdown import RANK_RULE

NUMERIC = {"task_version", "value", "ci_low", "ci_high", "n_train", "n_val", "n_test", "label_fraction",
           "seconds", "n_seeds", "sd"}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1d2330}
h1{font-size:22px;margin:0 0 6px}h2{font-size:17px;margin:28px 0 8px}
.note{color:#4a5263;max-width:70em}.warn{background:#fff4d6;border:1px solid #e8c66a;padding:6px 10px;
border-radius:4px;display:inline-block}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #e3e6ec;padding:4px 8px;text-align:left;vertical-align:top;white-space:nowrap}
th{background:#f3f5f9;cursor:pointer;user-select:none;position:sticky;top:0}
th small{font-weight:400;color:#5a6374}
th[aria-sort=ascending]::after{content:" \\25B2";font-size:10px}
th[aria-sort=descending]::after{content:" \\25BC";font-size:10px}
tbody tr:nth-child(even){background:#fafbfd}
td.num{text-align:right}td .ci,td .rk{display:block;font-size:11px;color:#5a6374}
td strong{color:#0b3d91}.scroll{overflow-x:auto;max-width:100%}
.charts{display:flex;flex-wrap:wrap;gap:18px}
svg.chart text{font:11px system-ui,sans-serif;fill:#1d2330}svg.chart .ptitle{font-weight:600;font-size:12px}
svg.chart .psub{fill:#5a6374}svg.chart .tick{text-anchor:end;fill:#5a6374;font-size:10px}
svg.chart .grid{stroke:#e3e6ec}svg.chart .ci{stroke:#1d2330;stroke-width:1.2;fill:none}
.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:6px 18px}
.swatch{display:inline-block;width:12px;height:12px;margin-right:6px;vertical-align:-1px;border-radius:2px}
code{background:#f3f5f9;padding:0 3px;border-radius:3px}
.scroll{border:1px solid #e3e6ec}
table.board th:first-child,table.board td:first-child{position:sticky;left:0;z-index:2;background:#fff;
box-shadow:1px 0 0 #e3e6ec}table.board th:first-child{z-index:3;background:#f3f5f9}
table.board th{white-space:normal;min-width:6em;max-width:11em}
.wn{display:inline-block;font-size:11px;color:#8a5a00;background:#fff4d6;border-radius:3px;padding:0 3px;cursor:help}
.leak{display:inline-block;font-size:11px;color:#fff;background:#b3261e;border-radius:3px;padding:0 3px}
td.warnings{white-space:normal;max-width:48em;font-size:12px}
"""

JS = r"""
(function () {
  function cellValue(td, type) {
    var v = td.getAttribute('data-sort');
    if (v === null) v = td.textContent;
    if (type === 'num') { var f = parseFloat(v); return (v === '' || isNaN(f)) ? null : f; }
    return v.toLowerCase();
  }
  function header(table, key) {
    var ths = table.tHead.rows[0].cells;
    for (var i = 0; i < ths.length; i++) if (ths[i].getAttribute('data-key') === key) return i;
    return -1;
  }
  function natural(th) { return th.getAttribute('data-better') === 'higher' ? 'desc' : 'asc'; }
  function sortTable(table, key, order) {
    var idx = header(table, key);
    if (idx < 0) return false;
    var ths = table.tHead.rows[0].cells, th = ths[idx], type = th.getAttribute('data-type') || 'text';
    order = order === 'asc' || order === 'desc' ? order : natural(th);
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {   // missing values last, whatever the order; stable otherwise
      var x = cellValue(a.cells[idx], type), y = cellValue(b.cells[idx], type);
      if (x === null || y === null) return (x === null) - (y === null);
      var c = x < y ? -1 : (x > y ? 1 : 0);
      return order === 'desc' ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    for (var i = 0; i < ths.length; i++) ths[i].removeAttribute('aria-sort');
    th.setAttribute('aria-sort', order === 'desc' ? 'descending' : 'ascending');
    return true;
  }
  function fromHash() {
    var p = new URLSearchParams(location.hash.replace(/^#/, ''));
    var table = document.getElementById(p.get('table') || 'leaderboard');
    if (table && p.get('sort')) sortTable(table, p.get('sort'), p.get('order'));
  }
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable th[data-key]'), function (th) {
    th.addEventListener('click', function () {
      var table = th.closest('table'), key = th.getAttribute('data-key'), cur = th.getAttribute('aria-sort');
      var order = cur ? (cur === 'ascending' ? 'desc' : 'asc') : natural(th);
      sortTable(table, key, order);
      var h = '#sort=' + encodeURIComponent(key) + '&order=' + order +
              (table.id === 'leaderboard' ? '' : '&table=' + encodeURIComponent(table.id));
      try { history.replaceState(null, '', h); } catch (e) { /* some file:// contexts refuse */ }
    });
  });
  window.addEventListener('hashchange', fromHash);
  fromHash();
})();
"""


def _th(key: str, text: str, *, num_type: bool, better: str | None = None, sub: str = "", tip: str = "") -> str:
    attrs = f' data-key="{escape(key)}" data-type="{"num" if num_type else "text"}"'
    attrs += f' data-better="{better}"' if better else ""
    attrs += f' title="{escape(tip)}"' if tip else ""
    return f"<th{attrs}>{escape(text)}" + (f"<br><small>{escape(sub)}</small>" if sub else "") + "</th>"


def _td(text: str, sort: str | float | None = None, cls: str = "") -> str:
    s = "" if sort is None else f' data-sort="{escape(_sortable(sort))}"'
    c = f' class="{cls}"' if cls else ""
    return f"<td{c}{s}>{text}</td>"


def _sortable(v: str | float) -> str:
    if isinstance(v, float):
        return "" if v != v else repr(v)
    return v


def _metric_cell(c: Cell | None) -> str:
    if c is None or c.value != c.value:
        return _td("–", "", "num")
    v = escape(show(c.value))
    if c.n_seeds > 1 and c.sd == c.sd:
        v += f" ± {escape(show(c.sd))}"
    v = f"<strong>{v}</strong>" if c.best else v
    ci = show_ci(c)
    inner = v + (f'<span class="ci">{escape(ci)}</span>' if ci else "") + \
        (f'<span class="rk">rank {c.rank}</span>' if c.rank is not None else "") + _marks(c)
    return _td(inner, c.value, "num best" if c.best else "num")


def _marks(c: Cell) -> str:
    out = '<span class="leak" title="test images are in the pretraining manifest">leaked</span>' \
        if c.leaked == "yes" else ""
    if c.warnings:
        out += f'<span class="wn" title="{escape(chr(10).join(c.warnings))}">⚠ {len(c.warnings)}</span>'
    return out


def leaderboard_table(board: Board, tasks=None, table_id: str = "leaderboard") -> str:
    """Model rows x task columns; the model column stays in view while the table scrolls sideways."""
    tasks = board.tasks if tasks is None else tasks
    head = [_th("model", "model", num_type=False), _th("weights", "weights", num_type=False),
            _th("label_fraction", "label fraction", num_type=True, better="higher"),
            _th("mean_rank", "mean rank", num_type=True, tip=RANK_RULE),
            _th("n_tasks", "tasks", num_type=True, better="higher")]
    head += [_th(f"task:{t.name}", t.name, num_type=True, better=t.direction,
                 sub=f"{t.metric} {arrow(t.direction)}", tip=f"{t.family}; {t.data}") for t in tasks]
    body = []
    for s in board.series:
        if not any(t.name in s.cells for t in tasks):
            continue
        n = sum(1 for t in tasks if (c := s.cells.get(t.name)) is not None and c.rank is not None)
        tds = [_td(escape(s.model)), _td(escape(s.weights)),
               _td(escape(s.label_fraction), num(s.label_fraction), "num"),
               _td(show_rank(s.mean_rank) or "–", s.mean_rank, "num"), _td(str(n), float(n), "num")]
        tds += [_metric_cell(s.cells.get(t.name)) for t in tasks]
        body.append("<tr>" + "".join(tds) + "</tr>")
    return (f'<div class="scroll"><table id="{escape(table_id)}" class="sortable board"><thead><tr>{"".join(head)}'
            f'</tr></thead><tbody>{"".join(body)}</tbody></table></div>')


def family_tables(board: Board) -> str:
    """One leaderboard per task family (its tasks only), so a family reads without scrolling."""
    fams: dict[str, list] = {}
    for t in board.tasks:
        fams.setdefault(t.family, []).append(t)
    return "".join(f'<h3>{escape(f)}</h3>' + leaderboard_table(board, ts, f"family-{f}")
                   for f, ts in sorted(fams.items()))


def trust_table(board: Board) -> str:
    """Calibration, the largest subgroup gap, the pretraining-leak status and the warnings of each result."""
    head = [_th("task", "task", num_type=False), _th("model", "model", num_type=False),
            _th("weights", "weights", num_type=False), _th("ece", "ECE", num_type=True, better="lower"),
            _th("brier", "Brier", num_type=True, better="lower"),
            _th("gap", "largest subgroup gap", num_type=True, better="lower"),
            _th("leaked", "leaked", num_type=False), _th("warnings", "warnings", num_type=False)]
    body = []
    for t in board.tasks:
        for s in board.series:
            c = s.cells.get(t.name)
            if c is None:
                continue
            gap = f"{escape(show(c.gap))} <small>({escape(c.gap_attribute)})</small>" if c.gap == c.gap else "–"
            body.append("<tr>" + _td(escape(t.name)) + _td(escape(s.model)) + _td(escape(s.weights))
                        + _td(escape(show(c.ece)) or "–", c.ece, "num") + _td(escape(show(c.brier)) or "–", c.brier, "num")
                        + _td(gap, c.gap, "num") + _td(escape(c.leaked)) +
                        _td("<br>".join(escape(w) for w in c.warnings) or "–", str(len(c.warnings)), "warnings")
                        + "</tr>")
    return (f'<div class="scroll"><table id="trust" class="sortable"><thead><tr>{"".join(head)}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def subgroup_table(board: Board, records) -> str:
    """The primary metric per subgroup (first seed of each result), with CI and size."""
    head = [_th(k, k, num_type=k in ("value", "n")) for k in ("task", "model", "attribute", "group", "value", "n")]
    body = []
    for r in sorted(records, key=lambda r: (r.task, r.model, r.weights, r.seed)):
        if r.seed != min(x.seed for x in records if (x.task, x.model, x.weights) == (r.task, r.model, r.weights)):
            continue
        gap = r.subgroups.get("max_gap") or {}
        for attr, groups in r.subgroups.items():
            if attr == "max_gap":
                continue
            for g, v in groups.items():
                val = v.get("value")
                val = float("nan") if val is None else float(val)
                lo, hi = v.get("ci_low"), v.get("ci_high")
                ci = f'<span class="ci">[{show(lo)}, {show(hi)}]</span>' if lo is not None and hi is not None else ""
                mark = " <small>(largest gap)</small>" if attr == gap.get("attribute") and g in gap.get("groups", []) else ""
                body.append("<tr>" + _td(escape(r.task)) + _td(escape(r.model)) + _td(escape(attr))
                            + _td(escape(g) + mark) + _td(escape(show(val)) + ci, val, "num")
                            + _td(str(v.get("n", "")), float(v.get("n") or 0), "num") + "</tr>")
    if not body:
        return '<p class="note">No subgroup metadata in these results.</p>'
    return (f'<div class="scroll"><table id="subgroups" class="sortable"><thead><tr>{"".join(head)}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def reliability_html(board: Board, records) -> str:
    """One reliability diagram per task: a curve per leaderboard row (first seed), diagonal = calibrated."""
    index = {(s.model, s.weights, s.label_fraction): i for i, s in enumerate(board.series)}
    by_task: dict[str, list] = {}
    for r in sorted(records, key=lambda r: r.seed, reverse=True):
        key = (r.model, r.weights, f"{float(r.label_fraction):.6g}")
        if r.reliability and key in index:
            by_task.setdefault(r.task, {})[index[key]] = r.reliability
    if not by_task:
        return '<p class="note">No probabilistic outputs in these results.</p>'
    return '<div class="charts">' + "".join(
        reliability_svg(task, sorted(curves.items()), board.series) for task, curves in sorted(by_task.items())) + "</div>"


def results_table(board: Board) -> str:
    """Every canonical CSV column of every row, per-task best value in bold."""
    best = {(s.model, s.weights, s.label_fraction, t): c.best for s in board.series for t, c in s.cells.items()}
    head = [_th(c, c, num_type=c in NUMERIC) for c in COLUMNS]
    body = []
    for r in sorted(board.rows, key=lambda r: (r["task"], r["model"], r["weights"])):
        tds = []
        for col in COLUMNS:
            v = r.get(col, "")
            if col == "value" and best.get((r["model"], r["weights"], r["label_fraction"], r["task"])):
                tds.append(_td(f"<strong>{escape(v)}</strong>", num(v), "num"))
            else:
                tds.append(_td(escape(v), num(v) if col in NUMERIC else v, "num" if col in NUMERIC else ""))
        body.append("<tr>" + "".join(tds) + "</tr>")
    return (f'<div class="scroll"><table id="results" class="sortable"><thead><tr>{"".join(head)}</tr>'
            f'</thead><tbody>{"".join(body)}</tbody></table></div>')


def board_html(board: Board, title: str, records=None) -> str:
    from xrbench import __version__

    warn = ('<p class="warn">Numbers on <b>synthetic demo data</b> (phantoms in the official layouts): '
            'they test the pipeline, not the models on real radiographs.</p>' if board.synthetic else "")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{escape(title)}</title><style>{CSS}</style></head>
<body>
<h1>{escape(title)}</h1>
{warn}
<p class="note">Primary metric of each task with its 95% bootstrap CI (± sd over seeds when there are several);
↑ higher is better, ↓ lower is better; <strong>bold</strong>: best value of the task. {escape(RANK_RULE)}
Click a column header to sort; the order is kept in the address (<code>#sort=mean_rank</code>).</p>
<h2>Leaderboard</h2>
{leaderboard_table(board)}
<h2>By task family</h2>
<p class="note">Mean primary metric over each family's tasks, whiskers: mean CI bounds.
Each family has its own axis.</p>
{charts_html(board)}
{family_tables(board)}
<h2>Calibration, subgroups, leaks and warnings</h2>
<p class="note">ECE: expected calibration error over 15 equal-width confidence bins (per label then macro;
top label for multiclass); Brier score; largest gap of the primary metric between two groups of one
attribute (sex, age band, view, body part). <span class="leak">leaked</span>: test images are listed in the
encoder's pretraining manifest. <span class="wn">⚠ n</span>: n warnings (hover for them).</p>
{trust_table(board)}
{"" if records is None else "<h3>Subgroups</h3>" + subgroup_table(board, records)}
{"" if records is None else "<h3>Reliability diagrams</h3>" + reliability_html(board, records)}
<h2>All results with provenance</h2>
{results_table(board)}
<p class="note">Generated by xrbench {escape(__version__)} on {when}. Columns: docs/results.md.</p>
<script>{JS}</script>
</body></html>
"""


def leaderboard_html(rows: list[dict[str, str]], title: str = "xrbench leaderboard", records=None) -> str:
    """The page of canonical rows; ``records`` (the rows' result records, when read from records)
    add the per-group subgroup table and the reliability diagrams."""
    return board_html(build(rows), title, records)

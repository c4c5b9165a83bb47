"""The leaderboard as Markdown (README sections, PR comments): ranked table + provenance tables."""
from __future__ import annotations

from xrbench.results.board import Board, Cell, arrow, build, show, show_ci, show_rank

RANK_RULE = ("Rank per task: 1 + the number of results whose 95% CI lies entirely on the better side "
             "of this result's CI (overlapping CIs tie). Mean rank: over the tasks a row has.")


def esc(text: str) -> str:
    """A Markdown table cell: pipes escaped, newlines flattened."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def cell_text(c: Cell | None) -> str:
    if c is None or c.value != c.value:
        return "–"
    v = show(c.value)
    if c.n_seeds > 1 and c.sd == c.sd:
        v += f" ± {show(c.sd)}"
    v = f"**{v}**" if c.best else v
    ci = show_ci(c)
    v = f"{v} {ci}" if ci else v
    if c.leaked == "yes":
        v += " ⛔ leaked"
    return v + (f" ⚠{len(c.warnings)}" if c.warnings else "")


def trust_sections(board: Board) -> list[str]:
    """Calibration, subgroup gaps and warnings of every result that has them."""
    out: list[str] = []
    cal = [[t.name, s.model, s.weights, show(c.ece) or "–", show(c.brier) or "–",
            (f"{show(c.gap)} ({c.gap_attribute})" if c.gap == c.gap else "–")]
           for t in board.tasks for s in board.series if (c := s.cells.get(t.name)) is not None
           and (c.ece == c.ece or c.gap == c.gap)]
    if cal:
        out += ["", "## Calibration and subgroups", "",
                "ECE: expected calibration error (15 equal-width bins); Brier score; largest gap of the "
                "primary metric between two groups of one attribute (sex, age band, view, body part; "
                "per-group values with CIs in the subgroups CSV).", ""]
        out += _table(["task", "model", "weights", "ECE ↓", "Brier ↓", "largest subgroup gap"], cal)
    warn = [[t.name, s.model, s.weights, ("leaked; " if c.leaked == "yes" else "") + "; ".join(c.warnings)]
            for t in board.tasks for s in board.series if (c := s.cells.get(t.name)) is not None
            and (c.warnings or c.leaked == "yes")]
    if warn:
        out += ["", "## Warnings", "", "⚠n: a result with n warnings; ⛔ leaked: test images are in the "
                "encoder's pretraining manifest.", ""]
        out += _table(["task", "model", "weights", "warnings"], warn)
    return out


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(esc(c) for c in row) + " |" for row in body])


def _joined(rows: list[dict[str, str]], col: str) -> str:
    return ", ".join(sorted({r.get(col, "") for r in rows if r.get(col)})) or "–"


def board_markdown(board: Board, title: str) -> str:
    out = [f"# {title}", ""]
    if board.synthetic:
        out += ["> Numbers on **synthetic demo data** (phantoms in the official layouts): they test the "
                "pipeline, they say nothing about real radiographs.", ""]
    out += ["Primary metric of each task with its 95% CI (± sd over seeds when there are several); "
            "↑ higher is better, ↓ lower is better; **bold**: best value of the task. " + RANK_RULE, ""]
    header = ["#", "model", "weights", "label fraction", "mean rank"] + \
             [f"{t.name} ({t.metric} {arrow(t.direction)})" for t in board.tasks]
    body = [[str(i), s.model, s.weights, s.label_fraction, show_rank(s.mean_rank) or "–"]
            + [cell_text(s.cells.get(t.name)) for t in board.tasks]
            for i, s in enumerate(board.series, start=1)]
    out += _table(header, body) + trust_sections(board) + ["", "## Tasks", ""]
    by_task = {t.name: [r for r in board.rows if r["task"] == t.name] for t in board.tasks}
    out += _table(["task", "family", "version", "metric", "data", "dataset hash", "config hash", "n test"],
                  [[t.name, t.family, _joined(by_task[t.name], "task_version"), t.metric, t.data,
                    _joined(by_task[t.name], "dataset_hash"), _joined(by_task[t.name], "config_hash"),
                    _joined(by_task[t.name], "n_test")] for t in board.tasks])
    out += ["", "## Runs", ""]
    runs: dict[tuple, list[dict[str, str]]] = {}
    for r in board.rows:
        runs.setdefault((r["model"], r["weights"]), []).append(r)
    out += _table(["model", "weights", "weights sha256", "seeds", "xrbench", "git", "torch", "device"],
                  [[m, w, _joined(rs, "weights_sha256"), _joined(rs, "seed"), _joined(rs, "xrbench_version"),
                    _joined(rs, "git_sha"), _joined(rs, "torch"), _joined(rs, "device")]
                   for (m, w), rs in sorted(runs.items())])
    return "\n".join(out) + "\n"


def leaderboard_markdown(rows: list[dict[str, str]], title: str = "xrbench leaderboard") -> str:
    return board_markdown(build(rows), title)

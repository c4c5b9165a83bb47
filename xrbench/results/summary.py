"""The one-screen table printed at the end of ``xrbench run``."""
from __future__ import annotations

from xrbench.results.record import ResultRecord


def _num(v) -> str:
    return "  n/a" if v is None or v != v else f"{v:.3f}"


def summary_table(records: list[ResultRecord]) -> str:
    head = f"{'task':26s} {'model':28s} {'metric':14s} {'value':>6s}  {'95% CI':15s} {'n_test':>6s} {'lf':>5s} {'data':14s} {'weights'}"
    lines = [head, "-" * len(head)]
    for r in records:
        p = r.primary
        lines.append(f"{r.task:26s} {r.model[:28]:28s} {r.primary_metric[:14]:14s} {_num(p.value):>6s}  "
                     f"[{_num(p.ci_low)}, {_num(p.ci_high)}] {r.n['test']:>6d} {r.label_fraction:>5g} "
                     f"{r.data:14s} {r.weights}")
    return "\n".join(lines)

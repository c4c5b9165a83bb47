"""The one-screen table printed at the end of ``xrbench run``."""
from __future__ import annotations

import numpy as np

from xrbench.results.record import ResultRecord


def _num(v) -> str:
    return "  n/a" if v is None or v != v else f"{v:.3f}"


def summary_table(records: list[ResultRecord]) -> str:
    """One line per (task, label fraction); several seeds show mean ± sd and the first seed's CI."""
    groups: dict[tuple, list[ResultRecord]] = {}
    for r in records:
        groups.setdefault((r.task, r.model, r.label_fraction), []).append(r)
    head = (f"{'task':24s} {'model':27s} {'metric':12s} {'value':>13s}  {'95% CI':16s} {'n_test':>6s} "
            f"{'lf':>5s} {'data':14s} weights")
    lines = [head, "-" * len(head)]
    for (task, model, lf), recs in groups.items():
        first = recs[0]
        vals = np.array([r.primary.value for r in recs], dtype=float)
        value = _num(vals.mean()) + (f" ± {vals.std(ddof=1):.3f}" if len(recs) > 1 else "")
        p = first.primary
        lines.append(f"{task:24s} {model[:27]:27s} {first.primary_metric[:12]:12s} {value:>13s}  "
                     f"[{_num(p.ci_low)}, {_num(p.ci_high)}] {first.n.get('test_scored', first.n['test']):>6d} {lf:>5g} "
                     f"{first.data:14s} {first.weights}")
        if (first.pretraining_overlap or {}).get("status") == "overlap":
            lines.append(f"{'':24s} ! leaked: {first.pretraining_overlap['n']} test image(s) are in the "
                         f"pretraining manifest")
        for name, b in first.baselines.items():
            if "metrics" in b:
                bp = b["metrics"].get(first.primary_metric, {})
                lines.append(f"{'':24s} baseline {name}: {first.primary_metric} {_num(bp.get('value'))} "
                             f"[{_num(bp.get('ci_low'))}, {_num(bp.get('ci_high'))}]")
        lines += [f"{'':24s} ! {w}" for w in dict.fromkeys(w for r in recs for w in r.warnings)]
    return "\n".join(lines)

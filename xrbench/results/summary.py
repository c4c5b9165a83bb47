"""The one-screen table printed at the end of ``xrbench run``."""
from __future__ import annotations

import numpy as np

from xrbench.results.leaderboard import _mean, _nan
from xrbench.results.record import ResultRecord


def _num(v) -> str:
    return "  n/a" if v is None or v != v else f"{v:.3f}"


def summary_table(records: list[ResultRecord]) -> str:
    """One line per (task, label fraction), with the leaderboard CSV's numbers: several seeds show
    mean ± sd and the mean of the seeds' CI bounds (docs/results.md, "Seeds"). ``n_scored`` is what
    the metric is computed on (studies for per-study tasks, queries for retrieval), which the CSV's
    ``n_test`` (images) is not."""
    groups: dict[tuple, list[ResultRecord]] = {}
    for r in records:
        groups.setdefault((r.task, r.model, r.label_fraction), []).append(r)
    head = (f"{'task':24s} {'model':27s} {'metric':12s} {'value':>13s}  {'95% CI':16s} {'n_scored':>8s} "
            f"{'lf':>5s} {'data':14s} weights")
    lines = [head, "-" * len(head)]
    for (task, model, lf), recs in groups.items():
        first = recs[0]
        vals = np.array([r.primary.value for r in recs], dtype=float)
        value = _num(vals.mean()) + (f" ± {vals.std(ddof=1):.3f}" if len(recs) > 1 else "")
        low = _mean([_nan(r.primary.ci_low) for r in recs])
        high = _mean([_nan(r.primary.ci_high) for r in recs])
        lines.append(f"{task:24s} {model[:27]:27s} {first.primary_metric[:12]:12s} {value:>13s}  "
                     f"[{_num(low)}, {_num(high)}] {first.n.get('test_scored', first.n['test']):>8d} {lf:>5g} "
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

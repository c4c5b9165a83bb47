"""Report-generation NLG metrics (BLEU-1..4, ROUGE-L, CIDEr-D, METEOR) through pycocoevalcap, offline.

Plain functions here; the ``evaluate.Metric`` wrappers live one per file (``bleu.py``,
``rouge_l.py``, ``cider_d.py``, ``meteor.py``) so that ``evaluate.load(metric_path("bleu"))``
loads them by path without the Hub. Importing this package does not import ``evaluate``.
"""
from __future__ import annotations

from pathlib import Path

from xrbench.metrics.nlg.scores import (meteor_missing_reason, nlg_per_sample, nlg_scores, score,
                                        tokenize)

METRIC_FILES = ("bleu", "rouge_l", "cider_d", "meteor")


def metric_path(name: str) -> str:
    """The file to give ``evaluate.load`` for the metric ``name`` (one of ``METRIC_FILES``)."""
    if name not in METRIC_FILES:
        raise KeyError(f"unknown NLG metric {name!r}; known: {', '.join(METRIC_FILES)}")
    return str(Path(__file__).with_name(f"{name}.py"))


__all__ = ["METRIC_FILES", "meteor_missing_reason", "metric_path", "nlg_per_sample", "nlg_scores", "score",
           "tokenize"]

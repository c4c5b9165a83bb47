"""METEOR 1.5 (pycocoevalcap's Java jar) as an offline ``evaluate`` metric.

Without ``java`` on PATH the result is ``{"meteor": None, "meteor_missing": <why>}``: not computed.
"""
import evaluate

from xrbench.metrics.nlg.module import compute, metric_info


class Meteor(evaluate.Metric):
    """Corpus METEOR (aggregate of pooled statistics; ``per_sample_meteor`` are segment scores)."""

    def _info(self) -> evaluate.MetricInfo:
        return metric_info("meteor", "METEOR 1.5 by pycocoevalcap (Java) on lower-cased, punctuation-free tokens.")

    def _compute(self, predictions, references, per_sample: bool = False) -> dict:
        return compute("meteor", predictions, references, per_sample)

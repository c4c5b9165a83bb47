"""BLEU-1..4 (pycocoevalcap, "closest" reference length) as an offline ``evaluate`` metric.

``evaluate.load(xrbench.metrics.nlg.metric_path("bleu"))`` or ``Bleu()`` directly.
"""
import evaluate

from xrbench.metrics.nlg.module import compute, metric_info


class Bleu(evaluate.Metric):
    """Corpus BLEU-1..4; ``per_sample_bleu<n>`` are sentence-level BLEU, not parts of the corpus value."""

    def _info(self) -> evaluate.MetricInfo:
        return metric_info("bleu", "Corpus BLEU-1..4 by pycocoevalcap on lower-cased, punctuation-free tokens.")

    def _compute(self, predictions, references, per_sample: bool = False) -> dict:
        return compute("bleu", predictions, references, per_sample)

"""ROUGE-L (pycocoevalcap, LCS F-measure with beta 1.2) as an offline ``evaluate`` metric."""
import evaluate

from xrbench.metrics.nlg.module import compute, metric_info


class RougeL(evaluate.Metric):
    """Mean per-report ROUGE-L; ``per_sample_rouge_l`` averages to it."""

    def _info(self) -> evaluate.MetricInfo:
        return metric_info("rouge_l", "ROUGE-L by pycocoevalcap on lower-cased, punctuation-free tokens.")

    def _compute(self, predictions, references, per_sample: bool = False) -> dict:
        return compute("rouge_l", predictions, references, per_sample)

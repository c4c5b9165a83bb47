"""CIDEr-D (pycocoevalcap's ``Cider``: clipped n-gram counts, Gaussian length penalty, x10) as an
offline ``evaluate`` metric. IDF comes from the references of the corpus being scored."""
import evaluate

from xrbench.metrics.nlg.module import compute, metric_info


class CiderD(evaluate.Metric):
    """Corpus CIDEr-D; ``per_sample_cider_d`` use the whole corpus's IDF and average to it."""

    def _info(self) -> evaluate.MetricInfo:
        return metric_info("cider_d", "CIDEr-D by pycocoevalcap on lower-cased, punctuation-free tokens.")

    def _compute(self, predictions, references, per_sample: bool = False) -> dict:
        return compute("cider_d", predictions, references, per_sample)

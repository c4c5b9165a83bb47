"""What the evaluate wrappers (bleu.py, rouge_l.py, cider_d.py, meteor.py) share.

Each wrapper is a one-class file so that ``evaluate.load("<path>/bleu.py")`` finds its metric
(evaluate takes the first ``EvaluationModule`` subclass in the loaded file, so the files import
functions from here, never classes). The numbers come from :mod:`xrbench.metrics.nlg.scores`.
"""
from __future__ import annotations

import datasets
import evaluate

from xrbench.metrics.nlg.scores import KEYS, meteor_missing_reason, score

_CITATIONS = {
    "bleu": "Papineni et al., BLEU: a Method for Automatic Evaluation of Machine Translation, ACL 2002.",
    "rouge_l": "Lin, ROUGE: A Package for Automatic Evaluation of Summaries, ACL Workshop 2004.",
    "cider_d": "Vedantam et al., CIDEr: Consensus-based Image Description Evaluation, CVPR 2015.",
    "meteor": "Denkowski and Lavie, Meteor Universal: Language Specific Translation Evaluation, WMT 2014.",
}
_INPUTS = """predictions: list of generated reports (str); references: one reference report (str) per
prediction. Text is tokenised by xrbench.metrics.nlg.scores.tokenize (pycocoevalcap's
PTBTokenizer and punctuation removal, computed in Python). compute(..., per_sample=True) adds per_sample_<key> lists (per report)."""


def metric_info(family: str, description: str) -> evaluate.MetricInfo:
    return evaluate.MetricInfo(
        description=description, citation=_CITATIONS[family], inputs_description=_INPUTS,
        features=datasets.Features({"predictions": datasets.Value("string"),
                                    "references": datasets.Value("string")}),
        codebase_urls=["https://github.com/salaniz/pycocoevalcap"])


def compute(family: str, predictions: list[str], references: list[str], per_sample: bool) -> dict:
    """The family's corpus values (and per-sample lists); a metric that cannot be computed here
    is ``None`` with ``<key>_missing`` saying why."""
    corpus, each = score((family,), list(predictions), list(references))
    out: dict = dict(corpus)
    for key in KEYS[family]:
        if key not in corpus:
            out[key] = None
            out[f"{key}_missing"] = meteor_missing_reason()
        elif per_sample:
            out[f"per_sample_{key}"] = each[key]
    return out

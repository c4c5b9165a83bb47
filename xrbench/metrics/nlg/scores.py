"""Report-generation NLG scores through pycocoevalcap: BLEU-1..4, ROUGE-L, CIDEr-D, METEOR (Java).

Text goes through :func:`tokenize` (pure Python, no Java) and then straight into pycocoevalcap's
own scorers, so every number is pycocoevalcap's. One reference per prediction (report generation
has one reference report per study).

Corpus vs per-sample. ``nlg_scores`` gives the corpus values. ``nlg_per_sample`` gives what each
scorer returns per report:

* ROUGE-L: the corpus value is the mean of the per-sample values.
* CIDEr-D: per-sample values use the IDF of the *whole* corpus (CIDEr needs the corpus). Their
  mean is the corpus value. Resampling them for a bootstrap keeps the IDF fixed.
* BLEU-n: per-sample values are pycocoevalcap's sentence-level BLEU (its 1e-9/1e-15 smoothing,
  brevity penalty per sentence). Corpus BLEU pools n-gram counts over the corpus, so it is **not**
  the mean of the per-sample values.
* METEOR: per-sample segment scores; the corpus value is METEOR's aggregate over pooled
  statistics, not their mean.

METEOR runs pycocoevalcap's METEOR 1.5 jar. Without ``java`` on PATH it is not computed: the
``meteor`` key is absent and :func:`meteor_missing_reason` says why. Nothing stands in for it.
"""
from __future__ import annotations

import re
import shutil
import threading

from xrbench.errors import DataError

#: a token: letters/digits, joined across an internal "-" or "/" and across a decimal point
_TOKEN = re.compile(r"[^\W_]+(?:(?:[-/]|(?<=\d)\.(?=\d))[^\W_]+)*")

def tokenize(text: str) -> str:
    """Lower-case, split off punctuation and drop it; tokens joined by single spaces.

    On most report text this is what pycocoevalcap's PTBTokenizer followed by its punctuation
    removal gives ("4.2 cm", "x-ray", "r/o", "t11-t12" stay one token; ".,;:!?'\\"" are dropped),
    without Java. Where it differs (checked against PTBTokenizer, tests/test_metrics_independent.py):
    parentheses are dropped (lower-cased PTB emits "-lrb-"/"-rrb-", which pycocoevalcap's upper-case
    punctuation list misses); clitics lose the apostrophe ("patient s", "can t"; PTB "patient 's",
    "ca n't"); symbols PTB keeps are dropped ("%", "&", "~" and MIMIC's "___" placeholder); a comma,
    colon or non-decimal period splits a token ("3 000", "1 00", "e g"; PTB "3,000", "1:00", "e.g.").
    Scores therefore differ slightly from a PTB pipeline on such text; generated and reference
    reports are tokenised alike.
    """
    return " ".join(_TOKEN.findall(str(text).lower()))


def _pairs(predictions: list[str], references: list[str]) -> tuple[dict, dict]:
    """pycocoevalcap's input: ``gts`` and ``res`` dicts of one tokenised string per id."""
    if len(predictions) != len(references):
        raise DataError(f"NLG scores need one reference per prediction, got {len(predictions)} "
                        f"predictions and {len(references)} references")
    gts = {i: [tokenize(r)] for i, r in enumerate(references)}
    res = {i: [tokenize(p)] for i, p in enumerate(predictions)}
    return gts, res


def _bleu(gts: dict, res: dict) -> tuple[list[float], list[list[float]]]:
    from pycocoevalcap.bleu.bleu import Bleu

    score, scores = Bleu(4).compute_score(gts, res, verbose=0)
    return [float(s) for s in score], [[float(v) for v in s] for s in scores]


def _rouge(gts: dict, res: dict) -> tuple[float, list[float]]:
    from pycocoevalcap.rouge.rouge import Rouge

    score, scores = Rouge().compute_score(gts, res)
    return float(score), [float(v) for v in scores]


def _cider(gts: dict, res: dict) -> tuple[float, list[float]]:
    """pycocoevalcap's Cider (which is CIDEr-D: clipped counts, Gaussian length penalty, x10).

    With no n-gram in any reference pycocoevalcap asserts on an empty document-frequency table;
    the formula's value there is 0 for every sample (no reference n-gram to match).
    """
    from pycocoevalcap.cider.cider import Cider

    if not any(r[0] for r in gts.values()):
        return 0.0, [0.0] * len(gts)
    score, scores = Cider().compute_score(gts, res)
    return float(score), [float(v) for v in scores]


# -- METEOR: an external Java program, started once per process --------------------------------

_meteor_lock = threading.Lock()
_meteor_proc = None
_meteor_error: str | None = None


def meteor_missing_reason() -> str | None:
    """None when METEOR can be computed here, otherwise why it is not."""
    if shutil.which("java") is None:
        return ("METEOR not computed: 'java' is not on PATH (pycocoevalcap's METEOR 1.5 is a Java "
                "program); install a Java runtime to report it")
    return _meteor_error


def _discard(proc) -> None:
    """Let a failed pycocoevalcap Meteor be collected: it keeps its lock when compute_score raises, and
    its ``__del__`` (which kills the JVM) takes that lock, so it would hang forever."""
    lock = getattr(proc, "lock", None)
    if lock is not None and lock.locked():
        lock.release()


def _meteor(gts: dict, res: dict) -> tuple[float, list[float]] | None:
    """(corpus, per-sample) METEOR, or None when it cannot be computed (reason recorded)."""
    global _meteor_proc, _meteor_error
    if shutil.which("java") is None:
        return None
    with _meteor_lock:
        try:
            if _meteor_proc is None:
                from pycocoevalcap.meteor.meteor import Meteor

                _meteor_proc = Meteor()
            score, scores = _meteor_proc.compute_score(gts, res)
        except (OSError, ValueError) as exc:  # JVM failed to start or died: no number, say why
            _discard(_meteor_proc)
            _meteor_proc = None
            _meteor_error = f"METEOR not computed: the METEOR Java process failed ({type(exc).__name__}: {exc})"
            return None
    _meteor_error = None
    return float(score), [float(v) for v in scores]


def _bleu_family(gts: dict, res: dict) -> tuple[dict[str, float], dict[str, list[float]]]:
    bleu, each = _bleu(gts, res)
    return ({f"bleu{n + 1}": bleu[n] for n in range(4)}, {f"bleu{n + 1}": each[n] for n in range(4)})


def _single(key: str, fn):
    def family(gts: dict, res: dict) -> tuple[dict[str, float], dict[str, list[float]]]:
        out = fn(gts, res)
        return ({}, {}) if out is None else ({key: out[0]}, {key: out[1]})
    return family


#: scorer family -> fn(gts, res) -> (corpus values, per-sample values)
SCORERS = {"bleu": _bleu_family, "rouge_l": _single("rouge_l", _rouge), "cider_d": _single("cider_d", _cider),
           "meteor": _single("meteor", _meteor)}
#: the keys each scorer family produces
KEYS = {"bleu": ("bleu1", "bleu2", "bleu3", "bleu4"), "rouge_l": ("rouge_l",), "cider_d": ("cider_d",),
        "meteor": ("meteor",)}


def score(families: tuple[str, ...] | list[str], predictions: list[str], references: list[str]
          ) -> tuple[dict[str, float], dict[str, list[float]]]:
    """(corpus, per-sample) values of the named scorer families (``SCORERS``), in one pass.

    An empty corpus gives NaN (undefined), never 0. METEOR's keys are absent when it cannot be
    computed (:func:`meteor_missing_reason`).
    """
    unknown = [f for f in families if f not in SCORERS]
    if unknown:
        raise KeyError(f"unknown NLG scorer(s) {unknown}; known: {sorted(SCORERS)}")
    gts, res = _pairs(predictions, references)
    corpus: dict[str, float] = {}
    each: dict[str, list[float]] = {}
    for fam in families:
        if not gts:
            if fam != "meteor" or meteor_missing_reason() is None:
                corpus.update({k: float("nan") for k in KEYS[fam]})
                each.update({k: [] for k in KEYS[fam]})
            continue
        c, e = SCORERS[fam](gts, res)
        corpus.update(c)
        each.update(e)
    return corpus, each


def nlg_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Corpus ``bleu1..bleu4, rouge_l, cider_d``, and ``meteor`` when Java is present."""
    return score(tuple(SCORERS), predictions, references)[0]


def nlg_per_sample(predictions: list[str], references: list[str]) -> dict[str, list[float]]:
    """Per-report values of the same keys, for bootstrap CIs (the module docstring says which of
    them average to the corpus value and which do not)."""
    return score(tuple(SCORERS), predictions, references)[1]

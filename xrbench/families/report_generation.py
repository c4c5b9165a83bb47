"""Report generation: a small transformer decoder on the frozen patch grid writes each study's report.

Data. The unit is the study (MIMIC ``group``): one report per study, generated from the grid of
the study's first frontal image (dataset order; the first image when none is frontal). Averaging
the grids of a study's images would mix frontal and lateral geometry in one position embedding,
so one image it is. The target is the FINDINGS section, or the IMPRESSION when a study has no
findings (about a fifth of MIMIC studies); a study with neither is not kept.

Text. Reports are cut into the lower-case word tokens of :func:`xrbench.metrics.nlg.tokenize`
(exactly the tokens the NLG metrics see) plus the clause punctuation ``. , ; :``, which the NLG
metrics drop but the clinical labeller needs (negation scope ends at a sentence or a comma). The
word-level vocabulary comes from the training reports only: tokens seen at least ``min_count``
(2) times, plus ``<pad> <bos> <eos> <unk>``.

Head. The memory is a linear projection of the (train-standardised) grid tokens plus a learned 2D
position embedding (row + column); a pre-norm decoder (``layers`` x self-attention, cross-attention,
feed-forward; tied input/output embeddings) is trained from scratch with teacher forcing. The
learning rate (``lrs``) and the number of epochs (every ``eval_every`` up to ``epochs``) are chosen
on val by CIDEr-D of greedy decodes (val's own IDF); test is decoded once with the chosen checkpoint, greedily
(``beam: 1``) or by beam search (sum of log-probabilities, no length penalty).

``d_model: auto`` is 512 (the issue's size) from ``AUTO_D_MIN_TRAIN`` training studies on and 128
below. Measured on the 95-study demo, 2 shared CPU threads: a training step (16 reports) takes
0.1-0.2 s at d=128; 5 epochs at d=512 took 87 s against 68 s at d=128 under heavy load, and a
d=512 decoder is 9.7 M parameters for a ~130-word vocabulary. An integer fixes it.

Scorer (per-unit sufficient statistics; a bootstrap resamples them):

* BLEU-1..4: pycocoevalcap's per-report clipped n-gram matches, candidate n-gram counts,
  hypothesis length and closest reference length; corpus BLEU is pycocoevalcap's formula on their
  sums (equal to ``Bleu(4)`` on the same corpus, tested).
* ROUGE-L: pycocoevalcap's per-report LCS F; the corpus value is their mean.
* CIDEr-D: pycocoevalcap's ``CiderScorer`` per report, with the document frequencies of *all*
  test references (computed once, in :meth:`prepare`): their mean is pycocoevalcap's corpus
  CIDEr-D. A bootstrap replicate's CIDEr-D is then the mean of these fixed per-report values
  (the IDF is not recomputed on each resample, which would change the metric itself).
* Clinical efficacy: :mod:`xrbench.text.labeller` on the generated and the reference report alike;
  per-report TP/FP/FN over the 14 observations give example-based F1 (``ce_f1``, primary-able),
  precision, recall and macro F1 (``ce_macro_f1``).
* METEOR: the per-report METEOR 1.5 segment score (Java), averaged. That is not METEOR's own
  corpus aggregate (pooled inside the Java program), so it is named ``meteor_seg``; without Java it
  is absent and the record's hparams say why.
"""
from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from typing import Any, ClassVar, Sequence

import numpy as np

from xrbench.data.sample import Sample
from xrbench.errors import ConfigError, DataError
from xrbench.families.base import FAMILIES, HeadOutput, SplitData, TaskFamily, Unit
from xrbench.metrics.nlg import meteor_missing_reason, score as nlg_score, tokenize
from xrbench.models.meta import grid_pool
from xrbench.text.labeller import OBSERVATIONS, ce_scores, label_report

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD, BOS, EOS, UNK = range(4)
PUNCT = (".", ",", ";", ":")
_PUNCT_SPLIT = re.compile(r"([.,;:])(?=\s|$)")
#: training studies from which ``d_model: auto`` is the full 512
AUTO_D_MIN_TRAIN = 1000
FRONTAL = ("PA", "AP")
NLG_METRICS = ("bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "cider_d", "meteor_seg")
CE_METRICS = ("ce_f1", "ce_precision", "ce_recall", "ce_macro_f1")
DEFAULTS = dict(d_model="auto", layers=3, heads=4, ff_mult=2, max_len=128, min_count=2, lrs=(3e-4, 1e-3),
                epochs=10, eval_every=5, batch_size=16, weight_decay=0.01, dropout=0.1, beam=1,
                shuffle_control=False)


#: what a report task keeps (MIMIC-CXR's reports ship with the PhysioNet mimic-cxr project, not
#: mimic-cxr-jpg: a user may have the images without them)
REPORT_SAMPLES = ("samples with a report (a FINDINGS or IMPRESSION section; were the reports found? "
                  "see docs/datasets.md)")


def report_text(sample: Sample) -> str:
    """The generation target: FINDINGS, else IMPRESSION, else '' (the study is not kept)."""
    text = sample.text or {}
    return (text.get("findings") or text.get("impression") or "").strip()


def pieces(text: str) -> list[str]:
    """NLG word tokens plus clause punctuation, in order (``tokenize`` of their join is the text's)."""
    out: list[str] = []
    for chunk in _PUNCT_SPLIT.split(str(text).lower()):
        out += [chunk] if chunk in PUNCT else tokenize(chunk).split()
    return out


def detokenize(tokens: Sequence[str]) -> str:
    return re.sub(r" ([.,;:])", r"\1", " ".join(tokens))


class Vocab:
    """Word-level vocabulary of the training reports (``min_count``), with the four specials."""

    def __init__(self, texts: Sequence[str], min_count: int):
        counts = Counter(t for s in texts for t in pieces(s))
        self.itos = list(SPECIALS) + sorted(t for t, c in counts.items() if c >= min_count)
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, max_len: int) -> list[int]:
        return [BOS] + [self.stoi.get(t, UNK) for t in pieces(text)][:max_len - 1] + [EOS]

    def decode(self, ids: Sequence[int]) -> str:
        words = []
        for i in ids:
            if i == EOS:
                break
            if i not in (PAD, BOS, UNK):
                words.append(self.itos[i])
        return detokenize(words)


# -- scorer pieces (pycocoevalcap's own cooking, per report) ------------------------------------

def bleu_stats(hyp: str, ref: str) -> dict:
    """pycocoevalcap's per-report BLEU counts (one reference, 'closest' length)."""
    from pycocoevalcap.bleu.bleu_scorer import cook_refs, cook_test

    c = cook_test(hyp, cook_refs([ref]), eff="closest")
    return {"bleu_correct": [float(v) for v in c["correct"]], "bleu_guess": [float(v) for v in c["guess"]],
            "bleu_hyp_len": float(c["testlen"]), "bleu_ref_len": float(c["reflen"])}


def corpus_bleu(correct: np.ndarray, guess: np.ndarray, hyp_len: float, ref_len: float) -> list[float]:
    """pycocoevalcap's ``BleuScorer.compute_score`` on summed counts (its 1e-15/1e-9 guards)."""
    small, tiny = 1e-9, 1e-15
    out, bleu = [], 1.0
    for k in range(4):
        bleu *= float(correct[k] + tiny) / (guess[k] + small)
        out.append(bleu ** (1.0 / (k + 1)))
    ratio = (hyp_len + tiny) / (ref_len + small)
    if ratio < 1:
        out = [b * math.exp(1 - 1 / ratio) for b in out]
    return out


def cider_doc_freq(refs: Sequence[str]) -> tuple[dict, int]:
    """(n-gram -> number of references holding it, number of references) of a tokenised corpus."""
    from pycocoevalcap.cider.cider_scorer import cook_refs

    df: dict = defaultdict(float)
    for r in refs:
        for ngram in set(ng for cooked in cook_refs([r]) for ng in cooked):
            df[ngram] += 1
    return dict(df), len(refs)


def cider_d(hyp: str, ref: str, df: dict, n_docs: int) -> float:
    """pycocoevalcap's CIDEr-D of one report, with a corpus's document frequencies held fixed."""
    from pycocoevalcap.cider.cider_scorer import CiderScorer, cook_refs, cook_test

    class Fixed(CiderScorer):
        # compute_cider sets ref_len = log(len(crefs)); the corpus's value is kept instead
        ref_len = property(lambda self: math.log(float(n_docs)), lambda self, v: None)

    sc = Fixed(n=4, sigma=6.0)
    sc.document_frequency = defaultdict(float, df)
    sc.crefs, sc.ctest = [cook_refs([ref])], [cook_test(hyp)]
    return float(sc.compute_cider()[0])


@FAMILIES.register("report-generation")
class ReportGeneration(TaskFamily):
    """One generated report per study from frozen patch features; NLG and clinical-efficacy metrics."""

    kept_samples: ClassVar[str] = REPORT_SAMPLES

    def check(self) -> None:
        if not grid_pool(self.spec.features):
            raise ConfigError(f"task {self.spec.name}: family 'report-generation' reads the patch grid "
                              f"(features: patches), not {self.spec.features!r}")
        if self.spec.protocol.name != "decoder":
            raise ConfigError(f"task {self.spec.name}: key 'protocol.name': family 'report-generation' has "
                              f"the head 'decoder', not {self.spec.protocol.name!r}")
        unknown = sorted(set(self.spec.protocol.args) - set(DEFAULTS))
        if unknown:
            raise ConfigError(f"task {self.spec.name}: key 'protocol.args': unknown {unknown}; the decoder "
                              f"takes {', '.join(DEFAULTS)}")
        self.args()

    def args(self) -> dict:
        a = {**DEFAULTS, **self.spec.protocol.args}
        if a["d_model"] != "auto" and not (isinstance(a["d_model"], int) and a["d_model"] % a["heads"] == 0):
            raise ConfigError(f"task {self.spec.name}: key 'protocol.args.d_model': 'auto' or an integer "
                              f"divisible by heads={a['heads']}, not {a['d_model']!r}")
        if not (isinstance(a["beam"], int) and a["beam"] >= 1):
            raise ConfigError(f"task {self.spec.name}: key 'protocol.args.beam': an integer >= 1")
        return a

    @classmethod
    def known_metrics(cls) -> list[str]:
        return [*NLG_METRICS, *CE_METRICS]

    # -- data -----------------------------------------------------------------------------
    def has_target(self, sample: Sample) -> bool:
        return bool(report_text(sample))

    def target(self, sample: Sample) -> str:
        return report_text(sample)

    def units(self, samples: Sequence[Sample]) -> list[Unit]:
        """One unit per study; its first row is the image the report is generated from."""
        groups: dict[str, list[int]] = {}
        for i, s in enumerate(samples):
            groups.setdefault(s.group or s.id, []).append(i)
        out = []
        for g, rows in groups.items():
            front = [r for r in rows if str(samples[r].meta.get("view") or "").upper() in FRONTAL]
            rows = front[:1] + [r for r in rows if r not in front[:1]]
            out.append(Unit(g, samples[rows[0]].patient, g, rows))
        return out

    def boot_unit(self, unit: Unit) -> str:
        return {"patient": unit.patient, "group": unit.group, "sample": unit.id}[self.spec.bootstrap.unit]

    def boot_unit_name(self) -> str:
        return {"group": "study"}.get(self.spec.bootstrap.unit, self.spec.bootstrap.unit)

    def prepare(self, splits: dict[str, list[Sample]]) -> None:
        """CIDEr-D's document frequencies from the references of every test study."""
        test = splits["test"]
        refs = [tokenize(self.truth(u, test)) for u in self.units(test)]
        self.context["cider_df"], self.context["cider_n"] = cider_doc_freq(refs)

    # -- head -----------------------------------------------------------------------------
    def fit_predict(self, train: SplitData, val: SplitData, test: SplitData, *, seed: int,
                    device: str) -> HeadOutput:
        """``shuffle_control: true`` trains on grids permuted across training studies (the control
        that a decoder reading the image beats)."""
        from xrbench.families import report_decoder as dec

        self.prepare({"test": test.samples})
        a = self.args()
        data = {k: self._unit_data(d) for k, d in (("train", train), ("val", val), ("test", test))}
        if a["shuffle_control"]:  # the control: grids permuted across training studies, reports kept
            g, refs, n_imp = data["train"]
            data["train"] = (g[np.random.default_rng(seed).permutation(len(g))], refs, n_imp)
        vocab = Vocab(data["train"][1], a["min_count"])
        d_model = a["d_model"] if a["d_model"] != "auto" else (512 if len(data["train"][1]) >= AUTO_D_MIN_TRAIN
                                                               else 128)
        val_df = cider_doc_freq([tokenize(r) for r in data["val"][1]])

        def val_score(texts: list[str]) -> float:
            return float(np.mean([cider_d(tokenize(h), tokenize(r), *val_df) for h, r in zip(texts, data["val"][1])]))

        fit = dec.train_select(data["train"], data["val"], vocab, select=val_score, seed=seed, device=device,
                               d_model=d_model, **{k: a[k] for k in ("layers", "heads", "ff_mult", "max_len", "lrs",
                                                                      "epochs", "eval_every", "batch_size",
                                                                      "weight_decay", "dropout")})
        preds = dec.generate(fit.model, fit.norm, data["test"][0], vocab, max_len=a["max_len"], beam=a["beam"],
                             batch_size=a["batch_size"], device=device)
        hp = {"lr": fit.lr, "epochs": fit.epochs, "val_curve": fit.curve, "d_model": d_model, "layers": a["layers"],
              "heads": a["heads"], "ff_mult": a["ff_mult"], "max_len": a["max_len"], "beam": a["beam"],
              "vocab_size": len(vocab), "min_count": a["min_count"], "grid": list(train.features.shape[1:3]),
              "n_params": fit.n_params, "shuffle_control": bool(a["shuffle_control"]), "target": "findings, else impression",
              "train_from_impression": data["train"][2], "unit_image": "first frontal image of the study"}
        why = meteor_missing_reason()
        if why:
            hp["meteor_missing"] = why
        return HeadOutput(preds, hp, fit.val_score, {})

    def _unit_data(self, split: SplitData) -> tuple[np.ndarray, list[str], int]:
        """(grid of each study's first image [U, h, w, D], its reference, studies whose reference is
        the impression)."""
        units = self.units(split.samples)
        grids = split.features[np.array([u.rows[0] for u in units], dtype=np.int64)]
        refs = [self.truth(u, split.samples) for u in units]
        n_imp = sum(not (split.samples[u.rows[0]].text or {}).get("findings") for u in units)
        return grids, refs, int(n_imp)

    # -- scorer -----------------------------------------------------------------------------
    def unit_stats(self, truth: Any, prediction: Any, state: dict) -> dict:
        hyp, ref = tokenize(prediction), tokenize(truth)
        g, r = label_report(prediction), label_report(truth)
        gp = np.array([g[o] == 1.0 for o in OBSERVATIONS])
        rp = np.array([r[o] == 1.0 for o in OBSERVATIONS])
        out = {**bleu_stats(hyp, ref),
               "rouge_l": _rouge(hyp, ref),
               "cider_d": cider_d(hyp, ref, self.context["cider_df"], self.context["cider_n"]),
               "ce_tp": (gp & rp).astype(float).tolist(), "ce_fp": (gp & ~rp).astype(float).tolist(),
               "ce_fn": (~gp & rp).astype(float).tolist()}
        if "meteor_seg" in self.spec.metrics and meteor_missing_reason() is None:
            each = nlg_score(("meteor",), [prediction], [truth])[1]
            if "meteor" in each:
                out["meteor_seg"] = float(each["meteor"][0])
        return out

    def stack(self, stats: list[dict]) -> dict[str, np.ndarray]:
        if not stats:
            return {}
        keys = set(stats[0])
        if any(set(s) != keys for s in stats):
            raise DataError("report-generation statistics do not all carry the same keys (METEOR computed "
                            "for some reports only?)")
        return {k: np.asarray([s[k] for s in stats], dtype=np.float64) for k in stats[0]}

    def aggregate(self, table: dict[str, np.ndarray], rows: np.ndarray, state: dict) -> dict[str, float]:
        t = {k: v[rows] for k, v in table.items()}
        vals: dict[str, float] = {}
        if len(rows):
            b = corpus_bleu(t["bleu_correct"].sum(0), t["bleu_guess"].sum(0), t["bleu_hyp_len"].sum(),
                            t["bleu_ref_len"].sum())
            vals.update({f"bleu{k + 1}": b[k] for k in range(4)})
        else:
            vals.update({f"bleu{k + 1}": float("nan") for k in range(4)})
        for k in ("rouge_l", "cider_d", "meteor_seg"):
            if k in t:
                vals[k] = float(t[k].mean()) if len(rows) else float("nan")
        ce = ce_scores(t["ce_tp"], t["ce_fp"], t["ce_fn"])
        vals.update({"ce_f1": ce["example_f1"], "ce_precision": ce["example_precision"],
                     "ce_recall": ce["example_recall"], "ce_macro_f1": ce["macro_f1"]})
        return {k: vals[k] for k in self.spec.metrics if k in vals}

    def prediction_from_row(self, row: dict, *, path, line: int) -> Any:
        pred = super().prediction_from_row(row, path=path, line=line)
        if not isinstance(pred, str):
            raise DataError(f"expected the generated report as a string, got {type(pred).__name__}",
                            path=path, row=line, field="prediction")
        return pred


def _rouge(hyp: str, ref: str) -> float:
    """pycocoevalcap's ROUGE-L F of one report; 0 when either side has no token (it divides by zero)."""
    from pycocoevalcap.rouge.rouge import Rouge

    if not hyp.split() or not ref.split():
        return 0.0
    return float(Rouge().calc_score([hyp], [ref]))


__all__ = ["ReportGeneration", "Vocab", "bleu_stats", "cider_d", "cider_doc_freq", "corpus_bleu", "pieces",
           "report_text"]

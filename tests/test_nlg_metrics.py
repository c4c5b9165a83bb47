"""NLG metrics: our numbers are pycocoevalcap's, maxima on identical corpora, no crash on empty text,
METEOR absent (with a reason) without Java, and the evaluate wrappers load offline by path."""
from __future__ import annotations

import math
import shutil
import threading

import pytest

from xrbench.errors import DataError
from xrbench.metrics.nlg import metric_path, nlg_per_sample, nlg_scores, scores, tokenize

REFERENCES = [
    "The heart size is normal. The lungs are clear. No pleural effusion or pneumothorax.",
    "Mild cardiomegaly. No focal consolidation. No pneumothorax.",
    "Small left pleural effusion with adjacent atelectasis.",
    "Right lower lobe consolidation concerning for pneumonia.",
    "Endotracheal tube terminates 4.5 cm above the carina. Lungs are clear.",
    "Moderate pulmonary edema and bilateral pleural effusions.",
    "No acute cardiopulmonary process.",
    "Large right pneumothorax with mediastinal shift to the left.",
    "Stable enlarged cardiomediastinal silhouette. No edema.",
    "Right PICC line with tip in the superior vena cava.",
    "Bibasilar atelectasis. No pleural effusion.",
    "A 12 mm nodule in the left upper lobe.",
    "Healed fracture of the right sixth rib.",
    "Interval resolution of the left pleural effusion.",
    "Patchy opacity in the right middle lobe, possibly atelectasis or pneumonia.",
    "Median sternotomy wires. Heart size is enlarged but stable.",
    "Calcified pleural plaques bilaterally, consistent with prior asbestos exposure.",
    "No evidence of pulmonary edema. Small hiatal hernia.",
    "Chest tube in place. Small residual apical pneumothorax.",
    "Low lung volumes with crowding of bronchovascular markings.",
]
PREDICTIONS = [
    "Heart size is normal. Lungs are clear. No effusion or pneumothorax.",
    "Cardiomegaly. No consolidation or pneumothorax.",
    "Small left pleural effusion.",
    "Right lower lobe pneumonia.",
    "Endotracheal tube in good position. The lungs are clear.",
    "Pulmonary edema with small bilateral effusions.",
    "No acute cardiopulmonary abnormality.",
    "Right pneumothorax.",
    "Enlarged cardiomediastinal silhouette, unchanged.",
    "PICC line tip in the SVC.",
    "Atelectasis at both lung bases.",
    "Left upper lobe nodule measuring 12 mm.",
    "Old right rib fracture.",
    "The left pleural effusion has resolved.",
    "Right middle lobe opacity, atelectasis versus pneumonia.",
    "Sternotomy wires. The heart is enlarged.",
    "Bilateral calcified pleural plaques.",
    "No pulmonary edema. Hiatal hernia.",
    "Small apical pneumothorax with chest tube in place.",
    "Low lung volumes.",
]


def _direct(preds: list[str], refs: list[str]) -> tuple[dict, dict]:
    """pycocoevalcap's scorers called directly on the same tokens."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    gts = {i: [tokenize(r)] for i, r in enumerate(refs)}
    res = {i: [tokenize(p)] for i, p in enumerate(preds)}
    b, bs = Bleu(4).compute_score(gts, res, verbose=0)
    r, rs = Rouge().compute_score(gts, res)
    c, cs = Cider().compute_score(gts, res)
    corpus = {"bleu1": b[0], "bleu2": b[1], "bleu3": b[2], "bleu4": b[3], "rouge_l": r, "cider_d": c}
    each = {"bleu1": bs[0], "bleu2": bs[1], "bleu3": bs[2], "bleu4": bs[3], "rouge_l": list(rs), "cider_d": list(cs)}
    return corpus, each


@pytest.fixture
def no_java(monkeypatch):
    monkeypatch.setattr(scores.shutil, "which", lambda name: None)


def test_tokenize_lowercases_and_drops_punctuation_as_ptbtokenizer_does():
    # PTBTokenizer's values (checked against the jar): "(" is "-lrb-", which pycocoevalcap keeps
    assert tokenize("The heart is ENLARGED (4.2 cm); x-ray r/o PTX, T-12 fx. 1. No!") == \
        "the heart is enlarged -lrb- 4.2 cm -rrb- x-ray r/o ptx t-12 fx 1 no"
    assert tokenize("  ...  ") == ""
    assert tokenize("Effusion.Pneumothorax") == "effusion.pneumothorax"  # no space: one PTB word
    assert tokenize("effusion. pneumothorax") == "effusion pneumothorax"


def test_values_equal_pycocoevalcap_called_directly(no_java):
    ours, ours_each = nlg_scores(PREDICTIONS, REFERENCES), nlg_per_sample(PREDICTIONS, REFERENCES)
    theirs, theirs_each = _direct(PREDICTIONS, REFERENCES)
    assert set(ours) == set(theirs)  # METEOR absent without Java
    for k in theirs:
        assert ours[k] == pytest.approx(theirs[k], rel=1e-12, abs=1e-15), k
        assert ours_each[k] == pytest.approx(theirs_each[k], rel=1e-12, abs=1e-15), k
        assert len(ours_each[k]) == len(REFERENCES)
    # sane magnitudes on this corpus: related but far from identical reports
    assert 0.3 < ours["bleu1"] < 0.9 and 0.0 < ours["bleu4"] < ours["bleu1"]
    assert 0.2 < ours["rouge_l"] < 0.9 and 0.3 < ours["cider_d"] < 10


def test_what_decomposes(no_java):
    corpus, each = nlg_scores(PREDICTIONS, REFERENCES), nlg_per_sample(PREDICTIONS, REFERENCES)
    assert corpus["rouge_l"] == pytest.approx(sum(each["rouge_l"]) / len(each["rouge_l"]))
    assert corpus["cider_d"] == pytest.approx(sum(each["cider_d"]) / len(each["cider_d"]))
    # corpus BLEU pools n-gram counts: it is not the mean of sentence-level BLEU
    assert abs(corpus["bleu4"] - sum(each["bleu4"]) / len(each["bleu4"])) > 1e-3


def test_references_against_themselves_give_the_maximum(no_java):
    v = nlg_scores(REFERENCES, REFERENCES)
    for n in range(1, 5):
        assert v[f"bleu{n}"] == pytest.approx(1.0, abs=1e-6)
    assert v["rouge_l"] == pytest.approx(1.0)
    # CIDEr-D's x10 scaling: 10 per report with >= 4 tokens and an n-gram of each order that is
    # not in every reference (idf > 0); a 4-token report has a single 4-gram, still fine
    assert all(len(tokenize(r).split()) >= 4 for r in REFERENCES)
    assert v["cider_d"] == pytest.approx(10.0)
    assert nlg_per_sample(REFERENCES, REFERENCES)["cider_d"] == pytest.approx([10.0] * len(REFERENCES))
    # a 3-token report has no 4-gram: its CIDEr-D tops out at 10 * 3/4
    short = nlg_per_sample(REFERENCES + ["no acute process"], REFERENCES + ["no acute process"])["cider_d"]
    assert short[-1] == pytest.approx(7.5)


def test_empty_predictions_do_not_crash(no_java):
    preds = [""] * 3 + PREDICTIONS[3:]
    v, each = nlg_scores(preds, REFERENCES), nlg_per_sample(preds, REFERENCES)
    assert all(math.isfinite(x) for x in v.values())
    for k in each:
        assert each[k][:3] == [0.0, 0.0, 0.0], k
    everything_empty = nlg_scores([""] * 3, [""] * 3)
    assert everything_empty["cider_d"] == 0.0 and math.isfinite(everything_empty["bleu1"])
    assert all(math.isnan(x) for x in nlg_scores([], []).values())
    with pytest.raises(DataError, match="one reference per prediction"):
        nlg_scores(["a"], ["a", "b"])


def test_meteor_absent_without_java(no_java):
    assert "meteor" not in nlg_scores(PREDICTIONS, REFERENCES)
    assert "meteor" not in nlg_per_sample(PREDICTIONS, REFERENCES)
    reason = scores.meteor_missing_reason()
    assert "java" in reason.lower() and "not computed" in reason


def test_meteor_through_java_when_present(monkeypatch):
    """The Java-present path with a stand-in process: its numbers pass through unchanged."""
    monkeypatch.setattr(scores.shutil, "which", lambda name: "/usr/bin/java")
    calls = []

    class FakeMeteor:
        def compute_score(self, gts, res):
            calls.append((gts, res))
            return 0.25, [0.5] * len(gts)

    monkeypatch.setattr(scores, "_meteor_proc", FakeMeteor())
    v, each = nlg_scores(PREDICTIONS, REFERENCES), nlg_per_sample(PREDICTIONS, REFERENCES)
    assert v["meteor"] == 0.25 and each["meteor"] == [0.5] * len(REFERENCES)
    assert calls[0][1][2] == [tokenize(PREDICTIONS[2])]  # METEOR sees the same tokens as the others
    assert scores.meteor_missing_reason() is None


def test_meteor_process_failure_is_missing_with_reason(monkeypatch):
    monkeypatch.setattr(scores.shutil, "which", lambda name: "/usr/bin/java")

    class Broken:  # pycocoevalcap's Meteor takes its lock, then the JVM's output is empty
        def __init__(self):
            self.lock = threading.Lock()

        def compute_score(self, gts, res):
            self.lock.acquire()
            raise ValueError("could not convert string to float: ''")

    broken = Broken()
    monkeypatch.setattr(scores, "_meteor_proc", broken)
    monkeypatch.setattr(scores, "_meteor_error", None)
    assert "meteor" not in nlg_scores(PREDICTIONS[:3], REFERENCES[:3])
    assert "Java process failed" in scores.meteor_missing_reason()
    assert not broken.lock.locked()  # its __del__ (which takes the lock to kill the JVM) will not hang


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR needs Java")
def test_meteor_real_java_equals_pycocoevalcap():
    from pycocoevalcap.meteor.meteor import Meteor

    ours = nlg_scores(PREDICTIONS, REFERENCES)
    gts = {i: [tokenize(r)] for i, r in enumerate(REFERENCES)}
    res = {i: [tokenize(p)] for i, p in enumerate(PREDICTIONS)}
    direct, _ = Meteor().compute_score(gts, res)
    assert ours["meteor"] == pytest.approx(direct) and 0.1 < ours["meteor"] < 0.9


def test_evaluate_load_by_path_offline(no_java, tmp_path, monkeypatch):
    evaluate = pytest.importorskip("evaluate")
    monkeypatch.setattr(evaluate.config, "HF_MODULES_CACHE", tmp_path / "modules")
    theirs, theirs_each = _direct(PREDICTIONS, REFERENCES)
    bleu = evaluate.load(metric_path("bleu")).compute(predictions=PREDICTIONS, references=REFERENCES,
                                                      per_sample=True)
    assert bleu["bleu4"] == pytest.approx(theirs["bleu4"])
    assert bleu["per_sample_bleu2"] == pytest.approx(theirs_each["bleu2"])
    cider = evaluate.load(metric_path("cider_d")).compute(predictions=PREDICTIONS, references=REFERENCES)
    assert cider == {"cider_d": pytest.approx(theirs["cider_d"])}
    meteor = evaluate.load(metric_path("meteor")).compute(predictions=PREDICTIONS, references=REFERENCES)
    assert meteor["meteor"] is None and "java" in meteor["meteor_missing"]
    from xrbench.metrics.nlg.rouge_l import RougeL  # the same classes import directly

    rouge = RougeL().compute(predictions=PREDICTIONS, references=REFERENCES)
    assert rouge["rouge_l"] == pytest.approx(theirs["rouge_l"])
    with pytest.raises(KeyError, match="known: bleu"):
        metric_path("spice")

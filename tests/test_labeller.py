"""The rule-based CheXpert-style labeller and clinical efficacy.

tests/data/labeller_sentences.tsv holds sentences written for these tests (real radiology phrasing:
negation scope, hedging, comparisons, several findings per sentence, synonyms), one expected label
per (sentence, observation): 1, 0, -1, or empty for "not mentioned".
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_recall_fscore_support

from xrbench.errors import DataError
from xrbench.text import OBSERVATIONS, ce_scores, clinical_efficacy, label_report, label_reports

DATA = Path(__file__).parent / "data" / "labeller_sentences.tsv"
NAN = float("nan")


def _rows() -> list[dict]:
    with open(DATA, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _cls(v: float) -> str:
    return "blank" if math.isnan(v) else {1.0: "pos", 0.0: "neg", -1.0: "unc"}[v]


def test_sentence_file_covers_the_brief():
    rows = _rows()
    assert len({r["sentence"] for r in rows}) >= 150
    assert {r["observation"] for r in rows} == set(OBSERVATIONS)
    assert {r["label"] for r in rows} == {"1", "0", "-1", ""}


def test_f1_over_sentence_observation_decisions():
    rows = _rows()
    want = [_cls(float(r["label"]) if r["label"] else NAN) for r in rows]
    got = [_cls(label_report(r["sentence"])[r["observation"]]) for r in rows]
    f1 = f1_score(want, got, labels=["pos", "neg", "unc"], average=None)
    macro = float(np.mean(f1))
    wrong = [f"{r['sentence']!r} {r['observation']}: want {w}, got {g}"
             for r, w, g in zip(rows, want, got) if w != g]
    assert macro >= 0.95 and min(f1) >= 0.9, "\n".join(wrong)
    blanks = [g for w, g in zip(want, got) if w == "blank"]  # look-alikes are not mentions
    assert blanks.count("blank") >= 0.9 * len(blanks)


@pytest.mark.parametrize("text, expected", [
    ("No pneumothorax or effusion.", {"Pneumothorax": 0, "Pleural Effusion": 0}),
    ("No pneumothorax, small left effusion.", {"Pneumothorax": 0, "Pleural Effusion": 1}),
    ("Cannot exclude pneumonia.", {"Pneumonia": -1}),
    ("Opacity may represent atelectasis.", {"Lung Opacity": 1, "Atelectasis": -1}),
    ("Unchanged cardiomegaly. Stable small effusion.", {"Cardiomegaly": 1, "Pleural Effusion": 1}),
    ("Resolved pneumothorax. Interval resolution of effusion.", {"Pneumothorax": 0, "Pleural Effusion": 0}),
    ("Enlarged heart. PTX. Pleural fluid. ET tube and PICC.",
     {"Cardiomegaly": 1, "Pneumothorax": 1, "Pleural Effusion": 1, "Support Devices": 1}),
])
def test_named_rules(text, expected):
    got = label_report(text)
    assert {k: got[k] for k in expected} == {k: float(v) for k, v in expected.items()}
    unmentioned = set(OBSERVATIONS) - set(expected) - {"No Finding"}
    assert all(math.isnan(got[k]) for k in unmentioned), {k: got[k] for k in unmentioned if got[k] == got[k]}


def test_report_aggregation_and_no_finding():
    # positive beats uncertain beats negative, across sentences
    r = label_report("No effusion on the right. Possible small left effusion. Small left effusion on the lateral view.")
    assert r["Pleural Effusion"] == 1
    assert label_report("No effusion. Possible effusion.")["Pleural Effusion"] == -1
    # No Finding: nothing but Support Devices positive or uncertain
    assert label_report("ET tube in place. No pneumothorax.")["No Finding"] == 1
    assert math.isnan(label_report("ET tube in place. Possible pneumothorax.")["No Finding"])
    assert math.isnan(label_report("Mild cardiomegaly.")["No Finding"])
    assert all(math.isnan(v) for v in label_report("   ").values())  # an empty report says nothing


def test_sentences_and_wrapped_lines():
    # MIMIC wraps lines mid-sentence; "4.2 cm" and "vs." do not end a sentence
    text = "FINDINGS: There is no pneumothorax or\nleft pleural effusion.\n\nA 4.2 cm mass, atelectasis vs. pneumonia."
    r = label_report(text)
    assert (r["Pneumothorax"], r["Pleural Effusion"], r["Lung Lesion"]) == (0, 0, 1)
    assert (r["Atelectasis"], r["Pneumonia"]) == (-1, -1)


def test_label_reports_matrix():
    y = label_reports(["Mild cardiomegaly.", "No pneumothorax.", ""])
    assert y.shape == (3, 14) and y.dtype == np.float64
    assert y[0, OBSERVATIONS.index("Cardiomegaly")] == 1 and y[1, OBSERVATIONS.index("Pneumothorax")] == 0
    assert y[1, OBSERVATIONS.index("No Finding")] == 1 and np.isnan(y[2]).all()
    assert label_reports([]).shape == (0, 14)


# -- the phantom's reports --------------------------------------------------------------------

#: the phantom's findings behind each observation its reports word explicitly
SOURCES = {"Cardiomegaly": ("Cardiomegaly",), "Enlarged Cardiomediastinum": ("Enlarged Cardiomediastinum",),
           "Edema": ("Edema",), "Consolidation": ("Consolidation",), "Pneumonia": ("Pneumonia",),
           "Atelectasis": ("Atelectasis",), "Pneumothorax": ("Pneumothorax",), "Pleural Effusion": ("Pleural Effusion",),
           "Fracture": ("Fracture",), "Support Devices": ("Support Devices",), "Lung Lesion": ("Nodule", "Mass"),
           "Pleural Other": ("Pleural Other", "Pleural Thickening")}
#: findings the phantom always negates in words when absent and not hedged
ALWAYS_NEGATED = ("Pneumothorax", "Pleural Effusion", "Edema", "Cardiomegaly", "Fracture")


@pytest.fixture(scope="module")
def phantom_cases():
    from xrbench.data.phantom.chest import CHEST_FINDINGS, generate_chest

    busy = {n: 0.3 for n in CHEST_FINDINGS if n != "Lung Lesion"}
    return generate_chest(40, seed=3, size=64, prevalence=busy) + generate_chest(40, seed=4, size=64)


def test_phantom_reports_match_ground_truth(phantom_cases):
    checked = {"pos": 0, "unc": 0, "neg": 0}
    for c in phantom_cases:
        lab = label_report(c.report["findings"] + " " + c.report["impression"])
        for obs, src in SOURCES.items():
            states = [-1.0 if s in c.uncertain else 1.0 if s in c.findings else None for s in src]
            want = 1.0 if 1.0 in states else -1.0 if -1.0 in states else None
            if want is not None:
                assert lab[obs] == want, (obs, c.report)
                checked["pos" if want == 1 else "unc"] += 1
            elif obs in ALWAYS_NEGATED:
                assert lab[obs] == 0, (obs, c.report)
                checked["neg"] += 1
            else:
                assert lab[obs] == 0 or math.isnan(lab[obs]), (obs, c.report)
        if not c.findings and not c.uncertain:
            assert lab["No Finding"] == 1
    assert min(checked.values()) >= 20, checked


def test_phantom_lung_opacity_only_where_written(phantom_cases):
    """Lung Opacity is a parent label in the phantom (derived from its children); the labeller, like
    CheXpert's, labels what is written: opacity, infiltrate, haziness. Never an opacity that is not there."""
    for c in phantom_cases:
        lab = label_report(c.report["findings"] + " " + c.report["impression"])["Lung Opacity"]
        written = {"Lung Opacity", "Pneumonia", "Edema", "Infiltration", "Fibrosis"} & (set(c.findings) | c.uncertain)
        if lab in (1.0, -1.0):
            assert written, c.report
        if {"Pneumonia", "Edema", "Infiltration"} & set(c.findings) - c.uncertain:
            assert lab == 1.0, c.report


# -- clinical efficacy ------------------------------------------------------------------------

GENERATED = ["Mild cardiomegaly. Small left pleural effusion.", "No acute cardiopulmonary process.",
             "Right lower lobe pneumonia.", "ET tube in place. Possible pneumothorax.", "Left rib fracture."]
REFERENCE = ["Moderate cardiomegaly. No effusion.", "Lungs are clear.",
             "Right lower lobe consolidation and pneumonia.", "ET tube in place. Small right pneumothorax.",
             "Left rib fracture. Left pleural effusion."]


def test_clinical_efficacy_by_hand():
    ce = clinical_efficacy(GENERATED, REFERENCE)
    tp, fp, fn = (ce["per_sample"][k] for k in ("tp", "fp", "fn"))
    assert tp.shape == fp.shape == fn.shape == (5, 14) and tp.dtype == np.int8 and ce["labels"] == list(OBSERVATIONS)
    col = OBSERVATIONS.index
    # report 0: cardiomegaly TP, effusion FP; report 3: possible PTX is not positive -> FN
    assert tp[0, col("Cardiomegaly")] == 1 and fp[0, col("Pleural Effusion")] == 1
    assert fn[3, col("Pneumothorax")] == 1 and tp[3, col("Support Devices")] == 1
    assert fn[2, col("Consolidation")] == 1 and tp[1, col("No Finding")] == 1
    # per-report F1: 2/3, 1, 2/3 (TP1 FN1), 2/3 (TP1 FN1), 2/3 (TP1 FN1)
    assert ce["example_f1"] == pytest.approx((2 / 3 * 4 + 1) / 5)
    assert ce["example_precision"] == pytest.approx((0.5 + 1 + 1 + 1 + 1) / 5)
    assert ce["example_recall"] == pytest.approx((1 + 1 + 0.5 + 0.5 + 0.5) / 5)
    assert math.isnan(ce["f1/Edema"]) and ce["f1/Pleural Effusion"] == 0.0 and ce["f1/Cardiomegaly"] == 1.0


def test_clinical_efficacy_equals_sklearn():
    g, r = label_reports(GENERATED) == 1, label_reports(REFERENCE) == 1
    ce = clinical_efficacy(GENERATED, REFERENCE)
    p, rc, f, _ = precision_recall_fscore_support(r, g, average="samples", zero_division=0)
    assert (ce["example_precision"], ce["example_recall"], ce["example_f1"]) == pytest.approx((p, rc, f))
    p, rc, f, _ = precision_recall_fscore_support(r, g, average="micro")
    assert (ce["micro_precision"], ce["micro_recall"], ce["micro_f1"]) == pytest.approx((p, rc, f))
    seen = (g | r).any(0)
    assert ce["macro_f1"] == pytest.approx(f1_score(r[:, seen], g[:, seen], average="macro"))


def test_clinical_efficacy_identity_and_bootstrap_rows():
    ce = clinical_efficacy(REFERENCE, REFERENCE)
    assert ce["example_f1"] == ce["macro_f1"] == ce["micro_f1"] == 1.0
    # a bootstrap replicate resamples reports: ce_scores on resampled rows = CE of the resampled reports
    full = clinical_efficacy(GENERATED, REFERENCE)["per_sample"]
    rows = np.array([0, 0, 3, 4, 2])
    sub = ce_scores(full["tp"][rows], full["fp"][rows], full["fn"][rows])
    direct = clinical_efficacy([GENERATED[i] for i in rows], [REFERENCE[i] for i in rows])
    assert sub == pytest.approx({k: v for k, v in direct.items() if k not in ("per_sample", "labels")}, nan_ok=True)
    # a report with no positive on either side agrees perfectly
    one = clinical_efficacy(["Possible effusion."], ["Possible pneumonia."])
    assert one["example_f1"] == 1.0 and math.isnan(one["macro_f1"])
    assert math.isnan(ce_scores(np.zeros((0, 14)), np.zeros((0, 14)), np.zeros((0, 14)))["example_f1"])
    with pytest.raises(DataError, match="one reference per generated report"):
        clinical_efficacy(["a"], [])

"""report-generation: the scorer's aggregate equals pycocoevalcap on a fixed corpus, references score
the maximum against themselves, decoding and the head are deterministic, saved reports re-score."""
from __future__ import annotations

import json

import numpy as np
import pytest

from xrbench.families import create_family
from xrbench.families.base import Unit, aggregate_with_ci
from xrbench.metrics.nlg import tokenize
from xrbench.tasks.catalog import TaskCatalog

REFS = ["No pneumothorax. Moderate right pleural effusion, small left effusion.",
        "The heart is enlarged (mild cardiomegaly). No pulmonary edema. No pneumothorax.",
        "PA chest radiograph. No cardiomegaly. No focal consolidation. No pleural effusion.",
        "Portable AP chest radiograph. Enteric tube. Consolidation in the lower zone of the left lung.",
        "Possible plate-like atelectasis at the left lung base. No acute rib fracture."]
HYPS = ["No pneumothorax. Small right pleural effusion.",
        "Mild cardiomegaly. No edema.",
        "PA chest radiograph. No cardiomegaly. No pleural effusion. No pneumothorax.",
        "AP chest radiograph. Consolidation in the left lung.",
        ""]


def _family():
    [spec] = TaskCatalog().resolve("mimic-report-generation")
    fam = create_family(spec)
    fam.context["cider_df"], fam.context["cider_n"] = __import__(
        "xrbench.families.report_generation", fromlist=["cider_doc_freq"]).cider_doc_freq([tokenize(r) for r in REFS])
    return fam


def _aggregate(fam, hyps, refs):
    stats = [fam.unit_stats(r, h, {}) for r, h in zip(refs, hyps)]
    return fam.aggregate(fam.stack(stats), np.arange(len(stats)), {}), stats


def test_aggregate_equals_pycocoevalcap_on_a_fixed_corpus():
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    fam = _family()
    got, _ = _aggregate(fam, HYPS[:4], REFS[:4])  # pycocoevalcap's Rouge divides by zero on an empty report
    fam.context["cider_df"], fam.context["cider_n"] = __import__(
        "xrbench.families.report_generation", fromlist=["x"]).cider_doc_freq([tokenize(r) for r in REFS[:4]])
    got, _ = _aggregate(fam, HYPS[:4], REFS[:4])
    gts = {i: [tokenize(r)] for i, r in enumerate(REFS[:4])}
    res = {i: [tokenize(h)] for i, h in enumerate(HYPS[:4])}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    for n in range(4):
        assert got[f"bleu{n + 1}"] == pytest.approx(bleu[n], rel=1e-12)
    assert got["rouge_l"] == pytest.approx(Rouge().compute_score(gts, res)[0], rel=1e-12)
    assert got["cider_d"] == pytest.approx(Cider().compute_score(gts, res)[0], rel=1e-12)
    assert 0 < got["cider_d"] < 10 and 0 < got["bleu4"] < got["bleu1"] < 1


def test_cider_of_the_whole_test_set_and_an_empty_report():
    from pycocoevalcap.cider.cider import Cider

    fam = _family()
    got, stats = _aggregate(fam, HYPS, REFS)
    gts = {i: [tokenize(r)] for i, r in enumerate(REFS)}
    res = {i: [tokenize(h)] for i, h in enumerate(HYPS)}
    cider, each = Cider().compute_score(gts, res)
    assert [s["cider_d"] for s in stats] == pytest.approx(list(each), rel=1e-12)
    assert got["cider_d"] == pytest.approx(cider, rel=1e-12)
    assert stats[-1]["rouge_l"] == 0.0 and stats[-1]["cider_d"] == 0.0


def test_references_scored_against_themselves_give_the_maximum():
    fam = _family()
    got, _ = _aggregate(fam, REFS, REFS)
    for n in range(1, 5):
        assert got[f"bleu{n}"] == pytest.approx(1.0, abs=1e-6)
    assert got["rouge_l"] == pytest.approx(1.0)
    assert got["ce_f1"] == 1.0 and got["ce_macro_f1"] == 1.0
    worse, _ = _aggregate(fam, HYPS, REFS)
    assert got["cider_d"] > worse["cider_d"] and got["ce_f1"] > worse["ce_f1"]
    assert got["cider_d"] > 5.0  # CIDEr-D of an exact match is 10 x the mean n-gram cosine (here near 10)


def test_clinical_efficacy_counts_and_a_resample():
    fam = _family()
    _, stats = _aggregate(fam, HYPS, REFS)
    table = fam.stack(stats)
    # report 0: effusion found on both sides; report 4 (empty) misses atelectasis? it is uncertain: not positive
    obs = list(__import__("xrbench.text.labeller", fromlist=["OBSERVATIONS"]).OBSERVATIONS)
    assert table["ce_tp"][0][obs.index("Pleural Effusion")] == 1
    assert table["ce_tp"][1][obs.index("Cardiomegaly")] == 1
    assert table["ce_fn"][3][obs.index("Support Devices")] == 1  # the enteric tube was not generated
    rows = np.array([0, 0, 2])
    sub = fam.aggregate(table, rows, {})
    direct = fam.aggregate(fam.stack([stats[0], stats[0], stats[2]]), np.arange(3), {})
    assert sub == direct


def test_units_are_studies_from_the_first_frontal_image():
    from xrbench.data.sample import Sample

    fam = _family()
    s = [Sample(id="a", image="x.png", patient="p", split="test", group="s1", meta={"view": "LATERAL"}, text={"findings": "x"}),
         Sample(id="b", image="x.png", patient="p", split="test", group="s1", meta={"view": "PA"}, text={"findings": "x"}),
         Sample(id="c", image="x.png", patient="p", split="test", group="s2", meta={"view": "AP"}, text={"impression": "y"})]
    units = fam.units(s)
    assert [(u.id, u.rows) for u in units] == [("s1", [1, 0]), ("s2", [2])]
    assert fam.truth(units[1], s) == "y"  # impression when findings is empty
    assert not fam.keep(Sample(id="d", image="x.png", patient="p", split="test", group="s3", text={"history": "z"}))
    assert fam.boot_unit(Unit("s1", "p", "s1", [0])) == "p"


def test_vocab_and_beam_search_are_deterministic():
    import torch

    from xrbench.families import report_decoder as dec
    from xrbench.families.report_generation import Vocab, pieces

    assert pieces("No PTX, 4.2 cm mass.") == ["no", "ptx", ",", "4.2", "cm", "mass", "."]
    vocab = Vocab(REFS, 2)
    assert "pneumothorax" in vocab.stoi and "enteric" not in vocab.stoi  # seen once: <unk>
    torch.manual_seed(0)
    m = dec.ReportDecoder(len(vocab), 8, (2, 2), d_model=16, layers=2, heads=2, ff_mult=2, max_len=12, dropout=0.0)
    grid = np.random.default_rng(0).standard_normal((3, 2, 2, 8)).astype(np.float32)
    greedy = dec.generate(m, None, grid, vocab, max_len=12, beam=1, batch_size=2, device="cpu")
    assert greedy == dec.generate(m, None, grid, vocab, max_len=12, beam=1, batch_size=3, device="cpu")
    # greedy = argmax of the full (uncached) forward, token by token
    g = torch.from_numpy(grid)
    seq = torch.full((3, 1), 1)
    with torch.no_grad():
        for _ in range(12):
            seq = torch.cat([seq, m(g, seq)[:, -1].argmax(-1, keepdim=True)], 1)
    assert greedy == [vocab.decode(s[1:].tolist()) for s in seq]
    beam = dec.generate(m, None, grid, vocab, max_len=12, beam=3, batch_size=2, device="cpu")
    assert len(beam) == 3 and all(isinstance(b, str) for b in beam)


@pytest.mark.slow
def test_run_rescores_and_compares_the_same(tiny_encoder, tmp_path, monkeypatch):
    from xrbench.results.compare import compare
    from xrbench.results.score import score_file
    from xrbench.runner import RunConfig, Runner

    monkeypatch.setenv("XRBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XRBENCH_DEMO_SCALE", "0.15")
    [spec] = TaskCatalog().resolve("mimic-report-generation")
    spec = spec.model_copy(update={"protocol": spec.protocol.model_copy(
        update={"args": {**spec.protocol.args, "epochs": 2, "eval_every": 1, "d_model": 32, "lrs": [1e-3],
                         "max_len": 24}}), "metrics": [m for m in spec.metrics if m != "meteor_seg"]})
    cfg = RunConfig(output=tmp_path / "out", feature_root=tmp_path / "features", n_boot=100)
    [rec] = Runner(tiny_encoder, cfg, progress=lambda m: None).run([spec])
    assert rec.hparams["epochs"] in (1, 2) and rec.hparams["d_model"] == 32
    pred = cfg.output / "tiny-vit" / spec.name / rec.predictions
    rows = [json.loads(line) for line in pred.read_text().splitlines()[1:]]
    assert all(isinstance(r["prediction"], str) for r in rows)
    again = score_file(spec, pred, n_boot=100)
    for k, m in rec.metrics.items():
        assert again[k] == (m.value, m.ci_low, m.ci_high), k
    assert rec.metrics["cider_d"].ci_low <= rec.metrics["cider_d"].value <= rec.metrics["cider_d"].ci_high
    [c] = compare([pred.parent], [pred.parent], n_boot=200).comparisons
    assert c.paired and c.verdict == "same" and c.delta == 0.0

"""Image <-> report retrieval: ranks and R@k against sklearn, the tie policy, the contrastive head
(recovers a planted alignment, not a shuffled one), the text cache, and run -> score -> compare."""
from __future__ import annotations

import hashlib
import itertools
import json
import math

import numpy as np
import pytest

from xrbench.errors import DataError
from xrbench.families.report_retrieval import info_nce_fit, ranks, recall_at
from xrbench.features.text_store import TextFeatureStore
from xrbench.models.text import TextEncoderMeta
from xrbench.registry import TEXT_MODELS


class BagOfWords:
    """A fast deterministic text encoder: hashed word counts, L2-normalised (64-d)."""

    meta = TextEncoderMeta(name="test-bow", embed_dim=64, weights="test", weights_sha256="0" * 64, max_length=512)

    def __init__(self, **_):
        pass

    def encode(self, texts):
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % 64] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


TEXT_MODELS.add("test-bow", BagOfWords, overwrite=True)


def test_recall_matches_sklearn_top_k_accuracy():
    from sklearn.metrics import top_k_accuracy_score

    rng = np.random.default_rng(0)
    sim = rng.normal(size=(30, 30))
    r, t, b = ranks(sim, np.arange(30))
    assert (t == 0).all() and (b == 1).all()
    for k in (1, 5, 10):
        want = top_k_accuracy_score(np.arange(30), sim, k=k, labels=np.arange(30))
        assert recall_at(r, t, k).mean() == pytest.approx(want)
        want_t2i = top_k_accuracy_score(np.arange(30), sim.T, k=k, labels=np.arange(30))
        r2, t2, b2 = ranks(sim.T, np.arange(30))
        assert recall_at(r2, t2, k, b2).mean() == pytest.approx(want_t2i)


def test_duplicate_reports_count_as_correct_and_constant_scores_give_chance():
    # items 0 and 1 have the same report text (class 0): query 0 ranking item 1 first is correct
    sim = np.array([[0.5, 0.9, 0.1], [0.2, 0.3, 0.8], [0.0, 0.1, 0.7]])
    r, t, b = ranks(sim, np.array([0, 0, 1]))
    assert r.tolist() == [1, 2, 1] and t.tolist() == [0, 0, 0] and b.tolist() == [1, 1, 1]
    # a constant model: every item ties with the truth -> expected R@k = k / gallery, not 1 or 0
    r, t, b = ranks(np.zeros((20, 20)), np.arange(20))
    assert r.tolist() == [1] * 20 and t.tolist() == [19] * 20 and b.tolist() == [1] * 20
    assert recall_at(r, t, 5, b).mean() == pytest.approx(5 / 20)
    assert recall_at(r, t, 1, b).mean() == pytest.approx(1 / 20)
    # reports in pairs of identical texts: 2 relevant items tie with 18 others -> 1 - C(18, k) / C(20, k)
    r, t, b = ranks(np.zeros((20, 20)), np.repeat(np.arange(10), 2))
    assert t.tolist() == [18] * 20 and b.tolist() == [2] * 20
    assert recall_at(r, t, 1, b).mean() == pytest.approx(2 / 20)
    assert recall_at(r, t, 5, b).mean() == pytest.approx(1 - math.comb(18, 5) / math.comb(20, 5))


def _recall_over_every_tie_order(sim_row: np.ndarray, rel_row: np.ndarray, k: int) -> float:
    """Brute force: the share of all gallery orders consistent with the scores (ties in every
    order) that put a relevant item in the top k."""
    hits = orders = 0
    for perm in itertools.permutations(range(len(sim_row))):
        order = sorted(range(len(sim_row)), key=lambda i: (-sim_row[i], perm.index(i)))
        orders += 1
        hits += any(rel_row[i] for i in order[:k])
    return hits / orders


@pytest.mark.parametrize("seed", range(8))
def test_recall_with_ties_equals_every_tie_order_brute_force(seed):
    """Heavy ties among relevant and non-relevant items (duplicate reports embed identically, so
    several relevant items share the best score): R@k is the expectation over random tie orders."""
    rng = np.random.default_rng(seed)
    n = 6
    cls = rng.integers(0, 3, n)
    sim = rng.integers(0, 2, (n, n)).astype(float)
    r, t, b = ranks(sim, cls)
    for k in (1, 2, 3, 5):
        want = [_recall_over_every_tie_order(sim[i], cls == cls[i], k) for i in range(n)]
        np.testing.assert_allclose(recall_at(r, t, k, b), want, rtol=1e-12, atol=1e-12)


def test_scorer_reads_best_and_files_without_it():
    """The family's scorer uses the saved ``best`` count; a file written before it counts one."""
    from xrbench.families import create_family
    from xrbench.tasks.catalog import TaskCatalog

    [spec] = TaskCatalog().resolve("mimic-report-retrieval")
    fam = create_family(spec)
    fam.context["class"] = {f"s{i}": i // 2 for i in range(6)}  # three pairs of identical reports
    pred = {f"{d}_{f}": v for d in ("i2t", "t2i") for f, v in (("top", ["s1", "s0", "s2"]), ("rank", 1),
                                                               ("ties", 4), ("best", 2))}
    got = fam.aggregate(fam.stack([fam.unit_stats("s0", pred, {})]), np.arange(1), {})
    assert got["i2t_r@1"] == pytest.approx(2 / 6) and got["t2i_r@5"] == 1.0
    old = {k: v for k, v in pred.items() if not k.endswith("_best")}
    old_got = fam.aggregate(fam.stack([fam.unit_stats("s0", old, {})]), np.arange(1), {})
    assert old_got["i2t_r@1"] == pytest.approx(1 / 5)


def test_info_nce_recovers_a_planted_alignment_and_not_a_shuffled_one():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    t = x @ rng.normal(size=(16, 8)).astype(np.float32)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    kw = dict(temperature=0.05, weight_decay=1e-4, steps=80, lr=0.05, batch_size=1024, seed=0, device="cpu")
    test = slice(70, None)

    def r5(w):
        z = x[test] @ w
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        rank, ties, best = ranks(z @ t[test].T, np.arange(30))
        return recall_at(rank, ties, 5, best).mean()

    real = r5(info_nce_fit(x[:70], t[:70], **kw))
    shuffled = r5(info_nce_fit(x[:70], t[:70][rng.permutation(70)], **kw))
    assert real > 0.9
    assert shuffled < 0.45  # chance is 5 / 30


def test_text_store_caches_and_embeds_duplicates_identically(tmp_path):
    store = TextFeatureStore(tmp_path)
    enc = BagOfWords()
    ident = enc.meta.to_dict()
    texts = ["no effusion", "small left effusion", "no effusion"]
    a = store.get(ident, texts, enc.encode)
    assert store.texts_encoded == 2  # unique texts once
    assert np.array_equal(a[0], a[2])
    b = store.get(ident, texts, enc.encode)
    assert store.texts_encoded == 2 and np.array_equal(a, b)
    store.get({**ident, "weights_sha256": "1" * 64}, texts, enc.encode)
    assert store.texts_encoded == 4  # another encoder is another entry
    assert len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 2


@pytest.fixture(scope="module")
def retrieval_run(tmp_path_factory):
    from xrbench.models.timm_adapter import create_timm_encoder
    from xrbench.runner import RunConfig, Runner
    from xrbench.tasks.catalog import TaskCatalog

    tmp_path = tmp_path_factory.mktemp("report-retrieval")
    mp = pytest.MonkeyPatch()
    mp.setenv("XRBENCH_HOME", str(tmp_path / "home"))
    mp.setenv("XRBENCH_DEMO_SCALE", "0.3")
    tiny_encoder = create_timm_encoder("tiny-vit", "vit_tiny_patch16_224", input_size=64, seed=0)
    spec = TaskCatalog().resolve("mimic-report-retrieval")[0]
    args = {"text_encoder": "test-bow", "steps": 30, "temperatures": [0.07], "weight_decays": [1e-3, 1.0]}
    spec = spec.model_copy(update={"protocol": spec.protocol.model_copy(update={"args": args})})
    out = tmp_path / "out"
    rec = Runner(tiny_encoder, RunConfig(output=out, n_boot=200)).run_task(spec)[0]
    yield spec, rec, out / "tiny-vit" / spec.name
    mp.undo()


@pytest.mark.slow
def test_run_scores_studies_and_rescoring_reproduces_it(retrieval_run):
    from xrbench.results.compare import compare
    from xrbench.results.score import score_file

    spec, rec, folder = retrieval_run
    assert rec.hparams["mode"] == "linear-alignment" and rec.hparams["text_encoder"]["name"] == "test-bow"
    assert rec.n["test_scored"] == rec.n["test_units"]  # one unit per study, resampled by study
    for name in spec.metrics:
        m = rec.metrics[name]
        assert 0.0 <= m.value <= 1.0 and m.ci_low is not None and m.ci_low <= m.value <= m.ci_high
    assert rec.metrics["i2t_r@1"].value <= rec.metrics["i2t_r@5"].value <= rec.metrics["i2t_r@10"].value
    got = score_file(spec, folder / "seed0.predictions.jsonl", n_boot=200)
    for name, m in rec.metrics.items():
        assert got[name] == pytest.approx((m.value, m.ci_low, m.ci_high), abs=1e-12)
    (c,) = compare([folder], [folder]).comparisons
    assert c.paired and c.verdict == "same" and c.delta == 0.0


@pytest.mark.slow
def test_rescoring_refuses_a_rank_that_contradicts_its_top_ten(retrieval_run):
    from xrbench.results.score import score_file

    spec, _, folder = retrieval_run
    lines = (folder / "seed0.predictions.jsonl").read_text().splitlines()
    row = json.loads(lines[1])
    top = row["prediction"]["i2t_top"]
    first = top.index(row["id"]) + 1 if row["id"] in top else None
    row["prediction"]["i2t_rank"], row["prediction"]["i2t_ties"] = (first + 1 if first else 1), 0
    bad = folder / "bad.predictions.jsonl"
    bad.write_text("\n".join([lines[0], json.dumps(row), *lines[2:]]) + "\n")
    with pytest.raises(DataError, match="disagrees with its top"):
        score_file(spec, bad, n_boot=0)

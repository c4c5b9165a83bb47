"""Phrase grounding: IoU against a hand-computed value, boxes mapped back to original pixels through
the padding geometry, the box head learns a planted location, and run -> score -> compare."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_family_report_retrieval import BagOfWords  # noqa: F401  (registers the test text encoder)

from xrbench.errors import DataError
from xrbench.families.grounding import FiLMBoxHead, Grounding, box_iou, enclosing_box


def test_iou_and_enclosing_box():
    assert box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert box_iou([0, 0, 10, 10], [20, 20, 30, 30]) == 0.0
    assert box_iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0  # empty union
    assert enclosing_box([(10, 40, 30, 60), (70, 35, 90, 65)]) == [10, 35, 90, 65]


def test_boxes_round_trip_through_the_padding_geometry():
    # a 100 (h) x 200 (w) image padded to 200 x 200 (top 50) and resized to 64
    row = np.array([100, 200, 200, 50, 0, 64])
    box = [20.0, 10.0, 120.0, 90.0]
    norm = Grounding._to_input(box, row)
    assert norm == pytest.approx([0.1, 0.3, 0.6, 0.7])
    from xrbench.features.preprocess import Geometry

    geo = Geometry(*row)
    back = geo.to_original(np.array(norm).reshape(2, 2) * geo.size).reshape(-1)
    assert back.tolist() == pytest.approx(box)


def test_box_head_learns_a_planted_location():
    # cell (r, c) of a 4x4 grid carries a marker; the phrase says which of two markers to box
    torch.manual_seed(0)
    n, h, d = 96, 4, 8
    grid = torch.randn(n, h, h, d) * 0.1
    phrase = torch.zeros(n, 2)
    target = torch.zeros(n, 4)
    rng = np.random.default_rng(0)
    for i in range(n):
        cells = rng.choice(16, 2, replace=False)
        for m, cell in enumerate(cells):
            grid[i, cell // h, cell % h, m] += 3.0
        which = i % 2
        phrase[i, which] = 1
        r, c = divmod(int(cells[which]), h)
        target[i] = torch.tensor([c / h, r / h, (c + 1) / h, (r + 1) / h])
    head = FiLMBoxHead(d, 2, 32)
    opt = torch.optim.Adam(head.parameters(), lr=2e-2)
    from torchvision.ops import generalized_box_iou_loss

    for _ in range(80):
        box, _ = head(grid[:64], phrase[:64])
        loss = (box - target[:64]).abs().mean() + generalized_box_iou_loss(box, target[:64], reduction="mean")
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        box, _ = head(grid[64:], phrase[64:])
    iou = [box_iou(b.tolist(), t.tolist()) for b, t in zip(box, target[64:])]
    assert np.mean(iou) > 0.5  # a box of the wrong marker overlaps the right one with IoU 0


@pytest.fixture(scope="module")
def grounding_run(tmp_path_factory):
    from xrbench.models.timm_adapter import create_timm_encoder
    from xrbench.runner import RunConfig, Runner
    from xrbench.tasks.catalog import TaskCatalog

    tmp_path = tmp_path_factory.mktemp("grounding")
    mp = pytest.MonkeyPatch()
    mp.setenv("XRBENCH_HOME", str(tmp_path / "home"))
    mp.setenv("XRBENCH_DEMO_SCALE", "0.3")
    enc = create_timm_encoder("tiny-vit", "vit_tiny_patch16_224", input_size=64, seed=0)
    spec = TaskCatalog().resolve("mscxr-grounding")[0]
    args = {"text_encoder": "test-bow", "epochs": 6, "eval_every": 3, "hidden": 32}
    spec = spec.model_copy(update={"protocol": spec.protocol.model_copy(update={"args": args})})
    out = tmp_path / "out"
    rec = Runner(enc, RunConfig(output=out, n_boot=200)).run_task(spec)[0]
    yield spec, rec, out / "tiny-vit" / spec.name
    mp.undo()


@pytest.mark.slow
def test_run_boxes_are_in_original_pixels_and_rescore_exactly(grounding_run):
    from xrbench.data.demo import dataset_root
    from xrbench.data.images import read_image
    from xrbench.registry import DATASETS
    from xrbench.results.compare import compare
    from xrbench.results.score import score_file

    spec, rec, folder = grounding_run
    assert rec.hparams["epochs"] in (3, 6) and rec.hparams["text_encoder"]["name"] == "test-bow"
    for name in spec.metrics:
        m = rec.metrics[name]
        assert 0.0 <= m.value <= 1.0 and m.ci_low is not None and m.ci_low <= m.value <= m.ci_high
    _, rows = __import__("xrbench.results.predictions", fromlist=["read_rows"]).read_rows(
        folder / "seed0.predictions.jsonl")
    test = {s.id: s for s in DATASETS.get("ms-cxr")(dataset_root("ms-cxr", None), seed=0).split("test")}
    for r in rows:
        image_id, k = r["id"].rsplit("#", 1)
        assert test[image_id].phrases[int(k)].boxes
        hgt, wid = read_image(test[image_id].image).shape[:2]
        x0, y0, x1, y1 = r["prediction"]
        assert 0 <= x0 <= x1 <= wid and 0 <= y0 <= y1 <= hgt
    got = score_file(spec, folder / "seed0.predictions.jsonl", n_boot=200)
    for name, m in rec.metrics.items():
        assert got[name] == pytest.approx((m.value, m.ci_low, m.ci_high), abs=1e-12)
    (c,) = compare([folder], [folder]).comparisons
    assert c.paired and c.verdict == "same" and c.delta == 0.0


@pytest.mark.slow
def test_rescoring_a_perfect_file_gives_one_and_a_malformed_box_is_refused(grounding_run):
    from xrbench.data.demo import dataset_root
    from xrbench.families.grounding import enclosing_box
    from xrbench.registry import DATASETS
    from xrbench.results.score import score_file

    spec, _, folder = grounding_run
    lines = (folder / "seed0.predictions.jsonl").read_text().splitlines()
    test = {s.id: s for s in DATASETS.get("ms-cxr")(dataset_root("ms-cxr", None), seed=0).split("test")}
    rows = [json.loads(x) for x in lines[1:]]
    for r in rows:
        image_id, k = r["id"].rsplit("#", 1)
        r["prediction"] = enclosing_box([(b.x0, b.y0, b.x1, b.y1) for b in test[image_id].phrases[int(k)].boxes])
    perfect = folder / "perfect.predictions.jsonl"
    perfect.write_text("\n".join([lines[0], *map(json.dumps, rows)]) + "\n")
    got = score_file(spec, perfect, n_boot=0)
    assert got["miou"][0] == pytest.approx(1.0) and got["acc@0.5"][0] == 1.0
    rows[0]["prediction"] = [10, 10, 5, 20]
    bad = folder / "bad.predictions.jsonl"
    bad.write_text("\n".join([lines[0], *map(json.dumps, rows)]) + "\n")
    with pytest.raises(DataError, match="x0 <= x1"):
        score_file(spec, bad, n_boot=0)
    for box in ([0, 0, float("inf"), 20], [0, 0, True, 20]):  # inf was scored (IoU of an infinite box)
        rows[0]["prediction"] = box
        bad.write_text("\n".join([lines[0], *map(json.dumps, rows)]) + "\n")
        with pytest.raises(DataError, match=r"row 2, field 'prediction': expected a box .* of finite numbers"):
            score_file(spec, bad, n_boot=0)

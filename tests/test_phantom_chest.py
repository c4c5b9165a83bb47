"""The synthetic chest phantom: API contract, determinism, ground truth that matches the pixels, reports.

Speed is measured by tests/benchmarks/phantom_signal.py, never here.
"""
from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

from xrbench.data.phantom import canvas
from xrbench.data.phantom.chest import CHEST_FINDINGS, CHRONIC, ChestCase, generate_chest
from xrbench.data.phantom.chest_anatomy import draw_thorax, resolve_geometry, sample_anatomy

REQUIRED = ("Cardiomegaly", "Enlarged Cardiomediastinum", "Pleural Effusion", "Pneumothorax", "Consolidation",
            "Lung Opacity", "Nodule", "Mass", "Atelectasis", "Edema", "Support Devices", "Fracture",
            "Pleural Thickening", "Emphysema", "Fibrosis", "Infiltration", "Pneumonia", "Calcification",
            "Aortic Enlargement", "Hernia", "Lung Lesion", "Pleural Other")
EVERYTHING = {name: 0.5 for name in CHEST_FINDINGS if name != "Lung Lesion"}


@pytest.fixture(scope="module")
def busy() -> list[ChestCase]:
    """Cases where every finding is common, so each check below sees many of them."""
    return generate_chest(24, seed=5, size=128, prevalence=EVERYTHING)


def test_contract_fields(busy):
    assert set(REQUIRED) <= set(CHEST_FINDINGS)
    for c in busy:
        assert c.image.dtype == np.float32 and c.image.shape == (128, 128)
        assert np.isfinite(c.image).all() and c.image.min() >= 0.0 and c.image.max() <= 1.0
        assert c.image.std() > 0.1  # an actual radiograph, not a flat field
        assert set(c.findings) <= set(CHEST_FINDINGS) and all(0 < v <= 1 for v in c.findings.values())
        assert isinstance(c.uncertain, frozenset) and c.uncertain <= set(CHEST_FINDINGS)
        assert c.view in ("PA", "AP") and c.sex in ("M", "F") and 18 <= c.age <= 95
        assert set(c.report) == {"findings", "impression"} and all(c.report.values())
        for name, m in c.masks.items():
            assert name in c.findings and m.dtype == bool and m.shape == (128, 128) and m.any()
    assert {c.view for c in busy} == {"PA", "AP"}
    assert any(c.uncertain for c in busy)


def test_deterministic_and_prefix_stable():
    a = generate_chest(5, seed=11, size=96)
    b = generate_chest(7, seed=11, size=96)[:5]
    for x, y in zip(a, b):
        assert np.array_equal(x.image, y.image)
        assert (x.findings, x.boxes, x.report, x.uncertain, x.patient) == (y.findings, y.boxes, y.report,
                                                                          y.uncertain, y.patient)
    other = generate_chest(5, seed=12, size=96)
    assert not np.array_equal(a[0].image, other[0].image)


def test_patients_share_anatomy_and_chronic_findings():
    cases = generate_chest(30, seed=2, size=64, images_per_patient=3.0, prevalence=EVERYTHING)
    by_patient: dict[str, list[ChestCase]] = {}
    for c in cases:
        by_patient.setdefault(c.patient, []).append(c)
    assert len(by_patient) < 20
    repeated = [cs for cs in by_patient.values() if len(cs) > 1]
    assert repeated
    for cs in repeated:
        chronic = [{k: v for k, v in c.findings.items() if k in CHRONIC} for c in cs]
        assert all(ch == chronic[0] for ch in chronic)
        assert len({(c.sex, c.age) for c in cs}) == 1
    with pytest.raises(ValueError):
        generate_chest(2, seed=0, images_per_patient=0.5)


def test_derived_labels_follow_children(busy):
    for c in busy:
        assert ("Lung Lesion" in c.findings) == ("Nodule" in c.findings or "Mass" in c.findings)
        if {"Consolidation", "Pneumonia", "Atelectasis", "Edema", "Infiltration"} & set(c.findings):
            assert "Lung Opacity" in c.findings


def test_boxes_inside_image_and_on_their_mask(busy):
    seen = set()
    for c in busy:
        for name, x0, y0, x1, y1 in c.boxes:
            seen.add(name)
            assert name in c.findings
            assert 0 <= x0 < x1 <= 128 and 0 <= y0 < y1 <= 128
            assert c.masks[name][int(y0):int(y1), int(x0):int(x1)].any()
    assert {"Nodule", "Mass", "Pleural Effusion", "Pneumothorax", "Consolidation", "Cardiomegaly",
            "Support Devices", "Fracture"} <= seen
    assert not any(name in ("Edema", "Emphysema", "Lung Lesion") for c in busy for name, *_ in c.boxes)


def test_nodules_are_denser_than_their_surroundings():
    cases = generate_chest(16, seed=3, size=256, prevalence={"Nodule": 1.0, "Mass": 1.0})
    brighter, total = 0, 0
    for c in cases:
        for name, x0, y0, x1, y1 in c.boxes:
            if name not in ("Nodule", "Mass"):
                continue
            x0, y0, x1, y1 = int(x0), int(y0), int(x1), int(y1)
            inside = c.image[y0:y1, x0:x1].mean()
            m = max(4, (x1 - x0) // 2)
            ring = np.zeros_like(c.masks[name])
            ring[max(y0 - m, 0):y1 + m, max(x0 - m, 0):x1 + m] = True
            ring[y0:y1, x0:x1] = False
            total += 1
            brighter += inside > c.image[ring].mean() + 0.02
    assert total >= 16 and brighter >= 0.8 * total


@pytest.mark.parametrize("side_word, on_left_half", [("right", True), ("left", False)])
def test_pneumothorax_mask_on_the_reported_side(side_word, on_left_half):
    cases = generate_chest(20, seed=8, size=128, prevalence={"Pneumothorax": 1.0})
    checked = 0
    for c in cases:
        assert "Pneumothorax" in c.findings and c.masks["Pneumothorax"].any()
        side = re.search(r"(right|left) pneumothorax", c.report["findings"]).group(1)
        if side != side_word:
            continue
        cols = np.nonzero(c.masks["Pneumothorax"])[1]
        assert (cols.mean() < 64) == on_left_half  # patient's right is on the image left
        checked += 1
    assert checked >= 3
    none = generate_chest(10, seed=8, size=64, prevalence={"Pneumothorax": 0.0})
    assert not any("Pneumothorax" in c.findings or "Pneumothorax" in c.masks for c in none)


def test_effusion_laterality_words_match_the_mask():
    for c in generate_chest(16, seed=4, size=128, prevalence={"Pleural Effusion": 1.0}):
        text = c.report["findings"]
        cols = np.nonzero(c.masks["Pleural Effusion"])[1]
        if "bilateral pleural effusions" in text:
            assert cols.min() < 64 < cols.max()
        else:
            side = re.search(r"(small|moderate|large) (right|left) pleural effusion", text, re.I).group(2)
            assert (cols.mean() < 64) == (side == "right")


def test_prevalence_override():
    cases = generate_chest(300, seed=0, size=64, prevalence={"Pneumothorax": 0.35, "Cardiomegaly": 0.0,
                                                             "Edema": 1.0})
    rate = np.mean(["Pneumothorax" in c.findings for c in cases])
    assert 0.27 < rate < 0.43
    assert not any("Cardiomegaly" in c.findings for c in cases)
    assert all("Edema" in c.findings for c in cases)
    default = np.mean(["Pneumothorax" in c.findings for c in generate_chest(300, seed=0, size=64)])
    assert default < 0.2
    with pytest.raises(ValueError, match="unknown finding"):
        generate_chest(1, seed=0, prevalence={"Pneumothorax ": 0.3})
    with pytest.raises(ValueError, match="derived"):
        generate_chest(1, seed=0, prevalence={"Lung Lesion": 0.3})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        generate_chest(1, seed=0, prevalence={"Pneumothorax": 1.5})


HEDGE = re.compile(r"(possible|cannot exclude)[^.]*", re.IGNORECASE)


def test_reports_negate_absent_and_hedge_uncertain(busy):
    cases = busy + generate_chest(24, seed=9, size=64)
    words = {"Pneumothorax": "pneumothorax", "Pleural Effusion": "pleural effusion", "Edema": "edema"}
    negated = hedged = 0
    for c in cases:
        text = c.report["findings"].lower()
        hedges = " ".join(m.group(0).lower() for m in HEDGE.finditer(c.report["findings"]))
        for name, word in words.items():
            if name in c.uncertain:
                assert word in hedges
                hedged += 1
            elif name in c.findings:
                assert word in text and word not in hedges
                assert word in c.report["impression"].lower()
            else:
                assert re.search(rf"no (evidence of )?(pulmonary )?{word}", text)
                negated += 1
        if not c.findings and not c.uncertain:
            assert "no acute" in c.report["impression"].lower() or "normal" in c.report["impression"].lower()
    assert negated > 20 and hedged > 0


def test_heart_is_drawn_at_the_patients_cardiothoracic_ratio():
    rng = np.random.default_rng(0)
    X, Y = canvas.grid(256)
    for ctr in (0.42, 0.58):
        a = replace(sample_anatomy(rng, "M", 60), ctr=ctr)
        g = resolve_geometry(a, view="PA", inspiration=0.0, rotation=0.0, heart_mag=1.0)
        heart = draw_thorax(g, X, Y, 256).heart > 0.5
        cols = np.flatnonzero(heart.any(0))
        assert abs((cols[-1] + 1 - cols[0]) / 256 / g.thorax_w - ctr) < 0.03


def test_canvas_primitives():
    X, Y = canvas.grid(200)
    disc = canvas.ellipse(X, Y, 0.5, 0.5, 0.2, 0.2, edge=0.005)
    assert abs(disc.sum() / 200 ** 2 - np.pi * 0.04) < 0.003
    assert canvas.bbox(disc > 0.5) == (60.0, 60.0, 140.0, 140.0)
    assert canvas.bbox(np.zeros((4, 4), bool)) is None
    square = canvas.polygon(50, np.array([[10, 10], [30, 10], [30, 40], [10, 40]]), edge_px=0)
    assert square.sum() == 20 * 30
    a = canvas.fractal_noise(np.random.default_rng(1), 64)[0]
    assert np.array_equal(a, canvas.fractal_noise(np.random.default_rng(1), 64)[0])
    assert abs(a.mean()) < 1e-3 and abs(a.std() - 1) < 1e-3
    pose = canvas.Pose(rotate_deg=8, scale=0.9, shift=(0.04, -0.02))
    bx, by = pose.grid(256, np.random.default_rng(0))
    px, py = pose.to_px(0.3, 0.6, 256)
    assert abs(bx[int(py), int(px)] - 0.3) < 0.01 and abs(by[int(py), int(px)] - 0.6) < 0.01
    img = np.zeros((30, 60), np.float32)
    assert canvas.text(img, "L", 5, 3, scale=2) == (5, 3, 15, 17)
    assert img[3:17, 5:15].any() and not img[:, 20:].any()

"""Musculoskeletal phantoms: determinism, bone-age ossification, fractures where their boxes say."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from xrbench.data.masks import polygons_to_mask
from xrbench.data.phantom import canvas
from xrbench.data.phantom.bones import Placement, Scene, attenuation, fracture_region
from xrbench.data.phantom.hand import (CARPALS, Build, generate_hands, hand_skeleton, maturity,
                                       ossification)
from xrbench.data.phantom.limbs import (MURA_PARTS, add_fracture, add_hardware, add_lesion, generate_fracatlas,
                                        generate_studies, part_scene)


def test_generators_are_deterministic_for_a_seed_and_differ_across_seeds():
    a, b, c = (generate_hands(2, seed=s, size=128) for s in (5, 5, 6))
    assert all(np.array_equal(x.image, y.image) and x.bone_age == y.bone_age for x, y in zip(a, b))
    assert not np.array_equal(a[0].image, c[0].image)
    s1, s2 = generate_studies(5, seed=2, size=128), generate_studies(5, seed=2, size=128)
    assert [(s.patient, s.part, s.abnormal) for s in s1] == [(s.patient, s.part, s.abnormal) for s in s2]
    assert all(np.array_equal(x.image, y.image) for p, q in zip(s1, s2) for x, y in zip(p.images, q.images))
    f1, f2 = generate_fracatlas(3, seed=1, size=128), generate_fracatlas(3, seed=1, size=128)
    assert all(np.array_equal(x.image, y.image) and x.fractures == y.fractures for x, y in zip(f1, f2))
    assert all(x.image.dtype == np.float32 and x.image.shape == (128, 128) for x in a + f1)
    assert all(0.0 <= x.image.min() and x.image.max() <= 1.0 for x in a + f1)


def test_ossification_is_monotonic_in_bone_age_for_every_build():
    for seed in range(5):
        build = Build.sample(np.random.default_rng(seed))
        stages = [ossification(maturity(age, "M"), build) for age in range(0, 229, 6)]
        counts = [s.carpal_count for s in stages]
        assert counts == sorted(counts) and counts[0] == 0 and counts[-1] == len(CARPALS)
        for name in [c[0] for c in CARPALS]:
            sizes = [s.carpals.get(name, 0.0) for s in stages]
            assert sizes == sorted(sizes)
        for kind in stages[-1].epiphyses:
            widths = [s.epiphyses[kind][0] for s in stages]
            fusion = [s.epiphyses[kind][2] for s in stages]
            gaps = [s.epiphyses[kind][1] for s in stages if s.epiphyses[kind][0] > 0]
            assert widths == sorted(widths) and fusion == sorted(fusion)
            assert gaps == sorted(gaps, reverse=True) and gaps[-1] == 0.0  # plates narrow, then fuse
        fused = [s.fused for s in stages]
        assert fused == sorted(fused) and fused[0] == 0 and fused[-1] == len(stages[-1].epiphyses)


def test_girls_reach_each_stage_at_a_lower_bone_age():
    build = Build()
    assert maturity(150, "F") > maturity(150, "M")
    girl, boy = ossification(maturity(100, "F"), build), ossification(maturity(100, "M"), build)
    assert girl.carpal_count >= boy.carpal_count and sum(girl.carpals.values()) > sum(boy.carpals.values())


def test_carpal_bone_shows_up_in_the_image_as_bone_age_grows():
    """Bone density over the carpus rises with bone age for a fixed person, pose and texture."""
    build = Build.sample(np.random.default_rng(0))
    placement = Placement(canvas.Pose())
    X, Y = canvas.grid(128)
    carpus = (np.abs(X - 0.5) < 0.1) & (Y > 0.63) & (Y < 0.76)
    means = []
    for age in (6, 40, 80, 120, 160, 200):
        att = attenuation(hand_skeleton(maturity(age, "M"), build), placement, np.random.default_rng(1),
                          size=128, ref_radius=0.016, soft_weight=0.0)
        means.append(float(att[carpus].mean()))
    assert means == sorted(means) and means[-1] > 2 * means[0]


def _changed(scene: Scene, plain: Scene, placement: Placement, size: int = 256) -> np.ndarray:
    kw = dict(size=size, ref_radius=0.03, soft_weight=0.0)
    a = attenuation(scene, placement, np.random.default_rng(3), **kw)
    b = attenuation(plain, placement, np.random.default_rng(3), **kw)
    return np.abs(a - b) > 0.05


@pytest.mark.parametrize("part", ["FOREARM", "HUMERUS", "HAND", "leg", "hip", "shoulder"])
def test_fracture_box_and_polygon_sit_on_the_fracture_line(part):
    """Undisplaced breaks: the pixels the break changes lie in its polygon and box, which are tight."""
    rng = np.random.default_rng(11)
    for severity in (0.2, 0.4):
        scene = part_scene(part, rng)
        plain = Scene(list(scene.long), list(scene.round), list(scene.soft))
        assert add_fracture(scene, rng, severity)
        placement = Placement.sample(rng)
        region = fracture_region(scene, scene.fractures[0], placement, 256)
        changed = _changed(scene, plain, placement)
        assert changed.sum() > 5
        x0, y0, x1, y1 = region.box
        inside_box = changed[int(y0):int(np.ceil(y1)) + 1, int(x0):int(np.ceil(x1)) + 1].sum()
        assert inside_box >= 0.97 * changed.sum()
        polygon = polygons_to_mask([region.polygon], 256, 256)
        assert (changed & polygon).sum() >= 0.85 * changed.sum()
        ys, xs = np.nonzero(changed)
        assert (x1 - x0) * (y1 - y0) < 6 * (np.ptp(xs) + 1) * (np.ptp(ys) + 1)  # tight, not the whole image


def test_displaced_fracture_box_covers_both_fragment_ends():
    rng = np.random.default_rng(5)
    scene = part_scene("FOREARM", rng)
    assert add_fracture(scene, rng, 1.0)
    f = scene.fractures[0]
    placement = Placement(canvas.Pose(rotate_deg=10.0))
    region = fracture_region(scene, f, placement, 256)
    p0, u, length = scene.bone(f.bone).axis()
    centre = p0 + u * f.t * length
    r = scene.bone(f.bone).radius_at(f.t)
    moved = centre + np.array([-u[1], u[0]]) * f.shift[0] * r + u * f.shift[1] * r
    x0, y0, x1, y1 = region.box
    for x, y in placement.to_pixel(np.array([centre, moved]), 256):
        assert x0 <= x <= x1 and y0 <= y <= y1


def test_fracture_severity_grades_gap_and_displacement():
    rng = np.random.default_rng(4)
    scene = part_scene("FOREARM", rng)
    mild, severe = replace(scene, fractures=[]), replace(scene, fractures=[])
    add_fracture(mild, np.random.default_rng(9), 0.2)
    add_fracture(severe, np.random.default_rng(9), 1.0)
    m, s = mild.fractures[0], severe.fractures[0]
    assert (m.bone, m.t) == (s.bone, s.t) and s.gap > m.gap


def test_hardware_and_lesions_change_the_bone():
    rng = np.random.default_rng(2)
    placement = Placement(canvas.Pose())
    for add in (add_hardware, lambda sc, r: add_lesion(sc, r, 0.8)):
        scene = part_scene("HUMERUS", rng)
        plain = Scene(list(scene.long), list(scene.round), list(scene.soft))
        assert add(scene, rng)
        assert _changed(scene, plain, placement).sum() > 30


def test_mura_studies_cover_parts_with_one_to_three_views_and_findings_in_every_view():
    studies = generate_studies(60, seed=0, size=96)
    assert sum(len(s.images) for s in studies) == 60
    assert {s.part for s in studies} == set(MURA_PARTS)
    assert all(1 <= len(s.images) <= 3 for s in studies)
    assert 0.2 < np.mean([s.abnormal for s in studies]) < 0.65
    for s in studies:
        assert all(bool(c.findings) == s.abnormal and c.part == s.part for c in s.images)
        assert [c.view for c in s.images] == ["frontal", "lateral", "oblique"][: len(s.images)]
    patients = [s.patient for s in studies]
    assert len(set(patients)) < len(patients)  # some patients have two parts

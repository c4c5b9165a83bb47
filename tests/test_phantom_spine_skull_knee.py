"""Spine, skull and knee phantoms: deterministic, anatomically ordered, graded, boxes and landmarks right."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from xrbench.data.phantom import knee, skull, spine
from xrbench.data.phantom.skull import CEPH_LANDMARKS


@pytest.mark.parametrize("make", [lambda s: spine.spine_radiograph(s).image, lambda s: skull.cephalogram(s).image,
                                  lambda s: knee.knee_radiograph(s, 2).image])
def test_deterministic_and_varied(make):
    a, b, c = make(7), make(7), make(8)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and 0.0 <= a.min() and a.max() <= 1.0 and a.std() > 0.05
    assert np.abs(a - c).mean() > 0.02


# ----------------------------------------------------------------------------- spine


def test_spine_normal_and_abnormal():
    normal = spine.spine_radiograph(3, abnormal=False)
    assert normal.lesions == () and normal.image.shape == (256, 256)
    kinds = set()
    for seed in range(30):
        case = spine.spine_radiograph(seed, abnormal=True)
        assert case.lesions, f"seed {seed}: an abnormal image without a lesion"
        for lesion in case.lesions:
            x0, y0, x1, y1 = lesion.box
            assert 0 <= x0 < x1 <= 256 and 0 <= y0 < y1 <= 256 and (x1 - x0) * (y1 - y0) >= 4
            assert 0.25 <= lesion.severity <= 1.0
            if case.view == "frontal":
                assert lesion.kind not in ("Spondylolysthesis", "Foraminal stenosis")
        kinds |= {lesion.kind for lesion in case.lesions}
    assert kinds == set(spine.LESION_TYPES)


def test_spine_lesion_is_drawn_inside_its_box():
    """Same seed with and without lesions: the image changes inside each box, and local lesions
    change nothing far from their boxes."""
    local = {"Osteophytes", "Other lesions", "Foraminal stenosis"}
    checked_local = 0
    for seed in range(8):
        sick = spine.spine_radiograph(seed, abnormal=True, view="lateral")
        well = spine.spine_radiograph(seed, abnormal=False, view="lateral")
        diff = np.abs(sick.image - well.image)
        near = np.zeros(diff.shape, bool)
        for lesion in sick.lesions:
            x0, y0, x1, y1 = (int(v) for v in lesion.box)
            assert diff[y0:y1, x0:x1].mean() > 0.05, (seed, lesion.kind)
            near[max(y0 - 6, 0):y1 + 6, max(x0 - 6, 0):x1 + 6] = True
        if {lesion.kind for lesion in sick.lesions} <= local:
            assert diff[~near].mean() < 0.01, seed
            checked_local += 1
    assert checked_local >= 2


def test_spine_osteophyte_boxes_grow_with_severity():
    sev, area = [], []
    for seed in range(60):
        for lesion in spine.spine_radiograph(seed, abnormal=True).lesions:
            if lesion.kind == "Osteophytes":
                sev.append(lesion.severity)
                area.append((lesion.box[2] - lesion.box[0]) * (lesion.box[3] - lesion.box[1]))
    assert len(sev) >= 8 and np.corrcoef(sev, area)[0, 1] > 0.5


# ----------------------------------------------------------------------------- skull


def test_ceph_landmarks_inside_and_in_anatomical_order():
    idx = {name: k for k, name in enumerate(CEPH_LANDMARKS)}
    for seed in range(12):
        case = skull.cephalogram(seed)
        p = case.landmarks
        assert p.shape == (19, 2) and (p >= 2).all() and (p <= 253).all()

        def x(n):
            return p[idx[n], 0]

        def y(n):
            return p[idx[n], 1]

        assert x("sella") < x("nasion") - 60  # the face looks right; sella is posterior
        assert x("porion") < x("articulare") < x("posterior nasal spine") < x("anterior nasal spine")
        assert x("porion") < x("orbitale") < x("nasion") + 5
        assert y("nasion") < y("orbitale") < y("anterior nasal spine") < y("subspinale (A point)")
        assert y("subspinale (A point)") < y("supramentale (B point)") < y("pogonion") < y("menton")
        assert x("menton") < x("gnathion") < x("pogonion") + 3
        assert x("gonion") < x("menton") and y("articulare") < y("gonion")
        assert x("subnasale") > x("anterior nasal spine") and x("upper lip") > x("upper incisal incision")
        assert x("lower lip") > x("lower incisal incision") and x("soft tissue pogonion") > x("pogonion")
        assert y("upper lip") < y("lower lip") < y("soft tissue pogonion")


def test_ceph_landmarks_move_with_individual_shape_and_pose():
    a, b = skull.cephalogram(0).landmarks, skull.cephalogram(1).landmarks
    assert np.linalg.norm(a - b, axis=1).mean() > 3.0
    shapes = np.array([skull.individual_landmarks(np.random.default_rng(s)) for s in range(30)])
    face_height = shapes[:, skull.ME, 1] - shapes[:, skull.N, 1]
    assert face_height.std() > 0.01  # the individual, not only the pose, varies


def test_ceph_landmarks_sit_on_visible_structures():
    """Each landmark has a strong edge within 4 px; a random point usually has none."""
    for seed in range(4):
        case = skull.cephalogram(seed)
        smooth = ndimage.gaussian_filter(case.image.astype(np.float64), 1.0)
        grad = np.hypot(ndimage.sobel(smooth, 0), ndimage.sobel(smooth, 1))
        local_max = ndimage.maximum_filter(grad, 9) / grad.mean()
        xi, yi = np.rint(case.landmarks).astype(int).T
        strength = local_max[yi, xi]
        assert strength.min() > 2.5, dict(zip(CEPH_LANDMARKS, strength.round(2)))
        assert np.median(local_max[16:-16, 16:-16]) < 2.0


# ----------------------------------------------------------------------------- knee


def test_knee_joint_space_narrows_with_grade_and_grades_overlap():
    medial = {g: [] for g in range(5)}
    for g in range(5):
        for seed in range(20):
            case = knee.knee_radiograph(seed, g)
            assert case.image.shape == (224, 224) and case.grade == g
            medial[g].append(case.joint_space_px[0])
    means = [np.mean(medial[g]) for g in range(5)]
    assert all(a > b for a, b in zip(means, means[1:])), means
    assert means[0] > 2.5 * means[4]
    rng = np.random.default_rng(0)
    severity = {g: [knee.kl_severity(g, rng) for _ in range(400)] for g in range(5)}
    for g in range(4):  # adjacent grades overlap a little in severity, never far
        assert max(severity[g]) > min(severity[g + 1])
        assert max(severity[g]) < min(severity[g + 1]) + 1.25
        assert np.mean(severity[g]) < np.mean(severity[g + 1]) - 0.8


def test_knee_joint_space_is_visible_in_the_image():
    """The dark gap between femur and tibia (medial compartment) is narrower at grade 4 than at 0."""
    def dark_run(case) -> int:  # longest run of dark rows across the joint line, medial column
        col = int(224 * (0.35 if case.side == "R" else 0.65))
        profile = case.image[85:140, col - 3:col + 4].mean(1)
        dark = profile < 0.6 * np.percentile(profile, 90)
        runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], dark.astype(int), [0]]))))[::2]
        return int(runs.max(initial=0))

    runs = {g: np.mean([dark_run(knee.knee_radiograph(seed, g)) for seed in range(10)]) for g in (0, 4)}
    assert runs[0] > runs[4] + 5, runs


def test_knee_grade_is_validated():
    with pytest.raises(ValueError):
        knee.knee_radiograph(0, 5)

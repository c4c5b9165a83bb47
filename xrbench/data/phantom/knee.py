"""Synthetic AP knee-joint crops whose osteoarthritis follows the Kellgren-Lawrence grade (synthetic).

A crop shows the distal femur (two condyles, intercondylar notch, faint patella), the tibial
plateau (two compartments, tibial spines) and the fibular head inside soft tissue. The KL grade
sets a continuous severity (grade + uniform jitter of +-0.6, so adjacent grades overlap a little, as
readers disagree in reality) that drives the four radiographic features of the KL scale:

* joint-space narrowing, medial more than lateral (varus pattern);
* marginal osteophytes on the plateau and condyle margins, and sharpened tibial spines;
* subchondral sclerosis (a dense band under the plateau and above the condyles);
* deformity: joint-line tilt, lateral tibial subluxation and a flattened, irregular plateau.

Nuisance variation (pose, bone size and density, baseline joint space, soft tissue, side, exposure,
blur, noise) is drawn independently of the grade, so the grade is learnable but not trivial.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xrbench.data.phantom import canvas as cv

F32 = np.float32
#: severity anchor points per KL grade 0..4 for each feature (interpolated on continuous severity)
_NARROWING_MED = (0.0, 0.1, 0.25, 0.55, 0.88)
_NARROWING_LAT = (0.0, 0.03, 0.08, 0.2, 0.4)
_OSTEOPHYTE = (0.0, 0.25, 0.55, 0.8, 1.0)
_SCLEROSIS = (0.0, 0.05, 0.2, 0.55, 1.0)
_DEFORMITY = (0.0, 0.0, 0.08, 0.4, 1.0)


@dataclass(frozen=True)
class KneeRadiograph:
    """One crop (bright = dense), its grade and the joint-space widths drawn (pixels, before blur)."""

    image: np.ndarray
    grade: int
    severity: float
    joint_space_px: tuple[float, float]  # (medial, lateral)
    side: str  # "L" or "R"


def _feature(table: tuple[float, ...], severity: float) -> float:
    return float(np.interp(severity, np.arange(len(table)), table))


def kl_severity(grade: int, rng: np.random.Generator) -> float:
    """Continuous disease severity of a knee read as ``grade``: adjacent grades overlap a little."""
    return float(np.clip(grade + rng.uniform(-0.6, 0.6), 0.0, 4.0))


def knee_radiograph(seed: int, grade: int, *, size: int = 224) -> KneeRadiograph:
    """One deterministic AP knee crop of KL ``grade`` (0-4) for ``seed``."""
    if grade not in range(5):
        raise ValueError(f"KL grade must be 0-4, got {grade!r}")
    rng = np.random.default_rng([seed, grade])
    sev = kl_severity(grade, rng)
    side = "LR"[int(rng.integers(2))]
    deform = _feature(_DEFORMITY, sev)
    tilt = deform * rng.uniform(3.0, 7.0)
    scale = rng.uniform(0.88, 1.1)
    X, Y = cv.Pose(rotate_deg=rng.normal(0, 4.0) + tilt, scale=scale,
                   shift=(rng.normal(0, 0.025), rng.normal(0, 0.03))).grid(size, rng)
    if side == "L":  # mirror so that the medial compartment is on the other side of the image
        X = F32(1.0) - X
    gap0 = rng.normal(0.046, 0.007)  # individual normal joint space (body units)
    gap_med = gap0 * (1 - _feature(_NARROWING_MED, sev)) + 0.004
    gap_lat = gap0 * 1.1 * (1 - _feature(_NARROWING_LAT, sev)) + 0.004
    yj = 0.5 + rng.normal(0, 0.015)
    width = rng.uniform(0.9, 1.1)  # bone size
    xm, xl = 0.5 - 0.15 * width, 0.5 + 0.15 * width  # medial / lateral compartment centres

    femur = _femur(X, Y, yj, gap_med, gap_lat, xm, xl, width)
    sub = deform * 0.025  # lateral tibial subluxation
    tibia, plateau_y = _tibia(X, Y, rng, yj, gap_med, gap_lat, xm + sub, xl + sub, width, deform)
    osteo = _osteophytes(X, Y, rng, _feature(_OSTEOPHYTE, sev), yj, gap_med, gap_lat, width, sub)
    bone = np.maximum(np.maximum(femur, tibia), osteo)
    fibula = cv.ellipse(X, Y, 0.5 + 0.33 * width + sub, yj + 0.2, 0.065 * width, 0.085, edge=0.012)
    patella = cv.ellipse(X, Y, 0.5 + rng.normal(0, 0.02), yj - 0.15, 0.13 * width, 0.15, edge=0.04)

    tex, tex2 = cv.fractal_noise(rng, size, beta=1.6, fmin=1 / 32)
    bone_density = rng.uniform(0.8, 1.2)
    cortex = np.clip(bone - cv.blur(bone, 2.0), 0.0, 1.0)
    sclerosis = _feature(_SCLEROSIS, sev) * _subchondral(X, Y, yj, gap_med, gap_lat, xm, plateau_y)
    soft = cv.superellipse(X, Y, 0.5, 0.5, rng.uniform(0.44, 0.56), 0.9, power=2.5, edge=0.15)
    density = (soft * F32(rng.uniform(0.35, 0.5))
               + bone_density * (bone * (F32(0.6) + F32(0.07) * tex) + F32(1.1) * cortex)
               + F32(0.35) * fibula * (1 - tibia) + F32(0.18) * patella
               + F32(0.55) * sclerosis * bone
               + F32(0.04) * tex2)
    img = cv.expose(density, lo=rng.uniform(-0.05, 0.08), hi=rng.uniform(0.9, 1.08),
                    gamma=rng.uniform(0.75, 1.35))
    img = cv.unsharp(cv.blur(img, rng.uniform(0.3, 1.0)), 3.0, rng.uniform(0.0, 0.6))
    img = cv.detector_noise(np.clip(img, 0, 1), rng, quantum=rng.uniform(0.01, 0.035), read=0.008)
    px = size * scale
    return KneeRadiograph(img.astype(F32), grade, sev, (gap_med * px, gap_lat * px), side)


def _femur(X, Y, yj, gap_med, gap_lat, xm, xl, width) -> np.ndarray:
    """Shaft, metaphysis and two condyles whose lowest points sit half a gap above the joint line."""
    shaft = cv.superellipse(X, Y, 0.5, yj - 0.45, 0.2 * width, 0.3, power=3.0, edge=0.012)
    meta = cv.superellipse(X, Y, 0.5, yj - 0.17, 0.29 * width, 0.1, power=3.0, edge=0.012)
    rc = 0.11
    med = cv.ellipse(X, Y, xm, yj - gap_med / 2 - rc, 0.15 * width, rc, edge=0.01)
    lat = cv.ellipse(X, Y, xl, yj - gap_lat / 2 - rc, 0.14 * width, rc, edge=0.01)
    notch = cv.ellipse(X, Y, 0.5, yj - 0.02, 0.04 * width, 0.065, edge=0.02)
    return np.clip(np.maximum.reduce([shaft, meta, med, lat]) - F32(0.7) * notch, 0.0, 1.0)


def _tibia(X, Y, rng, yj, gap_med, gap_lat, xm, xl, width, deform) -> tuple[np.ndarray, np.ndarray]:
    """Two plateau halves (flattened and made irregular by deformity), shaft and tibial spines."""
    wobble = cv.blur(rng.standard_normal(X.shape[1]).astype(F32), 4.0) * F32(0.01 * deform)
    col = np.clip((X * X.shape[1]).astype(int), 0, X.shape[1] - 1)
    rough = wobble[col]
    top_med, top_lat = yj + gap_med / 2, yj + gap_lat / 2
    power = 4.0 + 4.0 * deform
    med = cv.superellipse(X, Y + rough, xm, top_med + 0.12, 0.17 * width, 0.12, power=power, edge=0.01)
    lat = cv.superellipse(X, Y + rough, xl, top_lat + 0.12, 0.16 * width, 0.12, power=power, edge=0.01)
    shaft = cv.superellipse(X, Y, 0.5, yj + 0.5, 0.2 * width, 0.32, power=3.0, edge=0.012)
    spike = 0.03 + 0.015 * deform  # the spines sharpen as the disease advances
    spine_med = cv.ellipse(X, Y, 0.5 - 0.022 * width, min(top_med, top_lat) + 0.02, 0.02, spike, edge=0.01)
    spine_lat = cv.ellipse(X, Y, 0.5 + 0.022 * width, min(top_med, top_lat) + 0.02, 0.02, spike, edge=0.01)
    plateau_y = np.where(X < 0.5, F32(top_med), F32(top_lat)) + rough
    return np.maximum.reduce([med, lat, shaft, spine_med, spine_lat]), plateau_y


def _osteophytes(X, Y, rng, amount, yj, gap_med, gap_lat, width, sub) -> np.ndarray:
    """Marginal spurs on the four joint margins (medial larger); size grows with ``amount``."""
    out = np.zeros(X.shape, F32)
    if amount <= 0:
        return out
    margins = [  # x, y, outward direction, size factor (medial first)
        (0.5 - 0.305 * width + sub, yj + gap_med / 2 + 0.018, -1, 1.0),
        (0.5 - 0.27 * width, yj - gap_med / 2 - 0.035, -1, 0.8),
        (0.5 + 0.295 * width + sub, yj + gap_lat / 2 + 0.018, 1, 0.6),
        (0.5 + 0.26 * width, yj - gap_lat / 2 - 0.035, 1, 0.5),
    ]
    for k, (x, y, out_dir, factor) in enumerate(margins):
        length = amount * factor * rng.uniform(0.6, 1.2) * 0.05
        if length < 0.004:
            continue
        up = -1 if k % 2 == 0 else 1  # tibial spurs point up, femoral ones down
        angle = np.deg2rad(out_dir * up * rng.uniform(15, 40))
        out = np.maximum(out, cv.ellipse(X, Y, x + out_dir * length * 0.5, y + up * length * 0.3,
                                         length, 0.35 * length + 0.006, angle=angle, edge=0.006))
    return out


def _subchondral(X, Y, yj, gap_med, gap_lat, xm, plateau_y) -> np.ndarray:
    """A dense band just under the plateau and above the condyles, strongest medially."""
    below = cv.curve_band(Y, plateau_y + F32(0.03), 0.03, 0.03)
    above = cv.curve_band(Y, F32(yj) - np.where(X < 0.5, F32(gap_med / 2), F32(gap_lat / 2)) - F32(0.025),
                          0.02, 0.03)
    medial = cv.ellipse(X, Y, xm, yj, 0.2, 0.2, edge=0.1)
    return (below + F32(0.7) * above) * (F32(0.35) + F32(0.65) * medial)

"""Synthetic lateral cephalograms with the 19 ISBI 2015 landmarks (synthetic).

The face looks to the right, as in the ISBI images. An individual skull is a template of the 19
landmarks moved by a few correlated shape factors (lower-face height, maxillary and mandibular
prognathism, mandibular rotation, cranial-base length, soft-tissue thickness) plus small
independent jitter; every structure is then drawn *from those points*, so each landmark sits on a
visible image feature:

* sella: centre of the cup-shaped sella turcica; nasion: the notch between frontal and nasal bones;
* orbitale: lowest point of the orbital rim; porion: top of the ear-rod ring (external meatus);
* A point, B point, pogonion, gnathion, menton, gonion, articulare, ANS, PNS: corners and tips of
  the maxilla and mandible outlines; incisal tips: tips of the incisor crowns;
* upper lip, lower lip, subnasale, soft-tissue pogonion: corners of the soft-tissue profile.

A pose (rotation, scale, shift) then moves image and landmarks together. Landmarks are in pixel-index
coordinates (the centre of pixel ``i`` is ``i``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xrbench.data.phantom import canvas as cv

F32 = np.float32
#: the 19 landmarks in ISBI 2015 order (Wang et al. 2016)
CEPH_LANDMARKS = ("sella", "nasion", "orbitale", "porion", "subspinale (A point)", "supramentale (B point)",
                  "pogonion", "menton", "gnathion", "gonion", "lower incisal incision",
                  "upper incisal incision", "upper lip", "lower lip", "subnasale", "soft tissue pogonion",
                  "posterior nasal spine", "anterior nasal spine", "articulare")
S, N, OR, PO, A, B, POG, ME, GN, GO, L1, U1, UL, LL, SN, SPOG, PNS, ANS, AR = range(19)
#: mean positions in body coordinates (x right = anterior, y down), same order as CEPH_LANDMARKS
_TEMPLATE = np.array([
    (0.36, 0.34), (0.80, 0.29), (0.70, 0.40), (0.22, 0.42), (0.785, 0.52), (0.755, 0.70),
    (0.77, 0.77), (0.715, 0.83), (0.755, 0.815), (0.36, 0.72), (0.79, 0.60), (0.805, 0.615),
    (0.865, 0.575), (0.855, 0.66), (0.84, 0.50), (0.83, 0.78), (0.52, 0.50), (0.82, 0.485), (0.33, 0.49)])
_LOWER_FACE = [A, B, POG, ME, GN, GO, L1, U1, UL, LL, SPOG]
_MAXILLA = [A, U1, UL, SN, ANS]
_MANDIBLE = [B, POG, ME, GN, GO, L1, LL, SPOG]
_SOFT = {UL: U1, LL: L1, SN: A, SPOG: POG}  # soft-tissue point -> the bony point it covers


@dataclass(frozen=True)
class Cephalogram:
    image: np.ndarray  # [size, size] float32 in [0, 1], bright = dense
    landmarks: np.ndarray  # [19, 2] pixel xy, CEPH_LANDMARKS order


def individual_landmarks(rng: np.random.Generator) -> np.ndarray:
    """One person's 19 landmarks in body coordinates (before pose)."""
    p = _TEMPLATE.copy()
    base_y = p[ANS, 1]
    p[_LOWER_FACE, 1] = base_y + (p[_LOWER_FACE, 1] - base_y) * rng.uniform(0.9, 1.12)  # face height
    p[_MAXILLA, 0] += rng.normal(0, 0.012)  # maxillary prognathism
    p[_MANDIBLE, 0] += rng.normal(0, 0.018)  # mandibular prognathism
    theta = np.deg2rad(rng.normal(0, 3.0))  # mandibular plane rotation about articulare
    c, s = np.cos(theta), np.sin(theta)
    rel = p[_MANDIBLE] - p[AR]
    p[_MANDIBLE] = p[AR] + rel @ np.array([[c, s], [-s, c]])
    p[S] += rng.normal(0, 0.012, 2)  # cranial-base length and angle
    p[[PO, AR]] += rng.normal(0, 0.01, 2)
    for soft, bone in _SOFT.items():  # soft-tissue thickness in front of the bony point
        p[soft, 0] = p[bone, 0] + (_TEMPLATE[soft, 0] - _TEMPLATE[bone, 0]) * rng.uniform(0.75, 1.25)
    return p + rng.normal(0, 0.004, p.shape)


def cephalogram(seed: int, *, size: int = 256) -> Cephalogram:
    """One deterministic lateral cephalogram and its landmarks for ``seed``."""
    rng = np.random.default_rng(seed)
    body = individual_landmarks(rng)
    pose = cv.Pose(rotate_deg=rng.normal(0, 3.0), scale=rng.uniform(0.92, 1.05),
                   shift=(rng.normal(0, 0.02), rng.normal(0, 0.02)))
    X, Y = pose.grid(size, rng)

    def px(points) -> np.ndarray:  # body -> pixel coordinates of canvas.polygon (centre of pixel i = i + .5)
        pts = np.asarray(points, float)
        return np.stack(pose.to_px(pts[:, 0], pts[:, 1], size), axis=1)

    p = body
    soft = cv.polygon(size, px(_profile(p)), edge_px=2.0)
    mandible = cv.polygon(size, px(_mandible(p)), edge_px=1.0)
    maxilla = cv.polygon(size, px(_maxilla(p)), edge_px=1.0)
    incisors = np.maximum(cv.polygon(size, px(_tooth(p[U1], p[A] + (-0.02, 0.0), 0.022)), edge_px=1.0),
                          cv.polygon(size, px(_tooth(p[L1], p[B] + (-0.03, 0.01), 0.02)), edge_px=1.0))
    molars = _molars(X, Y, p)
    vault_x = p[N, 0] - 0.385  # the frontal bone comes down to nasion
    above_base = cv.ramp((p[S, 1] + 0.06 - 0.25 * (X - p[S, 0])) - Y, 0.04)  # nothing below the cranial base
    vault = cv.ellipse(X, Y, vault_x, 0.24, 0.39, 0.3, edge=0.01) * above_base
    vault_ring = vault - cv.ellipse(X, Y, vault_x, 0.24, 0.365, 0.275, edge=0.01) * above_base
    lines = np.maximum.reduce([
        cv.polyline(size, px([p[N] + (0.012, -0.06), p[N], p[N] + (0.045, 0.085)]), width_px=3.0),  # nasion notch
        cv.polyline(size, px([p[S] + (0.035, -0.01), (p[S] + p[N]) / 2 + (0, 0.012), p[N] + (-0.05, 0.02)]),
                    width_px=3.5),  # anterior cranial base
        cv.polyline(size, px([p[S] + (-0.03, 0.0), p[AR] + (-0.015, -0.012), p[AR] + (-0.09, 0.03)]),
                    width_px=6.0),  # clivus and basiocciput, ending over articulare
    ])
    sella = _ring(X, Y, p[S], 0.032, 0.021) * cv.ramp(Y - F32(p[S, 1] - 0.008), 0.01)
    orbit = _ring(X, Y, p[OR] - (0, 0.04), (0.05, 0.04), (0.043, 0.034))
    ear = _ring(X, Y, p[PO] + (0, 0.019), 0.028, 0.019)
    spine = np.maximum.reduce([cv.superellipse(X, Y, p[AR, 0] - 0.08 + 0.01 * k, p[AR, 1] + 0.14 + 0.1 * k,
                                               0.05, 0.035, power=4.0, angle=-0.15, edge=0.01) for k in range(4)])
    bone = np.maximum.reduce([mandible, maxilla, spine])
    cortex = np.clip(bone - cv.blur(bone, 1.5), 0, 1)
    tex, tex2 = cv.fractal_noise(rng, size, beta=1.8, fmin=1 / 40)
    airway = cv.ellipse(X, Y, p[AR, 0] + 0.02, p[AR, 1] + 0.25, 0.025, 0.16, angle=-0.1, edge=0.02)
    density = (F32(rng.uniform(0.3, 0.45)) * soft * (1 - F32(0.6) * airway)
               + F32(0.18) * vault + F32(0.5) * vault_ring
               + bone * (F32(0.35) + F32(0.05) * tex) + F32(0.6) * cortex
               + F32(0.55) * (incisors + molars) + F32(0.7) * lines
               + F32(0.75) * (sella + ear) + F32(0.45) * orbit + F32(0.03) * tex2)
    img = cv.expose(density, lo=rng.uniform(-0.05, 0.08), hi=rng.uniform(0.9, 1.08), gamma=rng.uniform(0.8, 1.25))
    img = cv.unsharp(cv.blur(img, rng.uniform(0.3, 0.8)), 2.5, rng.uniform(0.0, 0.6))
    img = cv.detector_noise(np.clip(img, 0, 1), rng, quantum=rng.uniform(0.01, 0.03), read=0.006)
    return Cephalogram(img.astype(F32), (px(body) - 0.5).astype(np.float64))


def _ring(X, Y, centre, outer, inner) -> np.ndarray:
    (ox, oy), (ix, iy) = np.broadcast_to(outer, 2), np.broadcast_to(inner, 2)
    cx, cy = centre
    return np.clip(cv.ellipse(X, Y, cx, cy, ox, oy, edge=0.008) - cv.ellipse(X, Y, cx, cy, ix, iy, edge=0.008), 0, 1)


def _profile(p: np.ndarray) -> np.ndarray:
    """Soft-tissue outline: forehead, nose, subnasale, lips, chin, neck (corners at the landmarks)."""
    nose_tip = p[SN] + (0.075, -0.06)
    stomion = (p[UL] + p[LL]) / 2 - (0.025, 0.0)
    soft_b = (p[LL] + p[SPOG]) / 2 - (0.03, 0.0)
    return np.array([(-0.1, -0.1), (0.75, -0.1), (p[N, 0] + 0.03, p[N, 1] - 0.12), p[N] + (0.035, 0.0),
                     nose_tip, p[SN], p[UL], stomion, p[LL], soft_b, p[SPOG], p[ME] + (0.02, 0.045),
                     (0.6, 0.93), (0.58, 1.1), (-0.1, 1.1)])


def _maxilla(p: np.ndarray) -> np.ndarray:
    """Palate and maxillary alveolus: PNS and ANS are its tips, A point its anterior concavity."""
    prosthion = (p[A] + p[U1]) / 2 + (0.008, -0.02)
    return np.array([p[PNS], p[PNS] + (0.08, -0.012), p[ANS], p[ANS] + (-0.025, 0.012), p[A], prosthion,
                     prosthion + (-0.06, 0.01), p[PNS] + (0.08, 0.05), p[PNS] + (0.02, 0.02)])


def _mandible(p: np.ndarray) -> np.ndarray:
    """Ramus, angle and body: articulare, gonion, menton, gnathion, pogonion, B point on its outline."""
    infradentale = p[L1] + (-0.012, 0.045)
    retromolar = (p[GO] + infradentale) / 2 + (0.06, -0.025)
    return np.array([p[AR] + (0.02, -0.035), p[AR], p[AR] + (0.0, 0.08), p[GO], (p[GO] + p[ME]) / 2 + (0, 0.012),
                     p[ME], p[GN], p[POG], p[B], infradentale, retromolar, p[AR] + (0.14, 0.01),
                     p[AR] + (0.09, 0.045), p[AR] + (0.045, -0.01)])


def _tooth(tip: np.ndarray, apex: np.ndarray, width: float) -> np.ndarray:
    """A tapering incisor from its root apex to its incisal tip (the tip is a polygon corner)."""
    axis = tip - apex
    normal = np.array([-axis[1], axis[0]]) / (np.hypot(*axis) + 1e-9)
    return np.array([apex + normal * width * 0.3, apex + axis * 0.55 + normal * width * 0.5, tip,
                     apex + axis * 0.55 - normal * width * 0.5, apex - normal * width * 0.3])


def _molars(X, Y, p: np.ndarray) -> np.ndarray:
    occlusal = (p[U1] + p[L1]) / 2
    out = np.zeros_like(X)
    for k in range(3):
        x = occlusal[0] - 0.12 - 0.045 * k
        for dy, ry in ((-0.022, 0.02), (0.024, 0.022)):
            out = np.maximum(out, cv.superellipse(X, Y, x, occlusal[1] + dy, 0.02, ry, power=3.0, edge=0.008))
    return out

"""Synthetic lumbar spine radiographs (lateral or frontal) with boxed lesions of the 7 VinDr-SpineXR
classes (synthetic).

The column is built vertebra by vertebra along a lordotic (lateral) or scoliotic (frontal) curve:
vertebral bodies with dense endplates and cortex, discs as gaps between them, and the posterior
elements (pedicles, laminae, spinous and transverse processes, intervertebral foramina) in soft
tissue with bowel gas. Lesions change that geometry before it is drawn, each with a severity in
[0.25, 1] that sets its size or strength, and are boxed from their own drawn masks, so boxes follow
the pose exactly:

* Osteophytes: a spur on a body corner at an endplate;
* Surgical implant: pedicle screws at 2-3 levels joined by rods (metal, very dense);
* Spondylolysthesis (the dataset's spelling): a body slipped forward over the one below (lateral);
* Foraminal stenosis: a narrowed foramen with bony encroachment (lateral);
* Disc space narrowing: a thinner disc, the endplates closer;
* Vertebral collapse: a lower, wedged and denser body;
* Other lesions: a focal sclerotic or lytic focus in a body.

About half of the images are normal. Pose, anatomy size, exposure, blur and noise vary freely.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xrbench.data.phantom import canvas as cv

F32 = np.float32
#: the 7 detection classes of VinDr-SpineXR, in the official config's order and spelling
LESION_TYPES = ("Osteophytes", "Surgical implant", "Spondylolysthesis", "Foraminal stenosis",
                "Disc space narrowing", "Vertebral collapse", "Other lesions")
VIEWS = ("lateral", "frontal")
_LATERAL_ONLY = {"Spondylolysthesis", "Foraminal stenosis"}
#: relative frequency of each class among drawn lesions (osteophytes dominate, as in the dataset)
_CLASS_WEIGHT = dict(zip(LESION_TYPES, (0.3, 0.1, 0.1, 0.1, 0.18, 0.1, 0.12)))
_MASK_LEVEL = 0.35  # a lesion's box is where its drawn mask exceeds this


@dataclass(frozen=True)
class SpineLesion:
    kind: str
    box: tuple[float, float, float, float]  # pixel xyxy
    severity: float
    level: int  # vertebra index from the top


@dataclass(frozen=True)
class SpineRadiograph:
    image: np.ndarray  # [H, W] float32 in [0, 1], bright = dense
    view: str
    lesions: tuple[SpineLesion, ...]


@dataclass
class _Vertebra:
    cx: float
    cy: float
    w: float
    h: float
    angle: float  # radians
    wedge: float = 0.0  # fraction of anterior height lost
    dense: float = 0.0  # extra density (compressed bone)

    def at(self, ox: float, oy: float) -> tuple[float, float]:
        """The point at offset (ox, oy) in this vertebra's own frame."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        return self.cx + c * ox - s * oy, self.cy + s * ox + c * oy


@dataclass
class _Plan:
    """What lesions do to the column, decided before it is built."""

    kinds: list[tuple[str, float, int]] = field(default_factory=list)  # (kind, severity, level)

    def get(self, kind: str) -> list[tuple[float, int]]:
        return [(s, lv) for k, s, lv in self.kinds if k == kind]


def spine_radiograph(seed: int, *, size: int = 256, view: str | None = None,
                     abnormal: bool | None = None) -> SpineRadiograph:
    """One deterministic spine radiograph for ``seed`` (view and normality drawn unless given)."""
    rng = np.random.default_rng(seed)
    view = view or VIEWS[int(rng.integers(2))]
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    lateral = view == "lateral"
    n_vert = int(rng.integers(5, 7))
    lesion_rng = np.random.default_rng([seed, 1])  # own stream: the same seed without lesions is the same body
    drawn = bool(lesion_rng.random() < 0.5)
    plan = _plan(lesion_rng, lateral, n_vert, drawn if abnormal is None else abnormal)
    X, Y = cv.Pose(rotate_deg=rng.normal(0, 4), scale=rng.uniform(0.9, 1.1),
                   shift=(rng.normal(0, 0.03), rng.normal(0, 0.02)), elastic=0.004).grid(size, rng)
    verts = _column(rng, plan, lateral, n_vert)

    bodies = [_body(X, Y, v, lateral) for v in verts]
    body = np.maximum.reduce(bodies)
    posterior, foramina = (_posterior_lateral if lateral else _posterior_frontal)(X, Y, verts, plan)
    extra = np.zeros_like(X)  # added density: dense bodies, foci, metal
    masks: list[tuple[str, float, int, np.ndarray]] = []
    for sev, lv in plan.get("Osteophytes"):
        spur = _osteophyte(X, Y, lesion_rng, verts[lv], sev, lateral)
        body = np.maximum(body, spur)
        masks.append(("Osteophytes", sev, lv, spur))
    for sev, lv in plan.get("Vertebral collapse"):
        extra += F32(0.35 * sev) * bodies[lv]
        masks.append(("Vertebral collapse", sev, lv, bodies[lv]))
    for sev, lv in plan.get("Spondylolysthesis"):
        masks.append(("Spondylolysthesis", sev, lv, np.maximum(bodies[lv], bodies[lv + 1])))
    for sev, lv in plan.get("Disc space narrowing"):
        masks.append(("Disc space narrowing", sev, lv, _disc_region(X, Y, verts[lv], verts[lv + 1])))
    for sev, lv in plan.get("Foraminal stenosis"):
        masks.append(("Foraminal stenosis", sev, lv, foramina[lv]))
    for sev, lv in plan.get("Other lesions"):
        focus = _focus(X, Y, lesion_rng, verts[lv], sev)
        extra += F32(lesion_rng.choice([-0.45, 0.55]) * (0.4 + 0.6 * sev)) * focus * bodies[lv]
        masks.append(("Other lesions", sev, lv, focus))
    metal = np.zeros_like(X)
    for sev, lv in plan.get("Surgical implant"):
        hardware = _implant(X, Y, verts[lv:lv + 2 + int(sev > 0.6)], lateral)
        metal = np.maximum(metal, hardware)
        masks.append(("Surgical implant", sev, lv, hardware))

    tex, _ = cv.fractal_noise(rng, size, beta=1.6, fmin=1 / 48)
    gas, fat = cv.fractal_noise(rng, size, beta=3.0, fmin=1 / 40)
    trunk = (cv.superellipse(X, Y, 0.5 + rng.normal(0, 0.03), 0.5, rng.uniform(0.42, 0.6), 1.2,
                             power=2.0, edge=0.2))
    bowel = np.clip(gas - 0.9, 0, None) * trunk
    cortex = np.clip(body - cv.blur(body, 1.5), 0.0, 1.0)
    bone_density = rng.uniform(0.8, 1.2)
    density = (trunk * F32(rng.uniform(0.5, 0.8)) - F32(0.1) * bowel + F32(0.04) * fat
               + bone_density * (body * (F32(0.45) + F32(0.05) * tex) + F32(0.9) * cortex + posterior)
               + extra)
    img = cv.expose(density, lo=rng.uniform(-0.05, 0.1), hi=rng.uniform(0.92, 1.1), gamma=rng.uniform(0.8, 1.3))
    if metal.any():  # metal is far denser than bone: it takes the top of the display range
        img = np.maximum(img * F32(0.8), metal)
    img = cv.unsharp(cv.blur(img, rng.uniform(0.3, 0.9)), 3.0, rng.uniform(0.0, 0.7))
    img = cv.detector_noise(np.clip(img, 0, 1), rng, quantum=rng.uniform(0.01, 0.04), read=0.008, lines=0.004)
    if rng.random() < 0.5:  # a side marker burnt in, as on most clinical images
        cv.text(img, "L" if rng.random() < 0.5 else "R", int(size * 0.05), int(size * 0.05), scale=2)

    lesions = []
    for kind, sev, lv, mask in masks:
        box = cv.bbox(mask > _MASK_LEVEL)
        if box is not None:
            lesions.append(SpineLesion(kind, box, sev, lv))
    return SpineRadiograph(img.astype(F32), view, tuple(lesions))


def _plan(rng, lateral: bool, n_vert: int, abnormal: bool) -> _Plan:
    plan = _Plan()
    if not abnormal:
        return plan
    kinds = [k for k in LESION_TYPES if lateral or k not in _LATERAL_ONLY]
    p = np.array([_CLASS_WEIGHT[k] for k in kinds])
    for _ in range(int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.2]))):
        kind = kinds[int(rng.choice(len(kinds), p=p / p.sum()))]
        if kind == "Surgical implant" and plan.get(kind):
            continue
        last = n_vert - 1 if kind in ("Osteophytes", "Vertebral collapse", "Other lesions") else n_vert - 2
        level = int(rng.integers(1, last + 1))  # the lower levels carry the disease
        if any(lv == level and k == kind for k, _, lv in plan.kinds):
            continue
        plan.kinds.append((kind, float(rng.uniform(0.25, 1.0)), level))
    return plan


def _column(rng, plan: _Plan, lateral: bool, n: int) -> list[_Vertebra]:
    """Vertebrae stacked top-down along the curve; collapse, narrowing and slip applied."""
    w = rng.uniform(0.2, 0.24) if lateral else rng.uniform(0.26, 0.31)
    h = rng.uniform(0.095, 0.11) * (6 / n) ** 0.5
    disc = rng.uniform(0.03, 0.04) * (6 / n) ** 0.5
    amp, phase = rng.uniform(0.02, 0.07), rng.uniform(-0.5, 0.5)
    x0 = rng.uniform(0.38, 0.44) if lateral else 0.5 + rng.normal(0, 0.02)
    collapse = {lv: s for s, lv in plan.get("Vertebral collapse")}
    narrow = {lv: s for s, lv in plan.get("Disc space narrowing")}
    slips = plan.get("Spondylolysthesis")
    y = rng.uniform(0.04, 0.1)
    verts = []
    for k in range(n):
        hk = h * rng.uniform(0.95, 1.05) * (1 - 0.5 * collapse.get(k, 0.0))
        cy = y + hk / 2
        t = cy
        xc = x0 - amp * np.sin(np.pi * t + phase) if lateral else x0 + amp * 0.6 * np.sin(2 * np.pi * t + phase)
        slope = (-amp * np.pi * np.cos(np.pi * t + phase) if lateral
                 else amp * 0.6 * 2 * np.pi * np.cos(2 * np.pi * t + phase))
        shift = sum(-0.35 * s * w for s, lv in slips if k <= lv)  # slipped forward (anterior = left)
        verts.append(_Vertebra(xc + shift, cy, w * rng.uniform(0.97, 1.03) * (1 + 0.04 * k), hk,
                               float(-np.arctan(slope)), wedge=0.5 * collapse.get(k, 0.0) if lateral else 0.0,
                               dense=collapse.get(k, 0.0)))
        y += hk + disc * rng.uniform(0.9, 1.1) * (1 - 0.8 * narrow.get(k, 0.0))
    return verts


def _body(X, Y, v: _Vertebra, lateral: bool) -> np.ndarray:
    """A rounded-box vertebral body; a collapsed one loses anterior height (wedge)."""
    mask = cv.superellipse(X, Y, v.cx, v.cy, v.w / 2, v.h / 2, power=5.0, angle=v.angle, edge=0.008)
    if v.wedge > 0:
        u, t = cv.rotated(X, Y, v.cx, v.cy, v.angle)
        top = -v.h / 2 + v.wedge * v.h * (0.5 - u / v.w)  # anterior (left) top pushed down
        mask = mask * cv.ramp(t - top, 0.008)
    return mask


def _posterior_lateral(X, Y, verts, plan: _Plan) -> tuple[np.ndarray, list[np.ndarray]]:
    """Pedicles, laminae and spinous processes behind the bodies, with a foramen at each disc level."""
    stenosis = {lv: s for s, lv in plan.get("Foraminal stenosis")}
    elements = np.zeros_like(X)
    for v in verts:
        for (ox, oy, rx, ry, power) in ((v.w / 2 + 0.04, -v.h * 0.15, 0.045, v.h * 0.3, 3.0),  # pedicle
                                        (v.w / 2 + 0.09, v.h * 0.15, 0.035, v.h * 0.55, 2.5),  # lamina/facets
                                        (v.w / 2 + 0.16, v.h * 0.2, 0.06, v.h * 0.22, 2.0)):  # spinous
            cx, cy = v.at(ox, oy)
            elements = np.maximum(elements, cv.superellipse(X, Y, cx, cy, rx, ry, power=power,
                                                            angle=v.angle, edge=0.012))
    foramina = []
    for k, (a, b) in enumerate(zip(verts[:-1], verts[1:])):
        s = stenosis.get(k, 0.0)
        cx, cy = a.at(a.w / 2 + 0.04, a.h / 2 + 0.2 * (b.cy - a.cy - a.h / 2))
        hole = cv.ellipse(X, Y, cx, cy, 0.026 * (1 - 0.45 * s), 0.042 * (1 - 0.5 * s), angle=a.angle, edge=0.01)
        elements = elements * (1 - hole)
        foramina.append(cv.ellipse(X, Y, cx, cy, 0.03, 0.048, angle=a.angle, edge=0.01))
    foramina.append(np.zeros_like(X))
    return F32(0.4) * elements, foramina


def _posterior_frontal(X, Y, verts, plan: _Plan) -> tuple[np.ndarray, list[np.ndarray]]:
    """Pedicle rings, spinous process and transverse processes seen through the bodies."""
    out = np.zeros_like(X)
    for v in verts:
        for side in (-1, 1):
            cx, cy = v.at(side * v.w * 0.32, -v.h * 0.15)
            ring = (cv.ellipse(X, Y, cx, cy, 0.026, 0.036, angle=v.angle, edge=0.008)
                    - cv.ellipse(X, Y, cx, cy, 0.016, 0.024, angle=v.angle, edge=0.008))
            tx, ty = v.at(side * (v.w / 2 + 0.05), 0.0)
            transverse = cv.superellipse(X, Y, tx, ty, 0.065, 0.016, power=2.5, angle=v.angle, edge=0.01)
            out += F32(0.6) * np.clip(ring, 0, 1) + F32(0.3) * transverse
        sx, sy = v.at(0.0, v.h * 0.2)
        out += F32(0.35) * cv.ellipse(X, Y, sx, sy, 0.016, v.h * 0.35, angle=v.angle, edge=0.01)
    return out, [np.zeros_like(X) for _ in verts]


def _osteophyte(X, Y, rng, v: _Vertebra, sev: float, lateral: bool) -> np.ndarray:
    """A beak-like spur at a body corner, pointing outwards and towards the disc."""
    side = -1 if lateral else int(rng.choice([-1, 1]))  # anterior corner / either lateral corner
    end = int(rng.choice([-1, 1]))  # upper or lower endplate
    length = 0.025 + 0.055 * sev
    cx, cy = v.at(side * (v.w / 2 + length * 0.45), end * (v.h / 2 - 0.004))
    angle = v.angle + side * end * np.deg2rad(rng.uniform(20, 40))
    return cv.ellipse(X, Y, cx, cy, length * 0.6, 0.009 + 0.01 * sev, angle=angle, edge=0.006)


def _disc_region(X, Y, a: _Vertebra, b: _Vertebra) -> np.ndarray:
    """The narrowed disc with the two endplates that face it (what readers box)."""
    top = np.array(a.at(0.0, a.h / 2 - 0.012))
    bottom = np.array(b.at(0.0, -b.h / 2 + 0.012))
    cx, cy = (top + bottom) / 2
    half = max(float(np.hypot(*(bottom - top))) / 2, 0.008)
    return cv.superellipse(X, Y, cx, cy, (a.w + b.w) / 4, half, power=6.0, angle=(a.angle + b.angle) / 2,
                           edge=0.006)


def _focus(X, Y, rng, v: _Vertebra, sev: float) -> np.ndarray:
    cx, cy = v.at(rng.uniform(-0.25, 0.25) * v.w, rng.uniform(-0.2, 0.2) * v.h)
    r = 0.015 + 0.025 * sev
    return cv.ellipse(X, Y, cx, cy, r, r * rng.uniform(0.7, 1.0), angle=rng.uniform(0, np.pi), edge=0.01)


def _implant(X, Y, levels: list[_Vertebra], lateral: bool) -> np.ndarray:
    """Pedicle screws at each level joined by a rod (one rod per side in the frontal view)."""
    out = np.zeros_like(X)
    sides = (1,) if lateral else (-1, 1)
    heads: dict[int, list[tuple[float, float]]] = {s: [] for s in sides}
    for v in levels:
        for side in sides:
            if lateral:  # from behind the pedicle into the body, seen side-on
                sx, sy = v.at(v.w * 0.05, -v.h * 0.05)
                hx, hy = v.at(v.w / 2 + 0.07, -v.h * 0.05)
                angle = v.angle
                half = v.w * 0.45
            else:  # converging from the pedicle towards the body centre
                sx, sy = v.at(side * v.w * 0.2, -v.h * 0.1)
                hx, hy = v.at(side * v.w * 0.36, -v.h * 0.1)
                angle = v.angle + side * np.deg2rad(15)
                half = v.w * 0.17
            out = np.maximum(out, cv.superellipse(X, Y, sx, sy, half, 0.011, power=3.0, angle=angle, edge=0.005))
            out = np.maximum(out, cv.ellipse(X, Y, hx, hy, 0.014, 0.014, edge=0.005))
            heads[side].append((hx, hy))
    for pts in heads.values():
        for (ax, ay), (bx, by) in zip(pts[:-1], pts[1:]):
            angle = np.arctan2(by - ay, bx - ax)
            rod = cv.superellipse(X, Y, (ax + bx) / 2, (ay + by) / 2, np.hypot(bx - ax, by - ay) / 2 + 0.012,
                                  0.009, power=4.0, angle=angle, edge=0.005)
            out = np.maximum(out, rod)
    return out

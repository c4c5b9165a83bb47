"""How each chest finding changes the synthetic radiograph, with its masks and the words for the report.

Synthetic data only. Each finding is described by a :class:`Spec` (severity, side, zone and a
placement seed: chronic findings reuse the patient's seed so they sit in the same place in every
image of that patient). :func:`adjust_geometry` applies what a finding does to the anatomy's shape
(volume loss, hyperinflation, enlarged aorta...) *before* the chest is drawn; :func:`draw_finding`
then fills air spaces, adds density or air, removes lung markings, and returns the finding's
pixel masks (one per localised lesion) from which boxes are taken.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xrbench.data.phantom import canvas
from xrbench.data.phantom.canvas import F32, ramp
from xrbench.data.phantom.chest_anatomy import SGN, SIDES, Geometry, Thorax, lateral_profile

ZONES = {"upper": (0.14, 0.34), "middle": (0.4, 0.58), "lower": (0.64, 0.84)}
#: physical width of the inner thorax assumed when converting sizes to millimetres for reports
THORAX_MM = 300.0


@dataclass
class Spec:
    """One present finding: what the sampler decided, and what drawing it found out (``detail``)."""

    name: str
    severity: float
    side: str | None = None        # "right" | "left" | "bilateral" | None (patient's side)
    zone: str | None = None        # "upper" | "middle" | "lower" | None
    seed: int = 0
    detail: dict = field(default_factory=dict)

    @property
    def sides(self) -> tuple[str, ...]:
        if self.side == "bilateral":
            return SIDES
        return (self.side,) if self.side in SIDES else ()

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)


def adjust_geometry(g: Geometry, specs: dict[str, Spec]) -> None:
    """Shape changes a finding causes, applied before the chest is drawn (in place)."""
    if (s := specs.get("Enlarged Cardiomediastinum")) is not None:
        g.med_hw *= 1.2 + 0.45 * s.severity
    if (s := specs.get("Aortic Enlargement")) is not None:
        g.aorta_r *= 1.3 + 0.6 * s.severity
        g.aorta_dx += 0.01 * s.severity
    if (s := specs.get("Emphysema")) is not None:
        v = s.severity
        for side in SIDES:
            g.dome[side] += 0.05 * v
            g.depth[side] *= 1 - 0.6 * v
            g.hw[side] *= 1 + 0.04 * v
        g.lung_air *= 1 + 0.35 * v
        g.vessel_reach *= 1 - 0.4 * v
        g.rib_sp *= 1 + 0.08 * v
        g.heart_w *= 1 - 0.08 * v
    if (s := specs.get("Fibrosis")) is not None:
        for side in SIDES:
            g.dome[side] -= 0.03 * s.severity
            g.hw[side] *= 1 - 0.03 * s.severity
    if (s := specs.get("Atelectasis")) is not None:
        for side in s.sides:
            g.dome[side] -= 0.045 * s.severity
            g.med_shift += SGN[side] * 0.02 * s.severity
    if (s := specs.get("Fracture")) is not None:
        r = s.rng()
        s.detail["rib"] = int(r.integers(3, 9))
        s.detail["d"] = float(r.uniform(0.55, 0.9))
        g.fracture = (s.side, s.detail["rib"], s.detail["d"], float(r.uniform(0.12, 0.3)))


def lung_point(g: Geometry, side: str, zone: str, rng: np.random.Generator,
               depth: tuple[float, float] = (0.3, 0.8)) -> tuple[float, float]:
    """A body point inside ``side``'s lung in ``zone`` (fraction ``depth`` from mediastinum to wall)."""
    t0, t1 = ZONES[zone]
    for _ in range(20):
        t = rng.uniform(t0, t1)
        y = g.apex_y + t * (g.cp_y(side) - g.apex_y)
        lat = g.hw[side] * float(lateral_profile(np.array(t)))
        med = g.med_hw + 0.02 + (0.5 * g.heart_w * 0.9 if zone == "lower" else 0.0) * (side == "left")
        u = med + rng.uniform(*depth) * max(lat - med, 0.02)
        top = g.apex_y + 2.6 / g.hw[side] * (u - 0.42 * g.hw[side]) ** 2
        dome = g.dome[side] + g.depth[side] / (0.5 * g.hw[side]) ** 2 * (u - 0.52 * g.hw[side]) ** 2
        if top + 0.02 < y < dome - 0.025:
            break
    return g.cx + SGN[side] * u, y


def size_mm(g: Geometry, radius: float) -> int:
    return int(round(2 * radius / g.thorax_w * THORAX_MM))


def _edge(th: Thorax) -> float:
    return 2.0 / th.X.shape[0]


def _fill(th: Thorax, amount: np.ndarray) -> None:
    np.maximum(th.fill, amount, out=th.fill)


def _effusion(th: Thorax, s: Spec) -> list[np.ndarray]:
    g, Y, v, masks = th.g, th.Y, s.severity, []
    for side in s.sides:
        f = th.side[side]
        level = g.cp_y(side) - (0.02 + 0.4 * v) * (g.cp_y(side) - g.apex_y)
        top = F32(level) - F32(0.03 + 0.08 * v) * np.clip(f.u * F32(1 / g.hw[side]), 0, 1.1) ** 3
        hemi = ramp(f.lat + F32(0.01) - f.u, _edge(th)) * ramp(f.u - F32(0.02), _edge(th))
        fluid = np.clip((Y - top) * F32(1 / (0.02 + 0.03 * v)), 0, 1) * hemi * ramp(f.dome + F32(0.03) - Y, 0.02)
        _fill(th, fluid)
        th.extra += fluid * F32(0.2)
        masks.append((fluid > 0.5) & (f.lung > 0.5))
    s.detail["size"] = _size_word(v, "small", "moderate", "large")
    return masks


def _pneumothorax(th: Thorax, s: Spec) -> list[np.ndarray]:
    g, v, masks = th.g, s.severity, []
    for side in s.sides:
        f = th.side[side]
        gap = 0.012 + 0.1 * v
        e = 1.5 / th.X.shape[0]
        collapsed = ramp(f.lat - F32(gap) * (1 - F32(0.35) * np.clip(f.t, 0, 1)) - f.u, e) * ramp(th.Y - f.top - F32(1.4 * gap), e)
        ptx = f.lung * (1 - collapsed)
        th.lung_present *= 1 - ptx
        th.air_gain += ptx * F32(0.1)
        th.fill += f.lung * collapsed * F32(0.12 * v)
        th.extra += F32(4) * collapsed * (1 - collapsed) * f.lung * F32(0.14)
        masks.append(ptx > 0.5)
    s.detail["size"] = _size_word(v, "small", "moderate", "large")
    return masks


def _airspace(th: Thorax, s: Spec, *, radius: float, density: float, patchy: float, sharp: float,
              bronchograms: bool) -> list[np.ndarray]:
    """Consolidation-like opacity: a patchy blob filling air spaces, optionally with air bronchograms."""
    g, r, masks = th.g, s.rng(), []
    noise = _cloud_noise(th, r)
    for side in s.sides:
        x, y = lung_point(g, side, s.zone, r, (0.25, 0.7))
        rad = radius * r.uniform(0.8, 1.2)
        blob = canvas.gaussian(th.X, th.Y, x, y, rad, rad * r.uniform(0.7, 1.2), angle=r.uniform(-0.6, 0.6))
        field_ = blob * (1 + F32(0.35 * patchy) * noise)
        amount = canvas.blur(np.clip((field_ - F32(0.35)) * F32(sharp), 0, 1), 1.0) * th.side[side].lung
        if s.zone == "upper" and side == "right" and r.random() < 0.5:  # lobar: sharp minor-fissure edge
            amount *= ramp(F32(g.hilum(side)[1] + 0.01) - th.Y, _edge(th))
        if bronchograms:
            amount *= 1 - F32(0.4) * _bronchi(th, side, r)
        _fill(th, amount * F32(density))
        masks.append(amount > 0.3)
    return masks


def _cloud_noise(th: Thorax, rng: np.random.Generator) -> np.ndarray:
    """A cloudy texture field for patchy opacities (zero mean, unit std)."""
    return canvas.fractal_noise(rng, th.X.shape[0], beta=3.0, fmin=1 / 40)[0]


def _bronchi(th: Thorax, side: str, rng: np.random.Generator) -> np.ndarray:
    """Thin dark branching lines radiating from the hilum (air bronchograms inside an opacity)."""
    hx, hy = th.g.hilum(side)
    dx, dy = th.X - F32(hx), th.Y - F32(hy)
    theta = np.arctan2(dy, dx * F32(SGN[side]))
    n = 96
    prof = np.clip(canvas.blur(rng.standard_normal(n).astype(F32), 0.6) * F32(3.0) - F32(2.0), 0, 1)
    idx = ((theta + F32(np.pi)) * F32(n / (2 * np.pi))).astype(np.int64) % n
    return np.take(prof, idx)


def _nodules(th: Thorax, s: Spec, *, mass: bool) -> list[np.ndarray]:
    g, r, v, masks, mm = th.g, s.rng(), s.severity, [], []
    count = 1 if mass or r.random() < 0.7 else int(r.integers(2, 4))
    for k in range(count):
        side = s.sides[0] if k == 0 else SIDES[int(r.integers(2))]
        zone = s.zone if k == 0 else ("upper", "middle", "lower")[int(r.integers(3))]
        x, y = lung_point(g, side, zone, r, (0.3, 0.85))
        rad = (0.035 + 0.05 * v) if mass else (0.01 + 0.016 * v)
        rad *= r.uniform(0.85, 1.15)
        if mass:
            blob = np.maximum.reduce([canvas.ellipse(th.X, th.Y, x + ox * rad, y + oy * rad, rad * a, rad * b,
                                                     edge=0.4 * rad)
                                      for ox, oy, a, b in r.uniform([-0.3, -0.3, 0.6, 0.6], [0.3, 0.3, 0.9, 0.9], (3, 4))])
        else:
            blob = canvas.ellipse(th.X, th.Y, x, y, rad, rad * r.uniform(0.85, 1.15), edge=0.5 * rad)
        _fill(th, blob * F32(0.95))
        th.extra += blob * F32(0.05 + 0.07 * v)
        masks.append(blob > 0.5)
        mm.append(size_mm(g, rad))
    s.detail.update(count=count, size_mm=max(mm))
    return masks


def _atelectasis(th: Thorax, s: Spec) -> list[np.ndarray]:
    g, r, v, masks = th.g, s.rng(), s.severity, []
    for side in s.sides:
        x, y = lung_point(g, side, "lower", r, (0.3, 0.6))
        length, thick = 0.06 + 0.1 * v, 0.004 + 0.006 * v
        plate = canvas.ellipse(th.X, th.Y, x, y, length, thick, angle=SGN[side] * r.uniform(-0.35, 0.15),
                               edge=_edge(th))
        amount = plate * th.side[side].lung
        if v > 0.6:  # lobar collapse: a dense wedge along the mediastinum above the diaphragm
            f = th.side[side]
            wedge_w = F32(g.med_hw + 0.02) + (th.Y - F32(g.hilum(side)[1])) * F32(0.5 * v)
            wedge = ramp(wedge_w - f.u, _edge(th) * 2) * ramp(th.Y - F32(g.hilum(side)[1]), 0.03) * f.lung
            amount = np.maximum(amount, wedge * F32(0.75))
        _fill(th, amount * F32(0.9))
        masks.append(amount > 0.4)
    s.detail["kind"] = "lobar" if v > 0.6 else "plate-like"
    return masks


def _edema(th: Thorax, s: Spec) -> list[np.ndarray]:
    g, v = th.g, s.severity
    lungs = th.lungs
    haze = sum(canvas.gaussian(th.X, th.Y, *g.hilum(side), 0.07 + 0.05 * v, 0.09 + 0.05 * v) for side in SIDES)
    amount = np.clip(haze, 0, 1) * F32(0.25 + 0.4 * v)
    for side in SIDES:  # Kerley B lines: short horizontal septal lines at the lateral bases
        f = th.side[side]
        spacing = 0.018
        phase = (th.Y - F32(g.apex_y)) * F32(1 / spacing)
        lines = ramp(F32(0.12) - np.abs(phase - np.round(phase)), 0.1)
        gate = ramp(f.u - f.lat + F32(0.035), 0.01) * ramp(f.t - F32(0.55), 0.1)
        amount = np.maximum(amount, lines * gate * F32(0.35 + 0.35 * v))
    _fill(th, amount * lungs)
    th.vessel_gain *= 1 + F32(1.2 * v) * ramp(F32(g.hilum("right")[1]) - th.Y, 0.1)  # cephalisation
    s.detail["size"] = _size_word(v, "mild", "moderate", "severe")
    return []


def _emphysema(th: Thorax, s: Spec) -> list[np.ndarray]:
    g, r, v = th.g, s.rng(), s.severity
    if v > 0.5:
        for side in SIDES:
            x, y = lung_point(g, side, "upper", r, (0.3, 0.7))
            rad = r.uniform(0.02, 0.04)
            bulla = canvas.ellipse(th.X, th.Y, x, y, rad, rad, edge=_edge(th))
            th.air_gain += bulla * th.side[side].lung * F32(0.12)
            th.vessel_gain *= 1 - bulla
            th.extra += F32(4) * bulla * (1 - bulla) * F32(0.05)
    s.detail["size"] = _size_word(v, "mild", "moderate", "severe")
    return []


def _reticular(th: Thorax, s: Spec, rng: np.random.Generator, *, zone_gate: np.ndarray, amount: float) -> None:
    """A net of fine lines (zero crossings of a grainy noise field) restricted to ``zone_gate``."""
    n = canvas.fractal_noise(rng, th.X.shape[0], beta=2.0, fmin=1 / 12, fmax=1 / 8)[0]
    net = np.exp(-(n * F32(3.0)) ** 2)
    _fill(th, net * zone_gate * F32(amount))


def _fibrosis(th: Thorax, s: Spec) -> list[np.ndarray]:
    v, masks, gate = s.severity, [], np.zeros_like(th.X)
    for side in SIDES:
        f = th.side[side]
        zone = ramp(f.t - F32(0.45), 0.15) * ramp(f.u - F32(0.45) * f.lat, 0.05) * f.lung
        gate = np.maximum(gate, zone)
        masks.append(zone > 0.5)
    _reticular(th, s, s.rng(), zone_gate=gate, amount=0.15 + 0.5 * v)
    s.detail["size"] = _size_word(v, "mild", "moderate", "severe")
    return masks


def _infiltration(th: Thorax, s: Spec) -> list[np.ndarray]:
    masks = _airspace(th, s, radius=0.05 + 0.05 * s.severity, density=0.35 + 0.3 * s.severity,
                      patchy=1.6, sharp=2.0, bronchograms=False)
    gate = np.clip(sum(m.astype(F32) for m in masks), 0, 1)
    _reticular(th, s, s.rng(), zone_gate=canvas.blur(gate, 3), amount=0.3)
    return masks


def _calcification(th: Thorax, s: Spec) -> list[np.ndarray]:
    g, r, masks = th.g, s.rng(), []
    for _ in range(int(r.integers(1, 4 + int(3 * s.severity)))):
        side = s.sides[0] if r.random() < 0.7 else SIDES[int(r.integers(2))]
        x, y = lung_point(g, side, ("upper", "middle", "lower")[int(r.integers(3))], r, (0.1, 0.8))
        rad = r.uniform(0.004, 0.008)
        dot = canvas.ellipse(th.X, th.Y, x, y, rad, rad, edge=_edge(th))
        th.extra += dot * F32(0.45)
        masks.append(canvas.ellipse(th.X, th.Y, x, y, rad + 0.008, rad + 0.008, edge=0) > 0.5)
    s.detail["count"] = len(masks)
    return masks


def _pleural_thickening(th: Thorax, s: Spec) -> list[np.ndarray]:
    g, r, v, masks = th.g, s.rng(), s.severity, []
    for side in s.sides:
        f = th.side[side]
        thick = F32(0.008 + 0.016 * v)
        if r.random() < 0.4:  # apical cap
            band = ramp(f.top + thick - th.Y, _edge(th)) * ramp(F32(0.25) - f.t, 0.05) * f.lung
            s.detail["where"] = "apical"
        else:
            t0 = r.uniform(0.25, 0.55)
            band = ramp(f.u - f.lat + thick, _edge(th)) * ramp(f.t - F32(t0), 0.04) * ramp(F32(t0 + 0.35) - f.t, 0.04) * f.lung
            s.detail["where"] = "lateral"
        _fill(th, band)
        th.extra += band * F32(0.08)
        masks.append(band > 0.5)
    return masks


def _pleural_plaques(th: Thorax, s: Spec) -> list[np.ndarray]:
    g, r, masks = th.g, s.rng(), []
    for side in s.sides:
        f = th.side[side]
        for _ in range(int(r.integers(1, 3))):
            t = r.uniform(0.35, 0.85)
            u = g.hw[side] * float(lateral_profile(np.array(t))) - 0.006
            x, y = g.cx + SGN[side] * u, g.apex_y + t * (g.cp_y(side) - g.apex_y)
            plaque = canvas.ellipse(th.X, th.Y, x, y, 0.007, 0.03 + 0.02 * s.severity, edge=_edge(th))
            plaque *= ramp(f.lat + F32(0.004) - f.u, _edge(th))
            th.extra += plaque * F32(0.3)
            masks.append(plaque > 0.3)
    s.detail["kind"] = "calcified pleural plaque"
    return masks


def _fracture(th: Thorax, s: Spec) -> list[np.ndarray]:
    g, side = th.g, s.sides[0]
    k, d = s.detail["rib"], s.detail["d"]
    x = g.cx + SGN[side] * d * g.hw[side]
    y = g.rib_y(side, k + 0.21, d)
    return [canvas.ellipse(th.X, th.Y, x, y, 0.025, 0.02, edge=0) > 0.5]


def _hernia(th: Thorax, s: Spec) -> list[np.ndarray]:
    g, v = th.g, s.severity
    rad = 0.03 + 0.03 * v
    cx, cy = g.cx + g.med_shift + 0.02, g.dome["left"] - rad * 0.6
    sac = canvas.ellipse(th.X, th.Y, cx, cy, rad * 1.2, rad, edge=_edge(th))
    gas = sac * ramp(F32(cy + 0.1 * rad) - th.Y, _edge(th))
    th.air_gain += gas * F32(0.22)
    th.extra += sac * F32(0.04) + F32(4) * sac * (1 - sac) * F32(0.05)
    return [sac > 0.5]


def _mediastinum_boxes(th: Thorax, s: Spec) -> list[np.ndarray]:
    top = th.g.hilum("right")[1] + 0.04
    return [(th.mediastinum > 0.5) & (th.Y < F32(top)) & (th.Y > F32(th.g.apex_y))]


def _aorta(th: Thorax, s: Spec) -> list[np.ndarray]:
    x, y, r = th.g.knob()
    return [canvas.ellipse(th.X, th.Y, x, y, r * 1.15, r * 1.25, edge=0) > 0.5]


def _heart_box(th: Thorax, s: Spec) -> list[np.ndarray]:
    return [(th.heart > 0.5) & (th.Y < F32(th.g.dome["left"] + 0.01))]


def _size_word(v: float, small: str, mid: str, large: str) -> str:
    return small if v < 0.34 else mid if v < 0.67 else large


def draw_finding(th: Thorax, s: Spec) -> list[np.ndarray]:
    """Draw one finding into ``th``; returns its boolean masks (one per localised lesion, may be [])."""
    v = s.severity
    if s.name == "Pleural Effusion":
        return _effusion(th, s)
    if s.name == "Pneumothorax":
        return _pneumothorax(th, s)
    if s.name == "Consolidation":
        return _airspace(th, s, radius=0.05 + 0.06 * v, density=0.75 + 0.25 * v, patchy=0.6, sharp=3.0,
                         bronchograms=True)
    if s.name == "Pneumonia":
        return _airspace(th, s, radius=0.05 + 0.06 * v, density=0.55 + 0.3 * v, patchy=1.0, sharp=2.0,
                         bronchograms=False)
    if s.name == "Lung Opacity":
        return _airspace(th, s, radius=0.05 + 0.05 * v, density=0.3 + 0.25 * v, patchy=0.3, sharp=1.6,
                         bronchograms=False)
    if s.name in ("Nodule", "Mass"):
        return _nodules(th, s, mass=s.name == "Mass")
    table = {"Atelectasis": _atelectasis, "Edema": _edema, "Emphysema": _emphysema, "Fibrosis": _fibrosis,
             "Infiltration": _infiltration, "Calcification": _calcification,
             "Pleural Thickening": _pleural_thickening, "Pleural Other": _pleural_plaques,
             "Fracture": _fracture, "Hernia": _hernia, "Enlarged Cardiomediastinum": _mediastinum_boxes,
             "Aortic Enlargement": _aorta, "Cardiomegaly": _heart_box}
    return table[s.name](th, s)

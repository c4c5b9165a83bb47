"""Normal frontal chest anatomy of the synthetic phantom: per-patient shape, per-image geometry, density.

Synthetic data only. Body coordinates are image units before the pose (x right, y down, 0..1). The
radiological convention holds: the patient's *right* lung is on the *image left* (``sgn = -1``).
Each hemithorax is drawn in ``u`` = distance from the midline towards its own chest wall, so both
sides share one description. Findings change the geometry (volume loss, hyperinflation) before it
is drawn and add density/air-filling afterwards (``chest_findings``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xrbench.data.phantom import canvas
from xrbench.data.phantom.canvas import F32, ramp

SIDES = ("right", "left")
SGN = {"right": -1.0, "left": 1.0}


@dataclass(frozen=True)
class Anatomy:
    """What makes one synthetic patient look like themself in every image."""

    thorax_hw: float      # inner rib-cage half-width (CTR denominator is 2x this)
    apex_y: float
    dome_y: float         # top of the right hemidiaphragm at full inspiration
    dome_depth: float     # how far the costophrenic angles lie below the dome top
    left_drop: float      # left dome lower than the right
    med_hw: float         # upper mediastinum half-width
    aorta_r: float
    ctr: float            # true (PA) cardiothoracic ratio
    heart_aspect: float   # heart height / width for a normal-size heart
    heart_right: float    # fraction of the heart width right of the midline
    heart_tilt: float     # radians
    soft: float           # soft-tissue habitus: <1 thin, >1 obese
    breast: float         # 0 for men
    rib_y0: float
    rib_sp: float
    rib_sp2: float
    rib_curve: float
    clav_y: float
    clav_rise: float
    hilum_frac: float     # hilum height as a fraction of apex->dome
    lung_air: float
    vessel_seed: int
    asym: float           # natural right/left width difference


@dataclass
class Geometry:
    """One image's resolved anatomy in body units (anatomy + acquisition + finding effects)."""

    cx: float
    hw: dict[str, float]
    apex_y: float
    dome: dict[str, float]
    depth: dict[str, float]
    med_hw: float
    med_shift: float
    aorta_r: float
    aorta_dx: float
    heart_w: float
    heart_h: float
    heart_right: float
    heart_tilt: float
    soft: float
    breast: float
    lung_air: float
    vessel_reach: float
    rib_y0: float
    rib_sp: float
    rib_sp2: float
    rib_curve: float
    clav_y: float
    clav_rise: float
    hilum_frac: float
    vessel_seed: int
    fracture: tuple[str, int, float, float] | None = None  # side, rib index, d position, offset
    ap_scapula: float = 0.0

    @property
    def thorax_w(self) -> float:
        return self.hw["right"] + self.hw["left"]

    def cp_y(self, side: str) -> float:
        return self.dome[side] + self.depth[side]

    def hilum(self, side: str) -> tuple[float, float]:
        y = self.apex_y + self.hilum_frac * (self.dome["right"] - self.apex_y)
        return self.cx + self.med_shift + SGN[side] * (self.med_hw + 0.035), y

    def knob(self) -> tuple[float, float, float]:
        """Aortic knob centre and radius."""
        return (self.cx + self.med_shift + self.med_hw + self.aorta_dx,
                self.apex_y + 0.12 + self.aorta_r * 0.5, self.aorta_r)

    def rib_y(self, side: str, k: float, d: float) -> float:
        """Height of posterior rib ``k``'s centre line at fraction ``d`` of the way to the wall."""
        return self.rib_y0 + self.rib_curve * (-0.8 * d + 1.6 * d ** 3) + self.rib_sp * k + self.rib_sp2 * k * k


def sample_anatomy(rng: np.random.Generator, sex: str, age: int) -> Anatomy:
    """A plausible adult; every number varies so that no single size identifies a finding."""
    male = sex == "M"
    hw = rng.uniform(0.33, 0.41) + (0.01 if male else -0.01)
    apex = rng.uniform(0.09, 0.15)
    return Anatomy(
        thorax_hw=hw, apex_y=apex, dome_y=apex + rng.uniform(0.52, 0.62),
        dome_depth=rng.uniform(0.045, 0.085), left_drop=rng.uniform(0.0, 0.035),
        med_hw=rng.uniform(0.04, 0.055), aorta_r=rng.uniform(0.022, 0.032) * (1 + (age - 50) / 300),
        ctr=0.45, heart_aspect=rng.uniform(0.62, 0.8), heart_right=rng.uniform(0.27, 0.36),
        heart_tilt=rng.uniform(0.25, 0.5), soft=float(np.clip(rng.lognormal(0.0, 0.25), 0.65, 1.8)),
        breast=0.0 if male else rng.uniform(0.3, 1.0), rib_y0=apex + rng.uniform(0.0, 0.03),
        rib_sp=rng.uniform(0.038, 0.05), rib_sp2=rng.uniform(0.0008, 0.0025),
        rib_curve=rng.uniform(0.04, 0.08), clav_y=apex + rng.uniform(0.0, 0.05),
        clav_rise=rng.uniform(0.0, 0.05), hilum_frac=rng.uniform(0.38, 0.48),
        lung_air=rng.uniform(0.6, 0.8), vessel_seed=int(rng.integers(2**31)), asym=rng.normal(0, 0.012))


def resolve_geometry(a: Anatomy, *, view: str, inspiration: float, rotation: float,
                     heart_mag: float) -> Geometry:
    """Per-image geometry: inspiration moves the domes, AP magnifies the heart, rotation skews."""
    dome = a.dome_y + inspiration
    heart_w = a.ctr * 2 * a.thorax_hw * heart_mag
    heart_h = heart_w * a.heart_aspect / (1 + 1.4 * max(a.ctr - 0.45, 0.0)) * (1 - 0.6 * inspiration)
    return Geometry(
        cx=0.5 + rotation * 0.4, hw={"right": a.thorax_hw * (1 + rotation) - a.asym,
                                     "left": a.thorax_hw * (1 - rotation) + a.asym},
        apex_y=a.apex_y, dome={"right": dome, "left": dome + a.left_drop},
        depth={"right": a.dome_depth, "left": a.dome_depth}, med_hw=a.med_hw,
        med_shift=rotation * 0.25, aorta_r=a.aorta_r, aorta_dx=0.0, heart_w=heart_w, heart_h=heart_h,
        heart_right=a.heart_right, heart_tilt=a.heart_tilt, soft=a.soft, breast=a.breast,
        lung_air=a.lung_air, vessel_reach=1.0, rib_y0=a.rib_y0, rib_sp=a.rib_sp, rib_sp2=a.rib_sp2,
        rib_curve=a.rib_curve, clav_y=a.clav_y - (0.035 if view == "AP" else 0.0),
        clav_rise=a.clav_rise * (0.4 if view == "AP" else 1.0), hilum_frac=a.hilum_frac,
        vessel_seed=a.vessel_seed, ap_scapula=1.0 if view == "AP" else 0.0)


@dataclass
class Side:
    """Per-pixel fields of one hemithorax."""

    u: np.ndarray        # distance from the midline towards this side's wall
    t: np.ndarray        # 0 at apex, 1 at the costophrenic angle
    lat: np.ndarray      # lateral lung border (in u) at each pixel's height
    top: np.ndarray      # lung apex contour (in y) at each pixel's u
    dome: np.ndarray     # diaphragm contour (in y) at each pixel's u
    lung: np.ndarray     # soft lung mask (before heart/mediastinum occlusion)


@dataclass
class Thorax:
    """The drawn normal chest: fields findings read, and density layers they add to."""

    g: Geometry
    X: np.ndarray
    Y: np.ndarray
    side: dict[str, Side]
    heart: np.ndarray
    mediastinum: np.ndarray
    body: np.ndarray
    air: np.ndarray          # air thickness before any filling
    bone: np.ndarray
    vessels: np.ndarray
    fill: np.ndarray = field(init=False)      # fraction of air replaced by fluid/tissue
    extra: np.ndarray = field(init=False)     # added density (fluid, calcium, metal)
    vessel_gain: np.ndarray = field(init=False)  # multiplier of the lung markings
    air_gain: np.ndarray = field(init=False)  # extra air (pneumothorax, bullae, bubbles)
    lung_present: np.ndarray = field(init=False)  # 0 where a pneumothorax pushed the lung away

    def __post_init__(self) -> None:
        shape = self.X.shape
        self.fill = np.zeros(shape, F32)
        self.extra = np.zeros(shape, F32)
        self.vessel_gain = np.ones(shape, F32)
        self.air_gain = np.zeros(shape, F32)
        self.lung_present = np.ones(shape, F32)

    @property
    def lungs(self) -> np.ndarray:
        return np.maximum(self.side["right"].lung, self.side["left"].lung)

    def density(self) -> np.ndarray:
        g = self.g
        fill = np.clip(self.fill, 0, 1) * self.lung_present
        air = self.air * (1 - fill) + self.air_gain
        return (self.body - air + self.bone + self.extra
                + self.vessels * self.vessel_gain * self.lung_present * (1 - fill) * F32(0.14 / g.soft ** 0.5))


def lateral_profile(t: np.ndarray) -> np.ndarray:
    """Lung half-width along its height (0 apex .. 1 base), as a fraction of the thorax half-width."""
    tc = np.clip(t, 0.0, 1.0)
    return F32(0.6) + F32(0.4) * np.sqrt(tc)


def side_fields(g: Geometry, X: np.ndarray, Y: np.ndarray, side: str, edge: float) -> Side:
    hw = g.hw[side]
    u = F32(SGN[side]) * (X - F32(g.cx))
    t = (Y - F32(g.apex_y)) * F32(1.0 / (g.cp_y(side) - g.apex_y))
    lat = F32(hw) * lateral_profile(t)
    top = F32(g.apex_y) + F32(2.6 / hw) * (u - F32(0.42 * hw)) ** 2
    peak = 0.52 * hw
    dome = F32(g.dome[side]) + F32(g.depth[side] / (0.5 * hw) ** 2) * (u - F32(peak)) ** 2
    med = F32(g.med_hw + SGN[side] * g.med_shift)
    lung = ramp(u - med, edge) * ramp(lat - u, edge) * ramp(Y - top, edge) * ramp(dome - Y, edge)
    return Side(u=u, t=t, lat=lat, top=top, dome=dome, lung=lung)


def _heart(g: Geometry, X: np.ndarray, Y: np.ndarray, edge: float) -> np.ndarray:
    """Cardiac silhouette whose horizontal extent is exactly ``heart_w`` (left ventricle + right atrium)."""
    w, h = g.heart_w, g.heart_h
    left_ext = w * (1 - g.heart_right)            # towards the image right (patient's left)
    right_ext = w * g.heart_right
    base_y = g.dome["left"] + g.depth["left"]
    a = g.heart_tilt
    ry = h / 2
    half = 0.5 * (left_ext + right_ext * 0.55)
    rx = np.sqrt(max(half ** 2 - (ry * np.sin(a)) ** 2, (0.3 * half) ** 2)) / np.cos(a)
    cx = g.cx + g.med_shift + left_ext - half
    lv = canvas.ellipse(X, Y, cx, base_y - ry * 0.75, rx, ry, angle=-a, edge=edge)
    ra_r = right_ext * 0.75
    ra = canvas.ellipse(X, Y, g.cx + g.med_shift - right_ext + ra_r, base_y - ry * 0.8,
                        ra_r, ry * 0.78, edge=edge)
    return np.maximum(lv, ra)


def _mediastinum(g: Geometry, X: np.ndarray, Y: np.ndarray, edge: float) -> np.ndarray:
    cx = g.cx + g.med_shift
    band = ramp(F32(g.med_hw) - np.abs(X - F32(cx)), edge) * ramp(F32(g.dome["right"]) - Y, edge)
    kx, ky, kr = g.knob()
    knob = canvas.ellipse(X, Y, kx, ky, kr, kr * 1.1, edge=edge)
    return np.maximum(band, knob)


def _body(g: Geometry, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Soft-tissue thickness: neck, shoulders, chest wall, abdomen; wider and thicker when obese."""
    wall = 0.025 + 0.035 * g.soft
    top = g.apex_y
    ys = np.array([0.0, top - 0.03, top + 0.06, top + 0.16, 1.0], np.float32)
    hmax = max(g.hw.values())
    ws = np.array([0.1, 0.12, hmax * 1.22 + wall, hmax + wall, hmax * 1.02 + wall * 1.3], np.float32)
    half = np.interp(Y, ys, ws).astype(F32)
    r = np.clip(np.abs(X - F32(g.cx)) / half, 0.0, 1.0)
    thick = np.sqrt(1.0 - r * r) * ramp(half - np.abs(X - F32(g.cx)), 0.01)
    body = thick * F32(0.8 + 0.3 * g.soft)
    if g.breast > 0:
        for side in SIDES:
            bx = g.cx + SGN[side] * g.hw[side] * 0.62
            by = g.dome[side] - 0.02
            br = canvas.ellipse(X, Y, bx, by, 0.17 * (0.7 + 0.3 * g.breast), 0.11 * (0.7 + 0.4 * g.breast),
                                edge=0.05)
            body += br * ramp(Y - F32(by - 0.06), 0.1) * F32(0.25 * g.breast)
    return body


def _ribs(g: Geometry, s: Side, Y: np.ndarray, side: str, edge: float) -> np.ndarray:
    """Posterior (arched, bright) and anterior (sloping, faint) ribs, with an optional fracture."""
    hw = g.hw[side]
    d = s.u * F32(1.0 / hw)
    dc = np.clip(d, 0.0, 1.2)
    rel = Y - F32(g.rib_y0) - F32(g.rib_curve) * (F32(-0.8) * dc + F32(1.6) * dc ** 3)
    sp, sp2 = g.rib_sp, g.rib_sp2
    k = (np.sqrt(np.maximum(F32(sp * sp) + F32(4 * sp2) * rel, 0.0)) - F32(sp)) * F32(1.0 / (2 * sp2))
    duty = 0.42
    broken = g.fracture is not None and g.fracture[0] == side
    if broken:
        _, kf, df, offset = g.fracture
        this_rib = np.abs(k - F32(kf + duty / 2)) < 0.6
        k = k + this_rib * ramp(d - F32(df), 0.01) * F32(offset)
    f = k - np.floor(k)
    edge_k = edge / sp
    inner = np.minimum(f, F32(duty) - f)
    core = ramp(inner, edge_k)
    cortex = ramp(F32(0.09 * duty) - np.abs(inner), 0.18 * duty)
    post = core * F32(0.7) + cortex * F32(0.5)
    post *= ramp(F32(5.15) - np.abs(k - F32(5.15)), 0.2) * ramp(F32(0.51) - np.abs(d - F32(0.57)), 0.06)
    if broken:
        gap = np.exp(-((d - F32(df)) * F32(hw / 0.006)) ** 2) * this_rib
        post *= 1 - gap
    # anterior ribs slope down towards the sternum and fade medially (cartilage is invisible)
    ka = (Y - F32(g.rib_y0 + 0.09) - F32(1.6 * g.rib_curve) * (F32(1.0) - dc)) * F32(1.0 / (sp * 1.15))
    fa = ka - np.floor(ka)
    ant = ramp(np.minimum(fa, F32(0.3) - fa), edge_k) * ramp(F32(0.31) - np.abs(d - F32(0.71)), 0.1)
    ant *= ramp(F32(3.55) - np.abs(ka - F32(3.45)), 0.2)
    return post * F32(0.1) + ant * F32(0.05)


def _clavicle(g: Geometry, s: Side, Y: np.ndarray, side: str, edge: float) -> np.ndarray:
    hw = g.hw[side]
    v = s.u * F32(1.0 / (1.15 * hw))
    centre = F32(g.clav_y) - F32(g.clav_rise) * v + F32(0.012) * np.sin(F32(np.pi) * v)
    half = F32(0.011) + F32(0.004) * np.abs(v - F32(0.5))
    band = canvas.curve_band(Y, centre, half, edge) * ramp(v - F32(0.05), 0.05) * ramp(F32(1.0) - v, 0.08)
    rim = np.exp(-((np.abs(Y - centre) - half) * F32(1.0 / 0.004)) ** 2)
    return band * F32(0.25) + rim * band * F32(0.15)


def _spine(g: Geometry, X: np.ndarray, Y: np.ndarray, edge: float) -> np.ndarray:
    cx = g.cx + g.med_shift * 0.3
    col = ramp(F32(0.032) - np.abs(X - F32(cx)), edge)
    bodies = F32(0.75) + F32(0.25) * np.cos((Y - F32(g.apex_y)) * F32(2 * np.pi / 0.045))
    pedicles = canvas.curve_band(np.abs(X - F32(cx)), F32(0.024), 0.005, edge) * bodies
    return col * bodies * F32(0.06) + pedicles * F32(0.04)


def _vessels(g: Geometry, X: np.ndarray, Y: np.ndarray, side: str) -> np.ndarray:
    """Lung markings: tapering streaks radiating from the hilum (angular noise sharpened with radius)."""
    rng = np.random.default_rng(g.vessel_seed + (0 if side == "right" else 1))
    hx, hy = g.hilum(side)
    dx, dy = X - F32(hx), Y - F32(hy)
    r = np.sqrt(dx * dx + dy * dy)
    theta = np.arctan2(dy, dx * F32(SGN[side]))
    n = 256
    profile = canvas.blur(rng.standard_normal(n).astype(F32), 1.0)
    profile = np.clip(profile / profile.std() * F32(0.5) + F32(0.1), 0.0, 1.0)
    wob = canvas.blur(rng.standard_normal(64).astype(F32), 2.0) * F32(6.0)
    idx = (theta + F32(np.pi)) * F32(n / (2 * np.pi)) + np.interp(r * 64, np.arange(64), wob).astype(F32)
    streak = np.take(profile, idx.astype(np.int64) % n)
    reach = 0.3 * g.vessel_reach
    taper = streak - F32(0.3) - r * F32(2.0)        # subtracting a growing level narrows the streaks
    return ramp(taper, 0.15) * ramp(F32(reach / 2) - r, reach) * ramp(r - F32(0.03), 0.03)


def _own_columns(u: np.ndarray) -> slice:
    cols = np.flatnonzero((u > 0).any(axis=0))
    return slice(int(cols[0]), int(cols[-1]) + 1) if cols.size else slice(0, 0)


def draw_thorax(g: Geometry, X: np.ndarray, Y: np.ndarray, size: int) -> Thorax:
    """The normal chest for this geometry on body coordinates (X, Y)."""
    edge = 2.0 / size
    sides = {s: side_fields(g, X, Y, s, edge) for s in SIDES}
    heart = _heart(g, X, Y, edge)
    med = _mediastinum(g, X, Y, edge)
    occl = np.maximum(heart * F32(0.8), med)
    air = np.zeros_like(X)
    bone = _spine(g, X, Y, edge)
    vessels = np.zeros_like(X)
    for name, s in sides.items():
        depth = F32(0.65) + F32(0.35) * np.sqrt(ramp(s.lat - s.u, 0.12))
        air += s.lung * depth
        cols = _own_columns(s.u)  # bones and markings of one side, drawn on its half only (speed)
        half = Side(**{k: v[:, cols] for k, v in s.__dict__.items()})
        bone[:, cols] += _ribs(g, half, Y[:, cols], name, edge) + _clavicle(g, half, Y[:, cols], name, edge)
        vessels[:, cols] += _vessels(g, X[:, cols], Y[:, cols], name) * half.lung
    cx = g.cx + g.med_shift
    hx, hy = g.hilum("right")
    trachea = ramp(F32(0.014) - np.abs(X - F32(cx - 0.004)), edge) * ramp(F32(hy - 0.03) - Y, 0.02)
    hila = sum(canvas.gaussian(X, Y, *g.hilum(s), 0.018, 0.03) for s in SIDES)
    bubble = canvas.ellipse(X, Y, cx + 0.55 * g.hw["left"], g.dome["left"] + 0.05, 0.05, 0.03, edge=0.01)
    air = air * (1 - occl) * F32(g.lung_air / g.soft ** 0.3)
    air += trachea * F32(0.25) + bubble * F32(0.3) * ramp(Y - F32(g.dome["left"] + 0.035), 0.01)
    body = _body(g, X, Y) + (heart * F32(0.08) + med * F32(0.1)) * ramp(F32(g.dome["left"]) - Y, 0.02) + hila * F32(0.08)
    bone *= np.minimum(body * F32(8.0), F32(1.0))  # no bone outside the body outline
    if g.ap_scapula > 0:
        for name, s in sides.items():
            scap = canvas.superellipse(X, Y, g.cx + SGN[name] * g.hw[name] * 0.9, g.apex_y + 0.17,
                                       0.09, 0.17, power=1.6, angle=SGN[name] * 0.2, edge=0.01)
            bone += scap * F32(0.08 * g.ap_scapula)
    return Thorax(g=g, X=X, Y=Y, side=sides, heart=heart, mediastinum=med, body=body, air=air,
                  bone=bone, vessels=vessels)

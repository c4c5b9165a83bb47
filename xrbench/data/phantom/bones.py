"""Radiographic bones shared by the limb and hand phantoms (synthetic data only).

A :class:`Scene` lists bones in body coordinates (the canvas convention: 0..1 across the image
before the pose). Long bones are hollow cylinders seen side-on, so the path length through the
cortex peaks at the bone's edges: the bright cortical lines and the greyer medulla of a real
radiograph come from geometry, not from drawing outlines. Fractures split a long bone into two
fragments (gap, displacement, angulation); plates and screws are metal; lesions are lucent holes.
:func:`render` turns a scene into a displayed radiograph and returns each fracture's polygon and
box in pixels, computed from the same geometry that drew it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.spatial import ConvexHull

from xrbench.data.phantom import canvas

F32 = np.float32


@dataclass(frozen=True)
class LongBone:
    """A hollow tube from ``p0`` to ``p1`` with rounded ends; ``flare`` widens both ends."""

    name: str
    p0: tuple[float, float]
    p1: tuple[float, float]
    radius: float
    flare: float = 0.4
    cortex: float = 0.35  # cortical thickness as a fraction of the radius
    density: float = 1.0
    cap: float = 1.0  # how far the rounded ends reach past p0/p1, in end radii (1 = hemisphere)

    def axis(self) -> tuple[np.ndarray, np.ndarray, float]:
        p0, p1 = np.asarray(self.p0, float), np.asarray(self.p1, float)
        length = float(np.hypot(*(p1 - p0)))
        return p0, (p1 - p0) / max(length, 1e-9), length

    def radius_at(self, t: float) -> float:
        return self.radius * (1.0 + self.flare * (math.exp(-(t / 0.14) ** 2) + math.exp(-((1 - t) / 0.14) ** 2)))


@dataclass(frozen=True)
class RoundBone:
    """An ellipsoid bone (carpal, epiphysis, head, condyle) with a cortical shell."""

    name: str
    centre: tuple[float, float]
    rx: float
    ry: float
    angle: float = 0.0
    cortex: float = 0.3
    density: float = 1.0


@dataclass(frozen=True)
class SoftTissue:
    """A capsule of soft tissue around the segment ``p0``-``p1``."""

    p0: tuple[float, float]
    p1: tuple[float, float]
    radius: float
    density: float = 1.0


@dataclass(frozen=True)
class Fracture:
    """A break of long bone ``bone`` at ``t`` (0 = p0 .. 1 = p1); the p1 side is the moving fragment.

    ``angle``: obliquity of the fracture line against the bone's cross-section (radians).
    ``gap``: width of the lucent line (body units). ``shift``: displacement of the distal fragment
    (across, along the bone) in bone radii. ``angulation``: its rotation about the break (radians).
    """

    bone: str
    t: float
    angle: float
    gap: float
    shift: tuple[float, float] = (0.0, 0.0)
    angulation: float = 0.0
    severity: float = 1.0


@dataclass(frozen=True)
class Plate:
    """A fixation plate on one side of long bone ``bone`` from ``t0`` to ``t1``, with screws."""

    bone: str
    t0: float
    t1: float
    side: float = 1.0
    screws: int = 4


@dataclass(frozen=True)
class Lesion:
    """A lucent lesion in long bone ``bone`` at ``t``; ``offset`` across and ``size`` in radii."""

    bone: str
    t: float
    offset: float
    size: float
    severity: float = 1.0


@dataclass
class Scene:
    """What is in the beam, in body coordinates; findings name the long bone they sit on."""

    long: list[LongBone]
    round: list[RoundBone] = field(default_factory=list)
    soft: list[SoftTissue] = field(default_factory=list)
    fractures: list[Fracture] = field(default_factory=list)
    plates: list[Plate] = field(default_factory=list)
    lesions: list[Lesion] = field(default_factory=list)

    def bone(self, name: str) -> LongBone:
        return next(b for b in self.long if b.name == name)

    def transformed(self, centre: tuple[float, float] = (0.5, 0.5), zoom: float = 1.0,
                    squeeze: float = 1.0) -> "Scene":
        """Zoom about ``centre`` (moved to the image centre) and squeeze x (oblique/lateral views).

        Squeezing moves bones towards each other, as turning a limb overlaps them; radii keep
        their size so bones overlap rather than thin out.
        """

        def p(q: tuple[float, float]) -> tuple[float, float]:
            return (0.5 + (q[0] - centre[0]) * zoom * squeeze, 0.5 + (q[1] - centre[1]) * zoom)

        return Scene(
            long=[replace(b, p0=p(b.p0), p1=p(b.p1), radius=b.radius * zoom) for b in self.long],
            round=[replace(r, centre=p(r.centre), rx=r.rx * zoom * (0.5 + 0.5 * squeeze), ry=r.ry * zoom)
                   for r in self.round],
            soft=[replace(s, p0=p(s.p0), p1=p(s.p1), radius=s.radius * zoom * (0.6 + 0.4 * squeeze))
                  for s in self.soft],
            fractures=[replace(f, gap=f.gap * zoom) for f in self.fractures],
            plates=list(self.plates), lesions=list(self.lesions))


@dataclass(frozen=True)
class Placement:
    """A canvas pose (no elastic warp: fracture polygons need the exact forward map) and a mirror."""

    pose: canvas.Pose
    flip: bool = False

    @classmethod
    def sample(cls, rng: np.random.Generator, *, rotate: float = 15.0, scale: tuple[float, float] = (0.88, 1.12),
               shift: float = 0.05) -> "Placement":
        pose = canvas.Pose(rotate_deg=float(rng.uniform(-rotate, rotate)), scale=float(rng.uniform(*scale)),
                           shift=(float(rng.uniform(-shift, shift)), float(rng.uniform(-shift, shift))))
        return cls(pose, bool(rng.random() < 0.5))

    def grid(self, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        bx, by = self.pose.grid(size, rng)
        return (F32(1.0) - bx if self.flip else bx), by

    def to_pixel(self, points: np.ndarray, size: int) -> np.ndarray:
        """Body xy [K, 2] -> pixel xy [K, 2] (pixel (i, j) covers [j, j+1) x [i, i+1))."""
        q = np.asarray(points, float)
        x = 1.0 - q[:, 0] if self.flip else q[:, 0]
        px, py = self.pose.to_px(x, q[:, 1], size)
        return np.stack([px, py], axis=1)


@dataclass(frozen=True)
class Style:
    """How the radiograph is acquired and displayed (nuisance, independent of the findings)."""

    lo: float
    hi: float
    gamma: float
    blur: float
    sharpen: float
    quantum: float
    read: float
    soft_weight: float
    collimation: tuple[float, float, float, float]  # left, top, right, bottom margins (image units)
    outside: float  # grey level outside the collimated field
    marker: str
    marker_corner: int

    @classmethod
    def sample(cls, rng: np.random.Generator, *, side: str) -> "Style":
        margins = tuple(float(m) if rng.random() < 0.5 else 0.0 for m in rng.uniform(0.02, 0.12, 4))
        return cls(lo=float(rng.uniform(-0.05, 0.08)), hi=float(rng.uniform(0.9, 1.1)),
                   gamma=float(rng.uniform(0.75, 1.35)), blur=float(rng.uniform(0.3, 0.9)),
                   sharpen=float(rng.uniform(0.0, 0.6)), quantum=float(rng.uniform(0.008, 0.03)),
                   read=float(rng.uniform(0.002, 0.01)), soft_weight=float(rng.uniform(0.35, 0.65)),
                   collimation=margins, outside=float(rng.choice([0.0, 0.85])), marker=side,
                   marker_corner=int(rng.integers(4)))


@dataclass(frozen=True)
class FractureRegion:
    """A fracture as datasets annotate it: polygon (flat pixel xy) and its box (pixel xyxy)."""

    polygon: tuple[float, ...]
    box: tuple[float, float, float, float]
    severity: float
    bone: str


def attenuation(scene: Scene, placement: Placement, rng: np.random.Generator, *, size: int = 256,
                ref_radius: float = 0.03, soft_weight: float = 0.3) -> np.ndarray:
    """Line integral of attenuation per pixel: soft tissue + bone (+ metal, far denser).

    ``ref_radius`` sets the exposure for the body part: bones of that radius get about the same
    brightness in every part, as a technologist's choice of exposure would give.
    """
    bx, by = placement.grid(size, rng)
    trabecular, clouds = canvas.fractal_noise(rng, size, beta=1.4, fmin=1 / 32)
    medulla_texture = np.clip(F32(0.32) + F32(0.1) * trabecular, 0.05, None)
    edge = 1.2 / size / placement.pose.scale
    bone = np.zeros((size, size), F32)
    for b in scene.long:
        fractures = [f for f in scene.fractures if f.bone == b.name]
        dens = _long_bone(bx, by, b, fractures[0] if fractures else None, medulla_texture, edge)
        for lesion in (les for les in scene.lesions if les.bone == b.name):
            dens = _lesion(bx, by, b, lesion, dens, edge)
        bone += dens * F32(b.density)
    for r in scene.round:
        bone += _round_bone(bx, by, r, medulla_texture) * F32(r.density)
    soft = np.zeros((size, size), F32)
    for s in scene.soft:
        soft += _capsule_profile(bx, by, s.p0, s.p1, s.radius) * F32(s.density)
    soft *= F32(1.0) + F32(0.08) * clouds
    return F32(soft_weight) * soft + bone * F32(0.9 / ref_radius) + F32(6.0) * _metal(bx, by, scene, edge)


def render(scene: Scene, placement: Placement, style: Style, rng: np.random.Generator, *, size: int = 256,
           ref_radius: float = 0.03) -> tuple[np.ndarray, list[FractureRegion]]:
    """The displayed radiograph (float32 [size, size], bright = dense) and the fracture regions."""
    att = attenuation(scene, placement, rng, size=size, ref_radius=ref_radius, soft_weight=style.soft_weight)
    img = canvas.expose(F32(1.0) - np.exp(-att), lo=style.lo, hi=style.hi, gamma=style.gamma)
    img = canvas.unsharp(canvas.blur(img, style.blur), 3.0, style.sharpen)
    img = canvas.detector_noise(np.clip(img, 0.0, 1.0), rng, quantum=style.quantum, read=style.read)
    img = _collimate(img, style.collimation, style.outside)
    _marker(img, style.marker, style.marker_corner)
    regions = [fracture_region(scene, f, placement, size) for f in scene.fractures]
    return img.astype(F32), regions


# --------------------------------------------------------------------------- densities


def _tube(bx: np.ndarray, by: np.ndarray, b: LongBone) -> tuple[np.ndarray, np.ndarray]:
    """Projected half path lengths through cortex and medulla of a flared, round-ended tube."""
    p0, u, length = b.axis()
    dx, dy = bx - F32(p0[0]), by - F32(p0[1])
    along = dx * F32(u[0]) + dy * F32(u[1])
    across = dy * F32(u[0]) - dx * F32(u[1])
    t = np.clip(along / F32(length), 0.0, 1.0)
    over = (along - t * F32(length)) / F32(b.cap)  # beyond an end: scaled distance past it (the cap)
    flare = np.exp(-(t / F32(0.14)) ** 2) + np.exp(-((F32(1.0) - t) / F32(0.14)) ** 2)
    r_out = F32(b.radius) * (F32(1.0) + F32(b.flare) * flare)
    r_in = r_out * (F32(1.0) - F32(b.cortex) / (F32(1.0) + flare))  # thinner cortex at the flared ends
    rho2 = across * across + over * over
    outer = np.sqrt(np.maximum(r_out * r_out - rho2, 0.0))
    inner = np.sqrt(np.maximum(r_in * r_in - rho2, 0.0))
    return outer - inner, inner


def _long_bone(bx: np.ndarray, by: np.ndarray, b: LongBone, fracture: Fracture | None,
               texture: np.ndarray, edge: float) -> np.ndarray:
    cortex, medulla = _tube(bx, by, b)
    intact = cortex + medulla * texture
    if fracture is None:
        return intact
    centre, n, delta, rot = _break_geometry(b, fracture)
    s_prox = (bx - F32(centre[0])) * F32(n[0]) + (by - F32(centre[1])) * F32(n[1])
    # the distal fragment is the intact bone moved by delta and rotated about the break
    qx, qy = _inverse_move(bx, by, centre, delta, rot)
    c2, m2 = _tube(qx, qy, b)
    s_dist = (qx - F32(centre[0])) * F32(n[0]) + (qy - F32(centre[1])) * F32(n[1])
    half = fracture.gap / 2.0
    return intact * canvas.ramp(-s_prox - F32(half), edge) + (c2 + m2 * texture) * canvas.ramp(s_dist - F32(half), edge)


def _break_geometry(b: LongBone, f: Fracture) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Break centre, unit normal of the fracture line (pointing distally), fragment shift, rotation."""
    p0, u, length = b.axis()
    centre = p0 + u * f.t * length
    c, s = math.cos(f.angle), math.sin(f.angle)
    n = np.array([c * u[0] - s * u[1], s * u[0] + c * u[1]])
    across = np.array([-u[1], u[0]])
    r = b.radius_at(f.t)
    delta = across * f.shift[0] * r + u * f.shift[1] * r
    return centre, n, delta, f.angulation


def _inverse_move(bx: np.ndarray, by: np.ndarray, centre: np.ndarray, delta: np.ndarray,
                  rot: float) -> tuple[np.ndarray, np.ndarray]:
    """Body coordinates before the move ``p -> centre + delta + R(rot) (p - centre)``."""
    c, s = F32(math.cos(rot)), F32(math.sin(rot))
    x = bx - F32(centre[0] + delta[0])
    y = by - F32(centre[1] + delta[1])
    return c * x + s * y + F32(centre[0]), -s * x + c * y + F32(centre[1])


def _lesion(bx: np.ndarray, by: np.ndarray, b: LongBone, les: Lesion, dens: np.ndarray, edge: float) -> np.ndarray:
    p0, u, length = b.axis()
    r = b.radius_at(les.t)
    c = p0 + u * les.t * length + np.array([-u[1], u[0]]) * les.offset * r
    angle = math.atan2(u[1], u[0])
    hole = canvas.ellipse(bx, by, c[0], c[1], les.size * r * 1.5, les.size * r, angle=angle, edge=edge * 2)
    rim = canvas.ellipse(bx, by, c[0], c[1], les.size * r * 1.8, les.size * r * 1.25, angle=angle, edge=edge * 2) - hole
    depth = 0.4 + 0.5 * les.severity
    return dens * (F32(1.0) - F32(depth) * hole) + F32(0.12 * r * les.severity) * rim * (dens > 0)


def _round_bone(bx: np.ndarray, by: np.ndarray, r: RoundBone, texture: np.ndarray) -> np.ndarray:
    dx, dy = canvas.rotated(bx, by, r.centre[0], r.centre[1], r.angle)
    q = (dx / F32(r.rx)) ** 2 + (dy / F32(r.ry)) ** 2
    depth = F32(0.75 * min(r.rx, r.ry))  # flatter than a sphere, as carpals and epiphyses are
    k = F32(1.0 - r.cortex)
    outer = np.sqrt(np.maximum(F32(1.0) - q, 0.0)) * depth
    inner = np.sqrt(np.maximum(F32(1.0) - q / (k * k), 0.0)) * depth * k
    return outer - inner + inner * texture


def _capsule_profile(bx: np.ndarray, by: np.ndarray, p0: tuple[float, float], p1: tuple[float, float],
                     radius: float) -> np.ndarray:
    """Normalised path length (0..1) through a capsule of soft tissue."""
    a = np.asarray(p0, float)
    v = np.asarray(p1, float) - a
    vv = max(float(v @ v), 1e-12)
    t = np.clip(((bx - F32(a[0])) * F32(v[0]) + (by - F32(a[1])) * F32(v[1])) / F32(vv), 0.0, 1.0)
    dx = bx - F32(a[0]) - t * F32(v[0])
    dy = by - F32(a[1]) - t * F32(v[1])
    return np.sqrt(np.maximum(F32(1.0) - (dx * dx + dy * dy) / F32(radius * radius), 0.0))


def _metal(bx: np.ndarray, by: np.ndarray, scene: Scene, edge: float) -> np.ndarray:
    out = np.zeros(bx.shape, F32)
    for plate in scene.plates:
        b = scene.bone(plate.bone)
        p0, u, length = b.axis()
        r = b.radius
        angle = math.atan2(u[1], u[0])
        across = np.array([-u[1], u[0]])
        mid = p0 + u * length * (plate.t0 + plate.t1) / 2 + across * plate.side * r * 1.05
        half = length * (plate.t1 - plate.t0) / 2
        out = np.maximum(out, canvas.superellipse(bx, by, mid[0], mid[1], half, 0.22 * r, power=6,
                                                  angle=angle, edge=edge))
        for k in range(plate.screws):
            t = plate.t0 + (plate.t1 - plate.t0) * (k + 0.5) / plate.screws
            c = p0 + u * length * t + across * plate.side * r * 0.1
            out = np.maximum(out, canvas.superellipse(bx, by, c[0], c[1], 1.15 * r, 0.13 * r, power=4,
                                                      angle=angle + math.pi / 2, edge=edge))
    return out


# --------------------------------------------------------------------------- display


def _collimate(img: np.ndarray, margins: tuple[float, float, float, float], outside: float) -> np.ndarray:
    if not any(margins):
        return img
    X, Y = canvas.grid(img.shape[0])
    left, top, right, bottom = margins
    edge = 2.0 / img.shape[0]
    inside = (canvas.ramp(X - F32(left), edge) * canvas.ramp(F32(1 - right) - X, edge)
              * canvas.ramp(Y - F32(top), edge) * canvas.ramp(F32(1 - bottom) - Y, edge))
    return img * inside + (F32(outside) + F32(0.1) * img) * (F32(1.0) - inside)


def _marker(img: np.ndarray, mark: str, corner: int) -> None:
    size = img.shape[0]
    scale = max(1, size // 100)
    w, h = 6 * scale * len(mark), 7 * scale
    pad = size // 14
    x = pad if corner in (0, 2) else size - pad - w
    y = pad if corner in (0, 1) else size - pad - h
    canvas.text(img, mark, x, y, scale=scale, value=0.97)


def fracture_region(scene: Scene, f: Fracture, placement: Placement, size: int) -> FractureRegion:
    """Polygon around both fragment ends of a break (convex hull), in pixels, clipped to the image."""
    b = scene.bone(f.bone)
    centre, n, delta, rot = _break_geometry(b, f)
    along_line = np.array([-n[1], n[0]])
    half = b.radius_at(f.t) / max(abs(math.cos(f.angle)), 0.3) * 1.1
    pad = f.gap / 2 + 0.35 * b.radius
    ends = [centre + a * half * along_line + w * pad * n for a in (-1, 1) for w in (-1, 1)]
    c, s = math.cos(rot), math.sin(rot)
    moved = [centre + delta + np.array([c * (p - centre)[0] - s * (p - centre)[1],
                                        s * (p - centre)[0] + c * (p - centre)[1]]) for p in ends]
    pts = placement.to_pixel(np.array(ends + moved), size)
    hull = pts[ConvexHull(pts).vertices]
    hull = np.clip(hull, 0.0, float(size))
    poly = tuple(round(float(v), 2) for v in hull.reshape(-1))
    box = (float(hull[:, 0].min()), float(hull[:, 1].min()), float(hull[:, 0].max()), float(hull[:, 1].max()))
    return FractureRegion(poly, tuple(round(v, 2) for v in box), f.severity, f.bone)

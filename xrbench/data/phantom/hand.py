"""Synthetic hand radiographs whose skeletal maturity follows bone age (synthetic data only).

Bone age is read by radiologists from ossification, so the phantom draws exactly that, as a
smooth monotonic function of maturity ``m = bone age / T(sex)``; girls reach each stage at a lower
bone age than boys (adult at 17 rather than 19 years), so ``T(F) < T(M)``:

- carpal ossification centres appear in their Greulich-Pyle order (capitate, hamate, triquetrum,
  lunate, trapezium, trapezoid, scaphoid, pisiform) and grow;
- epiphyses of the radius, ulna, metacarpals and phalanges appear, widen to the width of their
  metaphysis, and their growth plates (dark lines) narrow and then fuse, distal phalanges first,
  radius last;
- the hand grows, cortices thicken and soft tissue thins a little.

Each person has their own timing (onsets and fusions jitter by a few months), proportions, pose,
exposure and noise, so bone age is learnable from ossification, not from any single pixel.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from xrbench.data.phantom.bones import LongBone, Placement, RoundBone, Scene, SoftTissue, Style, render

#: maturity 1 (adult) is reached at this bone age in months
MATURE_MONTHS = {"M": 228.0, "F": 204.0}
MAX_MONTHS = 228.0

#: carpal centres: name, adult centre, adult (rx, ry), angle, onset maturity (Greulich-Pyle order)
CARPALS = (
    ("capitate", (0.490, 0.668), (0.027, 0.036), 0.0, 0.01),
    ("hamate", (0.553, 0.676), (0.024, 0.031), -0.2, 0.02),
    ("triquetrum", (0.582, 0.727), (0.021, 0.019), 0.3, 0.12),
    ("lunate", (0.522, 0.745), (0.023, 0.019), 0.0, 0.19),
    ("trapezium", (0.402, 0.690), (0.023, 0.021), 0.4, 0.25),
    ("trapezoid", (0.443, 0.676), (0.017, 0.019), 0.0, 0.27),
    ("scaphoid", (0.458, 0.742), (0.029, 0.017), 0.5, 0.29),
    ("pisiform", (0.600, 0.748), (0.011, 0.011), 0.0, 0.47),
)
#: finger rays: metacarpal base, direction (degrees from vertical), bone lengths and radii
RAYS = (
    ((0.365, 0.660), -40.0, (0.125, 0.098, 0.072), (0.0150, 0.0125, 0.0105)),
    ((0.425, 0.626), -9.0, (0.185, 0.110, 0.064, 0.045), (0.0130, 0.0112, 0.0094, 0.0082)),
    ((0.490, 0.620), -1.0, (0.180, 0.120, 0.074, 0.048), (0.0135, 0.0116, 0.0097, 0.0084)),
    ((0.551, 0.626), 6.0, (0.165, 0.110, 0.069, 0.046), (0.0125, 0.0108, 0.0090, 0.0080)),
    ((0.604, 0.640), 14.0, (0.145, 0.090, 0.052, 0.042), (0.0118, 0.0100, 0.0084, 0.0076)),
)
#: epiphysis timing by bone kind: (onset, fusion) maturity; the radius fuses last
EPIPHYSIS_TIMING = {"dp": (0.09, 0.80), "mp": (0.11, 0.85), "pp": (0.07, 0.87), "mc": (0.08, 0.89),
                    "mc1": (0.10, 0.87), "ulna": (0.33, 0.93), "radius": (0.05, 0.96)}


def maturity(bone_age_months: float, sex: str) -> float:
    """Skeletal maturity in [0, 1] for a bone age and sex (``M``/``F``)."""
    return float(np.clip(bone_age_months / MATURE_MONTHS[sex], 0.0, 1.0))


def _smooth(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


@dataclass(frozen=True)
class Build:
    """One person's anatomy and timing: proportions and per-centre jitter of onset/fusion."""

    length: float = 1.0
    width: float = 1.0
    ray_length: tuple[float, ...] = (1.0,) * 5
    spread: tuple[float, ...] = (0.0,) * 5
    onset_jitter: dict[str, float] = field(default_factory=dict)
    fusion_jitter: dict[str, float] = field(default_factory=dict)

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "Build":
        names = [c[0] for c in CARPALS] + list(EPIPHYSIS_TIMING)
        return cls(length=float(rng.uniform(0.94, 1.06)), width=float(rng.uniform(0.9, 1.1)),
                   ray_length=tuple(float(v) for v in rng.uniform(0.97, 1.03, 5)),
                   spread=tuple(float(v) for v in rng.uniform(-4, 4, 5)),
                   onset_jitter={k: float(rng.normal(0, 0.015)) for k in names},
                   fusion_jitter={k: float(rng.normal(0, 0.012)) for k in EPIPHYSIS_TIMING})


@dataclass(frozen=True)
class Ossification:
    """What a reader of bone age sees, as numbers (for tests and for drawing)."""

    carpals: dict[str, float]  # visible centre -> size fraction of adult (0 < s <= 1)
    #: bone kind -> (width as a fraction of the metaphysis, growth-plate gap, fusion progress 0..1)
    epiphyses: dict[str, tuple[float, float, float]]

    @property
    def carpal_count(self) -> int:
        return len(self.carpals)

    @property
    def fused(self) -> int:
        return sum(1 for _, _, fusion in self.epiphyses.values() if fusion >= 1.0)


def ossification(m: float, build: Build) -> Ossification:
    """Carpal sizes and epiphysis widths / growth-plate gaps at maturity ``m`` (monotonic in m)."""
    carpals = {}
    for name, _, _, _, onset in CARPALS:
        start = max(onset + build.onset_jitter.get(name, 0.0), 0.005)  # none at birth
        if m > start:
            carpals[name] = 0.2 + 0.8 * _smooth((m - start) / 0.5) ** 0.8
    epiphyses = {}
    for kind, (onset, fusion) in EPIPHYSIS_TIMING.items():
        start = onset + build.onset_jitter.get(kind, 0.0)
        fuse = fusion + build.fusion_jitter.get(kind, 0.0)
        if m <= start:
            epiphyses[kind] = (0.0, 0.0, 0.0)
            continue
        width = 0.3 + 0.75 * _smooth((m - start) / 0.55)
        fusion = _smooth((m - (fuse - 0.07)) / 0.07)
        gap = 0.011 * (1.0 - 0.55 * _smooth((m - start) / 0.6)) * (1.0 - fusion)
        epiphyses[kind] = (width, gap, fusion)
    return Ossification(carpals, epiphyses)


def hand_skeleton(m: float, build: Build) -> Scene:
    """The bones and soft tissue of a left-to-right PA hand (thumb on the left) at maturity ``m``."""
    oss = ossification(m, build)
    growth = (0.8 + 0.2 * _smooth(m / 0.9)) * build.length
    centre = np.array([0.5, 0.6])

    def at(p: tuple[float, float] | np.ndarray) -> tuple[float, float]:
        q = centre + (np.asarray(p, float) - centre) * growth
        return float(q[0]), float(q[1])

    cortex = 0.25 + 0.15 * m
    density = 0.85 + 0.15 * m
    joint = 0.006 + 0.008 * (1.0 - m)  # cartilage between bones (wider in children)
    w = build.width
    long, round_, soft = [], [], []

    def add_bone(name: str, kind: str, start: np.ndarray, u: np.ndarray, length: float, radius: float,
                 epi_end: str) -> np.ndarray:
        """A bone from ``start`` along ``u`` whose epiphysis grows in a slot at its 'p0' or 'p1' end."""
        width_frac, gap, fusion = oss.epiphyses[kind]
        slot = radius * 0.85 + 0.008  # cartilage model of the epiphysis: radiolucent until it ossifies
        shaft_start = start + u * (slot if epi_end == "p0" else 0.0)
        shaft_end = start + u * (length - (slot if epi_end == "p1" else 0.0))
        bone = LongBone(name, at(shaft_start), at(shaft_end), radius * w * growth, flare=0.35, cortex=cortex,
                        density=density, cap=0.35)
        long.append(bone)
        if width_frac > 0:
            end, sign = (shaft_start, -1.0) if epi_end == "p0" else (shaft_end, 1.0)
            r_meta = radius * w * 1.35
            rx, ry = r_meta * width_frac, radius * (0.3 + 0.25 * width_frac)
            c = end + sign * u * (0.35 * r_meta + gap + ry * (1.0 - 0.8 * fusion))  # fused: merges into the shaft
            angle = math.atan2(u[1], u[0]) + math.pi / 2
            round_.append(RoundBone(f"{name}-epiphysis", at(c), rx * growth, ry * growth, angle=angle,
                                    cortex=0.35, density=density))
        return start + u * (length + joint)

    # forearm: radius and ulna with distal epiphyses (p1 = distal end)
    up = np.array([0.0, -1.0])
    add_bone("radius", "radius", np.array([0.435, 1.2]), up, 0.39, 0.030, "p1")
    add_bone("ulna", "ulna", np.array([0.575, 1.2]), up, 0.365, 0.019, "p1")
    for name, c, (rx, ry), angle, _ in CARPALS:
        s = oss.carpals.get(name)
        if s:
            round_.append(RoundBone(name, at(c), 1.25 * rx * s * w * growth, 1.25 * ry * s * w * growth, angle=angle,
                                    cortex=0.3, density=density))
    for k, (base, deg, lengths, radii) in enumerate(RAYS):
        a = math.radians(deg + build.spread[k])
        u = np.array([math.sin(a), -math.cos(a)])
        p = np.array(base)
        kinds = ("mc1", "pp", "dp") if k == 0 else ("mc", "pp", "mp", "dp")
        names = ("mc", "pp", "dp") if k == 0 else ("mc", "pp", "mp", "dp")
        for j, (kind, nm) in enumerate(zip(kinds, names)):
            # metacarpals 2-5 have distal epiphyses (heads); the thumb metacarpal and phalanges proximal
            epi_end = "p1" if kind == "mc" else "p0"
            p = add_bone(f"{nm}{k + 1}", kind, p, u, lengths[j] * build.ray_length[k], 1.15 * radii[j], epi_end)
        soft.append(SoftTissue(at(base), at(p - u * 0.012), 0.022 * w * growth * (1.1 - 0.1 * m)))
    soft.append(SoftTissue(at((0.44, 0.57)), at((0.57, 0.6)), 0.12 * w * growth * (1.15 - 0.15 * m)))
    soft.append(SoftTissue(at((0.5, 0.7)), at((0.5, 1.3)), 0.115 * w * growth * (1.15 - 0.15 * m)))
    return Scene(long=long, round=round_, soft=soft)


@dataclass
class HandCase:
    """One synthetic hand radiograph with its ground truth."""

    image: np.ndarray
    bone_age: float  # months
    male: bool
    maturity: float
    ossification: Ossification


def sample_bone_age(rng: np.random.Generator, sex: str) -> float:
    """A bone age in months, spread over childhood like the RSNA set (most between 5 and 17 years)."""
    return round(float(MATURE_MONTHS[sex] * rng.beta(2.4, 1.7)), 1)


def hand_radiograph(bone_age: float, male: bool, rng: np.random.Generator, *, size: int = 256,
                    build: Build | None = None, placement: Placement | None = None,
                    style: Style | None = None) -> HandCase:
    """Render one hand; ``build``/``placement``/``style`` are drawn from ``rng`` unless given (tests fix them)."""
    sex = "M" if male else "F"
    m = maturity(bone_age, sex)
    build = build or Build.sample(rng)
    if male:
        build = replace(build, length=build.length * 1.04, width=build.width * 1.04)  # boys: larger hands
    placement = placement or Placement.sample(rng, rotate=12.0, scale=(0.9, 1.08), shift=0.04)
    style = style or Style.sample(rng, side="L" if rng.random() < 0.85 else "R")
    scene = hand_skeleton(m, build)
    image, _ = render(scene, placement, style, rng, size=size, ref_radius=0.016)
    return HandCase(image, bone_age, male, m, ossification(m, build))


def generate_hands(n: int, *, seed: int, size: int = 256) -> list[HandCase]:
    """``n`` hands of children of both sexes, bone ages spread over 0-228 months; deterministic."""
    out = []
    for k in range(n):
        rng = np.random.default_rng([seed, k, 0xB0E])
        male = bool(rng.random() < 0.54)
        out.append(hand_radiograph(sample_bone_age(rng, "M" if male else "F"), male, rng, size=size))
    return out

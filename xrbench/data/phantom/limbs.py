"""Synthetic musculoskeletal radiographs: MURA's upper-limb parts and FracAtlas regions.

Every part is a :class:`~xrbench.data.phantom.bones.Scene` (long bones with cortex and medulla,
round bones at the joints, soft tissue) built with per-person variation. Abnormalities are
graded and placed on a bone inside the central field so that every view shows them: fractures
(lucent line, displacement and angulation growing with severity; polygon and box in pixels),
fixation hardware (plate and screws) and lucent lesions; fractures and lesions swell the soft
tissue around them. Views (frontal / lateral / oblique) overlap paired bones; pose, exposure,
noise, collimation and side markers vary per image. Everything here is synthetic.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xrbench.data.phantom.bones import (Fracture, FractureRegion, Lesion, LongBone, Placement, Plate,
                                        RoundBone, Scene, SoftTissue, Style, render)
from xrbench.data.phantom.hand import Build, hand_skeleton

MURA_PARTS = ("ELBOW", "FINGER", "FOREARM", "HAND", "HUMERUS", "SHOULDER", "WRIST")
FRACATLAS_REGIONS = ("hand", "leg", "hip", "shoulder")
FINDINGS = ("fracture", "hardware", "lesion")
#: how much each view squeezes the limb across (turning it overlaps paired bones)
VIEW_SQUEEZE = {"frontal": 1.0, "oblique": 0.7, "lateral": 0.4}
#: fractures and lesions are placed within this distance of the body centre so every pose shows them
_FIELD = 0.27


@dataclass
class LimbCase:
    """One synthetic radiograph with its ground truth (pixel coordinates of the image)."""

    image: np.ndarray
    part: str
    view: str
    findings: dict[str, float]  # finding -> severity in (0, 1]
    fractures: list[FractureRegion] = field(default_factory=list)

    @property
    def fractured(self) -> bool:
        return bool(self.fractures)

    @property
    def hardware(self) -> bool:
        return "hardware" in self.findings


@dataclass
class Study:
    """A MURA study: one patient's part, 1-3 views sharing anatomy and findings."""

    patient: str
    part: str
    abnormal: bool
    images: list[LimbCase]


# --------------------------------------------------------------------------- anatomy


def part_scene(part: str, rng: np.random.Generator) -> Scene:
    """The frontal anatomy of a MURA part or FracAtlas region, with this person's proportions."""
    w = float(rng.uniform(0.9, 1.1))  # bone width
    j = float(rng.uniform(-0.02, 0.02))  # small layout jitter
    if part in ("HAND", "WRIST", "FINGER", "hand"):
        hand = hand_skeleton(1.0, Build.sample(rng))
        if part == "WRIST":
            return hand.transformed(centre=(0.5 + j, 0.74), zoom=1.7)
        if part == "FINGER":
            ray = int(rng.integers(1, 5))
            pp = hand.bone(f"pp{ray + 1}")
            centre = (np.asarray(pp.p0) + np.asarray(pp.p1)) / 2
            return hand.transformed(centre=(float(centre[0]), float(centre[1]) - 0.05), zoom=2.4)
        return hand.transformed(centre=(0.5, 0.55 + j), zoom=1.05)
    builders = {"FOREARM": _forearm, "HUMERUS": _humerus, "ELBOW": _elbow, "SHOULDER": _shoulder,
                "shoulder": _shoulder, "leg": _leg, "hip": _hip}
    return builders[part](w, j, rng)


def _forearm(w: float, j: float, rng: np.random.Generator) -> Scene:
    return Scene(long=[LongBone("radius", (0.43 + j, 0.0), (0.41, 1.0), 0.026 * w, flare=0.5),
                       LongBone("ulna", (0.575, -0.02), (0.585 + j, 0.98), 0.022 * w, flare=0.4)],
                 round=[RoundBone("condyles", (0.5, -0.07), 0.1, 0.05),
                        RoundBone("carpus", (0.5, 1.07), 0.09, 0.04, cortex=0.5, density=0.7)],
                 soft=[SoftTissue((0.5, -0.2), (0.5, 1.2), 0.16 * w)])


def _humerus(w: float, j: float, rng: np.random.Generator) -> Scene:
    return Scene(long=[LongBone("humerus", (0.5 + j, 0.1), (0.5, 0.9), 0.036 * w, flare=0.55)],
                 round=[RoundBone("head", (0.53 + j, 0.05), 0.075, 0.07, cortex=0.2),
                        RoundBone("condyles", (0.5, 0.95), 0.085 * w, 0.04),
                        RoundBone("glenoid", (0.39 + j, 0.04), 0.025, 0.06, density=0.8)],
                 soft=[SoftTissue((0.5, -0.1), (0.5, 1.1), 0.19 * w)])


def _elbow(w: float, j: float, rng: np.random.Generator) -> Scene:
    return Scene(long=[LongBone("humerus", (0.5, -0.25), (0.5 + j, 0.42), 0.036 * w, flare=0.6),
                       LongBone("radius", (0.44, 0.56), (0.41 - j, 1.25), 0.022 * w, flare=0.3),
                       LongBone("ulna", (0.555, 0.5), (0.58 + j, 1.25), 0.021 * w, flare=0.3)],
                 round=[RoundBone("condyles", (0.5 + j, 0.47), 0.085 * w, 0.042),
                        RoundBone("radial head", (0.44, 0.545), 0.027 * w, 0.016),
                        RoundBone("olecranon", (0.555, 0.46), 0.028 * w, 0.045, density=0.8)],
                 soft=[SoftTissue((0.5, -0.3), (0.5, 1.3), 0.19 * w)])


def _shoulder(w: float, j: float, rng: np.random.Generator) -> Scene:
    ribs = [LongBone(f"rib{k}", (-0.05, 0.45 + 0.17 * k), (0.3, 0.40 + 0.17 * k + j), 0.012,
                     cortex=0.5, density=0.5) for k in range(3)]
    return Scene(long=[LongBone("humerus", (0.56 + j, 0.5), (0.62, 1.35), 0.042 * w, flare=0.5),
                       LongBone("clavicle", (0.02, 0.22 + j), (0.55, 0.27), 0.024 * w, flare=0.3)] + ribs,
                 round=[RoundBone("head", (0.53 + j, 0.44), 0.085 * w, 0.08, cortex=0.2),
                        RoundBone("tuberosity", (0.62 + j, 0.42), 0.035, 0.03),
                        RoundBone("glenoid", (0.415, 0.46), 0.028, 0.07, density=0.9),
                        RoundBone("scapula", (0.27, 0.62), 0.15, 0.26, angle=0.25, cortex=0.12, density=0.35),
                        RoundBone("acromion", (0.5, 0.31), 0.075, 0.028, angle=-0.2),
                        RoundBone("coracoid", (0.4, 0.36), 0.03, 0.018)],
                 soft=[SoftTissue((0.25, 0.5), (0.7, 0.5), 0.45, density=0.8)])


def _leg(w: float, j: float, rng: np.random.Generator) -> Scene:
    if rng.random() < 0.5:  # knee end in the field
        return Scene(long=[LongBone("femur", (0.47, -0.3), (0.47 + j, 0.3), 0.045 * w, flare=0.6),
                           LongBone("tibia", (0.47 + j, 0.45), (0.48, 1.3), 0.042 * w, flare=0.7),
                           LongBone("fibula", (0.61, 0.48), (0.6 + j, 1.3), 0.018 * w, flare=0.3)],
                     round=[RoundBone("condyles", (0.47 + j, 0.36), 0.1 * w, 0.05),
                            RoundBone("patella", (0.47, 0.3), 0.04, 0.05, density=0.6),
                            RoundBone("fibular head", (0.61, 0.47), 0.022, 0.022)],
                     soft=[SoftTissue((0.5, -0.3), (0.5, 1.3), 0.21 * w)])
    return Scene(long=[LongBone("tibia", (0.45, -0.3), (0.46 + j, 0.62), 0.045 * w, flare=0.6),
                       LongBone("fibula", (0.61 + j, -0.3), (0.6, 0.68), 0.02 * w, flare=0.3)],
                 round=[RoundBone("talus", (0.5, 0.74), 0.085 * w, 0.05),
                        RoundBone("calcaneus", (0.55, 0.88), 0.11, 0.06, density=0.8)],
                 soft=[SoftTissue((0.5, -0.3), (0.5, 1.0), 0.19 * w)])


def _hip(w: float, j: float, rng: np.random.Generator) -> Scene:
    return Scene(long=[LongBone("femur", (0.62 + j, 0.52), (0.66, 1.3), 0.048 * w, flare=0.4),
                       LongBone("neck", (0.5, 0.36), (0.61 + j, 0.5), 0.033 * w, flare=0.2),
                       LongBone("pubis", (0.15, 0.6), (0.42, 0.52 + j), 0.025, density=0.7)],
                 round=[RoundBone("head", (0.47, 0.33 + j), 0.068 * w, 0.068 * w),
                        RoundBone("trochanter", (0.68 + j, 0.46), 0.045, 0.05),
                        RoundBone("lesser trochanter", (0.6, 0.62), 0.022, 0.022),
                        RoundBone("ilium", (0.28, 0.12), 0.26, 0.2, cortex=0.15, density=0.45),
                        RoundBone("acetabulum", (0.45, 0.27), 0.09, 0.04, density=0.8),
                        RoundBone("obturator ring", (0.35, 0.55), 0.12, 0.09, cortex=0.35, density=0.6)],
                 soft=[SoftTissue((0.3, 0.5), (0.7, 0.6), 0.45, density=0.8)])


# --------------------------------------------------------------------------- findings


def _site(scene: Scene, rng: np.random.Generator, *, min_length: float = 0.0) -> tuple[str, float] | None:
    """A (bone, t) in the central field on a long bone (ribs and pelvis excluded)."""
    candidates = []
    for b in scene.long:
        p0, u, length = b.axis()
        if length < min_length or b.name.startswith(("rib", "pubis")):
            continue
        for t in np.linspace(0.2, 0.8, 13):
            if np.hypot(*(p0 + u * t * length - 0.5)) < _FIELD:
                candidates.append((b.name, float(t)))
    if not candidates:
        return None
    return candidates[int(rng.integers(len(candidates)))]


def add_fracture(scene: Scene, rng: np.random.Generator, severity: float) -> bool:
    """Break a bone in the field; gap, displacement and angulation grow with ``severity``."""
    site = _site(scene, rng, min_length=0.05)
    if site is None or any(f.bone == site[0] for f in scene.fractures):
        return False
    bone = scene.bone(site[0])
    r = bone.radius
    displaced = severity > 0.45 and rng.random() < 0.85
    shift = (float(rng.choice([-1, 1]) * rng.uniform(0.4, 1.2) * severity), float(-rng.uniform(0, 0.5) * severity)) \
        if displaced else (0.0, 0.0)
    scene.fractures.append(Fracture(site[0], site[1], angle=float(rng.uniform(-0.6, 0.6)),
                                    gap=r * (0.3 + 0.5 * severity), shift=shift,
                                    angulation=float(rng.uniform(-0.3, 0.3) * severity) if displaced else 0.0,
                                    severity=severity))
    _swelling(scene, bone, site[1], severity)
    return True


def _swelling(scene: Scene, bone: LongBone, t: float, severity: float) -> None:
    """Soft-tissue swelling around an injured or diseased site, as radiologists look for."""
    p0, u, length = bone.axis()
    c = p0 + u * t * length
    half = u * bone.radius * (1.5 + 2.0 * severity)
    scene.soft.append(SoftTissue(tuple(c - half), tuple(c + half), bone.radius * (2.2 + 1.5 * severity),
                                 density=0.25 + 0.35 * severity))


def add_hardware(scene: Scene, rng: np.random.Generator) -> bool:
    site = _site(scene, rng, min_length=0.12)
    if site is None:
        return False
    half = float(rng.uniform(0.12, 0.22))
    t0, t1 = max(0.05, site[1] - half), min(0.95, site[1] + half)
    scene.plates.append(Plate(site[0], t0, t1, side=float(rng.choice([-1.0, 1.0])), screws=int(rng.integers(3, 7))))
    return True


def add_lesion(scene: Scene, rng: np.random.Generator, severity: float) -> bool:
    site = _site(scene, rng, min_length=0.05)
    if site is None:
        return False
    scene.lesions.append(Lesion(site[0], site[1], offset=float(rng.uniform(-0.3, 0.3)),
                                size=0.4 + 0.5 * severity, severity=severity))
    _swelling(scene, scene.bone(site[0]), site[1], 0.5 * severity)
    return True


def radiograph(scene: Scene, view: str, rng: np.random.Generator, *, part: str, findings: dict[str, float],
               size: int = 256, placement: Placement | None = None, style: Style | None = None) -> LimbCase:
    """Render one view of a scene (findings already added) with a random pose and acquisition."""
    placement = placement or Placement.sample(rng)
    style = style or Style.sample(rng, side="R" if placement.flip else "L")
    viewed = scene.transformed(squeeze=VIEW_SQUEEZE[view])
    ref = float(np.median([b.radius for b in viewed.long if not b.name.startswith("rib")]))
    image, regions = render(viewed, placement, style, rng, size=size, ref_radius=ref)
    return LimbCase(image, part, view, dict(findings), regions)


def _abnormal_scene(part: str, rng: np.random.Generator, kind: str | None) -> tuple[Scene, dict[str, float]]:
    """A part's scene and, unless ``kind`` is None, one graded finding of that kind."""
    for _ in range(50):  # a new anatomy when this one has no bone in the field that fits the finding
        scene = part_scene(part, rng)
        if kind is None:
            return scene, {}
        severity = round(float(rng.uniform(0.4, 1.0)), 3)
        if kind == "fracture" and add_fracture(scene, rng, severity):
            return scene, {"fracture": severity}
        if kind == "hardware" and add_hardware(scene, rng):
            return scene, {"hardware": 1.0}
        if kind == "lesion" and add_lesion(scene, rng, severity):
            return scene, {"lesion": severity}
    raise RuntimeError(f"no site for a {kind} on a {part} phantom")


# --------------------------------------------------------------------------- datasets


def generate_studies(n_images: int, *, seed: int, size: int = 256, abnormal_rate: float = 0.4) -> list[Study]:
    """MURA-like studies totalling ``n_images`` images (1-3 views each); some patients have two parts."""
    rng = np.random.default_rng([seed, 0x3A2])
    studies: list[Study] = []
    total, patient_no = 0, 0
    while total < n_images:
        patient_no += 1
        patient = f"patient{patient_no:05d}"
        n_studies = 2 if rng.random() < 0.2 else 1
        for part in rng.choice(MURA_PARTS, size=n_studies, replace=False):
            if total >= n_images:
                break
            srng = np.random.default_rng([seed, patient_no, MURA_PARTS.index(str(part))])
            abnormal = bool(srng.random() < abnormal_rate)
            kind = str(srng.choice(FINDINGS, p=[0.45, 0.35, 0.2])) if abnormal else None
            scene, findings = _abnormal_scene(str(part), srng, kind)
            k = min(int(srng.integers(1, 4)), n_images - total)
            views = ("frontal", "lateral", "oblique")[:k]
            images = [radiograph(scene, v, srng, part=str(part), findings=findings, size=size) for v in views]
            studies.append(Study(patient, str(part), abnormal, images))
            total += k
    return studies


def generate_fracatlas(n: int, *, seed: int, size: int = 256, fracture_rate: float = 0.4,
                       hardware_rate: float = 0.1) -> list[LimbCase]:
    """FracAtlas-like images: hand/leg/hip/shoulder, fractures (1-2, with polygons), some hardware."""
    out = []
    for k in range(n):
        rng = np.random.default_rng([seed, k, 0xFA])
        region = str(rng.choice(FRACATLAS_REGIONS, p=[0.36, 0.42, 0.11, 0.11]))
        view = str(rng.choice(tuple(VIEW_SQUEEZE), p=[0.6, 0.1, 0.3]))
        scene = part_scene(region, rng)
        findings: dict[str, float] = {}
        if rng.random() < fracture_rate:
            severities = [round(float(rng.uniform(0.15, 1.0)), 3) for _ in range(2 if rng.random() < 0.15 else 1)]
            placed = [s for s in severities if add_fracture(scene, rng, s)]
            if placed:
                findings["fracture"] = max(placed)
        if rng.random() < hardware_rate and add_hardware(scene, rng):
            findings["hardware"] = 1.0
        out.append(radiograph(scene, view, rng, part=region, findings=findings, size=size))
    return out

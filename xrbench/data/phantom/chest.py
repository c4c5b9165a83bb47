"""The synthetic frontal chest radiograph phantom (SYNTHETIC DATA — no real patient is depicted).

:func:`generate_chest` draws patients (anatomy shared by all their images), then images (view,
exposure, pose, noise, markers), and findings with graded severity, size and position, co-occurring
as they do in practice (a Gaussian copula over the findings keeps each finding's prevalence exactly
what was asked). Findings are judged against *this* patient's anatomy (cardiomegaly is a
cardiothoracic ratio above 0.5, so heart width alone does not give the label away), and strong
nuisance variation (habitus, inspiration, rotation, AP magnification, exposure, processing, noise,
collimation, devices, text) keeps the task non-trivial for an encoder that did not learn images.

Derived labels follow the CheXpert hierarchy: ``Lung Lesion`` = Nodule or Mass; ``Lung Opacity``
is present with Consolidation, Pneumonia, Atelectasis, Edema or Infiltration, and also on its own
(a ground-glass opacity; its ``prevalence`` entry sets that standalone rate). Derived labels
carry no boxes of their own: their lesions are boxed under the child finding.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.special import ndtr

from xrbench.data.phantom import canvas
from xrbench.data.phantom.canvas import F32, Pose
from xrbench.data.phantom.chest_anatomy import Anatomy, draw_thorax, resolve_geometry, sample_anatomy
from xrbench.data.phantom.chest_devices import draw_devices
from xrbench.data.phantom.chest_findings import Spec, adjust_geometry, draw_finding
from xrbench.data.phantom.chest_report import write_report

CHEST_FINDINGS: tuple[str, ...] = (
    "Cardiomegaly", "Enlarged Cardiomediastinum", "Pleural Effusion", "Pneumothorax", "Consolidation",
    "Lung Opacity", "Nodule", "Mass", "Atelectasis", "Edema", "Support Devices", "Fracture",
    "Pleural Thickening", "Emphysema", "Fibrosis", "Infiltration", "Pneumonia", "Calcification",
    "Aortic Enlargement", "Hernia", "Lung Lesion", "Pleural Other")

#: findings that belong to the patient (same presence, severity and place in all their images)
CHRONIC = ("Cardiomegaly", "Enlarged Cardiomediastinum", "Aortic Enlargement", "Emphysema", "Fibrosis",
           "Calcification", "Pleural Thickening", "Pleural Other", "Hernia", "Fracture", "Nodule", "Mass")
#: findings drawn afresh for each image
ACUTE = ("Pleural Effusion", "Pneumothorax", "Consolidation", "Pneumonia", "Lung Opacity", "Atelectasis",
         "Edema", "Infiltration", "Support Devices")
DERIVED = {"Lung Lesion": ("Nodule", "Mass"),
           "Lung Opacity": ("Consolidation", "Pneumonia", "Atelectasis", "Edema", "Infiltration")}
#: findings that reports may hedge ("possible ...", "cannot exclude ...")
HEDGED = ("Cardiomegaly", "Pleural Effusion", "Pneumothorax", "Consolidation", "Pneumonia", "Atelectasis",
          "Edema", "Lung Opacity", "Nodule", "Fracture", "Infiltration")

DEFAULT_PREVALENCE: dict[str, float] = {
    "Cardiomegaly": 0.25, "Enlarged Cardiomediastinum": 0.08, "Pleural Effusion": 0.28, "Pneumothorax": 0.1,
    "Consolidation": 0.18, "Lung Opacity": 0.06, "Nodule": 0.1, "Mass": 0.05, "Atelectasis": 0.25,
    "Edema": 0.2, "Support Devices": 0.3, "Fracture": 0.05, "Pleural Thickening": 0.06, "Emphysema": 0.07,
    "Fibrosis": 0.06, "Infiltration": 0.1, "Pneumonia": 0.1, "Calcification": 0.08,
    "Aortic Enlargement": 0.1, "Hernia": 0.03, "Pleural Other": 0.03}

_COUPLING = (("Cardiomegaly", "Edema", 0.45), ("Cardiomegaly", "Pleural Effusion", 0.35),
             ("Edema", "Pleural Effusion", 0.45), ("Pleural Effusion", "Atelectasis", 0.4),
             ("Consolidation", "Pneumonia", 0.65), ("Consolidation", "Atelectasis", 0.15),
             ("Support Devices", "Edema", 0.3), ("Support Devices", "Pleural Effusion", 0.3),
             ("Support Devices", "Pneumothorax", 0.25), ("Support Devices", "Cardiomegaly", 0.2),
             ("Cardiomegaly", "Enlarged Cardiomediastinum", 0.5), ("Aortic Enlargement", "Enlarged Cardiomediastinum", 0.35),
             ("Aortic Enlargement", "Calcification", 0.2), ("Emphysema", "Pneumothorax", 0.2),
             ("Fibrosis", "Infiltration", 0.3), ("Nodule", "Mass", 0.15), ("Pleural Thickening", "Pleural Other", 0.35),
             ("Pneumonia", "Pleural Effusion", 0.15), ("Lung Opacity", "Pneumonia", 0.25))
_ORDER = CHRONIC + ACUTE


def _copula_factor() -> np.ndarray:
    idx = {n: i for i, n in enumerate(_ORDER)}
    corr = np.eye(len(_ORDER))
    for a, b, r in _COUPLING:
        corr[idx[a], idx[b]] = corr[idx[b], idx[a]] = r
    w, v = np.linalg.eigh(corr)
    corr = (v * np.maximum(w, 1e-3)) @ v.T
    d = np.sqrt(np.diag(corr))
    return np.linalg.cholesky(corr / np.outer(d, d))


_L = _copula_factor()


@dataclass
class ChestCase:
    """One synthetic frontal chest radiograph and its ground truth."""

    image: np.ndarray                 # float32 [size, size] in [0, 1], bright = dense
    findings: dict[str, float]        # present finding -> severity in (0, 1]
    uncertain: frozenset[str]         # findings (present or not) the report hedges
    boxes: list[tuple[str, float, float, float, float]]  # (finding, x0, y0, x1, y1) pixel xyxy
    masks: dict[str, np.ndarray]      # finding -> bool [size, size] (every localised finding drawn)
    report: dict[str, str]            # {"findings": ..., "impression": ...}
    patient: str
    sex: str
    age: int
    view: str                         # "PA" / "AP"


@dataclass
class _Patient:
    id: str
    sex: str
    age: int
    anatomy: Anatomy
    eps: np.ndarray                   # copula noise of the chronic findings
    specs: dict[str, Spec]            # chronic findings present


def generate_chest(n: int, *, seed: int, size: int = 256, images_per_patient: float = 1.5,
                   prevalence: dict[str, float] | None = None) -> list[ChestCase]:
    """``n`` synthetic chest cases, deterministic for ``seed`` (a prefix of a longer run is identical).

    ``images_per_patient`` is the mean number of images per patient (>= 1). ``prevalence`` overrides
    :data:`DEFAULT_PREVALENCE` per finding (probability in [0, 1]); ``Lung Lesion`` is derived from
    Nodule and Mass, so asking for its prevalence is an error (set theirs).
    """
    if n < 0 or size < 64:
        raise ValueError(f"generate_chest: need n >= 0 and size >= 64, got n={n}, size={size}")
    if images_per_patient < 1:
        raise ValueError(f"generate_chest: images_per_patient must be >= 1, got {images_per_patient}")
    prev = dict(DEFAULT_PREVALENCE)
    for name, p in (prevalence or {}).items():
        if name == "Lung Lesion":
            raise ValueError("generate_chest: 'Lung Lesion' is derived (Nodule or Mass); set their prevalence")
        if name not in prev:
            raise ValueError(f"generate_chest: unknown finding {name!r} in prevalence; known: {list(CHEST_FINDINGS)}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"generate_chest: prevalence of {name!r} must be in [0, 1], got {p}")
        prev[name] = float(p)
    cases: list[ChestCase] = []
    counts = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    index = 0
    while len(cases) < n:
        k = 1 + int(counts.poisson(images_per_patient - 1))
        patient = _sample_patient(np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, index))),
                                  f"p{index:05d}", prev)
        for j in range(min(k, n - len(cases))):
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2, index, j)))
            cases.append(_render_case(patient, rng, prev, size))
        index += 1
    return cases


def _severity(q: float, p: float) -> float:
    """Severity of a present finding from its copula quantile (uniform within the positives)."""
    return float(np.clip(1.0 - q / p, 0.05, 1.0))


def _side(rng: np.random.Generator, bilateral: float) -> str:
    return "bilateral" if rng.random() < bilateral else ("right", "left")[int(rng.integers(2))]


def _zone(rng: np.random.Generator) -> str:
    return str(rng.choice(["upper", "middle", "lower"], p=[0.25, 0.25, 0.5]))


_SIDEDNESS = {"Pleural Effusion": 0.35, "Pneumothorax": 0.0, "Consolidation": 0.1, "Pneumonia": 0.2,
              "Lung Opacity": 0.1, "Atelectasis": 0.25, "Infiltration": 0.15, "Nodule": 0.0, "Mass": 0.0,
              "Calcification": 0.0, "Pleural Thickening": 0.2, "Pleural Other": 0.3, "Fracture": 0.0}
_ZONED = ("Consolidation", "Pneumonia", "Lung Opacity", "Infiltration", "Nodule", "Mass")
_BILATERAL = ("Edema", "Emphysema", "Fibrosis")


def _spec(name: str, severity: float, rng: np.random.Generator) -> Spec:
    side = _side(rng, _SIDEDNESS[name]) if name in _SIDEDNESS else ("bilateral" if name in _BILATERAL else None)
    zone = _zone(rng) if name in _ZONED else ("lower" if name == "Atelectasis" else None)
    return Spec(name, severity, side, zone, seed=int(rng.integers(2**31)))


def _sample_patient(rng: np.random.Generator, pid: str, prev: dict[str, float]) -> _Patient:
    sex = "M" if rng.random() < 0.5 else "F"
    age = int(np.clip(rng.normal(60, 16), 18, 95))
    anatomy = sample_anatomy(rng, sex, age)
    eps = rng.standard_normal(len(CHRONIC))
    q = ndtr(_L[:len(CHRONIC), :len(CHRONIC)] @ eps)
    specs = {}
    for name, qi in zip(CHRONIC, q):
        if qi < prev[name]:
            specs[name] = _spec(name, _severity(qi, prev[name]), rng)
    # cardiothoracic ratio continuous through the 0.5 threshold: the label is "ratio > 0.5"
    qc, pc = q[CHRONIC.index("Cardiomegaly")], prev["Cardiomegaly"]
    ctr = 0.505 + 0.15 * specs["Cardiomegaly"].severity if "Cardiomegaly" in specs else \
        0.495 - 0.11 * (qc - pc) / max(1 - pc, 1e-9)
    return _Patient(pid, sex, age, replace(anatomy, ctr=float(ctr)), eps, specs)


def _render_case(pt: _Patient, rng: np.random.Generator, prev: dict[str, float], size: int) -> ChestCase:
    eps = np.concatenate([pt.eps, rng.standard_normal(len(ACUTE))])
    q = ndtr(_L[len(CHRONIC):] @ eps)
    specs = {name: Spec(s.name, s.severity, s.side, s.zone, s.seed) for name, s in pt.specs.items()}
    for name, qi in zip(ACUTE, q):
        if qi < prev[name]:
            specs[name] = _spec(name, _severity(qi, prev[name]), rng)
    sick = "Support Devices" in specs or "Edema" in specs
    view = "AP" if rng.random() < (0.65 if sick else 0.2) else "PA"
    g = resolve_geometry(pt.anatomy, view=view, inspiration=rng.uniform(-0.04, 0.03) - 0.02 * (view == "AP"),
                         rotation=float(np.clip(rng.normal(0, 0.015), -0.04, 0.04)),
                         heart_mag=rng.uniform(1.06, 1.16) if view == "AP" else rng.uniform(0.98, 1.03))
    adjust_geometry(g, specs)
    pose = Pose(rotate_deg=rng.normal(0, 2.5), scale=rng.uniform(0.86, 1.04),
                shift=(rng.normal(0, 0.02), rng.normal(0, 0.02)), elastic=0.004)
    X, Y = pose.grid(size, rng)
    th = draw_thorax(g, X, Y, size)
    masks: dict[str, np.ndarray] = {}
    boxes: list[tuple[str, float, float, float, float]] = []
    for name in _ORDER:
        if name not in specs:
            continue
        drawn = draw_devices(th, specs[name], pose) if name == "Support Devices" else draw_finding(th, specs[name])
        for m in drawn:
            bb = canvas.bbox(m)
            if bb is not None:
                boxes.append((name, *bb))
        if drawn:
            masks[name] = np.logical_or.reduce(drawn)
    image = _acquire(th.density(), th.body, rng, view)
    findings = {name: s.severity for name, s in specs.items()}
    for parent, children in DERIVED.items():
        sev = [findings[c] for c in children if c in findings] + ([findings[parent]] if parent in findings else [])
        if sev:
            findings[parent] = max(sev)
    uncertain = _uncertain(specs, findings, pt.anatomy.ctr, rng)
    report = write_report(specs, findings, uncertain, view, rng)
    return ChestCase(image=image, findings=findings, uncertain=uncertain, boxes=boxes, masks=masks,
                     report=report, patient=pt.id, sex=pt.sex, age=pt.age, view=view)


def _uncertain(specs: dict[str, Spec], findings: dict[str, float], ctr: float,
               rng: np.random.Generator) -> frozenset[str]:
    """Hedged findings: faint drawn ones often, absent ones rarely (borderline hearts more often).

    A derived label (Lung Opacity, Lung Lesion) present only through its children is hedged when
    all of those children are.
    """
    out = set()
    for name in HEDGED:
        if name in specs:
            p = 0.4 if specs[name].severity < 0.3 else 0.03
        elif name in findings:
            continue
        else:
            p = 0.4 if name == "Cardiomegaly" and ctr > 0.485 else 0.03
        if rng.random() < p:
            out.add(name)
    for parent, children in DERIVED.items():
        present = [c for c in children if c in findings]
        if parent in findings and present and all(c in out for c in present) and parent not in out:
            out.add(parent)
    return frozenset(out)


def _acquire(density: np.ndarray, body: np.ndarray, rng: np.random.Generator, view: str) -> np.ndarray:
    """Detector, processing and display: attenuation, blur, edge enhancement, window, noise, overlays."""
    size = density.shape[0]
    mottle = canvas.fractal_noise(rng, size, beta=2.0, fmin=1 / 32)[0]
    density = density + mottle * body * F32(rng.uniform(0.01, 0.04))
    img = F32(1.0) - np.exp(-F32(rng.uniform(1.0, 1.6)) * density)
    img = canvas.blur(img, rng.uniform(0.3, 1.0) * size / 256)
    img = canvas.unsharp(img, rng.uniform(2, 6) * size / 256, rng.uniform(0.0, 0.8) if rng.random() < 0.6 else 0.0)
    img = canvas.expose(img, lo=rng.uniform(-0.08, 0.15), hi=rng.uniform(0.85, 1.1),
                        gamma=float(np.exp(rng.normal(0, 0.25))))
    img = canvas.detector_noise(img, rng, quantum=rng.uniform(0.005, 0.03), read=rng.uniform(0.002, 0.01),
                                lines=rng.uniform(0, 0.006))
    if rng.random() < 0.3:  # collimation: unexposed (white) or masked (black) borders
        b = (rng.integers(0, 20, 4) * size / 256).astype(int)
        edge_val = F32(0.0 if rng.random() < 0.3 else rng.uniform(0.85, 1.0))
        img[:b[0]] = edge_val
        img[size - b[1]:] = edge_val
        img[:, :b[2]] = edge_val
        img[:, size - b[3]:] = edge_val
    scale = max(1, round(2 * size / 256))
    if rng.random() < 0.85:  # side marker near the patient's left (image right) or right shoulder
        left = rng.random() < 0.7
        x = int(size * (rng.uniform(0.78, 0.9) if left else rng.uniform(0.05, 0.15)))
        canvas.text(img, "L" if left else "R", x, int(size * rng.uniform(0.03, 0.12)), scale=scale)
    if view == "AP" and rng.random() < 0.6:
        canvas.text(img, str(rng.choice(["AP", "PORTABLE", "SUPINE", "AP ERECT"])), int(size * 0.05),
                    int(size * rng.uniform(0.86, 0.92)), scale=max(1, scale - 1), value=rng.uniform(0.8, 1.0))
    return np.clip(img, 0.0, 1.0).astype(F32)

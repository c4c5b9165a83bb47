"""Support devices on the synthetic chest: tubes, lines, pacemakers, electrodes, sternotomy wires.

Synthetic data only. Tubes and wires are drawn as pixel-space polylines through anatomical
anchors (mapped through the image's pose); compact hardware is drawn on the body coordinates.
Devices are dense (metal, radiopaque stripes), so they survive every exposure.
"""
from __future__ import annotations

import numpy as np

from xrbench.data.phantom import canvas
from xrbench.data.phantom.canvas import F32, Pose
from xrbench.data.phantom.chest_anatomy import Thorax
from xrbench.data.phantom.chest_findings import Spec

DEVICES = ("endotracheal tube", "enteric tube", "central venous catheter", "pacemaker",
           "ECG leads", "sternotomy wires", "chest tube")


def _line(th: Thorax, pose: Pose, rng: np.random.Generator, anchors: list[tuple[float, float]],
          width_px: float, wobble: float = 1.5) -> np.ndarray:
    size = th.X.shape[0]
    px, py = pose.to_px(np.array([a[0] for a in anchors]), np.array([a[1] for a in anchors]), size)
    path = canvas.smooth_curve(rng, np.stack([px, py], 1), wobble=wobble * size / 256)
    return canvas.polyline(size, path, width_px=width_px * size / 256)


def _tube(th: Thorax, pose: Pose, rng: np.random.Generator, anchors: list[tuple[float, float]],
          width_px: float) -> np.ndarray:
    """A plastic tube (faint) with its radiopaque stripe (dense)."""
    body = _line(th, pose, np.random.default_rng(rng.integers(2**31)), anchors, width_px, 0.0)
    stripe = _line(th, pose, np.random.default_rng(rng.integers(2**31)), anchors, 1.3, 0.0)
    return body * F32(0.12) + stripe * F32(0.5)


def _device(th: Thorax, pose: Pose, rng: np.random.Generator, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(density, what is boxed): ECG electrodes are boxed without their wires, which run off the image."""
    g = th.g
    cx = g.cx + g.med_shift
    carina = g.hilum("right")[1] - 0.03
    dome = g.dome["left"]
    if name == "endotracheal tube":
        tip = carina - rng.uniform(0.02, 0.07)
        return _both(_tube(th, pose, rng, [(cx - 0.004, -0.05), (cx - 0.004, tip)], 5.0))
    if name == "enteric tube":
        return _both(_line(th, pose, rng, [(cx + 0.005, -0.05), (cx + 0.01, carina), (cx + 0.03, dome - 0.02),
                                           (cx + 0.1, dome + 0.06)], 2.5) * F32(0.35))
    if name == "central venous catheter":
        if rng.random() < 0.5:
            pts = [(cx - 0.09, -0.02), (cx - 0.05, g.clav_y + 0.02), (cx - 0.025, carina + 0.02)]
        else:
            pts = [(cx + 0.3, g.clav_y + 0.03), (cx + 0.08, g.clav_y + 0.05), (cx - 0.025, carina + 0.02)]
        return _both(_line(th, pose, rng, pts, 1.8) * F32(0.5))
    if name == "pacemaker":
        side = 1 if rng.random() < 0.75 else -1
        gx, gy = cx + side * 0.22, g.clav_y + 0.07
        box = canvas.superellipse(th.X, th.Y, gx, gy, 0.035, 0.025, power=4, angle=rng.uniform(-0.3, 0.3),
                                  edge=2.0 / th.X.shape[0])
        leads = [_line(th, pose, rng, [(gx, gy), (cx - 0.02, g.clav_y + 0.08), (cx - 0.03, carina + 0.08)], 1.6),
                 _line(th, pose, rng, [(gx, gy), (cx - 0.01, g.clav_y + 0.09), (cx + 0.07, dome - 0.03)], 1.6)]
        return _both(box * F32(1.3) + np.clip(sum(leads), 0, 1) * F32(0.7))
    if name == "ECG leads":
        out, pads = np.zeros_like(th.X), np.zeros_like(th.X)
        for _ in range(int(rng.integers(2, 5))):
            x, y = cx + rng.uniform(-0.4, 0.4), rng.uniform(0.1, 0.8)
            ring = canvas.ellipse(th.X, th.Y, x, y, 0.013, 0.013, edge=0.004) - \
                canvas.ellipse(th.X, th.Y, x, y, 0.007, 0.007, edge=0.004)
            wire = _line(th, pose, rng, [(x, y), (x + rng.uniform(-0.2, 0.2), y + rng.uniform(-0.3, 0.3)),
                                         (x + rng.choice([-0.7, 0.7]), y + rng.uniform(-0.2, 0.2))], 1.2, 4.0)
            out += ring * F32(0.45) + wire * F32(0.25)
            pads += ring
        return out, pads
    if name == "sternotomy wires":
        out = np.zeros_like(th.X)
        for y in np.linspace(g.clav_y + 0.06, carina + 0.16, int(rng.integers(4, 7))):
            x = cx + rng.normal(0, 0.005)
            loop = canvas.ellipse(th.X, th.Y, x, y, 0.012, 0.006, edge=0.003) - \
                canvas.ellipse(th.X, th.Y, x, y, 0.007, 0.002, edge=0.003)
            out += np.clip(loop, 0, 1) * F32(0.9)
        return _both(out)
    side = "right" if rng.random() < 0.5 else "left"   # chest tube, from the lateral base towards the apex
    sg = -1 if side == "right" else 1
    hw = g.hw[side]
    return _both(_tube(th, pose, rng, [(cx + sg * (hw + 0.08), dome + 0.02), (cx + sg * hw * 0.9, dome - 0.08),
                                       (cx + sg * hw * 0.6, g.apex_y + 0.08)], 4.0))


def _both(drawn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return drawn, drawn


def draw_devices(th: Thorax, s: Spec, pose: Pose) -> list[np.ndarray]:
    """Add 1-3 devices (more when severe) to ``th.extra``; one mask per device, names in ``s.detail``."""
    rng = s.rng()
    count = 1 + int(s.severity > 0.45) + int(s.severity > 0.85)
    weights = np.array([3, 2.5, 3, 1.5, 2, 1, 1.0])
    names = list(rng.choice(DEVICES, size=count, replace=False, p=weights / weights.sum()))
    masks = []
    for name in names:
        drawn, boxed = _device(th, pose, rng, name)
        th.extra += drawn
        masks.append(boxed > 0.15)
    s.detail["devices"] = [str(n) for n in names]
    return masks

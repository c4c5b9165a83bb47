"""Drawing primitives shared by every synthetic anatomy (chest, limbs, spine, skull, knee, hand).

Everything here is vectorised numpy + ``scipy.ndimage`` on float32 arrays so that one phantom image
of 256x256 px renders in a few milliseconds. Shapes are drawn as *soft* fields in [0, 1] on a pair
of coordinate arrays ``(X, Y)`` (normalised image units: x right, y down, 0..1 across the image).
Drawing on a warped pair from :func:`pose_grid` moves every structure, mask and box with the pose
at no extra cost. Densities are summed by the caller (bright = dense) and turned into a displayed
radiograph by :func:`expose` and :func:`detector_noise`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

Array = np.ndarray
F32 = np.float32


@lru_cache(maxsize=8)
def grid(size: int) -> tuple[Array, Array]:
    """Pixel-centre coordinates ``(X, Y)`` in [0, 1] (read-only, cached per size)."""
    c = (np.arange(size, dtype=F32) + F32(0.5)) / F32(size)
    X, Y = np.meshgrid(c, c)
    X.setflags(write=False)
    Y.setflags(write=False)
    return X, Y


@dataclass(frozen=True)
class Pose:
    """Where the body lies on the detector: rotation, magnification, shift and a smooth elastic warp.

    A structure drawn at body point p appears at pixel ``R(rotate) * scale * (p - 0.5) + 0.5 + shift``
    (image units). ``elastic`` is the RMS displacement of a field smooth over ~1/2 image.
    """

    rotate_deg: float = 0.0
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    elastic: float = 0.0

    def grid(self, size: int, rng: np.random.Generator) -> tuple[Array, Array]:
        """Body coordinates seen by each pixel (draw on these to move everything with the pose)."""
        X, Y = grid(size)
        t = np.deg2rad(self.rotate_deg)
        c, s = float(np.cos(t) / self.scale), float(np.sin(t) / self.scale)
        x = X - F32(0.5 + self.shift[0])
        y = Y - F32(0.5 + self.shift[1])
        bx = F32(c) * x + F32(s) * y + F32(0.5)
        by = F32(-s) * x + F32(c) * y + F32(0.5)
        if self.elastic > 0:
            bx += smooth_field(rng, size, self.elastic)
            by += smooth_field(rng, size, self.elastic)
        return bx, by

    def to_px(self, x: Array | float, y: Array | float, size: int) -> tuple[Array, Array]:
        """Pixel position of body point(s) (affine part; the elastic warp is small and ignored)."""
        t = np.deg2rad(self.rotate_deg)
        c, s = np.cos(t) * self.scale, np.sin(t) * self.scale
        dx, dy = np.asarray(x) - 0.5, np.asarray(y) - 0.5
        px = c * dx - s * dy + 0.5 + self.shift[0]
        py = s * dx + c * dy + 0.5 + self.shift[1]
        return px * size, py * size


def smooth_field(rng: np.random.Generator, size: int, amplitude: float, cycles: int = 2) -> Array:
    """A smooth random field (sum of separable low-frequency cosines), RMS ~``amplitude``."""
    c = (np.arange(size, dtype=F32) + F32(0.5)) / F32(size)
    k = np.arange(1, cycles + 1, dtype=F32)[:, None]
    fx = np.cos(F32(np.pi) * k * c + rng.uniform(0, 2 * np.pi, (cycles, 1)).astype(F32))
    fy = np.cos(F32(np.pi) * k * c + rng.uniform(0, 2 * np.pi, (cycles, 1)).astype(F32))
    w = rng.standard_normal((cycles, cycles)).astype(F32) * F32(amplitude * 2.0 / cycles)
    return (fy.T @ w @ fx).astype(F32)


def ramp(d: Array, width: float) -> Array:
    """Soft step: 0 for ``d < -width/2``, 1 for ``d > width/2``, linear between (cheaper than tanh)."""
    t = d * F32(1.0 / max(width, 1e-6))
    t += F32(0.5)
    np.maximum(t, F32(0.0), out=t)
    return np.minimum(t, F32(1.0), out=t)


def rotated(X: Array, Y: Array, cx: float, cy: float, angle: float) -> tuple[Array, Array]:
    """Coordinates relative to (cx, cy), rotated by ``angle`` radians (for oriented shapes)."""
    dx, dy = X - F32(cx), Y - F32(cy)
    if angle == 0.0:
        return dx, dy
    c, s = F32(np.cos(angle)), F32(np.sin(angle))
    return c * dx + s * dy, -s * dx + c * dy


def superellipse(X: Array, Y: Array, cx: float, cy: float, rx: float, ry: float, *,
                 power: float = 2.0, angle: float = 0.0, edge: float = 0.01) -> Array:
    """Soft-edged superellipse ``|x/rx|^p + |y/ry|^p <= 1``; ``edge`` is the ramp width (image units)."""
    dx, dy = rotated(X, Y, cx, cy, angle)
    if power == 2.0:
        r = np.sqrt((dx / F32(rx)) ** 2 + (dy / F32(ry)) ** 2)
    else:
        r = (np.abs(dx / F32(rx)) ** power + np.abs(dy / F32(ry)) ** power) ** F32(1.0 / power)
    return ramp((F32(1.0) - r) * F32(min(rx, ry)), edge)


def ellipse(X: Array, Y: Array, cx: float, cy: float, rx: float, ry: float, *,
            angle: float = 0.0, edge: float = 0.01) -> Array:
    return superellipse(X, Y, cx, cy, rx, ry, power=2.0, angle=angle, edge=edge)


def gaussian(X: Array, Y: Array, cx: float, cy: float, sx: float, sy: float | None = None,
             angle: float = 0.0) -> Array:
    """Gaussian blob with peak 1 (anisotropic and rotated if asked)."""
    dx, dy = rotated(X, Y, cx, cy, angle)
    sy = sx if sy is None else sy
    return np.exp(-F32(0.5) * ((dx / F32(sx)) ** 2 + (dy / F32(sy)) ** 2))


def curve_band(Y: Array, centre: Array, half_width: float | Array, edge: float) -> Array:
    """Soft band ``|Y - centre| <= half_width`` around a curve given per pixel (e.g. ``f(X)``)."""
    return ramp(half_width - np.abs(Y - centre), edge)


def polygon(size: int, points: Array, *, edge_px: float = 1.0) -> Array:
    """Soft-edged filled polygon; ``points`` is [K, 2] pixel xy. Even-odd rule, evaluated in its bbox."""
    pts = np.asarray(points, dtype=F32)
    out = np.zeros((size, size), F32)
    x0, y0 = np.floor(pts.min(0)).astype(int) - 2
    x1, y1 = np.ceil(pts.max(0)).astype(int) + 3
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)
    if x1 <= x0 or y1 <= y0:
        return out
    py, px = np.mgrid[y0:y1, x0:x1].astype(F32) + F32(0.5)
    inside = np.zeros(px.shape, bool)
    a, b = pts, np.roll(pts, -1, axis=0)
    for (ax, ay), (bx, by) in zip(a, b):
        crosses = (ay > py) != (by > py)
        xint = ax + (py - ay) * (bx - ax) / (by - ay + F32(1e-12))
        inside ^= crosses & (px < xint)
    out[y0:y1, x0:x1] = inside
    return blur(out, edge_px * 0.5) if edge_px > 0 else out


def polyline(size: int, points: Array, *, width_px: float, closed: bool = False) -> Array:
    """A smooth line of ~``width_px`` through [K, 2] pixel points (tubes, wires, leads), peak ~1.

    Points are densely resampled, splatted and blurred: cost is independent of the line length.
    """
    pts = np.asarray(points, dtype=np.float64)
    if closed:
        pts = np.vstack([pts, pts[:1]])
    seg = np.diff(pts, axis=0)
    lengths = np.hypot(seg[:, 0], seg[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(lengths)])
    t = np.arange(0.0, cum[-1] + 1e-9, 0.35)
    xs = np.interp(t, cum, pts[:, 0])
    ys = np.interp(t, cum, pts[:, 1])
    out = np.zeros((size, size), F32)
    ix, iy = np.round(xs - 0.5).astype(int), np.round(ys - 0.5).astype(int)
    keep = (ix >= 0) & (ix < size) & (iy >= 0) & (iy < size)
    np.add.at(out, (iy[keep], ix[keep]), F32(0.35))
    sigma = max(width_px / 2.355, 0.5)
    out = blur(out, sigma) * F32(np.sqrt(2 * np.pi) * sigma / max(width_px, 1.0) * 1.2)
    return np.clip(out, 0.0, 1.0)


def smooth_curve(rng: np.random.Generator, anchors: Array, *, wobble: float, n: int = 24) -> Array:
    """A gently wobbling path through [K, 2] anchors (pixel), for tubes and lines drawn by hand."""
    anchors = np.asarray(anchors, dtype=np.float64)
    t = np.linspace(0, 1, len(anchors))
    tt = np.linspace(0, 1, n)
    path = np.stack([np.interp(tt, t, anchors[:, 0]), np.interp(tt, t, anchors[:, 1])], 1)
    from scipy import ndimage  # here, not at the top: `xrbench list datasets` imports the loaders

    path += ndimage.gaussian_filter1d(rng.standard_normal((n, 2)), 2.0, axis=0) * wobble
    path[0], path[-1] = anchors[0], anchors[-1]
    return path


@lru_cache(maxsize=16)
def _spectrum(size: int, beta: float, fmin: float, fmax: float) -> Array:
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    amp = 1.0 / np.maximum(f, fmin) ** (beta / 2.0) * np.exp(-(f / fmax) ** 2)
    amp[0, 0] = 0.0
    amp /= np.sqrt((amp ** 2).sum() / size ** 2)
    return amp.astype(np.complex64)


def fractal_noise(rng: np.random.Generator, size: int, beta: float = 2.0, fmin: float = 1 / 64,
                  fmax: float = 1.0) -> tuple[Array, Array]:
    """Two independent zero-mean, unit-std fields with power spectrum ``1/f^beta`` (one inverse FFT).

    Frequencies in cycles/pixel: below ``fmin`` the spectrum is flat (caps the largest structures),
    above ``fmax`` it rolls off (band-limited fields have smooth, line-like zero crossings).
    beta 1-1.5: grainy texture; 2-3: clouds.
    """
    white = np.empty((size, size), np.complex64)
    white.real = rng.standard_normal((size, size), dtype=F32)
    white.imag = rng.standard_normal((size, size), dtype=F32)
    field = np.fft.ifft2(white * _spectrum(size, float(beta), float(fmin), float(fmax)))
    a, b = field.real.astype(F32), field.imag.astype(F32)
    return a / F32(a.std() + 1e-12), b / F32(b.std() + 1e-12)


def blur(img: Array, sigma: float) -> Array:
    from scipy import ndimage

    return ndimage.gaussian_filter(img, sigma, mode="nearest", truncate=3.0) if sigma > 0 else img


def unsharp(img: Array, sigma: float, amount: float) -> Array:
    """Edge enhancement as most radiograph processing applies (``amount`` 0 = none)."""
    return img + F32(amount) * (img - blur(img, sigma)) if amount > 0 else img


def expose(density: Array, *, lo: float, hi: float, gamma: float) -> Array:
    """Display a density map: window [lo, hi] of its range, then gamma (``gamma`` > 1 darkens)."""
    d0, d1 = np.percentile(density[::4, ::4], [1.0, 99.5])
    span = max(d1 - d0, 1e-6)
    a, b = d0 + lo * span, d0 + hi * span
    out = np.clip((density - F32(a)) * F32(1.0 / max(b - a, 1e-6)), 0.0, 1.0)
    return out ** F32(gamma) if gamma != 1.0 else out


def detector_noise(img: Array, rng: np.random.Generator, *, quantum: float, read: float,
                   lines: float = 0.0) -> Array:
    """Signal-dependent (quantum) + signal-independent (read) noise and faint detector row lines.

    With bright = dense, fewer photons reach the detector where the image is bright, so the
    relative quantum noise grows with brightness.
    """
    sd = F32(quantum) * np.sqrt(F32(0.05) + img) + F32(read)
    out = img + sd * rng.standard_normal(img.shape, dtype=F32)
    if lines > 0:
        out += (rng.standard_normal((img.shape[0], 1)) * lines).astype(F32)
    return np.clip(out, 0.0, 1.0)


# A 5x7 bitmap font for the few characters radiograph overlays need (side markers, view, stamps).
_GLYPHS = {
    "A": "01110100011000111111100011000110001", "B": "11110100011000111110100011000111110",
    "C": "01110100011000010000100001000101110", "E": "11111100001000011110100001000011111",
    "I": "01110001000010000100001000010001110", "L": "10000100001000010000100001000011111",
    "N": "10001110011010110011100011000110001", "O": "01110100011000110001100011000101110",
    "P": "11110100011000111110100001000010000", "R": "11110100011000111110101001001010001",
    "S": "01111100001000001110000010000111110", "T": "11111001000010000100001000010000100",
    "U": "10001100011000110001100011000101110", "0": "01110100011001110101110011000101110",
    "1": "00100011000010000100001000010001110", "2": "01110100010000100010001000100011111",
    "3": "11110000010000101110000010000111110", "4": "00010001100101010010111110001000010",
    "5": "11111100001111000001000011000101110", "6": "00110010001000011110100011000101110",
    "7": "11111000010001000100010000100001000", "8": "01110100011000101110100011000101110",
    "9": "01110100011000101111000010001001100", " ": "0" * 35, ":": "00000001000010000000001000010000000",
    "/": "00001000010001000100010001000010000", "-": "00000000000000011111000000000000000",
}


def text(img: Array, s: str, x: int, y: int, *, scale: int = 2, value: float = 1.0) -> tuple[int, int, int, int]:
    """Burn upper-case ``s`` into ``img`` at pixel (x, y) (top-left); returns its xyxy box."""
    size_y, size_x = img.shape
    unknown = sorted(set(s.upper()) - set(_GLYPHS))
    if unknown:
        raise ValueError(f"text(): no glyph for {unknown}; available: {''.join(sorted(_GLYPHS))!r}")
    for k, ch in enumerate(s.upper()):
        bits = np.array([int(b) for b in _GLYPHS[ch]], bool).reshape(7, 5)
        glyph = np.kron(bits, np.ones((scale, scale), bool))
        gx, gy = x + k * 6 * scale, y
        h, w = glyph.shape
        ys, xs = slice(max(gy, 0), min(gy + h, size_y)), slice(max(gx, 0), min(gx + w, size_x))
        sub = glyph[ys.start - gy:ys.stop - gy, xs.start - gx:xs.stop - gx]
        img[ys, xs] = np.where(sub, F32(value), img[ys, xs])
    return x, y, x + len(s) * 6 * scale - scale, y + 7 * scale


def bbox(mask: Array) -> tuple[float, float, float, float] | None:
    """Pixel xyxy box (x1/y1 exclusive edges) of a boolean mask, or None when it is empty."""
    rows = np.flatnonzero(mask.any(1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(0))
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)

"""Turning a [0,1] radiograph into an encoder's input, from the encoder's metadata alone.

Pad to square (never crop: costophrenic angles and film edges carry findings), resize with
antialiasing, replicate grey to the encoder's channels, map to its value range, normalise.
The geometry is returned so that boxes, masks and landmarks follow the same transform.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from xrbench.models.base import EncoderMeta


@dataclass(frozen=True)
class Geometry:
    """original (h, w) -> padded square of side ``side`` (offsets ``top``, ``left``) -> ``size``."""

    height: int
    width: int
    side: int
    top: int
    left: int
    size: int

    @property
    def scale(self) -> float:
        return self.size / self.side

    def to_input(self, xy: np.ndarray) -> np.ndarray:
        """Pixel xy of the original image -> pixel xy of the encoder input."""
        xy = np.asarray(xy, dtype=np.float64)
        return (xy + np.array([self.left, self.top])) * self.scale

    def to_original(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64)
        return xy / self.scale - np.array([self.left, self.top])

    def to_grid(self, xy: np.ndarray, grid_hw: tuple[int, int]) -> np.ndarray:
        """Pixel xy of the original image -> continuous xy on an h x w grid over the input, where
        cell (gy, gx) spans ``[gx, gx + 1) x [gy, gy + 1)`` (input pixels ``[gx*size/w, ...)``)."""
        gh, gw = grid_hw
        return self.to_input(xy) * np.array([gw / self.size, gh / self.size])

    def from_grid(self, xy: np.ndarray, grid_hw: tuple[int, int]) -> np.ndarray:
        """Continuous grid xy (see :meth:`to_grid`) -> pixel xy of the original image."""
        gh, gw = grid_hw
        return self.to_original(np.asarray(xy, dtype=np.float64) * np.array([self.size / gw, self.size / gh]))


def pad_geometry(height: int, width: int, size: int) -> Geometry:
    side = max(height, width)
    return Geometry(height, width, side, (side - height) // 2, (side - width) // 2, size)


def to_input_tensor(img01: np.ndarray, meta: EncoderMeta) -> tuple[torch.Tensor, Geometry]:
    """[H, W] float image in [0, 1] -> [C, S, S] normalised tensor and its geometry."""
    h, w = img01.shape
    geo = pad_geometry(h, w, meta.input_size)
    x = torch.from_numpy(np.ascontiguousarray(img01, dtype=np.float32))
    x = F.pad(x, (geo.left, geo.side - w - geo.left, geo.top, geo.side - h - geo.top))
    x = F.interpolate(x[None, None], size=(geo.size, geo.size), mode="bilinear",
                      antialias=True, align_corners=False)[0]
    lo, hi = meta.value_range
    x = x.clamp(0, 1) * (hi - lo) + lo
    x = x.expand(meta.in_chans, -1, -1)
    mean = torch.tensor(meta.mean, dtype=torch.float32)[:, None, None]
    std = torch.tensor(meta.std, dtype=torch.float32)[:, None, None]
    return (x - mean) / std, geo

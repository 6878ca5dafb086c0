"""`--data shapes`: 64x64 binary images of simple shapes with five independent factors, made here, offline.

The factors and their grids follow dSprites (Matthey et al. 2017, which cannot be downloaded here): shape
(square, ellipse, heart), scale (6 values in 0.5..1), rotation (40 angles in [0, 2 pi)), x and y (32 positions
each). Every example draws each factor's index uniformly and independently of the others, from a fixed seed,
so `n` examples are the same on every machine; the factor indices are the labels.
"""

from __future__ import annotations

import numpy as np

SIZE = 64  # pixels per side
FACTOR_NAMES = ("shape", "scale", "rotation", "x", "y")
SHAPE_NAMES = ("square", "ellipse", "heart")
FACTOR_SIZES = (len(SHAPE_NAMES), 6, 40, 32, 32)
DEFAULT_EXAMPLES = 20_000  # 328 MB as float32: a few minutes of training on two CPU cores per epoch at most
HALF_SIZE = 10.0  # pixels from a shape's centre to its side at scale 1
_SEED = 20170301  # the one stream every copy of the dataset draws from
_CHUNK = 2048  # examples rendered at a time: (chunk, 64, 64) float arrays


def factor_values() -> tuple[np.ndarray, ...]:
    """Each factor's grid of values: shape index, scale, rotation (radians), x and y (pixels of the centre)."""
    margin = HALF_SIZE * np.sqrt(2)  # a rotated square at full scale stays inside the image
    return (np.arange(FACTOR_SIZES[0], dtype=np.float64), np.linspace(0.5, 1.0, FACTOR_SIZES[1]),
            np.arange(FACTOR_SIZES[2]) * (2 * np.pi / FACTOR_SIZES[2]),
            np.linspace(margin, SIZE - margin, FACTOR_SIZES[3]), np.linspace(margin, SIZE - margin, FACTOR_SIZES[4]))


def draw_factors(n: int, seed: int = _SEED) -> np.ndarray:
    """Factor indices (n, 5), each column uniform over its grid and independent of the others."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, size, n) for size in FACTOR_SIZES], axis=1).astype(np.int64)


def _square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v)) <= 1


def _ellipse(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u * u + (v / 0.6) ** 2 <= 1


def _heart(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    x, y = 1.15 * u, 0.1 - 1.15 * v  # the curve (x^2 + y^2 - 1)^3 = x^2 y^3, point down in the image, centred
    x2 = x * x
    return (x2 + y * y - 1) ** 3 <= x2 * y ** 3


_INSIDE = (_square, _ellipse, _heart)  # shape index -> whether points (u, v) of its frame (side at +-1) are inside


def render(factors: np.ndarray) -> np.ndarray:
    """Binary images (n, 1, 64, 64) float32 of factor indices (n, 5)."""
    _, scales, angles, xs, ys = (g.astype(np.float32) for g in factor_values())
    centre = np.arange(SIZE, dtype=np.float32) + 0.5  # pixel centres
    px, py = centre[None, None, :], centre[None, :, None]
    out = np.empty((len(factors), 1, SIZE, SIZE), np.float32)
    for start in range(0, len(factors), _CHUNK):
        f = factors[start:start + _CHUNK]
        for shape, inside in enumerate(_INSIDE):
            rows = np.flatnonzero(f[:, 0] == shape)
            scale, angle, x, y = (grid[f[rows, i]][:, None, None]
                                  for i, grid in enumerate((scales, angles, xs, ys), start=1))
            dx, dy = px - x, py - y  # (rows, 64, 64)
            cos, sin = np.cos(angle) / (HALF_SIZE * scale), np.sin(angle) / (HALF_SIZE * scale)
            out[start + rows, 0] = inside(cos * dx + sin * dy, cos * dy - sin * dx)  # rotated by -angle
    return out


def make_shapes(n: int = DEFAULT_EXAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, 1, 64, 64) float32 in {0, 1}, factor indices (n, 5) int64), the same for every call."""
    factors = draw_factors(n)
    return render(factors), factors

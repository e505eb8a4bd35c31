"""Implicit shapes: signed distances (mm, negative inside) evaluated on point arrays (N, 3).

The distances are exact for spheres, segments and planes and close to exact for the scaled shapes;
only their sign defines labels (so labels are exact at voxel centres), their value shapes the
partial-volume ramp of the CT.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


def ellipsoid(p: np.ndarray, centre: np.ndarray, radii: np.ndarray, axes: np.ndarray | None = None) -> np.ndarray:
    """Ellipsoid with semi-axes `radii` along the columns of `axes` (identity by default)."""
    q = p - centre
    if axes is not None:
        q = q @ axes
    e = np.sqrt(np.sum((q / radii) ** 2, axis=-1))
    return (e - 1.0) * float(np.min(radii))


def ellipsoid_inside(
    p: np.ndarray, centre: np.ndarray, radii: np.ndarray, axes: np.ndarray | None = None
) -> np.ndarray:
    q = p - centre
    if axes is not None:
        q = q @ axes
    return np.sum((q / radii) ** 2, axis=-1) <= 1.0


def capsule(
    p: np.ndarray, a: np.ndarray, b: np.ndarray, r1: float, r2: float | None = None, n1: np.ndarray | None = None
) -> np.ndarray:
    """Segment a-b swept by an ellipse of radii r1 (along n1) and r2 (along the third axis)."""
    r2 = r1 if r2 is None else r2
    ab = b - a
    length = float(np.linalg.norm(ab))
    t_axis = ab / length
    if n1 is None:
        helper = np.array([1.0, 0.0, 0.0]) if abs(t_axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        n1 = np.cross(t_axis, helper)
    n1 = n1 - np.dot(n1, t_axis) * t_axis
    n1 = n1 / np.linalg.norm(n1)
    n2 = np.cross(t_axis, n1)
    q = p - a
    t = q @ t_axis
    tc = np.clip(t, 0.0, length)
    rmin = min(r1, r2)
    d = np.sqrt((q @ n1 / r1) ** 2 + (q @ n2 / r2) ** 2 + ((t - tc) / rmin) ** 2)
    return (d - 1.0) * rmin


def polyline_tube(p: np.ndarray, points: np.ndarray, r1: float, r2: float, n1: np.ndarray) -> np.ndarray:
    """Union of capsules along a polyline."""
    out = np.full(len(p), np.inf, dtype=np.float32)
    for a, b in itertools.pairwise(points):
        out = np.minimum(out, capsule(p, a, b, r1, r2, n1))
    return out


def box(p: np.ndarray, centre: np.ndarray, half: np.ndarray, rounding: float = 0.0) -> np.ndarray:
    """Axis-aligned (local frame) box with optional rounded edges."""
    q = np.abs(p - centre) - (half - rounding)
    outside = np.linalg.norm(np.maximum(q, 0.0), axis=-1)
    inside = np.minimum(np.max(q, axis=-1), 0.0)
    return outside + inside - rounding


@dataclass(frozen=True)
class Frame:
    """A local right-handed frame: origin and unit axes u (patient left), v (posterior), w (cranial)
    as the columns of `axes`, all in world (RAS) millimetres."""

    origin: np.ndarray
    axes: np.ndarray

    @property
    def u(self) -> np.ndarray:
        return self.axes[:, 0]

    @property
    def v(self) -> np.ndarray:
        return self.axes[:, 1]

    @property
    def w(self) -> np.ndarray:
        return self.axes[:, 2]

    def to_local(self, xyz: np.ndarray) -> np.ndarray:
        return (xyz - self.origin) @ self.axes

    def to_world(self, uvw: np.ndarray) -> np.ndarray:
        return np.asarray(uvw) @ self.axes.T + self.origin


def rot_x(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def fibonacci_sphere(n: int) -> np.ndarray:
    """n nearly uniform unit vectors (for containment checks on surfaces)."""
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5**0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1)

"""Typical adult vertebral dimensions (mm) and sagittal curve, interpolated between key levels.

Approximate means from morphometric studies (Panjabi et al., Spine 1991/1992; Zhou et al., Eur
Spine J 2000), rounded; the phantom randomises them per patient and per level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..anatomy import normal_tilt

#: Key rows: level, body height H, width W, depth D, disc height below, canal width, canal depth,
#: pedicle width, pedicle height, spinous length, spinous caudal angle (deg), transverse length.
_KEY_ROWS: tuple[tuple, ...] = (
    ("C2", 16, 17, 15, 5.0, 24, 15, 5, 7, 14, 15, 8),
    ("C3", 14, 17, 15, 5.0, 24, 14, 5, 7, 14, 15, 10),
    ("C7", 15, 23, 16, 5.0, 23, 14, 6, 8, 28, 20, 14),
    ("T1", 16, 26, 17, 4.0, 18, 14, 7, 10, 30, 35, 22),
    ("T6", 19, 28, 25, 4.5, 16, 15, 5, 12, 38, 60, 22),
    ("T12", 24, 40, 30, 7.0, 20, 16, 8, 15, 30, 15, 10),
    ("L1", 26, 42, 31, 9.0, 22, 17, 8, 15, 30, 5, 18),
    ("L3", 27, 46, 33, 11.0, 23, 16, 10, 15, 30, 0, 28),
    ("L5", 27, 50, 35, 12.0, 25, 16, 15, 14, 25, -5, 24),
    ("S1", 28, 50, 35, 0.0, 26, 14, 16, 14, 18, -10, 0),
)


#: Chest (rib cage) half-widths and half-depths (mm) by thoracic level, for ribs and lungs.
_CHEST: dict[str, tuple[float, float]] = {
    "T1": (55, 40), "T2": (80, 60), "T3": (100, 75), "T4": (115, 85), "T5": (125, 92),
    "T6": (132, 98), "T7": (137, 102), "T8": (140, 105), "T9": (140, 105), "T10": (138, 104),
    "T11": (132, 100), "T12": (125, 95), "T13": (120, 92),
}  # fmt: skip


@dataclass(frozen=True)
class LevelDims:
    """Nominal dimensions of one vertebra (mm, degrees)."""

    height: float
    width: float
    depth: float
    disc_below: float
    canal_width: float
    canal_depth: float
    pedicle_width: float
    pedicle_height: float
    spinous_length: float
    spinous_angle: float
    transverse_length: float


_ORDER: tuple[str, ...] = tuple(
    [f"C{i}" for i in range(1, 8)] + [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)] + ["S1"]
)


def _position(level: str) -> float:
    """Position of a level on the standard C1..S1 scale (transitional levels halfway)."""
    if level == "T13":
        return _ORDER.index("T12") + 0.5
    if level == "L6":
        return _ORDER.index("L5") + 0.5
    return float(_ORDER.index(level))


def level_dims(level: str) -> LevelDims:
    """Interpolated nominal dimensions of `level`."""
    pos = _position(level)
    keys = np.array([_ORDER.index(r[0]) for r in _KEY_ROWS], dtype=float)
    values = np.array([r[1:] for r in _KEY_ROWS], dtype=float)
    row = [float(np.interp(pos, keys, values[:, c])) for c in range(values.shape[1])]
    return LevelDims(*row)


def level_tilt(level: str) -> float:
    """Natural sagittal tilt (deg) of a level's axis (the normative curve of `anatomy`)."""
    return normal_tilt(level)


def chest_size(level: str) -> tuple[float, float]:
    """Half-width and half-depth (mm) of the rib cage at a thoracic level."""
    return _CHEST[level]


def chest_profile(position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rib-cage half-width and half-depth along the column (`position`: C1 = 0, T1 = 7, ...)."""
    levels = [f"T{i}" for i in range(1, 13)]
    keys = np.array([_position(lv) for lv in levels])
    rx = np.interp(position, keys, [_CHEST[lv][0] for lv in levels])
    ry = np.interp(position, keys, [_CHEST[lv][1] for lv in levels])
    return rx, ry

"""Place the vertebrae of a phantom: level list, sizes, natural curve, pathology, field of view.

The column is stacked from the sacrum upwards. Each vertebra hangs on the one below at the
posterior-inferior midline corner of its body, so that without a translation the posterior walls
line up exactly (and the inferior endplate centre sits over the superior endplate centre): any
translation or de novo angle in the truth is exactly the one put in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..anatomy import level_index
from . import shapes
from .spec import PhantomSpec
from .tables import LevelDims, level_dims, level_tilt
from .vertebra import Vertebra

#: Margin (mm) added above/below a fully included end vertebra.
_FOV_MARGIN = 12.0
#: Extra field of view below S1 when the sacrum is the last level (pelvis, hips).
_PELVIS_BELOW = 110.0


def level_list(spec: PhantomSpec) -> list[str]:
    """All levels of this patient, cranial to caudal (with transitional T13/L6 if asked)."""
    levels = [f"C{i}" for i in range(1, 8)] + [f"T{i}" for i in range(1, spec.thoracic_count + 1)]
    levels += [f"L{i}" for i in range(1, spec.lumbar_count + 1)] + ["S1"]
    return levels


@dataclass(frozen=True)
class Layout:
    """Vertebrae in world (RAS mm) and the field of view box."""

    vertebrae: tuple[Vertebra, ...]  # cranial to caudal, all levels of the patient
    rotation: np.ndarray  # patient -> world rotation
    fov_min: np.ndarray  # world mm, box of voxel edges
    fov_max: np.ndarray
    disc_heights: dict[str, float]  # level -> disc height below it (mm, nominal)
    kyphosis_departure: dict[str, float]  # truth: de novo sagittal departure across each level
    scoliosis_departure: dict[str, float]

    def by_level(self, level: str) -> Vertebra:
        for v in self.vertebrae:
            if v.level == level:
                return v
        raise KeyError(level)

    def index_of(self, level: str) -> int:
        return [v.level for v in self.vertebrae].index(level)


def _scaled_dims(level: str, scale: float, jitter: float) -> LevelDims:
    d = level_dims(level)
    s = scale * jitter
    return LevelDims(
        height=d.height * s, width=d.width * s, depth=d.depth * s, disc_below=d.disc_below * scale,
        canal_width=d.canal_width * scale, canal_depth=d.canal_depth * scale,
        pedicle_width=d.pedicle_width * s, pedicle_height=d.pedicle_height * s,
        spinous_length=d.spinous_length * scale, spinous_angle=d.spinous_angle,
        transverse_length=d.transverse_length * scale,
    )  # fmt: skip


def build_layout(spec: PhantomSpec, rng: np.random.Generator) -> Layout:
    """Stack the column and choose the field of view (deterministic for `rng`)."""
    levels = level_list(spec)
    collapse = {c.level: c for c in spec.collapses}
    translation = {t.level: t for t in spec.translations}
    deformity = {d.level: d for d in spec.deformities}
    for lv in list(collapse) + list(translation) + list(deformity) + [le.level for le in spec.lesions]:
        if lv not in levels:
            raise ValueError(f"pathology at {lv}, which this phantom (levels {levels[0]}..{levels[-1]}) lacks")

    # extra tilt (de novo) accumulated from below: half of each deformity at each of its two discs
    n = len(levels)
    extra_k = np.zeros(n)
    extra_s = np.zeros(n)
    for lv, d in deformity.items():
        i = levels.index(lv)
        extra_k[: i + 1] += d.kyphosis_deg / 2  # disc below the level: the level and all above
        extra_k[:i] += d.kyphosis_deg / 2  # disc above the level: all above
        extra_s[: i + 1] += d.scoliosis_deg / 2
        extra_s[:i] += d.scoliosis_deg / 2
    kyph_dep = {lv: 0.0 for lv in levels}
    scol_dep = {lv: 0.0 for lv in levels}
    for lv, d in deformity.items():
        i = levels.index(lv)
        kyph_dep[lv] += d.kyphosis_deg
        scol_dep[lv] += d.scoliosis_deg
        for j in (i - 1, i + 1):
            if 0 <= j < n:
                kyph_dep[levels[j]] += d.kyphosis_deg / 2
                scol_dep[levels[j]] += d.scoliosis_deg / 2

    rot = shapes.rot_z(spec.rotation_deg[0]) @ shapes.rot_x(spec.rotation_deg[1]) @ shapes.rot_y(spec.rotation_deg[2])
    base = np.array([[-1.0, 0, 0], [0, -1.0, 0], [0, 0, 1.0]])  # columns: left, posterior, cranial
    tilt_jitter = rng.normal(0.0, 0.8, n)
    size_jitter = 1.0 + rng.normal(0.0, 0.015, n)

    verts: list[Vertebra | None] = [None] * n
    discs: dict[str, float] = {}
    prev: Vertebra | None = None
    prev_phi = 0.0
    for i in range(n - 1, -1, -1):  # from the sacrum upwards
        lv = levels[i]
        dims = _scaled_dims(lv, spec.size_scale, float(size_jitter[i]))
        phi = level_tilt(lv) * spec.curve_scale + tilt_jitter[i] + extra_k[i]
        psi = extra_s[i]
        axes = rot @ shapes.rot_x(-phi) @ shapes.rot_y(-psi) @ base
        v = Vertebra(lv, dims, shapes.Frame(np.zeros(3), axes), collapse.get(lv), has_body=lv != "C1")
        if prev is None:
            origin = np.zeros(3)
        else:
            disc = dims.disc_below
            discs[lv] = disc
            dphi = np.deg2rad(phi - prev_phi)
            g_post = max(1.0, disc + prev.depth / 2 * np.sin(dphi))
            b_low = prev.frame.to_world(prev.corner_posterior(top=True))
            anchor = b_low + prev.frame.w * g_post
            t = translation.get(lv)
            if t is not None:
                anchor = anchor - prev.frame.v * t.ap_mm + prev.frame.u * t.lr_mm
            origin = anchor - axes @ v.corner_posterior(top=False)
        v = replace(v, frame=shapes.Frame(origin, axes))
        verts[i] = v
        prev, prev_phi = v, phi
    vertebrae = tuple(v for v in verts if v is not None)

    # field of view (world box, axis-aligned): along z from the cut of the end vertebrae
    top_v = vertebrae[levels.index(spec.top)]
    bot_v = vertebrae[levels.index(spec.bottom)]
    z_top = _body_z_at(top_v, 1.0 - spec.top_cut, from_top=True)
    z_bot = _body_z_at(bot_v, 1.0 - spec.bottom_cut, from_top=False)
    if spec.top_cut >= 1.0:
        z_top += _FOV_MARGIN
    if spec.bottom_cut >= 1.0:
        z_bot -= _PELVIS_BELOW if spec.bottom == "S1" else _FOV_MARGIN
    span = [v for v in vertebrae if level_index(spec.top) <= level_index(v.level) <= level_index(spec.bottom)]
    centres = np.array([v.frame.origin for v in span])
    cx = float(np.mean(centres[:, 0]))
    cy = float(np.mean(centres[:, 1])) + 0.15 * spec.inplane_fov_mm[1]  # spine in the back third
    half = np.array(spec.inplane_fov_mm) / 2
    fov_min = np.array([cx - half[0], cy - half[1], z_bot])
    fov_max = np.array([cx + half[0], cy + half[1], z_top])
    return Layout(vertebrae, rot, fov_min, fov_max, discs, kyph_dep, scol_dep)


def _body_z_at(v: Vertebra, share: float, from_top: bool) -> float:
    """World z of the plane that leaves `share` of the body height outside (0: the endplate)."""
    h = v.nominal_height
    w = h / 2 - share * h if from_top else -h / 2 + share * h
    pts = v.frame.to_world(np.array([[0.0, 0.0, w]]))
    return float(pts[0, 2])


def body_surface_points(v: Vertebra, n: int = 400) -> np.ndarray:
    """World points on the body surface (for containment in the field of view)."""
    a, b, v0 = v._ellipse()
    dirs = shapes.fibonacci_sphere(n)
    u = dirs[:, 0] * a
    vv = np.minimum(v0 + dirs[:, 1] * b, v.depth / 2)
    bot, top = v.endplates(u, vv)
    w = np.where(dirs[:, 2] > 0, top, bot)
    return v.frame.to_world(np.stack([u, vv, w], axis=1))


def is_complete(v: Vertebra, fov_min: np.ndarray, fov_max: np.ndarray) -> bool:
    """The whole body lies inside the field of view."""
    if not v.has_body:
        return False
    pts = body_surface_points(v)
    return bool(np.all(pts >= fov_min) and np.all(pts <= fov_max))


def in_view(v: Vertebra, fov_min: np.ndarray, fov_max: np.ndarray) -> bool:
    """Any part of the body (or C1's ring) lies inside the field of view."""
    pts = body_surface_points(v) if v.has_body else v.frame.to_world(np.zeros((1, 3)))
    inside = np.all((pts >= fov_min) & (pts <= fov_max), axis=1)
    return bool(np.any(inside))

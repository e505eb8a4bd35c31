"""Image planes for the report, computed on the canonical (RAS) grid: pure numpy, no drawing.

- `spine_reformats`: curved mid-sagittal and mid-coronal planes that follow the vertebral bodies
  slice by slice (a scoliotic or rotated spine stays in view), the CT averaged over a thin slab,
  the segmentation on the plane itself, lesions projected through the whole volume (a lesion off
  the midline, e.g. in a pedicle, still shows).
- `body_planes`: oblique planes in one vertebra's own frame (u left, v posterior, w cranial), the
  frame its heights were measured in, so the height lines drawn on them are exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..anatomy import HEIGHT_POSITIONS, Anatomy, Lesion
from ..spine.geometry import BodyGeometry

#: Bone window (HU): centre, width.
BONE_WINDOW = (400.0, 1800.0)


def window(hu: np.ndarray, centre: float = BONE_WINDOW[0], width: float = BONE_WINDOW[1]) -> np.ndarray:
    """Grey values 0..1 of a CT window."""
    lo = centre - width / 2
    return np.clip((np.asarray(hu, dtype=np.float32) - lo) / width, 0.0, 1.0)


@dataclass(frozen=True)
class Plane:
    """A 2D view: arrays indexed [row, column], row 0 at the top; `extent` in mm for imshow
    (left, right, bottom, top)."""

    grey: np.ndarray  # 0..1
    seg: np.ndarray  # label ids on the plane
    lytic: np.ndarray  # bool
    blastic: np.ndarray  # bool
    extent: tuple[float, float, float, float]


def _fill_track(values: np.ndarray, ok: np.ndarray, smooth: int) -> np.ndarray:
    """Interpolate a per-slice track over the slices without bodies and smooth it."""
    k = np.arange(values.size)
    if not ok.any():
        return np.full(values.size, np.nan)
    filled = np.interp(k, k[ok], values[ok])
    return ndimage.uniform_filter1d(filled, max(1, smooth), mode="nearest")


def body_track(anatomy: np.ndarray, instances: np.ndarray, spacing, smooth_mm: float = 15.0) -> np.ndarray:
    """(K, 2): i and j of the vertebral bodies' centre in each axial slice k (interpolated)."""
    body = (anatomy == Anatomy.VERTEBRAL_BODY) & (instances > 0)
    if not body.any():
        body = instances > 0
    per_ik = body.sum(axis=1, dtype=np.int64)  # (I, K) voxel counts: no full-size temporaries
    per_jk = body.sum(axis=0, dtype=np.int64)  # (J, K)
    count = per_ik.sum(axis=0).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        ci = (per_ik * np.arange(body.shape[0])[:, None]).sum(axis=0) / count
        cj = (per_jk * np.arange(body.shape[1])[:, None]).sum(axis=0) / count
    ok = count > 0
    smooth = round(smooth_mm / spacing[2])
    ti, tj = _fill_track(ci, ok, smooth), _fill_track(cj, ok, smooth)
    if np.isnan(ti).all():  # no vertebra: the middle of the image
        ti = np.full(body.shape[2], (body.shape[0] - 1) / 2)
        tj = np.full(body.shape[2], (body.shape[1] - 1) / 2)
    return np.stack([ti, tj], axis=1)


def spine_reformats(
    ct: np.ndarray,
    seg: np.ndarray,
    lesions: np.ndarray,
    track: np.ndarray,
    spacing,
    slab_mm: float = 3.0,
) -> tuple[Plane, Plane]:
    """(sagittal, coronal) planes along `track` (see module docstring).

    Sagittal: columns run anterior (left) to posterior (right); coronal: the patient's right on the
    viewer's left (radiological convention); rows run superior (top) to inferior.
    """
    ni, nj, nk = ct.shape
    si, sj, sk = spacing
    k = np.arange(nk)
    half_i = max(0, round(slab_mm / 2 / si))
    half_j = max(0, round(slab_mm / 2 / sj))
    ti = np.clip(np.rint(track[:, 0]).astype(int), 0, ni - 1)
    tj = np.clip(np.rint(track[:, 1]).astype(int), 0, nj - 1)

    sag = np.mean([ct[np.clip(ti + d, 0, ni - 1), :, k] for d in range(-half_i, half_i + 1)], axis=0)  # (K, J)
    cor = np.mean([ct[:, np.clip(tj + d, 0, nj - 1), k] for d in range(-half_j, half_j + 1)], axis=0)  # (I, K)
    lytic, blastic = lesions == Lesion.LYTIC, lesions == Lesion.BLASTIC

    def sagittal(a: np.ndarray) -> np.ndarray:  # (K, J) -> rows superior first, anterior on the left
        return a[::-1, ::-1]

    def coronal(a: np.ndarray) -> np.ndarray:  # (I, K) -> rows superior first, patient's right on the left
        return a.T[::-1, ::-1]

    sag_plane = Plane(
        window(sagittal(sag)),
        sagittal(seg[ti, :, k]),
        sagittal(lytic.any(axis=0).T),
        sagittal(blastic.any(axis=0).T),
        (0.0, nj * sj, 0.0, nk * sk),
    )
    cor_plane = Plane(
        window(coronal(cor)),
        coronal(seg[:, tj, k]),
        coronal(lytic.any(axis=1)),
        coronal(blastic.any(axis=1)),
        (0.0, ni * si, 0.0, nk * sk),
    )
    return sag_plane, cor_plane


def sagittal_xy(ijk: np.ndarray, shape, spacing) -> tuple[float, float]:
    """Where a canonical index point falls on the sagittal plane of `spine_reformats` (mm)."""
    nj = shape[1]
    return float((nj - 1 - ijk[1] + 0.5) * spacing[1]), float((ijk[2] + 0.5) * spacing[2])


def coronal_xy(ijk: np.ndarray, shape, spacing) -> tuple[float, float]:
    """Where a canonical index point falls on the coronal plane of `spine_reformats` (mm)."""
    ni = shape[0]
    return float((ni - 1 - ijk[0] + 0.5) * spacing[0]), float((ijk[2] + 0.5) * spacing[2])


# ---------------------------------------------------------------- planes in a vertebra's frame
def _sample(volume: np.ndarray, inv_affine: np.ndarray, world: np.ndarray, order: int, cval: float) -> np.ndarray:
    ijk = world @ inv_affine[:3, :3].T + inv_affine[:3, 3]
    flat = ijk.reshape(-1, 3).T
    out = ndimage.map_coordinates(volume, flat, order=order, mode="constant", cval=cval)
    return out.reshape(world.shape[:-1])


@dataclass(frozen=True)
class BodyPlanes:
    """A vertebra's mid-sagittal (x = v posterior, y = w cranial) and axial (x = u patient's left,
    y = -v anterior) planes, both through the body centre; coordinates in mm of the body frame."""

    sagittal: Plane
    axial: Plane
    height_lines: tuple[tuple[float, float, float], ...]  # (v, w_bottom, w_top) of the three heights
    mid_u: float


def body_planes(
    geo: BodyGeometry,
    ct: np.ndarray,
    seg: np.ndarray,
    lesions: np.ndarray,
    affine: np.ndarray,
    half_mm: float = 45.0,
    step_mm: float = 0.5,
) -> BodyPlanes:
    """Planes in the body frame (see `BodyPlanes`); lesions projected over the body's height
    (axial) and over the body's width (sagittal)."""
    inv = np.linalg.inv(affine)
    xs = np.arange(-half_mm, half_mm + step_mm / 2, step_mm)
    ys = xs[::-1]  # rows: top first
    ext = (float(xs[0]), float(xs[-1]), float(ys[-1]), float(ys[0]))
    f = geo.frame

    def world(u, v, w) -> np.ndarray:
        return geo.centre + u[..., None] * f[:, 0] + v[..., None] * f[:, 1] + w[..., None] * f[:, 2]

    # sagittal: columns v (posterior to the right), rows w (cranial up); the plane u = mid_u
    vv, ww = np.meshgrid(xs, ys)
    uu = np.full_like(vv, geo.mid_u)
    pts = world(uu, vv, ww)
    grey = window(_sample(ct, inv, pts, 1, -1000.0))
    sseg = _sample(seg, inv, pts, 0, 0)
    lyt = np.zeros(vv.shape, bool)
    bla = np.zeros(vv.shape, bool)
    for du in np.arange(-20.0, 20.0 + 1e-6, 1.0):
        lab = _sample(lesions, inv, world(uu + du, vv, ww), 0, 0)
        lyt |= lab == Lesion.LYTIC
        bla |= lab == Lesion.BLASTIC
    sag = Plane(grey, sseg, lyt, bla, ext)

    # axial: columns u (patient's left to the right: radiological), rows -v (anterior up); plane w = 0
    uu, nv = np.meshgrid(xs, ys)
    vv = -nv
    pts = world(uu, vv, np.zeros_like(uu))
    grey = window(_sample(ct, inv, pts, 1, -1000.0))
    aseg = _sample(seg, inv, pts, 0, 0)
    lyt = np.zeros(uu.shape, bool)
    bla = np.zeros(uu.shape, bool)
    lo, hi = (-15.0, 15.0)
    if geo.ends is not None:
        lo, hi = min(e[0] for e in geo.ends), max(e[1] for e in geo.ends)
    for w in np.arange(lo, hi + 1e-6, 1.0):
        lab = _sample(lesions, inv, world(uu, vv, np.full_like(uu, w)), 0, 0)
        lyt |= lab == Lesion.LYTIC
        bla |= lab == Lesion.BLASTIC
    ax = Plane(grey, aseg, lyt, bla, ext)

    lines: tuple[tuple[float, float, float], ...] = ()
    if geo.ends is not None:
        lines = tuple(
            (geo.front + share * geo.depth, lo_, hi_)
            for share, (lo_, hi_) in zip(HEIGHT_POSITIONS, geo.ends, strict=True)
        )
    return BodyPlanes(sag, ax, lines, geo.mid_u)

"""Split a whole-vertebra mask into vertebral body and posterior elements, using the spinal canal.

Label maps from other tools (VerSe, TotalSegmentator) give one mask per vertebra. This module cuts
it geometrically, in world millimetres (any orientation or voxel spacing):

1. Frame: w = the cranio-caudal axis (given, or estimated: world +S refined so that the body's
   footprint along w is smallest, i.e. w runs along the body's cylinder axis); v = the image's
   anterior->posterior direction made orthogonal to w; u = v x w completes it.
2. The vertebra is projected along w onto a 2-D (u, v) grid (voxels are super-sampled so that
   thick slices leave no gaps). The vertebral foramen (canal) is the hole of that projection
   enclosed by the arch, behind the body; when the arch is open the projection is first closed
   morphologically, and failing that the canal is taken as the midline notch behind the body.
3. Body = the projection in front of the canal's anterior margin (plus a small margin), the
   component that holds the body seed (thickest point of the projection), bounded laterally by the
   width of the part clearly in front of the canal (so pedicles and transverse processes beside the
   canal go to the posterior elements). Each voxel is labelled by where its centre projects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull

# --------------------------------------------------------------------------- geometric constants
#: Pixel size (mm) of the 2-D projection along the cranio-caudal axis.
GRID_MM = 0.5
#: The body seed is the most anterior point whose depth inside the projection is at least this share of
#: the deepest (the body is the thickest part; a truncated slab may tie it with a pedicle).
SEED_THICKNESS_SHARE = 0.8
#: Smallest hole area (mm²) accepted as the vertebral foramen (a thick-slice canal can shrink to a
#: few pixels; the smallest adult canal is ~150 mm²).
MIN_CANAL_AREA_MM2 = 9.0
#: The canal lies behind the body: its centroid must be within this angle (deg) of the posterior
#: direction seen from the body seed.
CANAL_CONE_DEG = 50.0
#: Radii (mm) of the morphological closings tried, in order, when the arch does not close.
CLOSING_RADII_MM = (1.5, 3.0, 4.5, 6.0)
#: The canal's anterior margin is read on this central share of its width (its lateral recesses can
#: reach in front of the body's posterior wall).
CANAL_CENTRAL_SHARE = 0.5
#: The body reaches this far (mm) behind the canal's anterior margin (posterior wall thickness
#: rounding, the margin drawn at the pixel edge).
BODY_MARGIN_MM = 0.0
#: Band (mm in front of the canal's anterior margin) where the body's width is measured.
WIDTH_BAND_MM = (4.0, 12.0)
#: Lateral slack (mm) added to the body's measured width.
WIDTH_MARGIN_MM = 1.0
#: Half-width (mm) of the midline strip searched for the notch when no canal hole is found.
MIDLINE_HALF_WIDTH_MM = 3.0
#: Assumed canal half-depth (mm) when only its anterior margin is known (fallback).
FALLBACK_CANAL_HALF_DEPTH_MM = 8.0
#: Ring (mm) around the canal whose voxels give the canal centroid's cranio-caudal position.
CANAL_RING_MM = 4.0
#: Mirror-symmetry search for the mid-sagittal line (axial rotation): largest rotation from the image's
#: AP direction (deg), largest offset from the canal centroid (mm), coarse-to-fine (angle deg, offset
#: mm) steps, and the number of projection points scored.
SYMMETRY_MAX_DEG = 40.0
SYMMETRY_SHIFT_MM = 6.0
SYMMETRY_STEPS = ((5.0, 2.0), (1.0, 0.5))
SYMMETRY_POINTS = 3000
#: Axis estimation: largest tilt (deg) from the prior axis searched, and the search steps (deg).
AXIS_MAX_TILT_DEG = 45.0
AXIS_STEPS_DEG = (6.0, 2.0, 0.5)


@dataclass(frozen=True)
class SplitResult:
    """Body / posterior-elements split of one vertebra mask.

    body: bool, same shape as the mask. posterior: mask & ~body.
    canal_centroid: world mm (RAS) of the vertebral foramen centroid.
    ap_axis: unit vector (world) from the body towards the canal (posterior).
    notes: remarks, e.g. when the canal was not found and the split is a rough fallback.
    """

    body: np.ndarray
    posterior: np.ndarray
    canal_centroid: np.ndarray
    ap_axis: np.ndarray
    notes: tuple[str, ...]
    cc_axis: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 1.0]))


@dataclass(frozen=True)
class _Canal:
    pixels: np.ndarray  # bool image, the foramen (or its stand-in) in the projection
    method: str  # "hole", "closing", "notch"


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    n = float(np.linalg.norm(x))
    if not np.isfinite(n) or n == 0:
        raise ValueError(f"axis must be a non-zero finite vector, got {x}")
    return x / n


def _frame(w: np.ndarray) -> np.ndarray:
    """Columns u, v, w: v = world posterior (-A) made orthogonal to w, u = v x w."""
    post = np.array([0.0, -1.0, 0.0])
    v = post - (post @ w) * w
    if np.linalg.norm(v) < 1e-3:  # axis along A-P: any orthogonal v
        v = np.array([0.0, 0.0, -1.0]) - w[2] * w
    v = _unit(v)
    return np.stack([np.cross(v, w), v, w], axis=1)


def _disk(radius_px: float) -> np.ndarray:
    r = int(np.ceil(radius_px))
    y, x = np.ogrid[-r : r + 1, -r : r + 1]
    return x * x + y * y <= radius_px * radius_px + 1e-9


def _subvoxel_offsets(affine: np.ndarray, w: np.ndarray) -> np.ndarray:
    """World offsets of sample points inside one voxel, dense enough (in the plane normal to w) to
    leave no gaps at GRID_MM."""
    edges = affine[:3, :3]
    inplane = np.linalg.norm(edges - np.outer(w, w @ edges), axis=0)
    counts = np.maximum(1, np.ceil(1.5 * inplane / GRID_MM).astype(int))
    grids = [(np.arange(n) + 0.5) / n - 0.5 for n in counts]
    frac = np.stack(np.meshgrid(*grids, indexing="ij"), axis=-1).reshape(-1, 3)
    return frac @ edges.T


class _Projection:
    """The vertebra projected along w onto a (u, v) pixel grid."""

    def __init__(self, world: np.ndarray, offsets: np.ndarray, frame: np.ndarray, pad_px: int):
        self.frame = frame
        uv = world @ frame[:, :2]
        self.w = world @ frame[:, 2]
        span = np.abs(offsets @ frame[:, :2]).max(axis=0) if len(offsets) else np.zeros(2)
        self.origin = uv.min(axis=0) - span - pad_px * GRID_MM
        self.shape = tuple(np.ceil((uv.max(axis=0) + span + pad_px * GRID_MM - self.origin) / GRID_MM).astype(int) + 1)
        self.pix = self.to_px(uv)  # pixel of each voxel centre
        occ = np.zeros(self.shape, dtype=bool)
        sub = self.to_px((world[:, None, :] + offsets[None]).reshape(-1, 3) @ frame[:, :2])
        occ[sub[:, 0], sub[:, 1]] = True
        occ[self.pix[:, 0], self.pix[:, 1]] = True
        self.occ = occ
        ii, jj = np.indices(self.shape)
        self.uv = np.stack([ii, jj], axis=-1) * GRID_MM + self.origin  # (u, v) mm of each pixel

    def to_px(self, uv: np.ndarray) -> np.ndarray:
        return np.clip(np.rint((uv - self.origin) / GRID_MM).astype(int), 0, np.array(self.shape) - 1)


def _body_seed(occ: np.ndarray) -> np.ndarray:
    """Pixel inside the body: the most anterior of the near-thickest points of the projection."""
    dist = ndimage.distance_transform_edt(occ)
    cand = np.argwhere(dist >= SEED_THICKNESS_SHARE * dist.max())
    best = cand[cand[:, 1] == cand[:, 1].min()]
    return best[np.argmax(dist[best[:, 0], best[:, 1]])]


def _pick_hole(occ: np.ndarray, seed: np.ndarray, back: np.ndarray) -> np.ndarray | None:
    """The largest hole of `occ` behind the seed (within CANAL_CONE_DEG of `back`), or None."""
    holes = ndimage.binary_fill_holes(occ) & ~occ
    labels, n = ndimage.label(holes)
    if n == 0:
        return None
    idx = np.arange(1, n + 1)
    area = ndimage.sum_labels(holes, labels, idx) * GRID_MM**2
    cents = np.array(ndimage.center_of_mass(holes, labels, idx)).reshape(-1, 2)
    rel = cents - seed
    cosang = (rel @ back) / np.maximum(np.linalg.norm(rel, axis=1), 1e-9)
    ok = (area >= MIN_CANAL_AREA_MM2) & (cosang >= np.cos(np.deg2rad(CANAL_CONE_DEG)))
    if not ok.any():
        return None
    best = idx[ok][np.argmax(area[ok])]
    return labels == best


def _notch(occ: np.ndarray, seed: np.ndarray, back: np.ndarray) -> np.ndarray | None:
    """Stand-in canal when no hole exists: the first gap along the midline strip behind the seed."""
    half = int(round(MIDLINE_HALF_WIDTH_MM / GRID_MM))
    # walk from the seed along `back`, sampling the strip's occupancy
    lateral = np.array([-back[1], back[0]])
    steps = np.arange(0, max(occ.shape) * 2)
    pts = seed[None, :] + steps[:, None] * back[None, :]
    inside = (pts >= 0).all(axis=1) & (pts < np.array(occ.shape) - 1).all(axis=1)
    pts, steps = pts[inside], steps[inside]
    strip = np.zeros(len(pts), dtype=bool)
    for k in range(-half, half + 1):
        q = np.rint(pts + k * lateral).astype(int)
        q = np.clip(q, 0, np.array(occ.shape) - 1)
        strip |= occ[q[:, 0], q[:, 1]]
    gap = np.flatnonzero(~strip)
    if len(gap) == 0:
        return None
    start = gap[0]
    after = np.flatnonzero(strip[start:])
    stop = start + (after[0] if len(after) else int(round(2 * FALLBACK_CANAL_HALF_DEPTH_MM / GRID_MM)))
    canal = np.zeros_like(occ)
    for s in range(start, min(stop, len(pts))):
        for k in range(-half, half + 1):
            q = np.clip(np.rint(pts[s] + k * lateral).astype(int), 0, np.array(occ.shape) - 1)
            canal[q[0], q[1]] = True
    return canal & ~occ


def _find_canal(occ: np.ndarray, seed: np.ndarray, back: np.ndarray) -> _Canal | None:
    hole = _pick_hole(occ, seed, back)
    if hole is not None:
        return _Canal(hole, "hole")
    for r in CLOSING_RADII_MM:
        pad = int(np.ceil(r / GRID_MM)) + 1
        closed = ndimage.binary_closing(np.pad(occ, pad), _disk(r / GRID_MM))[pad:-pad, pad:-pad]
        hole = _pick_hole(closed | occ, seed, back)
        if hole is not None:
            return _Canal(hole, f"closing {r:g} mm")
    notch = _notch(occ, seed, back)
    return None if notch is None or not notch.any() else _Canal(notch, "notch")


def _symmetry_direction(occ: np.ndarray, pivot: np.ndarray, back: np.ndarray) -> np.ndarray:
    """Direction (pixel axes, near `back`) of the line near `pivot` about which `occ` is most mirror
    symmetric: the vertebra's mid-sagittal line. Coarse-to-fine grid over angle and offset."""
    pts = np.argwhere(occ)
    pts = pts[:: max(1, len(pts) // SYMMETRY_POINTS)].astype(float) - pivot
    shape = np.array(occ.shape)

    def score(ang: np.ndarray, shift: np.ndarray) -> np.ndarray:
        normal = np.stack([-np.sin(ang), np.cos(ang)], axis=-1)  # (k, 2)
        dist = pts @ normal.T - shift  # (n, k)
        # the projection has an empty border, so clipping sends outside points to empty pixels
        i = np.clip(np.rint(pts[:, :1] + pivot[0] - 2.0 * dist * normal[:, 0]).astype(np.intp), 0, shape[0] - 1)
        j = np.clip(np.rint(pts[:, 1:] + pivot[1] - 2.0 * dist * normal[:, 1]).astype(np.intp), 0, shape[1] - 1)
        return occ[i, j].sum(axis=0)

    ang0, shift0 = float(np.arctan2(back[1], back[0])), 0.0
    ang_span, shift_span = np.deg2rad(SYMMETRY_MAX_DEG), SYMMETRY_SHIFT_MM / GRID_MM
    for ang_step, shift_step in SYMMETRY_STEPS:
        a = ang0 + np.arange(-ang_span, ang_span + 1e-9, np.deg2rad(ang_step))
        b = shift0 + np.arange(-shift_span, shift_span + 1e-9, shift_step / GRID_MM)
        aa, bb = (x.ravel() for x in np.meshgrid(a, b, indexing="ij"))
        k = int(np.argmax(score(aa, bb)))
        ang0, shift0 = float(aa[k]), float(bb[k])
        ang_span, shift_span = np.deg2rad(ang_step), shift_step / GRID_MM
    return np.array([np.cos(ang0), np.sin(ang0)])


def _body_region(
    occ: np.ndarray, seed: np.ndarray, canal: np.ndarray, back: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """2-D body (in front of the canal's anterior margin, within the body's width) and its core (the
    part clearly in front of the canal, free of pedicles and transverse processes)."""
    ii, jj = np.indices(occ.shape)
    pix = np.stack([ii, jj], axis=-1).astype(float)
    t = (pix - seed) @ back * GRID_MM  # mm along body -> canal
    lat = (pix - seed) @ np.array([-back[1], back[0]]) * GRID_MM
    lat_c = lat[canal]
    mid = 0.5 * (lat_c.min() + lat_c.max())
    central = np.abs(lat_c - mid) <= CANAL_CENTRAL_SHARE * 0.5 * (lat_c.max() - lat_c.min()) + GRID_MM
    t_margin = float(t[canal][central].min())
    solid = ndimage.binary_fill_holes(occ) & ~canal
    front = solid & (t < t_margin + BODY_MARGIN_MM)
    labels, _ = ndimage.label(front)
    comp = labels == labels[tuple(seed)] if labels[tuple(seed)] else front
    band = comp & (t >= t_margin - WIDTH_BAND_MM[1]) & (t <= t_margin - WIDTH_BAND_MM[0])
    if band.any():
        lo, hi = lat[band].min() - WIDTH_MARGIN_MM, lat[band].max() + WIDTH_MARGIN_MM
        near = t > t_margin - WIDTH_BAND_MM[0]
        comp &= ~near | ((lat >= lo) & (lat <= hi))
        labels, _ = ndimage.label(comp)
        if labels[tuple(seed)]:
            comp = labels == labels[tuple(seed)]
    core = comp & (t < t_margin - WIDTH_BAND_MM[0])
    return comp, (core if core.any() else comp)


def _split_along(world: np.ndarray, affine: np.ndarray, w: np.ndarray):
    """One split with a fixed axis; returns (body per voxel, canal centroid, ap axis, method)."""
    frame = _frame(w)
    pad = int(np.ceil(max(CLOSING_RADII_MM) / GRID_MM)) + 2
    proj = _Projection(world, _subvoxel_offsets(affine, w), frame, pad)
    occ = proj.occ
    seed = _body_seed(occ)
    back = np.array([0.0, 1.0])  # +v in pixel axes (v is the second pixel axis)
    canal = _find_canal(occ, seed, back)
    if canal is None:
        body_px = ndimage.binary_fill_holes(occ)
        return body_px[proj.pix[:, 0], proj.pix[:, 1]], None, frame[:, 1], None
    # AP direction: the vertebra's mirror-symmetry line through the canal (axial rotation)
    back = _symmetry_direction(occ, np.array(ndimage.center_of_mass(canal.pixels)), back)
    body_px, _ = _body_region(occ, seed, canal.pixels, back)
    c_uv = np.array(ndimage.center_of_mass(canal.pixels)) * GRID_MM + proj.origin
    ring = ndimage.binary_dilation(canal.pixels, _disk(CANAL_RING_MM / GRID_MM))
    near = ring[proj.pix[:, 0], proj.pix[:, 1]]
    c_w = float(proj.w[near].mean()) if near.any() else float(proj.w.mean())
    centroid = frame[:, 0] * c_uv[0] + frame[:, 1] * c_uv[1] + frame[:, 2] * c_w
    ap = _unit(frame[:, :2] @ back)
    return body_px[proj.pix[:, 0], proj.pix[:, 1]], centroid, ap, canal.method


def _footprint(points: np.ndarray, w: np.ndarray) -> float:
    """Area (mm²) of the convex hull of the points projected along w."""
    f = _frame(w)
    try:
        return float(ConvexHull(points @ f[:, :2]).volume)
    except Exception:  # degenerate (flat) point set
        return float("inf")


def _refine_axis(points: np.ndarray, w0: np.ndarray) -> np.ndarray:
    """Tilt w0 (within AXIS_MAX_TILT_DEG) to minimise the body's footprint along the axis."""
    f = _frame(w0)
    best, best_area = np.zeros(2), _footprint(points, w0)
    for step in AXIS_STEPS_DEG:
        centre = best.copy()
        k = int(AXIS_MAX_TILT_DEG // step) if step == AXIS_STEPS_DEG[0] else 3
        for a in centre[0] + step * np.arange(-k, k + 1):
            for b in centre[1] + step * np.arange(-k, k + 1):
                if np.hypot(a, b) > AXIS_MAX_TILT_DEG:
                    continue
                ta, tb = np.tan(np.deg2rad([a, b]))
                w = _unit(w0 + ta * f[:, 0] + tb * f[:, 1])
                area = _footprint(points, w)
                if area < best_area:
                    best, best_area = np.array([a, b]), area
    ta, tb = np.tan(np.deg2rad(best))
    return _unit(w0 + ta * f[:, 0] + tb * f[:, 1])


MODE = "pca"


def _pca_axis(world: np.ndarray) -> np.ndarray:
    """Smallest principal axis of the points, pointing cranially; +S when it tilts too far."""
    _, vecs = np.linalg.eigh(np.cov((world - world.mean(axis=0)).T))
    w = vecs[:, 0] * (1.0 if vecs[2, 0] >= 0 else -1.0)
    return w if w[2] >= np.cos(np.deg2rad(AXIS_MAX_TILT_DEG)) else np.array([0.0, 0.0, 1.0])


def _estimate_axis(world: np.ndarray, affine: np.ndarray) -> np.ndarray:
    s = np.array([0.0, 0.0, 1.0])
    if MODE == "S":
        return s
    w = _pca_axis(world) if len(world) > 3 else s
    if MODE == "pca":
        return w
    is_body, _, _, _ = _split_along(world, affine, w)
    if is_body.sum() >= 4:
        w = _refine_axis(world[is_body], w)
    return w


def split_vertebra(mask: np.ndarray, affine: np.ndarray, axis: np.ndarray | None = None) -> SplitResult:
    """Split one vertebra mask into body and posterior elements (see module docstring).

    mask: bool array on the grid of `affine` (4x4, index -> RAS+ world mm).
    axis: cranio-caudal unit vector (world, pointing cranially) when known; estimated when None.
    Raises ValueError for an empty mask.
    """
    mask = np.asarray(mask).astype(bool)
    if mask.ndim != 3:
        raise ValueError(f"mask must be 3D, got shape {mask.shape}")
    affine = np.asarray(affine, dtype=float)
    ijk = np.argwhere(mask)
    if len(ijk) == 0:
        raise ValueError("empty vertebra mask: nothing to split")
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    notes: list[str] = []
    if axis is None:
        w = _estimate_axis(world, affine)
    else:
        w = _unit(axis)
    is_body, centroid, ap, method = _split_along(world, affine, w)
    if method is None:
        notes.append("spinal canal not found: no split, the whole mask is returned as body")
        centroid = np.full(3, np.nan)
    elif method != "hole":
        notes.append(f"vertebral arch not closed: canal found by {method}; the split is approximate")
    body = np.zeros_like(mask)
    body[tuple(ijk[is_body].T)] = True
    return SplitResult(body, mask & ~body, centroid, ap, tuple(notes), w)

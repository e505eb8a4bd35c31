"""Split a whole-vertebra mask into vertebral body and posterior elements, using the spinal canal.

Label maps from other tools (VerSe, TotalSegmentator) give one mask per vertebra. This module cuts
it geometrically, in world millimetres, so the result does not depend on voxel spacing or axis order:

1. Frame: w = the cranio-caudal axis (given by the caller, e.g. the centreline tangent; otherwise
   the smallest principal axis of the vertebra, which runs cranio-caudally because the vertebra is
   widest left-right and antero-posteriorly); v = the image's anterior->posterior direction made
   orthogonal to w; u = v x w.
2. The vertebra is projected along w onto a (u, v) pixel grid (voxels are super-sampled so that
   thick slices leave no gaps). The vertebral foramen is the hole of that projection enclosed by
   the arch, behind the body. When the arch is open (truncated, partial volume) the projection is
   first closed morphologically; failing that, the canal is the first gap behind the body along the
   midline (a rough fallback, said so in the notes).
3. The antero-posterior direction is the vertebra's mirror-symmetry line through the canal (so an
   axially rotated vertebra is cut square). Body = the projection in front of the canal's anterior
   margin, the part connected to the body seed (the thickest point of the projection), and no wider
   than the body measured clearly in front of the canal (pedicles and transverse processes beside
   the canal go to the posterior elements). Each voxel takes the label of the pixel its centre
   projects to.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

# --------------------------------------------------------------------------- geometric constants
#: Pixel size (mm) of the 2-D projection along the cranio-caudal axis.
GRID_MM = 0.5
#: Sample points per pixel pitch when super-sampling a voxel in the projection plane (>1: no gaps).
SUPERSAMPLING = 1.5
#: Largest tilt (deg) of an estimated axis from world +S; a principal axis beyond it is not trusted.
AXIS_MAX_TILT_DEG = 45.0
#: The body seed is the most anterior point whose depth inside the projection is at least this share
#: of the deepest (the body is the thickest part; in a truncated slab a pedicle may come close).
SEED_THICKNESS_SHARE = 0.8
#: Smallest hole area (mm²) accepted as the foramen (a thick-slice canal can shrink to a few pixels;
#: an adult canal is 150-300 mm²).
MIN_CANAL_AREA_MM2 = 9.0
#: The canal lies behind the body: its centroid is within this angle (deg) of posterior, seen from
#: the body seed.
CANAL_CONE_DEG = 50.0
#: Radii (mm) of the morphological closings tried in turn when the arch does not close.
CLOSING_RADII_MM = (1.5, 3.0, 4.5, 6.0)
#: Half-width (mm) of the midline strip searched for the gap behind the body (last fallback).
MIDLINE_HALF_WIDTH_MM = 3.0
#: Canal depth (mm) assumed behind the body when no arch closes the midline gap (last fallback).
FALLBACK_CANAL_DEPTH_MM = 16.0
#: Mirror-symmetry search for the mid-sagittal line: largest rotation (deg) from the image's AP
#: direction, largest offset (mm) from the canal centroid, coarse-to-fine (deg, mm) steps, and the
#: number of projection pixels scored.
SYMMETRY_MAX_DEG = 40.0
SYMMETRY_SHIFT_MM = 6.0
SYMMETRY_STEPS = ((5.0, 2.0), (1.0, 0.5))
SYMMETRY_POINTS = 3000
#: The canal's anterior margin is read on this central share of its width (its lateral recesses can
#: reach in front of the body's posterior wall).
CANAL_CENTRAL_SHARE = 0.5
#: Where the body ends, in mm behind the canal's anterior margin (0: at the margin; best on the
#: VerSe-subregion, TotalSegmentator and phantom references).
BODY_MARGIN_MM = 0.0
#: Band (mm in front of the canal's anterior margin) where the body's width is measured; closer to
#: the canal than its near edge, nothing wider than that (plus the slack below) is body.
WIDTH_BAND_MM = (4.0, 12.0)
#: Lateral slack (mm) added to the measured body width.
WIDTH_MARGIN_MM = 1.0
#: Ring (mm) around the canal whose voxels give the canal centroid's cranio-caudal position.
CANAL_RING_MM = 4.0

_SUPERIOR = np.array([0.0, 0.0, 1.0])
_POSTERIOR = np.array([0.0, -1.0, 0.0])


@dataclass(frozen=True)
class SplitResult:
    """Body / posterior-elements split of one vertebra mask.

    body: bool, same shape as the mask; posterior: mask & ~body.
    canal_centroid: world mm (RAS) of the vertebral foramen centroid (nan when no canal was found).
    ap_axis: unit vector (world) from the body towards the canal (posterior), orthogonal to cc_axis.
    notes: remarks, e.g. that the arch was open and the split is a fallback.
    cc_axis: the cranio-caudal unit vector used (the caller's, or the estimated one).
    """

    body: np.ndarray
    posterior: np.ndarray
    canal_centroid: np.ndarray
    ap_axis: np.ndarray
    notes: tuple[str, ...]
    cc_axis: np.ndarray = field(default_factory=lambda: _SUPERIOR.copy())


def split_vertebra(mask: np.ndarray, affine: np.ndarray, axis: np.ndarray | None = None) -> SplitResult:
    """Split one vertebra mask into vertebral body and posterior elements (see module docstring).

    mask: one vertebra (bool) on the grid of `affine` (4x4, index -> RAS+ world mm).
    axis: cranio-caudal unit vector of the spine here (world, cranial), e.g. the centreline tangent;
    estimated from the vertebra's shape when None.
    Raises ValueError for an empty or non-3D mask or a degenerate axis.
    """
    mask = np.asarray(mask).astype(bool, copy=False)
    if mask.ndim != 3:
        raise ValueError(f"vertebra mask must be 3D, got shape {mask.shape}")
    affine = np.asarray(affine, dtype=float)
    ijk = np.argwhere(mask)
    if len(ijk) == 0:
        raise ValueError("empty vertebra mask: nothing to split")
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    notes: list[str] = []
    if axis is None:
        w, trusted = _principal_axis(world)
        if not trusted:
            notes.append("cranio-caudal axis not recognisable from the shape: world +S used")
    else:
        w = _unit(axis)

    frame = _frame(w)
    proj = _Projection(world, _subvoxel_offsets(affine, w), frame)
    seed = _body_seed(proj.occ)
    canal = _find_canal(proj.occ, seed)
    if canal is None:  # cannot happen with the padded grid, kept as a guard
        notes.append("spinal canal not found: no split, the whole mask is returned as body")
        body = mask.copy()
        return SplitResult(body, mask & ~body, np.full(3, np.nan), frame[:, 1], tuple(notes), w)
    pixels, note = canal
    if note:
        notes.append(note)

    back = _symmetry_direction(proj.occ, np.array(ndimage.center_of_mass(pixels)), np.array([0.0, 1.0]))
    body_px = _body_region(proj.occ, seed, pixels, back)
    is_body = body_px[proj.pix[:, 0], proj.pix[:, 1]]
    body = np.zeros_like(mask)
    body[tuple(ijk[is_body].T)] = True

    c_uv = np.array(ndimage.center_of_mass(pixels)) * GRID_MM + proj.origin
    ring = ndimage.binary_dilation(pixels, _disk(CANAL_RING_MM / GRID_MM))[proj.pix[:, 0], proj.pix[:, 1]]
    c_w = float(proj.w[ring].mean()) if ring.any() else float(proj.w.mean())
    centroid = frame @ np.array([c_uv[0], c_uv[1], c_w])
    ap = _unit(frame[:, :2] @ back)
    return SplitResult(body, mask & ~body, centroid, ap, tuple(notes), w)


# --------------------------------------------------------------------------- frame and projection
def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float).reshape(-1)
    n = float(np.linalg.norm(x)) if x.shape == (3,) else 0.0
    if not np.isfinite(n) or n == 0.0:
        raise ValueError(f"axis must be a finite non-zero 3-vector, got {x}")
    return x / n


def _principal_axis(world: np.ndarray) -> tuple[np.ndarray, bool]:
    """Smallest principal axis of the voxel cloud, pointing cranially, and whether it is trusted
    (within AXIS_MAX_TILT_DEG of +S); world +S otherwise."""
    if len(world) < 4:
        return _SUPERIOR.copy(), False
    _, vecs = np.linalg.eigh(np.cov((world - world.mean(axis=0)).T))
    w = vecs[:, 0] if vecs[2, 0] >= 0 else -vecs[:, 0]
    if w[2] < np.cos(np.deg2rad(AXIS_MAX_TILT_DEG)):
        return _SUPERIOR.copy(), False
    return w, True


def _frame(w: np.ndarray) -> np.ndarray:
    """Columns u, v, w (world): v = posterior made orthogonal to w, u = v x w."""
    v = _POSTERIOR - (_POSTERIOR @ w) * w
    if np.linalg.norm(v) < 1e-3:  # axis along A-P: fall back to inferior for v
        v = -_SUPERIOR - (-_SUPERIOR @ w) * w
    v = v / np.linalg.norm(v)
    return np.stack([np.cross(v, w), v, w], axis=1)


def _subvoxel_offsets(affine: np.ndarray, w: np.ndarray) -> np.ndarray:
    """World offsets of sample points inside one voxel, dense enough in the plane normal to w to
    leave no gaps at GRID_MM (a voxel edge along w needs no samples)."""
    edges = affine[:3, :3]
    inplane = np.linalg.norm(edges - np.outer(w, w @ edges), axis=0)
    counts = np.maximum(1, np.ceil(SUPERSAMPLING * inplane / GRID_MM).astype(int))
    grids = [(np.arange(n) + 0.5) / n - 0.5 for n in counts]
    frac = np.stack(np.meshgrid(*grids, indexing="ij"), axis=-1).reshape(-1, 3)
    return frac @ edges.T


class _Projection:
    """The vertebra projected along w onto a (u, v) pixel grid with an empty border."""

    def __init__(self, world: np.ndarray, offsets: np.ndarray, frame: np.ndarray):
        uv = world @ frame[:, :2]
        self.w = world @ frame[:, 2]
        span = np.abs(offsets @ frame[:, :2]).max(axis=0)
        pad = (np.ceil(max(CLOSING_RADII_MM) / GRID_MM) + 2) * GRID_MM + span
        self.origin = uv.min(axis=0) - pad
        self.shape = tuple(int(n) for n in np.ceil((uv.max(axis=0) + pad - self.origin) / GRID_MM) + 1)
        self.pix = self._to_px(uv)  # pixel of each voxel centre
        sub = self._to_px((uv[:, None, :] + (offsets @ frame[:, :2])[None]).reshape(-1, 2))
        self.occ = np.zeros(self.shape, dtype=bool)
        self.occ[sub[:, 0], sub[:, 1]] = True
        self.occ[self.pix[:, 0], self.pix[:, 1]] = True

    def _to_px(self, uv: np.ndarray) -> np.ndarray:
        return np.rint((uv - self.origin) / GRID_MM).astype(np.intp)


def _disk(radius_px: float) -> np.ndarray:
    r = int(np.ceil(radius_px))
    y, x = np.ogrid[-r : r + 1, -r : r + 1]
    return x * x + y * y <= radius_px * radius_px + 1e-9


# --------------------------------------------------------------------------- canal and body in 2-D
def _body_seed(occ: np.ndarray) -> np.ndarray:
    """A pixel inside the body: the most anterior of the near-thickest points of the projection."""
    depth = ndimage.distance_transform_edt(occ)
    cand = np.argwhere(depth >= SEED_THICKNESS_SHARE * depth.max())
    front = cand[cand[:, 1] == cand[:, 1].min()]
    return front[np.argmax(depth[front[:, 0], front[:, 1]])]


def _pick_hole(occ: np.ndarray, seed: np.ndarray) -> np.ndarray | None:
    """The largest hole of `occ` behind the seed (centroid within CANAL_CONE_DEG of +v), or None."""
    holes = ndimage.binary_fill_holes(occ) & ~occ
    labels, n = ndimage.label(holes)
    if n == 0:
        return None
    idx = np.arange(1, n + 1)
    area = ndimage.sum_labels(holes, labels, idx) * GRID_MM**2
    rel = np.array(ndimage.center_of_mass(holes, labels, idx)).reshape(-1, 2) - seed
    cos = rel[:, 1] / np.maximum(np.linalg.norm(rel, axis=1), 1e-9)
    ok = (area >= MIN_CANAL_AREA_MM2) & (cos >= np.cos(np.deg2rad(CANAL_CONE_DEG)))
    if not ok.any():
        return None
    return labels == idx[ok][np.argmax(area[ok])]


def _midline_gap(occ: np.ndarray, seed: np.ndarray) -> tuple[np.ndarray, bool] | None:
    """Stand-in canal: the first empty stretch of the midline strip behind the seed, up to the arch
    (or FALLBACK_CANAL_DEPTH_MM deep when no arch closes it), and whether an arch was met."""
    half = round(MIDLINE_HALF_WIDTH_MM / GRID_MM)
    cols = np.arange(seed[0] - half, seed[0] + half + 1).clip(0, occ.shape[0] - 1)
    strip = occ[cols, seed[1] :].any(axis=0)  # occupancy of the strip, row by row behind the seed
    empty = np.flatnonzero(~strip)
    if len(empty) == 0:
        return None
    start = int(empty[0])
    arch = np.flatnonzero(strip[start:])
    stop = start + (int(arch[0]) if len(arch) else round(FALLBACK_CANAL_DEPTH_MM / GRID_MM))
    gap = np.zeros_like(occ)
    gap[cols[:, None], seed[1] + np.arange(start, min(stop, strip.size))] = True
    gap &= ~occ
    return (gap, len(arch) > 0) if gap.any() else None


def _find_canal(occ: np.ndarray, seed: np.ndarray) -> tuple[np.ndarray, str | None] | None:
    """The foramen in the projection and, when it is not a plain hole, a note on how it was found:
    a hole after a closing, or the midline gap behind the body."""
    hole = _pick_hole(occ, seed)
    if hole is not None:
        return hole, None
    for r in CLOSING_RADII_MM:  # the grid's empty border is wider than the largest radius
        hole = _pick_hole(ndimage.binary_closing(occ, _disk(r / GRID_MM)) | occ, seed)
        if hole is not None:
            return (
                hole,
                f"vertebral arch not closed: canal taken from a {r:g} mm closing of the arch; split approximate",
            )
    found = _midline_gap(occ, seed)
    if found is None:
        return None
    gap, arch = found
    if arch:
        return gap, "vertebral arch not closed: canal taken as the midline gap behind the body; split approximate"
    return gap, (
        f"no vertebral arch behind the body (posterior elements missing or cut off): canal assumed "
        f"{FALLBACK_CANAL_DEPTH_MM:g} mm deep behind the body; split approximate"
    )


def _symmetry_direction(occ: np.ndarray, pivot: np.ndarray, back: np.ndarray) -> np.ndarray:
    """Unit direction (pixel axes, near `back`) of the line near `pivot` about which `occ` is most
    mirror-symmetric: the vertebra's mid-sagittal line (coarse-to-fine over angle and offset)."""
    pts = np.argwhere(occ)
    pts = pts[:: max(1, len(pts) // SYMMETRY_POINTS)].astype(float) - pivot
    top = np.array(occ.shape) - 1

    def score(ang: np.ndarray, shift: np.ndarray) -> np.ndarray:
        normal = np.stack([-np.sin(ang), np.cos(ang)], axis=-1)  # (k, 2)
        dist = pts @ normal.T - shift  # (n, k)
        # the grid has an empty border, so clipping sends reflections that leave it to empty pixels
        i = np.clip(np.rint(pts[:, :1] + pivot[0] - 2.0 * dist * normal[:, 0]).astype(np.intp), 0, top[0])
        j = np.clip(np.rint(pts[:, 1:] + pivot[1] - 2.0 * dist * normal[:, 1]).astype(np.intp), 0, top[1])
        return occ[i, j].sum(axis=0)

    ang0, shift0 = float(np.arctan2(back[1], back[0])), 0.0
    ang_span, shift_span = np.deg2rad(SYMMETRY_MAX_DEG), SYMMETRY_SHIFT_MM / GRID_MM
    for ang_step, shift_step in SYMMETRY_STEPS:
        a = ang0 + np.arange(-ang_span, ang_span + 1e-9, np.deg2rad(ang_step))
        s = shift0 + np.arange(-shift_span, shift_span + 1e-9, shift_step / GRID_MM)
        aa, ss = (x.ravel() for x in np.meshgrid(a, s, indexing="ij"))
        k = int(np.argmax(score(aa, ss)))
        ang0, shift0 = float(aa[k]), float(ss[k])
        ang_span, shift_span = np.deg2rad(ang_step), shift_step / GRID_MM
    return np.array([np.cos(ang0), np.sin(ang0)])


def _body_region(occ: np.ndarray, seed: np.ndarray, canal: np.ndarray, back: np.ndarray) -> np.ndarray:
    """2-D body: in front of the canal's anterior margin (along `back`), connected to the seed, and
    near the canal no wider than the body measured clearly in front of it."""
    pix = np.indices(occ.shape).transpose(1, 2, 0) - seed
    t = pix @ back * GRID_MM  # mm along body -> canal
    lat = pix @ np.array([-back[1], back[0]]) * GRID_MM  # mm across
    lat_c, t_c = lat[canal], t[canal]
    mid, half = 0.5 * (lat_c.max() + lat_c.min()), 0.5 * (lat_c.max() - lat_c.min())
    t_margin = float(t_c[np.abs(lat_c - mid) <= CANAL_CENTRAL_SHARE * half + GRID_MM].min())

    body = _component(ndimage.binary_fill_holes(occ) & ~canal & (t < t_margin + BODY_MARGIN_MM), seed)
    band = body & (t >= t_margin - WIDTH_BAND_MM[1]) & (t <= t_margin - WIDTH_BAND_MM[0])
    if band.any():
        lo, hi = lat[band].min() - WIDTH_MARGIN_MM, lat[band].max() + WIDTH_MARGIN_MM
        body = _component(body & ((t <= t_margin - WIDTH_BAND_MM[0]) | ((lat >= lo) & (lat <= hi))), seed)
    return body


def _component(region: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """The connected component of `region` holding `seed` (all of `region` if the seed is outside)."""
    labels, _ = ndimage.label(region)
    k = labels[tuple(seed)]
    return labels == k if k else region

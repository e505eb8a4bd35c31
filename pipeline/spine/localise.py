"""Where one vertebral body ends and the next begins: disc planes found along the spine's body centreline.

A segmentation that draws every disc separates the bodies by itself; on real CT it often does not (thin,
degenerate or tilted discs, thick slices, osteophytes bridging the disc space). Here the bodies are
separated by the intensity profile along their centreline instead, as in classical spine localisation:

1. `body_axis`: the centreline of the vertebral-body mask (the centroid of each axial slice, gaps
   interpolated, smoothed) resampled every `profile_step_mm` along its length, with its tangent.
2. `disc_profile`: in the plane across the centreline at each step, the mean of the CT (clipped to
   [`hu_floor`, `hu_ceiling`]) within `profile_radius_mm`, and the share of the mask there. A disc is darker
   than the cancellous bone either side of it, and where the mask was drawn with a gap the gap is a disc too.
3. `find_discs`: the valleys of that profile, and the subset of them that makes the most plausible column:
   every valley's depth counts for it, and a change of spacing between consecutive discs against it
   (vertebral height changes slowly along the spine), spacings within [`min_spacing_mm`,
   `max_spacing_mm`]. A lytic lesion in a body does not make a valley of its own: lesion voxels take the
   bone's median value first.
4. `cut_bodies`: each body voxel goes to the slab between two consecutive disc planes (centre on the
   centreline, normal its tangent).

Everything is in index coordinates times spacing (mm of the canonical grid), so no world affine is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal
from scipy.spatial import cKDTree

from ..config import LocaliseSettings


@dataclass(frozen=True)
class BodyAxis:
    """The bodies' centreline: points (mm of the grid, index times spacing) every `step_mm` from caudal to
    cranial, and unit tangents pointing cranially."""

    points: np.ndarray  # (n, 3)
    tangents: np.ndarray  # (n, 3)
    step_mm: float


@dataclass(frozen=True)
class DiscPlanes:
    """Planes between consecutive vertebral bodies, caudal to cranial: centres (mm of the grid) and unit
    normals pointing cranially; `positions` are their distances along the axis (mm)."""

    centres: np.ndarray  # (k, 3)
    normals: np.ndarray  # (k, 3)
    positions: np.ndarray  # (k,)

    def __len__(self) -> int:
        return len(self.positions)


def slice_centroids(mask: np.ndarray, min_voxels: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The axial slices (canonical axis 2) holding at least `min_voxels` of a mask, and the mean x and y
    index of the mask in each."""
    area = mask.sum(axis=(0, 1)).astype(float)
    ks = np.flatnonzero(area >= min_voxels)
    xs = np.arange(mask.shape[0], dtype=float)
    ys = np.arange(mask.shape[1], dtype=float)
    cx = np.array([(mask[..., k].sum(axis=1) * xs).sum() for k in ks]) / area[ks]
    cy = np.array([(mask[..., k].sum(axis=0) * ys).sum() for k in ks]) / area[ks]
    return ks, cx, cy


def body_axis(body: np.ndarray, spacing, settings: LocaliseSettings) -> BodyAxis | None:
    """The centreline of a vertebral-body mask (canonical grid: axis 2 runs caudal -> cranial); None when
    the mask spans fewer than three slices."""
    spacing = np.asarray(spacing, float)
    ks, cx, cy = slice_centroids(body, settings.min_section_mm2 / (spacing[0] * spacing[1]))
    if ks.size < 3:
        return None
    kk = np.arange(ks[0], ks[-1] + 1)
    sigma = settings.axis_smoothing_mm / spacing[2]
    pts = np.stack(
        [
            ndimage.gaussian_filter1d(np.interp(kk, ks, cx), sigma, mode="nearest") * spacing[0],
            ndimage.gaussian_filter1d(np.interp(kk, ks, cy), sigma, mode="nearest") * spacing[1],
            kk * spacing[2],
        ],
        axis=1,
    )
    # the slice centroids' ends reach half a slice beyond the first and last slice's centres
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    step = settings.profile_step_mm
    s = np.arange(0.0, arc[-1] + 1e-9, step)
    points = np.stack([np.interp(s, arc, pts[:, i]) for i in range(3)], axis=1)
    tangents = np.gradient(points, axis=0)
    tangents /= np.maximum(np.linalg.norm(tangents, axis=1, keepdims=True), 1e-9)
    return BodyAxis(points, tangents, step)


def _disc_offsets(radius_mm: float, step_mm: float) -> np.ndarray:
    """Offsets (u, v) in mm covering a disc of `radius_mm` on a square lattice of `step_mm`."""
    r = np.arange(-radius_mm, radius_mm + 1e-9, step_mm)
    u, v = np.meshgrid(r, r, indexing="ij")
    keep = u**2 + v**2 <= radius_mm**2
    return np.stack([u[keep], v[keep]], axis=1)


def disc_profile(
    values: np.ndarray, mask: np.ndarray, spacing, axis: BodyAxis, settings: LocaliseSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Mean of `values` and share of `mask` over a disc across the axis at each of its points."""
    spacing = np.asarray(spacing, float)
    t = axis.tangents
    ref = np.where(np.abs(t[:, :1]) < 0.9, np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 1.0, 0.0]]))
    a = np.cross(t, ref)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b = np.cross(t, a)
    off = _disc_offsets(settings.profile_radius_mm, min(1.0, settings.profile_radius_mm / 3))
    pts = axis.points[:, None, :] + off[None, :, :1] * a[:, None] + off[None, :, 1:] * b[:, None]  # (n, m, 3) mm
    idx = (pts / spacing).reshape(-1, 3).T
    mean = ndimage.map_coordinates(values, idx, order=1, mode="nearest").reshape(pts.shape[:2]).mean(axis=1)
    share = ndimage.map_coordinates(mask.astype(np.float32), idx, order=0, mode="constant")
    return mean, share.reshape(pts.shape[:2]).mean(axis=1)


def disc_signal(mean_hu: np.ndarray, body_share: np.ndarray, settings: LocaliseSettings) -> np.ndarray:
    """One signal, low at discs: the profile's HU in units of its own spread (median absolute deviation),
    plus `mask_weight` times the body share."""
    centred = mean_hu - np.median(mean_hu)
    scale = max(float(np.median(np.abs(centred))) * 1.4826, 1.0)
    return centred / scale + settings.mask_weight * body_share


def find_discs(sig: np.ndarray, step_mm: float, settings: LocaliseSettings, typical_mm: float = 0.0) -> np.ndarray:
    """Indices of the disc valleys of a signal sampled every `step_mm`: the subset of its valleys that
    maximises the sum of their depths (prominence, capped at `max_depth`) less `spacing_weight` times the
    squared log ratio of each spacing to the one before, and `size_weight` times the squared log ratio of
    each spacing to `typical_mm` (when given: the spacing the bodies' size suggests), every spacing within
    [`min_spacing_mm`, `max_spacing_mm`] and at least `min_spacing_share` of `typical_mm`."""
    wlen = max(3, round(2 * settings.max_spacing_mm / step_mm))
    valleys, props = signal.find_peaks(-sig, prominence=settings.min_depth, wlen=wlen)
    if valleys.size == 0:
        return valleys
    depth = np.minimum(props["prominences"], settings.max_depth)
    pos = valleys * step_mm
    n = valleys.size
    lo, hi, lam = settings.min_spacing_mm, settings.max_spacing_mm, settings.spacing_weight
    if typical_mm > 0:  # a body and its disc are never much shorter than the bodies' size suggests
        lo = max(lo, settings.min_spacing_share * typical_mm)
    # best[j, i]: best score of a chain whose last two valleys are i then j (i = j: j alone)
    best = np.full((n, n), -np.inf)
    back = np.full((n, n), -1, int)

    def size_cost(d: float) -> float:
        return settings.size_weight * np.log(d / typical_mm) ** 2 if typical_mm > 0 else 0.0

    for j in range(n):
        best[j, j] = depth[j]
        for i in range(j):
            d = pos[j] - pos[i]
            if not lo <= d <= hi:
                continue
            cand = best[i, i] + depth[j] - size_cost(d)  # i was the first valley
            arg = i
            for h in range(i):
                if best[i, h] == -np.inf:
                    continue
                prev = pos[i] - pos[h]
                score = best[i, h] + depth[j] - lam * np.log(d / prev) ** 2 - size_cost(d)
                if score > cand:
                    cand, arg = score, h
            best[j, i], back[j, i] = cand, arg
    j, i = np.unravel_index(int(np.argmax(best)), best.shape)
    chain = [int(j)]
    while i != j:
        chain.append(int(i))
        j, i = i, back[j, i]
    return valleys[np.array(chain[::-1])]


def section_radius(body: np.ndarray, spacing, settings: LocaliseSettings) -> float:
    """The bodies' typical radius (mm): the median over axial slices of the radius of a circle as large as
    the slice's body section (slices of at least `min_section_mm2`)."""
    area = body.sum(axis=(0, 1)) * float(spacing[0] * spacing[1])
    area = area[area >= settings.min_section_mm2]
    return float(np.sqrt(np.median(area) / np.pi)) if area.size else 0.0


def fill_bodies(
    hu: np.ndarray, body: np.ndarray, free: np.ndarray, spacing, axis: BodyAxis, settings: LocaliseSettings
) -> np.ndarray:
    """The body mask completed from the CT: `free` voxels (no other structure) within `fill_radius_share`
    of the bodies' typical radius of the centreline and at least `fill_hu` are body too (cancellous bone a
    segmentation left out, next to the aorta or on thick noisy slices). The largest connected piece of
    the additions touching or near the axis only."""
    radius = settings.fill_radius_share * section_radius(body, spacing, settings)
    if radius <= 0:
        return body
    spacing = np.asarray(spacing, float)
    lo = np.maximum(np.floor((axis.points.min(axis=0) - radius) / spacing).astype(int), 0)
    hi = np.minimum(np.ceil((axis.points.max(axis=0) + radius) / spacing).astype(int) + 1, body.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    cand = free[box] & (hu[box] >= settings.fill_hu) & ~body[box]
    where = np.argwhere(cand)
    if not where.size:
        return body
    dist, _ = cKDTree(axis.points).query((where + lo) * spacing, distance_upper_bound=radius + axis.step_mm)
    near = where[dist <= radius]
    out = body.copy()
    out[tuple((near + lo).T)] = True
    return out


def disc_planes(
    hu: np.ndarray, body: np.ndarray, lesion: np.ndarray | None, spacing, settings: LocaliseSettings,
    axis: BodyAxis | None = None,
) -> DiscPlanes | None:
    """Disc planes of a column: the body mask's centreline (or `axis`), its profile through `hu` (lesion
    voxels at the bodies' median value) and the mask, and the column of valleys of `find_discs`. None
    without a centreline."""
    axis = axis or body_axis(body, spacing, settings)
    if axis is None:
        return None
    values = np.clip(hu.astype(np.float32), settings.hu_floor, settings.hu_ceiling)
    if lesion is not None and lesion.any() and body.any():
        values[lesion > 0] = float(np.median(values[body & (lesion == 0)])) if (body & (lesion == 0)).any() else 0.0
    mean, share = disc_profile(values, body, spacing, axis, settings)
    sig = ndimage.gaussian_filter1d(disc_signal(mean, share, settings), settings.profile_smoothing_mm / axis.step_mm)
    edge = round(settings.edge_mm / axis.step_mm)  # the profile's ends: partial slices, smoothing
    if edge > 0 and sig.size > 2 * edge:
        sig[:edge] = sig[-edge:] = sig.max()
    at = find_discs(sig, axis.step_mm, settings, settings.spacing_per_radius * section_radius(body, spacing, settings))
    return DiscPlanes(axis.points[at], axis.tangents[at], at * axis.step_mm)


def cut_bodies(body: np.ndarray, planes: DiscPlanes, spacing) -> np.ndarray:
    """Slab index + 1 of every body voxel (0 elsewhere): how many disc planes lie below it, plus one."""
    out = np.zeros(body.shape, np.int32)
    where = np.argwhere(body)
    if not where.size:
        return out
    mm = where * np.asarray(spacing, float)
    slab = np.ones(len(where), np.int32)
    for centre, normal in zip(planes.centres, planes.normals, strict=True):
        slab += (mm - centre) @ normal > 0
    out[tuple(where.T)] = slab
    return out

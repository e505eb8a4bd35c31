"""Each vertebra's own frame and the geometry of its body, in millimetres (DESIGN.md §2).

Frame: w cranial (the body's axis: the bisector of its two endplate normals combined with the
direction of its walls, each weighted by how well the voxel grid resolves it; where the endplates
diverge, as in a wedge fracture, `measure._frames` takes whichever of the two endplate normals and
the walls' direction lies closest to the neighbours' axes), v posterior (from the
body centroid towards the spinal canal, made orthogonal to w), u = v x w towards the patient's left.

Lengths are read off lines through the body mask (the surface is the boundary of the labelled
voxels' cells) and fitted over many parallel lines, so the staircase of the voxel grid averages
out: they do not depend on voxel size or image orientation beyond the sampling limit of the label
map itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..anatomy import HEIGHT_POSITIONS
from ..config import MeasurementSettings
from .vertebrae import VertebraMasks

#: Share of the body's height (to either side of its centre) over which the walls are fitted.
WALL_SPAN = 0.35
#: Endplates diverge (a wedge, a fracture) only beyond this many times the tilt the voxel grid can
#: resolve on them; below it the difference is staircase noise (small bodies, thick slices).
DIVERGENCE_NOISE = 2.5


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x)


def make_frame(w: np.ndarray, posterior: np.ndarray) -> np.ndarray:
    """Columns u (left), v (posterior), w (cranial) from an axis and a rough posterior direction."""
    w = unit(w)
    v = posterior - np.dot(posterior, w) * w
    if np.linalg.norm(v) < 1e-6:  # no usable hint: the image's posterior (RAS -y), else its left
        hint = np.array([0.0, -1.0, 0.0]) if abs(w[1]) < 0.9 else np.array([-1.0, 0.0, 0.0])
        v = hint - np.dot(hint, w) * w
    v = unit(v)
    return np.stack([np.cross(v, w), v, w], axis=1)


class BodySampler:
    """Inside (< 0) or outside (> 0) the body at world points: the label of the voxel that holds
    each point (nearest neighbour), so a surface is the boundary of the labelled voxels' cells.

    For a smooth surface sampled at voxel centres that cell boundary is unbiased on average, in
    any direction and for any voxel shape, which a distance map of the mask is not (with thick
    slices the in-plane neighbours of a stair step pull the zero crossing towards the step).
    """

    def __init__(self, vert: VertebraMasks) -> None:
        spacing = np.linalg.norm(vert.affine[:3, :3], axis=0)
        self.mask = np.pad(vert.body, 2).astype(np.float32)
        self.max_gap = 1.5 * float(spacing.max())
        self.inv = np.linalg.inv(vert.affine)
        self.inv[:3, 3] += 2.0  # the padding

    def __call__(self, points: np.ndarray) -> np.ndarray:
        ijk = points @ self.inv[:3, :3].T + self.inv[:3, 3]
        return 0.5 - ndimage.map_coordinates(self.mask, ijk.T, order=0, cval=0.0, mode="constant")

    def crossings(
        self, starts: np.ndarray, direction: np.ndarray, reach: float, step: float
    ) -> list[tuple[float, float] | None]:
        """For each line start + t*direction (starts: (N, 3) world): (t_low, t_high) where it enters
        and leaves the body, or None when it misses. Short gaps (a basivertebral vein channel, a
        notch) are bridged; the run through the start is kept, else the longest."""
        t = np.arange(-reach, reach + step / 2, step)
        pts = starts[:, None, :] + t[None, :, None] * direction[None, None, :]
        f = self(pts.reshape(-1, 3)).reshape(len(starts), t.size)
        inside = f <= 0
        gap = int(np.ceil(self.max_gap / step))
        padded = np.pad(inside, ((0, 0), (gap, gap)))
        filled = ndimage.binary_closing(padded, np.ones((1, 2 * gap + 1), bool))[:, gap:-gap] | inside
        out: list[tuple[float, float] | None] = []
        for fill in filled:
            if not fill.any():
                out.append(None)
                continue
            edges = np.flatnonzero(np.diff(np.concatenate([[0], fill.astype(np.int8), [0]])))
            first, last = edges[::2], edges[1::2] - 1
            through = np.flatnonzero((t[first] <= 0) & (t[last] >= 0))
            k = int(through[0]) if through.size else int(np.argmax(last - first))
            a, b = int(first[k]), int(last[k])
            # the surface lies half-way between the last sample inside and the first outside
            lo = t[a] - step / 2 if a > 0 else t[a]
            hi = t[b] + step / 2 if b < t.size - 1 else t[b]
            out.append((float(lo), float(hi)))
        return out

    def crossing(
        self, start: np.ndarray, direction: np.ndarray, reach: float, step: float
    ) -> tuple[float, float] | None:
        """`crossings` of one line."""
        return self.crossings(start[None, :], direction, reach, step)[0]


@dataclass(frozen=True)
class BodyGeometry:
    """The body of one vertebra in its frame (local coordinates u, v, w about `centre`, mm)."""

    centre: np.ndarray  # world: body centroid
    frame: np.ndarray  # 3x3 columns u, v, w (world)
    own_axis: np.ndarray  # bisector of the endplate normals (world)
    normal_top: np.ndarray  # superior endplate normal (world, cranial)
    normal_bottom: np.ndarray
    divergence_deg: float  # angle between the endplate normals
    endplate_sigma_deg: float  # how finely the voxel grid resolves an endplate's tilt
    front: float  # v of the anterior wall on the mid-sagittal line at mid-height
    back: float  # v of the posterior wall
    mid_u: float  # u of the mid-sagittal plane
    back_plane: np.ndarray  # posterior wall: v = b0 + b1 u + b2 w
    heights: tuple[float, float, float] | None  # anterior, middle, posterior (mm)
    ends: tuple[tuple[float, float], ...] | None  # (w_bottom, w_top) at the three positions
    volume_ml: float

    def to_world(self, local: np.ndarray) -> np.ndarray:
        return self.centre + self.frame @ local

    @property
    def depth(self) -> float:
        return self.back - self.front

    def back_at(self, w: float) -> float:
        """v of the posterior wall on the mid-sagittal plane at height w."""
        return float(self.back_plane @ [1.0, self.mid_u, w])


def _reach(vert: VertebraMasks) -> float:
    ext = np.array(vert.body.shape) * np.linalg.norm(vert.affine[:3, :3], axis=0)
    return float(np.linalg.norm(ext))


def _lines(cross, direction: np.ndarray, starts) -> list[tuple[np.ndarray, float, float]]:
    """Crossings of lines (local starts) along `direction`; the ones that hit the body."""
    starts = np.asarray(list(starts), float).reshape(-1, 3)
    return [(st, c[0], c[1]) for st, c in zip(starts, cross(starts, direction), strict=True) if c is not None]


#: Points farther than this (mm) from a fitted surface are refitted without (a line that slipped
#: past a wedge's low front, a notch in the cortex).
OUTLIER_MM = 1.5


def _fit(xy: np.ndarray, z: np.ndarray, quadratic: bool) -> np.ndarray:
    """Robust least squares z = c0 + c1 x + c2 y (+ c3 x^2 + c4 y^2 when quadratic)."""
    cols = [np.ones(len(z)), xy[:, 0], xy[:, 1]]
    if quadratic:
        cols += [xy[:, 0] ** 2, xy[:, 1] ** 2]
    design = np.stack(cols, axis=1)
    use = np.ones(len(z), bool)
    coef = np.linalg.lstsq(design, z, rcond=None)[0]
    for _ in range(3):
        resid = np.abs(design @ coef - z)
        # drop the worst points beyond the limit, keeping enough to determine the fit
        new = resid <= max(OUTLIER_MM, float(np.median(resid)) * 3)
        if new.sum() < design.shape[1] + 2 or np.array_equal(new, use):
            break
        use = new
        coef = np.linalg.lstsq(design[use], z[use], rcond=None)[0]
    return coef


def _normal(coef: np.ndarray) -> np.ndarray:
    """Unit normal (local, w > 0) of the plane w = c0 + c1 u + c2 v."""
    return unit(np.array([-coef[1], -coef[2], 1.0]))


def measure_body(
    vert: VertebraMasks,
    sampler: BodySampler,
    axis: np.ndarray,
    posterior: np.ndarray,
    ms: MeasurementSettings,
) -> BodyGeometry:
    """Frame and body geometry for a given cranio-caudal `axis` and posterior direction."""
    centre = vert.world(vert.body).mean(axis=0)
    frame = make_frame(axis, posterior)
    u, v, w = frame.T
    reach = _reach(vert)
    step = ms.line_step_mm

    def cross(local_starts: np.ndarray, direction: np.ndarray) -> list[tuple[float, float] | None]:
        return sampler.crossings(centre + np.atleast_2d(local_starts) @ frame.T, direction, reach, step)

    # a first look along the three axes through the centroid
    first_w = cross(np.zeros(3), w)[0]
    first_v = cross(np.zeros(3), v)[0]
    first_u = cross(np.zeros(3), u)[0]
    if first_w is None or first_v is None or first_u is None:
        raise ValueError("body too thin to measure")
    h0 = first_w[1] - first_w[0]
    d0 = first_v[1] - first_v[0]

    # sides (u) over the central part of the body: mid-sagittal plane and half width
    side_w = np.linspace(-1, 1, 7) * WALL_SPAN * h0
    sides = _lines(cross, u, [(0.0, dv, dw) for dv in np.linspace(-0.2, 0.2, 3) * d0 for dw in side_w])
    if len(sides) < 4:
        raise ValueError("body too thin to measure")
    side_pts = np.array([p for p, _, _ in sides])
    mids = np.array([(a + b) / 2 for _, a, b in sides])
    mid_plane = _fit(side_pts[:, 1:], mids, quadratic=False)  # u_mid = m0 + m1 v + m2 w
    mid_u = float(mid_plane[0])
    half_width = float(np.mean([(b - a) / 2 for _, a, b in sides]))
    # walls (v): planes v = f(u, w) fitted to the anterior and posterior surfaces near the midline
    wall_u = mid_u + np.linspace(-1, 1, 5) * min(ms.wall_half_width_mm, 0.4 * half_width)
    walls = _lines(cross, v, [(uu, 0.0, dw) for uu in wall_u for dw in np.linspace(-1, 1, 7) * WALL_SPAN * h0])
    if len(walls) < 4:
        raise ValueError("body too thin to measure")
    pts = np.array([p for p, _, _ in walls])
    fronts = np.array([a for _, a, _ in walls])
    reach_front = fronts <= fronts.min() + OUTLIER_MM  # lines that pass over a low front (wedge) slip back
    front_plane = _fit(pts[reach_front][:, [0, 2]], fronts[reach_front], quadratic=False)
    back_plane = _fit(pts[:, [0, 2]], np.array([b for _, _, b in walls]), quadratic=False)
    front = float(front_plane @ [1.0, mid_u, 0.0])
    back = float(back_plane @ [1.0, mid_u, 0.0])
    depth = back - front

    # endplate planes from a grid of lines parallel to w over the central region
    r = ms.endplate_region / 2
    grid = [(uu, vv, 0.0) for uu in mid_u + np.linspace(-r, r, 5) * 2 * half_width
            for vv in front + depth / 2 + np.linspace(-r, r, 5) * depth]  # fmt: skip
    ends_grid = _lines(cross, w, grid)
    n_top = n_bot = np.array([0.0, 0.0, 1.0])
    if len(ends_grid) >= 4:
        pts = np.array([p[:2] for p, _, _ in ends_grid])
        n_bot = _normal(_fit(pts, np.array([a for _, a, _ in ends_grid]), quadratic=False))
        n_top = _normal(_fit(pts, np.array([b for _, _, b in ends_grid]), quadratic=False))
    divergence = float(np.degrees(np.arccos(np.clip(np.dot(n_top, n_bot), -1, 1))))
    # the walls' direction (posterior wall in the sagittal plane, the sides' midline in the coronal
    # plane) is the body's axis too; thick slices blur the endplates' tilt but not the walls'
    wall_axis = unit(np.array([mid_plane[2], back_plane[2], 1.0]))
    spacing = np.linalg.norm(vert.affine[:3, :3], axis=0)
    along = lambda d: float(np.abs(frame[:, d]) @ spacing)  # noqa: E731 - voxel extent along a local axis
    sigma_end = along(2) / max(ms.endplate_region * min(depth, 2 * half_width), 1e-6)
    sigma_wall = max(along(0), along(1)) / max(2 * WALL_SPAN * h0, 1e-6)
    sigma_end_deg = float(np.degrees(np.arctan(sigma_end)))
    if divergence > max(ms.endplate_divergence_deg, DIVERGENCE_NOISE * sigma_end_deg):
        own_local = wall_axis  # wedge or fracture: the endplates do not give the axis
    else:
        we, ww = 1 / sigma_end**2, 1 / sigma_wall**2
        own_local = unit((we * unit(n_top + n_bot) + ww * wall_axis) / (we + ww))
    own = unit(frame @ own_local)

    # heights: local quadratic fits of both endplates around each of the three positions
    heights = ends = None
    if vert.complete:
        hs, es = [], []
        du = np.linspace(-1, 1, 7) * min(ms.endplate_window_mm, 0.5 * half_width)
        dv = np.linspace(-1, 1, 5) * ms.endplate_window_share * depth
        for share in HEIGHT_POSITIONS:
            vs_ = front + share * depth
            lines = _lines(cross, w, [(mid_u + a, vs_ + b, 0.0) for a in du for b in dv])
            if len(lines) < 6:
                break
            pts = np.array([(p[0] - mid_u, p[1] - vs_) for p, _, _ in lines])
            lo = float(_fit(pts, np.array([a for _, a, _ in lines]), quadratic=True)[0])
            hi = float(_fit(pts, np.array([b for _, _, b in lines]), quadratic=True)[0])
            hs.append(hi - lo)
            es.append((lo, hi))
        if len(hs) == 3:
            heights, ends = tuple(hs), tuple(es)
    return BodyGeometry(
        centre=centre,
        frame=frame,
        own_axis=own,
        normal_top=unit(frame @ n_top),
        normal_bottom=unit(frame @ n_bot),
        divergence_deg=divergence,
        endplate_sigma_deg=sigma_end_deg,
        front=front,
        back=back,
        mid_u=mid_u,
        back_plane=back_plane,
        heights=heights,  # type: ignore[arg-type]
        ends=ends,
        volume_ml=float(vert.body.sum()) * vert.voxel_ml,
    )


def posterior_direction(vert: VertebraMasks, centre: np.ndarray) -> np.ndarray | None:
    """From the body centroid towards the spinal canal (canal label near the body), else towards
    the posterior elements' centroid."""
    if vert.canal.any() and vert.body.any():
        # canal voxels at the body's height: within the body's bounding slab along the image axes
        pts = vert.world(vert.canal)
        body_pts = vert.world(vert.body)
        lo, hi = body_pts.min(axis=0), body_pts.max(axis=0)
        z = pts[:, 2]
        sel = (z >= lo[2]) & (z <= hi[2])
        if sel.sum() >= 5:
            return pts[sel].mean(axis=0) - centre
    if vert.posterior.any():
        return vert.world(vert.posterior).mean(axis=0) - centre
    return None

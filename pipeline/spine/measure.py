"""Per-level SINS measurements from named vertebra masks (DESIGN.md §2).

- heights: anterior / middle / posterior body height at 15 / 50 / 85 % of the body depth, along the
  body's cranio-caudal axis, in a thin mid-sagittal slab (`geometry.measure_body`);
- reference height: median height of the nearest lesion-free complete neighbours (up to two above
  and two below, each represented by the median of its three heights, which an endplate lip or
  osteophyte cannot inflate; never C1, C2 or S1), else the vertebra's own largest height;
  collapse fraction = 1 - min(heights) / reference;
- body involvement, lytic / blastic fractions: lesion voxel volumes in this vertebra;
- translation of each vertebra on the one below, in the lower body's frame: AP between the
  posterior-inferior corner above and the posterior-superior corner below (> 0 anterior), LR between
  the facing endplate centres (> 0 to the patient's left);
- kyphosis / scoliosis: the segmental angle across a level, between the cranio-caudal axes of the
  vertebrae above and below (each the bisector of its endplate normals), minus the expected regional
  curve (the normal sagittal curve of `anatomy.NORMAL_TILT_DEG`, scaled to this patient by a
  robust fit over the other levels that also fits a lesion level's deformity where it stands out,
  `curve_scale`; no coronal curve is expected);
- posterolateral left / right: lesion volume in the posterior elements on each side of the
  mid-sagittal plane (the costovertebral region included: lesion voxels of a rib head join the
  nearest vertebra's posterior elements in `labels.attach_lesions`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..anatomy import NO_REFERENCE_LEVELS, Lesion, normal_tilt
from ..config import SinsConfig
from ..schema import Measurements
from ..scoring import lesion_type
from .geometry import DIVERGENCE_NOISE, BodyGeometry, BodySampler, measure_body, posterior_direction, unit
from .vertebrae import VertebraMasks

#: The dens of C2 starts where the body's cross-section falls below this share of its largest.
DENS_AREA_SHARE = 0.5


@dataclass(frozen=True)
class LesionStats:
    lytic_ml: float
    blastic_ml: float
    body_ml: float  # lesion volume inside the body
    left_ml: float  # lesion volume in the posterior elements left of the mid-sagittal plane
    right_ml: float

    @property
    def total_ml(self) -> float:
        return self.lytic_ml + self.blastic_ml


@dataclass(frozen=True)
class LevelMeasurement:
    level: str
    complete: bool
    lesion: bool
    measurements: Measurements
    geometry: BodyGeometry | None
    stats: LesionStats


@dataclass(frozen=True)
class SpineMeasurement:
    levels: tuple[LevelMeasurement, ...]
    curve_scale: float | None  # fitted scale of the normal sagittal curve
    notes: tuple[str, ...] = ()


def lesion_stats(vert: VertebraMasks, centre: np.ndarray, left_axis: np.ndarray) -> LesionStats:
    """Lesion volumes of one vertebra; sides split by the plane through `centre` normal to `left_axis`."""
    ml = vert.voxel_ml
    les = vert.lesion
    lytic = float(np.count_nonzero(les == Lesion.LYTIC)) * ml
    blastic = float(np.count_nonzero(les == Lesion.BLASTIC)) * ml
    in_body = float(np.count_nonzero(les[vert.body])) * ml
    post = (les > 0) & vert.posterior
    left = right = 0.0
    if post.any():
        side = (vert.world(post) - centre) @ left_axis
        left = float(np.count_nonzero(side > 0)) * ml
        right = float(np.count_nonzero(side <= 0)) * ml
    return LesionStats(lytic, blastic, in_body, left, right)


def without_dens(c2: VertebraMasks, below: VertebraMasks | None) -> VertebraMasks:
    """C2 for its frame and heights: the dens, a narrow peg rising from the body, is cut off where the
    body's cross-section falls below half its largest (its lesions and volume still count in full)."""
    if not c2.has_body:
        return c2
    pts = c2.world(c2.body)
    axis = c2.centroid - below.centroid if below is not None and below.has_body else np.array([0.0, 0.0, 1.0])
    t = pts @ unit(axis)
    step = float(np.linalg.norm(c2.affine[:3, :3], axis=0).min())
    bins = np.floor((t - t.min()) / step).astype(int)
    area = np.bincount(bins)
    peak = int(np.argmax(area))
    low = np.flatnonzero(area[peak:] < DENS_AREA_SHARE * area[peak])
    if not low.size:
        return c2
    keep = bins < peak + int(low[0])
    body = np.zeros_like(c2.body)
    body[tuple(np.argwhere(c2.body)[keep].T)] = True
    return dataclasses.replace(c2, body=body)


def _initial_axes(centres: list[np.ndarray | None]) -> list[np.ndarray]:
    """Centreline tangent through the body centroids (cranial), world +S where it cannot be had."""
    n = len(centres)
    out = []
    for i in range(n):
        up = next((centres[j] for j in range(i - 1, -1, -1) if centres[j] is not None), None)
        down = next((centres[j] for j in range(i + 1, n) if centres[j] is not None), None)
        here = centres[i]
        if up is not None and down is not None:
            d = up - down
        elif up is not None and here is not None:
            d = up - here
        elif down is not None and here is not None:
            d = here - down
        else:
            d = np.array([0.0, 0.0, 1.0])
        out.append(unit(d))
    return out


def _frames(verts: Sequence[VertebraMasks], cfg: SinsConfig) -> list[BodyGeometry | None]:
    ms = cfg.measurement
    samplers = [BodySampler(v) if v.has_body else None for v in verts]
    centres = [v.world(v.body).mean(axis=0) if v.has_body else None for v in verts]
    axes = _initial_axes(centres)
    post: list[np.ndarray | None] = [
        posterior_direction(v, c) if c is not None else None for v, c in zip(verts, centres, strict=True)
    ]
    known = [p for p in post if p is not None]
    fallback = unit(np.mean([unit(p) for p in known], axis=0)) if known else np.array([0.0, -1.0, 0.0])
    post = [p if p is not None else fallback for p in post]
    geos: list[BodyGeometry | None] = [None] * len(verts)
    for i, v in enumerate(verts):
        if samplers[i] is not None:
            try:
                geos[i] = measure_body(v, samplers[i], axes[i], post[i], ms)  # type: ignore[arg-type]
            except ValueError:
                geos[i] = None
    # second pass in each body's own axis (endplates and walls). Where the endplates diverge (a wedge
    # or a fracture) the axis is whichever of the two endplate normals and the walls' direction lies
    # closest to the neighbours' axes: the endplate that kept its shape, usually.
    reliable = [
        g is not None and g.divergence_deg <= max(ms.endplate_divergence_deg, DIVERGENCE_NOISE * g.endplate_sigma_deg)
        for g in geos
    ]
    final: list[BodyGeometry | None] = []
    for i, g in enumerate(geos):
        sampler = samplers[i]
        if g is None or sampler is None:
            final.append(None)
            continue
        axis = g.own_axis
        if not reliable[i]:
            near = [geos[j].own_axis for j in (i - 1, i + 1) if 0 <= j < len(geos) and reliable[j]]  # type: ignore[union-attr]
            if near:
                ref = unit(np.sum(near, axis=0))
                axis = max((g.normal_top, g.normal_bottom, g.own_axis), key=lambda a: float(np.dot(a, ref)))
        try:
            final.append(measure_body(verts[i], sampler, axis, g.frame[:, 1], ms))
        except ValueError:  # too small or thin to measure in its own axis: keep the first look
            final.append(g)
    return final


def _angle(vec: np.ndarray, frame: np.ndarray) -> tuple[float, float]:
    """(sagittal, coronal) tilt in degrees of a cranial vector in a frame: + anterior, + left."""
    a = frame.T @ vec
    return float(np.degrees(np.arctan2(-a[1], a[2]))), float(np.degrees(np.arctan2(a[0], a[2])))


def _expected(upper: str, lower: str) -> float | None:
    try:
        return normal_tilt(upper) - normal_tilt(lower)
    except ValueError:
        return None


def fit_curve(
    measured: np.ndarray, expected: np.ndarray, cfg: SinsConfig, deformity: np.ndarray | None = None
) -> tuple[float, float]:
    """(scale s, cost) of the normal curve that best explains the measured segmental angles: robust (segments
    over `curve_outlier_deg` off the fit are left out and refitted), with a prior towards 1 worth
    `curve_prior_levels` levels of a 10-degree segment. With `deformity` (segments x lesion levels: the share of
    each lesion level's deformity angle in each segment) those angles are fitted with s, so that they do not pull
    it. The cost: squared departures capped at `curve_outlier_deg` squared, plus the prior's."""
    ms = cfg.measurement
    prior = ms.curve_prior_levels * 100.0
    w = np.zeros((measured.size, 0)) if deformity is None else deformity
    use = np.ones(measured.size, bool)
    x = np.zeros(1 + w.shape[1])
    for _ in range(5):
        a = np.vstack([np.column_stack([expected[use], w[use]]), np.eye(1, 1 + w.shape[1]) * np.sqrt(prior)])
        b = np.concatenate([measured[use], [np.sqrt(prior)]])
        x = np.linalg.lstsq(a, b, rcond=None)[0]
        new = np.abs(measured - x[0] * expected - w @ x[1:]) <= ms.curve_outlier_deg
        if np.array_equal(new, use):
            break
        use = new
    residual = measured - x[0] * expected - w @ x[1:]
    cost = float(np.minimum(residual**2, ms.curve_outlier_deg**2).sum() + prior * (x[0] - 1.0) ** 2)
    return float(x[0]), cost


def curve_scale(
    measured: np.ndarray, expected: np.ndarray, at: Sequence[int], lesions: Sequence[int], cfg: SinsConfig
) -> float:
    """Scale of the normal curve for the segmental angles `measured` across the vertebrae `at` (indices along
    the spine; `expected` at scale 1), with lesions in the vertebrae `lesions`. With `curve_fit_lesion_deformity`
    a lesion level's deformity (its whole angle across the level, half across each neighbour: a vertebra's axis
    is the bisector of its endplates) is fitted too when it lowers the fit's cost by at least one outlier's
    (`curve_outlier_deg` squared); otherwise the lesion levels' segments count as any other."""
    scale, cost = fit_curve(measured, expected, cfg)
    if not cfg.measurement.curve_fit_lesion_deformity or not lesions:
        return scale

    def share(levels: list[int]) -> np.ndarray:
        return np.array([[{0: 1.0, 1: 0.5}.get(abs(i - k), 0.0) for k in levels] for i in at]).reshape(len(at), -1)

    gain = cfg.measurement.curve_outlier_deg**2
    kept = [k for k in lesions if fit_curve(measured, expected, cfg, share([k]))[1] <= cost - gain]
    return fit_curve(measured, expected, cfg, share(kept))[0] if kept else scale


def measure_spine(verts: Sequence[VertebraMasks], levels: Sequence[str], cfg: SinsConfig) -> SpineMeasurement:
    """Measurements of every vertebra (ordered cranial to caudal, named by `levels`)."""
    n = len(verts)
    shapes = [
        without_dens(v, verts[i + 1] if i + 1 < n else None) if levels[i] == "C2" else v for i, v in enumerate(verts)
    ]
    geos = _frames(shapes, cfg)
    stats = []
    for v, g in zip(verts, geos, strict=True):
        if g is not None:
            stats.append(lesion_stats(v, g.centre, g.frame[:, 0]))
        else:  # no body (C1): sides by the image's left-right axis
            pts = v.world(v.posterior) if v.posterior.any() else np.zeros((1, 3))
            stats.append(lesion_stats(v, pts.mean(axis=0), np.array([-1.0, 0.0, 0.0])))
    min_ml = cfg.lesion.min_volume_ml
    has_lesion = [s.total_ml >= min_ml for s in stats]
    complete = [v.complete and g is not None and g.heights is not None for v, g in zip(verts, geos, strict=True)]

    # sagittal / coronal segmental angles across each level, and the expected curve
    seg: dict[int, tuple[float, float]] = {}
    for i in range(1, n - 1):
        if not all(complete[j] for j in (i - 1, i, i + 1)):
            continue
        up, here, low = geos[i - 1], geos[i], geos[i + 1]
        assert up is not None and here is not None and low is not None
        a_k, a_s = _angle(up.frame[:, 2], here.frame)
        b_k, b_s = _angle(low.frame[:, 2], here.frame)
        seg[i] = (a_k - b_k, a_s - b_s)
    expected = {i: _expected(levels[i - 1], levels[i + 1]) for i in seg}
    fit_idx = [i for i in seg if expected[i] is not None]
    scale = None
    notes: list[str] = []
    if fit_idx:
        scale = curve_scale(
            np.array([seg[i][0] for i in fit_idx]),
            np.array([expected[i] for i in fit_idx], float),
            fit_idx,
            [i for i in fit_idx if has_lesion[i]],
            cfg,
        )
    elif seg:
        notes.append("no normal curve known for these levels: kyphosis measured against a straight spine")

    out = []
    for i, g in enumerate(geos):
        st = stats[i]
        heights = ref = collapse = involvement = None
        if complete[i] and g is not None and g.heights is not None:
            heights = g.heights
            neigh = [
                float(np.median(geos[j].heights))  # type: ignore[union-attr, arg-type]
                for j in range(max(0, i - 2), min(n, i + 3))
                if j != i and complete[j] and levels[j] not in NO_REFERENCE_LEVELS and not has_lesion[j]
            ]
            ref = float(np.median(neigh)) if neigh else max(heights)
            collapse = 1.0 - min(heights) / ref
            involvement = st.body_ml / g.volume_ml if g.volume_ml > 0 else None
        t_ap = t_lr = None
        if i + 1 < n and complete[i] and complete[i + 1]:
            t_ap, t_lr = _translation(g, geos[i + 1])  # type: ignore[arg-type]
        kyph = scol = None
        if i in seg:
            e = expected[i] if expected[i] is not None else 0.0
            kyph = seg[i][0] - (scale if scale is not None else 1.0) * e
            scol = seg[i][1]
        total = st.total_ml
        lyf = st.lytic_ml / total if total > 0 else None
        blf = st.blastic_ml / total if total > 0 else None
        m = Measurements(
            height_anterior_mm=heights[0] if heights else None,
            height_middle_mm=heights[1] if heights else None,
            height_posterior_mm=heights[2] if heights else None,
            reference_height_mm=ref,
            collapse_fraction=collapse,
            body_involvement=involvement,
            lytic_fraction=lyf,
            blastic_fraction=blf,
            lesion_type=lesion_type(lyf, blf, cfg) if total > 0 else None,
            translation_ap_mm=t_ap,
            translation_lr_mm=t_lr,
            kyphosis_deg=kyph,
            scoliosis_deg=scol,
            posterolateral_left=st.left_ml,
            posterolateral_right=st.right_ml,
        )
        out.append(LevelMeasurement(levels[i], complete[i], has_lesion[i], m, g, st))
    return SpineMeasurement(tuple(out), scale, tuple(notes))


def _translation(upper: BodyGeometry, lower: BodyGeometry) -> tuple[float, float]:
    """(AP, LR) offset of `upper` on `lower` in the lower body's frame (see module docstring)."""
    assert upper.ends is not None and lower.ends is not None
    w_up, w_low = upper.ends[2][0], lower.ends[2][1]
    corner_up = upper.to_world(np.array([upper.mid_u, upper.back_at(w_up), w_up]))
    corner_low = lower.to_world(np.array([lower.mid_u, lower.back_at(w_low), w_low]))
    mid_up = upper.to_world(np.array([upper.mid_u, upper.front + upper.depth / 2, upper.ends[1][0]]))
    mid_low = lower.to_world(np.array([lower.mid_u, lower.front + lower.depth / 2, lower.ends[1][1]]))
    ap = float(np.dot(corner_up - corner_low, -lower.frame[:, 1]))
    lr = float(np.dot(mid_up - mid_low, lower.frame[:, 0]))
    return ap, lr

"""Label maps in, `SpineLabels` out: anatomy, vertebra instances and lesions on one canonical grid.

Three input conventions (``--label-format``):

- ``opensins``: our anatomy map (`anatomy.Anatomy` ids: body, posterior elements, disc, canal, rib,
  sacrum, pelvis) and lesion map (`anatomy.Lesion`). Vertebrae are separated here: each connected
  vertebral body is one vertebra, and the posterior elements join the body they are connected to
  (geodesic flooding from the bodies), so touching facet joints do not merge neighbours. Levels are
  named later, from anatomical anchors.
- ``verse`` / ``totalseg``: one id per vertebra (VerSe or TotalSegmentator v2 `total` ids). The ids
  name the levels; each whole vertebra is split into body and posterior elements geometrically
  (`split.split_vertebra`, spinal canal as reference).

A lesion voxel that the anatomy map does not mark as bone (a network that lets a lesion replace
bone, a lesion growing out of the cortex) is vertebral body within the outline of the body's voxels
in its slice and the slices within ``instances.body_outline_reach_mm``, else joins the nearest bone
voxel within ``instances.lesion_attach_mm``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import cc3d
import numpy as np
from scipy import ndimage
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from skimage.morphology import convex_hull_image
from skimage.segmentation import watershed

from ..anatomy import TOTALSEG_IDS, TOTALSEG_NAMES, TOTALSEG_SACRUM, VERSE_IDS, VERSE_NAMES, Anatomy, Lesion
from ..config import SinsConfig
from ..errors import CaseError, InputError
from ..volume import Volume
from .localise import BodyAxis, DiscPlanes, body_axis, cut_bodies, disc_planes, fill_bodies, section_radius
from .ribs import RibFinding, find_ribs
from .split import split_vertebra

LABEL_FORMATS: tuple[str, ...] = ("opensins", "verse", "totalseg")
_BONE = (Anatomy.VERTEBRAL_BODY, Anatomy.POSTERIOR_ELEMENTS, Anatomy.SACRUM)


@dataclass(frozen=True)
class SpineLabels:
    """Label maps on the canonical grid of the CT (`affine`: index -> RAS mm).

    instances: vertebra instance id of every body / posterior-element voxel (0 elsewhere).
    names: level name of each instance when the input map gave it (VerSe / TotalSegmentator ids).
    """

    anatomy: np.ndarray
    instances: np.ndarray
    lesions: np.ndarray
    affine: np.ndarray
    names: dict[int, str] = field(default_factory=dict)
    source: str = "opensins"
    notes: tuple[str, ...] = ()
    ribs: RibFinding | None = None  # ribs found in the CT (`spine.ribs`), when the CT was given

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(float(x) for x in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0


def _check_grid(label: Volume, reference: Volume, what: str) -> None:
    if label.shape != reference.shape or not np.allclose(label.affine, reference.affine, atol=1e-3):
        raise InputError(f"{what} {label.source or ''} does not lie on the CT grid".replace("  ", " "))


def _lesion_array(lesions: Volume | None, reference: Volume) -> np.ndarray:
    if lesions is None:
        return np.zeros(reference.shape, np.uint8)
    _check_grid(lesions, reference, "lesion map")
    arr = np.asarray(lesions.array)
    bad = np.setdiff1d(np.unique(arr), [int(v) for v in Lesion])
    if bad.size:
        raise InputError(
            f"lesion map {lesions.source}: unknown label ids {bad[:5].tolist()} (expected 0, 1 lytic, 2 blastic)"
        )
    return arr.astype(np.uint8)


def bounding_box(mask: np.ndarray, margin: int | np.ndarray) -> tuple[slice, ...] | None:
    """Index box of a mask's voxels grown by `margin` voxels (one for every axis, or one per axis),
    clipped to the array; None if empty. Found from the mask's projections on each axis."""
    margins = np.broadcast_to(np.asarray(margin, int), (mask.ndim,))
    axes = range(mask.ndim)
    idx = [np.flatnonzero(mask.any(axis=tuple(j for j in axes if j != i))) for i in axes]
    if idx[0].size == 0:
        return None
    return tuple(
        slice(max(int(i[0]) - m, 0), min(int(i[-1]) + m + 1, n))
        for i, m, n in zip(idx, margins, mask.shape, strict=True)
    )


def grown_pieces(
    labels: np.ndarray, margin: int | np.ndarray, objects: list | None = None
) -> Iterator[tuple[int, tuple[slice, ...], np.ndarray]]:
    """Each piece of a label map (ids 1..max): its id, its box grown by `margin` voxels (one for every
    axis, or one per axis) and clipped to the array, and its mask in that box. `objects` is the map's
    `ndimage.find_objects` when the caller has it already."""
    margins = np.broadcast_to(np.asarray(margin, int), (labels.ndim,))
    for label, box in enumerate(ndimage.find_objects(labels) if objects is None else objects, start=1):
        if box is None:
            continue
        grown = tuple(
            slice(max(b.start - int(m), 0), min(b.stop + int(m), n))
            for b, m, n in zip(box, margins, labels.shape, strict=True)
        )
        yield label, grown, labels[grown] == label


def centroids(labels: np.ndarray, ids) -> np.ndarray:
    """Centroids (index coordinates) of label `ids` in one pass over `labels` (NaN for an absent id)."""
    ids = np.asarray(ids, int)
    out = np.full((ids.size, labels.ndim), np.nan)
    stats = cc3d.statistics(np.ascontiguousarray(labels))
    counts = stats["voxel_counts"]
    present = (ids >= 0) & (ids < counts.size)
    present[present] = counts[ids[present]] > 0
    out[present] = stats["centroids"][ids[present]]
    return out


def box_affine(affine: np.ndarray, box: tuple[slice, ...]) -> np.ndarray:
    """Index -> world affine of a box cut out of a grid with `affine`."""
    out = affine.copy()
    out[:3, 3] = affine[:3, :3] @ np.array([s.start for s in box], float) + affine[:3, 3]
    return out


def inside_body_outline(anatomy: np.ndarray, voxels: np.ndarray, reach: int = 0) -> np.ndarray:
    """Which of `voxels` lie within the convex outline of the vertebral-body voxels of their axial
    slice and the `reach` slices either side (canonical: the last axis runs along the spine), one
    outline for each piece of body and `voxels` joined in the slice: a body a lesion cuts in two keeps
    one outline, a body fragment away from the spine does not stretch it over the posterior elements."""
    out = np.zeros(voxels.shape, bool)
    body_any = anatomy == Anatomy.VERTEBRAL_BODY
    for z in np.nonzero(voxels.any(axis=(0, 1)))[0]:
        body = body_any[..., max(z - reach, 0) : z + reach + 1].any(axis=2)
        joined, _ = ndimage.label(body | voxels[..., z], np.ones((3, 3), bool))
        for _, box, piece in grown_pieces(joined, 0):
            inside = piece & voxels[(*box, z)]
            bone = piece & body[box]
            if inside.any() and bone.any():  # an outline only where it can take voxels
                out[(*box, z)] |= convex_hull_image(bone) & inside
    return out


def attach_lesions(
    anatomy: np.ndarray, lesions: np.ndarray, spacing, max_mm: float, outline_reach_mm: float
) -> tuple[np.ndarray, int]:
    """Give lesion voxels outside bone a bone label: vertebral body within the convex outline of the
    body voxels of their axial slice and those within `outline_reach_mm` along the spine (a lesion
    that replaced the back of a body lies nearer the pedicle's bone than the body's remaining bone),
    otherwise the label of the nearest bone voxel within `max_mm`.

    Returns the new anatomy map and the number of lesion voxels too far from bone (left out).
    """
    stray = (lesions > 0) & ~np.isin(anatomy, _BONE)
    if not stray.any():
        return anatomy, 0
    out = anatomy.copy()
    in_body = inside_body_outline(anatomy, stray, int(np.ceil(outline_reach_mm / spacing[2])))
    out[in_body] = Anatomy.VERTEBRAL_BODY
    stray &= ~in_body
    if not stray.any():
        return out, 0
    margin = int(np.ceil(max_mm / min(spacing))) + 1
    box = bounding_box(stray, margin)
    assert box is not None
    sub = out[box]  # the body voxels just given count as bone for the rest
    bone = np.isin(sub, _BONE)
    if not bone.any():
        return out, int(stray.sum())
    dist, idx = ndimage.distance_transform_edt(~bone, sampling=spacing, return_indices=True)
    s = stray[box]
    near = s & (dist <= max_mm)
    sub[near] = sub[tuple(i[near] for i in idx)]  # the sources are bone, never a stray voxel written
    return out, int((s & ~near).sum())


def _drop_small_bodies(
    comp: np.ndarray, keep: np.ndarray, sizes: np.ndarray, boxes: list, share: float
) -> tuple[np.ndarray, int]:
    """Body components (ids `keep`) at least `share` of the median body (of those at least a quarter
    of the largest), or cut by the image border with an axial cross-section (their largest slice) at
    least `share` of the median body's (a vertebra partly in view, not a fleck at the border); and how
    many were not. `boxes`: `ndimage.find_objects(comp)`."""
    if keep.size < 2 or share <= 0:
        return keep, 0
    border = set()
    for axis in range(3):
        for index in (0, comp.shape[axis] - 1):
            border.update(np.unique(np.take(comp, index, axis=axis)).tolist())
    section = {int(c): int((comp[boxes[c - 1]] == c).sum(axis=(0, 1)).max()) for c in keep}
    big = keep[sizes[keep] >= 0.25 * sizes[keep].max()]  # the bodies proper, not the fragments
    limit = share * float(np.median(sizes[big]))
    section_limit = share * float(np.median([section[int(c)] for c in big]))
    kept = np.array(
        [c for c in keep if sizes[c] >= limit or (int(c) in border and section[int(c)] >= section_limit)],
        dtype=keep.dtype,
    )
    return kept, int(keep.size - kept.size)


def _near_canal(
    comp: np.ndarray, keep: np.ndarray, canal: np.ndarray, spacing, max_mm: float
) -> tuple[np.ndarray, int]:
    """Body components (ids `keep` of `comp`) within `max_mm` of the spinal canal, and how many were
    not. A map without a canal label keeps them all."""
    if not keep.size or not canal.any():
        return keep, 0
    # on a grid of about 2 mm: the limit is coarse and a body (>= min_body_ml) spans many such voxels
    step = max(1, int(2.0 // min(spacing)))
    sub = (slice(None, None, step),) * 3
    coarse = tuple(s * step for s in spacing)
    margin = int(np.ceil(max_mm / min(coarse))) + 1
    box = bounding_box(canal[sub], margin)
    dist = ndimage.distance_transform_edt(~canal[sub][box], sampling=coarse)
    near = np.unique(comp[sub][box][(dist <= max_mm) & (comp[sub][box] > 0)])
    kept = keep[np.isin(keep, near)]
    return kept, int(keep.size - kept.size)


def _one_column(
    comp: np.ndarray, keep: np.ndarray, sizes: np.ndarray, boxes: list, spacing, link_mm: float
) -> tuple[np.ndarray, int]:
    """Body components (ids `keep`) of the spinal column, and how many were not. Components whose
    centroids lie within `link_mm` of each other, through any chain, form a group; the group with the
    most body is the column. A component of another group with at least half its height (the canonical
    k axis) within the column's lies beside the column, not in it (e.g. an arm in the field
    of view that a network drew as body with a canal beside it); groups above or below the column (a
    vertebra missed in between) are kept. `boxes`: `ndimage.find_objects(comp)`."""
    if keep.size < 2 or link_mm <= 0:
        return keep, 0
    centres = np.asarray(ndimage.center_of_mass(comp > 0, comp, keep)) * np.asarray(spacing, float)
    near = np.linalg.norm(centres[:, None] - centres[None], axis=-1) <= link_mm
    n_groups, group = connected_components(csr_matrix(near), directed=False)
    if n_groups == 1:
        return keep, 0
    column = int(np.argmax(np.bincount(group, weights=sizes[keep])))
    heights = np.array([(boxes[c - 1][2].start, boxes[c - 1][2].stop) for c in keep])
    bottom, top = heights[group == column, 0].min(), heights[group == column, 1].max()
    lo, hi = heights[:, 0], heights[:, 1]
    beside = (group != column) & (np.minimum(hi, top) - np.maximum(lo, bottom) >= 0.5 * (hi - lo))
    return keep[~beside], int(beside.sum())


def separate_vertebrae(
    anatomy: np.ndarray,
    spacing,
    cfg: SinsConfig,
    hu: np.ndarray | None = None,
    lesions: np.ndarray | None = None,
    from_network: bool = True,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Instance map of an OpenSINS anatomy map: the column's bodies cut at the disc planes found along
    their centreline (`localise.disc_planes`, through the CT `hu` when given, else the mask's own gaps),
    posterior elements flooded from the bodies; a large body-less posterior piece above all bodies is its
    own instance (C1). Not `from_network` (a user's map, drawn as meant): each connected body is one
    vertebra, and the CT is not used."""
    voxel_ml = float(np.prod(spacing)) / 1000.0
    ic = cfg.instances
    body = anatomy == Anatomy.VERTEBRAL_BODY
    comp = cc3d.connected_components(body, connectivity=6).astype(np.int32)
    sizes = np.bincount(comp.ravel())
    keep = np.nonzero(sizes * voxel_ml >= ic.min_body_ml)[0]
    keep = keep[keep > 0]
    notes: list[str] = []
    dropped = int(np.count_nonzero(sizes[1:] * voxel_ml < ic.min_body_ml))
    if dropped:
        notes.append(f"{dropped} vertebral-body fragment(s) under {ic.min_body_ml} mL ignored")
    keep, far = _near_canal(comp, keep, anatomy == Anatomy.SPINAL_CANAL, spacing, ic.max_body_canal_mm)
    if far:
        notes.append(
            f"{far} vertebral-body component(s) farther than {ic.max_body_canal_mm} mm from the spinal canal "
            "ignored (not part of the column)"
        )
    boxes = ndimage.find_objects(comp)
    keep, beside = _one_column(comp, keep, sizes, boxes, spacing, ic.column_link_mm)
    if beside:
        notes.append(
            f"{beside} vertebral-body component(s) beside the spinal column, at the height of its bodies and "
            f"farther than {ic.column_link_mm} mm from every one, ignored (not part of the column)"
        )
    keep, small = _drop_small_bodies(comp, keep, sizes, boxes, ic.min_body_share)
    if small:
        notes.append(
            f"{small} vertebral-body piece(s) under {ic.min_body_share:.0%} of the median body (in volume, and in "
            "cross-section where the image border cuts them) ignored (fragments, not vertebrae)"
        )
    lut = np.zeros(sizes.size, np.int32)
    lut[keep] = np.arange(1, keep.size + 1)
    markers = lut[comp]  # one vertebra per connected body
    if from_network:
        markers, slab_notes = _column_slabs(markers, anatomy == Anatomy.BACKGROUND, spacing, cfg, hu, lesions)
        notes.extend(slab_notes)
    body |= markers > 0  # voxels the CT added to the bodies
    keep = np.arange(1, int(markers.max()) + 1)
    bone = body | (anatomy == Anatomy.POSTERIOR_ELEMENTS)
    box = bounding_box(bone, 1)
    instances = np.zeros(anatomy.shape, np.int32)
    if box is None:
        return instances, tuple(notes)
    flooded = watershed(np.zeros(bone[box].shape, np.uint8), markers[box], mask=bone[box])
    instances[box] = flooded
    # posterior pieces no body reaches: a ring above every body (C1) or fragments
    stray = bone & (instances == 0)
    if stray.any():
        pieces = cc3d.connected_components(stray, connectivity=26)
        n_new = int(keep.size)
        top_body = None  # highest body centroid (canonical k runs inferior -> superior)
        top_centre = None  # ... and that body's centroid in mm
        if keep.size:
            centres = np.asarray(ndimage.center_of_mass(markers > 0, markers, np.arange(1, keep.size + 1)))
            top_body = float(centres[:, 2].max())
            top_centre = centres[int(np.argmax(centres[:, 2]))] * np.asarray(spacing, float)
        sizes = np.bincount(pieces.ravel())
        k_sum = np.zeros(sizes.size)
        for k in range(pieces.shape[2]):  # sum of the k index per piece, a slice at a time
            k_sum += k * np.bincount(pieces[..., k].ravel(), minlength=sizes.size)
        orphans = []
        for label in np.nonzero(sizes * voxel_ml >= ic.min_fragment_ml)[0]:
            if label == 0:
                continue
            ml = sizes[label] * voxel_ml
            if (
                ml >= ic.min_ring_ml
                and (top_body is None or k_sum[label] / sizes[label] > top_body)
                and (
                    top_centre is None  # a ring right above the column, not a structure beside it (an arm)
                    or np.linalg.norm(np.asarray(ndimage.center_of_mass(pieces == label)) * spacing - top_centre)
                    <= ic.column_link_mm
                )
            ):
                n_new += 1
                instances[pieces == label] = n_new
            else:
                orphans.append(int(label))
        posterior_pieces = np.where(anatomy == Anatomy.POSTERIOR_ELEMENTS, pieces, 0)  # not dropped body bits
        joined = _join_across_gaps(instances, posterior_pieces, orphans, spacing, ic.posterior_gap_mm)
        for label in orphans:
            ml = sizes[label] * voxel_ml
            if label in joined:
                notes.append(f"a posterior-element fragment of {ml:.2f} mL joined the nearest vertebra across a gap")
            else:
                notes.append(f"a posterior-element fragment of {ml:.2f} mL touches no vertebral body; left out")
    return instances, tuple(notes)


def _column_slabs(
    bodies: np.ndarray,
    free: np.ndarray,
    spacing,
    cfg: SinsConfig,
    hu: np.ndarray | None,
    lesions: np.ndarray | None,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """The column's body voxels (`bodies`: one id per connected body) numbered by vertebra, caudal to
    cranial: the slabs between the disc planes along the bodies' centreline, the bodies completed from the
    CT `hu` in `free` voxels where it is given (`localise.fill_bodies`); slabs under `instances.min_body_ml`,
    or under `min_body_share` of the median one unless cut by the image border, are left out. Without a
    centreline (fewer than three slices of body), `bodies` as they are."""
    column = bodies > 0
    axis = body_axis(column, spacing, cfg.localise)
    if axis is None:
        return bodies, ()
    if hu is not None:
        column = fill_bodies(hu, column, free, spacing, axis, cfg.localise)
    values = hu if hu is not None else np.zeros(column.shape, np.float32)
    planes = disc_planes(values, column, lesions, spacing, cfg.localise, axis)
    assert planes is not None
    slabs = _pieces_by_slab(column, cut_bodies(column, planes, spacing), planes, axis, spacing, cfg)
    sizes = np.bincount(slabs.ravel())
    voxel_ml = float(np.prod(spacing)) / 1000.0
    keep = np.flatnonzero(sizes * voxel_ml >= cfg.instances.min_body_ml)
    keep = keep[keep > 0]
    keep, small = _drop_small_bodies(slabs, keep, sizes, ndimage.find_objects(slabs), cfg.instances.min_body_share)
    lut = np.zeros(sizes.size, np.int32)
    lut[keep] = np.arange(1, keep.size + 1)
    notes = (f"{len(planes)} disc plane(s) found along the vertebral bodies' centreline",)
    if small:
        notes = (*notes, f"{small} slab(s) of vertebral body between disc planes too small to be a vertebra ignored")
    return lut[slabs], notes


def _pieces_by_slab(
    column: np.ndarray, slabs: np.ndarray, planes: DiscPlanes, axis: BodyAxis, spacing, cfg: SinsConfig
) -> np.ndarray:
    """One id per part of a connected body piece (6-neighbourhood) in one slab. Pieces the segmentation
    separated stay apart; a piece is cut only when it is longer along the axis than `split_min_length`
    times the spacing the bodies' size suggests (`localise.spacing_per_radius` times their typical radius:
    two bodies or more; one body is about 0.8 of it), and only
    where each part holds at least `split_min_share` of its largest part (the rim of an end plate or a translated body
    reaching past a disc plane stays with its body: such parts join the piece's nearest kept slab)."""
    ic = cfg.instances
    n_slabs = len(planes) + 2
    spacing = np.asarray(spacing, float)
    typical = cfg.localise.spacing_per_radius * section_radius(column, spacing, cfg.localise)
    comp = cc3d.connected_components(column, connectivity=6).astype(np.int64)
    counts = np.bincount((comp * n_slabs + slabs)[column], minlength=(int(comp.max()) + 1) * n_slabs)
    counts = counts.reshape(-1, n_slabs)
    lut = np.arange(counts.size, dtype=np.int64).reshape(counts.shape)
    for c, box in enumerate(ndimage.find_objects(comp.astype(np.int32)), start=1):
        row = counts[c]
        if box is None or not row.any():
            continue
        mm = (np.argwhere(comp[box] == c) + np.array([b.start for b in box])) * spacing
        tangent = axis.tangents[int(np.argmin(np.linalg.norm(axis.points - mm.mean(axis=0), axis=1)))]
        long = float(np.ptp(mm @ tangent)) >= ic.split_min_length * typical
        kept = np.flatnonzero(row >= ic.split_min_share * row.max()) if long else np.array([], int)
        if not kept.size:
            kept = np.array([int(np.argmax(row))])
        for k in np.flatnonzero(row):
            lut[c, k] = c * n_slabs + int(kept[np.argmin(np.abs(kept - k))])
    pair = np.where(column, lut.ravel()[comp * n_slabs + slabs], 0)
    ids, inverse = np.unique(pair, return_inverse=True)
    out = inverse.reshape(pair.shape).astype(np.int32)
    return out if ids[0] == 0 else out + 1


def _join_across_gaps(instances: np.ndarray, pieces: np.ndarray, labels: list[int], spacing, gap_mm: float) -> set[int]:
    """Give each piece of `labels` within `gap_mm` of a vertebra the instance of the nearest vertebra
    voxel, voxel by voxel (in place; a posterior arch a network cut off at the pedicles). Returns the
    pieces joined."""
    if not labels or gap_mm <= 0:
        return set()
    mask = np.isin(pieces, labels)
    box = bounding_box(mask, int(np.ceil(gap_mm / min(spacing))) + 1)
    if box is None or not instances[box].any():
        return set()
    sub = instances[box]  # a view: assigning into it fills `instances`
    labels = [lab for lab in labels if lab in set(np.unique(pieces[box]).tolist())]
    if not labels:
        return set()
    dist, idx = ndimage.distance_transform_edt(sub == 0, sampling=spacing, return_indices=True)
    near = ndimage.minimum(dist, pieces[box], labels)
    joined = {lab for lab, d in zip(labels, np.atleast_1d(near), strict=True) if d <= gap_mm}
    take = np.isin(pieces[box], list(joined))
    sub[take] = sub[tuple(i[take] for i in idx)]
    return joined


def check_anatomy_ids(anatomy: Volume) -> None:
    """An OpenSINS anatomy map holds only `Anatomy` ids (InputError otherwise)."""
    bad = np.setdiff1d(np.unique(anatomy.array), [int(v) for v in Anatomy])
    if bad.size:
        raise InputError(
            f"anatomy map {anatomy.source}: unknown label ids {bad[:5].tolist()}; an OpenSINS map has 0-7 "
            "(use --label-format verse or totalseg for those tools' vertebra ids)"
        )


def spine_box(labels: np.ndarray, fmt: str, spacing, margin_mm: float) -> tuple[slice, ...] | None:
    """Index box of the spine in a label map (vertebrae, canal, discs, sacrum; not ribs or pelvis),
    grown by `margin_mm`: the analysis runs on this box, so its cost follows the spine, not the scan."""
    if fmt == "opensins":
        ids = [Anatomy.VERTEBRAL_BODY, Anatomy.POSTERIOR_ELEMENTS, Anatomy.DISC, Anatomy.SPINAL_CANAL, Anatomy.SACRUM]
    elif fmt == "verse":
        ids = list(VERSE_IDS.values())
    else:
        ids = [*TOTALSEG_IDS.values(), TOTALSEG_SACRUM]
    return bounding_box(np.isin(labels, ids), np.ceil(margin_mm / np.asarray(spacing, float)).astype(int))


def widen_box(box: tuple[slice, ...], shape, spacing, lateral_mm: float, back_mm: float) -> tuple[slice, ...]:
    """An index box grown to at least `lateral_mm` either side of its centre across (canonical axis 0) and
    `back_mm` behind it (axis 1 runs posterior -> anterior), clipped to `shape`."""
    cx = (box[0].start + box[0].stop) / 2
    half = lateral_mm / spacing[0]
    x = slice(max(min(box[0].start, int(cx - half)), 0), min(max(box[0].stop, int(np.ceil(cx + half))), shape[0]))
    y = slice(max(min(box[1].start, box[1].start - int(back_mm / spacing[1])), 0), box[1].stop)
    return (x, y, box[2])


def crop_volume(volume: Volume, box: tuple[slice, ...]) -> Volume:
    """The part of a volume inside an index box, with its own affine."""
    return replace(volume, array=np.ascontiguousarray(volume.array[box]), affine=box_affine(volume.affine, box))


def embed_labels(
    labels: SpineLabels, box: tuple[slice, ...], shape: tuple[int, ...], affine: np.ndarray
) -> SpineLabels:
    """Labels found on a box put back onto the full grid (`shape`, `affine`)."""

    def full(a: np.ndarray) -> np.ndarray:
        out = np.zeros(shape, a.dtype)
        out[box] = a
        return out

    return replace(
        labels, anatomy=full(labels.anatomy), instances=full(labels.instances), lesions=full(labels.lesions),
        affine=affine,
    )  # fmt: skip


def labels_from_opensins(
    anatomy: Volume,
    lesions: Volume | None,
    cfg: SinsConfig,
    reference: Volume | None = None,
    check_ids: bool = True,
    from_network: bool = False,
) -> SpineLabels:
    """SpineLabels from OpenSINS anatomy and lesion maps (canonical grid, see `Volume`). With `reference` a
    CT, its ribs name the levels; for a network's map (`from_network`; a user's is kept as drawn), the
    bodies are also separated at the disc planes of the CT's profile and completed from its bone
    (`separate_vertebrae`)."""
    reference = reference or anatomy
    _check_grid(anatomy, reference, "anatomy map")
    arr = np.asarray(anatomy.array)
    if check_ids:  # False where the caller checked the whole map already (or the network made it)
        check_anatomy_ids(anatomy)
    les = _lesion_array(lesions, reference)
    spacing = reference.spacing
    arr, lost = attach_lesions(
        arr.astype(np.uint8), les, spacing, cfg.instances.lesion_attach_mm, cfg.instances.body_outline_reach_mm
    )
    notes = []
    if lost:
        notes.append(f"{lost} lesion voxels lie farther than {cfg.instances.lesion_attach_mm} mm from bone; left out")
        les = np.where(np.isin(arr, _BONE), les, 0).astype(np.uint8)
    hu = reference.array if reference is not anatomy else None
    instances, inst_notes = separate_vertebrae(arr, spacing, cfg, hu, les, from_network)
    arr[(instances > 0) & (arr == Anatomy.BACKGROUND)] = Anatomy.VERTEBRAL_BODY  # bodies completed from the CT
    if not instances.any():
        raise CaseError("no vertebra found in the anatomy map")
    ribs = None if hu is None else find_ribs(hu, instances, arr == Anatomy.VERTEBRAL_BODY, spacing, cfg.localise)
    return SpineLabels(arr, instances, les, reference.affine, {}, "opensins", tuple(notes) + inst_notes, ribs)


def labels_from_ids(
    vertebrae: Volume, fmt: str, lesions: Volume | None, cfg: SinsConfig, reference: Volume | None = None
) -> SpineLabels:
    """SpineLabels from a VerSe or TotalSegmentator v2 map (one id per vertebra); other ids are ignored."""
    if fmt not in ("verse", "totalseg"):
        raise ValueError(fmt)
    reference = reference or vertebrae
    _check_grid(vertebrae, reference, "label map")
    names = VERSE_NAMES if fmt == "verse" else TOTALSEG_NAMES
    arr = np.asarray(vertebrae.array)
    present = [int(i) for i in np.unique(arr) if int(i) in names]
    if not present:
        raise CaseError(f"the {fmt} label map {vertebrae.source} holds no vertebra id")
    anatomy = np.zeros(arr.shape, np.uint8)
    instances = np.zeros(arr.shape, np.int32)
    if fmt == "totalseg":
        anatomy[arr == TOTALSEG_SACRUM] = Anatomy.SACRUM
    level_of: dict[int, str] = {}
    notes: list[str] = []
    for n, label in enumerate(present, start=1):
        level = names[label]
        mask = arr == label
        box = bounding_box(mask, 2)
        assert box is not None
        sub = mask[box]
        sub_affine = box_affine(reference.affine, box)
        if level == "S1" and fmt == "verse":  # VerSe 26 is the whole sacrum: no body to split
            anatomy[mask] = Anatomy.SACRUM
            instances[mask] = n
            level_of[n] = level
            continue
        split = split_vertebra(sub, sub_affine)
        part = np.where(split.body, Anatomy.VERTEBRAL_BODY, Anatomy.POSTERIOR_ELEMENTS).astype(np.uint8)
        anatomy[box][sub] = part[sub]
        instances[box][sub] = n
        level_of[n] = level
        notes.extend(f"{level}: {note}" for note in split.notes)
    les = _lesion_array(lesions, reference)
    anatomy, lost = attach_lesions(
        anatomy, les, reference.spacing, cfg.instances.lesion_attach_mm, cfg.instances.body_outline_reach_mm
    )
    if lost:
        notes.append(f"{lost} lesion voxels lie farther than {cfg.instances.lesion_attach_mm} mm from bone; left out")
    # lesion voxels that joined bone take the instance of the nearest instance voxel
    gap = (anatomy > 0) & np.isin(anatomy, _BONE) & (instances == 0) & (les > 0)
    if gap.any():
        _, idx = ndimage.distance_transform_edt(instances == 0, return_indices=True)
        instances[gap] = instances[tuple(i[gap] for i in idx)]
    return SpineLabels(anatomy, instances, les, reference.affine, level_of, fmt, tuple(notes))

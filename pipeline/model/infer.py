"""Segment a CT with the shipped network: coarse localisation, crop, fine sliding window, back to the
input grid (DESIGN.md §3).

All arrays are on the canonical RAS grid of `pipeline.volume`; resampling is an axis-aligned zoom of
that grid, so no interpolation of the geometry itself is needed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cc3d
import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import sliding_window_inference
from scipy import ndimage

from ..anatomy import Anatomy, Lesion
from ..config import LesionThresholds
from ..errors import CaseError
from ..spine.labels import bounding_box, grown_pieces
from ..volume import Volume
from .card import Intensity, LoadedModel
from .classes import BLASTIC_CHANNEL, LYTIC_CHANNEL, SPINE_CHANNELS, from_prediction

#: Margin (mm) around the localised spine before the fine pass.
CROP_MARGIN_MM = 20.0
#: Pieces of the coarse spine mask centred within this margin of the column's axial footprint belong to it.
COLUMN_MARGIN_MM = 15.0
#: Fine slices upsampled onto the CT grid at a time: bounds memory on long scans.
SLAB = 48
OVERLAP = 0.25
#: Patches per network call in the sliding window: small on the CPU (no gain from more, more memory),
#: larger on a GPU, which runs a batch of patches in about the time of one.
SW_BATCH = {"cpu": 2, "cuda": 16}
#: A lesion piece left out gives its voxels back to the nearest bone found within this margin.
REFILL_MARGIN_MM = 5.0


@dataclass(frozen=True)
class Segmentation:
    """Network output on the canonical grid of the CT."""

    anatomy: np.ndarray  # uint8 `Anatomy` ids (lesion voxels 0: they take a bone label later)
    lesions: np.ndarray  # uint8 `Lesion` ids
    crop: tuple[slice, slice, slice]  # where the spine was found
    timings_s: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # lesion pieces left out by the checks, for the case notes


def normalise(hu: np.ndarray, intensity: Intensity) -> np.ndarray:
    """HU -> [0, 1] float32 (one copy of the volume, worked in place)."""
    x = hu.astype(np.float32)
    x -= intensity.hu_min
    x *= 1.0 / (intensity.hu_max - intensity.hu_min)
    return np.clip(x, 0.0, 1.0, out=x)


def zoom_to(x: torch.Tensor, shape: tuple[int, ...], mode: str = "trilinear") -> torch.Tensor:
    """Resize a (C, X, Y, Z) tensor to `shape` (align_corners=False: voxel centres keep their place)."""
    if tuple(x.shape[1:]) == tuple(shape):
        return x
    kw = {"align_corners": False} if mode == "trilinear" else {}
    return F.interpolate(x[None], size=shape, mode=mode, **kw)[0]


def grid_shape(shape: tuple[int, ...], spacing: tuple[float, ...], target: float) -> tuple[int, int, int]:
    return tuple(max(8, round(n * s / target)) for n, s in zip(shape, spacing, strict=True))  # type: ignore[return-value]


def column_mask(spine: np.ndarray, spacing_mm: float) -> np.ndarray:
    """The spinal column in a coarse spine mask: its largest connected piece, and the pieces that are
    either big (a column broken at a disc) or lie within the column's axial footprint (C1, a piece cut
    by the scan); small pieces off to the side (a femoral head or rib the network mistook) are dropped."""
    comp = cc3d.connected_components(spine, connectivity=26)
    sizes = np.bincount(comp.ravel())
    sizes[0] = 0
    if sizes.max() == 0:
        return spine
    largest = int(np.argmax(sizes))
    margin = int(np.ceil(COLUMN_MARGIN_MM / spacing_mm))
    lo = [int(i.min()) - margin for i in np.nonzero(comp == largest)[:2]]
    hi = [int(i.max()) + margin for i in np.nonzero(comp == largest)[:2]]
    keep = np.zeros(sizes.size, bool)
    for label, box in enumerate(ndimage.find_objects(comp), start=1):
        if box is None:
            continue
        centre = [(b.start + b.stop - 1) / 2 for b in box[:2]]
        inside = all(a <= c <= z for a, c, z in zip(lo, centre, hi, strict=True))
        keep[label] = label == largest or sizes[label] >= 0.2 * sizes[largest] or inside
    return keep[comp]


def _predict(model: LoadedModel, x: torch.Tensor, overlap: float = OVERLAP) -> torch.Tensor:
    """Softmax probabilities (C, X, Y, Z) of an image (1, X, Y, Z), left on the model's device."""
    device = model.device
    on_gpu = device.type == "cuda"  # mixed precision on CUDA; fp32 (deterministic) on the CPU
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.float16, enabled=on_gpu):
        logits = sliding_window_inference(
            x[None].to(device),
            roi_size=model.card.patch,
            sw_batch_size=SW_BATCH[device.type],
            predictor=model.net,
            overlap=overlap,
            mode="gaussian",
        )
        return torch.softmax(logits[0].float(), dim=0)


def channel_argmax(p: torch.Tensor) -> torch.Tensor:
    """The likeliest channel of (C, ...) probabilities: `max`'s indices, which are argmax's (the first
    maximum on ties, as documented for both), about 10x faster on the CPU than `argmax` over the
    leading, strided dimension (4.7 s of a 512x512x400 CT's segment stage)."""
    return p.max(0).indices


def average_mirrored_posterior(p: torch.Tensor, mirrored: torch.Tensor) -> int:
    """In place: where the likeliest class of (C, X, Y, Z) probabilities `p` is posterior elements, `p`
    becomes the mean of `p` and `mirrored` (the pass over the left-right mirrored image, axis 1 of the
    canonical grid, mirrored back). Test-time augmentation of the posterior elements only: it finds more
    of a small pedicle lesion on thick slices, while averaged bodies gave a wedge's collapsed front to
    body. Returns how many voxels were averaged."""
    where = channel_argmax(p) == int(Anatomy.POSTERIOR_ELEMENTS)
    p[:, where] = 0.5 * (p[:, where] + mirrored[:, where])
    return int(torch.count_nonzero(where))


def drop_thin_lesions(lesions: np.ndarray, min_voxels: int) -> tuple[np.ndarray, int]:
    """Lesion pieces at least `min_voxels` thick in every direction: a digital ball of that diameter (the
    voxels whose centres lie within `min_voxels / 2` of its centre; for 3, the 3x3x3 block less its
    corners; an even `min_voxels` asks for one voxel more) fits inside. Thinner ones are partial-volume
    cortex or endplate on thick slices, not a lesion. Returns the map and how many pieces were dropped."""
    if min_voxels <= 1 or not lesions.any():
        return lesions, 0
    comp = cc3d.connected_components(lesions > 0, connectivity=26)
    out = lesions.copy()
    dropped = 0
    for _, grown, piece in grown_pieces(comp, 1):
        inner = ndimage.distance_transform_edt(np.pad(piece, 1))  # voxels to the nearest outside voxel
        if inner.max() <= min_voxels / 2:  # the ball fits where every voxel within min_voxels / 2 is inside
            out[grown][piece] = 0
            dropped += 1
    return out, dropped


def bone_interior(anatomy: np.ndarray, lesions: np.ndarray, spacing: tuple[float, ...], depth_mm: float) -> np.ndarray:
    """The vertebral bodies' interior: voxels at least `depth_mm` inside body-or-lesion (box erosion per
    axis), so the cortex is left out; all of body-or-lesion when nothing is that deep, empty without
    vertebral bodies."""
    body = anatomy == Anatomy.VERTEBRAL_BODY
    if not body.any():
        return body
    bone = body | (lesions > 0)
    size = [2 * int(np.ceil(depth_mm / s)) + 1 for s in spacing]
    interior = ndimage.minimum_filter(bone.view(np.uint8), size=size).astype(bool)
    return interior if interior.any() else bone


def bone_reference_hu(hu: np.ndarray, interior: np.ndarray) -> float | None:
    """The patient's own vertebral bone: median HU of the bodies' interior (`bone_interior`, lesions
    included so that bone the network wrongly calls lesion everywhere sets the reference itself).
    None without vertebral bodies."""
    return float(np.median(hu[interior])) if interior.any() else None


def _grown_within(seed: np.ndarray, allowed: np.ndarray, steps: int) -> np.ndarray:
    """Voxels of `allowed` that `seed` reaches in up to `steps` steps (26-neighbourhood) without leaving
    `allowed` (geodesic dilation); the seed itself left out."""
    ball = ndimage.generate_binary_structure(3, 3)
    return ndimage.binary_dilation(seed, ball, iterations=steps, mask=allowed | seed) & ~seed


def _made_blastic(lesions: np.ndarray, box: tuple[slice, ...], mask: np.ndarray) -> tuple[np.ndarray, int]:
    """A copy of `lesions` with the voxels of `mask` (within `box`) blastic, and how many; the map itself
    when `mask` is empty."""
    n = int(np.count_nonzero(mask))
    if not n:
        return lesions, 0
    out = lesions.copy()
    out[box][mask] = Lesion.BLASTIC
    return out, n


def mark_sclerotic_rim(
    hu: np.ndarray,
    lesions: np.ndarray,
    interior: np.ndarray,
    spacing: tuple[float, ...],
    threshold_hu: float,
    rim_mm: float,
    rim_voxels: int = 0,
) -> tuple[np.ndarray, int]:
    """Lesions with the sclerotic rim of mixed lesions made blastic: voxels of the bodies' interior at
    least `threshold_hu` bright that lie in a lytic piece, within `rim_mm` of one or within `rim_voxels`
    voxels of one (26-neighbourhood; at voxels wider than `rim_mm` the distance alone reaches nothing
    outside the piece). The network draws such a thin bright rim mostly as bone or lytic. Returns the
    map and the voxels made blastic."""
    lytic = lesions == Lesion.LYTIC
    if (rim_mm <= 0 and rim_voxels <= 0) or not lytic.any():
        return lesions, 0
    reach = np.maximum(np.ceil(max(rim_mm, 0.0) / np.asarray(spacing, float)).astype(int), max(rim_voxels, 0))
    box = bounding_box(lytic, reach)
    assert box is not None
    near = lytic[box]
    if rim_voxels > 0:
        near = ndimage.binary_dilation(near, ndimage.generate_binary_structure(3, 3), iterations=rim_voxels)
    if rim_mm > 0:  # no distance map for the pass that only reaches the next voxels
        near = near | (ndimage.distance_transform_edt(~lytic[box], sampling=spacing) <= rim_mm)
    rim = near & interior[box] & (hu[box] >= threshold_hu) & (lesions[box] != Lesion.BLASTIC)
    return _made_blastic(lesions, box, rim)


def drop_faint_lesions(
    hu: np.ndarray,
    lesions: np.ndarray,
    reference_hu: float | None,
    lytic_contrast_hu: float,
    blastic_contrast_hu: float,
    core: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Lesion pieces that stand out from the patient's bone (`reference_hu`, `bone_reference_hu`): a
    lytic piece's median HU at least `lytic_contrast_hu` below it, a blastic piece's at least
    `blastic_contrast_hu` above it, the median taken over the piece's `core` voxels when it has any (the
    argmax's lesion, not the partial-volume rim `decide` adds). The median, not the mean: the lytic
    part of a mixed lesion has a bright partial-volume edge against its blastic part, which lifted its
    mean to the bone's in low-density bone. Fainter pieces are low-density bone, fat or partial volume,
    not a lesion. Returns the map and how many pieces were dropped (none without a reference)."""
    if reference_hu is None or not lesions.any():
        return lesions, 0
    comp = cc3d.connected_components(lesions, connectivity=26)  # lytic and blastic pieces apart
    n = int(comp.max())
    index = np.arange(1, n + 1)
    inside = comp > 0
    ids, values = comp[inside], hu[inside]  # the lesion voxels only: a median over the crop would sort it all
    level = np.zeros(n + 1)
    level[1:] = ndimage.median(values, ids, index)
    if core is not None:
        at = core[inside]
        has_core = np.bincount(ids[at], minlength=n + 1) > 0
        if has_core[1:].any():
            level[1:] = np.where(has_core[1:], ndimage.median(values[at], ids[at], index), level[1:])
    kind = np.zeros(n + 1, np.uint8)
    kind[ids] = lesions[inside]
    faint = ((kind == Lesion.LYTIC) & (level > reference_hu - lytic_contrast_hu)) | (
        (kind == Lesion.BLASTIC) & (level < reference_hu + blastic_contrast_hu)
    )
    faint[0] = False
    if not faint.any():
        return lesions, 0
    out = lesions.copy()
    out[faint[comp]] = 0
    return out, int(faint.sum())


def grow_lesions(
    hu: np.ndarray,
    anatomy: np.ndarray,
    lesions: np.ndarray,
    interior: np.ndarray,
    reference_hu: float | None,
    edge_voxels: int,
    min_voxels: int,
) -> tuple[np.ndarray, int]:
    """Lesion pieces grown by up to `edge_voxels` voxels (26-neighbourhood) into the vertebral body where
    a voxel is more lesion than bone by its HU: the partial-volume edge of a body lesion, which the
    network leaves to bone (a lesion filling 60-75 % of a body came out at 25-50 %, its edge against the
    cortex being bright). A voxel joins a lytic piece when its HU is below the midpoint between the
    piece's median HU and the brightest body voxel around it (3x3x3; cortex or cancellous bone, whichever
    it borders); a blastic piece when above the midpoint between the piece's median HU and the bone
    `reference_hu`, in the bodies' `interior` only (not the cortex). Only pieces of at least `min_voxels`
    grow (the lesion volume that counts a level): an edge must not lift a speck over that volume and make
    a lesion level of it. Returns the map and the voxels added."""
    if reference_hu is None or edge_voxels <= 0 or not lesions.any():
        return lesions, 0
    comp = cc3d.connected_components(lesions, connectivity=26)
    out = lesions.copy()
    ball = ndimage.generate_binary_structure(3, 3)
    added = 0
    for _, grown, piece in grown_pieces(comp, edge_voxels + 1):
        if np.count_nonzero(piece) < min_voxels:
            continue
        kind = int(lesions[grown][piece][0])
        hu_sub = hu[grown]
        median = float(np.median(hu_sub[piece]))
        free = (anatomy[grown] == Anatomy.VERTEBRAL_BODY) & (out[grown] == 0)
        if kind == Lesion.LYTIC:
            bone = ndimage.maximum_filter(np.where(free, hu_sub, -np.inf), footprint=ball)
            side = hu_sub < 0.5 * (median + bone)
        else:
            side = (hu_sub > 0.5 * (median + reference_hu)) & interior[grown]
        take = _grown_within(piece, free & side, edge_voxels)
        if take.any():
            out[grown][take] = kind
            added += int(np.count_nonzero(take))
    return out, added


def _near_a_counted_piece(
    lesions: np.ndarray, spacing: tuple[float, ...], reach_mm: float, min_voxels: int
) -> np.ndarray:
    """Lesion voxels of pieces (26-neighbourhood, any kind) of at least `min_voxels`, or within `reach_mm` of one."""
    comp = cc3d.connected_components(lesions > 0, connectivity=26)
    counted = np.bincount(comp.ravel()) >= min_voxels
    counted[0] = False
    keep = counted.copy()
    margin = np.ceil(reach_mm / np.asarray(spacing, float)).astype(int)
    for label, grown, piece in grown_pieces(comp, margin):
        if not counted[label]:
            near = ndimage.distance_transform_edt(~piece, sampling=spacing) <= reach_mm
            keep[label] = counted[comp[grown][near]].any()
    return keep[comp]


def spread_blastic(
    hu: np.ndarray,
    anatomy: np.ndarray,
    lesions: np.ndarray,
    interior: np.ndarray,
    reference_hu: float | None,
    spacing: tuple[float, ...],
    reach_mm: float,
    contrast_hu: float,
    min_voxels: int = 0,
) -> tuple[np.ndarray, int]:
    """Blastic pieces spread, up to `reach_mm` (steps of the finest voxel side, 26-neighbourhood), through free voxels
    of the bodies' `interior` at least `contrast_hu` brighter than the bone `reference_hu`: sclerotic bone the network
    left to bone round a blastic piece (the thin bright shell of a mixed lesion). Not into the posterior elements:
    there the cortex reads as bright as sclerotic bone, and a blastic lesion at the back of a real vertebral body
    spread along the pedicle's cortex (1.6-2.5 mL of false posterior lesion on `ts_abdomen_3mm`). A lesion piece
    (lytic and blastic voxels together, 26-neighbourhood) under `min_voxels` spreads only within `reach_mm` of a piece
    of at least that size: a lone speck must not grow into a lesion level of its own. Returns the map and the voxels
    added."""
    blastic = lesions == Lesion.BLASTIC
    if reach_mm <= 0 or reference_hu is None or not blastic.any():
        return lesions, 0
    if min_voxels > 1:
        blastic &= _near_a_counted_piece(lesions, spacing, reach_mm, min_voxels)
        if not blastic.any():
            return lesions, 0
    reach = np.ceil(reach_mm / np.asarray(spacing, float)).astype(int)
    box = bounding_box(blastic, reach)
    assert box is not None
    bright = (
        (anatomy[box] == Anatomy.VERTEBRAL_BODY)
        & (lesions[box] == 0)
        & interior[box]
        & (hu[box] >= reference_hu + contrast_hu)
    )
    take = _grown_within(blastic[box], bright, int(np.ceil(reach_mm / min(spacing))))
    return _made_blastic(lesions, box, take)


def _left_out(before: np.ndarray, after: np.ndarray, pieces: int, voxel_ml: float, why: str) -> str:
    ml = (np.count_nonzero(before) - np.count_nonzero(after)) * voxel_ml
    return f"{pieces} lesion piece(s) the network marked ({ml:.2f} mL) not counted: {why}"


def check_lesions(
    hu: np.ndarray,
    anatomy: np.ndarray,
    lesions: np.ndarray,
    spacing: tuple[float, ...],
    t: LesionThresholds,
    core: np.ndarray | None = None,
) -> tuple[np.ndarray, list[str]]:
    """The network's lesion map after its checks: thin pieces on thick-slice scans (`drop_thin_lesions`)
    and pieces that do not stand out from the patient's bone (`drop_faint_lesions`, judged on their
    `core`: the argmax's lesion voxels) left out, a mixed lesion's sclerotic rim made blastic
    (`mark_sclerotic_rim`: within `network_rim_mm` of the lytic pieces before the faint check, their
    next `network_rim_voxels` voxels round the pieces it keeps after it), the kept pieces' partial-volume
    edge in the bodies added (`grow_lesions`), and the kept blastic pieces spread through the bodies'
    bright interior (`spread_blastic`); with a note for each rule that changed the map."""
    voxel_ml = float(np.prod(spacing)) / 1000.0
    notes: list[str] = []
    kept = lesions
    if max(spacing) >= t.network_thick_slice_ratio * min(spacing):
        out, n = drop_thin_lesions(kept, t.network_min_thickness_vox)
        if n:
            why = f"thinner than {t.network_min_thickness_vox} voxels on thick slices (partial volume)"
            notes.append(_left_out(kept, out, n, voxel_ml, why))
        kept = out
    if kept.any():  # the reference costs a pass over the crop: only when there is something to judge
        interior = bone_interior(anatomy, kept, spacing, t.network_bone_depth_mm)
        reference = bone_reference_hu(hu, interior)
        if reference is not None:
            out, n = mark_sclerotic_rim(
                hu, kept, interior, spacing, reference + t.network_blastic_contrast_hu, t.network_rim_mm
            )
            if n:
                notes.append(
                    f"{n * voxel_ml:.2f} mL of bone at least {t.network_blastic_contrast_hu:g} HU brighter than the "
                    f"vertebral bodies' bone ({reference:.0f} HU), in or within {t.network_rim_mm:g} mm of a lytic "
                    "piece, counted as blastic (a sclerotic rim)"
                )
            kept = out
        out, n = drop_faint_lesions(
            hu, kept, reference, t.network_lytic_contrast_hu, t.network_blastic_contrast_hu, core
        )
        if n:
            why = (
                f"they do not stand out from the vertebral bodies' bone ({reference:.0f} HU; lytic less than "
                f"{t.network_lytic_contrast_hu:g} HU darker, blastic less than {t.network_blastic_contrast_hu:g} HU "
                "brighter)"
            )
            notes.append(_left_out(kept, out, n, voxel_ml, why))
        kept = out
        if reference is not None and t.network_rim_voxels > 0:  # the rim's next voxels: round kept lytic pieces only
            out, n = mark_sclerotic_rim(
                hu, kept, interior, spacing, reference + t.network_blastic_contrast_hu, 0.0, t.network_rim_voxels
            )
            if n:
                notes.append(
                    f"{n * voxel_ml:.2f} mL of bone at least {t.network_blastic_contrast_hu:g} HU brighter than the "
                    f"vertebral bodies' bone ({reference:.0f} HU), within {t.network_rim_voxels} voxel(s) of a "
                    "lytic piece kept, counted as blastic (a sclerotic rim)"
                )
            kept = out
        min_voxels = int(np.ceil(t.min_volume_ml / voxel_ml))
        out, n = grow_lesions(hu, anatomy, kept, interior, reference, t.network_edge_voxels, min_voxels)
        if n:
            notes.append(
                f"{n * voxel_ml:.2f} mL of vertebral body at the edge of lesion pieces, more lesion than bone by "
                f"its HU, counted as lesion (partial volume, up to {t.network_edge_voxels} voxel(s))"
            )
        kept = out
        out, n = spread_blastic(
            hu,
            anatomy,
            kept,
            interior,
            reference,
            spacing,
            t.network_blastic_spread_mm,
            t.network_blastic_spread_contrast_hu,
            min_voxels,
        )
        if n:
            notes.append(
                f"{n * voxel_ml:.2f} mL of the vertebral bodies' interior at least "
                f"{t.network_blastic_spread_contrast_hu:g} HU brighter than their bone ({reference:.0f} HU), within "
                f"{t.network_blastic_spread_mm:g} mm of a blastic piece and continuous with it, counted as blastic "
                "(sclerotic bone the network left to bone)"
            )
        kept = out
    return kept, notes


def refill_bone(anatomy: np.ndarray, holes: np.ndarray, spacing: tuple[float, ...]) -> None:
    """Voxels of lesion pieces left out (`holes`, anatomy 0 under the network's lesion) take the
    label of the nearest vertebral body or posterior-element voxel, in place."""
    if not holes.any():
        return
    margin = [int(np.ceil(REFILL_MARGIN_MM / s)) for s in spacing]
    pieces = cc3d.connected_components(holes, connectivity=26)
    for _, grown, hole in grown_pieces(pieces, margin):
        sub = anatomy[grown]
        bone = (sub == Anatomy.VERTEBRAL_BODY) | (sub == Anatomy.POSTERIOR_ELEMENTS)
        if not bone.any():
            continue
        _, near = ndimage.distance_transform_edt(~bone, sampling=spacing, return_indices=True)
        sub[hole] = sub[tuple(i[hole] for i in near)]


def decide(p: torch.Tensor, lesion_probability: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels from (C, ...) probabilities, and where they widen a lesion beyond the argmax: the argmax;
    with `lesion_probability`, also a lesion (the likelier of lytic and blastic) wherever the likeliest
    other class is posterior elements and the lytic and blastic probabilities together reach it. The
    network draws the dark core of a small posterior-element lesion and leaves its partial-volume rim
    to bone (such lesions came out at a quarter to a half of their volume), which decides
    posterolateral involvement; the vertebral bodies' lesions are large and keep the argmax."""
    labels = channel_argmax(p)
    if lesion_probability is None:
        return labels, torch.zeros_like(labels, dtype=torch.bool)
    # where the argmax is not a lesion it is also the likeliest other class, so no second argmax
    lytic, blastic = p[LYTIC_CHANNEL], p[BLASTIC_CHANNEL]
    widened = (labels == int(Anatomy.POSTERIOR_ELEMENTS)) & (lytic + blastic >= lesion_probability)
    if widened.any():
        labels[widened] = torch.where(blastic[widened] > lytic[widened], BLASTIC_CHANNEL, LYTIC_CHANNEL)
    return labels, widened


def upsample_labels(
    probs: torch.Tensor, shape: tuple[int, int, int], slab: int = SLAB, lesion_probability: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and widened-lesion mask (`decide`, with `lesion_probability`) of (C, X, Y, Z)
    probabilities trilinearly resized to `shape` (voxel centres kept, as `zoom_to`), computed a slab of
    output slices at a time so that memory stays bounded on long scans: the fine slices a slab needs
    are resized in-plane, then each output slice blends its two neighbours at its exact position (the
    same values as resizing the whole volume at once)."""
    n_fine, n_out = probs.shape[3], shape[2]
    ratio = n_fine / n_out
    labels = np.zeros(shape, np.uint8)
    widened = np.zeros(shape, bool)
    step = max(1, int(slab / max(ratio, 1.0)))  # output slices per slab: about `slab` fine slices
    for z0 in range(0, n_out, step):
        z1 = min(z0 + step, n_out)
        pos = ((torch.arange(z0, z1, dtype=torch.float64) + 0.5) * ratio - 0.5).clamp(0, n_fine - 1)
        lo = pos.floor().long()
        hi = (lo + 1).clamp(max=n_fine - 1)
        f0, f1 = int(lo[0]), int(hi[-1]) + 1
        planes = probs[..., f0:f1].permute(3, 0, 1, 2)  # (slices, C, X, Y)
        planes = F.interpolate(planes, size=shape[:2], mode="bilinear", align_corners=False)
        out = torch.empty((z1 - z0, *shape[:2]), dtype=torch.uint8, device=probs.device)
        wide = torch.empty((z1 - z0, *shape[:2]), dtype=torch.bool, device=probs.device)
        for k in range(z1 - z0):
            w = float(pos[k] - lo[k])
            out[k], wide[k] = decide(
                planes[int(lo[k]) - f0] * (1.0 - w) + planes[int(hi[k]) - f0] * w, lesion_probability
            )
        labels[..., z0:z1] = out.permute(1, 2, 0).cpu().numpy()  # one copy per slab off a GPU
        widened[..., z0:z1] = wide.permute(1, 2, 0).cpu().numpy()
    return labels, widened


def spine_crop(image: torch.Tensor, spacing: tuple[float, ...], model: LoadedModel) -> tuple[slice, ...]:
    """The box around the spinal column (`CROP_MARGIN_MM` wider) that a coarse pass of the network finds in a
    (1, X, Y, Z) normalised image of voxels `spacing`; no spine is a `CaseError`."""
    card = model.card
    shape = tuple(image.shape[1:])
    coarse_shape = grid_shape(shape, spacing, card.coarse_spacing_mm)
    coarse = channel_argmax(_predict(model, zoom_to(image, coarse_shape), overlap=0.0)).cpu().numpy()  # finding only
    spine = column_mask(np.isin(coarse, SPINE_CHANNELS), card.coarse_spacing_mm)
    if spine.sum() * card.coarse_spacing_mm**3 / 1000.0 < 1.0:
        raise CaseError("no spine found in the image (the network marks less than 1 mL of vertebrae)")
    idx = np.nonzero(spine)
    scale = np.array(shape) / np.array(coarse_shape)
    margin = np.ceil(CROP_MARGIN_MM / np.array(spacing)).astype(int)
    lo = np.maximum(np.floor(np.array([i.min() for i in idx]) * scale).astype(int) - margin, 0)
    hi = np.minimum(np.ceil((np.array([i.max() for i in idx]) + 1) * scale).astype(int) + margin, shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def segment(ct: Volume, model: LoadedModel, lesion: LesionThresholds | None = None) -> Segmentation:
    """Anatomy and lesion maps of a canonical CT, with the lesion rules of `lesion` (configs/sins.yaml; the plain
    argmax of one pass and no checks when None): the posterior elements averaged with a pass over the mirrored crop
    (`network_mirror_posterior`, `average_mirrored_posterior`); lesions widened in the posterior elements to
    `network_lesion_probability` (`decide`); on thick-slice scans (largest over smallest voxel side at least
    `network_thick_slice_ratio`) lesion pieces thinner than `network_min_thickness_vox` voxels are dropped, and
    everywhere pieces fainter than `network_lytic_contrast_hu` / `network_blastic_contrast_hu` against the patient's
    bone (`drop_faint_lesions`); the pieces kept take their partial-volume edge in the vertebral bodies
    (`grow_lesions`, `network_edge_voxels`) and the blastic ones spread through the bodies' bright interior
    (`spread_blastic`, `network_blastic_spread_mm`)."""
    card = model.card
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    spacing = ct.spacing
    # the image, the zooms and the argmax stay on the model's device (a GPU does them too); labels come back
    image = torch.from_numpy(normalise(ct.array, card.intensity))[None].to(model.device)
    crop = spine_crop(image, spacing, model)
    timings["localise"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    sub = image[(slice(None), *crop)]
    fine_shape = grid_shape(tuple(sub.shape[1:]), spacing, card.spacing_mm)
    fine = zoom_to(sub, fine_shape)
    probs = _predict(model, fine)
    if lesion is not None and lesion.network_mirror_posterior:
        with torch.inference_mode():  # probs is an inference tensor: changed in place only in that mode
            average_mirrored_posterior(probs, _predict(model, fine.flip(1)).flip(1))
    del fine
    threshold = None if lesion is None else lesion.network_lesion_probability
    labels, widened = upsample_labels(probs, tuple(sub.shape[1:]), lesion_probability=threshold)  # CT grid
    full = np.zeros(ct.shape, np.uint8)
    full[crop] = labels
    anatomy, lesions = from_prediction(full)
    notes: list[str] = []
    if lesion is not None:
        found = lesions[crop]
        kept, notes = check_lesions(ct.array[crop], anatomy[crop], found, spacing, lesion, core=~widened)
        refill_bone(anatomy[crop], (found > 0) & (kept == 0), spacing)
        anatomy[crop][(found == 0) & (kept > 0)] = 0  # bone made lesion (a sclerotic rim, a lesion's edge)
        lesions[crop] = kept
    timings["segment"] = time.perf_counter() - t1  # the network, the upsampling and the lesion rules
    return Segmentation(anatomy, lesions, crop, timings, tuple(notes))  # type: ignore[arg-type]

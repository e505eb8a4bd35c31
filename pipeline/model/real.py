"""Real scans as training data: their reference labels turned into the network's target, with what
the labels do not say marked IGNORE (excluded from the loss), and synthetic lesions put into real bone.

- `ts_abdomen_3mm`: TotalSegmentator vertebra ids plus its body/disc map. Body = body map inside a
  vertebra id, posterior elements = the rest of the vertebra, S1 outside its body = sacrum, disc = the
  disc map. Unlabelled voxels near the spine (canal, discs not in the map, vertebrae without an id) or
  bone-dense ones (ribs, pelvis) are IGNORE; the rest is background.
- `tptbox_l3_crop`: the subregions of L3 (corpus 49/50 = body, 41-48 = posterior elements); the
  neighbours L2/L4 (no subregions), the canal and other dense voxels are IGNORE.

`ts_dicom_thoracolumbar` is never used here: it is a validation case.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..anatomy import TOTALSEG_IDS, Anatomy
from ..io import load_ct, load_label_map
from ..volume import Volume, to_canonical
from .card import Intensity
from .classes import BLASTIC_CHANNEL, IGNORE, LYTIC_CHANNEL

#: Unlabelled voxels within this distance of the labelled spine are IGNORE (canal, unlabelled discs).
NEAR_SPINE_MM = 12.0
#: Unlabelled voxels at least this dense are IGNORE (ribs, pelvis, unlabelled bone).
BONE_HU = 150.0
#: Synthetic lesions in real bone: semi-axes (mm) and HU of lytic / blastic tissue.
LESION_RADIUS_MM = (4.0, 12.0)
LYTIC_HU = (0.0, 70.0)
BLASTIC_HU = (650.0, 1300.0)


def _resample(ct: Volume, target: np.ndarray, spacing_mm: float) -> tuple[np.ndarray, np.ndarray]:
    factors = np.array(ct.spacing) / spacing_mm
    hu = ndimage.zoom(ct.array.astype(np.float32), factors, order=1)
    tgt = ndimage.zoom(target, factors, order=0)
    return np.round(hu).astype(np.int16), tgt


def _ignore_unlabelled(target: np.ndarray, hu: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    labelled = (target != 0) & (target != IGNORE)
    dist = ndimage.distance_transform_edt(~labelled, sampling=spacing)
    unknown = (target == 0) & ((dist <= NEAR_SPINE_MM) | (hu >= BONE_HU))
    out = target.copy()
    out[unknown] = IGNORE
    return out


def ts_abdomen_target(folder: Path) -> tuple[Volume, np.ndarray]:
    ct = to_canonical(load_ct(folder / "ct.nii.gz"))
    ids = to_canonical(load_label_map(folder / "vertebrae_totalseg.nii.gz")).array
    body_disc = to_canonical(load_label_map(folder / "vertebral_body_disc.nii.gz")).array
    vertebra = np.isin(ids, [v for k, v in TOTALSEG_IDS.items() if k != "S1"])
    s1 = ids == TOTALSEG_IDS["S1"]
    target = np.zeros(ct.shape, np.uint8)
    target[(body_disc == 2) & (ids == 0)] = Anatomy.DISC
    target[s1] = Anatomy.SACRUM
    target[vertebra] = Anatomy.POSTERIOR_ELEMENTS
    target[(vertebra | s1) & (body_disc == 1)] = Anatomy.VERTEBRAL_BODY
    target[(body_disc == 1) & (ids == 0)] = IGNORE  # a body without a vertebra id
    return ct, _ignore_unlabelled(target, ct.array, ct.spacing)


def tptbox_target(folder: Path) -> tuple[Volume, np.ndarray]:
    ct = to_canonical(load_ct(folder / "ct.nii.gz"))
    sub = to_canonical(load_label_map(folder / "subregions.nii.gz")).array
    ids = to_canonical(load_label_map(folder / "vertebrae_verse.nii.gz")).array
    target = np.zeros(ct.shape, np.uint8)
    target[(ids != 0) & (sub == 0)] = IGNORE  # neighbours without subregions
    target[np.isin(sub, range(41, 49))] = Anatomy.POSTERIOR_ELEMENTS
    target[np.isin(sub, (49, 50))] = Anatomy.VERTEBRAL_BODY
    return ct, _ignore_unlabelled(target, ct.array, ct.spacing)


#: Real training scans: folder name -> target builder.
REAL_TRAINING: dict[str, Callable[[Path], tuple[Volume, np.ndarray]]] = {
    "ts_abdomen_3mm": ts_abdomen_target,
    "tptbox_l3_crop": tptbox_target,
}


def draw_real(name: str, root: Path, spacing_mm: float) -> dict[str, np.ndarray]:
    """One real scan on the training grid: int16 HU and its target (IGNORE where unknown)."""
    if name not in REAL_TRAINING:
        raise ValueError(f"unknown real training scan {name!r}; known: {', '.join(REAL_TRAINING)}")
    ct, target = REAL_TRAINING[name](root / name)
    hu, tgt = _resample(ct, target, spacing_mm)
    return {"hu": hu, "target": tgt}


def insert_lesion(
    img: np.ndarray,
    tgt: np.ndarray,
    rng: np.random.Generator,
    spacing_mm: float,
    intensity: Intensity,
    lytic_share: float = 0.5,
    edge_mm: tuple[float, ...] = (0.0, 0.0),
) -> None:
    """Put one ellipsoidal lytic (with chance `lytic_share`) or blastic lesion into the bone of a real
    patch (in place). Its edge is blended into the bone over a Gaussian of sigma drawn from `edge_mm`
    (partial volume, as in a real scan; 0: a sharp edge); its label is the ellipsoid's bone voxels."""
    bone = np.argwhere((tgt == Anatomy.VERTEBRAL_BODY) | (tgt == Anatomy.POSTERIOR_ELEMENTS))
    if not len(bone):
        return
    centre = bone[rng.integers(len(bone))]
    radii = rng.uniform(*LESION_RADIUS_MM, 3) / spacing_mm
    r = np.ceil(radii).astype(int)
    lo = np.maximum(centre - r, 0)
    hi = np.minimum(centre + r + 1, tgt.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    grid = np.ogrid[box]
    inside = sum(((g - c) / s) ** 2 for g, c, s in zip(grid, centre, radii, strict=True)) <= 1.0
    region = inside & ((tgt[box] == Anatomy.VERTEBRAL_BODY) | (tgt[box] == Anatomy.POSTERIOR_ELEMENTS))
    lytic = rng.random() < lytic_share
    hu = rng.uniform(*(LYTIC_HU if lytic else BLASTIC_HU))
    value = (hu - intensity.hu_min) / (intensity.hu_max - intensity.hu_min)
    noise = rng.normal(0.0, 15.0 / (intensity.hu_max - intensity.hu_min), region.shape)
    sigma_mm = rng.uniform(*edge_mm) if max(edge_mm) > 0 else 0.0
    if sigma_mm > 0:  # blend over the box grown by 3 sigma, so the blurred edge is not cut off
        g = int(np.ceil(3 * sigma_mm / spacing_mm))
        lo2, hi2 = np.maximum(lo - g, 0), np.minimum(hi + g, tgt.shape)
        box2 = tuple(slice(a, b) for a, b in zip(lo2, hi2, strict=True))
        mask = np.zeros(tgt[box2].shape, bool)
        mask[tuple(slice(a - b, c - b) for a, b, c in zip(lo, lo2, hi, strict=True))] = region
        lesion = np.full(mask.shape, value, np.float32)
        lesion[mask] += noise[region]
        img[box2] = with_lesion(img[box2], mask, lesion, np.full(3, spacing_mm), sigma_mm)
    else:
        img[box][region] = (value + noise)[region]
    tgt[box][region] = LYTIC_CHANNEL if lytic else BLASTIC_CHANNEL


def sphere_in_body(body: np.ndarray, spacing: np.ndarray, radius_mm: float, from_back: float) -> np.ndarray:
    """The voxels of `body` (canonical RAS grid, +y anterior) within `radius_mm` of its centroid moved along y to
    `from_back` of its extent (0 = the posterior wall, 1 = the anterior wall): a lesion at a chosen depth."""
    at = np.argwhere(body)
    centre = at.mean(axis=0)
    centre[1] = at[:, 1].min() + from_back * np.ptp(at[:, 1])
    box = tuple(
        slice(max(int(c - radius_mm / s) - 1, 0), min(int(c + radius_mm / s) + 2, n))
        for c, s, n in zip(centre, spacing, body.shape, strict=True)
    )
    grid = np.ogrid[box]
    inside = sum(((g - c) * s / radius_mm) ** 2 for g, c, s in zip(grid, centre, spacing, strict=True)) <= 1.0
    out = np.zeros(body.shape, bool)
    out[box] = inside & body[box]
    return out


def with_lesion(
    hu: np.ndarray, lesion: np.ndarray, lesion_hu: float | np.ndarray, spacing: np.ndarray, edge_mm: float
) -> np.ndarray:
    """`hu` with the voxels of `lesion` at `lesion_hu` (a value, or one per voxel), its edge blended over
    `edge_mm` (Gaussian sigma; partial volume)."""
    soft = ndimage.gaussian_filter(lesion.astype(np.float32), edge_mm / np.asarray(spacing, float))
    return hu.astype(np.float32) * (1.0 - soft) + lesion_hu * soft

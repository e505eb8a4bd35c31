"""Body / posterior-elements split of a whole-vertebra mask (pipeline.spine.split)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.anatomy import TOTALSEG_IDS, VERSE_IDS, Anatomy
from pipeline.io import load_ct, load_label_map
from pipeline.spine.split import split_vertebra
from pipeline.volume import Volume, reorient

# Hand-made vertebra in its own frame (x right, y anterior, z cranial; mm). Body: elliptic cylinder.
BODY_A, BODY_B, BODY_H = 20.0, 15.0, 25.0
CANAL_Y, CANAL_A, CANAL_B = -23.0, 11.0, 8.0  # the canal's anterior edge touches the body (y = -15)
BODY_ML = np.pi * BODY_A * BODY_B * BODY_H / 1000.0


def _rot(axis: int, deg: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(deg)), np.sin(np.deg2rad(deg))
    i, j = [k for k in range(3) if k != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def _shape(p: np.ndarray, gap_mm: float = 0.0, arch: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(vertebra, body) membership of local points p (..., 3). gap_mm opens the lamina at the midline."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    body = ((x / BODY_A) ** 2 + (y / BODY_B) ** 2 <= 1) & (np.abs(z) <= BODY_H / 2)
    if not arch:
        return body, body
    ring_out = (x / (CANAL_A + 6)) ** 2 + ((y - CANAL_Y) / (CANAL_B + 6)) ** 2 <= 1
    ring_in = (x / CANAL_A) ** 2 + ((y - CANAL_Y) / CANAL_B) ** 2 <= 1
    ring = ring_out & ~ring_in & (z >= -6) & (z <= 10) & ~((np.abs(x) < gap_mm / 2) & (y < CANAL_Y))
    spinous = (np.abs(x) <= 3) & (y >= -60) & (y <= -36 + (gap_mm > 0) * -10) & (z >= -4) & (z <= 8)
    transverse = (np.abs(x) >= 16) & (np.abs(x) <= 38) & (y >= -27) & (y <= -19) & (z >= 0) & (z <= 8)
    return body | ring | spinous | transverse, body


def _grid(
    directions: np.ndarray, spacing: tuple[float, float, float], reach: float = 45.0
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """(affine, shape) of a grid whose index axes run along `directions` (rows, world unit vectors)
    with `spacing`, covering a cube of half-size `reach` mm around the vertebra's middle."""
    affine = np.eye(4)
    affine[:3, :3] = (np.asarray(directions, dtype=float) * np.asarray(spacing)[:, None]).T
    n = np.ceil(2 * reach / np.asarray(spacing)).astype(int) + 1
    affine[:3, 3] = np.array([0.0, CANAL_Y, 0.0]) - affine[:3, :3] @ ((n - 1) / 2)
    return affine, (int(n[0]), int(n[1]), int(n[2]))


def _voxelise(affine: np.ndarray, shape: tuple[int, int, int], rot: np.ndarray, **kw) -> tuple[np.ndarray, np.ndarray]:
    ijk = np.indices(shape).reshape(3, -1).T
    local = (ijk @ affine[:3, :3].T + affine[:3, 3]) @ rot  # world -> local (rot is orthonormal)
    vert, body = _shape(local, **kw)
    return vert.reshape(shape), body.reshape(shape)


RAS_1MM = _grid(np.eye(3), (1.0, 1.0, 1.0))
PIR_ANISO = _grid(np.array([[0, -1, 0], [0, 0, -1], [1, 0, 0]]), (2.0, 1.0, 1.5))  # P 2 mm, I 1 mm, R 1.5 mm


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)


def _ml(mask: np.ndarray, affine: np.ndarray) -> float:
    return np.count_nonzero(mask) * abs(np.linalg.det(affine[:3, :3])) / 1000.0


# --------------------------------------------------------------------------- synthetic vertebra
@pytest.mark.parametrize("grid", [RAS_1MM, PIR_ANISO], ids=["RAS-1mm", "PIR-2x1x1.5mm"])
def test_synthetic_body_matches_the_cylinder_in_any_grid(grid) -> None:
    affine, shape = grid
    vert, truth = _voxelise(affine, shape, np.eye(3))
    res = split_vertebra(vert, affine)
    assert res.notes == ()
    assert res.body.shape == vert.shape and res.body.dtype == bool
    np.testing.assert_array_equal(res.posterior, vert & ~res.body)
    assert _dice(res.body, truth) >= 0.97
    # the pedicle roots in front of the canal are the only surplus: a few percent
    assert _ml(res.body, affine) == pytest.approx(BODY_ML, rel=0.05)
    # the estimated axis (principal axis) leans a few degrees towards the arch's mass
    assert res.cc_axis[2] >= np.cos(np.deg2rad(6.0)) and res.ap_axis[1] <= -np.cos(np.deg2rad(6.0))
    assert abs(res.ap_axis[0]) < 0.02  # mirror symmetry: no axial rotation
    assert abs(res.canal_centroid[0]) < 1.0 and abs(res.canal_centroid[1] - CANAL_Y) < 1.5


def test_body_volume_is_the_same_in_both_grids() -> None:
    vols = []
    for affine, shape in (RAS_1MM, PIR_ANISO):
        vert, _ = _voxelise(affine, shape, np.eye(3))
        vols.append(_ml(split_vertebra(vert, affine).body, affine))
    assert vols[1] == pytest.approx(vols[0], rel=0.03)


def test_exact_reorientation_gives_the_same_split() -> None:
    affine, shape = PIR_ANISO
    vert, _ = _voxelise(affine, shape, np.eye(3))
    body = split_vertebra(vert, affine).body
    moved = reorient(Volume(vert.astype(np.uint8), affine), "LAS")
    body_moved = split_vertebra(moved.array > 0, moved.affine).body
    back = reorient(Volume(body_moved.astype(np.uint8), moved.affine), "PIR").array > 0
    assert _dice(back, body) >= 0.999


@pytest.mark.parametrize("given_axis", [True, False], ids=["axis-given", "axis-estimated"])
def test_tilted_and_rotated_vertebra(given_axis: bool) -> None:
    rot = _rot(2, 25.0) @ _rot(0, 20.0)  # 20 deg sagittal tilt, then 25 deg axial rotation
    affine, shape = RAS_1MM
    vert, truth = _voxelise(affine, shape, rot)
    res = split_vertebra(vert, affine, rot[:, 2] if given_axis else None)
    assert _dice(res.body, truth) >= 0.96
    posterior = rot @ np.array([0.0, -1.0, 0.0])
    assert res.ap_axis @ posterior >= np.cos(np.deg2rad(3.0 if given_axis else 8.0))
    assert abs(res.ap_axis @ res.cc_axis) < 1e-9
    canal = rot @ np.array([0.0, CANAL_Y, 2.0])
    assert np.linalg.norm(res.canal_centroid - canal) < 3.0


def test_arch_with_a_small_gap_is_closed_morphologically() -> None:
    affine, shape = RAS_1MM
    vert, truth = _voxelise(affine, shape, np.eye(3), gap_mm=2.0)
    res = split_vertebra(vert, affine)
    assert any("closing" in n for n in res.notes)
    assert _dice(res.body, truth) >= 0.97


def test_open_arch_falls_back_to_the_midline_gap_and_says_so() -> None:
    affine, shape = RAS_1MM
    vert, truth = _voxelise(affine, shape, np.eye(3), gap_mm=30.0)
    res = split_vertebra(vert, affine)
    assert any("not closed" in n and "midline gap" in n and "approximate" in n for n in res.notes)
    assert _dice(res.body, truth) >= 0.93


def test_body_only_mask_stays_body() -> None:
    affine, shape = RAS_1MM
    vert, _ = _voxelise(affine, shape, np.eye(3), arch=False)
    res = split_vertebra(vert, affine)
    np.testing.assert_array_equal(res.body, vert)
    assert not res.posterior.any()
    assert any("no vertebral arch" in n for n in res.notes)


def test_empty_mask_and_bad_axis_raise() -> None:
    with pytest.raises(ValueError, match="empty"):
        split_vertebra(np.zeros((4, 4, 4), bool), np.eye(4))
    mask = np.zeros((4, 4, 4), bool)
    mask[1:3, 1:3, 1:3] = True
    with pytest.raises(ValueError, match="axis"):
        split_vertebra(mask, np.eye(4), np.zeros(3))


# --------------------------------------------------------------------------- real data
@pytest.mark.real
def test_tptbox_l3_body_matches_verse_subregions(real_data: Path) -> None:
    folder = real_data / "tptbox_l3_crop"
    ct = load_ct(folder / "ct.nii.gz")
    vert = load_label_map(folder / "vertebrae_verse.nii.gz", ct).array
    sub = load_label_map(folder / "subregions.nii.gz", ct).array
    for level, bar in (("L2", 0.9), ("L3", 0.95), ("L4", 0.9)):  # L2 and L4 are cut by the crop
        mask = vert == VERSE_IDS[level]
        res = split_vertebra(mask, ct.affine)
        truth = np.isin(sub, (49, 50)) & mask
        assert _dice(res.body, truth) >= bar, level
        assert _dice(res.posterior, np.isin(sub, range(41, 49)) & mask) >= bar, level
    assert res.ap_axis @ np.array([0.0, -1.0, 0.0]) > 0.9  # PIR input, posterior is -A in world


@pytest.mark.real
def test_totalsegmentator_lumbar_bodies(real_data: Path) -> None:
    folder = real_data / "ts_abdomen_3mm"
    ct = load_ct(folder / "ct.nii.gz")
    vert = load_label_map(folder / "vertebrae_totalseg.nii.gz", ct).array
    body_label = load_label_map(folder / "vertebral_body_disc.nii.gz", ct).array == 1
    for level in ("L1", "L2", "L3", "L4", "L5"):
        mask = vert == TOTALSEG_IDS[level]
        res = split_vertebra(mask, ct.affine)
        assert _dice(res.body, body_label & mask) >= 0.88, level
        body_centroid = ct.world(np.argwhere(res.body).mean(axis=0))
        assert (res.canal_centroid - body_centroid) @ res.ap_axis > 10.0, level


@pytest.mark.slow
def test_phantom_split_matches_its_truth() -> None:
    from pipeline.phantom import generate, random_spec

    case = generate(random_spec(3, fov="lumbar", n_lesion_levels=0))
    inst, anat = case.instances.array, case.anatomy.array
    for level in ("L1", "L3", "L5"):
        mask = inst == VERSE_IDS[level]
        res = split_vertebra(mask, case.instances.affine)
        assert _dice(res.body, (anat == Anatomy.VERTEBRAL_BODY) & mask) >= 0.95, level

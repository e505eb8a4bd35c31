"""The one image type every stage passes on, and the canonical orientation.

Axis order, stated once and tested: ``Volume.array[i, j, k]`` is the voxel at index (i, j, k), the
ITK/NIfTI index order (i varies fastest on disk). ``Volume.affine`` maps the homogeneous index
(i, j, k, 1) to world millimetres in RAS+ (the NIfTI/nibabel convention: +x towards the patient's
Right, +y Anterior, +z Superior). Spacing and orientation are derived from the affine, never stored
twice.

The canonical orientation of OpenSINS is RAS: after `to_canonical`, index i grows towards the
patient's right, j towards anterior, k towards superior. Reorientation is an exact permutation and
flip of the array (no interpolation); any oblique remainder stays in the affine.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import nibabel as nib
import numpy as np

#: Canonical axis codes (nibabel convention: the direction each index axis grows towards).
CANONICAL = "RAS"

# LPS (ITK/DICOM world) <-> RAS (NIfTI world) differ by a flip of x and y.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Volume:
    """A 3D image with its geometry.

    array: voxel values, indexed [i, j, k] (see module docstring).
    affine: 4x4 index-to-RAS+ world matrix in mm.
    source: where it came from (file or folder name, no patient identifiers).
    notes: human-readable remarks made while loading (e.g. which DICOM series was chosen).
    meta: non-identifying header facts later stages may need (e.g. SeriesInstanceUID for DICOM SEG).
    """

    array: np.ndarray
    affine: np.ndarray
    source: str = ""
    notes: tuple[str, ...] = ()
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"Volume needs a 3D array, got shape {self.array.shape}")
        if self.affine.shape != (4, 4):
            raise ValueError(f"Volume needs a 4x4 affine, got {self.affine.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along i, j, k."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def orientation(self) -> str:
        """Axis codes, e.g. 'RAS' or 'LPS' (nibabel convention)."""
        return "".join(nib.aff2axcodes(self.affine))

    @property
    def voxel_volume_ml(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3]))) / 1000.0

    def world(self, ijk: np.ndarray) -> np.ndarray:
        """RAS+ world mm of index coordinates, shape (..., 3)."""
        ijk = np.asarray(ijk, dtype=float)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def index(self, xyz: np.ndarray) -> np.ndarray:
        """Continuous index coordinates of RAS+ world points, shape (..., 3)."""
        inv = np.linalg.inv(self.affine)
        xyz = np.asarray(xyz, dtype=float)
        return xyz @ inv[:3, :3].T + inv[:3, 3]

    def with_array(self, array: np.ndarray) -> Volume:
        """Same geometry, other voxels (e.g. a label map on this grid)."""
        if array.shape != self.array.shape:
            raise ValueError(f"array shape {array.shape} does not match volume shape {self.array.shape}")
        return replace(self, array=array)


def c_contiguous(array: np.ndarray) -> np.ndarray:
    """`array` in C order. A 3D array laid out the other way round (Fortran order: what nibabel reads
    and what a transposed SimpleITK array is) is copied one plane of its middle axis at a time, about
    6x faster than `np.ascontiguousarray`'s strided copy (1.5 -> 0.25 s for a 512x512x400 CT)."""
    if array.flags.c_contiguous:
        return array
    if array.ndim != 3 or not array.flags.f_contiguous:
        return np.ascontiguousarray(array)
    out = np.empty(array.shape, array.dtype)
    for j in range(array.shape[1]):
        out[:, j, :] = array[:, j, :]
    return out


def reorient(volume: Volume, axcodes: str = CANONICAL) -> Volume:
    """Permute and flip axes so that the index axes grow towards `axcodes` (exact, no resampling)."""
    current = nib.orientations.io_orientation(volume.affine)
    target = nib.orientations.axcodes2ornt(tuple(axcodes))
    transform = nib.orientations.ornt_transform(current, target)
    array = nib.orientations.apply_orientation(volume.array, transform)
    inv = nib.orientations.inv_ornt_aff(transform, volume.array.shape)
    affine = volume.affine @ inv
    return replace(volume, array=c_contiguous(array), affine=affine)


def to_canonical(volume: Volume) -> Volume:
    """The canonical (RAS) orientation used by every stage after loading."""
    return reorient(volume, CANONICAL)


def from_canonical(array: np.ndarray, canonical: Volume, original: Volume) -> np.ndarray:
    """Bring an array on the canonical grid of `original` back to the original's index order."""
    vol = reorient(replace(canonical, array=array), "".join(original.orientation))
    if vol.array.shape != original.array.shape or not np.allclose(vol.affine, original.affine, atol=1e-4):
        raise ValueError("canonical array does not map back onto the original grid")
    return vol.array


def affine_from_itk(spacing, origin, direction) -> np.ndarray:
    """RAS+ affine from ITK geometry (LPS world): origin (3,), spacing (3,), direction (9,) row-major."""
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    aff = np.eye(4)
    aff[:3, :3] = LPS_TO_RAS @ d @ np.diag(np.asarray(spacing, dtype=float))
    aff[:3, 3] = LPS_TO_RAS @ np.asarray(origin, dtype=float)
    return aff


def itk_from_affine(affine: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """(spacing, origin, direction) in ITK's LPS convention from a RAS+ affine."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    direction = LPS_TO_RAS @ affine[:3, :3] @ np.diag(1.0 / spacing)
    origin = LPS_TO_RAS @ affine[:3, 3]
    return tuple(map(float, spacing)), tuple(map(float, origin)), tuple(map(float, direction.ravel()))

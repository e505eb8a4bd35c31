"""Read a CT from a folder of DICOM files (SimpleITK/GDCM), with the geometry checked slice by slice.

The folder is searched recursively; files that are not DICOM images (DICOMDIR, text) are ignored.
When it holds several series, the CT series with the most slices is used (said in `Volume.notes`).
Slices are sorted along the slice normal (row x column direction of ImageOrientationPatient).
Unevenly spaced or gantry-tilted series are resampled onto an even orthogonal grid using each
slice's true position; GDCM applies RescaleSlope/Intercept, so values are Hounsfield units.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..config import InputConfig
from ..errors import InputError
from ..volume import LPS_TO_RAS, Volume, affine_from_itk, c_contiguous
from .checks import check_shape, hu_dtype, normalize_modality

#: DICOM tags read from every file (name -> SimpleITK/GDCM metadata key).
TAGS = {
    "Modality": "0008|0060",
    "SOPInstanceUID": "0008|0018",
    "Manufacturer": "0008|0070",
    "StudyInstanceUID": "0020|000d",
    "SeriesInstanceUID": "0020|000e",
    "InstanceNumber": "0020|0013",
    "ImagePositionPatient": "0020|0032",
    "ImageOrientationPatient": "0020|0037",
    "FrameOfReferenceUID": "0020|0052",
    "Rows": "0028|0010",
    "Columns": "0028|0011",
    "PixelSpacing": "0028|0030",
    "SliceThickness": "0018|0050",
    "ConvolutionKernel": "0018|1210",
}

#: Non-identifying tags copied into Volume.meta.
META_TAGS = (
    "Modality",
    "SeriesInstanceUID",
    "StudyInstanceUID",
    "FrameOfReferenceUID",
    "Manufacturer",
    "SliceThickness",
    "ConvolutionKernel",
)

#: Two slices closer than this along the normal share a position (floating-point equality, not a
#: clinical threshold).
_SAME_POSITION_MM = 1e-3

#: The PixelData element tag (7FE0,0010) as stored in little-endian files.
_PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"


@dataclass(frozen=True)
class _File:
    """One DICOM image file and the tags we need."""

    path: Path
    tags: dict[str, str]
    frames: int


@dataclass(frozen=True)
class _Geometry:
    """Sorted slice geometry of a series (LPS world, mm)."""

    positions: np.ndarray  # (K, 3)
    row: np.ndarray  # direction of increasing column index (i)
    col: np.ndarray  # direction of increasing row index (j)
    normal: np.ndarray
    spacing_ij: tuple[float, float]


def is_dicom_file(path: Path) -> bool:
    """True when the file carries the DICOM preamble ('DICM' at byte 128)."""
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def _mm(value: float) -> str:
    text = f"{value:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _floats(text: str | None, count: int) -> np.ndarray | None:
    if not text:
        return None
    try:
        values = np.array([float(v) for v in text.split("\\")], dtype=float)
    except ValueError:
        return None
    return values if values.size == count and np.all(np.isfinite(values)) else None


# ---------------------------------------------------------------- scanning and choosing a series
def _scan(folder: Path) -> tuple[list[_File], list[Path], int]:
    """DICOM image files under `folder` (recursive), DICOM files GDCM cannot read, other files ignored."""
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    files: list[_File] = []
    unreadable: list[Path] = []
    ignored = 0
    try:
        paths = sorted(p for p in folder.rglob("*") if p.is_file())
    except OSError as e:
        raise InputError(f"{folder.name}: cannot list the folder ({e.strerror or e}): check its permissions") from None
    for path in paths:
        reader.SetFileName(str(path))
        try:
            reader.ReadImageInformation()
        except RuntimeError:
            ignored += 1
            if is_dicom_file(path):
                unreadable.append(path)
            continue
        if not reader.HasMetaDataKey(TAGS["Rows"]):
            ignored += 1
            continue
        keys = set(reader.GetMetaDataKeys())
        tags = {name: reader.GetMetaData(key).strip() for name, key in TAGS.items() if key in keys}
        frames = reader.GetSize()[2] if reader.GetDimension() > 2 else 1
        files.append(_File(path, tags, int(frames)))
    return files, unreadable, ignored


def _check_damaged(folder: Path, series: list[_File], unreadable: list[Path]) -> None:
    """Reject the series when one of its own slice files is damaged (it would leave a silent gap).

    A file counts as a damaged slice of the series when it has the DICOM preamble, holds a PixelData
    element (so it is no DICOMDIR) and names the series' SeriesInstanceUID (or, without a UID, sits
    in the same folder).
    """
    uid = series[0].tags.get("SeriesInstanceUID", "").encode()
    folders = {f.path.parent for f in series}
    damaged = []
    for path in unreadable:
        data = path.read_bytes()
        if _PIXEL_DATA_TAG in data and (uid in data if uid else path.parent in folders):
            damaged.append(path)
    if damaged:
        raise InputError(
            f"{folder.name}: {len(damaged)} slice file(s) of the series cannot be read "
            f"(damaged or truncated, e.g. {damaged[0].name}): re-export the series"
        )


def _series_key(f: _File) -> tuple:
    """Files that stack into one volume: same series UID, orientation and matrix size."""
    uid = f.tags.get("SeriesInstanceUID") or f"(no SeriesInstanceUID) {f.path.parent}"
    iop = _floats(f.tags.get("ImageOrientationPatient"), 6)
    iop_key = tuple(np.round(iop, 3)) if iop is not None else None
    return (uid, iop_key, f.tags.get("Rows"), f.tags.get("Columns"))


def _describe(series: list[_File]) -> str:
    tags = series[0].tags
    uid = tags.get("SeriesInstanceUID") or "(no SeriesInstanceUID)"
    return f"{uid} {tags.get('Modality') or 'unknown modality'} {sum(f.frames for f in series)} slices"


def _choose_series(folder: Path, files: list[_File]) -> tuple[list[_File], list[str]]:
    """The CT series with the most slices (and a note when there was a choice)."""
    groups: dict[tuple, list[_File]] = defaultdict(list)
    for f in files:
        groups[_series_key(f)].append(f)
    series = sorted(groups.values(), key=lambda s: -sum(f.frames for f in s))
    modality = [normalize_modality(s[0].tags.get("Modality")) for s in series]
    pool = [s for s, m in zip(series, modality, strict=True) if m == "CT"]
    pool = pool or [s for s, m in zip(series, modality, strict=True) if m is None]
    if not pool:
        found = "/".join(sorted({m for m in modality if m}))
        raise InputError(
            f"{folder.name}: not a CT (DICOM Modality {found} in {len(series)} series): OpenSINS needs a CT series"
        )
    chosen = pool[0]
    notes = []
    if len(series) > 1:
        others = [_describe(s) for s in series if s is not chosen]
        listed = ", ".join(others[:5]) + (f", and {len(others) - 5} more" if len(others) > 5 else "")
        uid = chosen[0].tags.get("SeriesInstanceUID") or "(no SeriesInstanceUID)"
        kind = "CT series" if normalize_modality(chosen[0].tags.get("Modality")) == "CT" else "series"
        notes.append(
            f"{len(series)} series in folder; using {kind} {uid} with "
            f"{sum(f.frames for f in chosen)} slices (others: {listed})"
        )
    return chosen, notes


# ---------------------------------------------------------------- geometry
def _geometry(folder: Path, series: list[_File]) -> tuple[list[_File], _Geometry]:
    """Sort the slices along the normal and return their geometry; reject missing/duplicate positions."""
    first = series[0].tags
    iop = _floats(first.get("ImageOrientationPatient"), 6)
    positions = [_floats(f.tags.get("ImagePositionPatient"), 3) for f in series]
    if iop is None or any(p is None for p in positions):
        raise InputError(
            f"{folder.name}: slice position/orientation missing (ImagePositionPatient (0020,0032) or "
            "ImageOrientationPatient (0020,0037)): export the series with its geometry"
        )
    pixel = [_floats(f.tags.get("PixelSpacing"), 2) for f in series]
    if any(p is None for p in pixel):
        raise InputError(
            f"{folder.name}: spacing missing (DICOM PixelSpacing (0028,0030) absent): "
            "export the series with its pixel spacing"
        )
    row, col = iop[:3] / np.linalg.norm(iop[:3]), iop[3:] / np.linalg.norm(iop[3:])
    normal = np.cross(row, col)
    pos = np.array(positions, dtype=float)
    order = np.argsort(pos @ normal, kind="stable")
    series, pos = [series[n] for n in order], pos[order]
    check_shape((int(first.get("Columns", 0)), int(first.get("Rows", 0)), len(series)), folder.name)
    gaps = np.diff(pos @ normal)
    if gaps.min() < _SAME_POSITION_MM:
        dup = int(np.sum(gaps < _SAME_POSITION_MM))
        raise InputError(
            f"{folder.name}: {dup} slice(s) share a position (ImagePositionPatient), slice spacing is zero: "
            "the series mixes several acquisitions; export a single acquisition"
        )
    rs, cs = pixel[0]  # PixelSpacing = row spacing (between rows), column spacing (between columns)
    return series, _Geometry(pos, row, col, normal, (float(cs), float(rs)))


def _tilt_deg(geo: _Geometry) -> float:
    """Angle between the slice stacking direction and the slice normal."""
    stack = geo.positions[-1] - geo.positions[0]
    cosine = abs(float(stack @ geo.normal)) / float(np.linalg.norm(stack))
    return float(np.degrees(np.arccos(np.clip(cosine, 0.0, 1.0))))


def _lps_affine(geo: _Geometry, origin: np.ndarray, dz: float) -> np.ndarray:
    cs, rs = geo.spacing_ij
    aff = np.eye(4)
    aff[:3, :3] = LPS_TO_RAS @ np.column_stack([geo.row * cs, geo.col * rs, geo.normal * dz])
    aff[:3, 3] = LPS_TO_RAS @ origin
    return aff


def resample_orthogonal(stack: np.ndarray, geo: _Geometry, dz: float) -> tuple[np.ndarray, np.ndarray]:
    """Resample slices at their true positions onto an even grid along the normal.

    The in-plane lattice (axes, spacing, and the first slice's grid points) is kept and extended to
    cover every slice (a tilted series shifts in-plane from slice to slice). Each output plane blends
    the two nearest input slices linearly along the normal, each sampled (bilinearly) at the output's
    in-plane points. Returns (array float32, origin LPS).
    """
    cs, rs = geo.spacing_ij
    rel = geo.positions - geo.positions[0]
    shift_i, shift_j, depth = rel @ geo.row / cs, rel @ geo.col / rs, rel @ geo.normal
    eps = 1e-6
    lo_i, lo_j = int(np.floor(min(shift_i.min(), 0) + eps)), int(np.floor(min(shift_j.min(), 0) + eps))
    ni = int(np.ceil(max(shift_i.max(), 0) - eps)) + stack.shape[0] - lo_i
    nj = int(np.ceil(max(shift_j.max(), 0) - eps)) + stack.shape[1] - lo_j
    fill = float(stack.min())
    planes = np.empty((ni, nj, stack.shape[2]), dtype=np.float32)
    for k in range(stack.shape[2]):
        planes[:, :, k] = ndimage.affine_transform(
            stack[:, :, k].astype(np.float32),
            np.ones(2),
            offset=(lo_i - shift_i[k], lo_j - shift_j[k]),
            output_shape=(ni, nj),
            order=1,
            mode="constant",
            cval=fill,
        )
    nk = int(np.floor(depth[-1] / dz + eps)) + 1
    index = np.interp(np.arange(nk) * dz, depth, np.arange(len(depth)))
    k0 = np.minimum(np.floor(index).astype(int), len(depth) - 2)
    weight = (index - k0).astype(np.float32)
    out = np.empty((ni, nj, nk), dtype=np.float32)
    for c in range(nk):
        out[:, :, c] = planes[:, :, k0[c]] * (1 - weight[c]) + planes[:, :, k0[c] + 1] * weight[c]
    origin = geo.positions[0] + lo_i * cs * geo.row + lo_j * rs * geo.col
    return out, origin


# ---------------------------------------------------------------- pixels
def _read_pixels(folder: Path, series: list[_File]) -> np.ndarray:
    """Stack the slices as [i, j, k] (GDCM applies RescaleSlope/Intercept)."""
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    slices = []
    for f in series:
        reader.SetFileName(str(f.path))
        try:
            image = reader.Execute()
        except RuntimeError:
            raise InputError(
                f"{folder.name}: cannot read DICOM slice {f.path.name} (damaged or truncated file): "
                "re-export the series"
            ) from None
        if image.GetNumberOfComponentsPerPixel() != 1:
            raise InputError(f"{folder.name}: DICOM slices are colour images: give the original CT series")
        array = sitk.GetArrayFromImage(image)
        slices.append(array.reshape(array.shape[-2:]).T)
    return hu_dtype(np.stack(slices, axis=2))


def _meta(series: list[_File]) -> dict[str, str]:
    tags = series[0].tags
    meta = {name: tags[name] for name in META_TAGS if tags.get(name)}
    uids = [f.tags.get("SOPInstanceUID", "") for f in series]
    if all(uids):
        meta["SOPInstanceUIDs"] = "\\".join(uids)
    return meta


def _multiframe(folder: Path, f: _File) -> tuple[np.ndarray, np.ndarray]:
    """A single multi-frame file: pixels and geometry from GDCM."""
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(str(f.path))
    try:
        image = reader.Execute()
    except RuntimeError:
        raise InputError(
            f"{folder.name}: cannot read DICOM file {f.path.name} (damaged or truncated): re-export the series"
        ) from None
    array = hu_dtype(sitk.GetArrayFromImage(image).transpose(2, 1, 0))
    return array, affine_from_itk(image.GetSpacing(), image.GetOrigin(), image.GetDirection())


def _stack_series(
    folder: Path, series: list[_File], config: InputConfig
) -> tuple[np.ndarray, np.ndarray, list[str], list[_File]]:
    """Pixels, RAS affine, notes and sorted slices of a single-frame series, resampled when needed."""
    series, geo = _geometry(folder, series)
    stack = _read_pixels(folder, series)
    depth = geo.positions @ geo.normal
    gaps = np.diff(depth)
    median = float(np.median(gaps))
    uneven = float(gaps.max() - gaps.min()) > config.dicom.uneven_spacing_tolerance * median
    tilt = _tilt_deg(geo)
    if not uneven and tilt <= config.dicom.tilt_tolerance_deg:
        dz = float(depth[-1] - depth[0]) / (len(depth) - 1)
        return stack, _lps_affine(geo, geo.positions[0], dz), [], series
    # the smallest gap keeps the finest sampling; never below half the median (a stray near-duplicate
    # slice must not blow up the grid)
    dz = max(float(gaps.min()), 0.5 * median) if uneven else median
    array, origin = resample_orthogonal(stack, geo, dz)
    notes = []
    if tilt > config.dicom.tilt_tolerance_deg:
        notes.append(f"gantry tilt {tilt:.1f} deg: resampled to an orthogonal grid")
    if uneven:
        spread = f"{_mm(gaps.min())}-{_mm(gaps.max())}"
        notes.append(f"uneven slice spacing {spread} mm: resampled to {_mm(dz)} mm")
    return array, _lps_affine(geo, origin, dz), notes, series


def load_dicom_series(folder: str | Path, config: InputConfig) -> Volume:
    """The CT volume of a DICOM folder (index order: columns, rows, slices along the normal)."""
    folder = Path(folder)
    files, unreadable, ignored = _scan(folder)
    if not files:
        what = f"{ignored} file(s), none a DICOM image" if ignored else "no files"
        raise InputError(f"{folder.name}: no DICOM images found in the folder ({what}): check the path")
    series, notes = _choose_series(folder, files)
    _check_damaged(folder, series, unreadable)
    if len(series) == 1 and series[0].frames > 1:
        array, affine = _multiframe(folder, series[0])
        notes.append("multi-frame DICOM file: geometry as read by GDCM")
    else:
        array, affine, more, series = _stack_series(folder, series, config)
        notes.extend(more)
    if ignored:
        notes.append(f"ignored {ignored} non-image file(s) in the folder")
    array = c_contiguous(array)
    return Volume(array, affine, source=folder.name, notes=tuple(notes), meta=_meta(series))

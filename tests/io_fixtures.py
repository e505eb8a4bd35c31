"""Builders of good, bad and odd input files for the I/O tests (everything goes to tmp_path)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from pipeline.volume import LPS_TO_RAS

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"

#: Identifying values written into synthetic DICOM headers; they must never reach meta or notes.
SECRETS = {
    "PatientName": "Doe^Jane",
    "PatientID": "PID-SECRET-42",
    "PatientBirthDate": "19500101",
    "AccessionNumber": "ACC-SECRET-7",
    "InstitutionName": "Secret Hospital",
}


# ---------------------------------------------------------------- arrays
def ct_array(shape: tuple[int, ...] = (24, 20, 16), air: bool = True) -> np.ndarray:
    """Small int16 'CT': air outside an elliptic body (40 HU), a fat rim (-100 HU), a bone disc (800 HU)."""
    i, j = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    r = np.hypot(i / 0.9, j / 0.8)
    plane = np.full(shape[:2], -1000 if air else -100, dtype=np.int16)
    plane[r < 1.0] = -100
    plane[r < 0.8] = 40
    plane[np.hypot(i, j + 0.3) < 0.25] = 800
    return np.repeat(plane[:, :, None], shape[2] if len(shape) > 2 else 1, axis=2).reshape(shape)


def affine_for(axcodes: str, spacing: float = 1.5, shape: Sequence[int] = (24, 20, 16)) -> np.ndarray:
    """An index->RAS affine whose axes grow towards `axcodes` (e.g. 'PIR'), centred near the origin."""
    axes = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}
    aff = np.eye(4)
    aff[:3, :3] = 0
    for col, code in enumerate(axcodes):
        row, sign = axes[code]
        aff[row, col] = sign * spacing
    aff[:3, 3] = -aff[:3, :3] @ (np.asarray(shape[:3]) / 2.0) + np.array([10.0, -20.0, 30.0])
    return aff


# ---------------------------------------------------------------- NIfTI, MetaImage, NRRD
def write_nifti(
    path: Path,
    array: np.ndarray,
    affine: np.ndarray | None = None,
    *,
    qform_code: int = 1,
    sform_code: int = 1,
    descrip: str | None = None,
    json_extension: dict | None = None,
) -> Path:
    """NIfTI-1 with chosen qform/sform codes, description and an optional JSON (comment) extension."""
    affine = np.diag([1.5, 1.5, 1.5, 1.0]) if affine is None else affine
    img = nib.Nifti1Image(array, affine)
    img.set_qform(affine, code=qform_code)
    img.set_sform(affine, code=sform_code)
    if descrip is not None:
        img.header["descrip"] = descrip.encode()
    if json_extension is not None:
        ext = nib.nifti1.Nifti1Extension("comment", json.dumps(json_extension).encode())
        img.header.extensions.append(ext)
    nib.save(img, str(path))
    return path


def write_metaimage(
    path: Path,
    array: np.ndarray,
    spacing: Iterable[float] = (1.0, 1.0, 1.0),
    *,
    drop: Iterable[str] = (),
    extra: Iterable[str] = (),
) -> Path:
    """Hand-written .mha (int16, index order [i, j, k, ...]) so header keys can be left out or added."""
    dims = array.ndim
    header = {
        "ObjectType": "Image",
        "NDims": str(dims),
        "BinaryData": "True",
        "BinaryDataByteOrderMSB": "False",
        "CompressedData": "False",
        "TransformMatrix": " ".join(str(int(v)) for v in np.eye(dims).ravel()),
        "Offset": " ".join("0" for _ in range(dims)),
        "ElementSpacing": " ".join(str(float(s)) for s in spacing),
        "DimSize": " ".join(str(s) for s in array.shape),
        "ElementType": "MET_SHORT",
    }
    lines = [f"{k} = {v}" for k, v in header.items() if k not in set(drop)]
    lines += [*extra, "ElementDataFile = LOCAL"]
    data = np.asarray(array, dtype="<i2").tobytes(order="F")
    path.write_bytes(("\n".join(lines) + "\n").encode() + data)
    return path


def write_nrrd(
    path: Path,
    array: np.ndarray,
    spacing: Iterable[float] = (1.0, 1.0, 1.0),
    *,
    geometry: bool = True,
    extra: Iterable[str] = (),
) -> Path:
    """Hand-written 3D .nrrd (int16, raw) with or without its space directions."""
    spacing = list(spacing)
    lines = ["NRRD0004", "type: short", "dimension: 3", "sizes: " + " ".join(map(str, array.shape))]
    if geometry:
        dirs = " ".join("(" + ",".join(str(spacing[a] if a == b else 0.0) for b in range(3)) + ")" for a in range(3))
        lines += ["space: left-posterior-superior", f"space directions: {dirs}", "space origin: (0,0,0)"]
    lines += ["kinds: domain domain domain", "endian: little", "encoding: raw", *extra]
    data = np.asarray(array, dtype="<i2").tobytes(order="F")
    path.write_bytes(("\n".join(lines) + "\n\n").encode() + data)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to a fraction of its size (a half-copied download)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


# ---------------------------------------------------------------- DICOM (pydicom)
def write_dicom_series(
    folder: Path,
    hu: np.ndarray,
    positions: np.ndarray,
    *,
    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
    pixel_spacing: tuple[float, float] = (1.5, 1.5),
    modality: str = "CT",
    series_uid: str | None = None,
    slope: float = 1.0,
    intercept: float = -1024.0,
    omit: Iterable[str] = (),
    prefix: str = "IM",
    shuffle: int | None = None,
) -> list[Path]:
    """One DICOM file per slice k of `hu` (indexed [i, j, k]: i along the row direction).

    positions: (K, 3) ImagePositionPatient (LPS mm) of each slice. pixel_spacing: DICOM order
    (between rows, between columns). `omit` drops tags by keyword. `shuffle` (a seed) scrambles which
    file name and InstanceNumber holds which slice. Identifying tags from SECRETS are included.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study_uid, frame_uid = generate_uid(), generate_uid()
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    order = np.arange(hu.shape[2])
    if shuffle is not None:
        order = np.random.default_rng(shuffle).permutation(order)
    paths = []
    for n, k in enumerate(order):
        raw = np.round((hu[:, :, k].astype(float) - intercept) / slope).astype(np.int16).T
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        values = {
            **SECRETS,
            "SOPClassUID": sop_class,
            "SOPInstanceUID": meta.MediaStorageSOPInstanceUID,
            "Modality": modality,
            "Manufacturer": "ACME",
            "SeriesInstanceUID": series_uid,
            "StudyInstanceUID": study_uid,
            "FrameOfReferenceUID": frame_uid,
            "InstanceNumber": n + 1,
            "ImagePositionPatient": [float(v) for v in positions[k]],
            "ImageOrientationPatient": [float(v) for v in orientation],
            "PixelSpacing": [float(v) for v in pixel_spacing],
            "SliceThickness": 1.0,
            "Rows": raw.shape[0],
            "Columns": raw.shape[1],
            "SamplesPerPixel": 1,
            "PhotometricInterpretation": "MONOCHROME2",
            "BitsAllocated": 16,
            "BitsStored": 16,
            "HighBit": 15,
            "PixelRepresentation": 1,
            "RescaleSlope": slope,
            "RescaleIntercept": intercept,
        }
        for key, value in values.items():
            if key not in set(omit):
                setattr(ds, key, value)
        ds.PixelData = raw.tobytes()
        path = folder / f"{prefix}{n:04d}.dcm"
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    return paths


def write_dicomdir_like(path: Path) -> Path:
    """A DICOM file without an image (like a DICOMDIR)."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MediaStorageDirectoryStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MediaStorageDirectoryStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.FileSetID = "TEST"
    ds.DirectoryRecordSequence = []
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def axial_positions(count: int, step: float = 2.0, origin: Sequence[float] = (-24.0, -24.0, 0.0)) -> np.ndarray:
    """ImagePositionPatient of an axial stack going superior from `origin`."""
    return np.asarray(origin, dtype=float) + np.outer(np.arange(count) * step, [0.0, 0.0, 1.0])


def sphere_slices(
    center_lps: Sequence[float],
    radius: float,
    positions: np.ndarray,
    orientation: Sequence[float],
    size: tuple[int, int],
    spacing_ij: tuple[float, float],
    inside: float = 1000.0,
    outside: float = -1000.0,
) -> np.ndarray:
    """Slices [i, j, k] sampling a ball in patient space at each pixel's true position (LPS mm)."""
    row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    i, j = np.meshgrid(np.arange(size[0]), np.arange(size[1]), indexing="ij")
    out = np.empty((*size, len(positions)), dtype=np.float32)
    for k, p in enumerate(positions):
        world = p + i[..., None] * spacing_ij[0] * row + j[..., None] * spacing_ij[1] * col
        inside_ball = np.linalg.norm(world - np.asarray(center_lps, float), axis=-1) <= radius
        out[:, :, k] = np.where(inside_ball, inside, outside)
    return out


def bright_centroid_ras(volume, threshold: float = 0.0) -> np.ndarray:
    """World (RAS mm) centroid of voxels above `threshold`, weighted by how far above it they are."""
    weights = np.clip(volume.array.astype(float) - threshold, 0, None)
    idx = np.argwhere(weights > 0)
    w = weights[tuple(idx.T)]
    return (volume.world(idx) * w[:, None]).sum(axis=0) / w.sum()


def lps_to_ras(point: Sequence[float]) -> np.ndarray:
    return LPS_TO_RAS @ np.asarray(point, dtype=float)

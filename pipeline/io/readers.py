"""Read a CT or a label map from a DICOM series folder, NIfTI, NRRD or MetaImage.

Volumes keep the file's own index order (see `pipeline.volume`); the caller reorients with
`to_canonical`. Every problem with the input is an `InputError` with one line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from ..config import InputConfig, load_input_config
from ..errors import InputError
from ..volume import Volume, affine_from_itk, c_contiguous, reorient
from .checks import (
    check_shape,
    hu_dtype,
    modalities_in_metadata,
    squeeze_extra_dims,
    validate_ct,
)
from .dicom import is_dicom_file, load_dicom_series

_NIFTI = (".nii", ".nii.gz")
_NRRD = (".nrrd", ".nhdr")
_META = (".mha", ".mhd")
SUPPORTED_SUFFIXES = _NIFTI + _NRRD + _META

#: Text headers are read up to this many bytes when looking for spacing keys.
_HEADER_BYTES = 65536

#: Label-map geometry must match the reference CT within this many mm (affine entries).
LABEL_GEOMETRY_TOLERANCE_MM = 1e-3


@dataclass
class _Raw:
    """What a format reader returns before the common checks."""

    array: np.ndarray
    affine: np.ndarray
    header: dict[str, str] = field(default_factory=dict)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _unreadable(path: Path, kind: str) -> InputError:
    return InputError(
        f"{path.name}: cannot read it as a {kind} file (damaged, truncated or not {kind}): re-export the image"
    )


# ---------------------------------------------------------------- NIfTI (nibabel)
def _nifti_header_text(img: nib.Nifti1Image) -> dict[str, str]:
    """Free-text header fields and JSON extensions that may state a modality."""
    hdr = img.header
    out: dict[str, str] = {}
    for key in ("descrip", "intent_name"):
        raw = hdr[key].item() if hasattr(hdr[key], "item") else hdr[key]
        out[key] = raw.decode("latin-1", "replace") if isinstance(raw, bytes) else str(raw)
    for n, ext in enumerate(hdr.extensions):
        try:
            content = json.loads(ext.get_content())
        except (ValueError, TypeError):
            continue
        if not isinstance(content, dict):
            continue
        for key, value in content.items():
            out[key if key.lower() == "modality" else f"ext{n}.{key}"] = str(value)
    return out


def _nifti_array(img: nib.Nifti1Image) -> np.ndarray:
    """Voxel values with scl_slope/scl_inter applied, in integers where the scaling is integral."""
    proxy = img.dataobj
    raw = np.asarray(proxy.get_unscaled())
    slope, inter = float(proxy.slope), float(proxy.inter)
    if slope == 1.0 and inter == 0.0:
        return raw
    if raw.dtype.kind in "iu" and slope.is_integer() and inter.is_integer():
        return raw.astype(np.int32) * int(slope) + int(inter)
    return raw.astype(np.float32) * np.float32(slope) + np.float32(inter)


def _read_nifti(path: Path) -> _Raw:
    try:
        img = nib.load(str(path), mmap=False)
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise TypeError("not NIfTI")
        array = _nifti_array(img)
        affine = np.asarray(img.affine, dtype=float)
        codes = (int(img.header["qform_code"]), int(img.header["sform_code"]))
        header = _nifti_header_text(img)
    except Exception:  # nibabel raises many types on damaged files
        raise _unreadable(path, "NIfTI") from None
    if codes == (0, 0):
        raise InputError(
            f"{path.name}: spacing/orientation missing (NIfTI qform_code and sform_code are both 0): "
            "re-export the image with its geometry"
        )
    return _Raw(array, affine, header)


# ---------------------------------------------------------------- NRRD and MetaImage (SimpleITK)
def _text_header(path: Path, suffix: str) -> str:
    """The text header of an NRRD/MetaImage file (the whole file for detached headers)."""
    with open(path, "rb") as f:
        head = f.read(_HEADER_BYTES)
    if suffix == ".nrrd":
        head = head.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    elif suffix == ".mha":
        lines = head.replace(b"\r\n", b"\n").split(b"\n")
        end = next((n for n, ln in enumerate(lines) if ln.strip().startswith(b"ElementDataFile")), len(lines))
        head = b"\n".join(lines[: end + 1])
    return head.decode("latin-1", "replace")


def _header_keys(text: str, separator: str) -> set[str]:
    keys = set()
    for line in text.splitlines():
        if separator in line and not line.lstrip().startswith("#"):
            keys.add(line.split(separator, 1)[0].strip().lower())
    return keys


def _check_itk_spacing_present(path: Path, suffix: str) -> None:
    text = _text_header(path, suffix)
    if suffix in _NRRD:
        if not text.startswith("NRRD"):
            raise _unreadable(path, "NRRD")
        keys = _header_keys(text, ":")
        if not keys & {"space directions", "spacings"}:
            raise InputError(
                f"{path.name}: spacing/orientation missing (NRRD header has no 'space directions' or "
                "'spacings'): re-export the image with its geometry"
            )
    else:
        keys = _header_keys(text, "=")
        if "ndims" not in keys:
            raise _unreadable(path, "MetaImage")
        if not keys & {"elementspacing", "elementsize"}:
            raise InputError(
                f"{path.name}: spacing missing (MetaImage header has no ElementSpacing): "
                "re-export the image with its geometry"
            )


def _itk_to_3d(image: sitk.Image, path: Path, kind: str) -> sitk.Image:
    """Reject 2D, vector and 4D+ images; squeeze trailing singleton dimensions."""
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"{path.name}: image has {image.GetNumberOfComponentsPerPixel()} values per voxel "
            "(colour or vector image): give a grey-value 3D image"
        )
    size = list(image.GetSize())
    while len(size) > 3 and size[-1] == 1:
        image = sitk.Extract(image, [*size[:-1], 0], [0] * len(size))
        size = list(image.GetSize())
    check_shape(tuple(size), path.name, kind)
    return image


def _read_itk(path: Path, suffix: str, what: str) -> _Raw:
    kind = "NRRD" if suffix in _NRRD else "MetaImage"
    _check_itk_spacing_present(path, suffix)
    reader = sitk.ImageFileReader()
    reader.SetImageIO("NrrdImageIO" if suffix in _NRRD else "MetaImageIO")
    reader.SetFileName(str(path))
    try:
        image = reader.Execute()
    except RuntimeError:
        raise _unreadable(path, kind) from None
    header = {k: image.GetMetaData(k) for k in image.GetMetaDataKeys()}
    image = _itk_to_3d(image, path, what)
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    affine = affine_from_itk(image.GetSpacing(), image.GetOrigin(), image.GetDirection())
    return _Raw(array, affine, header)


# ---------------------------------------------------------------- common
def _read_file(path: Path, what: str) -> _Raw:
    """Dispatch on the extension; reject what cannot be read. `what`: 'CT' or 'label map'."""
    suffix = _suffix(path)
    if suffix not in SUPPORTED_SUFFIXES:
        if is_dicom_file(path):
            raise InputError(f"{path.name} is a single DICOM file: give the folder that holds the whole series")
        raise InputError(
            f"{path.name}: unsupported file type '{suffix or path.name}': give a DICOM series folder or a "
            f"{', '.join(SUPPORTED_SUFFIXES)} file"
        )
    try:
        raw = _read_nifti(path) if suffix in _NIFTI else _read_itk(path, suffix, what)
    except OSError as e:
        reason = e.strerror or e
        raise InputError(f"{path.name}: cannot read the file ({reason}): check that it is readable") from None
    raw.array = squeeze_extra_dims(raw.array, path.name, what)
    return raw


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file or folder: check the path")


def _file_modality(header: dict[str, str]) -> str | None:
    found = modalities_in_metadata(header)
    others = [m for m in found if m != "CT"]
    return (others or found or [None])[0]


def load_ct(path: str | Path, config: InputConfig | None = None) -> Volume:
    """Load and validate a CT: a DICOM series folder or a .nii/.nii.gz/.nrrd/.nhdr/.mha/.mhd file.

    The volume keeps the file's index order; values are Hounsfield units (int16 or float32).
    Raises `InputError` (one line) when the input is unreadable or not a usable CT.
    """
    path = Path(path).absolute()  # absolute: "." still has a name for messages
    config = config or load_input_config()
    _check_exists(path)
    if path.is_dir():
        volume = load_dicom_series(path, config)
    else:
        raw = _read_file(path, "CT")
        meta = {}
        modality = _file_modality(raw.header)
        if modality is not None:
            meta["Modality"] = modality
        volume = Volume(c_contiguous(hu_dtype(raw.array)), raw.affine, source=path.name, meta=meta)
    validate_ct(volume, config)
    return volume


# ---------------------------------------------------------------- label maps
def _label_dtype(array: np.ndarray, source: str) -> np.ndarray:
    """Smallest integer type that holds the labels; integral floats accepted."""
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.array_equal(array, np.round(array)):
            raise InputError(
                f"{source}: label map has non-integer values: give an integer label map "
                "(not a probability or intensity image)"
            )
    elif array.dtype.kind not in "biu":
        raise InputError(f"{source}: label map voxel type {array.dtype} is not an integer: re-export it")
    lo, hi = (int(array.min()), int(array.max())) if array.size else (0, 0)
    if lo < 0:
        raise InputError(f"{source}: label map has negative labels (min {lo}): labels must be 0 or positive")
    for dtype in (np.uint8, np.uint16, np.int32):
        if hi <= np.iinfo(dtype).max:
            return array.astype(dtype, copy=False)
    raise InputError(f"{source}: label values up to {hi} are too large: renumber the labels")


def _fmt_spacing(spacing: tuple[float, ...]) -> str:
    return " x ".join(f"{v:.4g}" for v in spacing)


def _geometry_difference(label: Volume, reference: Volume) -> str | None:
    """None when the grids agree, else a short description of the first difference."""
    tol = LABEL_GEOMETRY_TOLERANCE_MM
    if label.shape != reference.shape:
        return f"shape {'x'.join(map(str, label.shape))} vs {'x'.join(map(str, reference.shape))}"
    if label.orientation != reference.orientation:
        return f"orientation {label.orientation} vs {reference.orientation}"
    if not np.allclose(label.spacing, reference.spacing, atol=tol, rtol=0):
        return f"spacing {_fmt_spacing(label.spacing)} vs {_fmt_spacing(reference.spacing)} mm"
    offset = float(np.abs(label.affine[:3, 3] - reference.affine[:3, 3]).max())
    if offset > tol:
        return f"origin differs by {offset:.3g} mm"
    if not np.allclose(label.affine, reference.affine, atol=tol, rtol=0):
        return "direction cosines differ"
    return None


def _match_reference(label: Volume, reference: Volume) -> Volume:
    """The label map on the reference's index order, or InputError when the grids differ.

    A label map stored with the same voxel grid in another axis order (e.g. LAS vs LPS) is
    reoriented exactly (permutation and flips, no resampling) before the comparison.
    """
    candidate = label
    if label.orientation != reference.orientation:
        candidate = reorient(label, reference.orientation)
    difference = _geometry_difference(candidate, reference)
    if difference is not None:
        raise InputError(
            f"{label.source}: label map geometry does not match the CT: {difference}; resample it onto the CT grid"
        )
    if candidate is label:
        return label
    note = f"label map stored as {label.orientation}; reoriented to the CT's {reference.orientation}"
    return replace(candidate, notes=(*label.notes, note))


def load_label_map(path: str | Path, reference: Volume | None = None) -> Volume:
    """Load an integer label map (NIfTI, NRRD, MetaImage); no intensity checks.

    With `reference`, the map must lie on the same grid (shape, and affine within 1e-3 mm; an exact
    axis permutation/flip is undone) and comes back in the reference's index order.
    """
    path = Path(path).absolute()
    _check_exists(path)
    if path.is_dir():
        raise InputError(f"{path.name} is a folder: give the label map as a NIfTI, NRRD or MetaImage file")
    raw = _read_file(path, "label map")
    array = c_contiguous(_label_dtype(raw.array, path.name))
    label = Volume(array, raw.affine, source=path.name)
    if reference is not None:
        label = _match_reference(label, reference)
    return label


__all__ = ["SUPPORTED_SUFFIXES", "load_ct", "load_label_map"]

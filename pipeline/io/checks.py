"""Checks that an image is a usable CT (3D, CT modality, plausible spacing, Hounsfield units).

Every failed check raises `InputError` with one line: what is wrong, then what the user can do.
All thresholds come from `configs/input.yaml` (`InputConfig`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import numpy as np

from ..config import InputConfig, load_input_config
from ..errors import InputError
from ..volume import Volume

#: Voxels looked at by the intensity checks (a strided subsample of bigger volumes).
_HU_SAMPLE_VOXELS = 1_000_000

_MODALITY_ALIASES = {"MRI": "MR", "COMPUTED TOMOGRAPHY": "CT", "CT SCAN": "CT"}
_MODALITY_UNKNOWN = {"", "UNKNOWN", "NONE", "N/A", "NA"}
_MODALITY_IN_TEXT = re.compile(r"modality\s*[:=]\s*([A-Za-z_]+)", re.IGNORECASE)


def _prefix(source: str) -> str:
    return f"{source}: " if source else ""


def _fmt_shape(shape: Iterable[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


def _fmt_num(value: float) -> str:
    return f"{float(value):g}"


def check_shape(shape: tuple[int, ...], source: str = "", kind: str = "CT") -> None:
    """Reject anything but a 3D image with at least two voxels along every axis."""
    shape = tuple(int(s) for s in shape)
    where = _prefix(source)
    if any(s == 0 for s in shape):
        raise InputError(f"{where}image is empty (shape {_fmt_shape(shape)}): give a {kind} with image data")
    if len(shape) > 3:
        raise InputError(
            f"{where}image is {len(shape)}D (shape {_fmt_shape(shape)}): give a single 3D {kind} "
            "(extract one time point or channel)"
        )
    if len(shape) < 3 or min(shape) == 1:
        raise InputError(
            f"{where}image is 2D (shape {_fmt_shape(shape)}): give a 3D {kind} (the whole series, not a single slice)"
        )


def squeeze_extra_dims(array: np.ndarray, source: str = "", kind: str = "CT") -> np.ndarray:
    """Drop singleton dimensions beyond the third (e.g. a NIfTI 4th dim of size 1), then check 3D."""
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    check_shape(array.shape, source, kind)
    return array


def hu_dtype(array: np.ndarray) -> np.ndarray:
    """int16 where integer values fit, float32 otherwise (other types are left for validate_ct)."""
    if array.dtype.kind in "biu":
        info = np.iinfo(np.int16)
        if array.size and info.min <= array.min() and array.max() <= info.max:
            return array.astype(np.int16, copy=False)
        return array.astype(np.float32)
    if array.dtype.kind == "f":
        return array.astype(np.float32, copy=False)
    return array


def check_spacing(spacing: Iterable[float], config: InputConfig, source: str = "") -> None:
    """Reject voxel sizes outside config.spacing_mm (or non-finite ones)."""
    values = [float(s) for s in spacing]
    lo, hi = config.spacing_mm.min, config.spacing_mm.max
    if all(np.isfinite(values)) and all(lo <= s <= hi for s in values):
        return
    text = " x ".join(f"{s:.4g}" for s in values)
    raise InputError(
        f"{_prefix(source)}voxel spacing {text} mm is outside {_fmt_num(lo)}-{_fmt_num(hi)} mm: "
        "fix the spacing in the header or resample the image"
    )


def normalize_modality(value: str | None) -> str | None:
    """'CT', 'MR', ... from DICOM / MetaImage ('MET_MOD_MR') / free text; None when unknown."""
    if value is None:
        return None
    text = str(value).strip().upper().removeprefix("MET_MOD_")
    if text in _MODALITY_UNKNOWN:
        return None
    return _MODALITY_ALIASES.get(text, text)


def modalities_in_metadata(meta: Mapping[str, str]) -> list[str]:
    """Known modalities stated in header key/values (key 'modality' in any case, or 'modality=XX' text)."""
    found: list[str] = []
    for key, value in meta.items():
        if key.strip().lower() == "modality":
            found.append(str(value))
        else:
            found.extend(_MODALITY_IN_TEXT.findall(str(value)))
    return [m for m in (normalize_modality(v) for v in found) if m is not None]


def check_modality(modalities: Iterable[str | None], source: str = "", where: str = "the header") -> None:
    """Reject an image whose header says it is not a CT (no statement: accepted)."""
    known = sorted({m for m in (normalize_modality(v) for v in modalities) if m is not None})
    others = [m for m in known if m != "CT"]
    if others:
        raise InputError(
            f"{_prefix(source)}not a CT (modality {'/'.join(others)} in {where}): OpenSINS needs a CT scan of the spine"
        )


def check_finite_and_not_constant(array: np.ndarray, source: str = "") -> tuple[float, float]:
    """Reject NaN/inf values and constant images; returns (min, max)."""
    lo, hi = float(np.min(array)), float(np.max(array))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise InputError(
            f"{_prefix(source)}image contains NaN or infinite values: re-export the CT with valid intensities"
        )
    if lo == hi:
        raise InputError(
            f"{_prefix(source)}image is constant (all voxels = {_fmt_num(lo)}): "
            "the file holds no image data; check the export"
        )
    return lo, hi


def subsample(array: np.ndarray, voxels: int = _HU_SAMPLE_VOXELS) -> np.ndarray:
    """Regular strided subsample of about `voxels` voxels (the array itself when small)."""
    step = max(1, int(np.ceil((array.size / voxels) ** (1.0 / 3.0))))
    return array[::step, ::step, ::step] if step > 1 else array


def check_hounsfield(
    array: np.ndarray, config: InputConfig, source: str = "", value_range: tuple[float, float] | None = None
) -> None:
    """Reject intensities that are not Hounsfield units.

    HU-like means: enough air (<= air_hu), or, for tight crops, both fat (air_hu..fat_hu] and bone
    (>= bone_hu) in the configured fractions.
    """
    hu = config.hounsfield
    sample = subsample(array)
    air = float(np.mean(sample <= hu.air_hu))
    if air >= hu.air_min_fraction:
        return
    fat = float(np.mean((sample > hu.air_hu) & (sample <= hu.fat_hu)))
    bone = float(np.mean(sample >= hu.bone_hu))
    if fat >= hu.fat_min_fraction and bone >= hu.bone_min_fraction:
        return
    lo, hi = value_range if value_range is not None else (float(np.min(array)), float(np.max(array)))
    missing = "no air near -1000 HU"
    if lo >= 0:
        missing += ", no negative values"
    else:
        missing += ", not enough fat and bone"
    raise InputError(
        f"{_prefix(source)}intensities do not look like Hounsfield units ({missing}, range "
        f"{_fmt_num(lo)}..{_fmt_num(hi)}): export the CT in HU (apply RescaleSlope/Intercept)"
    )


def validate_ct(volume: Volume, config: InputConfig | None = None) -> None:
    """Every image-level check on a loaded CT (raises `InputError` with one line on the first failure)."""
    config = config or load_input_config()
    source = volume.source
    check_shape(volume.array.shape, source)
    check_modality([volume.meta.get("Modality")], source)
    check_spacing(volume.spacing, config, source)
    if not np.issubdtype(volume.array.dtype, np.number) or np.iscomplexobj(volume.array):
        raise InputError(
            f"{_prefix(source)}voxel type {volume.array.dtype} is not a grey-value image: "
            "give a CT with one number per voxel"
        )
    value_range = check_finite_and_not_constant(volume.array, source)
    check_hounsfield(volume.array, config, source, value_range)

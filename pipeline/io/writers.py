"""Write volumes and label maps (NIfTI, NRRD, MHA by extension), atomically."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..volume import Volume, c_contiguous, itk_from_affine


def to_sitk(volume: Volume, dtype: np.dtype | type | None = None) -> sitk.Image:
    """SimpleITK image of a Volume (ITK index order, LPS geometry)."""
    array = volume.array if dtype is None else volume.array.astype(dtype, copy=False)
    image = sitk.GetImageFromArray(c_contiguous(array.transpose(2, 1, 0)))
    spacing, origin, direction = itk_from_affine(volume.affine)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return image


def save_volume(volume: Volume, path: str | Path, dtype: np.dtype | type | None = None) -> Path:
    """Write `volume` to `path` (format from the extension), via a temporary folder and a rename.

    A reader never sees a half-written file: the image (and, for .mhd/.nhdr, its data file) is
    written under its final name in a hidden temporary folder beside the target, then moved.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        sitk.WriteImage(to_sitk(volume, dtype), str(tmpdir / path.name), useCompression=True)
        for produced in sorted(tmpdir.iterdir(), key=lambda p: p.name == path.name):
            os.replace(produced, path.parent / produced.name)  # the header (named file) last
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return path

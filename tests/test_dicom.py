"""DICOM series folders: choosing the series, sorting, rescale, tilt and uneven spacing, bad series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from io_fixtures import (
    REAL_DATA,
    SECRETS,
    axial_positions,
    bright_centroid_ras,
    ct_array,
    lps_to_ras,
    sphere_slices,
    write_dicom_series,
    write_dicomdir_like,
)

from pipeline.config import load_input_config
from pipeline.errors import InputError
from pipeline.io import load_ct, load_label_map

pytest.importorskip("pydicom", reason="pydicom is needed to write the synthetic DICOM series")

CONFIG = load_input_config()


def raises_one_line(match: str, func, *args) -> str:
    with pytest.raises(InputError, match=match) as info:
        func(*args)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def marked_ct(slices: int = 12) -> np.ndarray:
    hu = ct_array((24, 20, slices)).astype(float)
    hu[3, 5, min(7, slices - 1)] = 2000
    return hu


def assert_no_identifiers(volume) -> None:
    text = " ".join([*volume.notes, *volume.meta.keys(), *volume.meta.values()])
    for value in SECRETS.values():
        assert value not in text


# ---------------------------------------------------------------- good series
def test_series_geometry_values_and_meta(tmp_path: Path) -> None:
    hu = marked_ct()
    positions = axial_positions(12, step=2.0, origin=(-20.0, -30.0, 50.0))
    write_dicom_series(tmp_path / "series", hu, positions, pixel_spacing=(1.25, 1.5), shuffle=3)
    volume = load_ct(tmp_path / "series", CONFIG)
    assert volume.source == "series" and volume.orientation == "LPS"
    assert volume.array.dtype == np.int16
    np.testing.assert_array_equal(volume.array, hu)  # stored = HU + 1024, intercept -1024 applied
    np.testing.assert_allclose(volume.spacing, (1.5, 1.25, 2.0))
    np.testing.assert_allclose(volume.world([3, 5, 7]), lps_to_ras([-20 + 3 * 1.5, -30 + 5 * 1.25, 64.0]))
    assert volume.meta["Modality"] == "CT" and len(volume.meta["SOPInstanceUIDs"].split("\\")) == 12
    assert volume.notes == ()
    assert_no_identifiers(volume)


def test_rescale_slope_applied(tmp_path: Path) -> None:
    hu = marked_ct()
    write_dicom_series(tmp_path / "s", hu, axial_positions(12), slope=0.5, intercept=-1000.0)
    volume = load_ct(tmp_path / "s", CONFIG)
    np.testing.assert_allclose(volume.array, hu, atol=0.5)


def test_descending_positions_sorted_along_normal(tmp_path: Path) -> None:
    hu = marked_ct()
    positions = axial_positions(12)[::-1]  # slice 0 of `hu` is the most superior
    write_dicom_series(tmp_path / "s", hu, positions, shuffle=5)
    volume = load_ct(tmp_path / "s", CONFIG)
    assert volume.affine[2, 2] > 0  # k grows along the normal (superior)
    marker = np.argwhere(volume.array == 2000)[0]
    np.testing.assert_allclose(volume.world(marker), lps_to_ras(positions[7] + [3 * 1.5, 5 * 1.5, 0]))


def test_sagittal_series(tmp_path: Path) -> None:
    """Rows along posterior->anterior... any orientation: the marker lands at its patient position."""
    iop = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # row: +y (posterior), column: -z (inferior); normal -x
    positions = np.array([[10.0 - 2.0 * k, -20.0, 40.0] for k in range(12)])
    hu = marked_ct()
    write_dicom_series(tmp_path / "sag", hu, positions, orientation=iop, shuffle=1)
    volume = load_ct(tmp_path / "sag", CONFIG)
    marker = np.argwhere(volume.array == 2000)[0]
    expected = positions[7] + 3 * 1.5 * np.array([0, 1, 0]) + 5 * 1.5 * np.array([0, 0, -1])
    np.testing.assert_allclose(volume.world(marker), lps_to_ras(expected), atol=1e-6)


def test_folder_with_several_series_and_junk(tmp_path: Path) -> None:
    root = tmp_path / "study"
    write_dicom_series(root / "a" / "ct", marked_ct(12), axial_positions(12), series_uid="1.2.3", prefix="CT")
    write_dicom_series(root / "a" / "loc", marked_ct(3), axial_positions(3), series_uid="1.2.4", prefix="LO")
    write_dicom_series(root / "b", marked_ct(20), axial_positions(20), series_uid="1.2.5", modality="MR")
    write_dicomdir_like(root / "DICOMDIR")
    (root / "README.txt").write_text("exported by somebody\n")
    volume = load_ct(root, CONFIG)
    assert volume.shape == (24, 20, 12) and volume.meta["SeriesInstanceUID"] == "1.2.3"
    assert volume.notes[0].startswith("3 series in folder; using CT series 1.2.3 with 12 slices (others: ")
    assert "1.2.5 MR 20 slices" in volume.notes[0] and "1.2.4 CT 3 slices" in volume.notes[0]
    assert "ignored 2 non-image file(s)" in volume.notes[-1]
    assert_no_identifiers(volume)


def test_series_without_modality_accepted(tmp_path: Path) -> None:
    write_dicom_series(tmp_path / "s", marked_ct(), axial_positions(12), omit=["Modality"])
    volume = load_ct(tmp_path / "s", CONFIG)
    assert "Modality" not in volume.meta and volume.shape == (24, 20, 12)


# ---------------------------------------------------------------- tilt and uneven spacing
def test_gantry_tilt_resampled_to_true_position(tmp_path: Path) -> None:
    tilt = np.radians(20.0)
    iop = (1.0, 0.0, 0.0, 0.0, np.cos(tilt), -np.sin(tilt))
    positions = np.array([[-40.0, -40.0, -30.0 + 2.5 * k] for k in range(30)])  # table moves along z
    center, radius = np.array([0.0, 0.0, 0.0]), 8.0
    hu = sphere_slices(center, radius, positions, iop, (40, 40), (2.0, 2.0))
    write_dicom_series(tmp_path / "tilt", hu, positions, orientation=iop, pixel_spacing=(2.0, 2.0))
    volume = load_ct(tmp_path / "tilt", CONFIG)
    assert volume.notes == ("gantry tilt 20.0 deg: resampled to an orthogonal grid",)
    np.testing.assert_allclose(volume.spacing, (2.0, 2.0, 2.5 * np.cos(tilt)), atol=1e-6)
    axes = volume.affine[:3, :3] / volume.spacing
    np.testing.assert_allclose(axes.T @ axes, np.eye(3), atol=1e-9)  # orthogonal grid
    error = np.linalg.norm(bright_centroid_ras(volume) - lps_to_ras(center))
    assert error < 0.5, error  # within a quarter voxel
    ball_ml = (volume.array > 0).sum() * np.prod(volume.spacing) / 1000
    assert ball_ml == pytest.approx(4 / 3 * np.pi * radius**3 / 1000, rel=0.1)
    # the check is sensitive: stacking the slices along the normal without the correction misplaces it
    i, j, k = np.argwhere(hu > 0).mean(axis=0)
    row, col = np.array(iop[:3]), np.array(iop[3:])
    naive = positions[0] + 2.0 * i * row + 2.0 * j * col + 2.5 * k * np.cross(row, col)
    assert np.linalg.norm(naive - center) > 5.0


def test_uneven_spacing_resampled_to_true_position(tmp_path: Path) -> None:
    depth = np.r_[np.arange(12) * 1.0, 11.0 + np.arange(1, 13) * 2.0]
    positions = np.array([[-24.0, -24.0, z] for z in depth])
    center, radius = np.array([0.5, -1.0, 11.3]), 6.0
    hu = sphere_slices(center, radius, positions, (1, 0, 0, 0, 1, 0), (32, 32), (1.5, 1.5))
    write_dicom_series(tmp_path / "uneven", hu, positions, pixel_spacing=(1.5, 1.5))
    volume = load_ct(tmp_path / "uneven", CONFIG)
    assert volume.notes == ("uneven slice spacing 1.0-2.0 mm: resampled to 1.0 mm",)
    np.testing.assert_allclose(volume.spacing, (1.5, 1.5, 1.0))
    assert volume.shape == (32, 32, 36)
    error = np.linalg.norm(bright_centroid_ras(volume) - lps_to_ras(center))
    assert error < 0.5, error
    # a naive even stack (ITK's series reader) puts the ball elsewhere
    naive_z = np.argwhere(hu > 0)[:, 2].mean() * (depth[-1] / (len(depth) - 1))
    assert abs(naive_z - center[2]) > 2.0


# ---------------------------------------------------------------- bad series
def test_empty_folder_and_no_dicom(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    raises_one_line(r"no DICOM images found in the folder \(no files\)", load_ct, tmp_path / "empty", CONFIG)
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "notes.txt").write_text("hello")
    write_dicomdir_like(tmp_path / "text" / "DICOMDIR")
    raises_one_line(r"\(2 file\(s\), none a DICOM image\)", load_ct, tmp_path / "text", CONFIG)


def test_single_dicom_file_given(tmp_path: Path) -> None:
    files = write_dicom_series(tmp_path / "s", marked_ct(), axial_positions(12))
    raises_one_line("is a single DICOM file: give the folder", load_ct, files[0], CONFIG)


def test_mr_series_rejected(tmp_path: Path) -> None:
    write_dicom_series(tmp_path / "mr", marked_ct(), axial_positions(12), modality="MR")
    raises_one_line(r"^mr: not a CT \(DICOM Modality MR in 1 series\)", load_ct, tmp_path / "mr", CONFIG)


def test_missing_pixel_spacing(tmp_path: Path) -> None:
    write_dicom_series(tmp_path / "s", marked_ct(), axial_positions(12), omit=["PixelSpacing"])
    match = r"spacing missing \(DICOM PixelSpacing \(0028,0030\) absent\)"
    raises_one_line(match, load_ct, tmp_path / "s", CONFIG)


def test_missing_position(tmp_path: Path) -> None:
    write_dicom_series(tmp_path / "s", marked_ct(), axial_positions(12), omit=["ImagePositionPatient"])
    raises_one_line("slice position/orientation missing", load_ct, tmp_path / "s", CONFIG)


def test_duplicate_positions(tmp_path: Path) -> None:
    positions = axial_positions(12)
    positions[6] = positions[5]
    write_dicom_series(tmp_path / "s", marked_ct(), positions)
    match = r"1 slice\(s\) share a position .* slice spacing is zero"
    raises_one_line(match, load_ct, tmp_path / "s", CONFIG)


def test_single_slice_series(tmp_path: Path) -> None:
    write_dicom_series(tmp_path / "s", marked_ct(1), axial_positions(1))
    raises_one_line(r"image is 2D \(shape 24x20x1\)", load_ct, tmp_path / "s", CONFIG)


def test_8bit_series_rejected(tmp_path: Path) -> None:
    hu = np.clip((marked_ct() + 1000) / 8, 0, 255)
    hu[0, 0, 0], hu[1, 1, 1] = 0, 255
    write_dicom_series(tmp_path / "s", hu, axial_positions(12), intercept=0.0)
    match = r"not look like Hounsfield units \(no air .*range 0\.\.255\)"
    raises_one_line(match, load_ct, tmp_path / "s", CONFIG)


def test_truncated_slice(tmp_path: Path) -> None:
    files = write_dicom_series(tmp_path / "s", marked_ct(), axial_positions(12))
    data = files[4].read_bytes()
    files[4].write_bytes(data[: len(data) - 300])
    match = r"1 slice file\(s\) of the series cannot be read \(damaged or truncated, e\.g\. IM0004"
    message = raises_one_line(match, load_ct, tmp_path / "s", CONFIG)
    assert message.endswith("re-export the series")


def test_damaged_file_of_another_series_is_ignored(tmp_path: Path) -> None:
    write_dicom_series(tmp_path / "s" / "ct", marked_ct(), axial_positions(12))
    other = write_dicom_series(tmp_path / "s" / "other", marked_ct(3), axial_positions(3), prefix="OT")
    other[0].write_bytes(other[0].read_bytes()[:-300])
    volume = load_ct(tmp_path / "s", CONFIG)
    assert volume.shape == (24, 20, 12) and "ignored 1 non-image file(s)" in volume.notes[-1]


# ---------------------------------------------------------------- real data
real = pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"real data folder {REAL_DATA} is absent")


@pytest.mark.real
@real
def test_real_dicom_series_and_totalsegmentator_map() -> None:
    folder = REAL_DATA / "ts_dicom_thoracolumbar" / "dicom"
    volume = load_ct(folder, CONFIG)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(next(p for p in sorted(folder.iterdir()) if p.is_file())))
    reader.ReadImageInformation()
    row_spacing, col_spacing = (float(v) for v in reader.GetMetaData("0028|0030").split("\\"))
    assert volume.shape == (512, 512, 20)
    np.testing.assert_allclose(volume.spacing, (col_spacing, row_spacing, 2.0), atol=1e-6)
    np.testing.assert_allclose(volume.spacing[:2], (0.9765625, 0.9765625))
    assert volume.orientation == "LPS"
    assert volume.array.min() == -1024  # RescaleIntercept -1024 applied
    labels = load_label_map(REAL_DATA / "ts_dicom_thoracolumbar" / "segmentation_totalseg.nii.gz", volume)
    assert labels.shape == volume.shape
    np.testing.assert_allclose(labels.affine, volume.affine, atol=1e-3)
    assert labels.notes == ("label map stored as LAS; reoriented to the CT's LPS",)
    assert volume.array[labels.array > 0].mean() > volume.array[:, ::-1][labels.array > 0].mean() + 100

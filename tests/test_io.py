"""Reading CT files and label maps: formats, axis order, and every bad input (one-line InputError)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from io_fixtures import (
    REAL_DATA,
    affine_for,
    ct_array,
    truncate,
    write_metaimage,
    write_nifti,
    write_nrrd,
)

from pipeline.config import load_input_config
from pipeline.errors import InputError
from pipeline.io import load_ct, load_label_map, save_volume, validate_ct
from pipeline.volume import Volume, c_contiguous, reorient, to_canonical

CONFIG = load_input_config()


def raises_one_line(match: str, func, *args, **kwargs) -> str:
    """Call `func`, expect an InputError matching `match` with a single-line message; return it."""
    with pytest.raises(InputError, match=match) as info:
        func(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message, message
    return message


@pytest.fixture
def ct_volume() -> Volume:
    array = ct_array()
    array[3, 5, 7] = 2000  # an asymmetric marker
    return Volume(array, affine_for("RAS"), source="ct")


# ---------------------------------------------------------------- good inputs
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd"])
def test_formats_round_trip(tmp_path: Path, ct_volume: Volume, suffix: str) -> None:
    path = save_volume(ct_volume, tmp_path / f"ct{suffix}")
    loaded = load_ct(path, CONFIG)
    assert loaded.source == f"ct{suffix}"
    assert loaded.array.dtype == np.int16
    np.testing.assert_array_equal(loaded.array, ct_volume.array)
    np.testing.assert_allclose(loaded.affine, ct_volume.affine, atol=1e-4)
    assert loaded.notes == ()


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_axis_order_contract(tmp_path: Path, ct_volume: Volume, suffix: str) -> None:
    """The same image stored RAS, LPS and PIR loads in its file order and canonicalises identically."""
    canon = []
    for codes in ("RAS", "LPS", "PIR"):
        stored = reorient(ct_volume, codes)
        path = tmp_path / f"{codes}{suffix}"
        if suffix == ".nii.gz":
            write_nifti(path, stored.array, stored.affine)
        else:
            save_volume(stored, path)
        loaded = load_ct(path, CONFIG)
        assert loaded.orientation == codes
        marker = np.argwhere(loaded.array == 2000)
        assert len(marker) == 1
        np.testing.assert_allclose(loaded.world(marker[0]), ct_volume.world([3, 5, 7]), atol=1e-4)
        canon.append(to_canonical(loaded))
    for other in canon[1:]:
        np.testing.assert_array_equal(other.array, canon[0].array)
        np.testing.assert_allclose(other.affine, canon[0].affine, atol=1e-4)
    np.testing.assert_array_equal(canon[0].array, ct_volume.array)


def test_c_contiguous_copies_any_layout_exactly() -> None:
    """The reader's fast copy of a Fortran-order array (nibabel, transposed SimpleITK) and the plain one of
    any other layout give the same C-order array."""
    a = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)
    for view in (a, a.transpose(2, 1, 0), np.asfortranarray(a), a[::-1], a.transpose(1, 0, 2), a[:, ::2]):
        out = c_contiguous(view)
        assert out.flags.c_contiguous and out.dtype == a.dtype and np.array_equal(out, view)
    assert c_contiguous(a) is a


def test_singleton_fourth_dimension_is_squeezed(tmp_path: Path) -> None:
    path = write_nifti(tmp_path / "ct4d1.nii.gz", ct_array()[..., None])
    assert load_ct(path, CONFIG).shape == (24, 20, 16)


def test_float_hu_kept_as_float32(tmp_path: Path) -> None:
    path = write_nifti(tmp_path / "ct.nii.gz", ct_array().astype(np.float64) + 0.25)
    assert load_ct(path, CONFIG).array.dtype == np.float32


@pytest.mark.parametrize(("slope", "inter", "dtype"), [(1, -1024, np.int16), (0.5, -1024.0, np.float32)])
def test_nifti_scaling_applied(tmp_path: Path, slope: float, inter: float, dtype: type) -> None:
    hu = ct_array()
    img = nib.Nifti1Image(np.round((hu + 1024) / slope).astype(np.uint16), np.diag([1.5, 1.5, 1.5, 1]))
    img.header.set_slope_inter(slope, inter)
    nib.save(img, str(tmp_path / "scaled.nii.gz"))
    loaded = load_ct(tmp_path / "scaled.nii.gz", CONFIG)
    assert loaded.array.dtype == dtype
    np.testing.assert_allclose(loaded.array, hu)


def test_tight_crop_with_fat_and_bone_but_no_air_is_hu(tmp_path: Path) -> None:
    path = write_nifti(tmp_path / "crop.nii.gz", ct_array(air=False))
    load_ct(path, CONFIG)


@pytest.mark.parametrize(
    ("where", "value"), [("mha", "MET_MOD_CT"), ("nrrd", "CT"), ("descrip", "modality=CT"), ("json", "CT")]
)
def test_ct_modality_accepted(tmp_path: Path, where: str, value: str) -> None:
    load_ct(_with_modality(tmp_path, where, value), CONFIG)


# ---------------------------------------------------------------- unreadable / wrong kind of path
def test_missing_path(tmp_path: Path) -> None:
    raises_one_line("no such file or folder", load_ct, tmp_path / "nope.nii.gz", CONFIG)


@pytest.mark.parametrize("name", ["ct.png", "ct.txt", "ct"])
def test_unsupported_extension(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"\x89PNG....")
    raises_one_line("unsupported file type", load_ct, tmp_path / name, CONFIG)


@pytest.mark.parametrize(
    ("name", "kind"), [("ct.nii", "NIfTI"), ("ct.nii.gz", "NIfTI"), ("ct.nrrd", "NRRD"), ("ct.mha", "MetaImage")]
)
def test_text_file_with_image_extension(tmp_path: Path, name: str, kind: str) -> None:
    (tmp_path / name).write_text("this is not an image\n" * 20)
    raises_one_line(f"cannot read it as a {kind} file", load_ct, tmp_path / name, CONFIG)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_truncated_file(tmp_path: Path, ct_volume: Volume, suffix: str) -> None:
    path = tmp_path / f"ct{suffix}"
    if suffix.startswith(".nii"):
        write_nifti(path, ct_volume.array, ct_volume.affine)
    elif suffix == ".nrrd":
        write_nrrd(path, ct_volume.array)
    else:
        write_metaimage(path, ct_volume.array)
    raises_one_line("cannot read it as", load_ct, truncate(path), CONFIG)


def test_mhd_with_missing_raw_file(tmp_path: Path, ct_volume: Volume) -> None:
    path = save_volume(ct_volume, tmp_path / "ct.mhd")
    for data in tmp_path.iterdir():
        if data != path:
            data.unlink()
    raises_one_line("cannot read it as a MetaImage file", load_ct, path, CONFIG)


# ---------------------------------------------------------------- not 3D
@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((24, 20), "image is 2D"),
        ((24, 20, 1), r"image is 2D \(shape 24x20x1\)"),
        ((24, 20, 16, 3), r"image is 4D \(shape 24x20x16x3\)"),
        ((24, 20, 16, 1, 2), "image is 5D"),
    ],
)
def test_nifti_not_3d(tmp_path: Path, shape: tuple[int, ...], match: str) -> None:
    array = np.resize(ct_array(), shape).astype(np.int16)
    path = write_nifti(tmp_path / "ct.nii.gz", array)
    raises_one_line(match, load_ct, path, CONFIG)


def test_itk_2d_and_4d(tmp_path: Path) -> None:
    sitk.WriteImage(sitk.GetImageFromArray(ct_array()[:, :, 0].T.copy()), str(tmp_path / "slice.nrrd"))
    raises_one_line("image is 2D", load_ct, tmp_path / "slice.nrrd", CONFIG)
    write_metaimage(tmp_path / "time.mha", np.resize(ct_array(), (24, 20, 16, 2)), (1, 1, 1, 1))
    raises_one_line("image is 4D", load_ct, tmp_path / "time.mha", CONFIG)
    write_metaimage(tmp_path / "one.mha", ct_array()[..., None], (1, 1, 1, 1))
    assert load_ct(tmp_path / "one.mha", CONFIG).shape == (24, 20, 16)


def test_vector_image_rejected(tmp_path: Path) -> None:
    image = sitk.GetImageFromArray(np.zeros((16, 20, 24, 3), np.int16), isVector=True)
    sitk.WriteImage(image, str(tmp_path / "rgb.mha"))
    raises_one_line("3 values per voxel", load_ct, tmp_path / "rgb.mha", CONFIG)


# ---------------------------------------------------------------- not CT
def _with_modality(tmp_path: Path, where: str, value: str) -> Path:
    array = ct_array()
    if where == "mha":
        return write_metaimage(tmp_path / "ct.mha", array, extra=[f"Modality = {value}"])
    if where == "nrrd":
        return write_nrrd(tmp_path / "ct.nrrd", array, extra=[f"modality:={value}"])
    if where == "descrip":
        return write_nifti(tmp_path / "ct.nii.gz", array, descrip=value)
    return write_nifti(tmp_path / "ct.nii.gz", array, json_extension={"Modality": value})


@pytest.mark.parametrize(
    ("where", "value"), [("mha", "MET_MOD_MR"), ("nrrd", "MR"), ("descrip", "modality=MR"), ("json", "PT")]
)
def test_header_says_not_ct(tmp_path: Path, where: str, value: str) -> None:
    path = _with_modality(tmp_path, where, value)
    message = raises_one_line(r"not a CT \(modality (MR|PT) in the header\)", load_ct, path, CONFIG)
    assert message.startswith(path.name)


def test_unknown_modality_accepted(tmp_path: Path) -> None:
    load_ct(_with_modality(tmp_path, "mha", "MET_MOD_UNKNOWN"), CONFIG)


# ---------------------------------------------------------------- spacing
def test_nifti_without_geometry(tmp_path: Path) -> None:
    path = write_nifti(tmp_path / "ct.nii.gz", ct_array(), qform_code=0, sform_code=0)
    raises_one_line(r"spacing/orientation missing \(NIfTI qform_code and sform_code", load_ct, path, CONFIG)


def test_nrrd_without_space_directions(tmp_path: Path) -> None:
    path = write_nrrd(tmp_path / "ct.nrrd", ct_array(), geometry=False)
    raises_one_line("NRRD header has no 'space directions'", load_ct, path, CONFIG)


def test_metaimage_without_element_spacing(tmp_path: Path) -> None:
    path = write_metaimage(tmp_path / "ct.mha", ct_array(), drop=["ElementSpacing"])
    raises_one_line("MetaImage header has no ElementSpacing", load_ct, path, CONFIG)


@pytest.mark.parametrize("spacing", [(0.01, 1.0, 1.0), (1.0, 1.0, 25.0)])
def test_implausible_spacing(tmp_path: Path, spacing: tuple[float, float, float]) -> None:
    path = write_nifti(tmp_path / "ct.nii.gz", ct_array(), np.diag([*spacing, 1.0]))
    raises_one_line(r"voxel spacing .* mm is outside 0.1-10 mm", load_ct, path, CONFIG)


# ---------------------------------------------------------------- intensities
def test_mr_like_intensities_rejected(tmp_path: Path) -> None:
    mr = ((ct_array().astype(float) + 1000) * 0.7).astype(np.int16)  # 0..1260, no negatives
    path = write_nifti(tmp_path / "mr.nii.gz", mr)
    raises_one_line(r"do not look like Hounsfield units \(no air near -1000 HU", load_ct, path, CONFIG)


def test_8bit_export_rejected(tmp_path: Path) -> None:
    eight = np.clip((ct_array().astype(float) + 1000) / 8, 0, 255).astype(np.uint8)
    eight[0, 0, 0], eight[1, 1, 1] = 0, 255
    path = write_nifti(tmp_path / "ct8.nii.gz", eight)
    message = raises_one_line(
        r"range 0\.\.255\): export the CT in HU \(apply RescaleSlope/Intercept\)", load_ct, path, CONFIG
    )
    assert "intensities do not look like Hounsfield units" in message


def test_constant_image_rejected(tmp_path: Path) -> None:
    path = write_nifti(tmp_path / "zeros.nii.gz", np.zeros((24, 20, 16), np.int16))
    raises_one_line(r"image is constant \(all voxels = 0\)", load_ct, path, CONFIG)


def test_nan_rejected(tmp_path: Path) -> None:
    array = ct_array().astype(np.float32)
    array[2, 2, 2] = np.nan
    raises_one_line("NaN or infinite", load_ct, write_nifti(tmp_path / "nan.nii.gz", array), CONFIG)


def test_validate_ct_on_a_volume(ct_volume: Volume) -> None:
    validate_ct(ct_volume, CONFIG)
    flat = replace(ct_volume, array=ct_volume.array[:, :, :1])
    raises_one_line("^ct: image is 2D", validate_ct, flat, CONFIG)
    raises_one_line("not a CT", validate_ct, replace(ct_volume, meta={"Modality": "MR"}), CONFIG)


# ---------------------------------------------------------------- label maps
def test_label_map_float_integral_and_reference(tmp_path: Path, ct_volume: Volume) -> None:
    labels = (ct_volume.array > 500).astype(np.float32) * 20
    path = write_nifti(tmp_path / "seg.nii.gz", labels, ct_volume.affine)
    loaded = load_label_map(path, ct_volume)
    assert loaded.array.dtype == np.uint8 and loaded.array.max() == 20
    np.testing.assert_array_equal(loaded.array, labels)


def test_label_map_other_axis_order_is_reoriented(tmp_path: Path, ct_volume: Volume) -> None:
    labels = reorient(ct_volume.with_array((ct_volume.array > 500).astype(np.uint8)), "LAS")
    path = write_nifti(tmp_path / "seg.nii.gz", labels.array, labels.affine)
    loaded = load_label_map(path, ct_volume)
    assert loaded.orientation == "RAS" and "reoriented" in loaded.notes[0]
    np.testing.assert_array_equal(loaded.array, ct_volume.array > 500)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ("shape", "shape 24x20x15 vs 24x20x16"),
        ("origin", "origin differs by 2 mm"),
        ("spacing", "spacing 1.6 x 1.5 x 1.5 vs 1.5 x 1.5 x 1.5 mm"),
        ("reoriented+shifted", "origin differs by 0.01 mm"),
    ],
)
def test_label_map_geometry_mismatch(tmp_path: Path, ct_volume: Volume, change: str, match: str) -> None:
    labels, affine = (ct_volume.array > 500).astype(np.uint8), ct_volume.affine.copy()
    if change == "shape":
        labels = labels[:, :, :-1]
    elif change == "reoriented+shifted":
        turned = reorient(ct_volume.with_array(labels), "PIR")
        labels, affine = turned.array, turned.affine.copy()
        affine[0, 3] += 0.01
    elif change == "origin":
        affine[2, 3] += 2.0
    else:
        affine[0, 0] = 1.6
    path = write_nifti(tmp_path / "seg.nii.gz", labels, affine)
    message = raises_one_line("label map geometry does not match the CT", load_label_map, path, ct_volume)
    assert match in message and message.endswith("resample it onto the CT grid")


def test_label_map_bad_values(tmp_path: Path) -> None:
    path = write_nifti(tmp_path / "prob.nii.gz", np.full((8, 8, 8), 0.5, np.float32))
    raises_one_line("non-integer values", load_label_map, path)
    path = write_nifti(tmp_path / "neg.nii.gz", np.full((8, 8, 8), -1, np.int16))
    raises_one_line("negative labels", load_label_map, path)
    raises_one_line("is a folder", load_label_map, tmp_path)
    raises_one_line(
        r"image is 4D .*give a single 3D label map",
        load_label_map,
        write_nifti(tmp_path / "4d.nii.gz", np.zeros((8, 8, 8, 2), np.uint8)),
    )


def test_label_map_may_be_empty(tmp_path: Path) -> None:
    path = write_nifti(tmp_path / "empty.nii.gz", np.zeros((8, 8, 8), np.uint8))
    assert load_label_map(path).array.max() == 0


# ---------------------------------------------------------------- real data
real = pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"real data folder {REAL_DATA} is absent")


@pytest.mark.real
@real
def test_real_abdomen_nifti() -> None:
    path = REAL_DATA / "ts_abdomen_3mm" / "ct.nii.gz"
    volume = load_ct(path, CONFIG)
    assert volume.shape == (122, 101, 112) and volume.orientation == "RAS"
    np.testing.assert_allclose(volume.spacing, (3.0, 3.0, 3.0), atol=1e-5)
    np.testing.assert_allclose(volume.affine, nib.load(str(path)).affine, atol=1e-5)
    np.testing.assert_array_equal(volume.array, np.asarray(nib.load(str(path)).dataobj))


@pytest.mark.real
@real
def test_real_crop_pir_and_canonical_world_points() -> None:
    crop = load_ct(REAL_DATA / "tptbox_l3_crop" / "ct.nii.gz", CONFIG)
    assert crop.orientation == "PIR"
    np.testing.assert_allclose(crop.spacing, (1.5, 1.5, 1.5), atol=1e-5)
    abdomen = load_ct(REAL_DATA / "ts_abdomen_3mm" / "ct.nii.gz", CONFIG)
    for volume in (crop, abdomen):
        canon = to_canonical(volume)
        assert canon.orientation == "RAS"
        ijk = np.array([[0, 0, 0], [5, 7, 11], [s - 1 for s in volume.shape]])
        for point in ijk:
            world = volume.world(point)
            cijk = np.rint(canon.index(world)).astype(int)
            np.testing.assert_allclose(canon.world(cijk), world, atol=1e-4)
            assert canon.array[tuple(cijk)] == volume.array[tuple(point)]

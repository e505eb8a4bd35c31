"""Phantom truth equals its parameters, and the label maps agree with the truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.anatomy import VERSE_IDS, Anatomy, Lesion
from pipeline.phantom import (
    CollapseSpec,
    DeformitySpec,
    LesionSpec,
    PhantomSpec,
    TranslationSpec,
    generate,
    random_spec,
    write_case,
)
from pipeline.phantom.samples import SAMPLE_SPECS
from pipeline.schema import MEASUREMENT_FIELDS, case_to_dict
from pipeline.volume import to_canonical

SAMPLES = Path(__file__).resolve().parents[1] / "sample_cases"

SMALL = dict(inplane_fov_mm=(200.0, 200.0), noise_hu=10.0)


def _level(case, name):
    return next(lv for lv in case.truth.levels if lv.level == name)


def _extent_along(volume, mask, origin, direction, step=0.1, reach=40.0):
    """Length (mm) of the run of `mask` voxels met along a line through `origin`."""
    t = np.arange(-reach, reach, step)
    pts = origin + t[:, None] * direction
    idx = np.rint(volume.index(pts)).astype(int)
    ok = np.all((idx >= 0) & (idx < np.array(volume.shape)), axis=1)
    hits = np.zeros(len(t), bool)
    hits[ok] = mask[tuple(idx[ok].T)]
    return hits.sum() * step


def test_wedge_40_percent_gives_heights_in_that_ratio() -> None:
    spec = PhantomSpec(
        seed=3, top="T12", bottom="L2", spacing=(1.0, 1.0, 1.0), collapses=(CollapseSpec("L1", "wedge", 0.4),), **SMALL
    )
    case = generate(spec)
    m = _level(case, "L1").measurements
    assert m.height_anterior_mm / m.height_posterior_mm == pytest.approx(0.6, abs=1e-9)
    # the label map shows the same heights (within a voxel) along the body's own axis
    v = case.layout.by_level("L1")
    body = (case.anatomy.array == Anatomy.VERTEBRAL_BODY) & (case.instances.array == VERSE_IDS["L1"])
    for share, truth in ((0.15, m.height_anterior_mm), (0.85, m.height_posterior_mm)):
        centre = v.frame.to_world(np.array([0.0, -v.depth / 2 + share * v.depth, 0.0]))
        assert _extent_along(case.anatomy, body, centre, v.frame.w) == pytest.approx(truth, abs=1.5)


def test_lesion_volume_in_label_map_matches_parameter() -> None:
    spec = PhantomSpec(
        seed=4, top="T12", bottom="L2", spacing=(1.0, 1.0, 1.0), lesions=(LesionSpec("L1", "body", 3.0, 0.0),), **SMALL
    )
    case = generate(spec)
    assert case.lesion_shapes[0].volume_ml == pytest.approx(3.0)
    labelled = np.count_nonzero(case.lesions.array == Lesion.LYTIC) * case.ct.voxel_volume_ml
    assert labelled == pytest.approx(3.0, abs=0.1)  # voxel rounding at 1 mm
    inside_body = case.lesions.array.astype(bool) & (case.anatomy.array == Anatomy.VERTEBRAL_BODY)
    assert np.count_nonzero(inside_body) == np.count_nonzero(case.lesions.array)


def test_slab_involvement_and_mixed_shares() -> None:
    spec = PhantomSpec(
        seed=5,
        top="T12",
        bottom="L2",
        spacing=(1.0, 1.0, 1.0),
        lesions=(LesionSpec("L1", "body", 0.0, 0.3, shape="slab", involvement=0.6),),
        **SMALL,
    )
    case = generate(spec)
    m = _level(case, "L1").measurements
    assert m.body_involvement == pytest.approx(0.6, abs=1e-3)
    assert m.blastic_fraction == pytest.approx(0.3) and m.lesion_type == "mixed"
    body = (case.anatomy.array == Anatomy.VERTEBRAL_BODY) & (case.instances.array == VERSE_IDS["L1"])
    share = np.count_nonzero(body & (case.lesions.array > 0)) / np.count_nonzero(body)
    assert share == pytest.approx(0.6, abs=0.03)
    blastic = np.count_nonzero(case.lesions.array == Lesion.BLASTIC) / np.count_nonzero(case.lesions.array)
    assert blastic == pytest.approx(0.3, abs=0.04)
    assert _level(case, "L1").sins.collapse == 1  # no collapse, > 50 % involved


def test_posterior_lesion_is_on_the_patients_left_in_any_orientation() -> None:
    for orientation in ("RAS", "LPS"):
        spec = PhantomSpec(
            seed=6,
            top="L2",
            bottom="L4",
            spacing=(1.5, 1.5, 1.5),
            orientation=orientation,
            lesions=(LesionSpec("L3", "posterior_left", 0.5, 0.0),),
            **SMALL,
        )
        case = generate(spec)
        lesion_x = case.lesions.world(np.argwhere(case.lesions.array > 0))[:, 0].mean()
        body_x = case.anatomy.world(np.argwhere(case.instances.array == VERSE_IDS["L3"]))[:, 0].mean()
        assert lesion_x < body_x - 5  # RAS world: the patient's left is -x
        m = _level(case, "L3").measurements
        assert m.posterolateral_left > 0.2 and m.posterolateral_right == 0
        assert _level(case, "L3").sins.posterolateral == 1


def test_translation_and_deformity_truth_equal_parameters() -> None:
    spec = PhantomSpec(
        seed=7,
        top="T11",
        bottom="L3",
        spacing=(2.0, 2.0, 2.0),
        lesions=(LesionSpec("L1", "body", 2.0, 0.0),),
        translations=(TranslationSpec("L1", 5.0, -1.0),),
        **SMALL,
    )
    case = generate(spec)
    m = _level(case, "L1").measurements
    assert m.translation_ap_mm == pytest.approx(5.0, abs=1e-6)
    assert m.translation_lr_mm == pytest.approx(-1.0, abs=1e-6)
    assert _level(case, "L2").measurements.translation_ap_mm == pytest.approx(0.0, abs=1e-6)
    assert _level(case, "T12").measurements.translation_ap_mm == pytest.approx(0.0, abs=1e-6)
    assert _level(case, "L1").sins.alignment == 4
    spec = PhantomSpec(
        seed=8,
        top="T11",
        bottom="L3",
        spacing=(2.0, 2.0, 2.0),
        lesions=(LesionSpec("L1", "body", 2.0, 0.0),),
        deformities=(DeformitySpec("L1", 18.0, 0.0),),
        **SMALL,
    )
    case = generate(spec)
    assert _level(case, "L1").measurements.kyphosis_deg == pytest.approx(18.0)
    assert _level(case, "T12").measurements.kyphosis_deg == pytest.approx(9.0)
    assert _level(case, "L1").measurements.translation_ap_mm == pytest.approx(0.0, abs=1e-6)
    assert _level(case, "L1").sins.alignment == 2


def test_same_phantom_in_ras_lps_pir_gives_the_same_canonical_volume() -> None:
    cases = [
        generate(PhantomSpec(seed=9, top="L1", bottom="L3", spacing=(2.0, 2.5, 3.0), orientation=o, **SMALL))
        for o in ("RAS", "LPS", "PIR")
    ]
    assert [c.ct.orientation for c in cases] == ["RAS", "LPS", "PIR"]
    ref = to_canonical(cases[0].ct)
    for c in cases[1:]:
        can = to_canonical(c.ct)
        assert np.array_equal(can.array, ref.array)
        np.testing.assert_allclose(can.affine, ref.affine, atol=1e-9)
        assert np.array_equal(to_canonical(c.instances).array, to_canonical(cases[0].instances).array)
    assert cases[1].truth.levels == cases[0].truth.levels


def test_deterministic_for_a_seed_and_truth_has_the_schema(tmp_path: Path) -> None:
    spec = random_spec(11, fov="thoracolumbar", spacing=(2.5, 2.5, 2.5))
    a, b = generate(spec), generate(spec)
    assert np.array_equal(a.ct.array, b.ct.array) and a.truth == b.truth
    out = write_case(a, tmp_path / "case")
    truth = json.loads((out / "truth.json").read_text())
    assert set(truth) >= {"case_id", "schema_version", "software", "input", "levels", "summary"}
    for lv in truth["levels"]:
        assert set(lv) == {"level", "complete", "lesion", "measurements", "sins", "flags"}
        assert set(lv["measurements"]) == set(MEASUREMENT_FIELDS)
        assert (lv["sins"] is None) == (not lv["lesion"])
    for name in ("ct.nii.gz", "anatomy.nii.gz", "instances.nii.gz", "lesions.nii.gz"):
        assert (out / name).exists()
    assert truth["phantom"]["spec"]["seed"] == 11


def test_truncated_end_vertebrae_are_incomplete_without_heights() -> None:
    spec = PhantomSpec(seed=12, top="T12", bottom="L3", top_cut=0.5, bottom_cut=0.5, spacing=(2.0, 2.0, 2.0), **SMALL)
    levels = {lv.level: lv for lv in generate(spec).truth.levels}
    assert not levels["T12"].complete and not levels["L3"].complete
    assert levels["T12"].measurements.height_anterior_mm is None
    assert levels["L1"].complete and levels["L1"].measurements.height_anterior_mm is not None


@pytest.mark.parametrize("spec", SAMPLE_SPECS, ids=lambda s: s.case_id)
def test_sample_cases_match_their_specs(spec: PhantomSpec) -> None:
    committed = json.loads((SAMPLES / spec.case_id / "truth.json").read_text())
    fresh = case_to_dict(generate(spec).truth)
    for key in ("levels", "summary", "input"):
        assert committed[key] == fresh[key]


def test_sample_categories_cover_the_three_classes() -> None:
    cats = {json.loads((SAMPLES / s.case_id / "truth.json").read_text())["summary"]["category"] for s in SAMPLE_SPECS}
    assert cats == {"stable", "potentially unstable", "unstable"}

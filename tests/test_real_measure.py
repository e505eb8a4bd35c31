"""Measurement on real label maps (../shared/data/real; skipped when absent)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.spine.reference import measure_label_map

pytestmark = pytest.mark.real

HEIGHTS = ("anterior", "middle", "posterior")


def test_ts_abdomen_levels_and_heights(real_data):
    folder = real_data / "ts_abdomen_3mm"
    case = measure_label_map(folder / "vertebrae_totalseg.nii.gz", "totalseg")
    assert [lv.level for lv in case.levels] == ["T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1"]
    complete = {lv.level: lv.complete for lv in case.levels}
    assert not complete["T11"] and not complete["T12"]  # cut by the top of the scan
    assert all(complete[f"L{i}"] for i in range(1, 6))
    assert not any(lv.lesion for lv in case.levels)
    for lv in case.levels:
        if lv.complete and lv.level != "S1":
            heights = [getattr(lv.measurements, f"height_{name}_mm") for name in HEIGHTS]
            assert all(18.0 < h < 36.0 for h in heights), (lv.level, heights)  # adult lumbar bodies
            assert abs(lv.measurements.collapse_fraction) < 0.2, lv.level  # no fracture in this scan
    # Agreement with TotalSegmentator's own spine report is measured (and explained) by
    # bench/measure_real.py: it reads each height on the sagittal slice with the largest spread of
    # the three, we on the mid-sagittal plane (DESIGN.md §2).


def test_verse004_levels_and_normal_alignment(real_data):
    case = measure_label_map(real_data / "verse004_mask_only" / "sub-verse004_seg-vert_msk.nii.gz", "verse")
    assert [lv.level for lv in case.levels] == ["T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5"]
    for lv in case.levels:
        m = lv.measurements
        for t in (m.translation_ap_mm, m.translation_lr_mm):
            assert t is None or abs(t) < 3.5, (lv.level, t)
        for a in (m.kyphosis_deg, m.scoliosis_deg):
            assert a is None or abs(a) < 10.0, (lv.level, a)
    assert sum(lv.measurements.translation_ap_mm is not None for lv in case.levels) == 8


def test_verse004_centroids_agree_with_the_centroid_file(real_data):
    """Our body centroids lie within a few mm of VerSe's vertebra centroids (those are of the whole
    vertebra, so they sit a little behind the body's)."""
    from pipeline.config import load_sins_config
    from pipeline.io import load_label_map
    from pipeline.spine.labels import labels_from_ids
    from pipeline.spine.vertebrae import extract_vertebrae
    from pipeline.volume import to_canonical

    folder = real_data / "verse004_mask_only"
    vol = load_label_map(folder / "sub-verse004_seg-vert_msk.nii.gz")
    verts = extract_vertebrae(labels_from_ids(to_canonical(vol), "verse", None, load_sins_config()), load_sins_config())
    ctd = json.loads((folder / "sub-verse004_seg-subreg_ctd.json").read_text())
    assert ctd[0]["direction"] == ["P", "I", "R"]
    ijk_of = {c["label"]: np.array([c["X"], c["Y"], c["Z"]]) for c in ctd[1:]}
    from pipeline.anatomy import VERSE_IDS

    inv = np.linalg.inv(vol.affine)
    for v in verts:
        whole = v.world(v.body).mean(axis=0)
        ijk = inv[:3, :3] @ whole + inv[:3, 3]
        assert np.linalg.norm((ijk - ijk_of[VERSE_IDS[v.given_name]]) * vol.spacing) < 3.0, v.given_name

"""Every row of every SINS table, each threshold edge, and the missing-pain range."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.anatomy import LEVELS, location_region
from pipeline.config import load_sins_config
from pipeline.errors import InputError
from pipeline.schema import Measurements
from pipeline.scoring import (
    alignment_points,
    bone_lesion_points,
    category_of,
    collapse_points,
    lesion_type,
    location_points,
    near_threshold_flags,
    pain_points,
    posterolateral_points,
    score_level,
)

CFG = load_sins_config()


@pytest.mark.parametrize(
    ("level", "region", "points"),
    [
        ("C1", "junctional", 3),
        ("C2", "junctional", 3),
        ("C3", "mobile", 2),
        ("C6", "mobile", 2),
        ("C7", "junctional", 3),
        ("T1", "junctional", 3),
        ("T2", "junctional", 3),
        ("T3", "semi-rigid", 1),
        ("T10", "semi-rigid", 1),
        ("T11", "junctional", 3),
        ("T12", "junctional", 3),
        ("T13", "junctional", 3),
        ("L1", "junctional", 3),
        ("L2", "mobile", 2),
        ("L4", "mobile", 2),
        ("L5", "junctional", 3),
        ("L6", "junctional", 3),
        ("S1", "junctional", 3),
        ("S2", "rigid", 0),
        ("S5", "rigid", 0),
    ],
)
def test_location_table(level: str, region: str, points: int) -> None:
    assert location_region(level) == region
    assert location_points(region) == points


def test_every_standard_level_has_a_region() -> None:
    assert all(location_points(location_region(lv)) in (0, 1, 2, 3) for lv in LEVELS)


def test_unknown_level_and_location_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown vertebral level 'X9'"):
        location_region("X9")
    with pytest.raises(InputError, match="unknown location 'wobbly'"):
        location_points("wobbly")


@pytest.mark.parametrize(("pain", "points"), [("mechanical", 3), ("occasional", 1), ("none", 0), (None, None)])
def test_pain_table(pain: str | None, points: int | None) -> None:
    assert pain_points(pain) == points


def test_unknown_pain_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown pain value 'severe'"):
        pain_points("severe")


@pytest.mark.parametrize(("kind", "points"), [("lytic", 2), ("mixed", 1), ("blastic", 0), (None, None)])
def test_bone_lesion_table(kind: str | None, points: int | None) -> None:
    assert bone_lesion_points(kind) == points


def test_lesion_type_edges() -> None:
    minor = CFG.lesion.mixed_minor_fraction
    assert lesion_type(1.0, 0.0, CFG) == "lytic"
    assert lesion_type(0.0, 1.0, CFG) == "blastic"
    assert lesion_type(1 - minor, minor, CFG) == "mixed"  # exactly on the threshold: mixed
    assert lesion_type(minor, 1 - minor, CFG) == "mixed"
    assert lesion_type(1 - minor + 0.01, minor - 0.01, CFG) == "lytic"
    assert lesion_type(minor - 0.01, 1 - minor + 0.01, CFG) == "blastic"
    assert lesion_type(None, None, CFG) is None


def test_alignment_table_and_edges() -> None:
    t, d = CFG.alignment.translation_mm, CFG.alignment.deformity_deg
    assert alignment_points(0, 0, 0, 0, CFG) == 0
    assert alignment_points(t, 0, 0, 0, CFG) == 4  # from 3.5 mm
    assert alignment_points(t - 0.01, 0, 0, 0, CFG) == 0
    assert alignment_points(0, -t, 0, 0, CFG) == 4  # lateral, either direction
    assert alignment_points(0, 0, d, 0, CFG) == 2
    assert alignment_points(0, 0, d - 0.01, 0, CFG) == 0
    assert alignment_points(0, 0, 0, -d, CFG) == 2
    assert alignment_points(t, 0, d, 0, CFG) == 4  # translation outranks deformity
    assert alignment_points(None, None, 0, 0, CFG) is None  # not assessable
    assert alignment_points(t + 1, None, None, None, CFG) == 4  # decided even with gaps


def test_collapse_table_and_edges() -> None:
    c = CFG.collapse
    assert collapse_points(c.severe_fraction + 0.001, 0.0, CFG) == 3
    assert collapse_points(c.severe_fraction, 0.0, CFG) == 2  # ">50 %" is strict
    assert collapse_points(c.onset_fraction, 0.0, CFG) == 2  # collapse counts from 0.20
    assert collapse_points(c.onset_fraction - 0.001, c.involvement_fraction + 0.001, CFG) == 1
    assert collapse_points(0.0, c.involvement_fraction, CFG) == 0  # exactly half involved: not > 50 %
    assert collapse_points(0.0, 0.1, CFG) == 0
    assert collapse_points(None, 0.9, CFG) is None
    assert collapse_points(0.1, None, CFG) is None


def test_posterolateral_table_and_edges() -> None:
    m = CFG.posterolateral.min_side_volume_ml
    assert posterolateral_points(m, m, CFG) == 3
    assert posterolateral_points(m, 0.0, CFG) == 1
    assert posterolateral_points(0.0, m, CFG) == 1
    assert posterolateral_points(m - 0.001, m - 0.001, CFG) == 0
    assert posterolateral_points(None, 1.0, CFG) is None


@pytest.mark.parametrize(
    ("total", "category"),
    [
        (0, "stable"),
        (6, "stable"),
        (7, "potentially unstable"),
        (12, "potentially unstable"),
        (13, "unstable"),
        (18, "unstable"),
    ],
)
def test_category_table(total: int, category: str) -> None:
    assert category_of(total, CFG) == category


BASE = Measurements(
    collapse_fraction=0.0,
    body_involvement=0.1,
    lytic_fraction=1.0,
    blastic_fraction=0.0,
    lesion_type="lytic",
    translation_ap_mm=0.0,
    translation_lr_mm=0.0,
    kyphosis_deg=0.0,
    scoliosis_deg=0.0,
    posterolateral_left=0.0,
    posterolateral_right=0.0,
)


def test_score_with_pain_gives_total_and_category() -> None:
    s = score_level("L1", BASE, CFG, pain="mechanical")
    assert (s.location, s.pain, s.bone_lesion, s.alignment, s.collapse, s.posterolateral) == (3, 3, 2, 0, 0, 0)
    assert s.total == s.total_min == s.total_max == 8
    assert s.category == "potentially unstable"


def test_missing_pain_gives_range_and_category_only_when_decided() -> None:
    s = score_level("L1", BASE, CFG)  # imaging subtotal 5: 5..8 spans stable and potentially unstable
    assert s.pain is None and s.total is None
    assert (s.total_min, s.total_max) == (5, 8)
    assert s.category is None
    low = score_level("T5", dataclasses.replace(BASE, lesion_type="blastic"), CFG)  # 1 + 0: 1..4
    assert (low.total_min, low.total_max, low.category) == (1, 4, "stable")


def test_location_override() -> None:
    assert score_level("T5", BASE, CFG, location="junctional").location == 3


def test_near_threshold_flags() -> None:
    m = dataclasses.replace(BASE, collapse_fraction=CFG.collapse.onset_fraction + 0.01, translation_ap_mm=3.0)
    flags = near_threshold_flags(m, CFG)
    assert "near_threshold:collapse" in flags and "near_threshold:alignment" in flags
    assert near_threshold_flags(BASE, CFG) == ()

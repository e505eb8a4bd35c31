"""SINS: one pure function per item, the published table in each docstring (Fisher et al.,
Spine 2010;35:E1221). Thresholds come from `configs/sins.yaml` (`SinsConfig`), never from code.

An item whose measurement is not assessable scores `None`; the total then becomes a range
(`total_min`..`total_max`) over that item's possible points, like missing pain.
"""

from __future__ import annotations

from .anatomy import (
    JUNCTIONAL,
    LOCATION_REGIONS,
    MOBILE,
    PAIN_VALUES,
    RIGID,
    SEMI_RIGID,
    location_region,
)
from .config import SinsConfig
from .errors import InputError
from .schema import Measurements, SinsItems

#: Highest points of each item (for the range of a missing item).
ITEM_MAX: dict[str, int] = {
    "location": 3,
    "pain": 3,
    "bone_lesion": 2,
    "alignment": 4,
    "collapse": 3,
    "posterolateral": 3,
}


def location_points(region: str) -> int:
    """Location.

    | region | levels | points |
    |---|---|---|
    | junctional | occiput-C2, C7-T2, T11-L1, L5-S1 | 3 |
    | mobile | C3-C6, L2-L4 | 2 |
    | semi-rigid | T3-T10 | 1 |
    | rigid | S2-S5 | 0 |
    """
    table = {JUNCTIONAL: 3, MOBILE: 2, SEMI_RIGID: 1, RIGID: 0}
    if region not in table:
        raise InputError(f"unknown location {region!r}; expected one of {', '.join(LOCATION_REGIONS)}")
    return table[region]


def pain_points(pain: str | None) -> int | None:
    """Pain (from the clinician; None when not given).

    | pain | points |
    |---|---|
    | mechanical | 3 |
    | occasional, non-mechanical | 1 |
    | pain-free (none) | 0 |
    """
    if pain is None:
        return None
    table = {"mechanical": 3, "occasional": 1, "none": 0}
    if pain not in table:
        raise InputError(f"unknown pain value {pain!r}; expected one of {', '.join(PAIN_VALUES)}")
    return table[pain]


def lesion_type(lytic_fraction: float | None, blastic_fraction: float | None, cfg: SinsConfig) -> str | None:
    """Lesion type from the lytic and blastic shares of the lesion voxels.

    | condition | type |
    |---|---|
    | smaller share >= `lesion.mixed_minor_fraction` (0.20) | mixed |
    | otherwise, lytic share larger | lytic |
    | otherwise | blastic |
    """
    if lytic_fraction is None or blastic_fraction is None:
        return None
    total = lytic_fraction + blastic_fraction
    if total <= 0:
        return None
    minor = min(lytic_fraction, blastic_fraction) / total
    if minor >= cfg.lesion.mixed_minor_fraction:
        return "mixed"
    return "lytic" if lytic_fraction >= blastic_fraction else "blastic"


def bone_lesion_points(kind: str | None) -> int | None:
    """Bone lesion.

    | lesion | points |
    |---|---|
    | lytic | 2 |
    | mixed (lytic/blastic) | 1 |
    | blastic | 0 |
    """
    if kind is None:
        return None
    table = {"lytic": 2, "mixed": 1, "blastic": 0}
    if kind not in table:
        raise ValueError(f"unknown lesion type {kind!r}")
    return table[kind]


def alignment_points(
    translation_ap_mm: float | None,
    translation_lr_mm: float | None,
    kyphosis_deg: float | None,
    scoliosis_deg: float | None,
    cfg: SinsConfig,
) -> int | None:
    """Radiographic spinal alignment (translation outranks deformity).

    | finding | rule | points |
    |---|---|---|
    | subluxation/translation | max(abs AP, abs LR) >= `alignment.translation_mm` (3.5) | 4 |
    | de novo deformity | max(abs kyphosis, abs scoliosis) departure >= `alignment.deformity_deg` (10) | 2 |
    | normal alignment | otherwise | 0 |
    """
    translations = [abs(t) for t in (translation_ap_mm, translation_lr_mm) if t is not None]
    angles = [abs(a) for a in (kyphosis_deg, scoliosis_deg) if a is not None]
    if translations and max(translations) >= cfg.alignment.translation_mm:
        return 4
    if angles and max(angles) >= cfg.alignment.deformity_deg:
        return 2
    if len(translations) < 2 or len(angles) < 2:
        return None  # a missing measurement could still decide
    return 0


def collapse_points(collapse_fraction: float | None, body_involvement: float | None, cfg: SinsConfig) -> int | None:
    """Vertebral body collapse.

    | finding | rule | points |
    |---|---|---|
    | > 50 % collapse | collapse_fraction > `collapse.severe_fraction` (0.50) | 3 |
    | < 50 % collapse | collapse_fraction >= `collapse.onset_fraction` (0.20) | 2 |
    | no collapse, > 50 % of the body involved | body_involvement > `collapse.involvement_fraction` | 1 |
    | none of these | otherwise | 0 |
    """
    if collapse_fraction is None:
        return None
    if collapse_fraction > cfg.collapse.severe_fraction:
        return 3
    if collapse_fraction >= cfg.collapse.onset_fraction:
        return 2
    if body_involvement is None:
        return None
    if body_involvement > cfg.collapse.involvement_fraction:
        return 1
    return 0


def posterolateral_points(left_ml: float | None, right_ml: float | None, cfg: SinsConfig) -> int | None:
    """Posterolateral involvement of the spinal elements (facet, pedicle, costovertebral joint).

    | finding | rule | points |
    |---|---|---|
    | bilateral | both sides >= `posterolateral.min_side_volume_ml` | 3 |
    | unilateral | one side | 1 |
    | none | neither | 0 |
    """
    if left_ml is None or right_ml is None:
        return None
    sides = sum(v >= cfg.posterolateral.min_side_volume_ml for v in (left_ml, right_ml))
    return {0: 0, 1: 1, 2: 3}[sides]


def category_of(total: int, cfg: SinsConfig) -> str:
    """Category of a total.

    | total | category |
    |---|---|
    | 0-6 | stable |
    | 7-12 | potentially unstable |
    | 13-18 | unstable |
    """
    if total >= cfg.category.unstable_from:
        return "unstable"
    if total >= cfg.category.potentially_unstable_from:
        return "potentially unstable"
    return "stable"


def near_threshold_flags(m: Measurements, cfg: SinsConfig) -> tuple[str, ...]:
    """`near_threshold:<item>` for measurements within the configured margin of a threshold."""
    nt = cfg.near_threshold
    flags: list[str] = []

    def near(value: float | None, threshold: float, margin: float) -> bool:
        return value is not None and abs(abs(value) - threshold) <= margin

    if m.collapse_fraction is not None and (
        near(m.collapse_fraction, cfg.collapse.onset_fraction, nt.fraction)
        or near(m.collapse_fraction, cfg.collapse.severe_fraction, nt.fraction)
        or (
            m.collapse_fraction < cfg.collapse.onset_fraction
            and near(m.body_involvement, cfg.collapse.involvement_fraction, nt.fraction)
        )
    ):
        flags.append("near_threshold:collapse")
    if any(near(t, cfg.alignment.translation_mm, nt.mm) for t in (m.translation_ap_mm, m.translation_lr_mm)) or any(
        near(a, cfg.alignment.deformity_deg, nt.deg) for a in (m.kyphosis_deg, m.scoliosis_deg)
    ):
        flags.append("near_threshold:alignment")
    if m.lytic_fraction is not None and m.blastic_fraction is not None:
        total = m.lytic_fraction + m.blastic_fraction
        if total > 0 and near(
            min(m.lytic_fraction, m.blastic_fraction) / total, cfg.lesion.mixed_minor_fraction, nt.fraction
        ):
            flags.append("near_threshold:bone_lesion")
    if any(
        near(v, cfg.posterolateral.min_side_volume_ml, nt.ml) for v in (m.posterolateral_left, m.posterolateral_right)
    ):
        flags.append("near_threshold:posterolateral")
    return tuple(flags)


def score_level(
    level: str,
    m: Measurements,
    cfg: SinsConfig,
    pain: str | None = None,
    location: str | None = None,
) -> SinsItems:
    """All six items of one lesion level; `location` overrides the region derived from the level."""
    region = location if location is not None else location_region(level)
    items = {
        "location": location_points(region),
        "pain": pain_points(pain),
        "bone_lesion": bone_lesion_points(m.lesion_type),
        "alignment": alignment_points(m.translation_ap_mm, m.translation_lr_mm, m.kyphosis_deg, m.scoliosis_deg, cfg),
        "collapse": collapse_points(m.collapse_fraction, m.body_involvement, cfg),
        "posterolateral": posterolateral_points(m.posterolateral_left, m.posterolateral_right, cfg),
    }
    known = sum(v for v in items.values() if v is not None)
    missing = sum(ITEM_MAX[k] for k, v in items.items() if v is None)
    total_min, total_max = known, known + missing
    total = known if missing == 0 else None
    low, high = category_of(total_min, cfg), category_of(total_max, cfg)
    category = low if low == high else None
    return SinsItems(
        location=items["location"],  # type: ignore[arg-type]
        pain=items["pain"],
        bone_lesion=items["bone_lesion"],
        alignment=items["alignment"],
        collapse=items["collapse"],
        posterolateral=items["posterolateral"],
        total=total,
        total_min=total_min,
        total_max=total_max,
        category=category,
    )

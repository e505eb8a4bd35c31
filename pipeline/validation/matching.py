"""Pairing the tool's levels with one rater's levels by (case_id, level), and cases by their most
unstable level. Nothing is dropped silently: every row without a partner is `Unmatched` with a
reason, every paired row with items not assessed is `Unscored`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median_low

from ..anatomy import level_index
from .records import CONSENSUS, IMAGING_ITEMS, ITEMS, AutoLevel, ManualLevel, Points, points_of


@dataclass(frozen=True)
class Pair:
    """One level scored by both. `pain_from_manual`: the tool had no pain, so its total is its own
    items plus the rater's pain (the tool never measures pain; DESIGN.md §2)."""

    case_id: str
    level: str
    auto: Points
    manual: Points
    pain_from_manual: bool = False


@dataclass(frozen=True)
class CasePair:
    """A case compared on its most unstable level (highest total) on each side."""

    case_id: str
    auto_level: str
    manual_level: str
    auto_total: int
    manual_total: int


@dataclass(frozen=True)
class Unmatched:
    case_id: str
    level: str | None
    side: str  # "auto" or "manual": the side that has the row
    reason: str
    where: str


@dataclass(frozen=True)
class Unscored:
    case_id: str
    level: str
    side: str
    missing: tuple[str, ...]
    where: str


@dataclass(frozen=True)
class Matching:
    rater: str
    pairs: tuple[Pair, ...]
    case_pairs: tuple[CasePair, ...]
    unmatched: tuple[Unmatched, ...]
    unscored: tuple[Unscored, ...]


def raters_of(manual: Sequence[ManualLevel]) -> tuple[str, ...]:
    """Rater names in order of first appearance."""
    return tuple(dict.fromkeys(r.rater for r in manual))


def _resolved(auto: Points, manual_pain: int | None) -> tuple[Points, bool]:
    """The tool's points, with the rater's pain filled in when the tool had none."""
    if auto.total is not None or auto.pain is not None or manual_pain is None:
        return auto, False
    if any(auto.item(name) is None for name in ("location", *IMAGING_ITEMS)):
        return auto, False
    total = sum(auto.item(name) or 0 for name in ITEMS if name != "pain") + manual_pain
    return Points(**{name: auto.item(name) for name in ITEMS}, total=total), True


def _case_pairs(
    pairs: Sequence[Pair], auto_cases: set[str], manual_rows: Sequence[ManualLevel]
) -> tuple[list[CasePair], list[Unmatched]]:
    by_case: dict[str, list[Pair]] = {}
    for p in pairs:
        by_case.setdefault(p.case_id, []).append(p)
    manual_by_case: dict[str, list[ManualLevel]] = {}
    for r in manual_rows:
        manual_by_case.setdefault(r.case_id, []).append(r)
    out: list[CasePair] = []
    unmatched: list[Unmatched] = []
    for case_id, rows in manual_by_case.items():
        if case_id not in auto_cases:
            continue  # listed at level scale already
        ps = [p for p in by_case.get(case_id, []) if p.auto.total is not None]
        totals = [r for r in rows if r.points.total is not None]
        if not ps or not totals:
            reason = "no level with a tool total" if not ps else "no level with a manual total"
            unmatched.append(Unmatched(case_id, None, "manual", f"case-level: {reason}", rows[0].where))
            continue

        def cranial_first(level: str) -> int:
            return -level_index(level)

        worst_auto = max(ps, key=lambda p: (p.auto.total, cranial_first(p.level)))
        worst_manual = max(totals, key=lambda r: (r.points.total, cranial_first(r.level)))
        assert worst_auto.auto.total is not None and worst_manual.points.total is not None
        out.append(
            CasePair(case_id, worst_auto.level, worst_manual.level, worst_auto.auto.total, worst_manual.points.total)
        )
    return out, unmatched


def match(auto: Sequence[AutoLevel], manual: Sequence[ManualLevel], rater: str) -> Matching:
    """Pair the tool's lesion levels with `rater`'s rows by (case_id, level)."""
    rows = [r for r in manual if r.rater == rater]
    auto_by_key = {(a.case_id, a.level): a for a in auto}
    auto_cases = {a.case_id for a in auto}
    manual_keys = {(r.case_id, r.level) for r in rows}
    manual_cases = {r.case_id for r in rows}
    pairs: list[Pair] = []
    unmatched: list[Unmatched] = []
    unscored: list[Unscored] = []
    for r in rows:
        a = auto_by_key.get((r.case_id, r.level))
        if r.points.missing():
            unscored.append(Unscored(r.case_id, r.level, "manual", r.points.missing(), r.where))
        if a is None or a.sins is None:
            if r.case_id not in auto_cases:
                reason = "case not in the tool's levels.csv"
            elif a is None:
                reason = "level not found by the tool (outside the field of view or named differently)"
            else:
                reason = "the tool found no lesion at this level"
            unmatched.append(Unmatched(r.case_id, r.level, "manual", reason, r.where))
            continue
        points, filled = _resolved(points_of(a.sins), r.points.pain)
        pairs.append(Pair(r.case_id, r.level, points, r.points, filled))
    for a in auto:
        if a.sins is None:
            continue
        if a.sins.total is None or points_of(a.sins).missing():
            missing = points_of(a.sins).missing()
            if missing:
                unscored.append(Unscored(a.case_id, a.level, "auto", missing, a.where))
        if (a.case_id, a.level) in manual_keys:
            continue
        reason = "lesion level not scored by the rater" if a.case_id in manual_cases else "case not in the manual file"
        unmatched.append(Unmatched(a.case_id, a.level, "auto", reason, a.where))
    case_pairs, case_unmatched = _case_pairs(pairs, auto_cases, rows)
    return Matching(rater, tuple(pairs), tuple(case_pairs), tuple(unmatched + case_unmatched), tuple(unscored))


def consensus(manual: Sequence[ManualLevel]) -> tuple[ManualLevel, ...]:
    """The raters' consensus per (case_id, level): the lower median of each item over the raters
    who assessed it (so it stays a valid score), total = sum of the consensus items."""
    groups: dict[tuple[str, str], list[ManualLevel]] = {}
    for r in manual:
        groups.setdefault((r.case_id, r.level), []).append(r)
    out = []
    for (case_id, level), rows in groups.items():
        items: dict[str, int | None] = {}
        for name in ITEMS:
            values = [v for r in rows if (v := r.points.item(name)) is not None]
            items[name] = median_low(values) if values else None
        total = None if any(v is None for v in items.values()) else sum(v or 0 for v in items.values())
        where = f"consensus of {len(rows)} rater(s) ({'; '.join(r.where for r in rows)})"
        out.append(ManualLevel(case_id, level, CONSENSUS, Points(**items, total=total), where))
    return tuple(out)

"""The tool against one reference (a rater or the consensus): per level and per case."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import SinsConfig
from .agreement import (
    BinaryAgreement,
    CategoryAgreement,
    ItemAgreement,
    TotalAgreement,
    binary_agreement,
    category_agreement,
    item_agreement,
    total_agreement,
)
from .estimates import CaseBootstrap, Estimate, wilson
from .matching import CasePair, Matching, Pair, Unmatched, Unscored
from .records import ITEM_POINTS, ITEMS


@dataclass(frozen=True)
class LevelComparison:
    """Statistics over the matched levels."""

    n_pairs: int
    n_cases: int
    pain_from_manual: int
    items: tuple[ItemAgreement, ...]
    total: TotalAgreement
    categories: CategoryAgreement
    referral: BinaryAgreement
    unstable: BinaryAgreement


@dataclass(frozen=True)
class CaseComparison:
    """Statistics over cases, each on its most unstable level on either side."""

    n_cases: int
    same_level: Estimate
    total: TotalAgreement
    categories: CategoryAgreement
    referral: BinaryAgreement
    unstable: BinaryAgreement


@dataclass(frozen=True)
class Comparison:
    reference: str
    level: LevelComparison
    case: CaseComparison
    unmatched: tuple[Unmatched, ...]
    unscored: tuple[Unscored, ...]
    pairs: tuple[Pair, ...]
    case_pairs: tuple[CasePair, ...]


def _totals_blocks(
    reference: list[int | None], tool: list[int | None], cfg: SinsConfig, boot: CaseBootstrap
) -> tuple[TotalAgreement, CategoryAgreement, BinaryAgreement, BinaryAgreement]:
    cat = cfg.category
    return (
        total_agreement(reference, tool, boot),
        category_agreement(reference, tool, cfg, boot),
        binary_agreement("referral", cat.potentially_unstable_from, reference, tool, boot),
        binary_agreement("unstable", cat.unstable_from, reference, tool, boot),
    )


def compare_levels(pairs: tuple[Pair, ...], cfg: SinsConfig, n_boot: int, seed: int) -> LevelComparison:
    boot = CaseBootstrap([p.case_id for p in pairs], n_boot, seed)
    items = tuple(
        item_agreement(
            name, [p.manual.item(name) for p in pairs], [p.auto.item(name) for p in pairs], ITEM_POINTS[name], boot
        )
        for name in ITEMS
    )
    total, categories, referral, unstable = _totals_blocks(
        [p.manual.total for p in pairs], [p.auto.total for p in pairs], cfg, boot
    )
    return LevelComparison(
        n_pairs=len(pairs),
        n_cases=len({p.case_id for p in pairs}),
        pain_from_manual=sum(p.pain_from_manual for p in pairs),
        items=items,
        total=total,
        categories=categories,
        referral=referral,
        unstable=unstable,
    )


def compare_cases(case_pairs: tuple[CasePair, ...], cfg: SinsConfig, n_boot: int, seed: int) -> CaseComparison:
    boot = CaseBootstrap([c.case_id for c in case_pairs], n_boot, seed)
    total, categories, referral, unstable = _totals_blocks(
        [c.manual_total for c in case_pairs], [c.auto_total for c in case_pairs], cfg, boot
    )
    same = sum(c.auto_level == c.manual_level for c in case_pairs)
    return CaseComparison(len(case_pairs), wilson(same, len(case_pairs)), total, categories, referral, unstable)


def compare(matching: Matching, cfg: SinsConfig, n_boot: int, seed: int) -> Comparison:
    """All statistics of the tool against `matching.rater`."""
    return Comparison(
        reference=matching.rater,
        level=compare_levels(matching.pairs, cfg, n_boot, seed),
        case=compare_cases(matching.case_pairs, cfg, n_boot, seed),
        unmatched=matching.unmatched,
        unscored=matching.unscored,
        pairs=matching.pairs,
        case_pairs=matching.case_pairs,
    )

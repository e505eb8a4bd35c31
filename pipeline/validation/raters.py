"""Agreement among several manual raters: the human bar the tool is judged against.

Fleiss' kappa per item (statsmodels `fleiss_kappa`, case bootstrap interval) and ICC(2,1) /
ICC(3,1) of the total (pingouin), over the levels every rater assessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from .agreement import icc_table
from .estimates import CaseBootstrap, Estimate, finite
from .records import ITEM_POINTS, ITEMS, ManualLevel


@dataclass(frozen=True)
class FleissItem:
    item: str
    n: int
    kappa: Estimate


@dataclass(frozen=True)
class RaterAgreement:
    raters: tuple[str, ...]
    n_levels: int  # levels scored by every rater
    n_cases: int
    fleiss: tuple[FleissItem, ...]
    icc_2_1: Estimate
    icc_3_1: Estimate
    n_total: int


def fleiss_from_counts(counts: np.ndarray) -> np.ndarray:
    """Fleiss' kappa from per-case sums: counts (..., 3 + L) = [subjects, sum P_i numerators,
    raters per subject, category totals...]; the formula of statsmodels `fleiss_kappa`."""
    subjects, agree_sum, raters = counts[..., 0], counts[..., 1], counts[..., 2]
    totals = counts[..., 3:]
    with np.errstate(divide="ignore", invalid="ignore"):
        p_j = totals / (subjects * raters)[..., None]
        p_bar = agree_sum / subjects
        p_e = (p_j**2).sum(axis=-1)
        return (p_bar - p_e) / (1 - p_e)


def _fleiss_item(item: str, table: np.ndarray, cases: list[str], n_boot: int, seed: int) -> FleissItem:
    """`table`: (levels x raters) points, rows with a gap already removed."""
    labels = ITEM_POINTS[item]
    position = {v: i for i, v in enumerate(labels)}
    if len(table) == 0:
        return FleissItem(item, 0, Estimate.undefined("Fleiss"))
    idx = np.vectorize(position.__getitem__)(table)
    counts, _ = aggregate_raters(idx, n_cat=len(labels))
    k = table.shape[1]
    value = finite(fleiss_kappa(counts, method="fleiss"))
    per_subject = np.column_stack(
        [np.ones(len(counts)), ((counts**2).sum(axis=1) - k) / (k * (k - 1)), np.ones(len(counts)), counts]
    )
    boot = CaseBootstrap(cases, n_boot, seed)
    reps = boot.resample(per_subject)
    reps[..., 2] = k  # raters per subject is a constant, not a sum
    estimate = boot.estimate(value, fleiss_from_counts(reps))
    return FleissItem(item, len(table), Estimate(estimate.value, estimate.low, estimate.high, f"Fleiss; {boot.method}"))


def rater_agreement(manual: Sequence[ManualLevel], raters: tuple[str, ...], n_boot: int, seed: int) -> RaterAgreement:
    """Among `raters` (two or more), over the (case, level) keys every one of them scored."""
    by_key: dict[tuple[str, str], dict[str, ManualLevel]] = {}
    for r in manual:
        by_key.setdefault((r.case_id, r.level), {})[r.rater] = r
    keys = [key for key, rows in by_key.items() if all(name in rows for name in raters)]
    fleiss = []
    for item in ITEMS:
        rows = [
            (key[0], [by_key[key][name].points.item(item) for name in raters])
            for key in keys
            if all(by_key[key][name].points.item(item) is not None for name in raters)
        ]
        table = np.array([v for _, v in rows], dtype=int).reshape(len(rows), len(raters))
        fleiss.append(_fleiss_item(item, table, [c for c, _ in rows], n_boot, seed))
    totals = [
        [by_key[key][name].points.total for name in raters]
        for key in keys
        if all(by_key[key][name].points.total is not None for name in raters)
    ]
    if len(totals) >= 5:
        icc2, icc3 = icc_table(np.array(totals, dtype=float))
    else:
        icc2 = icc3 = Estimate.undefined("needs 5 or more levels scored by every rater")
    return RaterAgreement(
        raters=raters,
        n_levels=len(keys),
        n_cases=len({k[0] for k in keys}),
        fleiss=tuple(fleiss),
        icc_2_1=icc2,
        icc_3_1=icc3,
        n_total=len(totals),
    )

"""Agreement statistics between the tool and a reference rater, each with a 95 % interval.

Point estimates come from the reference libraries: Cohen's kappa and confusion matrices from
scikit-learn (`cohen_kappa_score`, `confusion_matrix`), ICC(2,1) and ICC(3,1) with their F-based
intervals (McGraw & Wong 1996) from pingouin (`intraclass_corr`), Wilson intervals from statsmodels.
The case bootstrap recomputes kappa from resampled confusion matrices with the formula of
`cohen_kappa_score` (`kappa_from_confusion`, tested equal to it).

Confusion matrices: rows = reference (manual), columns = tool. Differences: tool - reference.
Weighted kappa weighs disagreement by the distance in category order (scikit-learn), so pain
0/1/3 counts 0->3 as two steps.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pingouin
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from ..anatomy import CATEGORIES
from ..config import SinsConfig
from ..scoring import category_of
from .estimates import CaseBootstrap, Estimate, finite, wilson

KAPPA_WEIGHTS: tuple[str | None, ...] = (None, "linear", "quadratic")
ICC_METHOD = "F distribution (McGraw & Wong 1996), pingouin"
LOA_Z = 1.96


@dataclass(frozen=True)
class KappaSet:
    """Cohen's kappa unweighted, with linear and with quadratic weights."""

    unweighted: Estimate
    linear: Estimate
    quadratic: Estimate


@dataclass(frozen=True)
class ItemAgreement:
    item: str
    n: int
    labels: tuple[int, ...]
    exact_agreement: Estimate
    kappa: KappaSet
    confusion: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class TotalAgreement:
    """The 0-18 total: ICC, mean absolute difference and Bland-Altman (tool - reference)."""

    n: int
    icc_2_1: Estimate  # two-way random, absolute agreement, single rater
    icc_3_1: Estimate  # two-way mixed, consistency, single rater
    mean_abs_diff: Estimate
    bias: Estimate
    sd_diff: float | None
    loa_low: Estimate
    loa_high: Estimate
    reference: tuple[int, ...]
    tool: tuple[int, ...]


@dataclass(frozen=True)
class CategoryAgreement:
    n: int
    labels: tuple[str, ...]
    accuracy: Estimate
    kappa: KappaSet
    confusion: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class BinaryAgreement:
    """total >= threshold, the reference as truth."""

    name: str
    threshold: int
    n: int
    tp: int
    fp: int
    fn: int
    tn: int
    sensitivity: Estimate
    specificity: Estimate
    ppv: Estimate
    npv: Estimate
    kappa: Estimate


# ----------------------------------------------------------------------------- kappa
def kappa_score(
    reference: Sequence[int], tool: Sequence[int], labels: Sequence[int], weights: str | None
) -> float | None:
    """scikit-learn's Cohen's kappa; None where undefined (a single category on both sides)."""
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        value = cohen_kappa_score(reference, tool, labels=list(labels), weights=weights)
    return finite(value)


def weight_matrix(n_labels: int, weights: str | None) -> np.ndarray:
    i = np.arange(n_labels)
    if weights is None:
        return 1.0 - np.eye(n_labels)
    if weights == "linear":
        return np.abs(i[:, None] - i[None, :]).astype(float)
    if weights == "quadratic":
        return ((i[:, None] - i[None, :]) ** 2).astype(float)
    raise ValueError(f"unknown kappa weights {weights!r}")


def kappa_from_confusion(confusion: np.ndarray, weights: str | None) -> np.ndarray:
    """Cohen's kappa of confusion matrices (..., L, L), as `cohen_kappa_score` computes it."""
    c = np.asarray(confusion, dtype=float)
    w = weight_matrix(c.shape[-1], weights)
    n = c.sum(axis=(-2, -1))
    expected = c.sum(axis=-1)[..., :, None] * c.sum(axis=-2)[..., None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = expected / n[..., None, None]
        return 1 - (w * c).sum(axis=(-2, -1)) / (w * expected).sum(axis=(-2, -1))


def _one_hot_pairs(ref_idx: np.ndarray, tool_idx: np.ndarray, n_labels: int, mask: np.ndarray) -> np.ndarray:
    """Per-observation confusion contributions (n_obs, L, L); zero where `mask` is False."""
    out = np.zeros((len(ref_idx), n_labels, n_labels))
    rows = np.flatnonzero(mask)
    out[rows, ref_idx[rows], tool_idx[rows]] = 1
    return out


def _kappa_set(ref: list, tool: list, labels: Sequence, one_hot: np.ndarray, boot: CaseBootstrap) -> KappaSet:
    replicates = boot.resample(one_hot)
    est = []
    for weights in KAPPA_WEIGHTS:
        value = kappa_score(ref, tool, labels, weights) if ref else None
        est.append(boot.estimate(value, kappa_from_confusion(replicates, weights)))
    return KappaSet(*est)


def _categorical(
    reference: Sequence, tool: Sequence, labels: Sequence, boot: CaseBootstrap
) -> tuple[list, list, Estimate, KappaSet, tuple[tuple[int, ...], ...]]:
    """Shared by items and categories: observations where both sides have a value."""
    mask = np.array([r is not None and t is not None for r, t in zip(reference, tool, strict=True)], dtype=bool)
    ref = [r for r, m in zip(reference, mask, strict=True) if m]
    tl = [t for t, m in zip(tool, mask, strict=True) if m]
    position = {label: i for i, label in enumerate(labels)}
    ref_idx = np.array([position.get(r, 0) for r in reference], dtype=int)
    tool_idx = np.array([position.get(t, 0) for t in tool], dtype=int)
    one_hot = _one_hot_pairs(ref_idx, tool_idx, len(labels), mask)
    agree = sum(r == t for r, t in zip(ref, tl, strict=True))
    kappas = _kappa_set(ref, tl, labels, one_hot, boot)
    conf = confusion_matrix(ref, tl, labels=list(labels)) if ref else np.zeros((len(labels),) * 2, dtype=int)
    return ref, tl, wilson(agree, len(ref)), kappas, tuple(tuple(int(x) for x in row) for row in conf)


def item_agreement(
    item: str, reference: Sequence[int | None], tool: Sequence[int | None], labels: Sequence[int], boot: CaseBootstrap
) -> ItemAgreement:
    ref, _, agreement, kappas, conf = _categorical(reference, tool, labels, boot)
    return ItemAgreement(item, len(ref), tuple(labels), agreement, kappas, conf)


# ----------------------------------------------------------------------------- total
def icc(reference: Sequence[float], tool: Sequence[float]) -> tuple[Estimate, Estimate]:
    """ICC(2,1) absolute agreement and ICC(3,1) consistency of two ratings of the same targets."""
    n = len(reference)
    if n < 5:
        return Estimate.undefined(ICC_METHOD + ": needs 5 or more targets"), Estimate.undefined(ICC_METHOD)
    return icc_table(np.column_stack([reference, tool]))


def icc_table(ratings: np.ndarray) -> tuple[Estimate, Estimate]:
    """ICC(2,1) and ICC(3,1) of a (targets x raters) table without gaps (pingouin)."""
    n, k = ratings.shape
    data = pd.DataFrame(
        {
            "target": np.repeat(np.arange(n), k),
            "rater": np.tile(np.arange(k), n),
            "rating": ratings.astype(float).ravel(),
        }
    )
    saved = pingouin.options.get("round.column.CI95")
    pingouin.options["round.column.CI95"] = None  # pingouin rounds the interval to 2 decimals by default
    try:
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore")  # 0/0 of a perfect match; pandas deprecations inside pingouin
            table = pingouin.intraclass_corr(data, targets="target", raters="rater", ratings="rating")
    except (AssertionError, ValueError) as e:
        return Estimate.undefined(f"{ICC_METHOD}: {e}"), Estimate.undefined(f"{ICC_METHOD}: {e}")
    finally:
        pingouin.options["round.column.CI95"] = saved
    out = []
    for name in ("ICC(A,1)", "ICC(C,1)"):
        row = table.loc[table["Type"] == name].iloc[0]
        low, high = (finite(x) for x in row["CI95"])
        out.append(Estimate(finite(row["ICC"]), low, high, ICC_METHOD))
    return out[0], out[1]


def total_agreement(reference: Sequence[int | None], tool: Sequence[int | None], boot: CaseBootstrap) -> TotalAgreement:
    mask = np.array([r is not None and t is not None for r, t in zip(reference, tool, strict=True)], dtype=bool)
    ref = np.array([r if r is not None else 0 for r in reference], dtype=float)
    tl = np.array([t if t is not None else 0 for t in tool], dtype=float)
    diff = np.where(mask, tl - ref, 0.0)
    count = mask.astype(float)
    n = int(mask.sum())
    icc2, icc3 = icc(ref[mask], tl[mask])
    if n == 0:
        none = Estimate.undefined(boot.method)
        return TotalAgreement(0, icc2, icc3, none, none, None, none, none, (), ())
    d = diff[mask]
    bias = float(d.mean())
    sd = float(d.std(ddof=1)) if n > 1 else None
    reps = boot.resample(np.column_stack([count, diff, diff**2, np.abs(diff)]))
    with np.errstate(divide="ignore", invalid="ignore"):
        cnt, s1, s2, sa = reps.T
        mean = s1 / cnt
        rep_sd = np.sqrt(np.maximum(s2 - cnt * mean**2, 0) / (cnt - 1))
        mad = sa / cnt
    loa = (None, None) if sd is None else (bias - LOA_Z * sd, bias + LOA_Z * sd)
    return TotalAgreement(
        n=n,
        icc_2_1=icc2,
        icc_3_1=icc3,
        mean_abs_diff=boot.estimate(float(np.abs(d).mean()), mad),
        bias=boot.estimate(bias, mean),
        sd_diff=sd,
        loa_low=boot.estimate(loa[0], mean - LOA_Z * rep_sd),
        loa_high=boot.estimate(loa[1], mean + LOA_Z * rep_sd),
        reference=tuple(int(x) for x in ref[mask]),
        tool=tuple(int(x) for x in tl[mask]),
    )


# ----------------------------------------------------------------------------- categories and thresholds
def category_agreement(
    reference: Sequence[int | None], tool: Sequence[int | None], cfg: SinsConfig, boot: CaseBootstrap
) -> CategoryAgreement:
    """stable 0-6 / potentially unstable 7-12 / unstable 13-18 (configs/sins.yaml `category`)."""
    ref_cat = [None if t is None else category_of(t, cfg) for t in reference]
    tool_cat = [None if t is None else category_of(t, cfg) for t in tool]
    ref, _, accuracy, kappas, conf = _categorical(ref_cat, tool_cat, CATEGORIES, boot)
    return CategoryAgreement(len(ref), CATEGORIES, accuracy, kappas, conf)


def binary_agreement(
    name: str, threshold: int, reference: Sequence[int | None], tool: Sequence[int | None], boot: CaseBootstrap
) -> BinaryAgreement:
    ref = [None if t is None else int(t >= threshold) for t in reference]
    tl = [None if t is None else int(t >= threshold) for t in tool]
    both = [(r, t) for r, t in zip(ref, tl, strict=True) if r is not None and t is not None]
    tp = sum(r == 1 and t == 1 for r, t in both)
    fp = sum(r == 0 and t == 1 for r, t in both)
    fn = sum(r == 1 and t == 0 for r, t in both)
    tn = sum(r == 0 and t == 0 for r, t in both)
    _, _, _, kappas, _ = _categorical(ref, tl, (0, 1), boot)
    return BinaryAgreement(
        name=name,
        threshold=threshold,
        n=len(both),
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
        sensitivity=wilson(tp, tp + fn),
        specificity=wilson(tn, tn + fp),
        ppv=wilson(tp, tp + fp),
        npv=wilson(tn, tn + fn),
        kappa=kappas.unweighted,
    )

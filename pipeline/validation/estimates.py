"""Point estimates with 95 % confidence intervals, and the case bootstrap.

Levels of one case are not independent (one patient, one scan, one rater sitting), so intervals
without a closed form resample whole cases: each bootstrap replicate draws the cases with
replacement (a multinomial count per case) and every statistic is computed from per-case sums
weighted by those counts, which makes a replicate a matrix product instead of a Python loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from statsmodels.stats.proportion import proportion_confint

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A statistic with its 95 % interval; None where it is undefined (e.g. kappa of one category)."""

    value: float | None
    low: float | None
    high: float | None
    method: str

    @staticmethod
    def undefined(method: str) -> Estimate:
        return Estimate(None, None, None, method)


def finite(x: float | None) -> float | None:
    """None for None, nan and inf; a plain float otherwise."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def wilson(successes: int, n: int) -> Estimate:
    """A proportion with the Wilson score interval (statsmodels `proportion_confint`)."""
    if n == 0:
        return Estimate.undefined("Wilson")
    low, high = proportion_confint(successes, n, alpha=1 - CONFIDENCE, method="wilson")
    return Estimate(successes / n, float(low), float(high), "Wilson")


class CaseBootstrap:
    """Resampling of cases with replacement, shared by every statistic of one comparison.

    `groups[i]` is the case of observation i. `weights` is (n_boot, n_cases): how often each case
    is drawn in each replicate.
    """

    def __init__(self, groups: Sequence[str], n_boot: int, seed: int) -> None:
        self.cases, self.index = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
        self.n_boot = n_boot
        self.seed = seed
        rng = np.random.default_rng(seed)
        n = len(self.cases)
        self.weights = rng.multinomial(n, np.full(n, 1 / n), size=n_boot).astype(float) if n else np.zeros((0, 0))

    @property
    def method(self) -> str:
        return f"bootstrap by case ({self.n_boot} replicates, seed {self.seed}, percentile)"

    def case_sums(self, values: np.ndarray) -> np.ndarray:
        """Per-case sums of per-observation values (first axis: observations)."""
        values = np.asarray(values, dtype=float)
        out = np.zeros((len(self.cases), *values.shape[1:]))
        np.add.at(out, self.index, values)
        return out

    def resample(self, values: np.ndarray) -> np.ndarray:
        """Replicate sums (n_boot, ...) of per-observation values."""
        sums = self.case_sums(values)
        flat = sums.reshape(len(self.cases), -1)
        return (self.weights @ flat).reshape(self.n_boot, *sums.shape[1:])

    def estimate(self, value: float | None, replicates: np.ndarray) -> Estimate:
        """`value` with the percentile interval of the finite replicates (None when too few are)."""
        value = finite(value)
        reps = np.asarray(replicates, dtype=float)
        reps = reps[np.isfinite(reps)]
        if value is None or reps.size < max(10, self.n_boot // 2):
            return Estimate(value, None, None, self.method)
        tail = (1 - CONFIDENCE) / 2 * 100
        low, high = np.percentile(reps, [tail, 100 - tail])
        return Estimate(value, float(low), float(high), self.method)

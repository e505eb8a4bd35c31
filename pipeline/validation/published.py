"""Published agreement figures the tool is read against (DESIGN.md §1), declared once.

Inter-observer agreement among experts: Fourney et al., J Clin Oncol 2011;29:3072 and the Spine J
2014 30-case study; the best published automated CT system: Ye et al. 2026 ("TGBP", arXiv:2603.16963).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PublishedFigure:
    what: str  # an item name, "total", "referral" or "categories"
    statistic: str
    low: float
    high: float
    source: str


HUMAN_SOURCE = "experts, inter-observer (Fourney 2011; Spine J 2014)"
HUMAN_BAR: tuple[PublishedFigure, ...] = (
    PublishedFigure("location", "kappa", 0.79, 0.81, HUMAN_SOURCE),
    PublishedFigure("pain", "kappa", 0.58, 0.84, HUMAN_SOURCE),
    PublishedFigure("bone_lesion", "kappa", 0.21, 0.24, HUMAN_SOURCE),
    PublishedFigure("alignment", "kappa", 0.45, 0.45, HUMAN_SOURCE),
    PublishedFigure("collapse", "kappa", 0.42, 0.46, HUMAN_SOURCE),
    PublishedFigure("posterolateral", "kappa", 0.29, 0.49, HUMAN_SOURCE),
    PublishedFigure("total", "ICC", 0.79, 0.85, HUMAN_SOURCE),
    PublishedFigure("referral", "kappa", 0.76, 0.76, "radiologists, total >= 7 (Fourney 2011)"),
)
AUTOMATED_BEST: tuple[PublishedFigure, ...] = (
    PublishedFigure("categories", "accuracy", 0.902, 0.902, "Ye et al. 2026 (TGBP), three categories"),
)

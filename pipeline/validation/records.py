"""Typed rows of the two sides of a validation: the tool's `levels.csv` and the manual SINS CSV.

The manual CSV (DESIGN.md §4): `case_id, level, location, pain, bone_lesion, alignment, collapse,
posterolateral, total` in points, optional `rater`. A blank cell means "not assessed" (None), never 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..schema import Measurements, SinsItems

#: The six SINS items in the order of the published table (Fisher 2010).
ITEMS: tuple[str, ...] = ("location", "pain", "bone_lesion", "alignment", "collapse", "posterolateral")
#: The items the tool measures on the image (location comes from the level name, pain from the clinician).
IMAGING_ITEMS: tuple[str, ...] = ("bone_lesion", "alignment", "collapse", "posterolateral")
#: The points each item can take (Fisher et al., Spine 2010;35:E1221, Table 1).
ITEM_POINTS: dict[str, tuple[int, ...]] = {
    "location": (0, 1, 2, 3),
    "pain": (0, 1, 3),
    "bone_lesion": (0, 1, 2),
    "alignment": (0, 2, 4),
    "collapse": (0, 1, 2, 3),
    "posterolateral": (0, 1, 3),
}
TOTAL_MAX = 18
MANUAL_COLUMNS: tuple[str, ...] = ("case_id", "level", *ITEMS, "total")
#: Rater name of a manual file without a `rater` column (or a blank rater cell).
DEFAULT_RATER = "manual"
#: Rater name of the median of several raters.
CONSENSUS = "consensus"


@dataclass(frozen=True)
class Points:
    """SINS points of one level on one side; None where that side did not assess the item."""

    location: int | None
    pain: int | None
    bone_lesion: int | None
    alignment: int | None
    collapse: int | None
    posterolateral: int | None
    total: int | None

    def item(self, name: str) -> int | None:
        if name not in ITEMS and name != "total":
            raise KeyError(name)
        return getattr(self, name)

    def missing(self) -> tuple[str, ...]:
        """Items that were not assessed."""
        return tuple(name for name in ITEMS if getattr(self, name) is None)


def points_of(sins: SinsItems) -> Points:
    return Points(
        location=sins.location,
        pain=sins.pain,
        bone_lesion=sins.bone_lesion,
        alignment=sins.alignment,
        collapse=sins.collapse,
        posterolateral=sins.posterolateral,
        total=sins.total,
    )


@dataclass(frozen=True)
class ManualLevel:
    """One row of a manual SINS file. `where` names the file and row for messages."""

    case_id: str
    level: str
    rater: str
    points: Points
    where: str


@dataclass(frozen=True)
class AutoLevel:
    """One row of the tool's `levels.csv` (every level, lesion or not)."""

    case_id: str
    level: str
    complete: bool
    lesion: bool
    measurements: Measurements
    sins: SinsItems | None
    flags: tuple[str, ...]
    where: str

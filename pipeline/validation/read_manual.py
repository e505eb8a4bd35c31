"""The manual side: a SINS CSV scored by one or more raters (DESIGN.md §4), checked row by row.

Every error names the file, the row and the offending value: an unknown level name, points an
item cannot take, a total outside 0-18 or different from the sum of its items, a missing column,
a level scored twice by the same rater.
"""

from __future__ import annotations

from pathlib import Path

from ..anatomy import ALL_LEVELS
from ..errors import InputError
from .csvfile import parse_int, read_rows
from .records import DEFAULT_RATER, ITEM_POINTS, ITEMS, MANUAL_COLUMNS, TOTAL_MAX, ManualLevel, Points


def _points(row: dict[str, str], where: str) -> Points:
    items: dict[str, int | None] = {}
    for name in ITEMS:
        value = parse_int(row[name], where, name)
        allowed = ITEM_POINTS[name]
        if value is not None and value not in allowed:
            raise InputError(
                f"{where}: {name} = {row[name]!r} is not a {name} score; expected one of {'/'.join(map(str, allowed))}"
            )
        items[name] = value
    total = parse_int(row["total"], where, "total")
    known = sum(v for v in items.values() if v is not None)
    open_max = sum(max(ITEM_POINTS[k]) for k, v in items.items() if v is None)
    if total is not None:
        if not 0 <= total <= TOTAL_MAX:
            raise InputError(f"{where}: total = {row['total']!r} is outside 0-{TOTAL_MAX}")
        if open_max == 0 and total != known:
            raise InputError(f"{where}: total = {total} differs from the sum of the items ({known})")
        if not known <= total <= known + open_max:
            raise InputError(f"{where}: total = {total} cannot come from the items given ({known}..{known + open_max})")
    elif open_max == 0:
        total = known
    return Points(**items, total=total)


def read_manual_csv(path: str | Path) -> tuple[ManualLevel, ...]:
    """Rows of a manual SINS CSV; a (case_id, level, rater) given twice is an error."""
    path = Path(path)
    rows: list[ManualLevel] = []
    seen: dict[tuple[str, str, str], str] = {}
    for line, row in read_rows(path, MANUAL_COLUMNS):
        where = f"{path} row {line}"
        case_id = row["case_id"]
        if not case_id:
            raise InputError(f"{where}: blank case_id")
        level = row["level"].upper()
        if level not in ALL_LEVELS:
            raise InputError(f"{where}: unknown level {row['level']!r}; expected one of {', '.join(ALL_LEVELS)}")
        rater = row.get("rater") or DEFAULT_RATER
        key = (case_id, level, rater)
        if key in seen:
            raise InputError(f"{where}: case {case_id} level {level} rater {rater} already scored at {seen[key]}")
        seen[key] = where
        rows.append(ManualLevel(case_id, level, rater, _points(row, where), where))
    if not rows:
        raise InputError(f"{path}: no rows under the header")
    return tuple(rows)


def read_manual(path: str | Path) -> tuple[ManualLevel, ...]:
    """A manual SINS CSV, or a folder of phantom cases whose `truth.json` files serve as the manual side."""
    path = Path(path)
    if path.is_dir():
        from .phantom_truth import manual_from_truth_dir

        return manual_from_truth_dir(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    return read_manual_csv(path)

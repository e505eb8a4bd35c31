"""The tool's side: `levels.csv` written by `sins analyze` / `sins batch` (DESIGN.md §4)."""

from __future__ import annotations

from pathlib import Path

from ..anatomy import ALL_LEVELS
from ..errors import InputError
from ..schema import LEVEL_COLUMNS, MEASUREMENT_FIELDS, SINS_FIELDS, Measurements, SinsItems
from .csvfile import parse_bool, parse_float, parse_int, read_rows
from .records import AutoLevel

_TEXT_MEASUREMENTS = {"lesion_type"}


def levels_csv_files(path: str | Path) -> tuple[Path, ...]:
    """A `levels.csv` file, or a run folder holding one `levels.csv` or per-case `*/levels.csv`."""
    path = Path(path)
    if path.is_file():
        return (path,)
    if path.is_dir():
        if (path / "levels.csv").is_file():
            return (path / "levels.csv",)
        found = tuple(sorted(path.glob("*/levels.csv")))
        if found:
            return found
        raise InputError(f"{path}: no levels.csv in this folder or its case folders")
    raise InputError(f"{path}: no such file or folder")


def _level(row: dict[str, str], where: str) -> AutoLevel:
    level = row["level"]
    if level not in ALL_LEVELS:
        raise InputError(f"{where}: unknown level {level!r}; expected one of {', '.join(ALL_LEVELS)}")
    values: dict[str, object] = {}
    for name in MEASUREMENT_FIELDS:
        cell = row[name]
        values[name] = (cell or None) if name in _TEXT_MEASUREMENTS else parse_float(cell, where, name)
    sins = None
    if row["total_min"] != "":
        points = {name: parse_int(row[name], where, name) for name in SINS_FIELDS if name != "category"}
        if points["location"] is None or points["total_max"] is None:
            raise InputError(f"{where}: a scored level needs location and total_max")
        sins = SinsItems(**points, category=row["category"] or None)  # type: ignore[arg-type]
    return AutoLevel(
        case_id=row["case_id"],
        level=level,
        complete=parse_bool(row["complete"], where, "complete"),
        lesion=parse_bool(row["lesion"], where, "lesion"),
        measurements=Measurements(**values),  # type: ignore[arg-type]
        sins=sins,
        flags=tuple(f for f in row["flags"].split(";") if f),
        where=where,
    )


def read_auto_levels(path: str | Path) -> tuple[AutoLevel, ...]:
    """Every row of the tool's levels.csv file(s); a (case_id, level) seen twice is an error."""
    rows: list[AutoLevel] = []
    seen: dict[tuple[str, str], str] = {}
    for file in levels_csv_files(path):
        for line, row in read_rows(file, LEVEL_COLUMNS):
            where = f"{file} row {line}"
            if not row["case_id"]:
                raise InputError(f"{where}: blank case_id")
            level = _level(row, where)
            key = (level.case_id, level.level)
            if key in seen:
                raise InputError(f"{where}: case {key[0]} level {key[1]} already given at {seen[key]}")
            seen[key] = where
            rows.append(level)
    if not rows:
        raise InputError(f"{path}: no level rows")
    return tuple(rows)

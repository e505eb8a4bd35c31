"""Clinician input: pain, location overrides and level-naming overrides (DESIGN.md §4).

The clinician CSV has columns `case_id, level, pain` and optionally `location`, `lowest_level` and
`level_offset`. A blank `level` makes the row case-wide (it applies to every lesion level of the case);
`lowest_level` and `level_offset` may only sit on such rows. A blank cell means "not given": a
level-specific row with blank pain falls back to the case-wide pain. Values are matched
case-insensitively; level names are normalised to upper case ("t12" -> "T12").
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from os import PathLike

from pipeline.anatomy import ALL_LEVELS, LOCATION_REGIONS, PAIN_VALUES, level_index, location_region
from pipeline.errors import InputError

REQUIRED_COLUMNS: tuple[str, ...] = ("case_id", "level", "pain")
OPTIONAL_COLUMNS: tuple[str, ...] = ("location", "lowest_level", "level_offset")
KNOWN_COLUMNS: tuple[str, ...] = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
#: Largest shift, in levels, that a level-naming override may ask for.
MAX_LEVEL_OFFSET = 5


@dataclass(frozen=True)
class LevelOverride:
    """Correction of the automatic level naming: name of the most caudal vertebra, or a shift."""

    lowest_level: str | None = None  # a name of anatomy.ALL_LEVELS
    offset: int = 0  # levels caudally (negative: cranially)


@dataclass(frozen=True)
class ClinicalInfo:
    """What the clinician says about one case; the key None stands for the whole case."""

    case_id: str
    pain: dict[str | None, str] = field(default_factory=dict)
    location: dict[str | None, str] = field(default_factory=dict)
    override: LevelOverride | None = None

    def pain_for(self, level: str) -> str | None:
        """Pain at a level: level-specific beats case-wide; None when unknown."""
        return self.pain.get(level, self.pain.get(None))

    def location_for(self, level: str) -> str | None:
        """Location region override at a level; None means derive it from the level name."""
        return self.location.get(level, self.location.get(None))

    def levels_named(self) -> tuple[str, ...]:
        """Levels the clinician gave explicitly, cranial to caudal."""
        named = {lv for lv in (*self.pain, *self.location) if lv is not None}
        return tuple(sorted(named, key=level_index))


def _choices(values: Sequence[str]) -> str:
    return ", ".join(values)


def _level(value: str, where: str, what: str = "level") -> str:
    name = value.strip().upper()
    if name not in ALL_LEVELS:
        raise InputError(f"{where}: unknown {what} {value!r}; expected one of {_choices(ALL_LEVELS)}")
    return name


def _pain(value: str, where: str) -> str:
    pain = value.strip().lower()
    if pain not in PAIN_VALUES:
        raise InputError(f"{where}: unknown pain {value!r}; expected one of {_choices(PAIN_VALUES)} (or blank)")
    return pain


def _location(value: str, where: str) -> str:
    loc = value.strip().lower()
    if loc not in LOCATION_REGIONS:
        raise InputError(
            f"{where}: unknown location {value!r}; expected one of {_choices(LOCATION_REGIONS)} (or blank)"
        )
    return loc


def _offset(value: int, where: str) -> int:
    if abs(value) > MAX_LEVEL_OFFSET:
        raise InputError(
            f"{where}: level offset {value} is too large; expected an integer from "
            f"-{MAX_LEVEL_OFFSET} to {MAX_LEVEL_OFFSET}"
        )
    return value


def _override(lowest_level: str | None, offset: int | None, where: str) -> LevelOverride | None:
    if lowest_level is not None and offset is not None:
        raise InputError(
            f"{where}: give either a lowest level ({lowest_level!r}) or a level offset ({offset}), not both"
        )
    if lowest_level is not None:
        return LevelOverride(lowest_level=_level(lowest_level, where, "lowest level"))
    if offset is not None:
        return LevelOverride(offset=_offset(offset, where))
    return None


def parse_level_override(lowest_level: str | None, offset: int | None) -> LevelOverride | None:
    """Validated level-naming override from command-line values; None when neither is given."""
    if isinstance(offset, bool) or (offset is not None and not isinstance(offset, int)):
        raise InputError(f"level override: level offset {offset!r} is not an integer")
    return _override(lowest_level, offset, "level override")


def read_csv_rows(path: str | PathLike[str], what: str) -> list[tuple[int, list[str]]]:
    """The non-blank rows of a UTF-8 CSV with their 1-based line numbers; one-line `InputError`s
    naming the file as `what` (e.g. "clinical CSV", "manifest")."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            return [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: {what} is a folder, expected a CSV file") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: {what} is not UTF-8 text (byte {e.start}); save it as UTF-8 CSV") from None
    except csv.Error as e:
        raise InputError(f"{path}: {what} is malformed: {e}") from None


def _read_rows(path: str | PathLike[str]) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header (normalised) and the non-blank data rows with their 1-based line numbers."""
    rows = read_csv_rows(path, "clinical CSV")
    if not rows:
        raise InputError(f"{path}: clinical CSV is empty; expected a header {', '.join(REQUIRED_COLUMNS)}")
    (header_line, header), data = rows[0], rows[1:]
    columns = [c.strip().lower() for c in header]
    for col in columns:
        if not col:  # a trailing comma in the header (spreadsheet export): the column must stay empty
            continue
        if col not in KNOWN_COLUMNS:
            raise InputError(f"{path} row {header_line}: unknown column {col!r}; known: {_choices(KNOWN_COLUMNS)}")
        if columns.count(col) > 1:
            raise InputError(f"{path} row {header_line}: column {col!r} appears twice")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise InputError(
            f"{path}: header lacks column {_choices(missing)}; required: {_choices(REQUIRED_COLUMNS)}, "
            f"optional: {_choices(OPTIONAL_COLUMNS)}"
        )
    return columns, data


def _merge(into: dict, key: object, value: object, where: str, what: str) -> None:
    """Record a value once; a repeated key must carry the same value."""
    if key in into and into[key] != value:
        raise InputError(f"{where}: {what} {value!r} conflicts with {into[key]!r} given on an earlier row")
    into[key] = value


def read_clinical_csv(path: str | PathLike[str]) -> dict[str, ClinicalInfo]:
    """Parse and validate a clinician CSV into one ClinicalInfo per case_id."""
    columns, data = _read_rows(path)
    pain: dict[tuple[str, str | None], str] = {}
    location: dict[tuple[str, str | None], str] = {}
    lowest: dict[str, str] = {}
    offsets: dict[str, int] = {}
    cases: dict[str, None] = {}
    for line, cells in data:
        where = f"{path} row {line}"
        if len(cells) > len(columns):
            raise InputError(f"{where}: {len(cells)} fields but the header has {len(columns)} columns")
        row: dict[str, str] = {}
        for col, cell in zip(columns, cells, strict=False):  # short rows: missing cells are blank
            if col:
                row[col] = cell.strip()
            elif cell.strip():
                raise InputError(f"{where}: value {cell.strip()!r} in a column without a header name")
        case_id = row.get("case_id", "")
        if not case_id:
            raise InputError(f"{where}: case_id is empty")
        cases[case_id] = None
        level = _level(row["level"], where) if row.get("level") else None
        if row.get("pain"):
            _merge(pain, (case_id, level), _pain(row["pain"], where), where, "pain")
        if row.get("location"):
            _merge(location, (case_id, level), _location(row["location"], where), where, "location")
        for col in ("lowest_level", "level_offset"):
            if row.get(col) and level is not None:
                raise InputError(
                    f"{where}: {col} {row[col]!r} given on a row for level {level}; "
                    "it applies to the whole case, so leave level blank"
                )
        if row.get("lowest_level"):
            _merge(lowest, case_id, _level(row["lowest_level"], where, "lowest_level"), where, "lowest_level")
        if row.get("level_offset"):
            try:
                offset = int(row["level_offset"])
            except ValueError:
                raise InputError(
                    f"{where}: level_offset {row['level_offset']!r} is not an integer; expected an integer from "
                    f"-{MAX_LEVEL_OFFSET} to {MAX_LEVEL_OFFSET}"
                ) from None
            _merge(offsets, case_id, _offset(offset, where), where, "level_offset")
        if case_id in lowest and case_id in offsets:
            raise InputError(
                f"{where}: case {case_id!r} has both lowest_level {lowest[case_id]!r} and level_offset "
                f"{offsets[case_id]}; give only one"
            )
    return {
        case_id: ClinicalInfo(
            case_id=case_id,
            pain={lv: v for (c, lv), v in pain.items() if c == case_id},
            location={lv: v for (c, lv), v in location.items() if c == case_id},
            override=_override(lowest.get(case_id), offsets.get(case_id), f"{path} case {case_id!r}"),
        )
        for case_id in cases
    }


def clinical_for(table: dict[str, ClinicalInfo], case_id: str, pain: str | None = None) -> ClinicalInfo:
    """The case's clinical info (empty when absent), with `pain` (--pain) filling in the case-wide pain.

    Precedence: CSV level-specific > CSV case-wide > `pain`.
    """
    info = table.get(case_id, ClinicalInfo(case_id=case_id))
    if pain is None or None in info.pain:
        if pain is not None:
            _pain(pain, "--pain")
        return info
    return replace(info, pain={**info.pain, None: _pain(pain, "--pain")})


def clinical_notes(info: ClinicalInfo, lesion_levels: Sequence[str]) -> tuple[str, ...]:
    """Human-readable notes on clinician input that does not apply, or that changes the scoring."""
    notes: list[str] = []
    lesions = set(lesion_levels)
    for level in info.levels_named():
        if level not in lesions:
            given = " and ".join(what for what, d in (("pain", info.pain), ("location", info.location)) if level in d)
            notes.append(f"clinical CSV gives {given} for {level}, which carries no lesion in this case")
    for level in lesion_levels:
        loc, derived = info.location_for(level), location_region(level)
        if loc is not None and loc != derived:
            notes.append(f"location of {level} set to {loc} by the clinician (from the level: {derived})")
    if info.override is not None:
        if info.override.lowest_level is not None:
            notes.append(f"clinical CSV names the most caudal vertebra {info.override.lowest_level}")
        elif info.override.offset:
            direction = "caudally" if info.override.offset > 0 else "cranially"
            notes.append(f"clinical CSV shifts the level names {abs(info.override.offset)} {direction}")
    return tuple(notes)


def case_clinical(
    case_id: str,
    where: str,
    *,
    pain: str | None = None,
    location: str | None = None,
    lowest_level: str | None = None,
    level_offset: str | int | None = None,
) -> ClinicalInfo | None:
    """Case-wide clinician values given outside a clinician CSV (e.g. columns of a batch manifest),
    validated like the CSV's; None when nothing is given. `where` names the source in messages."""
    offset = None
    if level_offset is not None and level_offset != "":
        try:
            offset = int(level_offset)
        except ValueError:
            raise InputError(f"{where}: level_offset {level_offset!r} is not an integer") from None
    override = _override(lowest_level or None, offset, where)
    pain_map = {None: _pain(pain, where)} if pain else {}
    location_map = {None: _location(location, where)} if location else {}
    if not pain_map and not location_map and override is None:
        return None
    return ClinicalInfo(case_id, pain_map, location_map, override)


def merge_clinical(base: ClinicalInfo | None, extra: ClinicalInfo | None, where: str) -> ClinicalInfo | None:
    """The clinician CSV's values for a case (`base`) with those given elsewhere (`extra`, at `where`);
    a value both give must agree."""
    if base is None or extra is None:
        return base or extra
    merged: list[dict[str | None, str]] = []
    for what, ours, theirs in (("pain", base.pain, extra.pain), ("location", base.location, extra.location)):
        for key, value in theirs.items():
            if key in ours and ours[key] != value:
                raise InputError(f"{where}: {what} {value!r} conflicts with {ours[key]!r} in the clinical CSV")
        merged.append({**ours, **theirs})
    override = base.override
    if extra.override is not None:
        if override is not None and override != extra.override:
            raise InputError(f"{where}: level override conflicts with the one in the clinical CSV")
        override = extra.override
    return ClinicalInfo(base.case_id, merged[0], merged[1], override)

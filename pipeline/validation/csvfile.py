"""Reading CSV files with errors that name the file, the row and the value (one line, `InputError`)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from ..errors import InputError


def read_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row with stripped cells) for each data row; the header must hold `required`."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file") from None
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in reader.fieldnames or []]
    if not header:
        raise InputError(f"{path}: empty file; expected a header with {', '.join(required)}")
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; the header has {', '.join(header)}")
    reader.fieldnames = header
    for row in reader:
        if None in row:
            raise InputError(f"{path} row {reader.line_num}: more cells than columns in the header")
        yield reader.line_num, {k: (v or "").strip() for k, v in row.items()}


def parse_int(value: str, where: str, column: str) -> int | None:
    """An integer cell ('3' or '3.0'); blank is None."""
    if value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"{where}: {column} = {value!r} is not a number") from None
    if not number.is_integer():
        raise InputError(f"{where}: {column} = {value!r} is not a whole number of points")
    return int(number)


def parse_float(value: str, where: str, column: str) -> float | None:
    if value == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise InputError(f"{where}: {column} = {value!r} is not a number") from None


def parse_bool(value: str, where: str, column: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise InputError(f"{where}: {column} = {value!r} is not true/false")

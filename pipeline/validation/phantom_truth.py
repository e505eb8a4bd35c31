"""Phantom truth as the manual side: `truth.json` files (sins.json schema) to manual SINS rows / CSV.

rows = manual_from_truth_dir("phantoms/")      # every phantoms/*/truth.json
write_manual_csv(rows, "phantoms/manual.csv")   # then: sins validate --manual phantoms/manual.csv
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..errors import InputError
from ..schema import case_from_dict, write_text_atomic
from .records import ITEMS, MANUAL_COLUMNS, ManualLevel, points_of

#: Rater name of phantom truth.
TRUTH_RATER = "truth"


def manual_from_truth(path: str | Path) -> tuple[ManualLevel, ...]:
    """The scored (lesion) levels of one truth.json / sins.json as manual rows."""
    path = Path(path)
    try:
        case = case_from_dict(json.loads(path.read_text(encoding="utf-8")))
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"{path}: not a sins.json / truth.json document ({e})") from None
    return tuple(
        ManualLevel(case.case_id, lv.level, TRUTH_RATER, points_of(lv.sins), f"{path} level {lv.level}")
        for lv in case.levels
        if lv.sins is not None
    )


def truth_files(folder: str | Path) -> tuple[Path, ...]:
    folder = Path(folder)
    files = sorted(folder.glob("*/truth.json")) or sorted(folder.glob("truth.json"))
    if not files:
        raise InputError(f"{folder}: no truth.json in this folder or its case folders")
    return tuple(files)


def manual_from_truth_dir(folder: str | Path) -> tuple[ManualLevel, ...]:
    """Manual rows from every `*/truth.json` under a `sins phantom --out` folder."""
    return tuple(row for file in truth_files(folder) for row in manual_from_truth(file))


def manual_csv_text(rows: tuple[ManualLevel, ...] | list[ManualLevel]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*MANUAL_COLUMNS, "rater"])
    for r in rows:
        cells = [r.points.item(name) for name in (*ITEMS, "total")]
        writer.writerow([r.case_id, r.level, *("" if v is None else v for v in cells), r.rater])
    return buf.getvalue()


def write_manual_csv(rows: tuple[ManualLevel, ...] | list[ManualLevel], path: str | Path) -> Path:
    """Write a manual SINS CSV through a temporary file and a rename."""
    return write_text_atomic(manual_csv_text(rows), path)

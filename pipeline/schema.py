"""Typed results and the `sins.json` / `levels.csv` formats (DESIGN.md §4).

`None` means "not assessable" (e.g. a truncated vertebra has no heights), never 0.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

SCHEMA_VERSION = "1.0"


@dataclass(frozen=True)
class Measurements:
    """Per-level measurements in the vertebra's own frame (mm, fractions, degrees, mL).

    translation_*: offset of this vertebra relative to the one below it (AP: posterior walls,
    LR: body centroids) in the lower body's frame; kyphosis_deg / scoliosis_deg: departure of the
    segmental angle across this level from the expected regional curve (positive = kyphotic /
    convex to the left); posterolateral_*: lesion volume (mL) in the posterior elements on that side.
    """

    height_anterior_mm: float | None = None
    height_middle_mm: float | None = None
    height_posterior_mm: float | None = None
    reference_height_mm: float | None = None
    collapse_fraction: float | None = None
    body_involvement: float | None = None
    lytic_fraction: float | None = None
    blastic_fraction: float | None = None
    lesion_type: str | None = None
    translation_ap_mm: float | None = None
    translation_lr_mm: float | None = None
    kyphosis_deg: float | None = None
    scoliosis_deg: float | None = None
    posterolateral_left: float | None = None
    posterolateral_right: float | None = None


@dataclass(frozen=True)
class SinsItems:
    """SINS points of one lesion level. pain/total are None when the clinician gave no pain."""

    location: int
    pain: int | None
    bone_lesion: int | None
    alignment: int | None
    collapse: int | None
    posterolateral: int | None
    total: int | None
    total_min: int
    total_max: int
    category: str | None


@dataclass(frozen=True)
class LevelResult:
    level: str
    complete: bool
    lesion: bool
    measurements: Measurements
    sins: SinsItems | None
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Summary:
    lesion_levels: tuple[str, ...]
    max_total: int | None
    max_level: str | None
    category: str | None


@dataclass(frozen=True)
class Software:
    version: str
    model: str | None
    model_sha256: str | None
    config_sha256: str


@dataclass(frozen=True)
class InputInfo:
    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    orientation: str
    source: str = ""


@dataclass(frozen=True)
class CaseResult:
    case_id: str
    software: Software
    input: InputInfo
    levels: tuple[LevelResult, ...]
    summary: Summary
    schema_version: str = SCHEMA_VERSION
    anchors: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def summarise(levels: tuple[LevelResult, ...] | list[LevelResult]) -> Summary:
    """Lesion levels and the most unstable one (highest total, else highest total_max)."""
    scored = [lv for lv in levels if lv.sins is not None]
    if not scored:
        return Summary((), None, None, None)

    def key(lv: LevelResult) -> tuple[int, int]:
        s = lv.sins
        assert s is not None
        return (s.total if s.total is not None else s.total_max, s.total_min)

    worst = max(scored, key=key)
    s = worst.sins
    assert s is not None
    return Summary(tuple(lv.level for lv in scored), s.total, worst.level, s.category)


# ----------------------------------------------------------------------------- serialisation
def _clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if math.isnan(obj) else round(obj, 4) + 0.0
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def case_to_dict(case: CaseResult) -> dict:
    """The `sins.json` document (keys in DESIGN.md order)."""
    d = asdict(case)
    out = {
        "case_id": d["case_id"],
        "schema_version": d["schema_version"],
        "software": d["software"],
        "input": d["input"],
        "levels": d["levels"],
        "summary": d["summary"],
        "anchors": d["anchors"],
        "notes": d["notes"],
        **d["extra"],
    }
    return _clean(out)


def case_from_dict(d: dict) -> CaseResult:
    """Read a `sins.json` document back into typed values."""
    known = {"case_id", "schema_version", "software", "input", "levels", "summary", "anchors", "notes"}
    levels = tuple(
        LevelResult(
            level=lv["level"],
            complete=lv["complete"],
            lesion=lv["lesion"],
            measurements=Measurements(**lv["measurements"]),
            sins=SinsItems(**lv["sins"]) if lv.get("sins") else None,
            flags=tuple(lv.get("flags", ())),
        )
        for lv in d["levels"]
    )
    s = d["summary"]
    inp = d["input"]
    return CaseResult(
        case_id=d["case_id"],
        schema_version=d.get("schema_version", SCHEMA_VERSION),
        software=Software(**d["software"]),
        input=InputInfo(
            shape=tuple(inp["shape"]),
            spacing_mm=tuple(inp["spacing_mm"]),
            orientation=inp["orientation"],
            source=inp.get("source", ""),
        ),
        levels=levels,
        summary=Summary(tuple(s["lesion_levels"]), s["max_total"], s["max_level"], s["category"]),
        anchors=tuple(d.get("anchors", ())),
        notes=tuple(d.get("notes", ())),
        extra={k: v for k, v in d.items() if k not in known},
    )


def write_bytes_atomic(data: bytes, path: str | Path) -> Path:
    """Write a file through a temporary file beside it and a rename: a reader never sees half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def write_text_atomic(text: str, path: str | Path) -> Path:
    """UTF-8 text through `write_bytes_atomic`."""
    return write_bytes_atomic(text.encode("utf-8"), path)


def write_json_atomic(data: dict, path: str | Path) -> Path:
    """Write JSON through a temporary file and a rename."""
    return write_text_atomic(json.dumps(data, indent=2) + "\n", path)


def write_case_json(case: CaseResult, path: str | Path) -> Path:
    return write_json_atomic(case_to_dict(case), path)


def read_case_json(path: str | Path) -> CaseResult:
    return case_from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


MEASUREMENT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Measurements))
SINS_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(SinsItems))
LEVEL_COLUMNS: tuple[str, ...] = ("case_id", "level", "complete", "lesion", *MEASUREMENT_FIELDS, *SINS_FIELDS, "flags")


def level_rows(case: CaseResult) -> list[dict[str, Any]]:
    """One `levels.csv` row per level, `case_id` first."""
    rows = []
    for lv in case.levels:
        row: dict[str, Any] = {"case_id": case.case_id, "level": lv.level, "complete": lv.complete, "lesion": lv.lesion}
        m = _clean(asdict(lv.measurements))
        row.update(m)
        s = asdict(lv.sins) if lv.sins else dict.fromkeys(SINS_FIELDS)
        row.update(s)
        row["flags"] = ";".join(lv.flags)
        rows.append(row)
    return rows


def levels_csv_text(cases: list[CaseResult]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(LEVEL_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for case in cases:
        for row in level_rows(case):
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


def write_levels_csv(cases: list[CaseResult], path: str | Path) -> Path:
    return write_text_atomic(levels_csv_text(cases), path)

"""The batch's output folder: which cases are done, staging and committing a case, and the files
across cases (`cases.csv`, `levels.csv`, `run.json`).

A case is computed in `OUT/.sins-staging/new/<case_id>/` and moved to `OUT/<case_id>/` by one
rename once every file is written, so `OUT/<case_id>/` exists only complete; a kill leaves at most a
staging folder, removed when the case is run again. A case counts as done when its `sins.json`
(written last by `write_outputs`) reads back with the same case id, configuration and model.
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..schema import CaseResult, levels_csv_text, read_case_json, write_json_atomic, write_text_atomic

STAGING = ".sins-staging"
CASES_COLUMNS: tuple[str, ...] = (
    "case_id",
    "status",
    "error",
    "max_total",
    "max_level",
    "category",
    "lesion_levels",
    "seconds",
    "input",
)


@dataclass(frozen=True)
class CaseRecord:
    """One row of `cases.csv`: a finished case (`result` read back from its sins.json) or an error."""

    case_id: str
    status: str  # "ok" | "error"
    error: str | None
    seconds: float
    input: str
    result: CaseResult | None = None
    reused: bool = False  # done by an earlier run and skipped by this one


def staging_dir(out: Path, case_id: str) -> Path:
    return out / STAGING / "new" / case_id


def _old_dir(out: Path, case_id: str) -> Path:
    return out / STAGING / "old" / case_id


def finished_result(out: Path, case_id: str, config_sha256: str, model_sha256: str | None) -> CaseResult | None:
    """The case's result when `OUT/<case_id>/sins.json` is complete and was made with this configuration
    and model; None when the case must be (re)computed."""
    path = out / case_id / "sins.json"
    try:
        case = read_case_json(path)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    sw = case.software
    if case.case_id != case_id or sw.config_sha256 != config_sha256 or sw.model_sha256 != model_sha256:
        return None
    return case


def prepare(out: Path, case_id: str) -> None:
    """Clear what an interrupted earlier attempt at this case left (staging, a half-replaced folder)."""
    for path in (staging_dir(out, case_id), _old_dir(out, case_id)):
        shutil.rmtree(path, ignore_errors=True)


def write_staged(out: Path, case_id: str, files: dict[str, bytes]) -> None:
    """Put a case's files (computed elsewhere, e.g. on a Dask worker) into its staging folder."""
    stage = staging_dir(out, case_id)
    shutil.rmtree(stage, ignore_errors=True)
    for name, data in files.items():
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts:
            raise ValueError(f"file name {name!r} leaves the case folder")
        (stage / rel).parent.mkdir(parents=True, exist_ok=True)
        (stage / rel).write_bytes(data)


def _remove(out: Path, case_id: str) -> None:
    """Move `OUT/<case_id>` out of the way (one rename), then delete it."""
    dst = out / case_id
    if not dst.exists() and not dst.is_symlink():
        return
    if dst.is_dir() and not dst.is_symlink():
        old = _old_dir(out, case_id)
        shutil.rmtree(old, ignore_errors=True)
        old.parent.mkdir(parents=True, exist_ok=True)
        dst.rename(old)
        shutil.rmtree(old, ignore_errors=True)
    else:
        dst.unlink()


def commit(out: Path, case_id: str) -> CaseResult:
    """Move the staged case into `OUT/<case_id>` (replacing an older one) and read its result back."""
    _remove(out, case_id)
    staging_dir(out, case_id).rename(out / case_id)
    return read_case_json(out / case_id / "sins.json")


def discard(out: Path, case_id: str) -> None:
    """A case that failed: no staging left, and no older result that would contradict its error row."""
    prepare(out, case_id)
    _remove(out, case_id)


def cleanup_staging(out: Path) -> None:
    """Remove the staging folders when nothing is left in them (another part may still be running)."""
    for sub in ("new", "old", ""):
        with contextlib.suppress(OSError):
            (out / STAGING / sub).rmdir()


# ----------------------------------------------------------------------------- across cases
def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def cases_csv_text(records: Sequence[CaseRecord]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CASES_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for rec in records:
        s = rec.result.summary if rec.result is not None else None
        writer.writerow(
            {
                "case_id": rec.case_id,
                "status": rec.status,
                "error": _one_line(rec.error),
                "max_total": "" if s is None or s.max_total is None else s.max_total,
                "max_level": "" if s is None or s.max_level is None else s.max_level,
                "category": "" if s is None or s.category is None else s.category,
                "lesion_levels": "" if s is None else ";".join(s.lesion_levels),
                "seconds": f"{rec.seconds:.2f}",
                "input": rec.input,
            }
        )
    return buf.getvalue()


def summary_names(num_parts: int | None, part_id: int | None) -> tuple[str, str, str]:
    """File names of cases.csv, levels.csv and run.json (one set per part when the run is split)."""
    if num_parts is None:
        return "cases.csv", "levels.csv", "run.json"
    tag = f"part-{part_id}-of-{num_parts}"
    return f"cases.{tag}.csv", f"levels.{tag}.csv", f"run.{tag}.json"


def write_summaries(out: Path, records: Sequence[CaseRecord], run_info: dict, names: tuple[str, str, str]) -> None:
    """Write cases.csv, levels.csv (every level of every finished case) and run.json, each atomically."""
    ordered = sorted(records, key=lambda r: r.case_id)
    write_text_atomic(cases_csv_text(ordered), out / names[0])
    write_text_atomic(levels_csv_text([r.result for r in ordered if r.result is not None]), out / names[1])
    write_json_atomic(run_info, out / names[2])

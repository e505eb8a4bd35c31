"""The cases of a batch: found from paths, globs and folders, or read from a manifest CSV; checked
(unique, usable ids) and split into parts, all before anything runs.

Rules for inputs: a file is one case; a folder that directly holds image files (.nii, .nii.gz, .nrrd,
.nhdr, .mha, .mhd) is a folder of cases, one per file; any other folder is one case (a DICOM study or
series, searched recursively by the reader; a folder without CT becomes an error row).
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..analyze import case_id_from_path
from ..clinical import ClinicalInfo, case_clinical, merge_clinical, read_clinical_csv, read_csv_rows
from ..errors import InputError
from ..io.readers import SUPPORTED_SUFFIXES
from ..spine.labels import LABEL_FORMATS

MANIFEST_REQUIRED: tuple[str, ...] = ("case_id", "path")
MANIFEST_OPTIONAL: tuple[str, ...] = (
    "labels",
    "lesions",
    "label_format",
    "pain",
    "location",
    "lowest_level",
    "level_offset",
)
_CLINICAL_COLUMNS = ("pain", "location", "lowest_level", "level_offset")
_SAFE_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
#: Case ids may not take the names of the batch's own files (cases.csv, levels.csv, run.json, parts).
_RESERVED_SUFFIXES = (".csv", ".json")


@dataclass(frozen=True)
class CaseTask:
    """One case to score: absolute paths, and the clinician's values when any are given for it."""

    case_id: str
    ct: str
    labels: str | None = None
    lesions: str | None = None
    label_format: str = "opensins"
    clinical: ClinicalInfo | None = None  # from the clinician CSV and/or the manifest
    clinical_csv: str | None = None  # the clinician CSV, when it has no row for the case (analyze notes it)
    origin: str = ""  # where the case came from, for messages: "manifest.csv row 3" or the input path

    @property
    def needs_model(self) -> bool:
        return self.labels is None


def _is_image(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and any(name.endswith(s) for s in SUPPORTED_SUFFIXES)


def _expand(pattern: str) -> list[Path]:
    if any(c in pattern for c in "*?["):
        matches = sorted(glob.glob(pattern, recursive=True))
        if not matches:
            raise InputError(f"{pattern}: no file or folder matches")
        return [Path(m) for m in matches]
    return [Path(pattern)]


def _cases_of(path: Path) -> list[Path]:
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if _is_image(p))
        if images:
            return images
    return [path]  # a file, a DICOM folder, or something missing: loading it will tell


def discover_cases(inputs: Sequence[str | Path]) -> list[CaseTask]:
    """Cases from command-line inputs (paths, globs, folders), ids from file or folder names."""
    tasks = []
    for raw in inputs:
        for path in _expand(str(raw)):
            for case_path in _cases_of(path):
                full = os.path.normpath(case_path.expanduser().absolute())
                tasks.append(CaseTask(case_id_from_path(full), full, origin=str(case_path)))
    if not tasks:
        raise InputError("no input given: name files, folders or globs, or a --manifest")
    return tasks


def check_case_id(case_id: str, where: str) -> str:
    """A case id usable as a folder name that cannot collide with the batch's own files."""
    if not _SAFE_ID.fullmatch(case_id) or case_id.lower().endswith(_RESERVED_SUFFIXES):
        raise InputError(
            f"{where}: case id {case_id!r} is not usable as a folder name: use letters, digits, '.', '_' and '-', "
            "not starting with '.' and not ending in .csv or .json"
        )
    return case_id


def _resolve(value: str, base: Path) -> str:
    path = Path(value).expanduser()
    return os.path.normpath(path if path.is_absolute() else base / path)


def read_manifest(path: str | Path) -> list[CaseTask]:
    """Cases from a manifest CSV: `case_id, path` and optional label-map and clinician columns.

    Relative paths resolve against the manifest's folder; a blank case_id is taken from the path.
    """
    path = Path(path)
    rows = read_csv_rows(path, "manifest")
    if not rows:
        raise InputError(f"{path}: manifest is empty; expected a header {', '.join(MANIFEST_REQUIRED)}")
    (header_line, header), data = rows[0], rows[1:]
    columns = [c.strip().lower() for c in header]
    known = MANIFEST_REQUIRED + MANIFEST_OPTIONAL
    for col in columns:
        if col and col not in known:
            raise InputError(f"{path} row {header_line}: unknown column {col!r}; known: {', '.join(known)}")
        if col and columns.count(col) > 1:
            raise InputError(f"{path} row {header_line}: column {col!r} appears twice")
    missing = [c for c in MANIFEST_REQUIRED if c not in columns]
    if missing:
        raise InputError(f"{path}: header lacks column {', '.join(missing)}; required: {', '.join(MANIFEST_REQUIRED)}")
    if not data:
        raise InputError(f"{path}: manifest has no case rows")
    base = path.absolute().parent
    tasks = []
    for line, cells in data:
        where = f"{path.name} row {line}"
        if len(cells) > len(columns):
            raise InputError(f"{where}: {len(cells)} fields but the header has {len(columns)} columns")
        row = {col: cell.strip() for col, cell in zip(columns, cells, strict=False) if col}
        if not row.get("path"):
            raise InputError(f"{where}: path is empty")
        ct = _resolve(row["path"], base)
        case_id = check_case_id(row.get("case_id") or case_id_from_path(ct), where)
        fmt = (row.get("label_format") or "opensins").lower()
        if fmt not in LABEL_FORMATS:
            raise InputError(f"{where}: unknown label_format {fmt!r}; expected one of {', '.join(LABEL_FORMATS)}")
        labels = _resolve(row["labels"], base) if row.get("labels") else None
        lesions = _resolve(row["lesions"], base) if row.get("lesions") else None
        if lesions and not labels:
            raise InputError(f"{where}: lesions given without labels (the network finds lesions itself)")
        clinical = case_clinical(case_id, where, **{c: row.get(c) or None for c in _CLINICAL_COLUMNS})
        tasks.append(CaseTask(case_id, ct, labels, lesions, fmt, clinical, origin=where))
    return tasks


def check_unique(tasks: Sequence[CaseTask]) -> None:
    """Duplicate case ids are an error (their outputs would overwrite each other)."""
    seen: dict[str, CaseTask] = {}
    for task in tasks:
        check_case_id(task.case_id, task.origin or task.ct)
        if task.case_id in seen:
            first = seen[task.case_id]
            raise InputError(
                f"duplicate case id {task.case_id!r}: {first.origin or first.ct} and {task.origin or task.ct} "
                "(give each case its own id, e.g. with a manifest)"
            )
        seen[task.case_id] = task


def with_clinical(tasks: Sequence[CaseTask], clinical_csv: str | Path | None) -> list[CaseTask]:
    """Merge the clinician CSV into the cases (a value given by both it and the manifest must agree)."""
    if clinical_csv is None:
        return list(tasks)
    table = read_clinical_csv(clinical_csv)
    csv_path = str(Path(clinical_csv).absolute())
    out = []
    for task in tasks:
        info = merge_clinical(table.get(task.case_id), task.clinical, task.origin or task.case_id)
        out.append(
            CaseTask(**{**task.__dict__, "clinical": info, "clinical_csv": None if info is not None else csv_path})
        )
    return out


def select_part(tasks: Sequence[CaseTask], num_parts: int | None, part_id: int | None) -> list[CaseTask]:
    """The cases sorted by id; with `num_parts` K and `part_id` I (0 <= I < K), every K-th case from the
    I-th: each case falls in exactly one part, whatever order the inputs came in."""
    ordered = sorted(tasks, key=lambda t: t.case_id)
    if num_parts is None and part_id is None:
        return ordered
    if num_parts is None or part_id is None:
        raise InputError("--num-parts and --part-id go together")
    if num_parts < 1:
        raise InputError("--num-parts must be at least 1")
    if not 0 <= part_id < num_parts:
        raise InputError(f"--part-id must be from 0 to {num_parts - 1} (parts are numbered from 0)")
    return ordered[part_id::num_parts]

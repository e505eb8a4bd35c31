"""Research validation against manual SINS (`sins validate`, `sins calibrate`; issue #7).

    result = validate("run/levels.csv", "manual.csv")        # or a run folder / a phantom folder
    write_validation(result, "validation/")                 # validation.json, validation.html

Modules, one job each: `records` (typed rows), `read_auto` / `read_manual` (files, checked row by
row), `phantom_truth` (phantom truth as the manual side), `matching` (pairs, unmatched, unscored),
`estimates` (intervals, case bootstrap), `agreement` (kappa, ICC, Bland-Altman, thresholds),
`comparison` (tool vs one reference), `raters` (among raters), `published` (the human bar),
`report_json` / `report_html` / `plots` (outputs), `run` (the API), `calibrate` (threshold search).
"""

from __future__ import annotations

from .phantom_truth import manual_from_truth_dir, write_manual_csv
from .read_auto import read_auto_levels
from .read_manual import read_manual, read_manual_csv
from .run import ValidationResult, ValidationSettings, validate, validate_rows, write_validation

__all__ = [
    "ValidationResult",
    "ValidationSettings",
    "manual_from_truth_dir",
    "read_auto_levels",
    "read_manual",
    "read_manual_csv",
    "validate",
    "validate_rows",
    "write_manual_csv",
    "write_validation",
]

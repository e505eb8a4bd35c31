"""The `validation.json` document."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from .published import AUTOMATED_BEST, HUMAN_BAR
from .run import ValidationResult


def _clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if not math.isfinite(obj) else round(obj, 4) + 0.0
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def validation_to_dict(result: ValidationResult) -> dict:
    """Statistics, every unmatched and unscored row, and the published figures to read them against."""
    d = asdict(result)
    d["what"] = "agreement of OpenSINS with manual SINS (sins validate)"
    d["confusion_matrices"] = "rows: reference (manual), columns: tool; differences: tool - reference"
    d["primary"] = result.primary.reference
    d["published"] = {
        "human_bar": [asdict(f) for f in HUMAN_BAR],
        "automated_best": [asdict(f) for f in AUTOMATED_BEST],
    }
    order = ["what", "software_version", "config_sha256", "auto_source", "manual_source", "n_boot", "seed"]
    return _clean({**{k: d.pop(k) for k in order}, **d})

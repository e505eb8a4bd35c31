"""Measure a real scan's vertebra label map (VerSe / TotalSegmentator ids) without a CT.

Used by the real-data tests and `bench/measure_real.py`: the same stages as `sins analyze --labels`,
on a label map alone (VerSe samples ship masks without the image).
"""

from __future__ import annotations

from pathlib import Path

from ..analyze import analyze_labels
from ..config import SinsConfig, load_sins_config
from ..io import load_label_map
from ..schema import CaseResult, InputInfo
from ..volume import Volume, to_canonical
from .labels import labels_from_ids


def measure_label_map(
    path: str | Path, fmt: str, cfg: SinsConfig | None = None, reference: Volume | None = None
) -> CaseResult:
    """Levels and measurements of a VerSe / TotalSegmentator vertebra map (on `reference`'s grid if given)."""
    cfg = cfg or load_sins_config()
    vol = load_label_map(path, reference)
    can = to_canonical(vol)
    labels = labels_from_ids(can, fmt, None, cfg)
    info = InputInfo(vol.shape, vol.spacing, vol.orientation, Path(path).name)
    return analyze_labels(labels, cfg, Path(path).parent.name, info).case

"""`sins calibrate`: the SINS thresholds that best reproduce a site's manual scores, cross-validated by case.

The tool's levels.csv carries every measurement, so each matched level is re-scored under candidate
thresholds with the pure item scorers of `pipeline.scoring` (no image is read again). Each threshold
moves one item only, so each is searched on its own item: collapse onset (collapse), translation mm
and deformity angle together (alignment: translation outranks deformity), mixed-lesion fraction
(bone lesion), minimum posterolateral side volume (posterolateral). The objective is the number of
levels whose item equals the manual one. A threshold stays where it is when no candidate does
better; otherwise the middle of the best candidates is taken.

The minimum lesion volume decides which levels are lesion levels at all; levels.csv does not carry
the lesion volume, so it cannot be re-applied here and is not calibrated (reported as such).

Honesty: the thresholds are fitted on k-1 folds of cases and scored on the held-out fold; the
report pools the held-out levels before (the current configuration) and after (the fitted one).
The overlay written at the end is fitted on all cases.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from .. import __version__
from ..config import SinsConfig, load_sins_config
from ..errors import InputError
from ..schema import Measurements, write_json_atomic, write_text_atomic
from ..scoring import alignment_points, bone_lesion_points, collapse_points, lesion_type, posterolateral_points
from .comparison import LevelComparison, compare_levels
from .matching import Pair, consensus, raters_of
from .read_auto import read_auto_levels
from .read_manual import read_manual
from .records import IMAGING_ITEMS, AutoLevel, ManualLevel, Points
from .report_json import _clean


def _steps(start: float, stop: float, step: float) -> tuple[float, ...]:
    n = round((stop - start) / step)
    return tuple(round(start + i * step, 6) for i in range(n + 1))


@dataclass(frozen=True)
class Thresholds:
    """The calibrated thresholds (configs/sins.yaml keys in the comments)."""

    onset_fraction: float  # collapse.onset_fraction
    translation_mm: float  # alignment.translation_mm
    deformity_deg: float  # alignment.deformity_deg
    mixed_minor_fraction: float  # lesion.mixed_minor_fraction
    min_side_volume_ml: float  # posterolateral.min_side_volume_ml

    @staticmethod
    def of(cfg: SinsConfig) -> Thresholds:
        return Thresholds(
            cfg.collapse.onset_fraction,
            cfg.alignment.translation_mm,
            cfg.alignment.deformity_deg,
            cfg.lesion.mixed_minor_fraction,
            cfg.posterolateral.min_side_volume_ml,
        )

    def apply(self, cfg: SinsConfig) -> SinsConfig:
        r = dataclasses.replace
        return r(
            cfg,
            collapse=r(cfg.collapse, onset_fraction=self.onset_fraction),
            alignment=r(cfg.alignment, translation_mm=self.translation_mm, deformity_deg=self.deformity_deg),
            lesion=r(cfg.lesion, mixed_minor_fraction=self.mixed_minor_fraction),
            posterolateral=r(cfg.posterolateral, min_side_volume_ml=self.min_side_volume_ml),
        )

    def overlay(self) -> dict:
        """The overlay mapping `load_sins_config` accepts."""
        return {
            "collapse": {"onset_fraction": self.onset_fraction},
            "alignment": {"translation_mm": self.translation_mm, "deformity_deg": self.deformity_deg},
            "lesion": {"mixed_minor_fraction": self.mixed_minor_fraction},
            "posterolateral": {"min_side_volume_ml": self.min_side_volume_ml},
        }


@dataclass(frozen=True)
class CalibrationGrid:
    """Candidate values searched for each threshold."""

    onset_fraction: tuple[float, ...] = _steps(0.10, 0.40, 0.025)
    translation_mm: tuple[float, ...] = _steps(2.0, 6.0, 0.5)
    deformity_deg: tuple[float, ...] = _steps(5.0, 20.0, 1.0)
    mixed_minor_fraction: tuple[float, ...] = _steps(0.05, 0.45, 0.05)
    min_side_volume_ml: tuple[float, ...] = _steps(0.02, 0.30, 0.02)


@dataclass(frozen=True)
class Level:
    """A matched level: the tool's measurements and points, and the manual points."""

    case_id: str
    level: str
    auto: AutoLevel
    manual: Points


@dataclass(frozen=True)
class Fold:
    fold: int
    test_cases: tuple[str, ...]
    n_train_levels: int
    n_test_levels: int
    fitted: Thresholds


@dataclass(frozen=True)
class CalibrationResult:
    reference: str
    n_levels: int
    n_cases: int
    n_unmatched_manual: int
    base: Thresholds
    fitted: Thresholds
    folds: tuple[Fold, ...]
    held_out_before: LevelComparison
    held_out_after: LevelComparison
    not_calibrated: tuple[str, ...] = (
        "lesion.min_volume_ml: levels.csv carries no lesion volume, so a level's lesion status cannot be re-decided",
    )


# ----------------------------------------------------------------------------- re-scoring
def item_points(m: Measurements, item: str, cfg: SinsConfig) -> int | None:
    """One imaging item of a level from its measurements under `cfg`."""
    if item == "bone_lesion":
        return bone_lesion_points(lesion_type(m.lytic_fraction, m.blastic_fraction, cfg))
    if item == "alignment":
        return alignment_points(m.translation_ap_mm, m.translation_lr_mm, m.kyphosis_deg, m.scoliosis_deg, cfg)
    if item == "collapse":
        return collapse_points(m.collapse_fraction, m.body_involvement, cfg)
    if item == "posterolateral":
        return posterolateral_points(m.posterolateral_left, m.posterolateral_right, cfg)
    raise ValueError(f"{item!r} is not an imaging item")


def rescore(a: AutoLevel, cfg: SinsConfig) -> Points:
    """The tool's points of one level under `cfg` (location and pain kept as the tool gave them)."""
    assert a.sins is not None
    items = {
        "location": a.sins.location,
        "pain": a.sins.pain,
        **{item: item_points(a.measurements, item, cfg) for item in IMAGING_ITEMS},
    }
    total = None if any(v is None for v in items.values()) else sum(v or 0 for v in items.values())
    return Points(**items, total=total)


def _agreements(levels: Sequence[Level], item: str, cfgs: Sequence[SinsConfig]) -> np.ndarray:
    """Levels whose `item` equals the manual one, for each candidate configuration."""
    scored = [(lv.auto.measurements, lv.manual.item(item)) for lv in levels if lv.manual.item(item) is not None]
    return np.array([sum(item_points(m, item, cfg) == ref for m, ref in scored) for cfg in cfgs])


def _middle_best(scores: np.ndarray, candidates: Sequence[tuple[float, ...]]) -> tuple[float, ...]:
    """Among the best-scoring candidates, the one nearest (in grid steps) to their per-axis median."""
    best = [i for i in range(len(candidates)) if scores[i] == scores.max()]
    points = np.array([candidates[i] for i in best], dtype=float)
    spread = np.array(candidates, dtype=float)
    step = np.array([np.diff(np.unique(col)).min() if len(np.unique(col)) > 1 else 1.0 for col in spread.T])
    centre = np.median(points, axis=0)
    nearest = int(np.argmin((((points - centre) / step) ** 2).sum(axis=1)))
    return candidates[best[nearest]]


def fit(levels: Sequence[Level], cfg: SinsConfig, grid: CalibrationGrid) -> Thresholds:
    """The thresholds that best reproduce the manual items of `levels`."""
    base = Thresholds.of(cfg)
    searches: list[tuple[str, tuple[str, ...], list[tuple[float, ...]]]] = [
        ("collapse", ("onset_fraction",), [(v,) for v in grid.onset_fraction if v < cfg.collapse.severe_fraction]),
        (
            "alignment",
            ("translation_mm", "deformity_deg"),
            [(t, d) for t in grid.translation_mm for d in grid.deformity_deg],
        ),
        ("bone_lesion", ("mixed_minor_fraction",), [(v,) for v in grid.mixed_minor_fraction]),
        ("posterolateral", ("min_side_volume_ml",), [(v,) for v in grid.min_side_volume_ml]),
    ]
    chosen: dict[str, float] = {}
    for item, names, candidates in searches:
        cfgs = [dataclasses.replace(base, **dict(zip(names, c, strict=True))).apply(cfg) for c in candidates]
        scores = _agreements(levels, item, cfgs)
        if _agreements(levels, item, [cfg])[0] >= scores.max():
            continue  # the current thresholds are as good as any: the data give no reason to move
        chosen.update(zip(names, _middle_best(scores, candidates), strict=True))
    return dataclasses.replace(base, **chosen)


# ----------------------------------------------------------------------------- cross-validation
def matched_levels(auto: Sequence[AutoLevel], manual: Sequence[ManualLevel]) -> tuple[list[Level], int]:
    """Levels scored by the tool and the reference; and how many manual rows found no tool lesion level."""
    by_key = {(a.case_id, a.level): a for a in auto if a.sins is not None}
    out = [
        Level(r.case_id, r.level, by_key[(r.case_id, r.level)], r.points)
        for r in manual
        if (r.case_id, r.level) in by_key
    ]
    return out, len(manual) - len(out)


def case_folds(cases: Sequence[str], k: int, seed: int) -> list[tuple[str, ...]]:
    """`k` folds of cases, shuffled with `seed`."""
    order = list(sorted(set(cases)))
    np.random.default_rng(seed).shuffle(order)
    return [tuple(sorted(order[i::k])) for i in range(k)]


def _pairs(levels: Sequence[Level], cfg: SinsConfig) -> tuple[Pair, ...]:
    return tuple(Pair(lv.case_id, lv.level, rescore(lv.auto, cfg), lv.manual) for lv in levels)


def calibrate_rows(
    auto: Sequence[AutoLevel],
    manual: Sequence[ManualLevel],
    cfg: SinsConfig,
    grid: CalibrationGrid = CalibrationGrid(),
    k: int = 5,
    seed: int = 0,
    n_boot: int = 1000,
) -> CalibrationResult:
    raters = raters_of(manual)
    reference = manual if len(raters) == 1 else consensus(manual)
    levels, n_unmatched = matched_levels(auto, reference)
    cases = sorted({lv.case_id for lv in levels})
    if len(cases) < 2:
        raise InputError(f"calibration needs matched lesion levels in 2 or more cases, found {len(cases)}")
    k = min(k, len(cases))
    folds = []
    before: list[Pair] = []
    after: list[Pair] = []
    for i, test_cases in enumerate(case_folds(cases, k, seed)):
        test = [lv for lv in levels if lv.case_id in test_cases]
        train = [lv for lv in levels if lv.case_id not in test_cases]
        fitted = fit(train, cfg, grid)
        folds.append(Fold(i, test_cases, len(train), len(test), fitted))
        before += _pairs(test, cfg)
        after += _pairs(test, fitted.apply(cfg))
    return CalibrationResult(
        reference=reference[0].rater,
        n_levels=len(levels),
        n_cases=len(cases),
        n_unmatched_manual=n_unmatched,
        base=Thresholds.of(cfg),
        fitted=fit(levels, cfg, grid),
        folds=tuple(folds),
        held_out_before=compare_levels(tuple(before), cfg, n_boot, seed),
        held_out_after=compare_levels(tuple(after), cfg, n_boot, seed),
    )


def calibrate(
    auto_dir: str | Path,
    manual: str | Path,
    config: str | Path | None = None,
    grid: CalibrationGrid = CalibrationGrid(),
    k: int = 5,
    seed: int = 0,
) -> CalibrationResult:
    """Fit thresholds to a run folder (per-case */levels.csv, or one levels.csv) and a manual CSV."""
    return calibrate_rows(read_auto_levels(auto_dir), read_manual(manual), load_sins_config(config), grid, k, seed)


# ----------------------------------------------------------------------------- outputs
def _headline(c: LevelComparison) -> dict:
    items = {a.item: a.exact_agreement.value for a in c.items if a.item in IMAGING_ITEMS}
    return {
        "levels": c.n_pairs,
        "exact_agreement": items,
        "total_mean_abs_diff": c.total.mean_abs_diff.value,
        "category_accuracy": c.categories.accuracy.value,
    }


def overlay_yaml(result: CalibrationResult) -> str:
    """The overlay file: only the calibrated keys, with provenance and the held-out check in comments."""
    before, after = _headline(result.held_out_before), _headline(result.held_out_after)

    def line(h: dict) -> str:
        items = ", ".join(f"{k} {v:.3f}" for k, v in h["exact_agreement"].items() if v is not None)
        return f"exact agreement {items}"

    header = [
        f"# Site calibration written by `sins calibrate` (OpenSINS {__version__}) against {result.reference}:",
        f"# {result.n_levels} levels in {result.n_cases} cases; {len(result.folds)}-fold cross-validation by case.",
        f"# held out, before: {line(before)}",
        f"# held out, after:  {line(after)}",
        "# Use: sins analyze CT --out DIR --config THIS_FILE",
    ]
    body = yaml.safe_dump(result.fitted.overlay(), sort_keys=False)
    return "\n".join(header) + "\n" + body


def calibration_to_dict(result: CalibrationResult) -> dict:
    d = dataclasses.asdict(result)
    d["held_out_summary"] = {
        "before": _headline(result.held_out_before),
        "after": _headline(result.held_out_after),
    }
    return _clean({"what": "threshold calibration (sins calibrate)", "software_version": __version__, **d})


def write_calibration(result: CalibrationResult, out: str | Path) -> tuple[Path, Path]:
    """The overlay YAML at `out` and its report beside it (`<stem>.calibration.json`)."""
    out = Path(out)
    if out.suffix not in (".yaml", ".yml"):
        raise InputError(f"--out {out}: give a .yaml file name")
    write_text_atomic(overlay_yaml(result), out)
    report = write_json_atomic(calibration_to_dict(result), out.with_name(f"{out.stem}.calibration.json"))
    return out, report

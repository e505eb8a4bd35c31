"""`sins validate`: read both sides, match, compare, and write validation.json / validation.html."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..config import SinsConfig, load_sins_config
from ..errors import InputError
from .comparison import Comparison, compare
from .matching import consensus, match, raters_of
from .raters import RaterAgreement, rater_agreement
from .read_auto import read_auto_levels
from .read_manual import read_manual
from .records import AutoLevel, ManualLevel


@dataclass(frozen=True)
class ValidationSettings:
    n_boot: int = 1000
    seed: int = 0
    config: str | Path | None = None  # overlay on configs/sins.yaml (category thresholds)

    def __post_init__(self) -> None:
        if self.n_boot < 100:
            raise InputError(f"bootstrap replicates: need 100 or more, got {self.n_boot}")
        if self.seed < 0:
            raise InputError(f"seed must be 0 or more, got {self.seed}")


@dataclass(frozen=True)
class ValidationResult:
    auto_source: str
    manual_source: str
    software_version: str
    config_sha256: str
    n_boot: int
    seed: int
    n_auto_rows: int
    n_auto_lesion_levels: int
    n_manual_rows: int
    raters: tuple[str, ...]
    #: the tool against each rater, then against the consensus when there are several
    comparisons: tuple[Comparison, ...]
    rater_agreement: RaterAgreement | None

    @property
    def primary(self) -> Comparison:
        """The comparison to headline: the consensus with several raters, the only rater otherwise."""
        return self.comparisons[-1]


def validate_rows(
    auto: Sequence[AutoLevel],
    manual: Sequence[ManualLevel],
    cfg: SinsConfig,
    settings: ValidationSettings = ValidationSettings(),
    auto_source: str = "",
    manual_source: str = "",
) -> ValidationResult:
    """Statistics of typed rows (no files)."""
    raters = raters_of(manual)
    comparisons = [compare(match(auto, manual, r), cfg, settings.n_boot, settings.seed) for r in raters]
    agreement = None
    if len(raters) > 1:
        pooled = consensus(manual)
        comparisons.append(compare(match(auto, pooled, pooled[0].rater), cfg, settings.n_boot, settings.seed))
        agreement = rater_agreement(manual, raters, settings.n_boot, settings.seed)
    return ValidationResult(
        auto_source=auto_source,
        manual_source=manual_source,
        software_version=__version__,
        config_sha256=cfg.hash,
        n_boot=settings.n_boot,
        seed=settings.seed,
        n_auto_rows=len(auto),
        n_auto_lesion_levels=sum(a.sins is not None for a in auto),
        n_manual_rows=len(manual),
        raters=raters,
        comparisons=tuple(comparisons),
        rater_agreement=agreement,
    )


def validate(
    auto: str | Path, manual: str | Path, settings: ValidationSettings = ValidationSettings()
) -> ValidationResult:
    """The tool's levels.csv (file or run folder) against a manual SINS CSV (or phantom truth folder)."""
    cfg = load_sins_config(settings.config)
    return validate_rows(read_auto_levels(auto), read_manual(manual), cfg, settings, str(auto), str(manual))


def write_validation(result: ValidationResult, out_dir: str | Path) -> tuple[Path, Path]:
    """validation.json and validation.html in `out_dir` (each written to a temporary file, then renamed)."""
    from ..schema import write_json_atomic, write_text_atomic
    from .report_html import validation_html
    from .report_json import validation_to_dict

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    json_path = write_json_atomic(validation_to_dict(result), out / "validation.json")
    html_path = write_text_atomic(validation_html(result), out / "validation.html")
    return json_path, html_path

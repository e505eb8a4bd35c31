"""The bundled sample cases (`sample_cases/`): one stable, one potentially unstable, one unstable.

Regenerate with ``python -m pipeline.phantom.samples sample_cases``; the tests check that the
committed truth equals what these specs give.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .spec import CollapseSpec, LesionSpec, PhantomSpec, TranslationSpec

_COMMON = dict(spacing=(2.5, 2.5, 2.5), inplane_fov_mm=(250.0, 210.0), noise_hu=18.0, blur_mm=0.6)

SAMPLE_SPECS: tuple[PhantomSpec, ...] = (
    # L3: small blastic body lesion, no pain: 2 + 0 + 0 + 0 + 0 + 0 = 2, stable
    PhantomSpec(
        seed=101,
        case_id="stable_L3_blastic",
        top="L1",
        bottom="L5",
        top_cut=0.5,
        orientation="LPS",
        lesions=(LesionSpec("L3", "body", 4.0, 1.0),),
        pain="none",
        **_COMMON,
    ),
    # L1: lytic body lesion with right pedicle involvement, occasional pain: 3 + 1 + 2 + 0 + 0 + 1 = 7
    PhantomSpec(
        seed=102,
        case_id="potentially_unstable_L1_lytic",
        top="T11",
        bottom="L3",
        top_cut=0.6,
        bottom_cut=0.5,
        orientation="RAS",
        lesions=(LesionSpec("L1", "body", 5.0, 0.0), LesionSpec("L1", "posterior_right", 0.6, 0.0)),
        pain="occasional",
        **_COMMON,
    ),
    # T12: lytic, crushed by 60 %, both sides, 6 mm anterolisthesis, mechanical pain: 3+3+2+4+3+3 = 18
    PhantomSpec(
        seed=103,
        case_id="unstable_T12_lytic_collapse",
        top="T10",
        bottom="L2",
        top_cut=0.5,
        bottom_cut=0.5,
        orientation="PIR",
        lesions=(
            LesionSpec("T12", "body", 2.0, 0.0),
            LesionSpec("T12", "posterior_left", 0.6, 0.0),
            LesionSpec("T12", "posterior_right", 0.6, 0.0),
        ),
        collapses=(CollapseSpec("T12", "crush", 0.6),),
        translations=(TranslationSpec("T12", 6.0, 0.0),),
        pain="mechanical",
        **_COMMON,
    ),
)


def write_samples(out: str | Path) -> list[Path]:
    from . import generate, write_case

    return [write_case(generate(spec), Path(out) / spec.case_id) for spec in SAMPLE_SPECS]


if __name__ == "__main__":
    for path in write_samples(sys.argv[1] if len(sys.argv) > 1 else "sample_cases"):
        print(path)

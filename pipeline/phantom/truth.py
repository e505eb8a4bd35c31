"""The exact answer for a phantom, in the `sins.json` schema, from its generating parameters.

Nothing here looks at the rendered image: heights come from the body shape functions, volumes from
the lesion shapes, translations from the placed frames and angles from the spec, then the DESIGN.md
rules and `configs/sins.yaml` turn them into points.
"""

from __future__ import annotations

import numpy as np

from .. import __version__
from ..anatomy import NO_REFERENCE_LEVELS
from ..config import SinsConfig
from ..schema import CaseResult, InputInfo, LevelResult, Measurements, Software, summarise
from ..scoring import lesion_type, near_threshold_flags, score_level
from .layout import Layout, in_view, is_complete
from .lesions import LesionShape
from .vertebra import Vertebra


def translation(upper: Vertebra, lower: Vertebra) -> tuple[float, float]:
    """(AP, LR) offset of `upper` relative to `lower` in the lower body's frame.

    AP: posterior-inferior corner of the upper body against the posterior-superior corner of the
    lower one (> 0 anterior). LR: inferior endplate centre against superior endplate centre (> 0
    towards the patient's left).
    """
    a = upper.frame.to_world(upper.corner_posterior(top=False))
    b = lower.frame.to_world(lower.corner_posterior(top=True))
    ci = upper.frame.to_world(upper.endplate_centre(top=False))
    cs = lower.frame.to_world(lower.endplate_centre(top=True))
    return float(np.dot(a - b, -lower.frame.v)), float(np.dot(ci - cs, lower.frame.u))


def truth_case(
    case_id: str,
    layout: Layout,
    lesions: list[LesionShape],
    cfg: SinsConfig,
    input_info: InputInfo,
    pain: str | None,
) -> CaseResult:
    """Truth levels for every vertebra whose body (or C1 ring) is in the field of view."""
    fmin, fmax = layout.fov_min, layout.fov_max
    verts = list(layout.vertebrae)
    view = [v for v in verts if in_view(v, fmin, fmax)]
    complete = {v.level: is_complete(v, fmin, fmax) for v in verts}
    by_level: dict[str, list[LesionShape]] = {}
    for les in lesions:
        by_level.setdefault(les.level, []).append(les)

    def has_lesion(level: str) -> bool:
        return sum(le.volume_ml for le in by_level.get(level, [])) >= cfg.lesion.min_volume_ml

    levels = []
    for v in view:
        i = verts.index(v)
        m = _measure(v, i, verts, complete, by_level.get(v.level, []), has_lesion, layout, cfg)
        lesion = has_lesion(v.level)
        sins = score_level(v.level, m, cfg, pain=pain) if lesion else None
        flags = near_threshold_flags(m, cfg) if lesion else ()
        levels.append(LevelResult(v.level, complete[v.level], lesion, m, sins, flags))
    software = Software(version=__version__, model=None, model_sha256=None, config_sha256=cfg.hash)
    return CaseResult(
        case_id=case_id,
        software=software,
        input=input_info,
        levels=tuple(levels),
        summary=summarise(levels),
        anchors=("phantom truth: levels known by construction",),
        notes=("truth computed from the generating parameters, not measured from the image",),
    )


def _measure(
    v: Vertebra,
    i: int,
    verts: list[Vertebra],
    complete: dict[str, bool],
    lesions: list[LesionShape],
    has_lesion,
    layout: Layout,
    cfg: SinsConfig,
) -> Measurements:
    lytic = sum(le.lytic_ml for le in lesions)
    blastic = sum(le.blastic_ml for le in lesions)
    total = lytic + blastic
    lyf = lytic / total if total > 0 else 0.0
    blf = blastic / total if total > 0 else 0.0
    left = sum(le.volume_ml for le in lesions if le.compartment == "posterior_left")
    right = sum(le.volume_ml for le in lesions if le.compartment == "posterior_right")
    heights = ref = collapse = involvement = None
    if complete[v.level] and v.has_body:
        heights = v.heights()
        neighbours = [
            float(np.median(verts[j].heights()))
            for j in range(max(0, i - 2), min(len(verts), i + 3))
            if j != i
            and complete[verts[j].level]
            and verts[j].has_body
            and verts[j].level not in NO_REFERENCE_LEVELS
            and not has_lesion(verts[j].level)
        ]
        ref = float(np.median(neighbours)) if neighbours else max(heights)
        collapse = 1.0 - min(heights) / ref
        body_lesion = sum(le.volume_ml for le in lesions if le.compartment == "body")
        involvement = body_lesion / v.body_volume_ml()
    t_ap = t_lr = None
    if i + 1 < len(verts) and complete[v.level] and complete[verts[i + 1].level]:
        t_ap, t_lr = translation(v, verts[i + 1])
    kyph = scol = None
    if 0 < i < len(verts) - 1 and all(complete[verts[j].level] for j in (i - 1, i, i + 1)):
        kyph = layout.kyphosis_departure[v.level]
        scol = layout.scoliosis_departure[v.level]
    return Measurements(
        height_anterior_mm=heights[0] if heights else None,
        height_middle_mm=heights[1] if heights else None,
        height_posterior_mm=heights[2] if heights else None,
        reference_height_mm=ref,
        collapse_fraction=collapse,
        body_involvement=involvement,
        lytic_fraction=lyf if total > 0 else None,
        blastic_fraction=blf if total > 0 else None,
        lesion_type=lesion_type(lyf, blf, cfg) if total > 0 else None,
        translation_ap_mm=t_ap,
        translation_lr_mm=t_lr,
        kyphosis_deg=kyph,
        scoliosis_deg=scol,
        posterolateral_left=left,
        posterolateral_right=right,
    )

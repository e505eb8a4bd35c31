"""Random phantom specifications: anatomy, acquisition and pathology drawn from a seed.

Pathology values are drawn away from the SINS thresholds (collapse 0.20/0.50, translation 3.5 mm,
deformity 10 deg), so that truth categories do not hinge on a voxel.
"""

from __future__ import annotations

import numpy as np

from ..anatomy import level_index
from .layout import level_list
from .spec import (
    COLLAPSE_KINDS,
    FIELDS_OF_VIEW,
    CollapseSpec,
    DeformitySpec,
    LesionSpec,
    PhantomSpec,
    TranslationSpec,
)
from .tables import level_dims

ORIENTATIONS = ("RAS", "LPS", "LAS", "RPI", "PIR", "ASL", "LIP")
_FOV_WEIGHTS = {"thoracolumbar": 0.35, "lumbar": 0.25, "thoracic": 0.2, "cervical": 0.1, "whole": 0.1}
_NO_LESION = {"C1", "C2", "S1"}


def random_spec(
    seed: int,
    fov: str | None = None,
    spacing: tuple[float, float, float] | None = None,
    orientation: str | None = None,
    n_lesion_levels: int | None = None,
    case_id: str | None = None,
) -> PhantomSpec:
    """A random but reproducible phantom; arguments fix what they name."""
    rng = np.random.default_rng([seed, 7919])
    fov = fov or str(rng.choice(list(_FOV_WEIGHTS), p=list(_FOV_WEIGHTS.values())))
    top, bottom = FIELDS_OF_VIEW[fov]
    thoracic = 13 if rng.random() < 0.05 else 12
    lumbar = 6 if (thoracic == 12 and rng.random() < 0.05) else 5
    spec0 = PhantomSpec(seed=seed, thoracic_count=thoracic, lumbar_count=lumbar)
    levels = level_list(spec0)
    top_cut = 1.0 if top == "C1" or rng.random() < 0.4 else float(rng.uniform(0.3, 0.7))
    bottom_cut = 1.0 if bottom == "S1" or rng.random() < 0.4 else float(rng.uniform(0.3, 0.7))
    if spacing is None:
        if rng.random() < 0.5:
            s = float(rng.uniform(1.5, 2.5))
            spacing = (s, s, s)
        else:
            s = float(rng.uniform(0.7, 1.0))
            spacing = (s, s, float(rng.uniform(2.0, 3.0)))
    orientation = orientation or str(rng.choice(ORIENTATIONS))
    rotation = (float(rng.uniform(-8, 8)), float(rng.uniform(-6, 6)), float(rng.uniform(-6, 6)))

    i_top, i_bot = levels.index(top), levels.index(bottom)
    first = i_top + (2 if top_cut < 1 else 1)
    last = i_bot - (2 if bottom_cut < 1 else 1)
    candidates = [lv for lv in levels[first : last + 1] if lv not in _NO_LESION]
    if n_lesion_levels is None:
        n_lesion_levels = int(rng.choice([0, 1, 1, 2, 2, 3]))
    chosen: list[str] = []
    for lv in rng.permutation(candidates):
        if len(chosen) >= n_lesion_levels:
            break
        if all(abs(levels.index(str(lv)) - levels.index(c)) >= 3 for c in chosen):
            chosen.append(str(lv))
    chosen.sort(key=level_index)

    lesions: list[LesionSpec] = []
    collapses: list[CollapseSpec] = []
    translations: list[TranslationSpec] = []
    deformities: list[DeformitySpec] = []
    for lv in chosen:
        kind = rng.choice(["lytic", "blastic", "mixed"], p=[0.45, 0.3, 0.25])
        share = {"lytic": 0.0, "blastic": 1.0, "mixed": float(rng.uniform(0.3, 0.7))}[str(kind)]
        d = level_dims(lv)
        body_ml = np.pi * d.width / 2 * d.depth / 2 * d.height / 1000.0
        collapsed = rng.random() < 0.35
        if collapsed:
            frac = float(rng.uniform(0.28, 0.42) if rng.random() < 0.5 else rng.uniform(0.58, 0.72))
            collapses.append(CollapseSpec(lv, str(rng.choice(COLLAPSE_KINDS)), frac))
        if not collapsed and rng.random() < 0.25:
            lesions.append(LesionSpec(lv, "body", 0.0, share, shape="slab", involvement=float(rng.uniform(0.56, 0.75))))
        elif rng.random() < 0.85:
            lesions.append(LesionSpec(lv, "body", float(rng.uniform(0.08, 0.3) * body_ml), share))
        ped_ml = np.pi * d.pedicle_width / 2 * d.pedicle_height / 2 * 10.0 / 1000.0
        sides = rng.choice(["none", "left", "right", "both"], p=[0.45, 0.2, 0.2, 0.15])
        for side in ("left", "right"):
            if sides in (side, "both"):
                lesions.append(LesionSpec(lv, f"posterior_{side}", float(rng.uniform(0.6, 0.9) * ped_ml), share))
        if not any(le.level == lv for le in lesions):
            lesions.append(LesionSpec(lv, "body", float(rng.uniform(0.1, 0.3) * body_ml), share))
        lone = len(chosen) == 1
        r = rng.random()
        if lone and r < 0.2:
            ap = float(rng.uniform(4.5, 8.0)) * float(rng.choice([-1, 1]))
            lr = float(rng.uniform(-1.5, 1.5))
            if rng.random() < 0.4:
                ap, lr = lr, ap
            translations.append(TranslationSpec(lv, ap, lr))
        elif lone and r < 0.4:
            angle = float(rng.uniform(14, 24))
            if rng.random() < 0.5:
                deformities.append(DeformitySpec(lv, angle, 0.0))
            else:
                deformities.append(DeformitySpec(lv, 0.0, angle * float(rng.choice([-1, 1]))))
    pain = rng.choice(["mechanical", "occasional", "none", "unknown"], p=[0.35, 0.25, 0.2, 0.2])
    return PhantomSpec(
        seed=seed,
        case_id=case_id or f"phantom_{seed:05d}",
        top=top,
        bottom=bottom,
        top_cut=top_cut,
        bottom_cut=bottom_cut,
        spacing=spacing,
        orientation=orientation,
        inplane_fov_mm=(float(rng.uniform(300, 400)), float(rng.uniform(240, 320)))
        if fov != "cervical"
        else (180.0, 180.0),
        rotation_deg=rotation,
        thoracic_count=thoracic,
        lumbar_count=lumbar,
        size_scale=float(rng.uniform(0.92, 1.08)),
        curve_scale=float(rng.uniform(0.6, 1.4)),
        noise_hu=float(rng.uniform(8, 35)),
        blur_mm=float(rng.uniform(0.4, 1.0)),
        contrast=bool(rng.random() < 0.3),
        lesions=tuple(lesions),
        collapses=tuple(collapses),
        translations=tuple(translations),
        deformities=tuple(deformities),
        habitus=float(rng.uniform(0.85, 1.2)),
        pain=None if pain == "unknown" else str(pain),
    )

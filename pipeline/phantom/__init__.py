"""Synthetic spine CT phantoms with exact ground truth (`sins phantom`).

spec = random_spec(seed=7)            # or PhantomSpec(...) by hand
case = generate(spec)                 # CT + label maps (Volumes) + truth (CaseResult)
write_case(case, "out/phantom_0007")  # ct.nii.gz, anatomy/instances/lesions.nii.gz, truth.json
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..config import SinsConfig, load_sins_config
from ..io.writers import save_volume
from ..schema import CaseResult, InputInfo, case_to_dict, write_json_atomic
from ..volume import Volume, reorient
from .layout import Layout, build_layout
from .lesions import LesionShape, place_lesion
from .random import random_spec
from .render import random_tissues, render
from .spec import (
    FIELDS_OF_VIEW,
    CollapseSpec,
    DeformitySpec,
    LesionSpec,
    PhantomSpec,
    TranslationSpec,
)
from .truth import truth_case

__all__ = [
    "FIELDS_OF_VIEW",
    "CollapseSpec",
    "DeformitySpec",
    "LesionSpec",
    "PhantomCase",
    "PhantomSpec",
    "TranslationSpec",
    "generate",
    "random_spec",
    "write_case",
]


@dataclass(frozen=True)
class PhantomCase:
    """A generated phantom: CT in HU, label maps on the same grid, and the truth."""

    spec: PhantomSpec
    ct: Volume
    anatomy: Volume
    instances: Volume
    lesions: Volume
    truth: CaseResult
    lesion_shapes: tuple[LesionShape, ...]
    layout: Layout


def generate(spec: PhantomSpec, cfg: SinsConfig | None = None) -> PhantomCase:
    """Build the phantom described by `spec` (deterministic for its seed)."""
    cfg = cfg or load_sins_config()
    rng = np.random.default_rng(spec.seed)
    layout = build_layout(spec, rng)
    lesions = [place_lesion(le, layout.by_level(le.level), rng) for le in spec.lesions]
    tissues = random_tissues(rng, spec.contrast, spec.tissue_jitter)
    canvas = render(layout, lesions, spec.spacing, tissues, rng, spec.noise_hu, spec.blur_mm, spec.habitus)
    ct_array = np.clip(np.rint(canvas.hu), -1024, 3071).astype(np.int16)
    source = f"{spec.case_id}"
    base = Volume(ct_array, canvas.affine, source=source)
    ct = reorient(base, spec.orientation)
    anatomy = reorient(base.with_array(canvas.anatomy), spec.orientation)
    instances = reorient(base.with_array(canvas.instance), spec.orientation)
    lesion_map = reorient(base.with_array(canvas.lesion), spec.orientation)
    info = InputInfo(shape=ct.shape, spacing_mm=ct.spacing, orientation=ct.orientation, source="ct.nii.gz")
    truth = truth_case(spec.case_id, layout, lesions, cfg, info, spec.pain)
    return PhantomCase(spec, ct, anatomy, instances, lesion_map, truth, tuple(lesions), layout)


def _spec_dict(spec: PhantomSpec) -> dict:
    return json.loads(json.dumps(asdict(spec)))


def write_case(case: PhantomCase, out_dir: str | Path) -> Path:
    """Write ct.nii.gz, anatomy.nii.gz, instances.nii.gz, lesions.nii.gz, truth.json (with the spec
    under "phantom") and, when the spec has a pain value, clinical.csv."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_volume(case.ct, out / "ct.nii.gz", np.int16)
    save_volume(case.anatomy, out / "anatomy.nii.gz", np.uint8)
    save_volume(case.instances, out / "instances.nii.gz", np.uint8)
    save_volume(case.lesions, out / "lesions.nii.gz", np.uint8)
    truth = case_to_dict(case.truth)
    truth["phantom"] = {
        "spec": _spec_dict(case.spec),
        "lesions": [
            {
                "level": le.level,
                "compartment": le.compartment,
                "volume_ml": round(le.volume_ml, 4),
                "blastic_share": le.blastic_share,
            }
            for le in case.lesion_shapes
        ],
        "label_maps": {
            "anatomy": "anatomy.nii.gz",
            "instances": "instances.nii.gz (VerSe ids)",
            "lesions": "lesions.nii.gz (1 lytic, 2 blastic)",
        },
    }
    write_json_atomic(truth, out / "truth.json")
    if case.spec.pain is not None:
        (out / "clinical.csv").write_text(f"case_id,level,pain,location\n{case.spec.case_id},,{case.spec.pain},\n")
    return out

"""One phantom drawn at 0.6 mm and 2 mm, and written RAS, LPS and PIR: same items, heights within one voxel.

python bench/measure_invariance.py --out bench/results/measure_invariance.json

The phantom (thoracolumbar, narrow field of view so that 0.6 mm fits in memory) carries a wedge
collapse with a lytic lesion and posterolateral involvement, and a translation above it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

from pipeline import __version__
from pipeline.analyze import analyze_labels
from pipeline.clinical import ClinicalInfo
from pipeline.config import load_sins_config
from pipeline.phantom import CollapseSpec, LesionSpec, PhantomSpec, TranslationSpec, generate
from pipeline.spine.labels import labels_from_opensins
from pipeline.volume import to_canonical

SPEC = PhantomSpec(
    seed=21,
    case_id="invariance",
    top="T11",
    bottom="L3",
    inplane_fov_mm=(150.0, 130.0),
    rotation_deg=(5.0, -4.0, 3.0),
    lesions=(LesionSpec("L1", "body", 4.0, 0.0), LesionSpec("L1", "posterior_right", 0.6, 0.0)),
    collapses=(CollapseSpec("L1", "wedge", 0.35),),
    translations=(TranslationSpec("T12", 5.0, 0.0),),
    pain="occasional",
)
HEIGHTS = ("height_anterior_mm", "height_middle_mm", "height_posterior_mm")
RUNS = [((0.6, 0.6, 0.6), "RAS"), ((2.0, 2.0, 2.0), "RAS"), ((2.0, 2.0, 2.0), "LPS"), ((2.0, 2.0, 2.0), "PIR")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/measure_invariance.json")
    args = ap.parse_args()
    cfg = load_sins_config()
    runs = {}
    for spacing, orientation in RUNS:
        spec = dataclasses.replace(SPEC, spacing=spacing, orientation=orientation)
        t0 = time.perf_counter()
        case = generate(spec, cfg)
        t_gen = time.perf_counter() - t0
        t0 = time.perf_counter()
        labels = labels_from_opensins(to_canonical(case.anatomy), to_canonical(case.lesions), cfg)
        info = ClinicalInfo(spec.case_id, {None: spec.pain})
        result = analyze_labels(labels, cfg, spec.case_id, case.truth.input, info).case
        key = f"{spacing[0]}mm_{orientation}"
        runs[key] = {
            "generate_s": round(t_gen, 1),
            "measure_s": round(time.perf_counter() - t0, 2),
            "levels": {
                lv.level: {
                    **{
                        h: None if getattr(lv.measurements, h) is None else round(getattr(lv.measurements, h), 2)
                        for h in HEIGHTS
                    },
                    "sins": None if lv.sins is None else dataclasses.asdict(lv.sins),
                }
                for lv in result.levels
            },
            "truth": {
                lv.level: {
                    h: None if getattr(lv.measurements, h) is None else round(getattr(lv.measurements, h), 2)
                    for h in HEIGHTS
                }
                for lv in case.truth.levels
            },
        }
        print(key, "done", flush=True)
    base = runs["2.0mm_RAS"]
    checks = {}
    for key, run in runs.items():
        same_levels = list(run["levels"]) == list(base["levels"])
        same_items = same_levels and all(
            run["levels"][lv]["sins"] == base["levels"][lv]["sins"] for lv in base["levels"]
        )
        worst = 0.0
        for lv, row in run["levels"].items():
            for h in HEIGHTS:
                a, b = row[h], base["levels"].get(lv, {}).get(h)
                if a is not None and b is not None:
                    worst = max(worst, abs(a - b))
        checks[key] = {
            "same_levels": same_levels,
            "same_items": same_items,
            "max_height_diff_vs_2mm_RAS_mm": round(worst, 2),
        }
    result = {
        "what": "resampling and re-orientation invariance of the measurement stage, issue #3",
        "command": "python bench/measure_invariance.py",
        "version": __version__,
        "config_sha256": cfg.hash,
        "machine": platform.platform(),
        "voxel_mm_coarsest": 2.0,
        "checks": checks,
        "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(checks, indent=1))


if __name__ == "__main__":
    main()

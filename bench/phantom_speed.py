"""Time phantom generation (median of N runs per configuration) and write JSON.

python bench/phantom_speed.py --out bench/results/phantom_speed.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

from pipeline import __version__
from pipeline.phantom import PhantomSpec, generate, random_spec

CONFIGS = {
    "thoracolumbar_2mm": lambda: PhantomSpec(seed=1, top="T9", bottom="L3", spacing=(2.0, 2.0, 2.0)),
    "thoracolumbar_2mm_random_pathology": lambda: random_spec(
        5, fov="thoracolumbar", spacing=(2.0, 2.0, 2.0), n_lesion_levels=2
    ),
    "lumbar_1mm": lambda: PhantomSpec(seed=2, top="T12", bottom="S1", spacing=(1.0, 1.0, 1.0)),
    "whole_spine_2mm": lambda: PhantomSpec(seed=3, top="C1", bottom="S1", spacing=(2.0, 2.0, 2.0)),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/phantom_speed.json")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    results = {}
    for name, make in CONFIGS.items():
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            case = generate(make())
            times.append(time.perf_counter() - t0)
        results[name] = {
            "median_s": round(statistics.median(times), 3),
            "runs_s": [round(t, 3) for t in times],
            "shape": list(case.ct.shape),
            "spacing_mm": list(case.ct.spacing),
        }
        print(name, results[name])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"software": __version__, "machine": platform.processor() or platform.machine(), "results": results},
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()

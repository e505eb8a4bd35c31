"""The expected-curve fit with and without a lesion level's deformity (`measurement.curve_fit_lesion_deformity`),
on phantom truth label maps (pure geometry, as `bench/measure_phantoms.py`).

Each phantom is drawn once and measured twice, with the key false and true; the JSON holds both summaries (the
items against truth, kyphosis errors) and every level whose alignment item or kyphosis changed by over 2 degrees.

    python bench/measure_curve_fit.py --n 60 --seed 9000 --out bench/results/measure_curve_fit_9000.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time

import measure_phantoms
from tqdm import tqdm

from pipeline import __version__
from pipeline.config import SinsConfig, load_sins_config
from pipeline.phantom import generate, random_spec


def with_key(cfg: SinsConfig, on: bool) -> SinsConfig:
    return dataclasses.replace(cfg, measurement=dataclasses.replace(cfg.measurement, curve_fit_lesion_deformity=on))


def changes(off: list[dict], on: list[dict]) -> list[dict]:
    out = []
    for a, b in zip(off, on, strict=True):
        for ra, rb in zip(a["levels"], b["levels"], strict=True):
            ia, ib = ra.get("items", {}).get("alignment"), rb.get("items", {}).get("alignment")
            ka, kb = ra.get("kyphosis_deg"), rb.get("kyphosis_deg")
            if ia != ib or (ka is not None and kb is not None and abs(ka - kb) > 2.0):
                out.append(
                    {
                        "case_id": a["case_id"],
                        "level": ra["level"],
                        "lesion": ra["truth_lesion"],
                        "alignment_off_on_truth": [ia and ia[0], ib and ib[0], ia and ia[1]],
                        "kyphosis_error_off_on": [
                            None if ka is None else round(ka, 2),
                            None if kb is None else round(kb, 2),
                        ],
                    }
                )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--seed", type=int, default=9000)
    ap.add_argument("--out", default="bench/results/measure_curve_fit.json")
    args = ap.parse_args()
    base = load_sins_config()
    cfgs = {"off": with_key(base, False), "on": with_key(base, True)}
    t0 = time.perf_counter()
    cases: dict[str, list[dict]] = {k: [] for k in cfgs}
    for seed in tqdm(range(args.seed, args.seed + args.n), unit="case"):
        case = generate(random_spec(seed), base)  # drawn once, measured with each setting
        for key, cfg in cfgs.items():
            cases[key].append(measure_phantoms.run_case(seed, cfg, case))
    doc = {
        "what": "expected-curve fit without / with the lesion levels' deformity, on phantom truth label maps",
        "command": f"python bench/measure_curve_fit.py --n {args.n} --seed {args.seed}",
        "version": __version__,
        "config_sha256": base.hash,
        "machine": platform.platform(),
        "wall_s": round(time.perf_counter() - t0, 1),
        "summary": {k: measure_phantoms.summarise(v) for k, v in cases.items()},
        "changes": changes(cases["off"], cases["on"]),
    }
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
    for key, s in doc["summary"].items():
        k = s["errors_lesion_levels"].get("kyphosis_deg", {})
        print(
            f"{key}: alignment {s['alignment_equal_fraction']}, category {s['category_equal_fraction']}, "
            f"lesion-level kyphosis within 3 deg {k.get('within_tolerance')}, max {k.get('max_abs_error')}"
        )
    print(f"{len(doc['changes'])} levels changed")


if __name__ == "__main__":
    main()

"""Synthetic lesions in real bone: does the shipped model find a lytic or blastic lesion put into a real
vertebral body, with the right type and no posterior side?

Each insertion is a sphere (radius R mm) clipped to one vertebral body of `ts_abdomen_3mm` (its
TotalSegmentator body map), centred on the body's centroid moved along the anteroposterior axis to a
share of the body's depth from its back (0 = posterior wall, 1 = anterior wall). Its voxels take the
lesion's HU with a little partial volume (Gaussian, 0.6 mm), as the training recipe inserts lesions
into real patches. The CT then goes through `sins analyze`'s own steps (`analyze_case` on the CT in
memory: segment, label maps, naming, measurement): the level is found when it is a lesion level, its
type is compared with the lesion's, and both posterior sides must stay under
`posterolateral.min_side_volume_ml` (the truth has none). Other lesion levels are false.

Caveat: `ts_abdomen_3mm` is a training scan (its bone, with random synthetic lesions, is in the
recipe's data), so this is the network on bone it has seen, not an independent test. The bodies are
osteopenic (median 124 HU at T12), so a lytic lesion of 30 HU stands only about 100 HU below its bone.

    python bench/real_insertion.py --out bench/results/real_insertion.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pipeline import __version__
from pipeline.analyze import AnalyzeRequest, CaseInputs, analyze_case
from pipeline.anatomy import TOTALSEG_IDS
from pipeline.config import load_sins_config
from pipeline.io import load_ct, load_label_map
from pipeline.model.card import DEFAULT_MODEL_DIR, load_model
from pipeline.model.real import sphere_in_body, with_lesion
from pipeline.volume import to_canonical

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
KINDS = {"lytic": 30.0, "blastic": 1000.0}  # HU of the inserted tissue
LEVELS = ("T12", "L1", "L2", "L3", "L4")
RADII_MM = (7.0, 10.0)
FROM_BACK = (0.15, 0.5, 0.8)
PARTIAL_VOLUME_MM = 0.6


def one(ct, ids, body_map, level, kind, radius, from_back, model, cfg, config) -> dict:
    """One insertion through `sins analyze`'s own steps (`analyze_case` on the CT in memory)."""
    vertebra = ids == TOTALSEG_IDS[level]
    body = vertebra & (body_map == 1)
    spacing = np.asarray(ct.spacing, float)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    lesion = sphere_in_body(body, spacing, radius, from_back)
    image = ct.with_array(with_lesion(ct.array, lesion, KINDS[kind], spacing, PARTIAL_VOLUME_MM))
    req = AnalyzeRequest(ct=ct.source, case_id="insertion", config=config)
    analysis = analyze_case(req, CaseInputs(image), model)
    found_map = analysis.labels.lesions > 0  # the canonical grid, as `ct`
    row = {
        "level": level,
        "kind": kind,
        "radius_mm": radius,
        "from_back": from_back,
        "inserted_ml": round(float(lesion.sum()) * voxel_ml, 3),
        "network_ml_in_lesion": round(float(np.count_nonzero(found_map & lesion)) * voxel_ml, 3),
        "network_ml_in_posterior_elements": round(float(np.count_nonzero(found_map & vertebra & ~body)) * voxel_ml, 3),
    }
    levels = {lv.level: lv for lv in analysis.case.levels}
    found = levels.get(level)
    row["found"] = bool(found and found.lesion)
    row["false_lesion_levels"] = [lv for lv, r in levels.items() if r.lesion and lv != level]
    if found is not None and found.lesion:
        m = found.measurements
        row["type"] = m.lesion_type
        row["type_equal"] = m.lesion_type == kind
        sides = [m.posterolateral_left or 0.0, m.posterolateral_right or 0.0]
        row["posterolateral_ml"] = [round(s, 3) for s in sides]
        row["false_side"] = max(sides) >= cfg.posterolateral.min_side_volume_ml
    return row


def summarise(rows: list[dict]) -> dict:
    def group(sub: list[dict]) -> dict:
        found = [r for r in sub if r["found"]]
        return {
            "insertions": len(sub),
            "found": len(found),
            "type_equal": sum(r["type_equal"] for r in found),
            "false_side": sum(r["false_side"] for r in found),
            "false_lesion_levels": sum(len(r["false_lesion_levels"]) for r in sub),
        }

    out = {"all": group(rows)}
    for kind in KINDS:
        for where in FROM_BACK:
            out[f"{kind}_from_back_{where:g}"] = group(
                [r for r in rows if r["kind"] == kind and r["from_back"] == where]
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    ap.add_argument("--config", default=None, help="configs/sins.yaml or an overlay")
    ap.add_argument("--out", default="bench/results/real_insertion.json")
    args = ap.parse_args()
    folder = REAL / "ts_abdomen_3mm"
    if not folder.is_dir():
        raise SystemExit(f"real data not present at {folder}")
    torch.set_num_threads(2)
    cfg = load_sins_config(args.config)
    model = load_model(args.model, torch.device("cpu"))
    ct = to_canonical(load_ct(folder / "ct.nii.gz"))
    ids = to_canonical(load_label_map(folder / "vertebrae_totalseg.nii.gz")).array
    body_map = to_canonical(load_label_map(folder / "vertebral_body_disc.nii.gz")).array
    settings = [(lv, k, r, b) for lv in LEVELS for k in KINDS for r in RADII_MM for b in FROM_BACK]
    t0 = time.perf_counter()
    rows = [one(ct, ids, body_map, *s, model, cfg, args.config) for s in tqdm(settings, desc="insertions", unit="case")]
    doc = {
        "command": "python bench/real_insertion.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items() if v),
        "version": __version__,
        "model_sha256": model.card.sha256,
        "config": cfg.source,
        "lesion_thresholds": dataclasses.asdict(cfg.lesion),
        "scan": "ts_abdomen_3mm",
        "kinds_hu": KINDS,
        "wall_s": round(time.perf_counter() - t0, 1),
        "machine": platform.platform(),
        "summary": summarise(rows),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1))
    print(json.dumps(doc["summary"], indent=1))


if __name__ == "__main__":
    main()

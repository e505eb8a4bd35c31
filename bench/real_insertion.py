"""Synthetic lesions in real bone: does the shipped model find a lytic or blastic lesion put into a real
vertebral body, with the right type and no posterior side?

Each insertion is a sphere (radius R mm) clipped to one vertebral body, centred on the body's centroid
moved along the anteroposterior axis to a share of the body's depth from its back (0 = posterior wall,
1 = anterior wall). Its voxels take the lesion's HU with a little partial volume (Gaussian, 0.6 mm). The
CT then goes through `sins analyze`'s own steps (`analyze_case` on the CT in memory: segment, label
maps, naming, measurement): the level is found when it is a lesion level, its type is compared with the
lesion's, and both posterior sides must stay under `posterolateral.min_side_volume_ml` (the truth has
none). Other lesion levels are false.

Two scans:
- `ts_abdomen_3mm`, T12-L4 (bodies from its TotalSegmentator body map). A training scan: its bone, with
  random synthetic lesions, is in the recipe's data, so this is the network on bone it has seen. The
  bodies are osteopenic (median 124 HU at T12): a 30 HU lytic lesion stands only about 100 HU below.
- `ts_dicom_thoracolumbar` (from its DICOM folder), T12: never used in training (held out). A 40 mm slab
  at 2 mm, so it is named with `--lowest-level T12` as a user would; its labels have whole vertebrae
  only, so the body is taken as T12's voxels more than 2 mm in front of the spinal cord (largest piece;
  median 199 HU).

    python bench/real_insertion.py --out bench/results/real_insertion.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from tqdm import tqdm

from pipeline import __version__
from pipeline.analyze import AnalyzeRequest, CaseInputs, analyze_case
from pipeline.anatomy import TOTALSEG_IDS
from pipeline.clinical import LevelOverride
from pipeline.config import load_sins_config
from pipeline.io import load_ct, load_label_map
from pipeline.model.card import DEFAULT_MODEL_DIR, load_model
from pipeline.model.real import sphere_in_body, with_lesion
from pipeline.volume import Volume, to_canonical

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
KINDS = {"lytic": 30.0, "blastic": 1000.0}  # HU of the inserted tissue
RADII_MM = (7.0, 10.0)
FROM_BACK = (0.15, 0.5, 0.8)
PARTIAL_VOLUME_MM = 0.6
SPINAL_CORD_TOTALSEG = 79  # TotalSegmentator's spinal_cord (ts_dicom_thoracolumbar's full label map)
BODY_IN_FRONT_OF_CORD_MM = 2.0


@dataclass(frozen=True)
class Scan:
    """A real scan with its vertebrae: canonical CT, a whole-vertebra mask and a body mask per level."""

    name: str
    ct: Volume
    vertebrae: dict[str, np.ndarray]
    bodies: dict[str, np.ndarray]
    held_out: bool
    lowest_level: str | None = None  # --lowest-level, for a slab without a naming anchor


def ts_abdomen() -> Scan:
    folder = REAL / "ts_abdomen_3mm"
    ct = to_canonical(load_ct(folder / "ct.nii.gz"))
    ids = to_canonical(load_label_map(folder / "vertebrae_totalseg.nii.gz")).array
    body_map = to_canonical(load_label_map(folder / "vertebral_body_disc.nii.gz")).array
    levels = ("T12", "L1", "L2", "L3", "L4")
    vertebrae = {lv: ids == TOTALSEG_IDS[lv] for lv in levels}
    return Scan("ts_abdomen_3mm", ct, vertebrae, {lv: v & (body_map == 1) for lv, v in vertebrae.items()}, False)


def ts_dicom() -> Scan:
    folder = REAL / "ts_dicom_thoracolumbar"
    raw = load_ct(folder / "dicom")
    ct = to_canonical(raw)
    ref = to_canonical(load_label_map(folder / "segmentation_totalseg.nii.gz", raw)).array
    vertebra = ref == TOTALSEG_IDS["T12"]
    cord = ref == SPINAL_CORD_TOTALSEG
    cord_yz = cord.any(axis=0)  # (y, z); +y anterior
    front = np.where(cord_yz.any(0), cord_yz.shape[0] - 1 - np.argmax(cord_yz[::-1], axis=0), -1)  # per slice
    y = np.arange(ct.shape[1])[None, :, None]
    body = vertebra & (y > front[None, None, :] + BODY_IN_FRONT_OF_CORD_MM / ct.spacing[1])
    pieces, n = ndimage.label(body)
    body = pieces == 1 + int(np.argmax(ndimage.sum(body, pieces, range(1, n + 1))))
    return Scan("ts_dicom_thoracolumbar", ct, {"T12": vertebra}, {"T12": body}, True, lowest_level="T12")


SCANS = {"ts_abdomen_3mm": ts_abdomen, "ts_dicom_thoracolumbar": ts_dicom}


def one(scan: Scan, level, kind, radius, from_back, model, cfg, config) -> dict:
    """One insertion through `sins analyze`'s own steps (`analyze_case` on the CT in memory)."""
    ct, vertebra, body = scan.ct, scan.vertebrae[level], scan.bodies[level]
    spacing = np.asarray(ct.spacing, float)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    lesion = sphere_in_body(body, spacing, radius, from_back)
    image = ct.with_array(with_lesion(ct.array, lesion, KINDS[kind], spacing, PARTIAL_VOLUME_MM))
    override = LevelOverride(lowest_level=scan.lowest_level) if scan.lowest_level else None
    req = AnalyzeRequest(ct=ct.source, case_id="insertion", config=config, override=override)
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
    ap.add_argument("--scans", nargs="+", choices=list(SCANS), default=list(SCANS))
    args = ap.parse_args()
    changed = [  # the options given other than their defaults, as typed
        f"--{k} {' '.join(v) if isinstance(v, list) else v}" for k, v in vars(args).items() if v != ap.get_default(k)
    ]
    cfg = load_sins_config(args.config)
    model = load_model(args.model, torch.device("cpu"))
    t0 = time.perf_counter()
    scans = {}
    for name in args.scans:
        if not (REAL / name).is_dir():
            raise SystemExit(f"real data not present at {REAL / name}")
        scan = SCANS[name]()
        settings = [(lv, k, r, b) for lv in scan.bodies for k in KINDS for r in RADII_MM for b in FROM_BACK]
        rows = [one(scan, *s, model, cfg, args.config) for s in tqdm(settings, desc=name, unit="case")]
        scans[name] = {
            "held_out": scan.held_out,
            "levels": list(scan.bodies),
            "lowest_level_override": scan.lowest_level,
            "body_median_hu": {lv: float(np.median(scan.ct.array[b])) for lv, b in scan.bodies.items()},
            "summary": summarise(rows),
            "rows": rows,
        }
    doc = {
        "command": " ".join(["python bench/real_insertion.py", *changed]),
        "version": __version__,
        "model_sha256": model.card.sha256,
        "config": cfg.source,
        "lesion_thresholds": dataclasses.asdict(cfg.lesion),
        "kinds_hu": KINDS,
        "wall_s": round(time.perf_counter() - t0, 1),
        "machine": platform.platform(),
        "scans": scans,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1))
    print(json.dumps({name: scan["summary"]["all"] for name, scan in scans.items()}, indent=1))


if __name__ == "__main__":
    main()

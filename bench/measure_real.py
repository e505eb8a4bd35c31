"""Measurement stage on the real label maps in ../shared/data/real (issue #3) -> JSON.

python bench/measure_real.py --out bench/results/measure_real.json

- ts_abdomen_3mm: level names from TotalSegmentator ids, completeness, our body/posterior split
  against TotalSegmentator's own body map (Dice per level), L1-L5 heights against its spine report.
- verse004_mask_only: names, alignment (translation, segmental angles), body centroids against the
  VerSe centroid file.
- tptbox_l3_crop: body / posterior split of L2-L4 against the subregion labels (Dice).
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np

from pipeline import __version__
from pipeline.anatomy import VERSE_IDS, Anatomy
from pipeline.config import load_sins_config
from pipeline.io import load_ct, load_label_map
from pipeline.spine.labels import labels_from_ids
from pipeline.spine.reference import measure_label_map
from pipeline.spine.vertebrae import extract_vertebrae
from pipeline.volume import to_canonical

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
HEIGHTS = ("anterior", "middle", "posterior")


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1))


def ts_abdomen(cfg) -> dict:
    folder = REAL / "ts_abdomen_3mm"
    ct = load_ct(folder / "ct.nii.gz")
    case = measure_label_map(folder / "vertebrae_totalseg.nii.gz", "totalseg", cfg, reference=ct)
    ref = json.loads((folder / "reference_spine_report.json").read_text())["results"]
    heights = {}
    diffs = []
    for lv in case.levels:
        if not lv.level.startswith("L"):
            continue
        row = {}
        for name in HEIGHTS:
            ours = getattr(lv.measurements, f"height_{name}_mm")
            theirs = ref[f"vertebrae_{lv.level}_height_{name}_mm"]
            row[name] = {"ours": round(ours, 2), "totalsegmentator": theirs, "diff": round(ours - theirs, 2)}
            diffs.append(abs(ours - theirs))
        row["collapse_fraction"] = round(lv.measurements.collapse_fraction, 3)
        heights[lv.level] = row
    # split against TotalSegmentator's body map
    labels = labels_from_ids(
        to_canonical(load_label_map(folder / "vertebrae_totalseg.nii.gz", ct)), "totalseg", None, cfg
    )
    body_ref = to_canonical(load_label_map(folder / "vertebral_body_disc.nii.gz", ct)).array == 1
    body = labels.anatomy == Anatomy.VERTEBRAL_BODY
    dice = {
        level: round(_dice(body & (labels.instances == i), body_ref & (labels.instances == i)), 3)
        for i, level in labels.names.items()
    }
    d = np.array(diffs)
    return {
        "levels": [lv.level for lv in case.levels],
        "complete": {lv.level: lv.complete for lv in case.levels},
        "lesion_levels": [lv.level for lv in case.levels if lv.lesion],
        "heights_vs_spine_report": heights,
        "height_abs_diff_mm": {
            "median": round(float(np.median(d)), 2),
            "within_3mm": round(float(np.mean(d <= 3.0)), 3),
            "n": int(d.size),
        },
        "body_dice_vs_totalseg_body_map": dice,
        "notes": list(case.notes),
    }


def verse004(cfg) -> dict:
    folder = REAL / "verse004_mask_only"
    path = folder / "sub-verse004_seg-vert_msk.nii.gz"
    case = measure_label_map(path, "verse", cfg)
    vol = load_label_map(path)
    verts = extract_vertebrae(labels_from_ids(to_canonical(vol), "verse", None, cfg), cfg)
    ctd = json.loads((folder / "sub-verse004_seg-subreg_ctd.json").read_text())
    ref = {c["label"]: np.array([c["X"], c["Y"], c["Z"]]) for c in ctd[1:]}
    inv = np.linalg.inv(vol.affine)
    dist = {}
    for v in verts:
        ijk = inv[:3, :3] @ v.world(v.body).mean(axis=0) + inv[:3, 3]
        dist[v.given_name] = round(float(np.linalg.norm((ijk - ref[VERSE_IDS[v.given_name]]) * vol.spacing)), 2)
    align = {
        lv.level: {
            k: None if getattr(lv.measurements, k) is None else round(getattr(lv.measurements, k), 2)
            for k in ("translation_ap_mm", "translation_lr_mm", "kyphosis_deg", "scoliosis_deg", "collapse_fraction")
        }
        for lv in case.levels
    }
    return {
        "levels": [lv.level for lv in case.levels],
        "alignment": align,
        "curve_scale": case.extra.get("curve_scale"),
        "body_centroid_distance_to_verse_ctd_mm": dist,
    }


def tptbox(cfg) -> dict:
    folder = REAL / "tptbox_l3_crop"
    ct = load_ct(folder / "ct.nii.gz")
    labels = labels_from_ids(to_canonical(load_label_map(folder / "vertebrae_verse.nii.gz", ct)), "verse", None, cfg)
    sub = to_canonical(load_label_map(folder / "subregions.nii.gz", ct)).array
    out = {}
    for i, level in labels.names.items():
        mine = labels.instances == i
        body = (labels.anatomy == Anatomy.VERTEBRAL_BODY) & mine
        post = (labels.anatomy == Anatomy.POSTERIOR_ELEMENTS) & mine
        out[level] = {
            "body_dice": round(_dice(body, np.isin(sub, (49, 50)) & mine), 3),
            "posterior_dice": round(_dice(post, np.isin(sub, range(41, 49)) & mine), 3),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/measure_real.json")
    args = ap.parse_args()
    if not REAL.is_dir():
        raise SystemExit(f"real data not found at {REAL}")
    cfg = load_sins_config()
    result = {
        "what": "measurement stage on real label maps, issue #3",
        "command": "python bench/measure_real.py",
        "version": __version__,
        "config_sha256": cfg.hash,
        "machine": platform.platform(),
        "ts_abdomen_3mm": ts_abdomen(cfg),
        "verse004_mask_only": verse004(cfg),
        "tptbox_l3_crop": tptbox(cfg),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

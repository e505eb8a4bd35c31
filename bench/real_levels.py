"""Vertebrae found and named on the real chest CTs of ../shared/data/real, against each scan's `levels.json`.

Each scan goes through `sins analyze`'s own steps (`analyze_case`: network, instances, names). A reference
vertebra (its body centroid from `levels.json`) is *right* when the label found in a 4 mm ball around its
centroid (the most frequent id there, background included) is its level's id in `segmentation.nii.gz`
(VerSe ids), and no other reference vertebra's ball has that id (two vertebrae in one label are a merge).
`alt_level` on a vertebra and `alt_shift` on a scan (every name one level lower) are read as the
annotations say: either reading is right, the better one per scan is counted. Figures over the complete
vertebrae (`complete: true`); the cut ones are listed too.

With `--fold-models`, each scan is measured with the model named for it (a model that did not train on
it); otherwise with `--model` (default: the shipped one). A sagittal and a coronal picture of the output
labels of every scan go to `--pictures`.

    python bench/real_levels.py --out bench/results/real_levels.json --pictures bench/results/real_levels
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from pipeline import __version__
from pipeline.analyze import AnalyzeRequest, analyze_case, segmentation_map
from pipeline.anatomy import ALL_LEVELS, VERSE_IDS, VERSE_NAMES
from pipeline.errors import OpenSINSError
from pipeline.model.card import DEFAULT_MODEL_DIR, load_model
from pipeline.model.network import resolve_device

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
CHEST = (
    "elastix_chest_2mm",
    "lidc0002_chest_1p25mm",
    "rider_chest_1p25mm",
    "tsaorta_chest_1p5mm",
    "lungdx_a0001_chest_5mm",
    "radiomics_lung1_5mm",
    "radiomics_lung2_5mm",
)
BALL_MM = 4.0


def shifted(level: str, by: int) -> str | None:
    """The level `by` places caudal of `level` in the standard column (None off its end)."""
    order = [lv for lv in ALL_LEVELS if lv not in ("T13", "L6")]
    k = order.index(level) + by
    return order[k] if 0 <= k < len(order) else None


def ball_label(seg: np.ndarray, affine: np.ndarray, centre_mm, radius_mm: float) -> int:
    """The most frequent id of `seg` within `radius_mm` of a world point (background included)."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    c = np.linalg.solve(affine[:3, :3], np.asarray(centre_mm, float) - affine[:3, 3])
    r = np.ceil(radius_mm / spacing).astype(int)
    lo = np.maximum(np.floor(c).astype(int) - r, 0)
    hi = np.minimum(np.ceil(c).astype(int) + r + 1, seg.shape)
    if np.any(hi <= lo):
        return 0
    grid = np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi, strict=True)], indexing="ij")
    d2 = sum(((g - ci) * s) ** 2 for g, ci, s in zip(grid, c, spacing, strict=True))
    vals = seg[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))][d2 <= radius_mm**2]
    return int(np.bincount(vals.ravel()).argmax()) if vals.size else 0


def score_reading(refs: list[dict], found: list[int], shift: int) -> list[dict]:
    """Per reference vertebra: expected names under a reading shifted by `shift`, found id, right or not."""
    counts = np.bincount([f for f in found if f > 0], minlength=64)
    rows = []
    for ref, fid in zip(refs, found, strict=True):
        names = [shifted(ref["level"], shift)]
        if ref.get("alt_level"):
            names.append(shifted(ref["alt_level"], shift))
        ok_ids = {VERSE_IDS[n] for n in names if n in VERSE_IDS}
        merged = fid > 0 and counts[fid] > 1
        rows.append(
            {
                "level": ref["level"],
                "expected": [n for n in names if n],
                "complete": bool(ref["complete"]),
                "found": VERSE_NAMES.get(fid) if fid else None,
                "merged": bool(merged),
                "right": bool(fid in ok_ids and not merged),
            }
        )
    return rows


def run_scan(name: str, model, pictures: Path | None) -> dict:
    folder = REAL / name
    levels = json.loads((folder / "levels.json").read_text())
    refs = levels["vertebrae"]
    t0 = time.perf_counter()
    try:
        analysis = analyze_case(AnalyzeRequest(ct=folder / "ct.nii.gz", case_id=name), model=model)
    except OpenSINSError as exc:
        rows = [
            {"level": r["level"], "complete": bool(r["complete"]), "found": None, "merged": False, "right": False}
            for r in refs
        ]
        return {"scan": name, "stopped": str(exc), "seconds": round(time.perf_counter() - t0, 1), "vertebrae": rows}
    seconds = time.perf_counter() - t0
    seg = segmentation_map(analysis)
    affine = analysis.labels.affine
    found = [ball_label(seg, affine, r["centroid_ras_mm"], BALL_MM) for r in refs]
    readings = [0, 1] if levels.get("alt_shift") else [0]
    best = max((score_reading(refs, found, s) for s in readings), key=lambda rows: sum(r["right"] for r in rows))
    complete = [r for r in best if r["complete"]]
    out = {
        "scan": name,
        "stopped": None,
        "seconds": round(seconds, 1),
        "complete_vertebrae": len(complete),
        "complete_right": sum(r["right"] for r in complete),
        "all_complete_right": all(r["right"] for r in complete),
        "merged": sum(r["merged"] for r in complete),
        "missed": sum(r["found"] is None for r in complete),
        "output_levels": list(analysis.instance_levels.values()),
        "anchors": list(analysis.case.anchors),
        "vertebrae": best,
    }
    if pictures is not None:
        from level_pictures import draw_levels

        pictures.mkdir(parents=True, exist_ok=True)
        draw_levels(analysis.ct, seg, affine, refs, best, pictures / f"{name}.png", title=name)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    ap.add_argument("--fold-models", help="JSON file: scan name -> model folder that did not train on it")
    ap.add_argument("--scans", nargs="*", default=list(CHEST))
    ap.add_argument("--out", default="bench/results/real_levels.json")
    ap.add_argument("--pictures", default=None, help="folder for a sagittal + coronal picture per scan")
    args = ap.parse_args()
    if not REAL.is_dir():
        raise SystemExit(f"no real data at {REAL}")
    device = resolve_device("cpu")
    fold_models = json.loads(Path(args.fold_models).read_text()) if args.fold_models else {}
    loaded: dict[str, object] = {}
    results = []
    for name in args.scans:
        mdir = fold_models.get(name, args.model)
        if mdir not in loaded:
            loaded[mdir] = load_model(mdir, device)
        res = run_scan(name, loaded[mdir], Path(args.pictures) if args.pictures else None)
        res["model"] = str(mdir)
        results.append(res)
        print(
            f"{name}: {res.get('complete_right', 0)}/{res.get('complete_vertebrae', '?')} right"
            + (f"  STOPPED: {res['stopped']}" if res["stopped"] else f"  ({res['seconds']} s)"),
            flush=True,
        )
    n = sum(r.get("complete_vertebrae", sum(v["complete"] for v in r["vertebrae"])) for r in results)
    right = sum(r.get("complete_right", 0) for r in results)
    summary = {
        "complete_vertebrae": n,
        "right": right,
        "right_share": round(right / max(n, 1), 3),
        "scans_all_right": sum(bool(r.get("all_complete_right")) for r in results),
        "scans": len(results),
        "stopped": sum(r["stopped"] is not None for r in results),
    }
    print(json.dumps(summary))
    out = {
        "version": __version__,
        "python": platform.python_version(),
        "ball_mm": BALL_MM,
        "summary": summary,
        "scans": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

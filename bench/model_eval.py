"""The shipped model on hold-out phantoms and real scans (issue #4) -> JSON.

python bench/model_eval.py --n 20 --seed 5000 --out bench/results/model_eval.json

Per phantom (seeds training never saw; training used 100000.., its own hold-out 900000..):
Dice of vertebral body and posterior elements on the input grid (lesion voxels counted with the bone
they replace, in the phantom's truth as in the pipeline's label maps), lesion levels found / missed /
false, lesion type, and `sins analyze` end to end (network -> measurement -> SINS) against truth.
Real scans: ts_abdomen_3mm (vertebra Dice per level against TotalSegmentator, names, lesions) and
ts_dicom_thoracolumbar from its DICOM folder (vertebrae found, named, completeness, lesions).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from pipeline import __version__
from pipeline.analyze import analyze_labels
from pipeline.anatomy import TOTALSEG_IDS, TOTALSEG_NAMES, Anatomy, level_index
from pipeline.clinical import ClinicalInfo, LevelOverride
from pipeline.config import load_sins_config
from pipeline.errors import CaseError
from pipeline.io import load_ct, load_label_map
from pipeline.model.card import DEFAULT_MODEL_DIR, load_model
from pipeline.model.infer import segment
from pipeline.phantom import generate, random_spec
from pipeline.schema import InputInfo
from pipeline.spine.labels import attach_lesions, labels_from_opensins
from pipeline.volume import to_canonical

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
ITEMS = ("location", "bone_lesion", "alignment", "collapse", "posterolateral")


def dice(a: np.ndarray, b: np.ndarray) -> float | None:
    n = int(a.sum() + b.sum())
    return None if n == 0 else float(2 * np.count_nonzero(a & b) / n)


def phantom_case(seed: int, model, cfg) -> dict:
    spec = random_spec(seed)
    case = generate(spec, cfg)
    ct = to_canonical(case.ct)
    t0 = time.perf_counter()
    seg = segment(ct, model, cfg.lesion)
    t_seg = time.perf_counter() - t0
    truth_an = to_canonical(case.anatomy).array  # a lesion voxel keeps its bone's label here
    ic = cfg.instances  # ... so the network's lesion voxels take theirs as the pipeline gives it
    net_an, _ = attach_lesions(seg.anatomy, seg.lesions, ct.spacing, ic.lesion_attach_mm, ic.body_outline_reach_mm)
    row = {
        "case_id": spec.case_id,
        "field": f"{spec.top}..{spec.bottom}",
        "spacing_mm": [round(s, 2) for s in spec.spacing],
        "segment_s": round(t_seg, 2),
        "dice_body": dice(net_an == Anatomy.VERTEBRAL_BODY, truth_an == Anatomy.VERTEBRAL_BODY),
        "dice_posterior": dice(net_an == Anatomy.POSTERIOR_ELEMENTS, truth_an == Anatomy.POSTERIOR_ELEMENTS),
        "dice_lesion": dice(seg.lesions > 0, to_canonical(case.lesions).array > 0),
    }
    try:
        labels = labels_from_opensins(ct.with_array(seg.anatomy), ct.with_array(seg.lesions), cfg)
        pain = {None: spec.pain} if spec.pain else {}
        result = analyze_labels(labels, cfg, spec.case_id, case.truth.input, ClinicalInfo(spec.case_id, pain)).case
    except Exception as e:  # a case the pipeline cannot process counts as a failure, with its reason
        row["error"] = f"{type(e).__name__}: {e}"
        return row
    truth = {lv.level: lv for lv in case.truth.levels}
    found = {lv.level: lv for lv in result.levels}
    row["names_equal"] = list(found) == list(truth)
    lesion_rows = []
    for level, t in truth.items():
        if not t.lesion:
            continue
        m = found.get(level)
        r = {"level": level, "found": bool(m and m.lesion)}
        r["volume_ml"] = round(sum(le.volume_ml for le in case.lesion_shapes if le.level == level), 3)
        if m is not None and m.sins is not None and t.sins is not None:
            r["type_equal"] = m.measurements.lesion_type == t.measurements.lesion_type
            r.update({f"{i}_equal": getattr(m.sins, i) == getattr(t.sins, i) for i in ITEMS})
            r["category_equal"] = m.sins.category == t.sins.category
        if m is not None:  # lesion volume (mL) in the posterior elements, left and right: truth and found
            r["posterolateral_ml"] = {
                "truth": [t.measurements.posterolateral_left, t.measurements.posterolateral_right],
                "found": [m.measurements.posterolateral_left, m.measurements.posterolateral_right],
            }
        lesion_rows.append(r)
    row["lesion_levels"] = lesion_rows
    row["false_lesion_levels"] = [lv for lv, m in found.items() if m.lesion and not (lv in truth and truth[lv].lesion)]
    return row


def reported_dice(scored, ref: np.ndarray) -> float | None:
    """Dice of the vertebrae the case reports (the named instances, after the instance rules have left
    out fragments and non-vertebrae) against all reference vertebrae. `dice_all_vertebrae` is the raw
    network mask's."""
    named = np.isin(scored.labels.instances, list(scored.instance_levels))
    return dice(named, np.isin(ref, list(TOTALSEG_IDS.values())))


def real_cases(model, cfg) -> dict:
    out: dict = {}
    folder = REAL / "ts_abdomen_3mm"
    ct = load_ct(folder / "ct.nii.gz")
    can = to_canonical(ct)
    seg = segment(can, model, cfg.lesion)
    ref = to_canonical(load_label_map(folder / "vertebrae_totalseg.nii.gz", ct)).array
    vertebra = np.isin(seg.anatomy, (Anatomy.VERTEBRAL_BODY, Anatomy.POSTERIOR_ELEMENTS)) | (seg.lesions > 0)
    out["ts_abdomen_3mm"] = {"dice_all_vertebrae": dice(vertebra, np.isin(ref, list(TOTALSEG_IDS.values())))}
    labels = labels_from_opensins(can.with_array(seg.anatomy), can.with_array(seg.lesions), cfg)
    try:
        scored = analyze_labels(labels, cfg, "ts_abdomen_3mm", InputInfo(ct.shape, ct.spacing, ct.orientation))
    except Exception as e:  # reported, not hidden
        out["ts_abdomen_3mm"]["error"] = f"{type(e).__name__}: {e}"
        scored = None
    per_level = {}
    if scored is not None:
        for inst, level in scored.instance_levels.items():
            if level in TOTALSEG_IDS:
                per_level[level] = dice(scored.labels.instances == inst, ref == TOTALSEG_IDS[level])
        out["ts_abdomen_3mm"]["dice_reported_vertebrae"] = reported_dice(scored, ref)
        out["ts_abdomen_3mm"].update(
            levels=[lv.level for lv in scored.case.levels],
            complete={lv.level: lv.complete for lv in scored.case.levels},
            lesion_levels=list(scored.case.summary.lesion_levels),
            dice_per_level=per_level,
            anchors=list(scored.case.anchors),
        )
    folder = REAL / "ts_dicom_thoracolumbar"
    ct = load_ct(folder / "dicom")
    can = to_canonical(ct)
    ref = to_canonical(load_label_map(folder / "segmentation_totalseg.nii.gz", ct)).array
    entry: dict = {}
    try:
        seg = segment(can, model, cfg.lesion)
        labels = labels_from_opensins(can.with_array(seg.anatomy), can.with_array(seg.lesions), cfg)
        vertebra = np.isin(seg.anatomy, (Anatomy.VERTEBRAL_BODY, Anatomy.POSTERIOR_ELEMENTS)) | (seg.lesions > 0)
        entry["dice_all_vertebrae"] = dice(vertebra, np.isin(ref, list(TOTALSEG_IDS.values())))
        info = InputInfo(ct.shape, ct.spacing, ct.orientation)
        try:
            scored = analyze_labels(labels, cfg, "ts_dicom", info)
        except CaseError as e:  # no anchor in a 40 mm slab: name from the lowest level, as a user would
            entry["automatic_naming"] = str(e)
            lowest = max((TOTALSEG_NAMES[i] for i in np.unique(ref) if i in TOTALSEG_NAMES), key=level_index)
            entry["override"] = f"--lowest-level {lowest}"
            scored = analyze_labels(labels, cfg, "ts_dicom", info, override=LevelOverride(lowest_level=lowest))
        entry["dice_reported_vertebrae"] = reported_dice(scored, ref)
        entry.update(
            levels=[lv.level for lv in scored.case.levels],
            reference_levels=sorted(
                (TOTALSEG_NAMES[i] for i in np.unique(ref) if i in TOTALSEG_NAMES), key=level_index
            ),
            complete={lv.level: lv.complete for lv in scored.case.levels},
            lesion_levels=list(scored.case.summary.lesion_levels),
            anchors=list(scored.case.anchors),
            dice_per_level={
                level: dice(scored.labels.instances == inst, ref == TOTALSEG_IDS[level])
                for inst, level in scored.instance_levels.items()
                if level in TOTALSEG_IDS
            },
        )
    except Exception as e:
        entry["error"] = f"{type(e).__name__}: {e}"
    out["ts_dicom_thoracolumbar"] = entry
    return out


def summarise(rows: list[dict]) -> dict:
    ok = [r for r in rows if "error" not in r]
    les = [x for r in ok for x in r.get("lesion_levels", [])]
    big = [x for x in les if x["volume_ml"] >= 0.5]  # the truth's lesion volume at that level
    scored = [x for x in les if "type_equal" in x]

    def frac(xs: list, key: str) -> float | None:
        return round(float(np.mean([x[key] for x in xs])), 3) if xs else None

    return {
        "cases": len(rows),
        "errors": [r["case_id"] + ": " + r["error"] for r in rows if "error" in r],
        "dice_body_mean": round(float(np.nanmean([r["dice_body"] or np.nan for r in rows])), 3),
        "dice_posterior_mean": round(float(np.nanmean([r["dice_posterior"] or np.nan for r in rows])), 3),
        "lesion_levels": len(les),
        "lesion_levels_found": sum(x["found"] for x in les),
        "lesion_levels_found_fraction_ge_0_5_ml": frac(big, "found"),
        "false_lesion_levels_per_case": round(
            sum(len(r.get("false_lesion_levels", [])) for r in ok) / max(len(ok), 1), 3
        ),
        "lesion_type_equal": frac(scored, "type_equal"),
        **{f"{i}_equal": frac(scored, f"{i}_equal") for i in ITEMS},
        "category_equal": frac(scored, "category_equal"),
        "names_equal_cases": sum(bool(r.get("names_equal")) for r in ok),
        "segment_s_median": round(float(np.median([r["segment_s"] for r in rows])), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--seed", type=int, default=5000)
    ap.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    ap.add_argument("--out", default="bench/results/model_eval.json")
    ap.add_argument("--write-card", action="store_true", help="store the figures as `metrics` in the model card")
    ap.add_argument("--config", help="an overlay of configs/sins.yaml (as `sins analyze --config`)")
    ap.add_argument("--no-real", action="store_true", help="phantoms only (a development set of seeds, say)")
    args = ap.parse_args()
    cfg = load_sins_config(args.config)
    model = load_model(args.model, torch.device("cpu"))
    rows = []
    for seed in range(args.seed, args.seed + args.n):
        rows.append(phantom_case(seed, model, cfg))
        r = rows[-1]
        print(
            r["case_id"], r["field"], "body", r["dice_body"], "pe", r["dice_posterior"], r.get("error", ""), flush=True
        )
    result = {
        "what": "shipped model on hold-out phantoms and real scans, issue #4",
        "command": f"python bench/model_eval.py --n {args.n} --seed {args.seed}"
        + (f" --config {args.config}" if args.config else ""),
        "version": __version__,
        "model": model.card.name,
        "model_sha256": model.card.sha256,
        "machine": platform.platform(),
        "summary": summarise(rows),
        "real": "not run (--no-real)"
        if args.no_real
        else (real_cases(model, cfg) if REAL.is_dir() else "real data absent"),
        "cases": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, default=str) + "\n")
    if args.write_card:  # the card's sha256 covers the weights only, so the metrics can be added afterwards
        card_path = Path(args.model) / "metadata.json"
        meta = json.loads(card_path.read_text())
        meta["metrics"] = json.loads(
            json.dumps({"command": result["command"], "phantom_holdout": result["summary"], "real": result["real"]},
                       default=str)
        )  # fmt: skip
        card_path.write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("summary", "real")}, indent=1, default=str))


if __name__ == "__main__":
    main()

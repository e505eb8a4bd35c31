"""The model stage of `sins analyze` (localise + segment, `pipeline.model.infer.segment`) on a
512x512x400 CT at 0.7x0.7x1.0 mm, on one device: the first (cold) call and the median of warm calls,
per sub-stage, with peak GPU memory; optionally the agreement of the device's labels with the CPU's
(fp16 autocast on CUDA against fp32 on the CPU). Issue #4's GPU target: the model stage <= 3 s.

python bench/model_stage_speed.py --device cuda --ct /tmp/ct512.nii.gz --repeats 5 --compare-cpu \
    --out bench/results/model_stage_cuda.json

The CT is the one of bench/analyze_speed.py (drawn, then kept at --ct, when it does not exist yet).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from pipeline import __version__
from pipeline.anatomy import Anatomy, Lesion
from pipeline.config import load_sins_config
from pipeline.io import load_ct
from pipeline.model import infer
from pipeline.model.card import DEFAULT_MODEL_DIR, load_model
from pipeline.model.network import resolve_device
from pipeline.volume import to_canonical

try:  # run as `python bench/model_stage_speed.py`
    from analyze_speed import ensure_ct
except ImportError:  # pragma: no cover - imported as bench.model_stage_speed
    from bench.analyze_speed import ensure_ct


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_segment(ct, model, lesion) -> tuple[infer.Segmentation, float]:
    _sync(model.device)
    t0 = time.perf_counter()
    seg = infer.segment(ct, model, lesion)
    _sync(model.device)
    return seg, time.perf_counter() - t0


def dice(a: np.ndarray, b: np.ndarray) -> float | None:
    total = int(a.sum()) + int(b.sum())
    return None if total == 0 else round(2.0 * int((a & b).sum()) / total, 4)


def agreement(dev: infer.Segmentation, cpu: infer.Segmentation) -> dict:
    """Per-class Dice of the device's maps against the CPU's, and the share of voxels that differ."""
    out: dict = {"crop_equal": dev.crop == cpu.crop}
    for name, ident in (("vertebral_body", Anatomy.VERTEBRAL_BODY), ("posterior_elements", Anatomy.POSTERIOR_ELEMENTS)):
        out[name] = dice(dev.anatomy == ident, cpu.anatomy == ident)
    for name, ident in (("lytic", Lesion.LYTIC), ("blastic", Lesion.BLASTIC)):
        out[name] = dice(dev.lesions == ident, cpu.lesions == ident)
        out[f"{name}_voxels"] = [int((dev.lesions == ident).sum()), int((cpu.lesions == ident).sum())]
    out["anatomy_voxels_differing_share"] = float(np.mean(dev.anatomy != cpu.anatomy))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--ct", required=True, help="where the 512x512x400 CT is kept (drawn there when absent)")
    ap.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    ap.add_argument("--repeats", type=int, default=5, help="warm calls after the first")
    ap.add_argument("--sw-batch", type=int, nargs="*", default=[], help="also time these sliding-window batches")
    ap.add_argument("--compare-cpu", action="store_true", help="also segment on the CPU and compare the maps")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default="bench/results/model_stage_speed.json")
    args = ap.parse_args()

    made = ensure_ct(Path(args.ct), args.seed)
    ct = to_canonical(load_ct(args.ct))
    lesion = load_sins_config().lesion
    device = resolve_device(args.device)
    t0 = time.perf_counter()
    model = load_model(args.model, device)
    load_s = time.perf_counter() - t0

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seg, cold = timed_segment(ct, model, lesion)
    cold_stages = dict(seg.timings_s)
    warm: list[float] = []
    stages: list[dict[str, float]] = []
    for _ in range(args.repeats):
        seg, t = timed_segment(ct, model, lesion)
        warm.append(t)
        stages.append(seg.timings_s)
    result: dict = {
        "what": "model stage (localise + segment + lesion checks) of sins analyze on a 512x512x400 CT, issue #4",
        "command": "python bench/model_stage_speed.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v not in (None, False, [])),
        "version": __version__,
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "ct": made,
        "ct_shape": list(ct.shape),
        "crop": [[s.start, s.stop] for s in seg.crop],
        "sw_batch": infer.SW_BATCH[device.type],
        "load_model_s": round(load_s, 3),
        "cold_s": round(cold, 3),
        "cold_stage_s": {k: round(v, 3) for k, v in cold_stages.items()},
        "warm_median_s": round(statistics.median(warm), 3) if warm else None,
        "warm_runs_s": [round(t, 3) for t in warm],
        "warm_median_stage_s": {k: round(statistics.median(s[k] for s in stages), 3) for k in cold_stages},
        "target_s": 3.0,
    }
    if device.type == "cuda":
        result["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated(device) / 1024**3, 2)
    sweep = {}
    for n in args.sw_batch:
        saved = infer.SW_BATCH[device.type]
        infer.SW_BATCH[device.type] = n
        try:
            timed_segment(ct, model, lesion)
            sweep[n] = round(statistics.median(timed_segment(ct, model, lesion)[1] for _ in range(3)), 3)
        finally:
            infer.SW_BATCH[device.type] = saved
    if sweep:
        result["sw_batch_sweep_warm_median_s"] = sweep
    if args.compare_cpu and device.type != "cpu":
        cpu_model = load_model(args.model, torch.device("cpu"))
        cpu_seg, cpu_s = timed_segment(ct, cpu_model, lesion)
        result["cpu_same_machine_s"] = round(cpu_s, 3)
        result["cpu_stage_s"] = {k: round(v, 3) for k, v in cpu_seg.timings_s.items()}
        result["agreement_with_cpu"] = agreement(seg, cpu_seg)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

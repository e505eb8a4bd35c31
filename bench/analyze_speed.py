"""`sins analyze` (network, no labels) on a 512x512x400 CT at 0.7x0.7x1.0 mm: wall time and peak RSS
of the whole command, per-stage timings from sins.json; median of N runs (issue #4).

python bench/analyze_speed.py --out bench/results/analyze_speed.json [--device cpu] [--repeats 3]

The CT is a phantom (thoracolumbar, lesions) drawn at the target spacing and cropped or padded (air)
to exactly 512x512x400. Each run is a fresh `sins analyze` process, so model loading counts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline import __version__
from pipeline.io import save_volume
from pipeline.phantom import generate, random_spec
from pipeline.volume import Volume, to_canonical

SHAPE = (512, 512, 400)
SPACING = (0.7, 0.7, 1.0)


def make_ct(path: Path, seed: int) -> dict:
    spec = random_spec(seed, fov="thoracolumbar", spacing=SPACING, n_lesion_levels=2)
    spec = dataclasses.replace(
        spec, top="T3", bottom="L5", top_cut=1.0, bottom_cut=1.0, orientation="RAS",
        inplane_fov_mm=(SHAPE[0] * SPACING[0], SHAPE[1] * SPACING[1]),
    )  # fmt: skip
    ct = to_canonical(generate(spec).ct)
    arr = np.full(SHAPE, -1000, np.int16)
    src, dst = [], []
    for n_have, n_want in zip(ct.shape, SHAPE, strict=True):
        off = (n_have - n_want) // 2
        if off >= 0:
            src.append(slice(off, off + n_want))
            dst.append(slice(0, n_want))
        else:
            src.append(slice(0, n_have))
            dst.append(slice(-off, -off + n_have))
    arr[tuple(dst)] = ct.array[tuple(src)]
    affine = ct.affine.copy()
    shift = np.array([s.start - d.start for s, d in zip(src, dst, strict=True)], float)
    affine[:3, 3] = ct.affine[:3, :3] @ shift + ct.affine[:3, 3]
    save_volume(Volume(arr, affine, source="speed"), path, np.int16)
    return {"seed": seed, "levels": f"{spec.top}..{spec.bottom}", "drawn_shape": list(ct.shape)}


def _make_and_record(path: Path, seed: int) -> None:
    t0 = time.perf_counter()
    made = make_ct(path, seed)
    made["make_s"] = round(time.perf_counter() - t0, 1)
    path.with_name(path.name + ".json").write_text(json.dumps(made))


def ensure_ct(path: Path, seed: int) -> dict:
    """The CT at `path`, drawn there (with a `.json` beside it saying how) unless both already exist.

    Drawn in a process of its own: drawing takes about 3.5 GB, and a `sins analyze` child started
    later by a process that large reports that size as its own peak RSS (Linux keeps the memory
    high-water mark of the forked process across exec)."""
    made_json = path.with_name(path.name + ".json")
    if not (path.exists() and made_json.exists()):
        proc = multiprocessing.get_context("spawn").Process(target=_make_and_record, args=(path, seed))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            raise SystemExit(f"drawing the CT failed (exit code {proc.exitcode})")
    return json.loads(made_json.read_text())


def run_once(ct: Path, out: Path, device: str, model: str | None) -> dict:
    cmd = [sys.executable, "-m", "pipeline.cli", "analyze", str(ct), "--out", str(out), "--device", device]
    if model:
        cmd += ["--model", model]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    stdout, stderr = proc.stdout.read().decode(), proc.stderr.read().decode()  # type: ignore[union-attr]
    rc = os.waitstatus_to_exitcode(status)
    row = {"wall_s": round(wall, 2), "peak_rss_gb": round(usage.ru_maxrss / 1024**2, 3), "exit_code": rc}
    if rc == 0:
        case = json.loads((out / "sins.json").read_text())
        row["timings_s"] = case.get("timings_s") or case.get("extra", {}).get("timings_s")
        row["levels"] = [lv["level"] for lv in case["levels"]]
        row["lesion_levels"] = case["summary"]["lesion_levels"]
    else:
        row["stderr"] = stderr.strip()[-500:]
    row["stdout"] = stdout.strip()[-300:]
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/analyze_speed.json")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default=None)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--ct", help="where to keep the drawn CT (reused when it exists; drawing takes minutes)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ct = Path(args.ct) if args.ct else Path(tmp) / "ct_512x512x400.nii.gz"
        made = ensure_ct(ct, args.seed)
        print("CT", made, flush=True)
        runs = []
        for i in range(args.repeats):
            runs.append(run_once(ct, Path(tmp) / f"run{i}", args.device, args.model))
            print(runs[-1], flush=True)
    ok = [r for r in runs if r["exit_code"] == 0]
    stages = sorted({k for r in ok for k in (r["timings_s"] or {})})
    result = {
        "what": "sins analyze (network) on a 512x512x400 CT at 0.7x0.7x1.0 mm, issue #4",
        "command": f"python bench/analyze_speed.py --repeats {args.repeats} --device {args.device}",
        "version": __version__,
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "ct": made,
        "median_wall_s": statistics.median(r["wall_s"] for r in ok) if ok else None,
        "median_peak_rss_gb": statistics.median(r["peak_rss_gb"] for r in ok) if ok else None,
        "median_stage_s": {s: statistics.median(r["timings_s"].get(s, 0.0) for r in ok) for s in stages},
        "targets": {"wall_s": 30, "peak_rss_gb": 3},
        "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("median_wall_s", "median_peak_rss_gb", "median_stage_s")}, indent=1))


if __name__ == "__main__":
    main()

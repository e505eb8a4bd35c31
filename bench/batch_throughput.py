"""Throughput of `sins batch` on this machine: cases per hour with --workers 1 and 2, and the peak
memory of each worker (from run.json, which records every worker's peak resident set size).

Cases are sample-size phantoms (the bundled sample specs, 2.5 mm, new seeds), cycled to --n cases.
With --labels they are scored from their label maps (no network); otherwise the network segments
them (--model DIR, default models/opensins_spine). Each run is a fresh `sins batch` process into an
empty folder, timed from start to exit; generating the phantoms is not timed.

    python bench/batch_throughput.py --n 20 --model models/opensins_spine   # -> bench/results/batch_throughput.json
    python bench/batch_throughput.py --n 3 --labels --out /tmp/bt.json      # quick check, no network
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from pipeline import __version__
from pipeline.phantom import generate, write_case
from pipeline.phantom.samples import SAMPLE_SPECS


def make_cases(root: Path, n: int, labels: bool) -> Path:
    """`n` phantoms like the sample cases (new seeds) and a manifest for them."""
    rows = ["case_id,path,labels,lesions,pain"]
    for i in range(n):
        base = SAMPLE_SPECS[i % len(SAMPLE_SPECS)]
        spec = replace(base, seed=5000 + i, case_id=f"bench_{i:03d}")
        d = write_case(generate(spec), root / "cases" / spec.case_id)
        if labels:
            rows.append(f"{spec.case_id},{d}/ct.nii.gz,{d}/anatomy.nii.gz,{d}/lesions.nii.gz,{spec.pain}")
        else:
            rows.append(f"{spec.case_id},{d}/ct.nii.gz,,,{spec.pain}")
    manifest = root / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def run_batch(manifest: Path, out: Path, workers: int, model: str | None, device: str) -> dict:
    cmd = [sys.executable, "-m", "pipeline.cli", "batch", "--manifest", str(manifest), "--out", str(out)]
    cmd += ["--workers", str(workers), "--device", device, "--quiet"]
    if model:
        cmd += ["--model", model]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 4):
        raise SystemExit(f"sins batch failed ({proc.returncode}): {proc.stderr.strip()}")
    info = json.loads((out / "run.json").read_text())
    with open(out / "cases.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    ok = [r for r in rows if r["status"] == "ok"]
    seconds = sorted(float(r["seconds"]) for r in ok)
    return {
        "workers": workers,
        "cases": len(rows),
        "ok": len(ok),
        "failed": len(rows) - len(ok),
        "errors": sorted({r["error"] for r in rows if r["status"] != "ok"}),
        "wall_s": round(wall, 2),
        "cases_per_hour": round(len(rows) / wall * 3600, 1),
        "case_seconds_median": round(seconds[len(seconds) // 2], 2) if seconds else None,
        "peak_rss_mb_per_worker": [w["peak_rss_mb"] for w in info["workers"]],
        "model_sha256": info["software"]["model_sha256"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="number of cases")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--labels", action="store_true", help="score from the phantoms' label maps (no network)")
    ap.add_argument("--model", help="model folder (network mode; default models/opensins_spine)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="bench/results/batch_throughput.json")
    ap.add_argument("--keep", help="keep the cases and runs in this folder (default: a temporary one)")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="sins-batch-bench-"))
    try:
        t0 = time.perf_counter()
        manifest = make_cases(work, args.n, args.labels)
        print(f"{args.n} cases generated in {time.perf_counter() - t0:.1f} s", flush=True)
        runs = []
        for workers in args.workers:
            out = work / f"run_w{workers}"
            shutil.rmtree(out, ignore_errors=True)
            result = run_batch(manifest, out, workers, None if args.labels else args.model, args.device)
            print(json.dumps(result), flush=True)
            runs.append(result)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    doc = {
        "software": __version__,
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "mode": "labels" if args.labels else "network",
        "model": None if args.labels else (args.model or "models/opensins_spine"),
        "device": args.device,
        "cases": args.n,
        "case_spec": "sample-size phantoms (sample specs, 2.5 mm, seeds 5000+)",
        "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()

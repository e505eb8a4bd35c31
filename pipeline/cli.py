"""`sins` command line: parses arguments, calls the API, maps errors to exit codes (DESIGN.md §4).

Exit codes: 0 success; 2 bad input or usage (one line on stderr, no traceback); 3 a case that could
not be processed; 4 batch with failed cases.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .errors import InputError, NotImplementedYet, OpenSINSError


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so usage errors follow the exit-code contract."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sub = self.prog.removeprefix("sins").strip()
        raise InputError(f"{sub}: {message}" if sub else message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sins", description="Spinal Instability Neoplastic Score from spine CT.")
    p.add_argument("--version", action="version", version=f"opensins {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    a = sub.add_parser("analyze", help="score one CT (file or DICOM series folder)")
    a.add_argument("input", help="CT: .nii/.nii.gz/.nrrd/.mha or a DICOM series folder")
    a.add_argument("--out", required=True, help="output folder")
    a.add_argument("--case-id")
    a.add_argument("--pain", choices=["mechanical", "occasional", "none"])
    a.add_argument("--clinical", help="clinician CSV: case_id, level, pain, location")
    a.add_argument("--labels", help="label map (OpenSINS anatomy map, or VerSe / TotalSegmentator vertebra ids)")
    a.add_argument("--label-format", choices=["opensins", "verse", "totalseg"], default="opensins")
    a.add_argument("--lesions", help="lesion map on the CT grid (1 lytic, 2 blastic)")
    a.add_argument("--lowest-level", help="override level naming: the lowest vertebra in the image, e.g. L4")
    a.add_argument("--level-offset", type=int, help="override level naming: shift every name by N levels caudally")
    a.add_argument("--config", help="overlay on configs/sins.yaml")
    a.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    a.add_argument("--model", help="model folder (default models/opensins_spine)")
    a.add_argument(
        "--dicom-out",
        action="store_true",
        help="also write a DICOM SEG and SR referencing the input series (DICOM folder input; opensins[dicom])",
    )
    a.add_argument(
        "--keep-identifiers",
        action="store_true",
        help="copy patient and study identifiers of a DICOM input into the DICOM outputs (default: never)",
    )

    c = sub.add_parser("check", help="load and check a CT, print its geometry")
    c.add_argument("input")

    b = sub.add_parser("batch", help="score many cases, resumable (issue #6)")
    b.add_argument("inputs", nargs="*", help="CT files, folders of them, DICOM study folders or globs")
    b.add_argument("--manifest", help="CSV: case_id, path [, labels, lesions, label_format, pain, location, ...]")
    b.add_argument("--out", required=True, help="output folder: one folder per case, cases.csv, levels.csv, run.json")
    b.add_argument("--clinical", help="clinician CSV: case_id, level, pain, location")
    b.add_argument("--workers", type=int, help="worker processes on this machine (default 1)")
    b.add_argument("--scheduler", metavar="ADDRESS", help="run on a Dask cluster, e.g. tcp://host:8786")
    b.add_argument("--gpu", action="store_true", help="with --scheduler: each case needs the worker resource GPU=1")
    b.add_argument("--retries", type=int, help="with --scheduler: retries of a task that fails (default 2)")
    b.add_argument("--num-parts", type=int, help="split the sorted cases into K parts (e.g. a SLURM array)")
    b.add_argument("--part-id", type=int, help="which part to run, 0 to K-1")
    b.add_argument("--overwrite", action="store_true", help="recompute cases that are already done")
    b.add_argument("--quiet", action="store_true", help="log lines instead of a progress bar")
    b.add_argument("--config", help="overlay on configs/sins.yaml")
    b.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    b.add_argument("--model", help="model folder (default models/opensins_spine)")

    v = sub.add_parser("validate", help="agreement with manual SINS")
    v.add_argument("--auto", required=True, help="the tool's levels.csv, or a run folder with */levels.csv")
    v.add_argument("--manual", required=True, help="manual SINS CSV, or a `sins phantom` folder (truth.json as manual)")
    v.add_argument("--out", required=True, help="folder for validation.json and validation.html")
    v.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates (by case)")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--config", help="overlay on configs/sins.yaml (category thresholds)")
    v.add_argument("--write-manual", metavar="CSV", help="also write the manual side as a manual SINS CSV")

    cal = sub.add_parser("calibrate", help="fit SINS thresholds to manual scores (cross-validated by case)")
    cal.add_argument("--auto-dir", required=True, help="run folder: */levels.csv or one levels.csv")
    cal.add_argument("--manual", required=True, help="manual SINS CSV, or a `sins phantom` folder")
    cal.add_argument("--out", required=True, help="overlay YAML to write, e.g. configs/site.yaml")
    cal.add_argument("--folds", type=int, default=5)
    cal.add_argument("--seed", type=int, default=0)
    cal.add_argument("--config", help="overlay on configs/sins.yaml to start from")

    ph = sub.add_parser("phantom", help="synthetic spine CTs with exact truth")
    ph.add_argument("--out", required=True)
    ph.add_argument("--n", type=int, default=1)
    ph.add_argument("--seed", type=int, default=0)
    ph.add_argument("--fov", choices=["cervical", "thoracic", "thoracolumbar", "lumbar", "whole"])
    ph.add_argument("--spacing", type=float, nargs="+", metavar="MM", help="one value (isotropic) or three")
    ph.add_argument("--orientation", help="axis codes of the written images, e.g. RAS, LPS, PIR")
    ph.add_argument("--quiet", action="store_true", help="no progress bar")

    t = sub.add_parser("train", help="train the segmentation model (the recipe of the shipped weights)")
    t.add_argument("--config", default=None, help="training recipe (default configs/train.yaml)")
    t.add_argument("--out", required=True, help="model folder to write (model.pt, metadata.json)")
    t.add_argument("--work", help="pool of phantoms and checkpoints (default .train_work/NAME); a rerun resumes")
    t.add_argument("--iterations", type=int, help="override the recipe's iteration count")
    t.add_argument("--pool-cases", type=int, help="override the number of training phantoms")
    t.add_argument("--init", metavar="MODEL_DIR", help="start from a trained model's weights (fine-tuning)")
    t.add_argument("--quiet", action="store_true")
    return p


def _cmd_check(args: argparse.Namespace) -> int:
    from .io import load_ct
    from .volume import to_canonical

    vol = load_ct(args.input)
    can = to_canonical(vol)
    sp = ", ".join(f"{s:.3g}" for s in vol.spacing)
    print(
        f"{vol.source}: {'x'.join(map(str, vol.shape))} voxels, spacing {sp} mm, orientation {vol.orientation}"
        f" (canonical {can.orientation}), HU {float(vol.array.min()):.0f}..{float(vol.array.max()):.0f}"
    )
    for note in vol.notes:
        print(f"note: {note}")
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from .analyze import AnalyzeRequest, analyze_case, write_outputs
    from .clinical import parse_level_override

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    req = AnalyzeRequest(
        ct=args.input,
        labels=args.labels,
        label_format=args.label_format,
        lesions=args.lesions,
        case_id=args.case_id,
        pain=args.pain,
        clinical_csv=args.clinical,
        config=args.config,
        override=parse_level_override(args.lowest_level, args.level_offset),
        device=args.device,
        model=args.model,
    )
    analysis = analyze_case(req)
    dicom_series = args.input if args.dicom_out else None
    write_outputs(analysis, out, dicom_series=dicom_series, keep_identifiers=args.keep_identifiers)
    case = analysis.case
    levels = " ".join(lv.level for lv in case.levels)
    print(f"{case.case_id}: vertebrae {levels}; anchors: {'; '.join(case.anchors)}")
    for lv in case.levels:
        if lv.sins is None:
            continue
        s = lv.sins
        total = str(s.total) if s.total is not None else f"{s.total_min}-{s.total_max} (pain unknown)"
        print(
            f"  {lv.level}: SINS {total} {s.category or ''}  [location {s.location}, pain {s.pain}, "
            f"bone lesion {s.bone_lesion}, alignment {s.alignment}, collapse {s.collapse}, "
            f"posterolateral {s.posterolateral}]"
        )
    if not case.summary.lesion_levels:
        print("  no lesion level found")
    print(f"written to {out}")
    return 0


class _Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler or `kill` stopping the batch): unwinds like Ctrl-C, so cleanup runs."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


def _batch_reporter(quiet: bool):
    """Progress of a batch on stderr: a bar with cases done, failures and ETA, or plain log lines."""
    from tqdm import tqdm

    bars: list = []

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def report(event) -> None:
        rec = event.record
        if quiet and rec is None:
            log(f"sins batch: {event.total} cases, {event.reused} already done")
        elif quiet:
            what = "ok" if rec.status == "ok" else f"error: {rec.error}"
            log(f"[{event.done}/{event.total}] {rec.case_id}: {what} ({rec.seconds:.1f} s)")
        elif rec is None:
            bars.append(tqdm(total=event.total, initial=event.done, unit="case", desc="sins batch", file=sys.stderr))
            bars[0].set_postfix(failed=event.failed)
        else:
            bars[0].set_postfix(failed=event.failed, refresh=False)
            bars[0].update(1)

    def close() -> None:
        for bar in bars:
            bar.close()

    return report, close


def _cmd_batch(args: argparse.Namespace) -> int:
    import signal

    from .batch import BatchRequest, DaskCluster, InProcess, Processes, plan_batch, run_batch

    if args.workers is not None and args.workers < 1:
        raise InputError("--workers must be at least 1")
    if args.scheduler and args.workers is not None:
        raise InputError("--workers is for this machine; with --scheduler the cluster's workers run the cases")
    if (args.gpu or args.retries is not None) and not args.scheduler:
        raise InputError("--gpu and --retries go with --scheduler")
    if args.retries is not None and args.retries < 0:
        raise InputError("--retries must be 0 or more")
    workers = args.workers or 1
    if args.scheduler:
        backend = DaskCluster(args.scheduler, 2 if args.retries is None else args.retries, args.gpu)
    else:
        backend = InProcess() if workers == 1 else Processes(workers)
    req = BatchRequest(
        out=Path(args.out),
        inputs=tuple(args.inputs),
        manifest=args.manifest,
        clinical=args.clinical,
        config=args.config,
        device=args.device,
        model=args.model,
        overwrite=args.overwrite,
        num_parts=args.num_parts,
        part_id=args.part_id,
        check_device=not args.scheduler,
    )
    plan = plan_batch(req)
    report, close = _batch_reporter(args.quiet)
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread (an embedding application): leave SIGTERM alone
        previous = None
    try:
        result = run_batch(plan, backend, report)
    finally:
        close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    counts = result.run_info["counts"]
    print(
        f"{counts['cases']} cases: {counts['ok']} ok ({counts['reused']} done by an earlier run), "
        f"{counts['error']} failed; written to {result.out}"
    )
    for rec in result.failed:
        print(f"  {rec.case_id}: {rec.error}")
    return 4 if result.failed else 0


def _cmd_phantom(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .phantom import generate, random_spec, write_case

    if args.n < 1:
        raise InputError("--n must be at least 1")
    if args.seed < 0:
        raise InputError("--seed must be 0 or more")
    spacing = None
    if args.spacing:
        if len(args.spacing) == 1:
            spacing = (args.spacing[0],) * 3
        elif len(args.spacing) == 3:
            spacing = tuple(args.spacing)
        else:
            raise InputError("--spacing takes one value (isotropic) or three")
        if min(spacing) < 0.3 or max(spacing) > 5:
            raise InputError("--spacing must lie between 0.3 and 5 mm")
    if args.orientation:
        codes = args.orientation.upper()
        pairs = [set("LR"), set("AP"), set("IS")]
        if len(codes) != 3 or any(sum(c in pair for c in codes) != 1 for pair in pairs):
            raise InputError(f"--orientation {args.orientation!r}: give three axis codes, one of each L/R, A/P, I/S")
        args.orientation = codes
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    seeds = range(args.seed, args.seed + args.n)
    for seed in tqdm(seeds, desc="phantoms", unit="case", disable=args.quiet or args.n == 1):
        spec = random_spec(seed, fov=args.fov, spacing=spacing, orientation=args.orientation)
        case = generate(spec)
        written = write_case(case, out / spec.case_id)
    if args.n == 1:
        print(written)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .config import CONFIG_DIR
    from .model.train import load_train_config, train

    cfg = load_train_config(args.config or CONFIG_DIR / "train.yaml")
    for name in ("iterations", "pool_cases"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1")
    work = Path(args.work) if args.work else Path(".train_work") / cfg.name

    def log(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    card = train(cfg, args.out, work, log, iterations=args.iterations, pool_cases=args.pool_cases, init=args.init)
    print(f"model {card.name} written to {args.out} (sha256 {card.sha256[:12]}...)")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from .validation import ValidationSettings, read_manual, validate, write_manual_csv, write_validation

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    settings = ValidationSettings(n_boot=args.bootstrap, seed=args.seed, config=args.config)
    result = validate(args.auto, args.manual, settings)
    json_path, html_path = write_validation(result, out)
    if args.write_manual:
        print(f"manual side written to {write_manual_csv(read_manual(args.manual), args.write_manual)}")

    def num(value: float | None, fmt: str) -> str:
        return "n/a" if value is None else format(value, fmt)

    for c in result.comparisons:
        lv, t = c.level, c.level.total
        print(
            f"tool vs {c.reference}: {lv.n_pairs} levels in {lv.n_cases} cases, {len(c.unmatched)} unmatched, "
            f"{len(c.unscored)} with items not assessed; total ICC(2,1) {num(t.icc_2_1.value, '.3f')}, "
            f"bias {num(t.bias.value, '+.2f')}; category accuracy {num(lv.categories.accuracy.value, '.1%')}"
        )
    print(f"written to {json_path} and {html_path}")
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from .validation.calibrate import calibrate, write_calibration

    if args.folds < 2:
        raise InputError("--folds must be at least 2")
    result = calibrate(args.auto_dir, args.manual, args.config, k=args.folds, seed=args.seed)
    yaml_path, report = write_calibration(result, args.out)
    print(f"{result.n_levels} levels in {result.n_cases} cases against {result.reference}")
    for name, before in vars(result.base).items():
        print(f"  {name}: {before:g} -> {getattr(result.fitted, name):g}")
    for label, c in (("before", result.held_out_before), ("after", result.held_out_after)):
        items = ", ".join(f"{a.item} {a.exact_agreement.value or 0:.1%}" for a in c.items if a.n)
        print(f"  held out, {label}: {items}; category accuracy {c.categories.accuracy.value or 0:.1%}")
    print(f"written to {yaml_path} and {report}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `sins` console script."""
    try:
        args = build_parser().parse_args(argv)
        if args.command == "check":
            return _cmd_check(args)
        if args.command == "analyze":
            return _cmd_analyze(args)
        if args.command == "phantom":
            return _cmd_phantom(args)
        if args.command == "train":
            return _cmd_train(args)
        if args.command == "validate":
            return _cmd_validate(args)
        if args.command == "calibrate":
            return _cmd_calibrate(args)
        if args.command == "batch":
            return _cmd_batch(args)
        raise NotImplementedYet(f"command {args.command!r} is not implemented yet")
    except OpenSINSError as e:
        print(f"sins: error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # e.g. an output folder that cannot be written
        print(f"sins: error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except _Terminated:
        print("sins: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("sins: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""A batch from request to files, whatever runs the cases (`local.InProcess`, `local.Processes`,
`dask.DaskCluster`): plan (every check before anything is written), skip what is done, run the rest,
commit each finished case, write `cases.csv`, `levels.csv` and `run.json`.

    plan = plan_batch(BatchRequest(out=Path("run"), manifest="cases.csv"))
    result = run_batch(plan, Processes(2), on_event=print)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from .. import __version__
from ..config import load_sins_config
from ..errors import InputError
from ..schema import CaseResult
from .cases import CaseTask, check_unique, discover_cases, read_manifest, select_part, with_clinical
from .store import (
    CaseRecord,
    cleanup_staging,
    commit,
    discard,
    finished_result,
    prepare,
    summary_names,
    write_staged,
    write_summaries,
)
from .worker import CaseOutcome, WorkerContext

#: Seconds between rewrites of cases.csv / levels.csv / run.json while a batch runs.
FLUSH_S = 60.0


class Backend(Protocol):
    """Runs cases and yields their outcomes as they finish (files staged under `out`, or in `files`)."""

    def describe(self) -> dict: ...

    def start(self) -> None: ...

    def close(self) -> None: ...

    def run(self, tasks: list[CaseTask], ctx: WorkerContext, out: Path) -> Iterator[CaseOutcome]: ...


@dataclass(frozen=True)
class BatchRequest:
    """What `sins batch` was asked to do."""

    out: Path
    inputs: tuple[str, ...] = ()
    manifest: str | None = None
    clinical: str | None = None
    config: str | None = None
    device: str = "auto"
    model: str | None = None
    overwrite: bool = False
    num_parts: int | None = None
    part_id: int | None = None
    check_device: bool = True  # resolve --device here (local runs); a cluster's workers resolve their own


@dataclass(frozen=True)
class ModelInfo:
    name: str
    sha256: str
    folder: str


@dataclass(frozen=True)
class BatchPlan:
    """A checked batch: this part's cases (sorted by id) and what every worker needs."""

    out: Path
    tasks: tuple[CaseTask, ...]
    total_cases: int  # in all parts
    ctx: WorkerContext
    config_sha256: str
    model: ModelInfo | None
    overwrite: bool = False
    num_parts: int | None = None
    part_id: int | None = None
    source: dict = field(default_factory=dict)


@dataclass(frozen=True)
class BatchEvent:
    """Progress: `record` is the case just finished (None for the event before the first case)."""

    done: int
    total: int
    failed: int
    reused: int
    record: CaseRecord | None = None


@dataclass(frozen=True)
class BatchResult:
    out: Path
    records: tuple[CaseRecord, ...]
    run_info: dict

    @property
    def failed(self) -> tuple[CaseRecord, ...]:
        return tuple(r for r in self.records if r.status != "ok")


def _model_info(model: str | None, device: str, check_device: bool) -> ModelInfo:
    """The model's card and a hash check of its weights (no network built); the device when asked."""
    from ..model.card import DEFAULT_MODEL_DIR, WEIGHTS, file_sha256, read_card
    from ..model.network import resolve_device

    folder = Path(model) if model else DEFAULT_MODEL_DIR
    card = read_card(folder)
    weights = folder / WEIGHTS
    if not weights.is_file() or file_sha256(weights) != card.sha256:
        raise InputError(f"{weights}: missing, or its sha256 does not match the model card")
    if check_device:
        resolve_device(device)
    return ModelInfo(card.name, card.sha256, str(folder.absolute()))


def plan_batch(req: BatchRequest) -> BatchPlan:
    """Find, read and check every case, the clinician CSV, the configuration and the model; split into
    parts. Raises `InputError` (nothing is written) on any problem that is not one case's own."""
    if bool(req.inputs) == bool(req.manifest):
        raise InputError("give either inputs (files, folders, globs) or --manifest CSV, not both and not neither")
    if req.out.exists() and not req.out.is_dir():
        raise InputError(f"--out {req.out}: exists and is not a folder")
    tasks = read_manifest(req.manifest) if req.manifest else discover_cases(req.inputs)
    check_unique(tasks)
    tasks = with_clinical(tasks, req.clinical)
    part = select_part(tasks, req.num_parts, req.part_id)
    cfg = load_sins_config(req.config)
    model = _model_info(req.model, req.device, req.check_device) if any(t.needs_model for t in part) else None
    ctx = WorkerContext(
        config=str(Path(req.config).absolute()) if req.config else None,
        device=req.device,
        model_dir=model.folder if model else (str(Path(req.model).absolute()) if req.model else None),
        model_sha256=model.sha256 if model else None,
    )
    source = {"manifest": str(Path(req.manifest).absolute())} if req.manifest else {"inputs": list(req.inputs)}
    if req.clinical:
        source["clinical"] = str(Path(req.clinical).absolute())
    return BatchPlan(
        req.out, tuple(part), len(tasks), ctx, cfg.hash, model, req.overwrite, req.num_parts, req.part_id, source
    )


def _seconds(case: CaseResult) -> float:
    timings = case.extra.get("timings_s") or {}
    return float(sum(v for v in timings.values() if isinstance(v, (int, float))))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _record(out: Path, task: CaseTask, outcome: CaseOutcome) -> CaseRecord:
    """Commit a finished case (or clear a failed one) and make its row."""
    if outcome.ok:
        try:
            if outcome.files is not None:
                write_staged(out, task.case_id, outcome.files)
            result = commit(out, task.case_id)
            return CaseRecord(task.case_id, "ok", None, outcome.seconds, task.ct, result)
        except (OSError, ValueError, KeyError) as e:
            outcome = CaseOutcome(**{**outcome.__dict__, "ok": False, "error": f"cannot store the outputs: {e}"})
    discard(out, task.case_id)
    return CaseRecord(task.case_id, "error", outcome.error, outcome.seconds, task.ct)


def _finished(plan: BatchPlan, task: CaseTask) -> CaseResult | None:
    """The case's result on disk when it is complete and made with this plan's configuration and model."""
    model_sha = plan.model.sha256 if (task.needs_model and plan.model) else None
    return finished_result(plan.out, task.case_id, plan.config_sha256, model_sha)


def _run_info(plan: BatchPlan, backend: Backend, records: dict, workers: dict, started: str, status: str, t0: float):
    recs = list(records.values())
    ok = sum(r.status == "ok" for r in recs)
    return {
        "software": {
            "version": __version__,
            "model": plan.model.name if plan.model else None,
            "model_sha256": plan.model.sha256 if plan.model else None,
        },
        "config_sha256": plan.config_sha256,
        "status": status,
        "started": started,
        "finished": _now() if status != "running" else None,
        "seconds": round(time.perf_counter() - t0, 2),
        "backend": backend.describe(),
        "part": {"num_parts": plan.num_parts, "part_id": plan.part_id} if plan.num_parts else None,
        "source": plan.source,
        "counts": {
            "cases": len(plan.tasks),
            "cases_all_parts": plan.total_cases,
            "ok": ok,
            "error": len(recs) - ok,
            "computed": sum(not r.reused for r in recs),
            "reused": sum(r.reused for r in recs),
            "not_run": len(plan.tasks) - len(recs),
        },
        "workers": [
            {"worker": name, "cases": w["cases"], "peak_rss_mb": round(w["peak_rss_mb"], 1)}
            for name, w in sorted(workers.items())
        ],
    }


def run_batch(plan: BatchPlan, backend: Backend, on_event: Callable[[BatchEvent], None] | None = None) -> BatchResult:
    """Run the plan's cases that are not done yet and write the files across cases (also when
    interrupted, with status "interrupted" in run.json). Never raises for one case's failure."""
    emit = on_event or (lambda event: None)
    out = plan.out
    started, t0 = _now(), time.perf_counter()
    names = summary_names(plan.num_parts, plan.part_id)
    records: dict[str, CaseRecord] = {}
    to_run: list[CaseTask] = []
    for task in plan.tasks:
        prev = None if plan.overwrite else _finished(plan, task)
        if prev is not None:
            records[task.case_id] = CaseRecord(task.case_id, "ok", None, _seconds(prev), task.ct, prev, reused=True)
        else:
            to_run.append(task)
    if to_run:
        backend.start()  # e.g. connect to the cluster: fails before anything is written
    out.mkdir(parents=True, exist_ok=True)
    for task in to_run:
        prepare(out, task.case_id)
    by_id = {t.case_id: t for t in to_run}
    workers: dict[str, dict] = {}
    reused = len(records)

    def event(record: CaseRecord | None) -> BatchEvent:
        failed = sum(r.status != "ok" for r in records.values())
        return BatchEvent(len(records), len(plan.tasks), failed, reused, record)

    emit(event(None))
    status = "interrupted"
    stream = backend.run(to_run, plan.ctx, out)
    last_flush = time.perf_counter()
    storing: CaseTask | None = None  # between a case's commit and its row
    try:
        for outcome in stream:
            task = storing = by_id[outcome.case_id]
            record = _record(out, task, outcome)
            records[task.case_id] = record
            storing = None
            if outcome.worker:
                w = workers.setdefault(outcome.worker, {"cases": 0, "peak_rss_mb": 0.0})
                w["cases"] += 1
                w["peak_rss_mb"] = max(w["peak_rss_mb"], outcome.peak_rss_mb)
            emit(event(record))
            if time.perf_counter() - last_flush > FLUSH_S:
                info = _run_info(plan, backend, records, workers, started, "running", t0)
                write_summaries(out, list(records.values()), info, names)
                last_flush = time.perf_counter()
        status = "finished"
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
        backend.close()
        if storing is not None and storing.case_id not in records:  # interrupted between commit and row
            done = _finished(plan, storing)
            if done is not None:
                records[storing.case_id] = CaseRecord(storing.case_id, "ok", None, _seconds(done), storing.ct, done)
        info = _run_info(plan, backend, records, workers, started, status, t0)
        write_summaries(out, list(records.values()), info, names)
        cleanup_staging(out)
    ordered = tuple(sorted(records.values(), key=lambda r: r.case_id))
    return BatchResult(out, ordered, info)

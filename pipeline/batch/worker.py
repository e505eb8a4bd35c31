"""Scoring cases inside a worker (a local process, the batch process itself, or a Dask worker).

The network is loaded once per worker process, on the first case that needs it. `run_stream` reads
the next case's files on a thread while the current case is analysed and written.
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..analyze import AnalyzeRequest, CaseInputs, analyze_case, load_inputs, write_outputs
from ..errors import ModelError, OpenSINSError
from .cases import CaseTask
from .store import staging_dir

if TYPE_CHECKING:
    from ..model.card import LoadedModel


@dataclass(frozen=True)
class WorkerContext:
    """What every worker needs besides the case: configuration, device and model."""

    config: str | None = None
    device: str = "auto"
    model_dir: str | None = None  # model folder (absolute); None: the default
    model_sha256: str | None = None  # the weights the batch was planned with; a worker with others refuses
    torch_threads: int | None = None  # CPU threads for the network (local workers share the cores)


@dataclass(frozen=True)
class CaseOutcome:
    """What a worker reports for one case. `files` carries the case's files (relative name -> bytes)
    when the worker cannot write into the batch's folder itself (Dask)."""

    case_id: str
    ok: bool
    error: str | None
    seconds: float
    worker: str
    peak_rss_mb: float
    files: dict[str, bytes] | None = None


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports kB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if os.uname().sysname == "Darwin" else peak / 1024


def error_text(exc: BaseException) -> str:
    """One line: our own errors as they read, anything else with its type."""
    text = str(exc) if isinstance(exc, OpenSINSError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split()) or type(exc).__name__


_MODELS: dict[tuple[str | None, str], LoadedModel] = {}
_MODEL_LOCK = threading.Lock()


def get_model(ctx: WorkerContext) -> LoadedModel:
    """The network of `ctx`, loaded on first use and kept for the life of this process."""
    key = (ctx.model_dir, ctx.device)
    with _MODEL_LOCK:
        if key not in _MODELS:
            import torch

            from ..model.card import DEFAULT_MODEL_DIR, load_model
            from ..model.network import resolve_device

            if ctx.torch_threads:
                torch.set_num_threads(ctx.torch_threads)
            model = load_model(ctx.model_dir or DEFAULT_MODEL_DIR, resolve_device(ctx.device))
            if ctx.model_sha256 and model.card.sha256 != ctx.model_sha256:
                raise ModelError(
                    f"the model on worker {worker_name()} ({model.card.sha256[:12]}...) is not the one the batch "
                    f"was started with ({ctx.model_sha256[:12]}...)"
                )
            _MODELS[key] = model
        return _MODELS[key]


def request_for(task: CaseTask, ctx: WorkerContext) -> AnalyzeRequest:
    return AnalyzeRequest(
        ct=task.ct,
        labels=task.labels,
        label_format=task.label_format,
        lesions=task.lesions,
        case_id=task.case_id,
        clinical_csv=task.clinical_csv,
        config=ctx.config,
        device=ctx.device,
        model=ctx.model_dir,
        clinical=task.clinical,
    )


@dataclass
class _Loaded:
    task: CaseTask
    inputs: CaseInputs | None
    error: BaseException | None
    seconds: float


def _load(task: CaseTask, ctx: WorkerContext) -> _Loaded:
    t0 = time.perf_counter()
    try:
        return _Loaded(task, load_inputs(request_for(task, ctx)), None, time.perf_counter() - t0)
    except Exception as e:  # reported with the case, in order
        return _Loaded(task, None, e, time.perf_counter() - t0)


def score_case(
    task: CaseTask,
    ctx: WorkerContext,
    out_dir: Path,
    inputs: CaseInputs | None = None,
    *,
    raise_unexpected: bool = False,
) -> CaseOutcome:
    """Analyse one case and write its files into `out_dir`. Every error becomes the outcome's one-line
    reason (the folder is then removed); with `raise_unexpected`, errors that are not the input's
    fault (not an `OpenSINSError`) propagate instead, so that a scheduler can retry them."""
    t0 = time.perf_counter()
    try:
        model = get_model(ctx) if task.needs_model else None
        analysis = analyze_case(request_for(task, ctx), inputs, model)
        write_outputs(analysis, out_dir)
        return CaseOutcome(task.case_id, True, None, time.perf_counter() - t0, worker_name(), peak_rss_mb())
    except Exception as e:
        shutil.rmtree(out_dir, ignore_errors=True)
        if raise_unexpected and not isinstance(e, OpenSINSError):
            raise
        return failed(task.case_id, e, time.perf_counter() - t0)


def failed(case_id: str, exc: BaseException, seconds: float) -> CaseOutcome:
    return CaseOutcome(case_id, False, error_text(exc), seconds, worker_name(), peak_rss_mb())


def _finish(item: _Loaded, ctx: WorkerContext, out: Path) -> CaseOutcome:
    if item.error is not None:
        return failed(item.task.case_id, item.error, item.seconds)
    outcome = score_case(item.task, ctx, staging_dir(out, item.task.case_id), item.inputs)
    return CaseOutcome(**{**outcome.__dict__, "seconds": outcome.seconds + item.seconds})


def run_stream(tasks: Iterable[CaseTask], ctx: WorkerContext, out: Path) -> Iterator[CaseOutcome]:
    """Score `tasks` in order into their staging folders under `out`, reading each next case's files
    on a thread while the current one is analysed (at most one case read ahead)."""
    ready: deque[_Loaded | None] = deque()
    have = threading.Semaphore(0)  # an item is waiting in `ready` (a loaded case, or None: the end)
    room = threading.Semaphore(1)  # the reader may take and load one more case
    stop = threading.Event()
    source = iter(tasks)

    def reader() -> None:
        try:
            while True:
                room.acquire()
                task = None if stop.is_set() else next(source, None)
                if task is None:
                    return
                ready.append(_load(task, ctx))
                have.release()
        finally:
            ready.append(None)
            have.release()

    thread = threading.Thread(target=reader, name="sins-batch-reader", daemon=True)
    thread.start()
    try:
        while True:
            have.acquire()
            item = ready.popleft()
            if item is None:
                return
            room.release()  # read the next case while this one is processed
            yield _finish(item, ctx, out)
    finally:
        stop.set()
        room.release()


def collect_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def score_remote(task: CaseTask, ctx: WorkerContext) -> CaseOutcome:
    """Score a case on a Dask worker: files written to a local temporary folder and returned as bytes,
    so the batch's folder needs to be reachable only from the client. Unexpected errors propagate
    (Dask retries them); input and case errors are the outcome."""
    tmp = Path(tempfile.mkdtemp(prefix=f"sins-{task.case_id}-"))
    try:
        inputs = None
        t0 = time.perf_counter()
        try:
            inputs = load_inputs(request_for(task, ctx))
        except OpenSINSError as e:
            return failed(task.case_id, e, time.perf_counter() - t0)
        load_s = time.perf_counter() - t0
        outcome = score_case(task, ctx, tmp / "case", inputs, raise_unexpected=True)
        files = collect_files(tmp / "case") if outcome.ok else None
        return CaseOutcome(**{**outcome.__dict__, "seconds": outcome.seconds + load_s, "files": files})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

"""Running cases on this machine: in the batch process itself (`--workers 1`) or in N worker processes.

Worker processes are started with `spawn` (safe with threads and CUDA), take cases from a shared
queue one at a time (plus the one they read ahead), and load the network once each. A worker that
dies (killed, out of memory) costs only the case it was processing, which becomes an error row; the
case it had read ahead goes back to the queue and a new worker takes its place.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .cases import CaseTask
from .worker import CaseOutcome, WorkerContext, run_stream

#: Seconds between checks that the workers (and, in a worker, the batch process) are alive.
POLL_S = 0.5


@dataclass(frozen=True)
class InProcess:
    """Cases scored one after another in this process (the next one read on a thread meanwhile)."""

    def describe(self) -> dict:
        return {"kind": "local", "workers": 1}

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def run(self, tasks: Sequence[CaseTask], ctx: WorkerContext, out: Path) -> Iterator[CaseOutcome]:
        yield from run_stream(tasks, ctx, out)


def _queue_tasks(task_q, result_q, parent: int) -> Iterator[CaseTask]:
    """Tasks from the shared queue until the end marker, or until the batch process is gone."""
    while True:
        try:
            task = task_q.get(timeout=POLL_S)
        except queue.Empty:
            if os.getppid() != parent:
                return
            continue
        if task is None:
            return
        result_q.put(("took", task.case_id, os.getpid()))
        yield task


def _worker_main(task_q, result_q, ctx: WorkerContext, out: str, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the batch process decides
    for outcome in run_stream(_queue_tasks(task_q, result_q, parent), ctx, Path(out)):
        result_q.put(("done", outcome, os.getpid()))


@dataclass(frozen=True)
class Processes:
    """N worker processes on this machine."""

    workers: int

    def describe(self) -> dict:
        return {"kind": "local", "workers": self.workers}

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def run(self, tasks: Sequence[CaseTask], ctx: WorkerContext, out: Path) -> Iterator[CaseOutcome]:
        if not tasks:
            return
        spawn = mp.get_context("spawn")
        task_q, result_q = spawn.Queue(), spawn.Queue()
        by_id = {t.case_id: t for t in tasks}
        for task in tasks:
            task_q.put(task)
        if ctx.torch_threads is None:
            ctx = WorkerContext(**{**ctx.__dict__, "torch_threads": max(1, (os.cpu_count() or 1) // self.workers)})
        procs: dict[int, mp.process.BaseProcess] = {}
        held: dict[int, list[str]] = {}  # cases a worker took and has not reported
        pending = set(by_id)
        restarts = len(tasks)

        def start() -> None:
            p = spawn.Process(
                target=_worker_main, args=(task_q, result_q, ctx, str(out), os.getpid()), name="sins-batch-worker"
            )
            p.start()
            procs[p.pid] = p  # type: ignore[index]
            held[p.pid] = []  # type: ignore[index]

        def handle(msg: tuple) -> CaseOutcome | None:
            kind, payload, pid = msg
            if kind == "took":
                held.setdefault(pid, []).append(payload)
                return None
            if payload.case_id in held.get(pid, []):
                held[pid].remove(payload.case_id)
            pending.discard(payload.case_id)
            return payload

        try:
            for _ in range(min(self.workers, len(tasks))):
                start()
            while pending:
                try:
                    outcome = handle(result_q.get(timeout=POLL_S))
                except queue.Empty:
                    outcome = None
                if outcome is not None:
                    yield outcome
                    continue
                for pid, p in list(procs.items()):
                    if p.is_alive():
                        continue
                    while True:  # what it managed to report before it died
                        try:
                            late = handle(result_q.get_nowait())
                        except queue.Empty:
                            break
                        if late is not None:
                            yield late
                    lost = [c for c in held.pop(pid, []) if c in pending]
                    del procs[pid]
                    if lost:
                        pending.discard(lost[0])
                        reason = f"worker process died (exit code {p.exitcode}) while processing this case"
                        yield CaseOutcome(lost[0], False, reason, 0.0, "", 0.0)
                        for case_id in lost[1:]:
                            task_q.put(by_id[case_id])
                    if pending and restarts > 0 and len(procs) < self.workers:
                        restarts -= 1
                        start()
                if pending and not procs:
                    for case_id in sorted(pending):
                        yield CaseOutcome(case_id, False, "no worker process left to run it", 0.0, "", 0.0)
                    return
        finally:
            for _ in procs:
                task_q.put(None)
            for p in procs.values():
                p.join(timeout=5 if not pending else 0.1)
                if p.is_alive():
                    p.terminate()
                    p.join(timeout=5)
            task_q.cancel_join_thread()
            result_q.cancel_join_thread()

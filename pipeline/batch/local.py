"""Running cases on this machine: in the batch process itself (`--workers 1`) or in N worker processes.

Worker processes are started with `spawn` (safe with threads and CUDA) and load the network once each.
Each has its own two pipes: the batch process sends it a case at a time (the one it processes and the
one it reads meanwhile) and it sends back each case's outcome. Nothing is shared between workers, so
a worker killed mid-read or mid-write (out of memory, SIGKILL) cannot leave a lock held that stops the
others (a shared `multiprocessing.Queue` can). A dead worker costs only the case it was processing,
which becomes an error row (none if it died before taking one); the cases it had been sent and not
finished go to another worker, and a new worker takes its place.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import pickle
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path

from .cases import CaseTask
from .worker import CaseOutcome, WorkerContext, run_stream

#: Seconds between checks that the workers (and, in a worker, the batch process) are alive.
POLL_S = 0.5
#: What reading from the pipe of a worker that died (mid-message, say) can raise.
_BROKEN = (EOFError, OSError, pickle.UnpicklingError)
#: Cases sent to a worker at a time: the one it processes and the one it reads meanwhile.
PER_WORKER = 2


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


def _pipe_tasks(conn: Connection, parent: int, took: Callable[[str], None]) -> Iterator[CaseTask]:
    """Tasks the batch process sends this worker (each reported with `took` as it is taken), until the
    end marker or until the batch process is gone."""
    while True:
        if not conn.poll(POLL_S):
            if os.getppid() != parent:
                return
            continue
        try:
            task = conn.recv()
        except _BROKEN:  # the batch process died mid-message
            return
        if task is None:
            return
        took(task.case_id)
        yield task


def _worker_main(tasks: Connection, results: Connection, ctx: WorkerContext, out: str, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the batch process decides
    lock = threading.Lock()  # the reader thread reports "took", this one "done"

    def report(kind: str, payload: object) -> None:
        with lock:
            results.send((kind, payload))

    for outcome in run_stream(_pipe_tasks(tasks, parent, lambda case_id: report("took", case_id)), ctx, Path(out)):
        report("done", outcome)


@dataclass
class _Worker:
    """A worker process and its two pipes (the batch process's ends), with the cases sent to it and
    those it has taken, not yet reported, in order: the first taken is the one it is processing."""

    process: BaseProcess
    tasks: Connection
    results: Connection
    assigned: list[str] = field(default_factory=list)
    taken: list[str] = field(default_factory=list)


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
        by_id = {t.case_id: t for t in tasks}
        todo = deque(tasks)
        pending = set(by_id)
        if ctx.torch_threads is None:
            ctx = WorkerContext(**{**ctx.__dict__, "torch_threads": max(1, (os.cpu_count() or 1) // self.workers)})
        workers: list[_Worker] = []
        restarts = len(tasks)

        def feed(w: _Worker) -> None:
            """Keep a worker supplied: the case it processes and the one it reads meanwhile."""
            while todo and len(w.assigned) < PER_WORKER:
                task = todo.popleft()
                try:
                    w.tasks.send(task)
                except OSError:  # it has just died: the task waits for another worker
                    todo.appendleft(task)
                    return
                w.assigned.append(task.case_id)

        def start() -> None:
            task_r, task_w = spawn.Pipe(duplex=False)
            result_r, result_w = spawn.Pipe(duplex=False)
            p = spawn.Process(
                target=_worker_main, args=(task_r, result_w, ctx, str(out), os.getpid()), name="sins-batch-worker"
            )
            p.start()
            task_r.close()  # the worker's ends: closed here, so that its death reads as end of file
            result_w.close()
            workers.append(_Worker(p, task_w, result_r))
            feed(workers[-1])

        def receive(w: _Worker) -> CaseOutcome | None:
            kind, payload = w.results.recv()
            if kind == "took":
                w.taken.append(payload)
                return None
            for held in (w.assigned, w.taken):
                if payload.case_id in held:
                    held.remove(payload.case_id)
            pending.discard(payload.case_id)
            return payload

        try:
            for _ in range(min(self.workers, len(tasks))):
                start()
            while pending:
                ready = set(wait([w.results for w in workers], timeout=POLL_S))
                for w in workers:
                    if w.results in ready:
                        try:
                            outcome = receive(w)
                        except _BROKEN:  # it died: seen below
                            continue
                        if outcome is not None:
                            feed(w)
                            yield outcome
                for w in [w for w in workers if not w.process.is_alive()]:
                    while True:  # what it managed to report before it died
                        try:
                            if not w.results.poll():
                                break
                            late = receive(w)
                        except _BROKEN:
                            break
                        if late is not None:
                            yield late
                    workers.remove(w)
                    w.tasks.close()
                    w.results.close()
                    lost = [c for c in w.taken if c in pending][:1]  # the case it was processing
                    if lost:
                        pending.discard(lost[0])
                        reason = f"worker process died (exit code {w.process.exitcode}) while processing this case"
                        yield CaseOutcome(lost[0], False, reason, 0.0, "", 0.0)
                    again = [c for c in w.assigned if c in pending]  # read ahead, or never taken
                    todo.extendleft(by_id[c] for c in reversed(again))
                    if pending and restarts > 0 and len(workers) < self.workers:
                        restarts -= 1
                        start()
                    for other in workers:
                        feed(other)
                if pending and not workers:
                    for case_id in sorted(pending):
                        yield CaseOutcome(case_id, False, "no worker process left to run it", 0.0, "", 0.0)
                    return
        finally:
            for w in workers:
                with contextlib.suppress(OSError):  # one that died meanwhile
                    w.tasks.send(None)
            for w in workers:
                w.process.join(timeout=5 if not pending else 0.1)
                if w.process.is_alive():
                    w.process.terminate()
                    w.process.join(timeout=5)
                w.tasks.close()
                w.results.close()

"""Running cases on a Dask distributed cluster (`sins batch --scheduler ADDRESS`; `opensins[distributed]`).

Each case is one task. Workers read the inputs (the paths must be reachable from them), load the
network once per worker process and send the case's files back, so the client writes the same
folder as a local run. A task that fails for a reason other than its input (a lost worker, an out of
memory error, a CUDA error) is retried `retries` times; with `gpu`, every task needs the worker
resource `GPU=1`, so a worker started with `--resources GPU=1` runs one case per GPU at a time.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from .cases import CaseTask
from .worker import CaseOutcome, WorkerContext, error_text, score_remote

#: Seconds to wait for the scheduler when connecting.
CONNECT_TIMEOUT_S = 30


def _client_class():
    try:
        from distributed import Client
    except ImportError:
        raise InputError(
            '--scheduler needs Dask distributed: pip install "opensins[distributed]" (or dask[distributed])'
        ) from None
    return Client


@dataclass
class DaskCluster:
    """Cases sent to the Dask scheduler at `address` (e.g. tcp://10.0.0.5:8786)."""

    address: str
    retries: int = 2
    gpu: bool = False
    _client: Any = field(default=None, repr=False)

    def describe(self) -> dict:
        return {"kind": "dask", "scheduler": self.address, "retries": self.retries, "gpu": self.gpu}

    def start(self) -> None:
        """Connect to the scheduler (one line when Dask is missing or the scheduler cannot be reached)."""
        if self._client is not None:
            return
        client_class = _client_class()
        try:
            self._client = client_class(self.address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as e:
            reason = " ".join(str(e).split()) or type(e).__name__
            raise InputError(f"--scheduler {self.address}: cannot reach the Dask scheduler ({reason})") from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def run(self, tasks: Sequence[CaseTask], ctx: WorkerContext, out: Path) -> Iterator[CaseOutcome]:
        if not tasks:
            return
        from distributed import as_completed

        self.start()
        client = self._client
        resources = {"GPU": 1} if self.gpu else None
        run = uuid.uuid4().hex[:8]  # keys unique to this run: another batch may share the scheduler
        futures = {}
        try:
            for task in tasks:
                fut = client.submit(
                    score_remote,
                    task,
                    ctx,
                    key=f"sins-{run}-{task.case_id}",
                    pure=False,
                    retries=self.retries,
                    resources=resources,
                )
                futures[fut] = task.case_id
            for fut in as_completed(futures, loop=client.loop):
                case_id = futures[fut]
                try:
                    yield fut.result()
                except Exception as e:  # retries spent: the last error is the case's
                    yield CaseOutcome(case_id, False, error_text(e), 0.0, "", 0.0)
                finally:
                    fut.release()
        finally:
            for fut in futures:
                if not fut.done():
                    fut.cancel()

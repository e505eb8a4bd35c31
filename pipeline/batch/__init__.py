"""Many cases at once (`sins batch`, issue #6): resumable, fault-isolated, parallel, on a Dask cluster.

    from pipeline.batch import BatchRequest, plan_batch, run_batch, Processes
    plan = plan_batch(BatchRequest(out=Path("run"), manifest="cases.csv"))
    result = run_batch(plan, Processes(2))          # or InProcess(), or DaskCluster("tcp://host:8786")

`cases` finds and checks the cases and splits them into parts, `store` owns the output folder
(staging, commit, resume, cases.csv / levels.csv / run.json), `worker` scores cases, `local` and
`dask` run them, `run` ties these together. Nothing here prints or exits.
"""

from __future__ import annotations

from .cases import CaseTask, discover_cases, read_manifest, select_part
from .dask import DaskCluster
from .local import InProcess, Processes
from .run import BatchEvent, BatchPlan, BatchRequest, BatchResult, plan_batch, run_batch
from .store import CaseRecord
from .worker import CaseOutcome, WorkerContext

__all__ = [
    "BatchEvent",
    "BatchPlan",
    "BatchRequest",
    "BatchResult",
    "CaseOutcome",
    "CaseRecord",
    "CaseTask",
    "DaskCluster",
    "InProcess",
    "Processes",
    "WorkerContext",
    "discover_cases",
    "plan_batch",
    "read_manifest",
    "run_batch",
    "select_part",
]

"""Where the steps run: configuration (`SIM2REAL_EXECUTOR`), not a code fork.

- `in_process` (default): every step in the run's process. DVC holds one lock per repository, so
  on one workspace the steps run one at a time anyway; this is the fastest on one machine.
- `multiprocess`: one process per step (run config `execution: {config: {max_concurrent: N}}`).
  Steps that meet at DVC's repository lock wait for it (`orchestration/dvc.run_dvc` retries), and
  the instance's pool `dvc_repo` can serialise them up front.
- `celery`: steps as Celery tasks on workers (`pip install -e '.[cluster]'`); the run config in
  `deploy/cluster/run_config.yaml` names the broker. Each worker needs a checkout of the project and
  the shared DVC remote of `deploy/cluster/dvc_remote.config`.

Steps that run side by side share the machine's cores: `concurrent_steps` says how many may compute at
once (the multiprocess executor's `max_concurrent`, at most the run's steps), and the assets hand it to
the stage processes as `SIM2REAL_PARALLEL`, which divides each one's torch threads (sim2real/threads.py),
so two stages on two cores take one thread each instead of collapsing on two each.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

EXECUTOR_ENV = "SIM2REAL_EXECUTOR"
CHOICES = ("in_process", "multiprocess", "celery")


class ExecutorConfigError(ValueError):
    pass


def executor_def(name: str | None = None) -> dg.ExecutorDefinition:
    """The executor named by `name` or `$SIM2REAL_EXECUTOR` (default in_process)."""
    name = (name or os.environ.get(EXECUTOR_ENV) or "in_process").strip()
    if name == "in_process":
        return dg.in_process_executor
    if name == "multiprocess":
        return dg.multiprocess_executor
    if name == "celery":
        try:
            from dagster_celery import celery_executor
        except ImportError as err:
            raise ExecutorConfigError(f"{EXECUTOR_ENV}=celery needs dagster-celery: pip install -e '.[cluster]' "
                                      f"({err})") from err
        return celery_executor
    raise ExecutorConfigError(f"{EXECUTOR_ENV}={name!r} is not one of {', '.join(CHOICES)}")


def chain_job() -> dg.JobDefinition:
    """The chain job of the project at $SIM2REAL_ROOT, importable by name: `dg.reconstructable(chain_job)`
    rebuilds it in each step process of the multiprocess executor (and `dg.execute_job` runs it)."""
    from orchestration.definitions import ROOT, build_definitions

    return build_definitions(Path(os.environ.get("SIM2REAL_ROOT") or ROOT)).resolve_job_def("sim2real_chain")


def concurrent_steps(executor: str, run_config: dict | None, steps: int | None = None,
                     cores: int | None = None) -> int:
    """How many steps of a run may compute at once on this machine (1 unless steps share its cores).

    `multiprocess`: its `max_concurrent` (run config `execution: {config: ...}`, or the
    `execution: {multiprocess: {config: ...}}` form); 0 or unset means one per core, Dagster's default.
    At most the run's number of steps. `in_process` runs one step at a time; Celery workers are other
    machines (each worker's own process count is its `--concurrency`).
    """
    if executor != "multiprocess":
        return 1
    execution = (run_config or {}).get("execution") or {}
    config = execution.get("config") or (execution.get("multiprocess") or {}).get("config") or {}
    limit = int(config.get("max_concurrent") or 0) or (cores or os.cpu_count() or 1)
    return max(1, min(limit, steps) if steps else limit)

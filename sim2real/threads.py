"""How many torch threads a stage process may use: the cores actually free to it.

Two torch threads on two cores collapse 10-24x when another busy process shares one of them (STYLE.md),
so a stage never takes more threads than the cores nobody else is using. The budget, in order:

1. `project.num_threads` > 0 (params.yaml), or `SIM2REAL_THREADS` (the environment): taken as given.
2. Otherwise the cores this process may run on (`sched_getaffinity`), divided by `SIM2REAL_PARALLEL`,
   the number of processes an orchestrator runs side by side on those cores (DDP ranks on one machine,
   the Dagster multiprocess executor's `max_concurrent`, parallel test workers hand it down), and
   capped by the cores measured idle right now (`/proc/stat`, a short sample over the allowed cores):
   work that nobody handed a budget down for (another user's job, a build) still counts.

Always at least 1. `thread_budget()` returns the number and a one-line reason for the log.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

__all__ = ["PARALLEL_ENV", "THREADS_ENV", "free_cores", "thread_budget"]

THREADS_ENV = "SIM2REAL_THREADS"  # an explicit thread count for this process
PARALLEL_ENV = "SIM2REAL_PARALLEL"  # processes sharing this process's cores, handed down by an orchestrator


def _cpu_times(cpus: set[int], stat: Path) -> dict[int, tuple[int, int]]:
    """(idle, total) jiffies of each allowed CPU from /proc/stat."""
    out: dict[int, tuple[int, int]] = {}
    for line in stat.read_text().splitlines():
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        cpu = int(name[3:])
        if cpu in cpus:
            v = [int(f) for f in fields[:8]]
            out[cpu] = (v[3] + v[4], sum(v))  # idle + iowait, all
    return out


def free_cores(cpus: set[int] | None = None, sample_s: float = 0.15, stat: Path = Path("/proc/stat")) -> float | None:
    """Idle cores among `cpus` (default: this process's affinity) over a `sample_s` window; None when
    /proc/stat cannot be read (not Linux)."""
    cpus = set(os.sched_getaffinity(0)) if cpus is None else cpus
    try:
        a = _cpu_times(cpus, stat)
        time.sleep(sample_s)
        b = _cpu_times(cpus, stat)
    except (OSError, ValueError, IndexError):
        return None
    idle = 0.0
    for cpu, (i1, t1) in b.items():
        i0, t0 = a.get(cpu, (i1, t1))
        if t1 > t0:
            idle += min(1.0, max(0.0, (i1 - i0) / (t1 - t0)))
    return idle


def _positive_int(env: Mapping[str, str], key: str) -> int | None:
    raw = env.get(key, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"environment variable {key}={raw!r}: expected a whole number >= 1") from None
    if value < 1:
        raise ValueError(f"environment variable {key}={raw!r}: expected a whole number >= 1")
    return value


def thread_budget(num_threads: int = 0, env: Mapping[str, str] | None = None,
                  measure: bool = True) -> tuple[int, str]:
    """(torch threads for this process, why). `num_threads` is `project.num_threads` (0 = automatic)."""
    env = os.environ if env is None else env
    if num_threads > 0:
        return num_threads, f"project.num_threads={num_threads}"
    explicit = _positive_int(env, THREADS_ENV)
    if explicit is not None:
        return explicit, f"{THREADS_ENV}={explicit}"
    cores = len(os.sched_getaffinity(0))
    parallel = _positive_int(env, PARALLEL_ENV) or 1
    share = max(1, cores // parallel)
    why = f"{cores} core(s) allowed / {parallel} process(es) side by side = {share}"
    idle = free_cores() if measure and share > 1 else None
    if idle is not None:
        free = max(1, int(idle + 0.5))
        why += f"; {idle:.1f} core(s) idle now"
        share = min(share, free)
    return share, why

"""The thread budget: explicit counts win, a handed-down parallelism divides the cores, busy cores count."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sim2real.threads import free_cores, thread_budget


def cores() -> int:
    """The cores this process may use now (read at call time: the affinity can change under a run)."""
    return len(os.sched_getaffinity(0))


def test_explicit_counts_win() -> None:
    assert thread_budget(3, env={"SIM2REAL_THREADS": "1"})[0] == 3  # project.num_threads first
    assert thread_budget(0, env={"SIM2REAL_THREADS": "2", "SIM2REAL_PARALLEL": "8"}) == (2, "SIM2REAL_THREADS=2")


def test_parallel_processes_share_the_allowed_cores() -> None:
    CORES = cores()
    n, why = thread_budget(0, env={"SIM2REAL_PARALLEL": str(CORES)}, measure=False)
    assert n == 1 and f"{CORES} core(s) allowed / {CORES} process(es)" in why
    assert thread_budget(0, env={"SIM2REAL_PARALLEL": str(4 * CORES)}, measure=False)[0] == 1  # never 0
    assert thread_budget(0, env={}, measure=False)[0] == CORES


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ValueError, match="SIM2REAL_PARALLEL='two'"):
        thread_budget(0, env={"SIM2REAL_PARALLEL": "two"})
    with pytest.raises(ValueError, match="SIM2REAL_THREADS='0'"):
        thread_budget(0, env={"SIM2REAL_THREADS": "0"})


def test_free_cores_counts_idle_time_of_the_allowed_cpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stat = tmp_path / "stat"
    samples = iter([
        "cpu  0 0 0 0 0 0 0 0\ncpu0 100 0 0 100 0 0 0 0\ncpu1 100 0 0 100 0 0 0 0\n",
        # cpu0 fully busy for 100 jiffies, cpu1 idle for 75 of 100
        "cpu  0 0 0 0 0 0 0 0\ncpu0 200 0 0 100 0 0 0 0\ncpu1 125 0 0 175 0 0 0 0\n",
    ])
    real_read = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: next(samples) if self == stat else real_read(self, *a, **k))
    assert free_cores({0, 1}, sample_s=0.0, stat=stat) == pytest.approx(0.75)
    assert free_cores({0}, sample_s=0.0, stat=tmp_path / "missing") is None


def test_free_cores_on_this_machine_is_within_the_allowed_cores() -> None:
    idle = free_cores(sample_s=0.05)
    assert idle is None or 0.0 <= idle <= cores()

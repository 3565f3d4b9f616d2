"""Run a long-lived command tree (e.g. `dagster dev`) that stops when its wrapper is asked to stop.

`dagster dev` runs a webserver, a daemon and a code server as children. A wrapper that only waits
for it leaves all of them serving when the wrapper gets SIGTERM; and a shell that ignores SIGINT
(nohup, many CI runners) passes that disposition on, so the tree ignores Ctrl-C as well.
`run_group` therefore:

- starts the command in its own process group, with SIGINT/SIGTERM/SIGHUP back at their defaults
  and no blocked signals (whatever the starting shell ignored);
- forwards SIGTERM, SIGINT and SIGHUP it receives to the whole group;
- when the command ends (or after a stop request), stops what is left of the group: SIGTERM, then
  SIGKILL after `stop_timeout` seconds. Nothing of the tree outlives the wrapper.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["run_group", "group_members", "stop_group"]

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _reset_signals() -> None:  # runs in the child between fork and exec
    for sig in (*FORWARDED, signal.SIGQUIT, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group (Linux /proc; falls back to a kill(0) probe)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
            return [pgid]
        except (ProcessLookupError, PermissionError):
            return []
    out = []
    for d in proc.iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            out.append(int(d.name))
    return out


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_group(pgid: int, timeout: float = 20.0, first: int = signal.SIGTERM) -> bool:
    """Signal a process group, wait up to `timeout` s for it to empty, then SIGKILL it; True if it was clean."""
    if not group_members(pgid):
        return True
    _signal_group(pgid, first)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not group_members(pgid):
            return True
        time.sleep(0.2)
    _signal_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return False


def run_group(cmd: Sequence[str], cwd: Path | None = None, env: Mapping[str, str] | None = None,
              stop_timeout: float = 20.0) -> int:
    """Run `cmd` in its own process group until it exits or this process is asked to stop; its exit code."""
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=dict(env) if env is not None else None,
                            process_group=0, preexec_fn=_reset_signals)
    pgid = proc.pid
    requested: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        requested.append(signum)
        _signal_group(pgid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        deadline = None
        while True:
            try:
                rc = proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if requested and deadline is None:
                    deadline = time.monotonic() + stop_timeout
                if deadline is not None and time.monotonic() > deadline:
                    _signal_group(pgid, signal.SIGKILL)  # it ignored the stop request
    finally:
        stop_group(pgid, stop_timeout)  # whatever the command left behind (children of children)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if requested:
        return rc if rc > 0 else 128 + requested[0]
    return rc

"""Run DVC from Dagster: `dvc repro --single-item STAGE` so DVC hashes, runs and locks.

Every materialization goes through DVC, so `dvc.lock` always records what Dagster produced and
`dvc status` stays clean. DVC takes a repository lock; two `dvc` processes at once fail, so callers
are serialised (Dagster pool `dvc_repo`) and a lock collision (a `dvc` started by hand, or
another Dagster run) is retried with backoff; see `run_dvc`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml


class DvcError(RuntimeError):
    pass


def dvc_executable() -> str:
    exe = Path(sys.executable).with_name("dvc")
    return str(exe) if exe.exists() else "dvc"


def dvc_env(root: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if root is not None:
        env["SIM2REAL_ROOT"] = str(root)  # the stages DVC runs belong to this repository
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env.setdefault("DVC_NO_ANALYTICS", "1")
    return env


# DVC's two ways of saying "another dvc process holds this": the repository lock (no PID in the
# message; `.dvc/tmp/lock` holds it) and the rwlock on a stage's deps/outs ("... is busy, it is being
# blocked by:\n  (PID 123): dvc repro ..."). Both are retried; neither is a failure of the stage.
_LOCKED = "Unable to acquire lock"
_BUSY = re.compile(r"is busy, it is being blocked by:\s*\(PID (\d+)\):?\s*([^\n]*)")


def _is_lock_collision(out: str) -> bool:
    return _LOCKED in out or _BUSY.search(out) is not None


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def lock_holder(out: str, root: Path) -> str:
    """`PID n (command)` of the process holding the DVC lock, from DVC's message or `.dvc/tmp/lock`."""
    m = _BUSY.search(out)
    if m:
        return f"PID {m.group(1)} ({m.group(2).strip() or _cmdline(int(m.group(1))) or 'unknown command'})"
    try:
        pid = (root / ".dvc" / "tmp" / "lock").read_text().strip()
    except OSError:
        pid = ""
    if pid.isdigit():
        return f"PID {pid} ({_cmdline(int(pid)) or 'not running any more: remove .dvc/tmp/lock'})"
    return "another dvc process"


def run_dvc(args: list[str], root: Path, log: Callable[[str], None] = print,
            retries: int = 6, backoff_s: float = 2.0, env: dict[str, str] | None = None) -> str:
    """Run `dvc ARGS` in `root`, streaming its output to `log`.

    While another dvc process holds the repository ("Unable to acquire lock") or a stage's files
    ("... is busy, it is being blocked by: (PID ...)"), retry with exponential backoff
    (`backoff_s`, doubling, `retries` times); when the wait runs out, raise a one-line `DvcError`
    naming the other process. `env` adds to the environment of dvc and the stages it runs.
    """
    waited = 0.0
    for attempt in range(retries + 1):
        proc = subprocess.Popen([dvc_executable(), *args], cwd=root, env={**dvc_env(root), **(env or {})}, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1)
        lines: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            lines.append(line)
            if line:
                log(line)
        rc = proc.wait()
        out = "\n".join(lines)
        if rc == 0:
            return out
        if _is_lock_collision(out):
            holder = lock_holder(out, root)
            if attempt < retries:
                wait = backoff_s * (2**attempt)
                log(f"DVC repository {root} is busy ({holder}); retrying in {wait:.0f}s")
                time.sleep(wait)
                waited += wait
                continue
            raise DvcError(f"`dvc {' '.join(args)}`: the DVC repository {root} is busy: {holder} still holds "
                           f"it after {waited:.0f}s of retries; let it finish (or stop it) and run again")
        raise DvcError(f"`dvc {' '.join(args)}` failed with exit code {rc}:\n{out[-4000:]}")
    raise AssertionError("unreachable")


def lock_entry(root: Path, address: str) -> dict:
    """The dvc.lock entry of a stage address (`name` or `name@item`)."""
    lock = root / "dvc.lock"
    if not lock.exists():
        return {}
    data = yaml.safe_load(lock.read_text()) or {}
    return (data.get("stages") or {}).get(address, {})


def out_hash(root: Path, address: str, path: str | None = None) -> str | None:
    """The DVC md5 of a stage's out `path` (default: its first non-metrics out; dirs end in `.dir`)."""
    outs = lock_entry(root, address).get("outs") or []
    for out in outs:
        if (path is None and not out["path"].startswith("data/metrics/")) or out["path"] == path:
            return out.get("md5")
    return None

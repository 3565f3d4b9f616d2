"""Run DVC from Dagster: `dvc repro --single-item STAGE` so DVC hashes, runs and locks.

Every materialization goes through DVC, so `dvc.lock` always records what Dagster produced and
`dvc status` stays clean. DVC takes a repository lock; two `dvc` processes at once fail, so callers
are serialised (Dagster pool `dvc_repo`) and a lock collision is retried with backoff.
"""

from __future__ import annotations

import os
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


def run_dvc(args: list[str], root: Path, log: Callable[[str], None] = print,
            retries: int = 6, backoff_s: float = 2.0) -> str:
    """Run `dvc ARGS` in `root`, streaming its output to `log`; retry when the repo lock is held."""
    for attempt in range(retries + 1):
        proc = subprocess.Popen([dvc_executable(), *args], cwd=root, env=dvc_env(root), text=True,
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
        if attempt < retries and "Unable to acquire lock" in out:
            wait = backoff_s * (2**attempt)
            log(f"DVC repository is locked by another process; retrying in {wait:.0f}s")
            time.sleep(wait)
            continue
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

"""Shared fixtures: the real project copied into a temp dir and shrunk with the `tiny` profile."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CAMVID = REPO.parent / "shared" / "data" / "camvid"
BIN = Path(sys.executable).parent

# one torch thread per test process: the suite often shares 2 cores with other work
os.environ.setdefault("SIM2REAL_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

COPY_IGNORE = shutil.ignore_patterns(".venv", "data", ".git", "cache", "tmp", "__pycache__", ".pytest_cache",
                                     ".ruff_cache", "*.egg-info", "dvclive", "dvc.lock", "history",
                                     "storage", "schedules", ".logs_queue", ".telemetry", "logs")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """In-process torch work uses one thread, like the stage subprocesses (SIM2REAL_THREADS=1)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def camvid_or_skip() -> Path:
    if not (CAMVID / "train").is_dir():
        pytest.skip(f"CamVid not found at {CAMVID} (CI has it; locally place it there)")
    return CAMVID


def env_with_bin() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SIM2REAL_ROOT", None)  # each command finds its project from its cwd
    env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")
    return env


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env_with_bin(), text=True, capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def make_project(dest: Path, profile: str | None = "tiny", dvc: bool = True) -> Path:
    """A copy of this project (code, params, dvc.yaml) as its own git + DVC repository."""
    shutil.copytree(REPO, dest, ignore=COPY_IGNORE)
    (dest / "data").mkdir(exist_ok=True)
    if profile:
        from sim2real.profiles import apply_profile

        apply_profile(dest / "params.yaml", profile)
    if dvc:
        run(["git", "init", "-q"], dest)
        run(["git", "config", "user.email", "t@example.com"], dest)
        run(["git", "config", "user.name", "test"], dest)
        if not (dest / ".dvc").exists():
            run([str(BIN / "dvc"), "init", "-q"], dest)
        run([str(BIN / "dvc"), "config", "core.analytics", "false"], dest)
        run(["git", "add", "-A"], dest)
        run(["git", "commit", "-qm", "init"], dest)
    return dest


@pytest.fixture
def tiny_project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj")


@pytest.fixture(scope="session")
def repro_project(tmp_path_factory) -> Path:
    """The whole chain built once by `dvc repro` on the tiny profile (tests that edit it undo their edit)."""
    root = make_project(tmp_path_factory.mktemp("repro") / "proj")
    run([str(BIN / "dvc"), "repro"], root, timeout=900)
    return root

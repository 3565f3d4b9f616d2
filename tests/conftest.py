"""Shared fixtures: the real project copied into a temp dir and shrunk with the `tiny` profile."""

from __future__ import annotations

import multiprocessing.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
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


# the fast tier (`make test-fast`: not e2e, not slow) runs in-process: a test that launches one of these
# tools (or any Python) is end-to-end. git and system helpers (ldconfig from ctypes) are cheap and allowed.
E2E_TOOLS = {"dvc", "sim2real", "dagster", "dagster-webserver", "dagster-daemon", "chromium", "chromium-browser",
             "google-chrome", "chrome", "torchrun", "make"}


@pytest.fixture(autouse=True)
def _fast_tier_runs_in_process(request, monkeypatch):
    """Fail a test outside `e2e`/`slow` that launches a process, naming it: the marker rule holds by itself."""
    if request.node.get_closest_marker("e2e") or request.node.get_closest_marker("slow"):
        yield
        return
    real_init = subprocess.Popen.__init__

    def guarded(self, args, *a, **kw):
        argv = [args] if isinstance(args, str | bytes | os.PathLike) else list(args)
        names = {Path(str(a).split()[0]).name for a in argv[:3] if str(a).strip()}
        if names & E2E_TOOLS or any(n.startswith("python") for n in names):
            raise RuntimeError(f"{request.node.nodeid} launches `{' '.join(map(str, argv))[:160]}`: a test that "
                               "launches a process is end-to-end; mark it @pytest.mark.e2e (make test-fast runs "
                               "in-process)")
        real_init(self, args, *a, **kw)

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded)

    def spawned(path, args, passfds):  # multiprocessing's spawn / forkserver start (not through Popen)
        raise RuntimeError(f"{request.node.nodeid} starts a Python worker process (`{' '.join(map(str, args))[:120]}`): "
                           "a test that launches a process is end-to-end; mark it @pytest.mark.e2e")

    monkeypatch.setattr(multiprocessing.util, "spawnv_passfds", spawned)
    yield


# Parallel runs (`make test`: pytest-xdist `-n auto --dist loadfile`): a file's tests stay on one worker, so
# module fixtures are built once and tests that share one (edit and undo) never interleave; each worker
# builds its own `repro_project`. The files that build a whole tiny chain go first, longest first, so the
# workers finish together (xdist hands out files in this order with --no-loadscope-reorder).
# (`--dist loadgroup` would keep all repro_project users on one worker, but xdist 3.8 marks groups through
# `Item._nodeid`, which pytest 9.2 no longer reads: the groups were silently ignored.)
HEAVY_FIRST = ("test_pipeline", "test_dagster_dvc_sync", "test_dagster_ui_browser", "test_label_budget",
               "test_recipe", "test_scaleout", "test_bench", "test_rootcause", "test_real_to_real")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(Path(item.nodeid.split("::")[0]).stem, len(rank)))  # stable


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
        from dvc.repo import Repo

        run(["git", "init", "-q"], dest)
        run(["git", "config", "user.email", "t@example.com"], dest)
        run(["git", "config", "user.name", "test"], dest)
        if not (dest / ".dvc").exists():
            Repo.init(dest).close()  # in-process: the same as `dvc init`, without a process per project
        with Repo(dest) as repo, repo.config.edit() as conf:
            conf["core"]["analytics"] = False
        run(["git", "add", "-A"], dest)
        run(["git", "commit", "-qm", "init"], dest)
    return dest


@pytest.fixture
def tiny_project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj")


@contextmanager
def scratch(factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """A directory for a module- or session-scoped fixture, removed when the fixture ends.

    A tiny chain with its DVC cache is about 400 MB; pytest removes passing tests' `tmp_path`
    (`tmp_path_retention_policy = "failed"`), and this does the same for shared fixtures, so a run's
    disk use stays at a few chains instead of growing to gigabytes."""
    path = factory.mktemp(name)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def repro_project(tmp_path_factory) -> Iterator[Path]:
    """The whole chain built once by `dvc repro` on the tiny profile (tests that edit it undo their edit)."""
    with scratch(tmp_path_factory, "repro") as base:
        root = make_project(base / "proj")
        run([str(BIN / "dvc"), "repro"], root, timeout=900)
        yield root

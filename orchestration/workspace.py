"""Runs with params overrides run as DVC experiments in their own workspace, never in yours.

A run tagged `sim2real/set` = "key=value;..." (the nightly schedule sets a new synthetic seed this
way) must not change the workspace a person works in: `params.yaml` and `dvc.lock` there stay as
they are. Like `dvc exp run --temp`, the run gets an isolated workspace: a git worktree of HEAD
(plus the workspace's uncommitted changes to tracked files, `params.yaml` and `dvc.lock`) that
shares the DVC cache and the DuckDB store, with the overrides applied to its `params.yaml`. Every
asset step runs `dvc repro --single-item` there and then `dvc exp save`, so the run is one DVC
experiment: `dvc exp show` lists it (named `dagster-<run id>`), with its params and metrics, and
`dvc exp apply` brings it into the workspace if wanted. Each materialization records what ran:
the experiment, its workspace, the git revision, the overrides and the code version there.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg

from orchestration.dvc import dvc_env, dvc_executable
from orchestration.params_tags import SET_TAG, parse_overrides, write_overrides

__all__ = ["RUNS_DIR_ENV", "runs_dir", "run_workspace", "prepare_workspace", "experiment_name",
           "save_experiment", "run_provenance"]

RUNS_DIR_ENV = "SIM2REAL_RUNS_DIR"  # where isolated run workspaces live (default: the temp folder)
READY = ".sim2real-run-ready"


def runs_dir(root: Path) -> Path:
    base = Path(os.environ[RUNS_DIR_ENV]) if os.environ.get(RUNS_DIR_ENV) else Path(tempfile.gettempdir()) / "sim2real-runs"
    return base / hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:10]


def experiment_name(run_id: str) -> str:
    return f"dagster-{run_id[:8]}"


def _git(args: list[str], cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _dvc(args: list[str], cwd: Path, check: bool = True) -> str:
    proc = subprocess.run([dvc_executable(), *args], cwd=cwd, env=dvc_env(cwd), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"`dvc {' '.join(args)}` in {cwd} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return proc.stdout


def prepare_workspace(root: Path, run_id: str, overrides: list[str],
                      log: Callable[[str], None] = print) -> Path:
    """The isolated workspace of one run (made once per run; later steps reuse it)."""
    ws = runs_dir(root) / run_id
    if (ws / READY).exists():
        return ws
    _prune(root, keep_s=2 * 86400)
    # validate first: a bad key fails the run before anything is created
    probe = Path(tempfile.mkdtemp()) / "params.yaml"
    shutil.copy2(root / "params.yaml", probe)
    write_overrides(probe, overrides)
    shutil.rmtree(probe.parent)
    if ws.exists():  # half made by a killed step
        subprocess.run(["git", "worktree", "remove", "--force", str(ws)], cwd=root, capture_output=True)
        shutil.rmtree(ws, ignore_errors=True)
    ws.parent.mkdir(parents=True, exist_ok=True)
    _git(["worktree", "add", "--detach", "--quiet", str(ws), "HEAD"], root)
    # the workspace as it stands (uncommitted edits to tracked files, params, the lock) is the baseline
    changed = [p for p in _git(["diff", "--name-only", "HEAD"], root).splitlines() if p]
    for rel in {*changed, "params.yaml", "dvc.lock"}:
        src = root / rel
        if src.is_file():
            (ws / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, ws / rel)
    cache = _dvc(["cache", "dir"], root).strip() or str(root / ".dvc" / "cache")
    _dvc(["cache", "dir", "--local", cache], ws)
    _dvc(["config", "--local", "core.analytics", "false"], ws, check=False)
    (ws / "data").mkdir(exist_ok=True)
    store = root / "data" / "store"
    store.mkdir(parents=True, exist_ok=True)
    if not (ws / "data" / "store").exists():
        (ws / "data" / "store").symlink_to(store, target_is_directory=True)  # one DuckDB: the time series
    _dvc(["checkout", "--quiet"], ws, check=False)  # what the cache has; the rest is rebuilt
    write_overrides(ws / "params.yaml", overrides)
    (ws / READY).write_text(";".join(overrides))
    log(f"run workspace {ws}: HEAD {_git(['rev-parse', '--short', 'HEAD'], ws)} + overrides {overrides}")
    return ws


def _prune(root: Path, keep_s: float) -> None:
    """Remove run workspaces older than `keep_s` (their experiments stay in git refs and the DVC cache)."""
    import time

    base = runs_dir(root)
    if not base.is_dir():
        return
    for ws in base.iterdir():
        if ws.is_dir() and time.time() - ws.stat().st_mtime > keep_s:
            subprocess.run(["git", "worktree", "remove", "--force", str(ws)], cwd=root, capture_output=True)
            shutil.rmtree(ws, ignore_errors=True)
    subprocess.run(["git", "worktree", "prune"], cwd=root, capture_output=True)


def run_workspace(context: dg.AssetExecutionContext, root: Path) -> Path:
    """`root` for a plain run; the run's isolated workspace for a run with `sim2real/set` overrides."""
    tag = context.run.tags.get(SET_TAG)
    overrides = parse_overrides(tag) if tag else []
    if not overrides:
        return root
    return prepare_workspace(root, context.run_id, overrides, log=context.log.info)


def save_experiment(context: dg.AssetExecutionContext, root: Path, work: Path, addresses: list[str]) -> None:
    """After each step of an isolated run: the run so far as the DVC experiment `dagster-<run id>`.

    Only the stages this step ran are committed (`dvc exp save` with targets): a plain `dvc exp save`
    would record the overridden params against every other stage's old outputs, marking them current.
    """
    if work == root:
        return
    name = experiment_name(context.run_id)
    _dvc(["exp", "save", "--force", "--quiet", "--name", name, *addresses], work)
    context.log.info(f"saved as DVC experiment {name} (`dvc exp show` lists it)")


def run_provenance(context: dg.AssetExecutionContext, root: Path, work: Path,
                   code_version: Callable[[], str]) -> dict[str, Any]:
    """What actually ran, for the materialization's metadata (empty for a plain run)."""
    if work == root:
        return {}
    return {"experiment": experiment_name(context.run_id), "run_workspace": dg.MetadataValue.path(str(work)),
            "git_rev": _git(["rev-parse", "HEAD"], work), "params_overrides": context.run.tags.get(SET_TAG, ""),
            "code_version_ran": code_version()}

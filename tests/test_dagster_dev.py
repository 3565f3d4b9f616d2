"""The real `dagster dev` webserver loads workspace.yaml and shows every stage as an asset."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sim2real.stages import STAGES
from tests.conftest import BIN, REPO, env_with_bin, make_project

pytestmark = pytest.mark.e2e  # launches processes: not in `make test-fast`

QUERY = '{"query": "{ assetNodes { assetKey { path } } }"}'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.read()
        except Exception as err:  # noqa: BLE001 - keep polling until the deadline
            last = err
            time.sleep(1)
    raise AssertionError(f"{url} did not answer within {timeout}s: {last}")


def _ignore_sigint() -> None:  # what nohup and many CI runners leave to the processes they start
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    st = _proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children, grandchildren, ...)."""
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and (st := _proc_stat(int(d.name))) is not None and st[0] not in ("Z", "X"):
            parent[int(d.name)] = st[1]
    out, frontier = set(), {pid}
    while frontier:
        frontier = {c for c, pp in parent.items() if pp in frontier} - out
        out |= frontier
    return out


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def kill_leftovers(proc: subprocess.Popen, tree: set[int]) -> None:
    """Last resort for a failing test: nothing it started may outlive it."""
    for pid in tree | descendants(proc.pid):
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.mark.timeout(300)
def test_dagster_dev_shows_every_asset_and_stops_by_pid(tmp_path: Path) -> None:
    """Started like nohup does (SIGINT ignored), `sim2real ui` serves every asset, and SIGTERM to its PID
    stops the webserver, daemon and code server: the port is free and no process is left."""
    root = make_project(tmp_path / "proj", dvc=False)
    port = free_port()
    env = env_with_bin()
    log = open(tmp_path / "dagster.log", "w")
    # `sim2real ui` = dagster dev -w workspace.yaml with the project-local DAGSTER_HOME; --no-watch: no
    # definitions watcher (tests/test_dagster_ui_browser.py runs the default, with it)
    proc = subprocess.Popen([str(BIN / "sim2real"), "ui", "--port", str(port), "--stop-timeout", "20", "--no-watch"],
                            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_ignore_sigint)
    tree: set[int] = set()
    try:
        info = json.loads(wait_http(f"http://127.0.0.1:{port}/server_info", 150))
        assert "dagster_webserver_version" in info
        deadline = time.monotonic() + 90
        keys: set[str] = set()
        while time.monotonic() < deadline and not set(STAGES) <= keys:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=QUERY.encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                nodes = json.loads(r.read())["data"]["assetNodes"]
            keys = {"/".join(n["assetKey"]["path"]) for n in nodes}
            time.sleep(1)
        assert set(STAGES) <= keys, (keys, (tmp_path / "dagster.log").read_text()[-3000:])
        tree = descendants(proc.pid)
        assert len(tree) >= 3, tree  # dagster dev, webserver, daemon (+ code server)
        os.kill(proc.pid, signal.SIGTERM)  # stop it by its PID, as a service manager would
        proc.wait(timeout=60)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(alive(p) for p in tree):
            time.sleep(0.2)
        left = {p: Path(f"/proc/{p}/cmdline").read_bytes()[:200] for p in tree if alive(p)}
        assert not left, left
        assert not port_open(port), f"port {port} still answers after `sim2real ui` stopped"
    finally:
        kill_leftovers(proc, tree)
        log.close()
    # the instance is project-local, so run history and schedules survive a restart
    assert (root / ".dagster_home" / "history").exists() or (root / ".dagster_home" / "storage").exists()


CHILD = """
import os, signal, subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
open(sys.argv[1], "w").write(str(grandchild.pid))
time.sleep(600)
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_run_group_stops_the_whole_tree_even_a_stubborn_one(tmp_path: Path, sig: int) -> None:
    """The wrapper forwards the signal to the group and SIGKILLs what ignores it, also under nohup."""
    pidfile = tmp_path / "grandchild.pid"
    wrapper = ("import sys; from sim2real.procgroup import run_group; "
               f"sys.exit(run_group([sys.executable, '-c', {CHILD!r}, {str(pidfile)!r}], stop_timeout=2))")
    proc = subprocess.Popen([sys.executable, "-c", wrapper], cwd=REPO, preexec_fn=_ignore_sigint)
    tree: set[int] = set()
    try:
        deadline = time.monotonic() + 30
        while not pidfile.exists() or not pidfile.read_text():
            assert time.monotonic() < deadline, "the child never started"
            time.sleep(0.1)
        grandchild = int(pidfile.read_text())
        tree = descendants(proc.pid)
        assert grandchild in tree
        os.kill(proc.pid, sig)
        rc = proc.wait(timeout=20)
        assert rc == 128 + sig
        assert not any(alive(p) for p in tree), [p for p in tree if alive(p)]
    finally:
        kill_leftovers(proc, tree)

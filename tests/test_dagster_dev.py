"""The real `dagster dev` webserver loads workspace.yaml and shows every stage as an asset."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from sim2real.stages import STAGES
from tests.conftest import BIN, env_with_bin, make_project

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


@pytest.mark.timeout(240)
def test_dagster_dev_shows_every_asset(tmp_path: Path) -> None:
    root = make_project(tmp_path / "proj", dvc=False)
    port = free_port()
    env = env_with_bin()
    log = open(tmp_path / "dagster.log", "w")
    # own process group: dagster dev's code server, webserver and daemon are children
    # `sim2real ui` = dagster dev -w workspace.yaml with the project-local DAGSTER_HOME
    proc = subprocess.Popen([str(BIN / "sim2real"), "ui", "--port", str(port)],
                            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        info = json.loads(wait_http(f"http://127.0.0.1:{port}/server_info", 120))
        assert "dagster_webserver_version" in info
        deadline = time.monotonic() + 90
        keys: set[str] = set()
        while time.monotonic() < deadline and keys != set(STAGES):
            req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=QUERY.encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                nodes = json.loads(r.read())["data"]["assetNodes"]
            keys = {"/".join(n["assetKey"]["path"]) for n in nodes}
            time.sleep(1)
        assert keys == set(STAGES), (keys, (tmp_path / "dagster.log").read_text()[-3000:])
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    # the instance is project-local, so run history and schedules survive a restart
    assert (root / ".dagster_home" / "history").exists() or (root / ".dagster_home" / "storage").exists()

"""`sim2real ui`'s definitions watcher (orchestration/reload.py) against a GraphQL endpoint on 127.0.0.1.

The endpoint stands in for the Dagster webserver: it answers `assetNodes { opVersion }` with the code
versions it "loaded" and records every `reloadRepositoryLocation` mutation; a reload loads the files'
versions, as Dagster's does. The real webserver is exercised in tests/test_dagster_ui_browser.py.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from orchestration.params_tags import write_overrides
from orchestration.reload import LOCATION, DefinitionsWatcher, file_versions, stamp
from sim2real.config import load_config
from tests.conftest import make_project


class FakeWebserver:
    def __init__(self, root: Path, fail_reload: bool = False) -> None:
        self.root, self.fail_reload = root, fail_reload
        self.loaded = file_versions(root)
        self.reloads: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if "reloadRepositoryLocation" in body["query"]:
                    fake.reloads.append(body["variables"]["name"])
                    if fake.fail_reload:
                        data = {"reloadRepositoryLocation": {"__typename": "WorkspaceLocationEntry",
                                "locationOrLoadError": {"__typename": "PythonError", "message": "SyntaxError"}}}
                    else:
                        fake.loaded = file_versions(fake.root)
                        data = {"reloadRepositoryLocation": {"__typename": "WorkspaceLocationEntry",
                                "locationOrLoadError": {"__typename": "RepositoryLocation"}}}
                else:
                    data = {"assetNodes": [{"assetKey": {"path": [k]}, "opVersion": v}
                                           for k, v in fake.loaded.items()]}
                out = json.dumps({"data": data}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj", dvc=False)


def bump_hardest_k(root: Path) -> None:
    k = load_config(root / "params.yaml").evaluate.hardest_k
    assert write_overrides(root / "params.yaml", [f"evaluate.hardest_k={k + 1}"])


def test_a_params_edit_reloads_once_and_names_the_stages_it_moved(project: Path) -> None:
    web, lines = FakeWebserver(project), []
    try:
        watcher = DefinitionsWatcher(project, web.port, log=lines.append)
        assert watcher.check() == [] and web.reloads == []  # loaded = files: nothing to do
        bump_hardest_k(project)
        moved = watcher.check()
        # evaluate.hardest_k is a param of the evaluation stages only: the rest keep their version
        assert "gap_report" in moved and "synthetic_scenes" not in moved and "pretrained_model" not in moved
        assert web.reloads == [LOCATION] and web.loaded == file_versions(project)
        assert watcher.check() == [] and web.reloads == [LOCATION]  # in step again: no second reload
        assert any("definitions reloaded, new code version for" in line and "gap_report" in line for line in lines)
    finally:
        web.close()


def test_a_params_file_that_does_not_load_is_reported_and_left_alone(project: Path) -> None:
    web, lines = FakeWebserver(project), []
    try:
        watcher = DefinitionsWatcher(project, web.port, log=lines.append)
        params = project / "params.yaml"
        params.write_text(params.read_text() + "\nevaluate: [half-written\n")
        assert watcher.check() == [] and web.reloads == []
        assert any("does not load" in line and "params.yaml" in line for line in lines), lines
    finally:
        web.close()


def test_a_reload_that_fails_is_not_repeated_for_the_same_files(project: Path) -> None:
    web, lines = FakeWebserver(project, fail_reload=True), []
    try:
        watcher = DefinitionsWatcher(project, web.port, log=lines.append)
        bump_hardest_k(project)
        assert watcher.check() == [] and web.reloads == [LOCATION]
        assert any("reloading definitions failed (PythonError: SyntaxError)" in line for line in lines)
        assert watcher.check() == [] and web.reloads == [LOCATION]  # same files: not hammered
        bump_hardest_k(project)  # the next edit is tried again
        watcher.check()
        assert web.reloads == [LOCATION, LOCATION]
    finally:
        web.close()


def test_the_thread_waits_for_the_webserver_and_reacts_to_an_edit(project: Path) -> None:
    before = stamp(project)
    bump_hardest_k(project)
    assert stamp(project) != before  # the cheap check sees the edit
    web = FakeWebserver(project)
    web.loaded = {**web.loaded, "gap_report": "loaded-before-the-edit"}
    watcher = DefinitionsWatcher(project, web.port, interval=0.05, log=lambda _line: None)
    watcher.start()
    try:
        deadline = time.monotonic() + 60
        while not watcher.reloads and time.monotonic() < deadline:
            time.sleep(0.05)
        assert web.reloads == [LOCATION] and watcher.reloads == 1
    finally:
        watcher.stop()
        watcher.join(timeout=10)
        web.close()
    assert not watcher.is_alive()

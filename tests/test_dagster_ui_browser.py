"""The real Dagster UI in headless Chromium, on a tiny chain built by `dvc repro` (issue 17, "Also").

`sim2real ui` (dagster dev: webserver, daemon, code server) serves a copy of the tiny chain on a free
port on 127.0.0.1. The daemon's `dvc_lock_observer` sensor reports what `dvc repro` built; the asset
graph opens in Chromium (driven over the DevTools pipe, tests/cdp.py), the first-run pop-up is
dismissed, a params edit makes gap_report out of date and gap_report is launched through GraphQL;
after it succeeds, the outputs, `dvc status` and the DuckDB rows are checked. Screenshots are kept
under the test's tmp dir; with SIM2REAL_SCREENSHOTS=DIR they are copied there too (docs/screenshots).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.cdp import Browser, chromium
from tests.conftest import BIN, env_with_bin, run
from tests.test_dagster_dev import descendants, free_port, kill_leftovers, wait_http

pytestmark = pytest.mark.e2e  # launches dagster dev, Chromium, dvc

LOCATION, REPOSITORY = "orchestration.definitions", "__repository__"
# the chain's groups, expanded in the graph (what a click on a collapsed group does, stored by the UI)
EXPANDED = {"expanded": ",".join(f"global@global:{g}" for g in ("real", "synthetic", "models", "evaluation"))}
LAUNCH = """mutation($p: ExecutionParams!) { launchPipelineExecution(executionParams: $p) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on InvalidSubsetError { message } ... on RunConfigValidationInvalid { errors { message } } } }"""
LATEST = """query($k: [AssetKeyInput!]) { assetNodes(assetKeys: $k) { assetMaterializations(limit: 1) {
  runId tags { key value } } } }"""


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql",
                                 data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        out = json.loads(r.read())
    assert "errors" not in out, out["errors"]
    return out["data"]


def latest_materialization(port: int, asset: str) -> dict | None:
    nodes = graphql(port, LATEST, {"k": [{"path": [asset]}]})["assetNodes"]
    mats = nodes[0]["assetMaterializations"] if nodes else []
    return mats[0] if mats else None


def stale_status(port: int, asset: str) -> str:
    nodes = graphql(port, "query($k: [AssetKeyInput!]) { assetNodes(assetKeys: $k) { staleStatus } }",
                    {"k": [{"path": [asset]}]})["assetNodes"]
    return nodes[0]["staleStatus"]


def lock_md5(root: Path, address: str) -> str:
    entry = yaml.safe_load((root / "dvc.lock").read_text())["stages"][address]
    return next(o["md5"] for o in entry["outs"] if not o["path"].startswith("data/metrics/"))


def gap_runs(root: Path) -> list[dict]:
    import duckdb

    with duckdb.connect(str(root / "data" / "store" / "sim2real.duckdb"), read_only=True) as con:
        rows = con.execute("select run_id, params_json from runs where stage = 'gap_report'").fetchall()
    return [{"run_id": r[0], "params": json.loads(r[1])} for r in rows]


def wait_until(what: str, fn, timeout: float, every: float = 2.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        time.sleep(every)


def click_button(browser: Browser, label: str) -> bool:
    return browser.js(f"""(() => {{
        const b = Array.from(document.querySelectorAll('button')).find(x => x.innerText.trim() === {label!r});
        if (!b) return false; b.click(); return true; }})()""")


@pytest.mark.timeout(900)
def test_ui_shows_the_dvc_chain_and_runs_an_asset_launched_through_graphql(repro_project: Path,
                                                                          tmp_path: Path) -> None:
    browser_exe = chromium()
    if browser_exe is None:  # `make test` installs it (make chromium)
        pytest.fail("chromium not installed: run `make chromium` (Debian: apt-get install -y chromium)")
    from orchestration.params_tags import write_overrides
    from sim2real.config import load_config

    root = tmp_path / "proj"
    shutil.copytree(repro_project, root, ignore=shutil.ignore_patterns(".dagster_home"), symlinks=True)
    shots = tmp_path / "screenshots"
    port = free_port()
    log = open(tmp_path / "dagster.log", "w")
    # the code server answers the daemon and the webserver; on a loaded 2-core machine (CI) a request can
    # take longer than Dagster's default 60 s, which fails the run's launch: give it room
    env = {**env_with_bin(), "DAGSTER_GRPC_TIMEOUT_SECONDS": "300", "DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS": "300"}
    proc = subprocess.Popen([str(BIN / "sim2real"), "ui", "--port", str(port), "--stop-timeout", "20"],
                            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    tree: set[int] = set()
    try:
        wait_http(f"http://127.0.0.1:{port}/server_info", 240)
        # the daemon's dvc_lock_observer reports what `dvc repro` built: Dagster shows DVC's md5s, no run
        seen = wait_until("dvc_lock_observer reported gap_report",
                          lambda: latest_materialization(port, "gap_report"), 240)
        tags = {t["key"]: t["value"] for t in seen["tags"]}
        assert tags["dagster/data_version"] == lock_md5(root, "gap_report")
        assert not seen["runId"]  # runless: reported from dvc.lock, nothing recomputed

        with Browser(browser_exe, tmp_path / "chromium", 1440, 900) as browser:
            browser.goto(f"http://127.0.0.1:{port}/asset-groups")
            # first visit: the "Join the Dagster community" pop-up covers the graph; dismiss it
            browser.wait_for("Array.from(document.querySelectorAll('button')).some(b => b.innerText.trim() === "
                             "'Skip')", 180, "the first-run pop-up")
            browser.screenshot(shots / "00_first_run_popup.png")
            assert click_button(browser, "Skip")
            browser.wait_for("!Array.from(document.querySelectorAll('button')).some(b => b.innerText.trim() === "
                             "'Skip')", 30, "the pop-up gone")
            assert browser.js("localStorage.getItem('communityNux')") == '"1"'  # it stays dismissed
            browser.js(f"localStorage.setItem('asset-graph-open-graph-nodes-global-__GLOBAL__', "
                       f"{json.dumps(json.dumps(EXPANDED))}); location.reload(); true")
            nodes = ("synthetic_scenes", "styled_scenes", "real_target", "pretrained_model", "finetuned_model",
                     "gap_report")
            browser.wait_for(" && ".join(f"document.body.innerText.includes('{n}')" for n in nodes), 120,
                             "every chain asset in the graph")
            assert not click_button(browser, "Skip"), "the first-run pop-up came back after a reload"
            time.sleep(3)  # the graph's materialization status fills in
            browser.screenshot(shots / "01_asset_graph.png")

            # a params edit on the command line: gap_report is out of date; launch it through GraphQL
            hardest_k = load_config(root / "params.yaml").evaluate.hardest_k + 1
            assert stale_status(port, "gap_report") == "FRESH"
            assert write_overrides(root / "params.yaml", [f"evaluate.hardest_k={hardest_k}"])
            # `sim2real ui` reloads the definitions by itself (orchestration/reload.py): the edited stage
            # turns stale in the UI with no "Reload definitions" click, its upstream stays fresh
            wait_until("gap_report stale after the params edit, without a manual reload",
                       lambda: stale_status(port, "gap_report") == "STALE", 240, every=2)
            assert stale_status(port, "finetuned_model") == "FRESH"
            before = gap_runs(root)
            launched = graphql(port, LAUNCH, {"p": {
                "selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY,
                             "jobName": "__ASSET_JOB", "assetSelection": [{"path": ["gap_report"]}],
                             "assetCheckSelection": []},
                "mode": "default", "executionMetadata": {"tags": [{"key": "sim2real/launched_by", "value": "test"}]}}}
            )["launchPipelineExecution"]
            assert launched["__typename"] == "LaunchRunSuccess", launched
            run_id = launched["run"]["runId"]
            status_q = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
            final = wait_until("the gap_report run finished", lambda: (
                s if (s := graphql(port, status_q, {"id": run_id})["runOrError"]["status"])
                in ("SUCCESS", "FAILURE", "CANCELED") else None), 600, every=3)
            assert final == "SUCCESS", (tmp_path / "dagster.log").read_text()[-4000:]

            # what the run left: outputs, a clean `dvc status`, one more DuckDB row with the new params
            assert (root / "data" / "gap_report" / "report.html").exists()
            assert "up to date" in run([str(BIN / "dvc"), "status"], root).stdout
            lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["gap_report"]
            assert lock["params"]["params.yaml"]["evaluate"]["hardest_k"] == hardest_k
            new = [r for r in gap_runs(root) if r not in before]
            assert len(new) == 1 and new[0]["params"]["evaluate"]["hardest_k"] == hardest_k, new
            mat = latest_materialization(port, "gap_report")
            assert mat["runId"] == run_id
            assert {t["key"]: t["value"] for t in mat["tags"]}["dagster/data_version"] == lock_md5(root, "gap_report")

            # the run recorded the new code version and the loaded definitions hold it too: not "Unsynced"
            wait_until("gap_report fresh after its run", lambda: stale_status(port, "gap_report") == "FRESH", 120)
            assert "definitions reloaded, new code version for" in (tmp_path / "dagster.log").read_text()

            browser.goto(f"http://127.0.0.1:{port}/assets/gap_report")
            browser.wait_for("document.body.innerText.includes('Latest materialization') && "
                             "document.body.innerText.includes('finetuned_miou')", 120, "gap_report's page")
            time.sleep(2)
            assert "Unsynced" not in browser.js("document.body.innerText"), "gap_report's page says Unsynced"
            browser.screenshot(shots / "02_gap_report_asset.png")
            # the chain upstream of gap_report, every node with its status after the run (all fresh)
            browser.goto(f"http://127.0.0.1:{port}/assets/gap_report?view=lineage&lineageScope=upstream"
                         "&lineageDepth=10")
            browser.wait_for(" && ".join(f"document.body.innerText.includes('{n}')" for n in nodes), 120,
                             "gap_report's upstream lineage")
            time.sleep(3)
            browser.screenshot(shots / "04_gap_report_lineage.png")
            browser.goto(f"http://127.0.0.1:{port}/runs/{run_id}")
            browser.wait_for("document.body.innerText.includes('Success')", 120, "the run page")
            time.sleep(2)
            browser.screenshot(shots / "03_gap_report_run.png")

        tree = descendants(proc.pid)
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        kill_leftovers(proc, tree)
        log.close()
    pngs = sorted(shots.glob("*.png"))
    assert len(pngs) == 5 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    if os.environ.get("SIM2REAL_SCREENSHOTS"):
        dest = Path(os.environ["SIM2REAL_SCREENSHOTS"])
        dest.mkdir(parents=True, exist_ok=True)
        for p in pngs:
            if p.name != "00_first_run_popup.png":
                shutil.copy(p, dest / p.name.split("_", 1)[1])

"""`sim2real ui` keeps the UI's definitions in step with the files: a params or code edit reloads them.

Dagster computes each asset's code version (its params values and code, `orchestration.assets.code_version`)
when it loads the definitions. Without a reload, a params edit on the command line leaves the UI
comparing against the versions of load time: an edited stage does not show as stale, and after a run
with the new params the asset reads "Unsynced" (the run recorded the new version, the loaded
definitions still hold the old one).

`DefinitionsWatcher` (a thread next to `dagster dev`) closes that gap the way a person would, with the
"Reload definitions" button's own GraphQL mutation, but only when it is needed:

- it stats params.yaml, dvc.yaml and the package sources every `interval` seconds (cheap);
- when a stat changes, it computes every stage's code version from the files and asks the webserver
  for the code versions it has loaded (`assetNodes { opVersion }`);
- it reloads the code location when they differ, and logs which stages moved. A params file that does
  not validate (an edit half-way) is reported and left alone until it does; a reload that did not
  take (the code no longer loads) is not repeated for the same files.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

__all__ = ["DefinitionsWatcher", "LOCATION", "file_versions", "loaded_versions", "reload_location", "stamp"]

LOCATION = "orchestration.definitions"  # workspace.yaml's python_module: Dagster names the location after it
LOADED = "{ assetNodes { assetKey { path } opVersion } }"
RELOAD = """mutation($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) { __typename
  ... on WorkspaceLocationEntry { locationOrLoadError { __typename ... on PythonError { message } } }
  ... on PythonError { message } ... on RepositoryLocationNotFound { message } } }"""
WATCHED_TREES = ("sim2real", "orchestration")
WATCHED_FILES = ("params.yaml", "dvc.yaml", "workspace.yaml")


def stamp(root: Path) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime_ns, size) of every file a code version can depend on: changes with any edit."""
    paths = [root / f for f in WATCHED_FILES]
    for tree in WATCHED_TREES:
        paths.extend(sorted((root / tree).rglob("*.py")))
    out = []
    for p in paths:
        try:
            st = p.stat()
        except FileNotFoundError:
            continue
        out.append((str(p.relative_to(root)), st.st_mtime_ns, st.st_size))
    return tuple(out)


def file_versions(root: Path) -> dict[str, str]:
    """Each stage's code version computed from the files now (raises on a params file that does not load)."""
    from orchestration.assets import code_version
    from sim2real.config import load_config
    from sim2real.stages import STAGES

    cfg = load_config(root / "params.yaml")
    return {name: code_version(stage, cfg, root) for name, stage in STAGES.items()}


def _graphql(url: str, query: str, variables: dict | None = None, timeout: float = 60) -> dict:
    req = urllib.request.Request(url, data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        out = json.loads(r.read())
    if out.get("errors"):
        raise RuntimeError(f"{url}: {out['errors']}")
    return out["data"]


def loaded_versions(url: str) -> dict[str, str]:
    """The code versions of the definitions the webserver has loaded, by asset name."""
    nodes = _graphql(url, LOADED)["assetNodes"]
    return {"/".join(n["assetKey"]["path"]): n["opVersion"] for n in nodes if n.get("opVersion")}


def reload_location(url: str, location: str = LOCATION) -> str | None:
    """Reload the code location (the UI's "Reload definitions"); None on success, else the error."""
    out = _graphql(url, RELOAD, {"name": location}, timeout=300)["reloadRepositoryLocation"]
    if out["__typename"] != "WorkspaceLocationEntry":
        return f"{out['__typename']}: {out.get('message', '')}"
    entry = out.get("locationOrLoadError") or {}
    return f"PythonError: {entry['message']}" if entry.get("__typename") == "PythonError" else None


class DefinitionsWatcher(threading.Thread):
    """Reload the UI's code location when the files' code versions differ from the loaded ones."""

    def __init__(self, root: Path, port: int, host: str = "127.0.0.1", interval: float = 2.0,
                 log: Callable[[str], None] = print, location: str = LOCATION) -> None:
        super().__init__(name="sim2real-definitions-watcher", daemon=True)
        self.root, self.interval, self.log, self.location = root, interval, log, location
        self.url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/graphql"
        self.stopped = threading.Event()
        self.reloads = 0
        self._tried: dict[str, str] | None = None  # the file versions of the last reload, taken or not

    def stop(self) -> None:
        self.stopped.set()

    def check(self) -> list[str]:
        """One comparison (and a reload where needed); the stages whose code version moved."""
        try:
            now = file_versions(self.root)
        except Exception as err:  # noqa: BLE001 - a half-written params.yaml: say so, retry on the next edit
            self.log(f"sim2real ui: definitions not reloaded, the project does not load: {err}")
            return []
        loaded = loaded_versions(self.url)
        moved = sorted(name for name, version in now.items() if name in loaded and loaded[name] != version)
        if not moved or now == self._tried:
            return []
        self._tried = now
        error = reload_location(self.url, self.location)
        if error:
            self.log(f"sim2real ui: reloading definitions failed ({error}); fix the code and save again")
            return []
        self.reloads += 1
        self.log(f"sim2real ui: definitions reloaded, new code version for {', '.join(moved)}")
        return moved

    def run(self) -> None:
        last = None
        while not self.stopped.wait(self.interval):
            current = stamp(self.root)
            if current == last:
                continue
            try:
                self.check()
            except (urllib.error.URLError, OSError, RuntimeError):
                continue  # the webserver is not up yet (or restarting): try again next tick
            last = current

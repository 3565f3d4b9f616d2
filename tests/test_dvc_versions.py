"""DVC versions datasets: `git checkout REV && dvc checkout/pull` brings back an earlier version."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orchestration.params_tags import write_overrides
from tests.conftest import BIN, make_project, run

pytestmark = pytest.mark.e2e  # launches processes: not in `make test-fast`

DVC = str(BIN / "dvc")


def _hash(root: Path) -> str:
    import yaml

    outs = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["synthetic_scenes"]["outs"]
    return next(o["md5"] for o in outs if o["path"] == "data/synthetic_scenes")


def test_checkout_and_remote_bring_back_versions(tmp_path: Path) -> None:
    root = make_project(tmp_path / "proj")
    run([DVC, "repro", "synthetic_scenes"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "v1"], root)
    v1 = _hash(root)
    index_v1 = (root / "data/synthetic_scenes/train/images-00000.npy").read_bytes()

    assert write_overrides(root / "params.yaml", ["synthetic.seed=1"])
    run([DVC, "repro", "synthetic_scenes"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "v2"], root)
    assert _hash(root) != v1

    # local checkout from the cache
    run(["git", "checkout", "-q", "HEAD~1"], root)
    run([DVC, "checkout", "synthetic_scenes"], root)
    assert (root / "data/synthetic_scenes/train/images-00000.npy").read_bytes() == index_v1
    assert "up to date" in run([DVC, "status", "synthetic_scenes"], root).stdout

    # a (local) remote: push, lose the cache and the data, pull back
    remote = tmp_path / "remote"
    run([DVC, "remote", "add", "-d", "store", str(remote)], root)
    run([DVC, "push", "synthetic_scenes"], root)
    shutil.rmtree(root / ".dvc" / "cache")
    shutil.rmtree(root / "data" / "synthetic_scenes")
    run([DVC, "pull", "synthetic_scenes"], root)
    assert (root / "data/synthetic_scenes/train/images-00000.npy").read_bytes() == index_v1

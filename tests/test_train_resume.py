"""Kill-and-resume: a training stage SIGKILLed after its first checkpoint resumes to identical weights."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_train_support import make_tiny_root

from sim2real.runner import run_stage
from sim2real.train.checkpoint import read_checkpoint

pytestmark = pytest.mark.e2e  # launches processes: not in `make test-fast`

# long enough that the kill lands mid-run: 40 steps, a resume checkpoint every 4
EXTRA = ["finetune.real_only_steps=40", "finetune.checkpoint_every=4", "finetune.eval_every=20",
         "finetune.seeds=[0]"]


def _cli(root: Path) -> subprocess.Popen:
    env = {**os.environ, "SIM2REAL_THREADS": "1", "SIM2REAL_ROOT": str(root)}
    return subprocess.Popen([sys.executable, "-m", "sim2real", "run", "real_only_model"], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_killed_run_resumes_to_identical_weights(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    killed_root, clean_root = tmp_path / "killed", tmp_path / "clean"
    cfg = make_tiny_root(killed_root, EXTRA)
    make_tiny_root(clean_root, EXTRA)
    last = killed_root / "data" / ".real_only_model.partial" / "seed-0" / "last.pt"

    proc = _cli(killed_root)
    deadline = time.monotonic() + 60
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert last.exists(), f"no checkpoint appeared: {proc.communicate()[0][-2000:] if proc.poll() is not None else ''}"
    proc.send_signal(signal.SIGKILL)  # no cleanup, no atexit: as if the machine died
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at = read_checkpoint(last)["step"]
    assert 0 < killed_at < 40
    assert not (killed_root / "data" / "real_only_model").exists(), "a killed run must not publish its out"

    with caplog.at_level(logging.INFO, logger="sim2real"):
        run_stage("real_only_model", root=killed_root, cfg=cfg)  # a fresh start on the killed run's folder
    assert f"resuming from {last} at step {killed_at}" in caplog.text

    run_stage("real_only_model", root=clean_root, cfg=cfg)  # the uninterrupted reference, in-process

    a = read_checkpoint(killed_root / "data" / "real_only_model" / "seed-0" / "model.pt")
    b = read_checkpoint(clean_root / "data" / "real_only_model" / "seed-0" / "model.pt")
    assert a["step"] == b["step"]
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), "weights differ after resume"
    hist_a = json.loads((killed_root / "data" / "real_only_model" / "seed-0" / "history.json").read_text())
    hist_b = json.loads((clean_root / "data" / "real_only_model" / "seed-0" / "history.json").read_text())
    assert [r["step"] for r in hist_a] == list(range(1, 41))
    assert [r["train/loss"] for r in hist_a] == [r["train/loss"] for r in hist_b]

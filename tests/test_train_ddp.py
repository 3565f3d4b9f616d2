"""A 2-process gloo DDP run on CPU (torchrun, the real entry point) matches the single-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_train_support import make_tiny_root

from sim2real.runner import run_stage
from sim2real.train.checkpoint import load_model

pytestmark = pytest.mark.e2e  # launches processes: not in `make test-fast`

EXTRA = ["finetune.seeds=[0]", "finetune.real_only_steps=20", "finetune.eval_every=8"]


def test_two_process_gloo_matches_one_process(tmp_path: Path) -> None:
    single, multi = tmp_path / "single", tmp_path / "multi"
    cfg = make_tiny_root(single, EXTRA)
    make_tiny_root(multi, EXTRA)
    run_stage("real_only_model", root=single, cfg=cfg)

    env = {**os.environ, "SIM2REAL_ROOT": str(multi), "SIM2REAL_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "sim2real.train.ddp", "real_only_model"],
        cwd=multi, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "DDP: 2 ranks, backend gloo" in proc.stderr

    def losses(root: Path) -> np.ndarray:
        hist = json.loads((root / "data" / "real_only_model" / "seed-0" / "history.json").read_text())
        return np.array([r["train/loss"] for r in hist])

    a, b = losses(single), losses(multi)
    assert len(a) == len(b) == 20
    # same samples per global batch; only batch-norm statistics differ (2 vs 4 samples per forward)
    assert abs(a[0] - b[0]) < 0.05 * a[0], (a[:3], b[:3])
    assert np.mean(np.abs(a - b) / a) < 0.15, (a, b)
    assert b[-4:].mean() < 0.8 * b[:4].mean()  # the distributed run learns too
    model, info = load_model(multi / "data" / "real_only_model" / "seed-0" / "model.pt")
    assert not any(k.startswith("module.") for k in model.state_dict())
    assert json.loads((multi / "data" / "metrics" / "real_only_model.json").read_text())["total_steps"] == 20

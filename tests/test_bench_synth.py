"""benchmarks/bench_synth_augment.py --quick: every figure is produced (no timing is asserted here)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIGURES = ("generation vs training", "generation+augmentation vs training", "generation+albumentations vs training",
           "kornia vs albumentations")


def test_quick_run_prints_every_ratio_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "synth.json"
    env = {**os.environ, "SIM2REAL_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_synth_augment.py"), "--quick",
                           "--json", str(out)], cwd=REPO, env=env, text=True, capture_output=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in FIGURES:
        m = re.search(rf"^{re.escape(name)}: ([0-9]+\.[0-9]+)x", proc.stdout, re.M)
        assert m, f"`{name}: <ratio>x` not printed:\n{proc.stdout}"
        assert float(m.group(1)) > 0
    assert "32x48, 1 thread(s)" in proc.stdout
    figures = json.loads(out.read_text())
    for key in ("generator_scenes_per_s", "kornia_images_per_s", "albumentations_images_per_s",
                "generate_augment_images_per_s", "training_images_per_s", "generation_vs_training",
                "generation_augmentation_vs_training"):
        assert figures[key] > 0, key
    ratio = figures["generator_scenes_per_s"] / figures["training_images_per_s"]
    assert abs(ratio - figures["generation_vs_training"]) < 1e-9

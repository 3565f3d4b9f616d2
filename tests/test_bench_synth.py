"""benchmarks/bench_synth_augment.py --quick: every figure is produced (no timing is asserted here)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_synth_augment  # noqa: E402

FIGURES = ("generation vs training", "generation+augmentation vs training", "generation+albumentations vs training",
           "kornia vs albumentations", "generation (2 processes) vs training (2 threads)",
           "generator: 2 processes vs 2 threads")


@pytest.mark.e2e  # the whole-machine part starts render worker processes
def test_quick_run_prints_every_ratio_and_writes_json(tmp_path: Path, capsys) -> None:
    import torch

    out = tmp_path / "synth.json"
    threads = torch.get_num_threads()
    try:
        returned = bench_synth_augment.main(["--quick", "--threads", "1", "--cores", "2", "--json", str(out)])
    finally:
        torch.set_num_threads(threads)  # the benchmark sets the process's threads
    printed = capsys.readouterr().out
    for name in FIGURES:
        m = re.search(rf"^{re.escape(name)}: ([0-9]+\.[0-9]+)x", printed, re.M)
        assert m, f"`{name}: <ratio>x` not printed:\n{printed}"
        assert float(m.group(1)) > 0
    assert "32x48, 1 thread(s)" in printed and "CPU seconds" in printed
    figures = json.loads(out.read_text())
    assert figures == returned
    for key in ("generator_scenes_per_s", "kornia_images_per_s", "albumentations_images_per_s",
                "generate_augment_images_per_s", "training_images_per_s", "generation_vs_training",
                "generation_augmentation_vs_training", "machine_generator_scenes_per_s",
                "machine_generator_threads_scenes_per_s", "machine_training_images_per_s"):
        assert figures[key] > 0, key
    ratio = figures["generator_scenes_per_s"] / figures["training_images_per_s"]
    assert abs(ratio - figures["generation_vs_training"]) < 1e-9

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


def test_ab_benchmark_exports_an_old_generator_and_compares_it_interleaved(tmp_path: Path, capsys) -> None:
    """benchmarks/bench_synth_ab.py --quick against HEAD: the exported package imports only itself, both
    arms are timed, and a commit against itself renders the same bytes."""
    import bench_synth_ab
    import torch

    pkg = bench_synth_ab.export_package("HEAD", tmp_path)
    sources = "\n".join(p.read_text() for p in pkg.rglob("*.py"))
    assert "from sim2real_old.synth" in sources
    assert not re.search(r"\b(from|import)\s+sim2real[.\s]", sources)  # nothing reaches the checkout's package
    threads = torch.get_num_threads()
    try:
        figures = bench_synth_ab.main(["--old", "HEAD", "--quick", "--json", str(tmp_path / "ab.json")])
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert re.search(r"^new vs old: [0-9]+\.[0-9]+x", printed, re.M) and "same bytes: yes" in printed
    assert figures["same_bytes"] == 1.0 and figures["old_ms_per_scene"] > 0 and figures["new_ms_per_scene"] > 0
    assert json.loads((tmp_path / "ab.json").read_text()) == figures
    with pytest.raises(SystemExit, match="no-such-rev"):
        bench_synth_ab.export_package("no-such-rev", tmp_path / "bad")

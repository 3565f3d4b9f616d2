"""Is a renderer change faster? The generator of another commit against this checkout's, interleaved.

Ratios from two separate runs move 10-30 % with the machine (other processes, clocks): on this project's
shared 2-core machine training itself ran 1.17x faster an hour later. This benchmark takes the generator
of commit `--old` (exported with `git archive` and imported under another package name) and the
working tree's, and alternates them call by call in one process on one core, the same scene seeds for
both in each round, so both arms see the same load. It prints the median ms per scene of each arm and
the median of the per-round ratios, and checks that both arms render the same bytes (a speed-up that
changes the pictures is reported as such):

    old: 15.01 ms/scene (median of 16 rounds)
    new: 13.06 ms/scene
    new vs old: 1.160x (median of per-round ratios)
    same bytes: yes

Usage (pin to one core; the other arm of a comparison must not share it):

    SIM2REAL_THREADS=1 taskset -c 1 python benchmarks/bench_synth_ab.py --old 717bfa5
    python benchmarks/bench_synth_ab.py --old HEAD --quick          # tiny sizes (the test)
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OLD_NAME = "sim2real_old"
_IMPORT = re.compile(r"\b(from|import)(\s+)sim2real(?=[.\s])")


def export_package(rev: str, dest: Path, repo: Path = REPO) -> Path:
    """`sim2real/` of commit `rev`, written under `dest` as package `sim2real_old` (imports rewritten)."""
    try:
        blob = subprocess.run(["git", "-C", str(repo), "archive", rev, "sim2real"], check=True,
                              capture_output=True).stdout
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"--old {rev}: git archive failed: {e.stderr.decode().strip()}") from e
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")
    pkg = dest / OLD_NAME
    (dest / "sim2real").rename(pkg)
    for py in pkg.rglob("*.py"):
        py.write_text(_IMPORT.sub(rf"\1\2{OLD_NAME}", py.read_text()))
    return pkg


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", required=True, help="commit (or any git revision) whose generator is the baseline")
    ap.add_argument("--rounds", type=int, default=16)
    ap.add_argument("--scenes", type=int, default=24, help="scenes per call")
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--quick", action="store_true", help="32x48, 2 scenes, 2 rounds")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args(argv)
    if a.quick:
        a.rounds, a.scenes, a.height, a.width = 2, 2, 32, 48
    import torch

    torch.set_num_threads(1)
    from sim2real.config.synthetic import SyntheticConfig
    from sim2real.synth import generate_scenes

    with tempfile.TemporaryDirectory() as tmp:
        export_package(a.old, Path(tmp))
        sys.path.insert(0, tmp)
        try:
            old_synth = importlib.import_module(f"{OLD_NAME}.synth")
            old_cfg = importlib.import_module(f"{OLD_NAME}.config.synthetic").SyntheticConfig()
        finally:
            sys.path.remove(tmp)
        arms = {"old": (old_synth.generate_scenes, old_cfg), "new": (generate_scenes, SyntheticConfig())}
        for fn, cfg in arms.values():  # warm-up at the calls' size: tables, textures, allocator
            fn(cfg, a.scenes, seed=1, height=a.height, width=a.width)
        times: dict[str, list[float]] = {"old": [], "new": []}
        same = True
        for r in range(a.rounds):
            out = {}
            for name in (("old", "new") if r % 2 else ("new", "old")):
                fn, cfg = arms[name]
                t0 = time.process_time()
                out[name] = fn(cfg, a.scenes, seed=100 + r, height=a.height, width=a.width)
                times[name].append((time.process_time() - t0) / a.scenes * 1000)
            same &= all(np.array_equal(x, y) for x, y in zip(out["old"][:2], out["new"][:2], strict=True))
    old_ms, new_ms = statistics.median(times["old"]), statistics.median(times["new"])
    ratio = statistics.median(o / n for o, n in zip(times["old"], times["new"], strict=True))
    print(f"# {a.height}x{a.width}, {a.scenes} scenes a call, {a.rounds} rounds, CPU seconds, old = {a.old}")
    print(f"old: {old_ms:.2f} ms/scene (median of {a.rounds} rounds)")
    print(f"new: {new_ms:.2f} ms/scene")
    print(f"new vs old: {ratio:.3f}x (median of per-round ratios)")
    print(f"same bytes: {'yes' if same else 'NO (the change alters the pictures)'}")
    figures = {"old_ms_per_scene": old_ms, "new_ms_per_scene": new_ms, "new_vs_old": ratio, "same_bytes": float(same)}
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()

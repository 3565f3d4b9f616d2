"""`make bench` (benchmarks/bench_all.py): every figure is produced, and BENCHMARKS.md keeps each one.

No timing is asserted here: the targets are printed by the benchmark and recorded in BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_all import FIGURES  # noqa: E402

LINE = re.compile(r"^([^:#|`]+): ([0-9]+(?:\.[0-9]+)?)(x| s)?\b", re.M)


def test_benchmarks_md_has_every_figure_in_script_readable_form() -> None:
    text = (REPO / "BENCHMARKS.md").read_text()
    found = {m.group(1).strip(): float(m.group(2)) for m in LINE.finditer(text)}
    missing = [f for f in FIGURES if f not in found]
    assert not missing, f"BENCHMARKS.md lacks `name: value` lines for {missing}"
    assert "taskset -c 1" in text and "make bench" in text and "bench_all.py" in text
    assert "BENCHMARKS.md" in (REPO / "README.md").read_text()


@pytest.mark.e2e
def test_quick_bench_produces_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    env = {**os.environ, "SIM2REAL_THREADS": "1"}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_all.py"), "--quick", "--json", str(out)],
                          cwd=REPO, env=env, text=True, capture_output=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    printed = {m.group(1).strip(): float(m.group(2)) for m in LINE.finditer(proc.stdout)}
    figures = json.loads(out.read_text())["figures"]
    for name in FIGURES:
        assert name in printed, f"`{name}: ...` not printed:\n{proc.stdout[-3000:]}"
        assert name in figures
        assert figures[name] > 0, f"{name} = {figures[name]}"

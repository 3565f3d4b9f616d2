"""Render `dvc.yaml` from the stage registry (never edit dvc.yaml by hand)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sim2real.stages import STAGES, Stage, topological_order

LAUNCHER = "bin/sim2real"
HEADER = "# Generated from sim2real/stages.py by `sim2real dvc-yaml`. Do not edit by hand.\n"


def _upstream_deps(stage: Stage) -> list[str]:
    deps = []
    for name in stage.upstream:
        up = STAGES[name]
        if up.matrix and stage.matrix == up.matrix:
            deps.append(up.out_dir())  # same item: data/<up>/${item.value}
        elif up.matrix and name in stage.picks:
            deps.append(f"data/{up.name}/${{{stage.picks[name]}}}")
        else:
            deps.append(f"data/{up.name}")
    return deps


def render_stage(stage: Stage) -> dict[str, Any]:
    # through the launcher, not the `sim2real` console script: it must not depend on PATH (a
    # `.venv/bin/dvc repro` without an activated venv); bin/sim2real finds the right Python
    cmd = f"sh {LAUNCHER} run {stage.name}"
    if stage.fanned:
        cmd += f" --item {stage.item_template()}"
    entry: dict[str, Any] = {}
    if stage.fanned:
        entry["matrix"] = {dim: f"${{{key}}}" for dim, key in stage.dims}
    entry["desc"] = stage.description
    entry["cmd"] = cmd
    entry["deps"] = _upstream_deps(stage) + list(stage.code_deps)
    entry["params"] = list(stage.params)
    entry["outs"] = [stage.out_dir()]
    entry["metrics"] = [stage.metrics_file()]
    return entry


def render_plots() -> list:
    plots: list = []
    for name in topological_order():
        for path in STAGES[name].plots:
            plots.append(path if path.endswith(".png") else {path: {"x": "step"}})
    return plots


def render() -> str:
    doc: dict[str, Any] = {"stages": {name: render_stage(STAGES[name]) for name in topological_order()}}
    plots = render_plots()
    if plots:
        doc["plots"] = plots
    return HEADER + yaml.safe_dump(doc, sort_keys=False, width=1000)


def write(root: Path) -> Path:
    path = root / "dvc.yaml"
    path.write_text(render())
    return path


def is_current(root: Path) -> bool:
    path = root / "dvc.yaml"
    return path.exists() and path.read_text() == render()

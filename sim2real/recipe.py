"""Recipe search as DVC experiments: a grid of params queued with `dvc exp run --queue`, ranked on val.

The knobs are any params keys (fine-tuning steps per image, learning rates, strategy,
`finetune.synthetic_mix`, `style.method`, pretraining steps, scene count, ...). Each combination is
validated before anything is queued (a bad key or value names itself), then queued as one DVC
experiment `recipe-<hash>` that reproduces the label-budget curve. `dvc exp show` lists them like any
other experiment; `sim2real recipe show` ranks them on **real val only** (the split the runs select
on) and reveals the real-test figure for the winner alone: test is reported once, for the chosen
recipe.

Example:
    sim2real recipe queue --grid finetune.lr=0.0002,0.0005 --grid label_budget.steps_per_image=24,48
    sim2real recipe run            # dvc exp run --run-all, one experiment at a time
    sim2real recipe show           # the val table, the winner, its test figure
"""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim2real.config import ConfigError, load_config

PREFIX = "recipe-"
TARGET = "label_budget"
METRICS = "data/metrics/label_budget.json"
RANK_BY = "val_synthetic_miou"  # mean over N of synthetic + N on real val: what selection may see


class RecipeError(ValueError):
    """A bad grid, or DVC refused an experiment command (the message says which)."""


def parse_grid(specs: list[str]) -> dict[str, list[str]]:
    """`["finetune.lr=1e-4,5e-4", ...]` -> {"finetune.lr": ["1e-4", "5e-4"]} (values as YAML text)."""
    grid: dict[str, list[str]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise RecipeError(f"--grid {spec!r} is not KEY=V1,V2,...")
        if key.strip() in grid:
            raise RecipeError(f"--grid {key.strip()!r} given twice")
        grid[key.strip()] = _split_values(values)
    if not grid:
        raise RecipeError("no --grid given: name at least one KEY=V1,V2,...")
    return grid


def _split_values(text: str) -> list[str]:
    """Comma-separated values; a [..] list stays one value (e.g. finetune.seeds=[0,1],[0])."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return [v for v in out if v]


def combinations(grid: dict[str, list[str]]) -> list[list[str]]:
    keys = list(grid)
    return [[f"{k}={v}" for k, v in zip(keys, vals, strict=True)] for vals in itertools.product(*grid.values())]


def recipe_name(overrides: list[str]) -> str:
    return PREFIX + hashlib.sha256("\n".join(sorted(overrides)).encode()).hexdigest()[:8]


def _dvc(root: Path, args: list[str], dvc: str = "dvc") -> str:
    proc = subprocess.run([dvc, *args], cwd=root, text=True, capture_output=True)
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()
        raise RecipeError(f"`dvc {' '.join(args)}` failed: {last[-1] if last else proc.returncode}")
    return proc.stdout


def queue(root: Path, grid: dict[str, list[str]], dvc: str = "dvc") -> list[tuple[str, list[str]]]:
    """Validate every combination, then queue each as a DVC experiment; returns (name, overrides)."""
    combos = combinations(grid)
    for overrides in combos:  # all or nothing: nothing is queued when one combination is invalid
        try:
            load_config(root / "params.yaml", overrides=overrides)
        except ConfigError as err:
            raise RecipeError(f"recipe {' '.join(overrides)}: {err}") from None
    queued = []
    for overrides in combos:
        name = recipe_name(overrides)
        args = ["exp", "run", "--queue", "-n", name]
        for o in overrides:
            args += ["-S", o]
        _dvc(root, [*args, TARGET], dvc)
        queued.append((name, overrides))
    return queued


def run_all(root: Path, jobs: int = 1, dvc: str = "dvc") -> str:
    """Run the queue (one at a time by default: on a small machine parallel runs only slow each other)."""
    return _dvc(root, ["exp", "run", "--run-all", "-j", str(jobs)], dvc)


@dataclass
class RecipeResult:
    name: str
    params: dict[str, Any]
    metrics: dict[str, Any]


def _walk(node: Any) -> Any:
    """Every experiment record in `dvc exp show --json` (a nest of dicts and lists)."""
    if isinstance(node, dict):
        if "name" in node and "data" in node:
            yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def results(root: Path, dvc: str = "dvc") -> list[RecipeResult]:
    """The recipe experiments DVC knows, with their params and the curve's metrics."""
    doc = json.loads(_dvc(root, ["exp", "show", "--json"], dvc) or "[]")
    found: dict[str, RecipeResult] = {}
    for rec in _walk(doc):
        name = rec.get("name") or ""
        if not name.startswith(PREFIX) or name in found:
            continue
        data = rec.get("data") or {}
        params = _flatten((data.get("params") or {}).get("params.yaml", {}).get("data", {}))
        metrics = (data.get("metrics") or {}).get(METRICS, {}).get("data", {})
        found[name] = RecipeResult(name, params, metrics)
    return list(found.values())


def ranking(found: list[RecipeResult], knobs: list[str] | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Rows ranked by val (`RANK_BY`), test shown for the winner only; returns (rows, winner)."""
    scored = [r for r in found if isinstance(r.metrics.get(RANK_BY), int | float)]
    scored.sort(key=lambda r: -float(r.metrics[RANK_BY]))
    if knobs is None:  # the keys that differ between recipes
        keys = sorted({k for r in scored for k in r.params})
        knobs = [k for k in keys if len({json.dumps(r.params.get(k)) for r in scored}) > 1]
    winner = scored[0].name if scored else None
    rows = []
    for rank, r in enumerate(scored, 1):
        row: dict[str, Any] = {"rank": rank, "experiment": r.name}
        row.update({k: r.params.get(k) for k in knobs})
        row["val mIoU (synthetic + N, mean over N)"] = round(float(r.metrics[RANK_BY]), 2)
        row["val gain over real-only"] = r.metrics.get("val_gain")
        row["test gain (winner only)"] = r.metrics.get("test_gain") if r.name == winner else ""
        rows.append(row)
    return rows, winner

"""What a stage function gets (paths, device, threads) and what it returns (metadata)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def repo_root() -> Path:
    """The project root: SIM2REAL_ROOT, else the nearest folder above cwd holding params.yaml."""
    env = os.environ.get("SIM2REAL_ROOT")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for p in (here, *here.parents):
        if (p / "params.yaml").exists():
            return p
    return here


@dataclass
class StageContext:
    root: Path
    stage: str
    item: str | None = None  # matrix item (e.g. a style method) or None

    @property
    def data(self) -> Path:
        return self.root / "data"

    def path(self, rel: str) -> Path:
        """Repo-relative path -> absolute."""
        p = Path(rel)
        return p if p.is_absolute() else self.root / p

    def stage_dir(self, stage: str | None = None, item: str | None = None) -> Path:
        stage = stage or self.stage
        item = item if stage != self.stage or item is not None else self.item
        base = self.data / stage
        return base / item if item else base

    def device(self, choice: str = "auto") -> str:
        import torch

        if choice == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if choice == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("project.device=cuda but no CUDA device is available")
        return choice


@dataclass
class StepResult:
    """Metadata a stage returns: numbers, markdown tables, plot files (relative to the repo)."""

    metrics: dict[str, float] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)
    plots: dict[str, str] = field(default_factory=dict)
    text: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # wall times and throughputs: reported (metrics file, Dagster) but kept out of the stage's
    # output folder, so the same inputs give the same bytes and the same DVC hash
    timings: dict[str, float] = field(default_factory=dict)

    def split_timings(self) -> None:
        """Move timing-like metrics (`*_s`, `*_per_s`, `*seconds*`, `*throughput*`) into `timings`."""
        for key in list(self.metrics):
            k = key.lower()
            if k.endswith("_s") or k.endswith("_per_s") or "seconds" in k or "throughput" in k or "per_sec" in k:
                self.timings[key] = self.metrics.pop(key)

    def to_json(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "tables": self.tables, "plots": self.plots,
                "text": self.text, "extra": self.extra}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepResult:
        return cls(**{k: data.get(k, v) for k, v in cls().to_json().items()})

    def all_metrics(self) -> dict[str, float]:
        return {**self.metrics, **self.timings}

    def write(self, path: Path) -> None:
        write_json(path, self.to_json())


def write_json(path: Path, data: Any) -> None:
    """Write `data` as JSON atomically (a temp file, then a rename): a reader never sees half a file.

    Keys sorted and numpy scalars as floats, so the same data gives the same bytes (and DVC hash).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=float))
    os.replace(tmp, path)


def markdown_table(rows: list[dict[str, Any]], floatfmt: str = ".3g") -> str:
    """A list of dicts -> a markdown table (for Dagster metadata and the CLI)."""
    if not rows:
        return ""
    cols = list(rows[0].keys())
    for r in rows[1:]:
        cols += [c for c in r if c not in cols]

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return format(v, floatfmt)
        return "" if v is None else str(v)

    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(out)

"""What the gap report works on: image splits, the models of the chain, their evaluations, gap points.

The split names, which synthetic split each model calls its own, and which source-only model is the
baseline are decided here once; the stage, the report and the CLI import them from here. No torch at
import time (`sim2real gap` reads the store without it).

Example:
    >>> real_val = load_set(Path("data/real_target/val"), REAL_VAL)
    >>> ev = Evaluator("cpu", batch_size=16)
    >>> ev.run(m.model_id, m.model, real_val).scores.miou
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sim2real.shards import ShardDataset

if TYPE_CHECKING:
    from sim2real.evaluate.predict import EvalResult

__all__ = ["REAL_VAL", "REAL_TEST", "REAL_TRAIN", "SYNTH_VAL", "ImageSet", "ModelEntry", "Point", "Evaluator",
           "baseline_source", "main_source", "load_set", "spaced", "styled_val", "file_sha"]

REAL_VAL, REAL_TEST, REAL_TRAIN, SYNTH_VAL = "real/val", "real/test", "real/train", "synthetic/val"


def styled_val(method: str) -> str:
    """Name of the synthetic val split styled with `method`."""
    return f"styled/{method}/val"


@dataclass
class ImageSet:
    name: str
    images: np.ndarray
    masks: np.ndarray | None
    names: list[str]

    def __len__(self) -> int:
        return len(self.images)


def spaced(n: int, cap: int) -> np.ndarray:
    """`cap` evenly spaced indices out of n (all when cap is 0 or >= n): deterministic subsets."""
    if cap <= 0 or cap >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, cap).round().astype(int))


def load_set(path: Path, name: str, cap: int = 0, labels: bool = True) -> ImageSet | None:
    """A shard folder as an ImageSet (None when the folder does not exist)."""
    if not (path / "index.json").exists():
        return None
    ds = ShardDataset(path)
    idx = spaced(len(ds), cap)
    images, masks = ds.take(idx) if len(idx) else (np.zeros((0, *ds.size, 3), np.uint8), None)
    recs = ds.records()
    names = [str(recs[i].get("name", recs[i].get("index", i))) if i < len(recs) else str(i) for i in idx]
    return ImageSet(name, images, masks if labels else None, names)


def file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


@dataclass(eq=False)  # identity semantics: entries hold live models
class ModelEntry:
    model_id: str
    kind: str  # source_only | finetuned | real_only | checkpoint
    path: Path
    model: Any
    info: dict[str, Any]
    style_method: str | None = None
    seed: int | None = None
    few_shot: int = 0
    total_steps: int = 0
    sha: str = ""

    @property
    def own_val(self) -> str:
        """The synthetic val split of the model's own source domain (styled with its style method)."""
        return SYNTH_VAL if self.style_method in (None, "none") else styled_val(self.style_method)

    @property
    def steps(self) -> int:
        """Optimizer steps this model's own stage ran (its budget), else the selected checkpoint's step."""
        budget = self.info.get("budget") or {}
        key = {"source_only": "pretrain_steps", "finetuned": "finetune_steps"}.get(self.kind, "total_steps")
        return int(budget.get(key, budget.get("total_steps", self.info.get("step", 0))) or 0)

    @property
    def selected_step(self) -> int:
        """The step of the weights kept (best-on-val selection)."""
        return int(self.info.get("step", 0))

    @property
    def init_label(self) -> str:
        """What the weights started from, in a few words."""
        init = self.info.get("init")
        if not isinstance(init, dict):
            return str(init)
        if init.get("kind") == "checkpoint":
            return f"checkpoint {init.get('checkpoint', '?')} (step {init.get('checkpoint_step', '?')})"
        weights = init.get("encoder_weights") or "random"
        return f"{weights} encoder, init seed {init.get('init_seed', '?')}"

    @property
    def init_sha(self) -> str | None:
        """Hash of the weights training started from (through a checkpoint init to its own start)."""
        init = self.info.get("init")
        while isinstance(init, dict):
            if init.get("state_sha"):
                return str(init["state_sha"])
            init = init.get("pretrained_init")
        return None

    @property
    def init(self) -> str:
        init = self.info.get("init")
        return init if isinstance(init, str) else json.dumps(init, sort_keys=True, default=str)

    def store_row(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "kind": self.kind, "style_method": self.style_method,
                "seed": self.seed, "few_shot": self.few_shot, "steps": self.steps,
                "total_steps": self.total_steps, "init": self.init, "checkpoint": str(self.path),
                "checkpoint_sha": self.sha}


def baseline_source(models: list[ModelEntry]) -> ModelEntry | None:
    """The source-only model the domain gap is measured on: the one trained on plain synthetic scenes.

    That is style method "none". When `style.ablation` has no "none", the first source-only model (in
    ablation order) stands in, for the headline, the per-class table and plot and the findings alike.
    None when the chain has no source-only model.
    """
    source_only = [m for m in models if m.kind == "source_only"]
    return next((m for m in source_only if m.style_method == "none"), source_only[0] if source_only else None)


def main_source(models: list[ModelEntry], method: str) -> ModelEntry | None:
    """The source-only model of the main chain (`style.method`, the one fine-tuning starts from);
    the baseline when that method was not in the ablation."""
    return next((m for m in models if m.kind == "source_only" and m.style_method == method),
                baseline_source(models))


@dataclass
class Point:
    """One (model, test-time adaptation) pair: a source domain, a target domain, and the mIoU drop."""

    model_id: str
    adaptation: str
    source: str
    target: str
    drop: float  # mIoU points: model's own synthetic val minus real val (as the model sees it)
    stats: dict[str, float] = field(default_factory=dict)


class Evaluator:
    """Evaluates (model, split, adaptation) once and remembers the result."""

    def __init__(self, device: str, batch_size: int):
        self.device, self.batch_size = device, batch_size
        self.results: dict[tuple[str, str, str], EvalResult] = {}

    def run(self, model_id: str, model: Any, split: ImageSet, adaptation: str = "none",
            images: np.ndarray | None = None) -> EvalResult:
        key = (model_id, split.name, adaptation)
        if key not in self.results:
            # imported here: predict imports torch, and this module is also read by `sim2real gap`
            from sim2real.evaluate.predict import evaluate_model

            if split.masks is None:
                raise ValueError(f"split {split.name} has no labels to evaluate against")
            self.results[key] = evaluate_model(model, split.images if images is None else images, split.masks,
                                               self.device, self.batch_size, features=True)
        return self.results[key]

    def miou(self, model_id: str, split: str, adaptation: str = "none") -> float:
        r = self.results.get((model_id, split, adaptation))
        return r.scores.miou if r is not None else float("nan")

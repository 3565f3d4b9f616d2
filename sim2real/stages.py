"""The stage registry: every step of the workflow defined once.

`dvc.yaml` (`sim2real dvc-yaml`), the Dagster assets (`orchestration/`) and the CLI
(`sim2real run STAGE`) are all derived from `STAGES`. A new step is one function plus one entry.

Example:
    >>> from sim2real.stages import get_stage
    >>> get_stage("synthetic_scenes").outs
    ('data/synthetic_scenes',)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sim2real.config import Config
from sim2real.context import StageContext, StepResult

StageFn = Callable[[Config, StageContext], StepResult]


@dataclass(frozen=True)
class Stage:
    name: str
    func: str  # "module:function" (imported lazily: listing stages never imports torch)
    description: str
    group: str
    upstream: tuple[str, ...] = ()
    params: tuple[str, ...] = ()  # dotted params.yaml keys (or whole sections) the stage reads
    code: tuple[str, ...] = ()  # the stage's own code (repo paths); `code_deps` adds the shared core
    # matrix over a params list (e.g. "style.ablation"): one stage instance per value
    matrix: str | None = None
    # matrix over several params lists, ((dimension, params key), ...): one instance per combination,
    # item "<v1>-<v2>" as DVC names it (label_budget_synthetic@10-0); a Dagster multi-partition
    grid: tuple[tuple[str, str], ...] = ()
    # for a non-matrix stage that reads one instance of a matrix upstream: {upstream: params key}
    picks: dict[str, str] = field(default_factory=dict)
    kinds: tuple[str, ...] = ("python",)
    # DVC plots inside the stage's out (declared top-level in dvc.yaml: a stage-level plot inside
    # an out would overlap it); `${...}` params interpolation allowed
    plots: tuple[str, ...] = ()

    @property
    def code_deps(self) -> tuple[str, ...]:
        """Every repo path whose change re-runs the stage: its own code plus the shared core.

        The one source for both `dvc.yaml` deps and the Dagster code version
        (`code_files`); a test checks it covers every module the stage imports.
        """
        return tuple(dict.fromkeys((*self.code, *CORE_CODE)))

    def code_files(self, root: Path) -> list[Path]:
        """The files behind `code_deps` (what DVC hashes, less its ignored bytecode), sorted."""
        files: list[Path] = []
        for rel in self.code_deps:
            p = root / rel
            if p.is_dir():
                files += [f for f in p.rglob("*") if f.is_file() and "__pycache__" not in f.parts
                          and f.suffix != ".pyc"]
            elif p.exists():
                files.append(p)
        return sorted(set(files))

    @property
    def fanned(self) -> bool:
        """One stage instance per item (a DVC matrix, Dagster partitions)."""
        return bool(self.matrix or self.grid)

    @property
    def dims(self) -> tuple[tuple[str, str], ...]:
        """(dimension, params key) pairs; a one-key matrix is the dimension `value`."""
        return self.grid or ((("value", self.matrix),) if self.matrix else ())

    def item_values(self, item: str) -> dict[str, str]:
        """`"10-0"` -> {"n": "10", "seed": "0"} for a grid; {"value": item} for a matrix."""
        if not self.grid:
            return {"value": item}
        parts = item.split("-")
        if len(parts) != len(self.grid):
            raise ValueError(f"stage {self.name}: item {item!r} is not "
                             + "-".join(f"<{d}>" for d, _ in self.grid))
        return {d: v for (d, _), v in zip(self.grid, parts, strict=True)}

    @property
    def outs(self) -> tuple[str, ...]:
        return (self.out_dir(),)

    def out_dir(self, item: str | None = None) -> str:
        base = f"data/{self.name}"
        if self.grid:
            values = self.item_values(item) if item is not None else {d: f"${{item.{d}}}" for d, _ in self.grid}
            return base + "".join(f"/{d}-{values[d]}" for d, _ in self.grid)
        if self.matrix:
            return f"{base}/{item}" if item is not None else f"{base}/${{item.value}}"
        return base

    def item_template(self) -> str:
        """The item as DVC interpolates it in `cmd` and paths: `${item.n}-${item.seed}`."""
        return "-".join(f"${{item.{d}}}" for d, _ in self.dims)

    def metrics_file(self, item: str | None = None) -> str:
        """Metrics JSON written next to (not inside) the out, so DVC can show them."""
        suffix = f"-{item}" if item else (f"-{self.item_template()}" if self.fanned else "")
        return f"data/metrics/{self.name}{suffix}.json"

    def summary_file(self, item: str | None = None) -> str:
        return f"{self.out_dir(item)}/summary.json"

    def resolve(self) -> StageFn:
        module, fn = self.func.split(":")
        return getattr(importlib.import_module(module), fn)

    def items(self, cfg: Config) -> list[str]:
        """Every instance's item, in DVC's order (the first dimension varies slowest)."""
        items = [""]
        for _, key in self.dims:
            items = [f"{a}-{v}" if a else str(v) for a in items for v in cfg.section(key)]
        return items if self.fanned else []


# code every stage runs through: validated params, class ids, dataset storage, the stage context
CORE_CODE = ("sim2real/config", "sim2real/shards.py", "sim2real/taxonomy.py", "sim2real/context.py")
# code that only draws progress and never changes an output: editing it re-runs nothing
DISPLAY_ONLY_CODE = ("sim2real/progress.py",)
# what training runs: the loop, models, checkpoints, online augmentation (and its preview grid), the unit of
# its metrics files
_TRAIN_CODE = ("sim2real/train", "sim2real/augment.py", "sim2real/previews.py", "sim2real/reporting.py")
# the label-budget runs: training, the N-image draw, scoring on real val and test
_LABEL_BUDGET_CODE = ("sim2real/label_budget/runs.py", "sim2real/label_budget/__init__.py", *_TRAIN_CODE,
                      "sim2real/real/fewshot.py", "sim2real/evaluate/predict.py", "sim2real/evaluate/metrics.py")
# the keys one label-budget run reads (both arms), and its N x seed grid
_LABEL_BUDGET_KEYS = ("label_budget.steps_per_image", "label_budget.min_steps", "label_budget.max_steps",
                      "label_budget.real_only_steps", "label_budget.evals_per_run", "label_budget.patience")
_LABEL_BUDGET_GRID = (("n", "label_budget.sizes"), ("seed", "label_budget.seeds"))
# root-cause checks: interventions (style functions in reverse, hard-sample table), re-evaluation, the store
_ROOTCAUSE_CODE = ("sim2real/rootcause", "sim2real/style/methods.py", "sim2real/evaluate/predict.py",
                   "sim2real/evaluate/metrics.py", "sim2real/evaluate/hard_samples.py",
                   "sim2real/evaluate/domain_stats.py", "sim2real/evaluate/data.py", "sim2real/evaluate/store.py",
                   "sim2real/train/checkpoint.py", "sim2real/train/models.py", "sim2real/train/weights.py")
# the transferability ablation: training with frozen encoder stages, scored on real val
_TRANSFER_CODE = ("sim2real/transfer", *_TRAIN_CODE)

STAGES: dict[str, Stage] = {
    s.name: s
    for s in [
        Stage(
            "synthetic_scenes", "sim2real.synth.stage:synthetic_scenes",
            "Procedural road scenes with pixel-exact CamVid labels, domain-randomized, deterministic by seed "
            "(or a real labelled dataset as the source: synthetic.source).",
            group="synthetic", params=("project", "synthetic"),
            # the real importers: synthetic.source may be a real labelled dataset (real -> real)
            code=("sim2real/synth", "sim2real/previews.py", "sim2real/real/__init__.py",
                  "sim2real/real/importers.py", "sim2real/real/validate.py", "sim2real/real/aspect.py"),
            kinds=("torch",),
        ),
        Stage(
            "real_target", "sim2real.real.stage:real_target",
            "The real target domain: imported, validated, split; a seeded class-balanced few-shot subset.",
            # sim2real/synth: the default (proxy) target is rendered by the scene generator
            group="real", params=("project", "real"), code=("sim2real/real", "sim2real/synth"),
        ),
        Stage(
            "augmented_scenes", "sim2real.augment:augmented_scenes",
            "Synthetic scenes through kornia augmentation (geometric + photometric), image and mask alike.",
            group="synthetic", upstream=("synthetic_scenes",), params=("project", "augment"),
            code=("sim2real/augment.py", "sim2real/previews.py"), kinds=("kornia",),
        ),
        Stage(
            "styled_scenes", "sim2real.style.stage:styled_scenes",
            "Augmented synthetic scenes moved toward the real target's colour/style (one set per method).",
            group="synthetic", upstream=("synthetic_scenes", "augmented_scenes", "real_target"),
            # the keys styling reads: style.method / style.ablation do not change a method's styled set
            params=("project", "style.fda_beta", "style.pda_transform", "style.references", "style.batch_size"),
            code=("sim2real/style", "sim2real/previews.py"), matrix="style.ablation",
        ),
        Stage(
            "pretrained_model", "sim2real.train.stage:pretrained_model",
            "A segmentation model pretrained on styled synthetic scenes (one per style method).",
            group="models", upstream=("styled_scenes", "real_target"),
            params=("project", "model", "pretrain", "augment"), code=_TRAIN_CODE,
            matrix="style.ablation", kinds=("pytorch", "smp"),
            plots=("data/pretrained_model/${style.method}/dvclive/plots/metrics",
                   "data/pretrained_model/${style.method}/curves.png"),
        ),
        Stage(
            "finetuned_model", "sim2real.train.stage:finetuned_model",
            "The pretrained model fine-tuned on the N-image real few-shot subset.",
            group="models", upstream=("pretrained_model", "real_target", "styled_scenes"),
            params=("project", "model", "finetune", "style.method"), code=_TRAIN_CODE,
            # styled_scenes: synthetic batches mixed into fine-tuning (finetune.synthetic_mix)
            picks={"pretrained_model": "style.method", "styled_scenes": "style.method"},
            kinds=("pytorch", "smp"),
            plots=("data/finetuned_model/dvclive/plots/metrics", "data/finetuned_model/curves.png"),
        ),
        Stage(
            "real_only_model", "sim2real.train.stage:real_only_model",
            "Baseline: the same model and initial weights trained only on the N real images, same budget.",
            group="models", upstream=("real_target",),
            params=("project", "model", "pretrain", "finetune"), code=_TRAIN_CODE,
            kinds=("pytorch", "smp"),
            plots=("data/real_only_model/dvclive/plots/metrics", "data/real_only_model/curves.png"),
        ),
        Stage(
            "gap_report", "sim2real.evaluate.stage:gap_report",
            "How big the sim-to-real gap is, where it is and what closed it; rows in DuckDB, HTML report.",
            group="evaluation",
            # root_causes: its tested causes close the findings list (confirmed first)
            upstream=("pretrained_model", "finetuned_model", "real_only_model", "styled_scenes",
                      "real_target", "synthetic_scenes", "root_causes"),
            params=("project", "evaluate", "style.method", "style.ablation", "store"),
            # evaluation loads checkpoints (train/) and styles real images toward the source (style/)
            code=("sim2real/evaluate", "sim2real/previews.py", "sim2real/train/models.py",
                  "sim2real/train/checkpoint.py", "sim2real/train/weights.py", "sim2real/style/methods.py",
                  "sim2real/style/distance.py"),
            kinds=("duckdb",),
        ),
        Stage(
            "label_budget_synthetic", "sim2real.label_budget.runs:label_budget_synthetic",
            "One point of the label-budget curve, synthetic arm: the pretrained model fine-tuned on N real "
            "images (best on real val, scored on real test).",
            group="label_budget", upstream=("pretrained_model", "styled_scenes", "real_target"),
            # the keys one run reads; label_budget.sizes / seeds only say which runs exist
            params=("project", "model", "pretrain.steps", "style.method", "real.seed",
                    "finetune.strategy", "finetune.lr", "finetune.batch_size", "finetune.weight_decay",
                    "finetune.warmup_frac", "finetune.amp", "finetune.encoder_lr_factor",
                    "finetune.unfreeze_groups", "finetune.synthetic_mix", "finetune.class_balance", "evaluate.batch_size",
                    *_LABEL_BUDGET_KEYS),
            code=_LABEL_BUDGET_CODE, grid=_LABEL_BUDGET_GRID,
            picks={"pretrained_model": "style.method", "styled_scenes": "style.method"}, kinds=("pytorch", "smp"),
        ),
        Stage(
            "label_budget_real_only", "sim2real.label_budget.runs:label_budget_real_only",
            "One point of the label-budget curve, real-only arm: the pretraining start weights trained on the "
            "same N real images with at least the synthetic arm's total steps. It reads no fine-tuning recipe, "
            "so a recipe search re-uses it.",
            group="label_budget", upstream=("real_target",),
            params=("project", "model", "pretrain.steps", "pretrain.lr", "real.seed", "finetune.batch_size",
                    "finetune.weight_decay", "finetune.warmup_frac", "finetune.amp", "finetune.real_only_lr",
                    "finetune.class_balance",
                    "evaluate.batch_size", *_LABEL_BUDGET_KEYS),
            code=_LABEL_BUDGET_CODE, grid=_LABEL_BUDGET_GRID, kinds=("pytorch", "smp"),
        ),
        Stage(
            "label_budget", "sim2real.label_budget.stage:label_budget",
            "The label-budget curve: real-test mIoU against N for source-only, real-only and synthetic + N, "
            "the gain per N with its seed spread, and the labels synthetic data saves.",
            group="label_budget",
            upstream=("label_budget_synthetic", "label_budget_real_only", "pretrained_model", "real_target"),
            params=("project", "label_budget.sizes", "label_budget.seeds", "style.method", "evaluate.batch_size",
                    "store"),
            code=("sim2real/label_budget", *_LABEL_BUDGET_CODE[2:], "sim2real/evaluate/store.py"),
            picks={"pretrained_model": "style.method"},
            kinds=("pytorch", "duckdb"), plots=("data/label_budget/curve.png",),
        ),
        Stage(
            "root_causes", "sim2real.rootcause.stage:root_causes",
            "Root-cause checks: each suspected trait removed from the real target by a named intervention, the "
            "source-only model re-evaluated; mIoU change with a bootstrap CI and a verdict, confirmed causes first.",
            group="evaluation", upstream=("pretrained_model", "real_target", "styled_scenes"),
            params=("project", "rootcause", "style.method", "evaluate.batch_size", "store"),
            code=_ROOTCAUSE_CODE, picks={"pretrained_model": "style.method", "styled_scenes": "style.method"},
            kinds=("pytorch", "duckdb"), plots=("data/root_causes/causes.png",),
        ),
        Stage(
            "transfer_ablation", "sim2real.transfer.runs:transfer_ablation",
            "One point of the transferability curve: fine-tuning on the N real images with encoder stages 1..k "
            "frozen, from the synthetic-pretrained model and from the ImageNet-only init; best on real val.",
            group="transfer", upstream=("pretrained_model", "real_target"),
            # the keys one run reads; transfer.frozen / seeds only say which runs exist
            params=("project", "model", "style.method", "finetune.lr", "finetune.batch_size", "finetune.weight_decay",
                    "finetune.warmup_frac", "finetune.amp", "finetune.class_balance", "transfer.steps",
                    "transfer.evals_per_run"),
            code=_TRANSFER_CODE, grid=(("k", "transfer.frozen"), ("seed", "transfer.seeds")),
            picks={"pretrained_model": "style.method"}, kinds=("pytorch", "smp"),
        ),
        Stage(
            "transfer_curve", "sim2real.transfer.curve:transfer_curve",
            "Layer-wise transferability: real-val mIoU against k frozen encoder stages with the seed spread, "
            "synthetic-pretrained vs ImageNet-only init; which stages transfer and which must adapt.",
            group="transfer", upstream=("transfer_ablation",),
            params=("project", "transfer", "finetune.lr", "finetune.batch_size"),
            code=_TRANSFER_CODE, plots=("data/transfer_curve/curve.png",),
        ),
    ]
}


def get_stage(name: str) -> Stage:
    try:
        return STAGES[name]
    except KeyError:
        raise KeyError(f"unknown stage {name!r}; choose one of {sorted(STAGES)}") from None


def topological_order() -> list[str]:
    done: list[str] = []

    def visit(n: str) -> None:
        if n in done:
            return
        for u in STAGES[n].upstream:
            visit(u)
        done.append(n)

    for n in STAGES:
        visit(n)
    return done

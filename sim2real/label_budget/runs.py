"""Stages `label_budget_synthetic` and `label_budget_real_only`: one point of the label-budget curve.

One (N real images, seed) point has two arms, each its own stage (DVC matrix item / Dagster
partition "<N>-<seed>"), so that a change to one arm's recipe never re-trains the other:
- **label_budget_synthetic**: the pretrained model (`style.method`) fine-tuned on the N images
  (`finetune.*` strategy, learning rate, synthetic mix), for `label_budget.finetune_steps(N)` steps.
- **label_budget_real_only**: the pretraining start weights (same arch, weight source and init seed)
  trained on the same N images for at least pretraining + fine-tuning steps
  (`label_budget.real_only_budget`). It reads no synthetic data and no fine-tuning recipe, so a recipe
  search over fine-tuning knobs re-uses it from DVC's run cache instead of training it again.

Both validate `label_budget.evals_per_run` times on real val and keep the best checkpoint; that one
is scored once on real test (never used for selection). The N images are a seeded class-balanced
draw from the real train pool: for one seed, the draws are nested (the 10 images of N = 10 are the
first 10 of N = 25), so the curve compares like with like. A run resumes after a kill (the work
folder keeps the resume checkpoints). The `label_budget` stage checks that the two arms of a point
used the same images and that real-only got at least the synthetic arm's total steps.

Writes `data/label_budget_<arm>/n-<N>/seed-<s>/`: model.pt, curves.png, history.json, metrics.json
and `run.json` (the budgets, the draw and the arm's val and test scores).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.config import Config
from sim2real.context import StageContext, StepResult, markdown_table, write_json
from sim2real.evaluate.predict import evaluate_model
from sim2real.real.fewshot import select_few_shot
from sim2real.shards import replace_dir
from sim2real.taxonomy import CLASSES
from sim2real.train import checkpoint as ckpt
from sim2real.train.loop import ArrayData, TrainJob, train
from sim2real.train.models import create_model
from sim2real.train.stage import (
    data_signature,
    finish_run,
    init_info,
    load_set,
    prepare_work,
    stage_device,
    train_job,
)

ARMS = ("synthetic", "real_only")
STAGE = {"synthetic": "label_budget_synthetic", "real_only": "label_budget_real_only"}


def items(cfg: Config) -> list[tuple[str, int]]:
    """Every configured (N label, seed), in the registry's item order (N varies slowest)."""
    return [(str(n), s) for n in cfg.label_budget.sizes for s in cfg.label_budget.seeds]


def run_dir(root: Path, label: str, seed: int, arm: str = "synthetic") -> Path:
    """Where one arm's run lives: the registry's out for item "<N>-<seed>" (a test holds the two equal)."""
    return root / "data" / STAGE[arm] / f"n-{label}" / f"seed-{seed}"


def parse_item(item: str | None, pool_size: int) -> tuple[str, int, int]:
    """`"10-0"` -> ("10", N images, seed); "all" takes the whole pool, a larger N is capped to it."""
    label, _, seed = (item or "").rpartition("-")
    if not label or not seed.isdigit() or not (label == "all" or label.isdigit()):
        raise ValueError(f"label_budget: item {item!r} is not '<N>-<seed>' (e.g. 10-0 or all-1)")
    n = pool_size if label == "all" else min(int(label), pool_size)
    return label, n, int(seed)


def draw(pool: ArrayData, n: int, seed: int, real_seed: int) -> tuple[ArrayData, list[int]]:
    """The seeded class-balanced draw of N pool images (nested across N for one seed)."""
    picks = sorted(select_few_shot(pool.masks, n, real_seed + seed))
    return ArrayData(pool.images[picks], pool.masks[picks]), picks


def score(model: Any, data: ArrayData, device: str, batch_size: int) -> dict[str, Any]:
    """mIoU (points) and per-class IoU (points, None = absent) of `model` on one split."""
    r = evaluate_model(model, data.images, data.masks, device=device, batch_size=batch_size)
    return {"miou": round(100 * float(r.scores.miou), 4), "images": len(data),
            "class_iou": {c: (None if not np.isfinite(v) else round(100 * float(v), 4))
                          for c, v in zip(CLASSES, r.scores.iou, strict=False)}}


@dataclass
class RunPoint:
    """One (N, seed) point: the draw, the val/test splits and the budgets both arms share."""

    label: str
    n: int
    seed: int
    few: ArrayData
    picks: list[int]
    pool_size: int
    splits: dict[str, ArrayData]
    pretrain_steps: int
    finetune_steps: int
    real_only_steps: int

    @property
    def budget(self) -> dict[str, Any]:
        return {"n": self.n, "n_label": self.label, "seed": self.seed, "pretrain_steps": self.pretrain_steps,
                "finetune_steps": self.finetune_steps, "real_only_steps": self.real_only_steps}


def run_point(cfg: Config, ctx: StageContext, pretrain_steps: int) -> RunPoint:
    real = ctx.stage_dir("real_target")
    pool = load_set(real / "train", "real train pool")
    splits = {"val": load_set(real / "val", "real val split"), "test": load_set(real / "test", "real test split")}
    label, n, seed = parse_item(ctx.item, len(pool))
    few, picks = draw(pool, n, seed, cfg.real.seed)
    lb = cfg.label_budget
    return RunPoint(label, n, seed, few, picks, len(pool), splits, pretrain_steps, lb.finetune_steps(n),
                    lb.real_only_budget(pretrain_steps, n))


def run_arm(arm: str, cfg: Config, ctx: StageContext, point: RunPoint, model: Any, job: TrainJob,
            extra: dict[str, Any], mix: ArrayData | None = None) -> StepResult:
    """Train one arm, score its selected weights on val and test, and publish its run folder whole."""
    device = stage_device(cfg, ctx)
    out = run_dir(ctx.root, point.label, point.seed, arm)
    work = prepare_work(out, job.fingerprint())  # a resume checkpoint of another recipe is never picked up
    result = train(model, job, point.few, {"real": point.splits["val"]}, work, device=device, mix_data=mix)
    total = point.pretrain_steps + point.finetune_steps if arm == "synthetic" else point.real_only_steps
    budget = {**point.budget, "total_steps": total, "steps": result.steps_done, "best_step": result.best_step,
              "train_s": round(result.train_seconds, 2)}
    metrics = finish_run(work, result, budget, title=f"label_budget {arm} {job.name}")
    best, _ = ckpt.load_model(work / "model.pt", device=device)
    scores = {"arm": arm, **budget, "best_step": metrics["best_step"],
              "val": score(best, point.splits["val"], device, cfg.evaluate.batch_size),
              "test": score(best, point.splits["test"], device, cfg.evaluate.batch_size)}
    write_json(work / "run.json", {**scores, **extra, "class_balance": job.class_balance, "picks": point.picks,
                                   "pool_size": point.pool_size})
    (work / "fingerprint.txt").unlink(missing_ok=True)
    replace_dir(work, out)
    row = {"arm": arm, "N": point.n, "seed": point.seed, "steps": scores["steps"], "best step": scores["best_step"],
           "val mIoU": scores["val"]["miou"], "test mIoU": scores["test"]["miou"]}
    return StepResult(
        metrics={"val_miou": scores["val"]["miou"], "test_miou": scores["test"]["miou"],
                 "steps": float(scores["steps"]), "n": float(point.n)},
        tables={f"label budget {arm}, N={point.label} ({point.n} images), seed {point.seed}":
                markdown_table([row], ".4g")})


def _common(cfg: Config, point: RunPoint, steps: int, mix: ArrayData | None = None) -> dict[str, Any]:
    lb = cfg.label_budget
    data = [point.few, *point.splits.values(), *([mix] if mix is not None else [])]
    return dict(seed=point.seed, inputs=data_signature(*data), hflip=True,
                eval_every=lb.eval_every(steps), patience=lb.patience, checkpoint_every=0)


def label_budget_synthetic(cfg: Config, ctx: StageContext) -> StepResult:
    """Fine-tune the pretrained model on N real images; score it on real val (selection) and test.

    Args:
        cfg: reads `label_budget` (budgets), `finetune` (strategy, lr, batch, synthetic mix), `style.method`
            (which pretrained model), `real.seed` (the draw), `pretrain.steps` (the total budget).
        ctx: `ctx.item` is "<N>-<seed>"; writes `data/label_budget_synthetic/n-<N>/seed-<seed>/`.
    """
    source = ctx.stage_dir("pretrained_model", cfg.style.method) / "model.pt"
    if not source.exists():
        raise FileNotFoundError(f"{source}: pretrained checkpoint not found; run "
                                f"`sim2real run pretrained_model --item {cfg.style.method}` first")
    pre_sha = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    pre_steps = max(cfg.pretrain.steps, int(ckpt.read_checkpoint(source).get("budget", {}).get("pretrain_steps", 0)))
    point = run_point(cfg, ctx, pre_steps)
    model, info = ckpt.load_model(source)
    model.train()
    init = {"kind": "checkpoint", "checkpoint": str(source.relative_to(ctx.root)), "checkpoint_sha": pre_sha,
            "checkpoint_step": int(info["step"]), "pretrained_init": info["init"]}
    ft = cfg.finetune
    mix = None
    if ft.synthetic_mix > 0:  # styled synthetic batches mixed into fine-tuning
        mix = load_set(ctx.stage_dir("styled_scenes", cfg.style.method) / "train", "styled synthetic train set")
    pre_params = info.get("params", {}).get("pretrain", {})
    job = train_job(cfg, "finetune", name=f"synthetic+{point.n} seed {point.seed}", stage="label_budget_synthetic",
                    init=init, steps=point.finetune_steps, strategy=ft.strategy,
                    encoder_lr_factor=ft.encoder_lr_factor, unfreeze_groups=ft.unfreeze_groups,
                    synthetic_mix=ft.synthetic_mix, **_common(cfg, point, point.finetune_steps, mix))
    return run_arm("synthetic", cfg, ctx, point, model, job,
                   {"style_method": cfg.style.method, "source_checkpoint_sha": pre_sha,
                    "synthetic_mix": ft.synthetic_mix,
                    # the recipe that made the start weights (which change bought what)
                    "pretrain_class_balance": float(pre_params.get("class_balance", 0.0)),
                    "pretrain_select": str(pre_params.get("select", "real"))},
                   mix)


def label_budget_real_only(cfg: Config, ctx: StageContext) -> StepResult:
    """Train the pretraining start weights on the same N real images, with at least the synthetic budget.

    Args:
        cfg: reads `label_budget` (budgets), `model` (the start weights), `pretrain.steps`/`lr` (the fair
            budget and the default lr), `finetune.real_only_lr` and the batch/optimizer keys, `real.seed`.
        ctx: `ctx.item` is "<N>-<seed>"; writes `data/label_budget_real_only/n-<N>/seed-<seed>/`.
    """
    point = run_point(cfg, ctx, cfg.pretrain.steps)
    model = create_model(cfg.model)  # bit-identical to pretraining's start weights
    ft = cfg.finetune
    lr = ft.real_only_lr or cfg.pretrain.lr
    job = train_job(cfg, "finetune", name=f"real-only {point.n} seed {point.seed}", stage="label_budget_real_only",
                    init=init_info(cfg, model), steps=point.real_only_steps, lr=lr, strategy="full",
                    **_common(cfg, point, point.real_only_steps))
    return run_arm("real_only", cfg, ctx, point, model, job, {"lr": lr})

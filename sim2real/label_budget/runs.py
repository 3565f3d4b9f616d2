"""Stage `label_budget_run`: one point of the label-budget curve, N real images x one seed, both arms.

- **synthetic**: the pretrained model (`style.method`) fine-tuned on the N images (`finetune.*`
  strategy and learning rate), for `label_budget.finetune_steps(N)` steps.
- **real_only**: the pretraining start weights (same arch, weight source and init seed) trained on
  the same N images for at least pretraining + fine-tuning steps (`label_budget.real_only_budget`).

Both validate `label_budget.evals_per_run` times on real val and keep the best checkpoint; that one
is scored once on real test (never used for selection). The N images are a seeded class-balanced
draw from the real train pool: for one seed, the draws are nested (the 10 images of N = 10 are the
first 10 of N = 25), so the curve compares like with like. Runs resume after a kill (the work folder
keeps finished arms and the resume checkpoints).

Writes `data/label_budget_run/n-<N>/seed-<s>/{synthetic,real_only}/` (model.pt, curves.png,
history.json, metrics.json, scores.json) and `run.json` (budgets, the draw, both arms' scores).
"""

from __future__ import annotations

import hashlib
import json
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
from sim2real.train.loop import ArrayData, train
from sim2real.train.models import create_model
from sim2real.train.stage import (
    data_signature,
    finish_run,
    init_info,
    load_set,
    prepare_work,
    stage_device,
    stage_fingerprint,
    train_job,
)

ARMS = ("synthetic", "real_only")


def items(cfg: Config) -> list[tuple[str, int]]:
    """Every configured (N label, seed), in the registry's item order (N varies slowest)."""
    return [(str(n), s) for n in cfg.label_budget.sizes for s in cfg.label_budget.seeds]


def run_dir(root: Path, label: str, seed: int) -> Path:
    """Where one run lives: the registry's out for item "<N>-<seed>" (a test holds the two equal)."""
    return root / "data" / "label_budget_run" / f"n-{label}" / f"seed-{seed}"


def parse_item(item: str | None, pool_size: int) -> tuple[str, int, int]:
    """`"10-0"` -> ("10", N images, seed); "all" takes the whole pool, a larger N is capped to it."""
    label, _, seed = (item or "").rpartition("-")
    if not label or not seed.isdigit() or not (label == "all" or label.isdigit()):
        raise ValueError(f"label_budget_run: item {item!r} is not '<N>-<seed>' (e.g. 10-0 or all-1)")
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


def _arm(arm: str, run_dir: Path, model: Any, job: Any, few: ArrayData, splits: dict[str, ArrayData],
         device: str, budget: dict[str, Any], eval_batch: int) -> dict[str, Any]:
    """Train one arm (or reuse its finished folder), then score its selected weights on val and test."""
    done = run_dir / "scores.json"
    if done.exists():
        return json.loads(done.read_text())
    result = train(model, job, few, {"real": splits["val"]}, run_dir, device=device)
    budget = {**budget, f"{arm}_steps": result.steps_done, "best_step": result.best_step,
              "train_s": round(result.train_seconds, 2)}
    metrics = finish_run(run_dir, result, budget, title=f"label_budget {arm} {job.name}")
    best, _ = ckpt.load_model(run_dir / "model.pt", device=device)
    scores = {"arm": arm, **budget, "steps": result.steps_done, "best_step": metrics["best_step"],
              "val": score(best, splits["val"], device, eval_batch),
              "test": score(best, splits["test"], device, eval_batch)}
    write_json(done, scores)
    return scores


def label_budget_run(cfg: Config, ctx: StageContext) -> StepResult:
    """Train both arms at one (N, seed) and score them on real val (selection) and test (report).

    Args:
        cfg: reads `label_budget` (budgets), `model`, `pretrain.steps`/`lr`, `finetune` (strategy, lr,
            batch), `style.method` (which pretrained model), `real.seed` (the draw).
        ctx: `ctx.item` is "<N>-<seed>"; writes `data/label_budget_run/n-<N>/seed-<seed>/`.
    """
    lb, ft = cfg.label_budget, cfg.finetune
    real = ctx.stage_dir("real_target")
    pool = load_set(real / "train", "real train pool")
    splits = {"val": load_set(real / "val", "real val split"), "test": load_set(real / "test", "real test split")}
    label, n, seed = parse_item(ctx.item, len(pool))
    few, picks = draw(pool, n, seed, cfg.real.seed)
    source = ctx.stage_dir("pretrained_model", cfg.style.method) / "model.pt"
    if not source.exists():
        raise FileNotFoundError(f"{source}: pretrained checkpoint not found; run "
                                f"`sim2real run pretrained_model --item {cfg.style.method}` first")
    pre_sha = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    pre_steps = max(cfg.pretrain.steps, int(ckpt.read_checkpoint(source).get("budget", {}).get("pretrain_steps", 0)))
    ft_steps = lb.finetune_steps(n)
    ro_steps = lb.real_only_budget(pre_steps, n)
    inputs = data_signature(few, *splits.values())
    device = stage_device(cfg, ctx)
    out = run_dir(ctx.root, label, seed)
    run_keys = lb.model_dump(exclude={"sizes", "seeds"})  # other sizes and seeds never touch this run
    work = prepare_work(out, stage_fingerprint(
        cfg, ["model", "finetune"], {"inputs": inputs, "source": pre_sha, "n": n, "seed": seed,
                                     "pretrain_lr": cfg.pretrain.lr, "label_budget": run_keys}))
    budget = {"n": n, "n_label": label, "seed": seed, "pretrain_steps": pre_steps,
              "finetune_steps": ft_steps, "real_only_steps": ro_steps}

    model, info = ckpt.load_model(source)
    model.train()
    init = {"kind": "checkpoint", "checkpoint": str(source.relative_to(ctx.root)), "checkpoint_sha": pre_sha,
            "checkpoint_step": int(info["step"]), "pretrained_init": info["init"]}
    common = dict(seed=seed, inputs=inputs, hflip=True, eval_every=lb.eval_every(ft_steps), patience=lb.patience,
                  checkpoint_every=0)
    syn_job = train_job(cfg, "finetune", name=f"synthetic+{n} seed {seed}", stage="label_budget_run", init=init,
                   steps=ft_steps, strategy=ft.strategy, encoder_lr_factor=ft.encoder_lr_factor,
                   unfreeze_groups=ft.unfreeze_groups, **common)
    syn = _arm("synthetic", work / "synthetic", model, syn_job, few, splits, device,
               {**budget, "total_steps": pre_steps + ft_steps}, cfg.evaluate.batch_size)

    base = create_model(cfg.model)  # bit-identical to pretraining's start weights
    ro_job = train_job(cfg, "finetune", name=f"real-only {n} seed {seed}", stage="label_budget_run",
                  init=init_info(cfg, base), steps=ro_steps, lr=ft.real_only_lr or cfg.pretrain.lr,
                  strategy="full", **{**common, "eval_every": lb.eval_every(ro_steps)})
    ro = _arm("real_only", work / "real_only", base, ro_job, few, splits, device,
              {**budget, "total_steps": ro_steps}, cfg.evaluate.batch_size)

    run = {**budget, "picks": picks, "pool_size": len(pool), "style_method": cfg.style.method,
           "source_checkpoint_sha": pre_sha, "arms": {"synthetic": syn, "real_only": ro},
           "gain_test": round(syn["test"]["miou"] - ro["test"]["miou"], 4),
           "gain_val": round(syn["val"]["miou"] - ro["val"]["miou"], 4)}
    write_json(work / "run.json", run)
    (work / "fingerprint.txt").unlink(missing_ok=True)
    replace_dir(work, out)
    rows = [{"arm": a, "steps": s["steps"], "best step": s["best_step"], "val mIoU": s["val"]["miou"],
             "test mIoU": s["test"]["miou"]} for a, s in (("synthetic + N", syn), ("real-only", ro))]
    return StepResult(
        metrics={"synthetic_test_miou": syn["test"]["miou"], "real_only_test_miou": ro["test"]["miou"],
                 "gain_test": run["gain_test"], "n": float(n)},
        tables={f"label budget N={label} ({n} images), seed {seed}": markdown_table(rows, ".4g")})

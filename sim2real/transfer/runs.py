"""Stage `transfer_ablation`: one point of the layer-wise transferability curve, k frozen stages x one seed.

Two arms fine-tune on the N few-shot real images (`data/real_target/few_shot`) with encoder stages
1..k frozen (`StagesFrozen`), for `transfer.steps` steps at `finetune.lr` / `finetune.batch_size`:
- **synthetic**: from the synthetic-pretrained model (`pretrained_model/<style.method>`);
- **imagenet**: from the ImageNet-only initialisation (`model.encoder_weights`, random decoder and
  head, seeded by `model.init_seed + seed`); no synthetic data at all.
Both validate `transfer.evals_per_run` times on real val and keep the best checkpoint (real-val mIoU
is what the curve plots; test stays untouched).

Writes `data/transfer_ablation/k-<k>/seed-<s>/{synthetic,imagenet}/` (model.pt, curves.png,
metrics.json, scores.json) and `run.json` (budgets, both arms' real-val mIoU).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from sim2real.config import Config
from sim2real.context import StageContext, StepResult, markdown_table
from sim2real.shards import replace_dir
from sim2real.train import checkpoint as ckpt
from sim2real.train.loop import ArrayData, TrainJob, train
from sim2real.train.models import SegModel, create_model
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
from sim2real.transfer.freeze import StagesFrozen

__all__ = ["transfer_ablation", "run_dir", "parse_item", "finetune_frozen", "ARMS"]

ARMS = ("synthetic", "imagenet")


def run_dir(root: Path, k: int, seed: int) -> Path:
    """Where one run lives: the registry's out for item "<k>-<seed>"."""
    return root / "data" / "transfer_ablation" / f"k-{k}" / f"seed-{seed}"


def parse_item(item: str | None) -> tuple[int, int]:
    k, _, seed = (item or "").partition("-")
    if not k.isdigit() or not seed.isdigit():
        raise ValueError(f"transfer_ablation: item {item!r} is not '<k>-<seed>' (e.g. 2-0)")
    return int(k), int(seed)


def finetune_frozen(model: SegModel, k: int, job: TrainJob, few: ArrayData, val: ArrayData, work: Path,
                    device: str, budget: dict[str, Any]) -> dict[str, Any]:
    """Fine-tune `model` with encoder stages 1..k frozen; the selected weights' real-val mIoU (points).

    A finished arm (its `scores.json`) is reused, so a killed stage resumes where it stopped.
    """
    done = work / "scores.json"
    if done.exists():
        return json.loads(done.read_text())
    frozen = StagesFrozen(model, k)
    result = train(frozen, job, few, {"real": val}, work, device=device)
    metrics = finish_run(work, result, {**budget, "steps": result.steps_done}, title=job.name)
    scores = {"k": k, "stages": frozen.num_stages, "steps": result.steps_done, "best_step": metrics["best_step"],
              "val_miou": round(100 * float(result.best_metric), 4), "train_s": round(result.train_seconds, 2)}
    tmp = done.with_name(done.name + ".tmp")
    tmp.write_text(json.dumps(scores, indent=1, sort_keys=True))
    tmp.replace(done)
    return scores


def transfer_ablation(cfg: Config, ctx: StageContext) -> StepResult:
    """Both arms at one (k, seed): fine-tune with stages 1..k frozen, best checkpoint on real val.

    Args:
        cfg: reads `transfer` (steps, evals), `finetune` (lr, batch size, ...), `model`, `style.method`.
        ctx: `ctx.item` is "<k>-<seed>"; writes `data/transfer_ablation/k-<k>/seed-<seed>/`.
    """
    tr = cfg.transfer
    k, seed = parse_item(ctx.item)
    real = ctx.stage_dir("real_target")
    few = load_set(real / "few_shot", "real few-shot subset")
    val = load_set(real / "val", "real val split")
    source = ctx.stage_dir("pretrained_model", cfg.style.method) / "model.pt"
    if not source.exists():
        raise FileNotFoundError(f"{source}: pretrained checkpoint not found; run "
                                f"`sim2real run pretrained_model --item {cfg.style.method}` first")
    pre_sha = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    inputs = data_signature(few, val)
    device = stage_device(cfg, ctx)
    out = run_dir(ctx.root, k, seed)
    # other ks and seeds never touch this run: only the budget keys of `transfer` go into the fingerprint
    work = prepare_work(out, stage_fingerprint(cfg, ["model", "finetune"], {
        "inputs": inputs, "source": pre_sha, "k": k, "seed": seed, "steps": tr.steps, "evals": tr.evals_per_run}))
    budget = {"k": k, "seed": seed, "n": len(few), "finetune_steps": tr.steps}
    common = dict(seed=seed, inputs=inputs, hflip=True, eval_every=max(1, math.ceil(tr.steps / tr.evals_per_run)),
                  patience=0, checkpoint_every=0, steps=tr.steps, strategy="full")

    synthetic, info = ckpt.load_model(source)
    init = {"kind": "checkpoint", "checkpoint": str(source.relative_to(ctx.root)), "checkpoint_sha": pre_sha,
            "checkpoint_step": int(info["step"]), "pretrained_init": info["init"]}
    arms = {"synthetic": finetune_frozen(
        synthetic, k, train_job(cfg, "finetune", name=f"synthetic k={k} seed {seed}", stage="transfer_ablation",
                                init=init, **common), few, val, work / "synthetic", device, budget)}
    imagenet = create_model(cfg.model, seed=cfg.model.init_seed + seed)
    arms["imagenet"] = finetune_frozen(
        imagenet, k, train_job(cfg, "finetune", name=f"imagenet k={k} seed {seed}", stage="transfer_ablation",
                               init=init_info(cfg, imagenet), **common), few, val, work / "imagenet", device, budget)
    run = {**budget, "style_method": cfg.style.method, "source_checkpoint_sha": pre_sha,
           "imagenet_init": str(getattr(imagenet, "info", {}).get("loaded", cfg.model.encoder_weights)),
           "pretrain_steps": int(info.get("budget", {}).get("pretrain_steps", info["step"])), "arms": arms}
    (work / "run.json").write_text(json.dumps(run, indent=1, sort_keys=True))
    (work / "fingerprint.txt").unlink(missing_ok=True)
    replace_dir(work, out)
    rows = [{"init": a, "frozen stages": f"1..{k}" if k else "none", "steps": s["steps"], "best step": s["best_step"],
             "real val mIoU": s["val_miou"]} for a, s in arms.items()]
    return StepResult(metrics={f"{a}_val_miou": s["val_miou"] for a, s in arms.items()},
                      tables={f"transfer ablation k={k}, seed {seed} (N={len(few)} real images)": markdown_table(rows)})

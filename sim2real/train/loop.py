"""The training loop, top to bottom: batches, optional augmentation, forward/backward, validation,
best-checkpoint selection, periodic atomic checkpoints and exact resume.

Everything random is a function of (seed, step): the samples of step t come from a per-epoch
permutation seeded by (seed, epoch), and torch/numpy/python RNGs are re-seeded from (seed, step, rank)
before each step (kornia augmentation, dropout, flips). So a run killed after its checkpoint at step k
and resumed there does exactly what the uninterrupted run did: same batches, same augmentation,
same weights at the end (CPU, same thread count).

Example:
    >>> job = TrainJob(name="pretrain", steps=150, batch_size=8, lr=1e-3, seed=0, stage="pretrained_model")
    >>> result = train(model, job, train_set, {"real": real_val}, work_dir, device="cpu")
    >>> result.best_metric, result.history[-1]
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sim2real.taxonomy import VOID
from sim2real.train import checkpoint as ckpt
from sim2real.train.metrics import evaluate, miou, per_class_iou
from sim2real.train.models import normalize, to_float
from sim2real.train.strategies import Strategy, get_strategy

log = logging.getLogger("sim2real")

Augment = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class ArrayData:
    """An in-memory labelled set: uint8 images (N,H,W,3) and masks (N,H,W)."""

    images: np.ndarray
    masks: np.ndarray

    def __post_init__(self) -> None:
        if len(self.images) == 0:
            raise ValueError("empty dataset")
        if self.images.shape[:3] != self.masks.shape:
            raise ValueError(f"images {self.images.shape} and masks {self.masks.shape} disagree")

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def load(cls, folder: str | Path) -> ArrayData:
        """Read a shard folder (sim2real.shards) fully into memory."""
        from sim2real.shards import ShardDataset

        ds = ShardDataset(folder)
        if len(ds) == 0:
            raise ValueError(f"{folder}: dataset is empty")
        images, masks = ds.arrays()
        return cls(np.ascontiguousarray(images), np.ascontiguousarray(masks))


@dataclass
class TrainJob:
    """What to train and how. `params` (the config dict) and `init` go into every checkpoint."""

    name: str
    steps: int
    batch_size: int
    lr: float
    stage: str
    seed: int = 0
    weight_decay: float = 1e-4
    eval_every: int = 50
    checkpoint_every: int = 0  # 0 = at every validation
    warmup_frac: float = 0.1
    patience: int = 0  # validations without improvement before stopping (0 = never)
    amp: str = "bf16"  # CUDA only
    strategy: str = "full"
    encoder_lr_factor: float = 0.1
    unfreeze_groups: int = 3
    synthetic_mix: float = 0.0  # fraction of each batch from `mix_data`
    hflip: bool = False  # random horizontal flip (cheap, label-safe) when no `augment` is given
    select: str = "real"  # validation set whose mIoU picks the best checkpoint (falls back to the first)
    eval_batch_size: int = 16
    params: dict[str, Any] = field(default_factory=dict)
    init: dict[str, Any] = field(default_factory=dict)
    inputs: str = ""  # content hash of the data (part of the fingerprint)

    def fingerprint(self) -> str:
        """Identity of the run: a resume checkpoint from a different job is never picked up."""
        import hashlib

        blob = json.dumps(asdict(self), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class TrainResult:
    best_metric: float
    best_step: int
    steps_done: int
    history: list[dict[str, float]]
    best_path: Path
    images_seen: int
    real_images_seen: int
    synthetic_images_seen: int
    train_seconds: float
    resumed_from: int = 0


# ---------------------------------------------------------------- randomness as a function of the step
@lru_cache(maxsize=64)
def _permutation(n: int, seed: int, stream: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, stream, epoch]).permutation(n)


def batch_indices(n: int, batch_size: int, seed: int, step: int, stream: int = 0) -> np.ndarray:
    """Sample indices of `step`: slice `step` of an endless stream of per-epoch permutations."""
    pos = np.arange(step * batch_size, (step + 1) * batch_size)
    epochs, offsets = pos // n, pos % n
    return np.array([_permutation(n, seed, stream, int(e))[o] for e, o in zip(epochs, offsets, strict=True)])


def seed_step(seed: int, step: int, rank: int = 0) -> None:
    """Re-seed every RNG for this step (augmentation, dropout), so resume needs no RNG replay."""
    s = int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])
    torch.manual_seed(s)
    np.random.seed(s)
    random.seed(s)


def hflip(x: torch.Tensor, y: torch.Tensor, p: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip each sample left-right with probability p (torch's global RNG, seeded per step)."""
    flip = torch.rand(len(x)) < p
    if flip.any():
        idx = flip.nonzero().flatten().to(x.device)
        x, y = x.clone(), y.clone()
        x[idx] = x[idx].flip(-1)
        y[idx] = y[idx].flip(-1)
    return x, y


# ---------------------------------------------------------------- distributed helpers (no-ops alone)
def dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _all_mean(value: torch.Tensor, world: int) -> float:
    if world > 1:
        value = value.detach().clone()
        torch.distributed.all_reduce(value)
        value /= world
    return float(value.detach())


def _broadcast_flag(flag: bool, world: int, device: str) -> bool:
    if world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    torch.distributed.broadcast(t, src=0)
    return bool(t.item())


# ---------------------------------------------------------------- metrics logging (DVCLive)
def _files_only_live(live_dir: Path) -> Any:
    """A DVCLive logger that only writes its files (metrics.json, plots/metrics/*.tsv).

    The stage registry owns dvc.yaml and DVC tracks the stage's out, so DVCLive's repository integration
    (experiment names from git, dvc.yaml edits, and `dvc init` of a git repo that has no DVC) is skipped;
    it also costs a second per run.
    """
    from dvclive import Live

    class FilesOnlyLive(Live):
        def _init_dvc(self) -> None:
            self._dvc_repo = None

    return FilesOnlyLive(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None)


class MetricsLog:
    """History of per-step records, mirrored to DVCLive in `live_dir` (rebuilt from history on resume)."""

    def __init__(self, live_dir: Path | None, history: list[dict[str, float]], prefix: str = ""):
        self.history = history
        self.live = None
        self.prefix = prefix
        if live_dir is None:
            return
        shutil.rmtree(live_dir, ignore_errors=True)
        self.live = _files_only_live(live_dir)
        for rec in history:
            self._to_live(rec)

    def _to_live(self, rec: dict[str, float], summary: bool = True) -> None:
        if self.live is None:
            return
        self.live.step = int(rec["step"])
        for k, v in rec.items():
            if k != "step":
                self.live.log_metric(self.prefix + k, float(v))
        if summary:
            self.live.make_summary()

    def add(self, rec: dict[str, float], summary: bool = True) -> None:
        """Append a record; `summary=False` skips rewriting DVCLive's metrics.json (done at validations)."""
        if self.history and self.history[-1]["step"] == rec["step"]:
            self.history[-1].update(rec)  # validation of the same step joins its training record
        else:
            self.history.append(dict(rec))
        self._to_live(rec, summary=summary)

    def close(self) -> None:
        if self.live is not None:
            self.live.make_summary()


def write_live(live_dir: Path, histories: dict[str, list[dict[str, float]]]) -> None:
    """One DVCLive folder for several runs (e.g. seeds): metrics named `<run>/train/loss`, ..."""
    log_ = MetricsLog(live_dir, [])
    for run, hist in histories.items():
        log_.prefix = f"{run}/"
        for rec in hist:
            log_._to_live(rec, summary=False)
    log_.close()


def one_cycle(optimizer: torch.optim.Optimizer, max_lr: list[float], steps: int, warmup_frac: float,
              ) -> torch.optim.lr_scheduler.LRScheduler:
    """One-cycle schedule; very short runs get a constant lr (OneCycleLR needs >= 2 warm-up steps)."""
    if steps < 4:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    # OneCycleLR divides by (warm-up steps - 1): keep at least 2 warm-up steps, at most half the run
    pct = min(0.5, max(warmup_frac, 2.0 / steps))
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=steps, pct_start=pct)


# ---------------------------------------------------------------- the loop
def train(
    model: nn.Module,
    job: TrainJob,
    train_data: ArrayData,
    val_sets: dict[str, ArrayData],
    work_dir: str | Path,
    device: str = "cpu",
    augment: Augment | None = None,
    mix_data: ArrayData | None = None,
    live: bool = True,
    progress: bool = True,
    stop_at: int | None = None,
) -> TrainResult:
    """Train `model` per `job`, resuming from `work_dir/last.pt` when it belongs to the same job.

    Args:
        model: a `SegModel` (see `sim2real.train.models.create_model`), on the CPU.
        job: steps, batch, optimizer, schedule, strategy and what goes into checkpoints.
        train_data: the labelled training set (in memory).
        val_sets: name -> validation set; `job.select` (or the first) picks the best checkpoint.
        work_dir: holds `last.pt` (resume), `best.pt` (selected weights), `history.json`, `dvclive/`.
        device: "cpu" or "cuda[:i]"; under torchrun every rank passes its own.
        augment: online augmentation `(x01, y) -> (x01, y)` applied to the synthetic/training batch.
        mix_data: synthetic set mixed into each batch at `job.synthetic_mix`.
        live: mirror metrics to DVCLive.
        progress: show a `Progress` bar / log lines (rank 0).
        stop_at: pause after this many steps (checkpointed; a later call resumes). For time-boxed runs
            and tests; the schedule still spans `job.steps`.

    Returns:
        A `TrainResult` (best metric and step, full history, budgets).
    """
    from sim2real.progress import Progress

    work_dir = Path(work_dir)
    rank, world = dist_info()
    is_main = rank == 0
    cuda = str(device).startswith("cuda")
    if job.batch_size % world:
        raise ValueError(f"batch_size {job.batch_size} must divide by the {world} DDP ranks")
    n_mix = int(round(job.batch_size * job.synthetic_mix)) if mix_data is not None else 0
    n_real = job.batch_size - n_mix
    if n_real < world:
        raise ValueError(f"synthetic_mix {job.synthetic_mix} leaves no real samples in a batch of {job.batch_size}")

    # ---- model, strategy, optimizer, schedule
    strategy: Strategy = get_strategy(job.strategy, steps=job.steps, encoder_lr_factor=job.encoder_lr_factor,
                                      unfreeze_groups=job.unfreeze_groups)
    strategy.prepare(model, seed=job.seed)
    model.to(device)
    if cuda:
        model.to(memory_format=torch.channels_last)
    groups = strategy.param_groups(model, job.lr)
    optimizer = torch.optim.AdamW(groups, lr=job.lr, weight_decay=job.weight_decay)
    scheduler = one_cycle(optimizer, [g["lr"] for g in groups], job.steps, job.warmup_frac)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(job.amp) if cuda else None
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    net: nn.Module = model
    if world > 1:
        # frozen parts change over time (gradual) -> let DDP tolerate parameters without gradients
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[torch.device(device).index] if cuda else None,
            find_unused_parameters=job.strategy != "full" and job.strategy != "discriminative")

    # ---- resume
    fingerprint = job.fingerprint()
    last_path, best_path = work_dir / "last.pt", work_dir / "best.pt"
    start, history = 0, []
    best_metric, best_step, bad_evals = -math.inf, 0, 0
    if last_path.exists():
        state = ckpt.read_checkpoint(last_path)
        if state.get("fingerprint") == fingerprint:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            ckpt.set_rng_state(state["rng"])
            start, history = int(state["step"]), list(state["history"])
            best_metric, best_step, bad_evals = float(state["best_metric"]), int(state["best_step"]), int(
                state["bad_evals"])
            if is_main:
                log.info("%s: resuming from %s at step %d", job.name, last_path, start)
        elif is_main:
            log.info("%s: ignoring %s (another job)", job.name, last_path)
    metrics_log = MetricsLog(work_dir / "dvclive" if (live and is_main) else None, history)
    select = job.select if job.select in val_sets else next(iter(val_sets), None)
    ckpt_every = job.checkpoint_every or job.eval_every

    def save_last(step: int) -> None:
        ckpt.save_checkpoint(last_path, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "step": step,
            "rng": ckpt.rng_state(), "params": job.params, "stage": job.stage, "init": job.init,
            "history": metrics_log.history, "best_metric": best_metric, "best_step": best_step,
            "bad_evals": bad_evals, "fingerprint": fingerprint, "job": asdict(job)})

    def save_best(step: int, metrics: dict[str, float]) -> None:
        ckpt.save_checkpoint(best_path, {
            "model": model.state_dict(), "step": step, "params": job.params, "stage": job.stage,
            "init": job.init, "metrics": metrics, "fingerprint": fingerprint})

    def validate(step: int) -> dict[str, float]:
        model.eval()
        out: dict[str, float] = {}
        autocast = torch.autocast("cuda", dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
        with autocast:
            for name, data in val_sets.items():
                cm = evaluate(model, data.images, data.masks, device, job.eval_batch_size, channels_last=cuda)
                out[f"val/{name}_miou"] = miou(cm)
                if name == select:
                    for cls_name, iou in zip(_class_names(), per_class_iou(cm), strict=True):
                        if np.isfinite(iou):
                            out[f"val/{name}_iou/{cls_name}"] = float(iou)
        return out

    # ---- steps
    bar = Progress(total=job.steps, desc=job.name, unit="step") if (progress and is_main) else None
    if bar is not None and start:
        bar.update(start)
    t_train, img_s = 0.0, 0.0
    stop = False
    step = start
    for step in range(start, job.steps):
        t0 = time.perf_counter()
        model.train()
        strategy.apply(model, step)
        seed_step(job.seed, step, rank)
        # global batch of this step, then this rank's share (identical data to one process)
        idx = batch_indices(len(train_data), n_real, job.seed, step)[rank::world]
        x, y = to_float(train_data.images[idx], device), torch.as_tensor(train_data.masks[idx], device=device)
        if n_mix:
            midx = batch_indices(len(mix_data), n_mix, job.seed, step, stream=1)[rank::world]
            mx, my = to_float(mix_data.images[midx], device), torch.as_tensor(mix_data.masks[midx], device=device)
            if augment is not None:
                mx, my = augment(mx, my.long())
            x, y = torch.cat([x, mx]), torch.cat([y.long(), my.long()])
        elif augment is not None:
            x, y = augment(x, y.long())
        if augment is None and job.hflip:
            x, y = hflip(x, y)
        x, y = normalize(x), y.long()
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        autocast = torch.autocast("cuda", dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
        with autocast:
            logits = net(x)
        if (y != VOID).any():
            loss = F.cross_entropy(logits.float(), y, ignore_index=VOID)
        else:  # an all-void batch: no signal, but keep DDP's collective calls in step
            loss = logits.float().sum() * 0.0
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        lr = optimizer.param_groups[-1]["lr"]
        scheduler.step()
        loss_value = _all_mean(loss, world)
        dt = time.perf_counter() - t0
        t_train += dt
        img_s = job.batch_size / dt if img_s == 0 else 0.9 * img_s + 0.1 * job.batch_size / dt
        done = step + 1
        rec = {"step": done, "train/loss": loss_value, "train/lr": lr, "train/images_per_s": img_s}
        if is_main:
            metrics_log.add(rec, summary=False)
        if bar is not None:
            bar.set(loss=loss_value, lr=lr, img_s=img_s)
            bar.update(1)

        # ---- validation and selection (rank 0), checkpoints
        if done % job.eval_every == 0 or done == job.steps:
            if is_main and val_sets:
                vals = validate(done)
                metrics_log.add({"step": done, **{k: v for k, v in vals.items() if "_iou/" not in k}})
                score = vals[f"val/{select}_miou"]
                if score > best_metric:
                    best_metric, best_step, bad_evals = score, done, 0
                    save_best(done, {"best_metric": score, **vals})
                else:
                    bad_evals += 1
                stop = job.patience > 0 and bad_evals >= job.patience
            stop = _broadcast_flag(stop, world, device)
        if is_main and (done % ckpt_every == 0 or done == job.steps or stop):
            save_last(done)
        if world > 1 and (done % ckpt_every == 0):
            torch.distributed.barrier()
        if stop_at is not None and done >= stop_at and done < job.steps:
            if is_main:
                save_last(done)
            break
        if stop:
            log.info("%s: early stop at step %d (best %.4f at %d)", job.name, done, best_metric, best_step)
            break
    else:
        done = max(start, job.steps)
    if bar is not None:
        bar.close()
    if is_main and not val_sets and (not best_path.exists() or start < job.steps):
        save_best(done, {})  # nothing to select on: the last weights are the result
        best_step = done
    if is_main:
        metrics_log.close()
        (work_dir / "history.json").write_text(json.dumps(metrics_log.history))
    if world > 1:
        torch.distributed.barrier()
    per_img = n_real / job.batch_size
    return TrainResult(
        best_metric=best_metric if val_sets else float("nan"), best_step=best_step, steps_done=done,
        history=metrics_log.history if is_main else [], best_path=best_path,
        images_seen=done * job.batch_size, real_images_seen=int(done * job.batch_size * per_img),
        synthetic_images_seen=done * n_mix, train_seconds=t_train, resumed_from=start)


def _class_names() -> tuple[str, ...]:
    from sim2real.taxonomy import CLASSES

    return CLASSES

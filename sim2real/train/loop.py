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
import hashlib
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

from sim2real.progress import Progress
from sim2real.reporting import is_miou_key
from sim2real.shards import ShardDataset
from sim2real.taxonomy import CLASSES, VOID
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
    class_balance: float = 0.0  # loss weight of class c: (median freq / freq of c) ** class_balance (see class_weights)
    hflip: bool = False  # random horizontal flip (cheap, label-safe) when no `augment` is given
    select: str = "real"  # validation set whose mIoU picks the best checkpoint (falls back to the first)
    eval_batch_size: int = 16
    params: dict[str, Any] = field(default_factory=dict)
    init: dict[str, Any] = field(default_factory=dict)
    inputs: str = ""  # content hash of the data (part of the fingerprint)

    def fingerprint(self) -> str:
        """Identity of the run: a resume checkpoint from a different job is never picked up."""
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
    from dvclive import Live  # ~1 s to import: only runs that log metrics pay it

    class FilesOnlyLive(Live):
        def _init_dvc(self) -> None:
            self._dvc_repo = None

    return FilesOnlyLive(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None)


def _is_iou(key: str) -> bool:
    """A record key holding an IoU: `val/real_miou`, `val/real_iou/Car`."""
    return is_miou_key(key) or "_iou/" in key


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
            if k != "step":  # the loop keeps IoUs as fractions; what a person plots is in points, as everywhere
                self.live.log_metric(self.prefix + k, 100.0 * float(v) if _is_iou(k) else float(v))
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


# ---------------------------------------------------------------- the loop's state (= the resume checkpoint)
@dataclass
class LoopState:
    """Everything a run has done so far; `save`/`load` write and read it as the resume checkpoint `last.pt`.

    The model, optimizer, schedule and scaler are live objects (their state dicts go into the file); the
    RNG state is the process's own. Weights and progress restore exactly, so a resumed run continues
    as if it had never stopped.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    step: int = 0  # optimizer steps done
    history: list[dict[str, float]] = field(default_factory=list)
    best_metric: float = -math.inf
    best_step: int = 0
    bad_evals: int = 0  # validations since the last improvement (early stopping)

    def save(self, path: Path, job: TrainJob) -> None:
        ckpt.save_checkpoint(path, {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "step": self.step,
            "rng": ckpt.rng_state(), "params": job.params, "stage": job.stage, "init": job.init,
            "history": self.history, "best_metric": self.best_metric, "best_step": self.best_step,
            "bad_evals": self.bad_evals, "fingerprint": job.fingerprint(), "job": asdict(job)})

    def load(self, path: Path, job: TrainJob) -> bool:
        """Restore from `path` when it was written by this same job (fingerprint); False otherwise."""
        state = ckpt.read_checkpoint(path)
        if state.get("fingerprint") != job.fingerprint():
            return False
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        ckpt.set_rng_state(state["rng"])
        self.step, self.history = int(state["step"]), list(state["history"])
        self.best_metric, self.best_step = float(state["best_metric"]), int(state["best_step"])
        self.bad_evals = int(state["bad_evals"])
        return True


def save_best(path: Path, model: nn.Module, job: TrainJob, step: int, metrics: dict[str, float]) -> None:
    """The selected weights (what the stage publishes as model.pt): no optimizer, no RNG."""
    ckpt.save_checkpoint(path, {
        "model": model.state_dict(), "step": step, "params": job.params, "stage": job.stage,
        "init": job.init, "metrics": metrics, "fingerprint": job.fingerprint()})


# ---------------------------------------------------------------- setup
def channels_last_for(device: str | torch.device) -> bool:
    """Whether the loop runs model and batches in channels_last on `device`: on CUDA, and on the CPU
    where it trains and evaluates faster too (BENCHMARKS.md, `channels_last vs contiguous`)."""
    return torch.device(device).type in ("cuda", "cpu")


@dataclass
class Batches:
    """The samples of each step: the global batch (a function of seed and step), this rank's share,
    the synthetic mix, online augmentation or flips, normalized and on the device."""

    data: ArrayData
    n_real: int
    seed: int
    device: str
    rank: int = 0
    world: int = 1
    mix: ArrayData | None = None
    n_mix: int = 0
    augment: Augment | None = None
    flip: bool = False  # random horizontal flips when there is no `augment`
    channels_last: bool = False
    weights: torch.Tensor | None = None  # cross-entropy class weights (class_weights), on the device

    @classmethod
    def for_job(cls, job: TrainJob, data: ArrayData, device: str, mix: ArrayData | None = None,
                augment: Augment | None = None) -> Batches:
        """This process's batches of `job` (its DDP rank's share of each global batch)."""
        rank, world = dist_info()
        n_real, n_mix = batch_split(job, mix, world)
        weights = class_weights(job, data, mix if n_mix else None)
        return cls(data, n_real, job.seed, device, rank, world, mix, n_mix, augment, job.hflip,
                   channels_last=channels_last_for(device),
                   weights=None if weights is None else weights.to(device))

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        # global batch of this step, then this rank's share (identical data to one process)
        idx = batch_indices(len(self.data), self.n_real, self.seed, step)[self.rank::self.world]
        x, y = to_float(self.data.images[idx], self.device), torch.as_tensor(self.data.masks[idx], device=self.device)
        if self.n_mix:
            assert self.mix is not None
            midx = batch_indices(len(self.mix), self.n_mix, self.seed, step, stream=1)[self.rank::self.world]
            mx = to_float(self.mix.images[midx], self.device)
            my = torch.as_tensor(self.mix.masks[midx], device=self.device)
            if self.augment is not None:
                mx, my = self.augment(mx, my.long())
            x, y = torch.cat([x, mx]), torch.cat([y.long(), my.long()])
        elif self.augment is not None:
            x, y = self.augment(x, y.long())
        if self.augment is None and self.flip:
            x, y = hflip(x, y)
        x, y = normalize(x), y.long()
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y


def class_frequencies(masks: np.ndarray) -> np.ndarray:
    """Pixel share of each class in `masks` (void excluded); zeros for absent classes."""
    counts = np.bincount(masks.reshape(-1), minlength=VOID + 1)[:len(CLASSES)].astype(np.float64)
    total = counts.sum()
    return counts / total if total else counts


def class_weights(job: TrainJob, data: ArrayData, mix: ArrayData | None = None) -> torch.Tensor | None:
    """Cross-entropy class weights `(median f / f_c) ** job.class_balance`, or None when it is 0.

    `f` is the pixel frequency of each class over what a batch draws from: the training labels, and
    the synthetic mix at its share of the batch. The median is over the classes present; an absent
    class gets weight 1 (it has no pixels to weigh). Weights are capped at 50 so one near-absent class
    cannot dominate a batch; PyTorch divides a weighted loss by the summed weights of its pixels, so
    the loss scale stays comparable to plain cross-entropy.
    """
    if job.class_balance <= 0:
        return None
    freq = class_frequencies(data.masks)
    if mix is not None and job.synthetic_mix > 0:
        freq = (1 - job.synthetic_mix) * freq + job.synthetic_mix * class_frequencies(mix.masks)
    present = freq > 0
    if not present.any():
        raise ValueError(f"{job.name}: the training labels hold no class pixels (all void)")
    ratio = np.ones(len(CLASSES))
    ratio[present] = np.median(freq[present]) / freq[present]
    weights = np.minimum(ratio ** job.class_balance, 50.0)
    return torch.as_tensor(weights, dtype=torch.float32)


def batch_split(job: TrainJob, mix_data: ArrayData | None, world: int) -> tuple[int, int]:
    """(real, synthetic) samples per global batch."""
    if job.batch_size % world:
        raise ValueError(f"batch_size {job.batch_size} must divide by the {world} DDP ranks")
    n_mix = int(round(job.batch_size * job.synthetic_mix)) if mix_data is not None else 0
    if job.batch_size - n_mix < world:
        raise ValueError(f"synthetic_mix {job.synthetic_mix} leaves no real samples in a batch of {job.batch_size}")
    return job.batch_size - n_mix, n_mix


def amp_dtype(job: TrainJob, device: str) -> torch.dtype | None:
    """Mixed precision on CUDA (`job.amp`); full precision on the CPU."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(job.amp) if str(device).startswith("cuda") else None


def autocast(dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    return torch.autocast("cuda", dtype=dtype) if dtype else contextlib.nullcontext()


def prepare(model: nn.Module, job: TrainJob, device: str, world: int) -> tuple[LoopState, nn.Module, Strategy]:
    """Strategy, optimizer, schedule and scaler around `model` on `device`; the net to call (DDP-wrapped
    across ranks). Returns the fresh loop state, the net and the strategy."""
    cuda = str(device).startswith("cuda")
    strategy = get_strategy(job.strategy, steps=job.steps, encoder_lr_factor=job.encoder_lr_factor,
                            unfreeze_groups=job.unfreeze_groups)
    strategy.prepare(model, seed=job.seed)
    model.to(device)
    if channels_last_for(device):
        model.to(memory_format=torch.channels_last)
    groups = strategy.param_groups(model, job.lr)
    optimizer = torch.optim.AdamW(groups, lr=job.lr, weight_decay=job.weight_decay)
    scheduler = one_cycle(optimizer, [g["lr"] for g in groups], job.steps, job.warmup_frac)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype(job, device) == torch.float16)
    net: nn.Module = model
    if world > 1:
        # frozen parts change over time (gradual) -> let DDP tolerate parameters without gradients
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[torch.device(device).index] if cuda else None,
            find_unused_parameters=job.strategy != "full" and job.strategy != "discriminative")
    return LoopState(model, optimizer, scheduler, scaler), net, strategy


# ---------------------------------------------------------------- one step, one validation
def train_step(net: nn.Module, state: LoopState, strategy: Strategy, batches: Batches, step: int,
               dtype: torch.dtype | None) -> tuple[float, float]:
    """One optimizer step on the batch of `step`; returns (loss averaged over ranks, lr used)."""
    state.model.train()
    strategy.apply(state.model, step)
    seed_step(batches.seed, step, batches.rank)
    x, y = batches(step)
    with autocast(dtype):
        logits = net(x)
    if (y != VOID).any():
        loss = F.cross_entropy(logits.float(), y, weight=batches.weights, ignore_index=VOID)
    else:  # an all-void batch: no signal, but keep DDP's collective calls in step
        loss = logits.float().sum() * 0.0
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    state.scaler.step(state.optimizer)
    state.scaler.update()
    lr = state.optimizer.param_groups[-1]["lr"]
    state.scheduler.step()
    return _all_mean(loss, batches.world), lr


def validate(model: nn.Module, val_sets: dict[str, ArrayData], select: str | None, batch_size: int, device: str,
             dtype: torch.dtype | None) -> dict[str, float]:
    """mIoU on every validation set, and per-class IoU on the one that selects (`val/<name>_iou/<class>`)."""
    model.eval()
    out: dict[str, float] = {}
    with autocast(dtype):
        for name, data in val_sets.items():
            cm = evaluate(model, data.images, data.masks, device, batch_size,
                          channels_last=channels_last_for(device))
            out[f"val/{name}_miou"] = miou(cm)
            if name == select:
                for cls_name, iou in zip(CLASSES, per_class_iou(cm), strict=True):
                    if np.isfinite(iou):
                        out[f"val/{name}_iou/{cls_name}"] = float(iou)
    return out


def validate_and_select(state: LoopState, job: TrainJob, val_sets: dict[str, ArrayData], select: str,
                        metrics_log: MetricsLog, best_path: Path, device: str, dtype: torch.dtype | None) -> bool:
    """Validate at `state.step`, keep the weights when `select`'s mIoU improved; True = stop early."""
    vals = validate(state.model, val_sets, select, job.eval_batch_size, device, dtype)
    metrics_log.add({"step": state.step, **{k: v for k, v in vals.items() if "_iou/" not in k}})
    score = vals[f"val/{select}_miou"]
    if score > state.best_metric:
        state.best_metric, state.best_step, state.bad_evals = score, state.step, 0
        save_best(best_path, state.model, job, state.step, {"best_metric": score, **vals})
    else:
        state.bad_evals += 1
    return job.patience > 0 and state.bad_evals >= job.patience


def resume(state: LoopState, job: TrainJob, last_path: Path, log_it: bool = True) -> int:
    """Continue from `last_path` when this job wrote it; returns the step the run starts at."""
    if last_path.exists():
        if state.load(last_path, job):
            if log_it:
                log.info("%s: resuming from %s at step %d", job.name, last_path, state.step)
        elif log_it:
            log.info("%s: ignoring %s (another job)", job.name, last_path)
    return state.step


def progress_bar(job: TrainJob, start: int) -> Progress:
    bar = Progress(total=job.steps, desc=job.name, unit="step")
    if start:
        bar.update(start)
    return bar


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
    work_dir = Path(work_dir)
    rank, world = dist_info()
    is_main = rank == 0
    batches = Batches.for_job(job, train_data, device, mix_data, augment)
    state, net, strategy = prepare(model, job, device, world)
    dtype = amp_dtype(job, device)
    last_path, best_path = work_dir / "last.pt", work_dir / "best.pt"
    start = resume(state, job, last_path, log_it=is_main)
    metrics_log = MetricsLog(work_dir / "dvclive" if (live and is_main) else None, state.history)
    select = job.select if job.select in val_sets else next(iter(val_sets), None)
    ckpt_every = job.checkpoint_every or job.eval_every
    bar = progress_bar(job, start) if (progress and is_main) else None
    t_train, img_s, stop = 0.0, 0.0, False
    for step in range(start, job.steps):
        t0 = time.perf_counter()
        loss, lr = train_step(net, state, strategy, batches, step, dtype)
        dt = time.perf_counter() - t0
        t_train += dt
        img_s = job.batch_size / dt if img_s == 0 else 0.9 * img_s + 0.1 * job.batch_size / dt
        state.step = done = step + 1
        if is_main:
            metrics_log.add({"step": done, "train/loss": loss, "train/lr": lr, "train/images_per_s": img_s},
                            summary=False)
        if bar is not None:
            bar.set(loss=loss, lr=lr, img_s=img_s)
            bar.update(1)
        if done % job.eval_every == 0 or done == job.steps:
            if is_main and val_sets:
                stop = validate_and_select(state, job, val_sets, select, metrics_log, best_path, device, dtype)
            stop = _broadcast_flag(stop, world, device)
        paused = stop_at is not None and stop_at <= done < job.steps
        if is_main and (done % ckpt_every == 0 or done == job.steps or stop or paused):
            state.save(last_path, job)
        if world > 1 and (done % ckpt_every == 0):
            torch.distributed.barrier()
        if paused:
            break
        if stop:
            log.info("%s: early stop at step %d (best %.4f at %d)", job.name, done, state.best_metric,
                     state.best_step)
            break
    else:
        state.step = max(start, job.steps)
    if bar is not None:
        bar.close()
    return finish(state, job, work_dir, metrics_log, bool(val_sets), start, batches, t_train)


def finish(state: LoopState, job: TrainJob, work_dir: Path, metrics_log: MetricsLog, selected: bool, start: int,
           batches: Batches, t_train: float) -> TrainResult:
    """Last weights as the result when nothing selects, history.json, and the run's figures."""
    rank, world = dist_info()
    done, best_path = state.step, work_dir / "best.pt"
    if rank == 0 and not selected and (not best_path.exists() or start < job.steps):
        save_best(best_path, state.model, job, done, {})  # nothing to select on: the last weights are the result
        state.best_step = done
    if rank == 0:
        metrics_log.close()
        (work_dir / "history.json").write_text(json.dumps(metrics_log.history))
    if world > 1:
        torch.distributed.barrier()
    per_img = batches.n_real / job.batch_size
    return TrainResult(
        best_metric=state.best_metric if selected else float("nan"), best_step=state.best_step, steps_done=done,
        history=metrics_log.history if rank == 0 else [], best_path=best_path,
        images_seen=done * job.batch_size, real_images_seen=int(done * job.batch_size * per_img),
        synthetic_images_seen=done * batches.n_mix, train_seconds=t_train, resumed_from=start)

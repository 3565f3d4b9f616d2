"""The training stages: `pretrained_model`, `finetuned_model` and the `real_only_model` baseline.

Each trains in a stable work folder next to its out (`data/<stage>/.<item>.partial`, or
`data/.<stage>.partial`): resume checkpoints live there, so a killed `sim2real run` / `dvc repro`
continues where it stopped. When every run is done the folder is renamed onto the out in one step.

Outs:
- data/pretrained_model/<method>/: model.pt, curves.png, history.json, metrics.json, dvclive/
- data/finetuned_model/seed-<s>/ and data/real_only_model/seed-<s>/: the same per seed; the stage
  folder also holds curves.png (all seeds) and metrics.json (mean, spread, per seed).
- Units: what a person reads (metrics.json, curves.png, DVCLive's plots) has mIoU and IoU in points;
  history.json and done.json are the training loop's own records and keep its fractions (0..1).

Example:
    >>> from sim2real.runner import run_stage
    >>> run_stage("pretrained_model", item="reinhard", overrides=["pretrain.steps=20"])
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sim2real.config import Config
from sim2real.context import StageContext, StepResult, markdown_table
from sim2real.previews import pyplot
from sim2real.reporting import metrics_in_points
from sim2real.shards import replace_dir
from sim2real.train import checkpoint as ckpt
from sim2real.train.loop import ArrayData, TrainJob, TrainResult, dist_info, train, write_live
from sim2real.train.models import create_model

log = logging.getLogger("sim2real")


# ---------------------------------------------------------------- helpers
def stage_device(cfg: Config, ctx: StageContext) -> str:
    device = ctx.device(cfg.project.device)
    if device == "cuda" and dist_info()[1] > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return device


def load_set(folder: Path, what: str) -> ArrayData:
    if not (folder / "index.json").exists():
        raise FileNotFoundError(f"{folder}: {what} not found; run its stage first")
    return ArrayData.load(folder)


def data_signature(*datasets: ArrayData) -> str:
    """Content hash of the training inputs (a resume checkpoint from other data is never reused)."""
    h = hashlib.sha256()
    for d in datasets:
        h.update(np.ascontiguousarray(d.images).data)
        h.update(np.ascontiguousarray(d.masks).data)
    return h.hexdigest()[:16]


def _state_sha(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _work_dir(out: Path) -> Path:
    return out.with_name(f".{out.name}.partial")


class WorkFolderBusy(ValueError):
    """Another live process holds a stage's work folder (e.g. an orphan of a killed `dvc repro`)."""


_LOCKS: dict[Path, int] = {}  # lock file -> open fd (flock is held while the fd stays open)
_GUARD_STARTED = False
PR_SET_PDEATHSIG = 1
SHELLS = {"sh", "dash", "bash", "zsh", "fish", "ksh"}


def _proc_ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _proc_comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def die_with_parent() -> None:
    """Stop this process when the process that started it dies (a SIGKILLed `dvc repro`, a CI timeout).

    DVC starts each stage command through a shell and, killed itself, leaves the command running without
    its lock. Under DVC (env DVC_STAGE set; SIM2REAL_DIE_WITH_PARENT=1/0 forces it on/off) this asks
    the kernel for SIGTERM when the parent dies (prctl PR_SET_PDEATHSIG) and starts a watchdog thread
    that also notices a shell in between losing its own parent. Linux only; elsewhere the work-folder
    lock (`lock_work`) still keeps a second writer out.
    """
    global _GUARD_STARTED
    wanted = os.environ.get("SIM2REAL_DIE_WITH_PARENT")
    enabled = wanted == "1" or (wanted is None and "DVC_STAGE" in os.environ)
    if _GUARD_STARTED or not enabled or not sys.platform.startswith("linux"):
        return
    _GUARD_STARTED = True
    parent = os.getppid()
    if parent <= 1:
        return  # started by init or a container entrypoint: nothing to follow
    grand = _proc_ppid(parent) if _proc_comm(parent) in SHELLS else None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - no prctl: the watchdog alone
        pass

    def gone() -> bool:
        return os.getppid() != parent or (grand is not None and _proc_ppid(parent) != grand)

    def watch() -> None:
        while True:
            if gone():
                log.error("parent process %d is gone (killed?); stopping so that no orphan keeps writing "
                          "into the work folder", parent)
                logging.shutdown()
                os._exit(143)
            time.sleep(0.5)

    if gone():  # died before prctl took effect
        os._exit(143)
    threading.Thread(target=watch, name="sim2real-parent-watchdog", daemon=True).start()


def lock_work(work: Path) -> Path:
    """Hold an exclusive lock (fcntl.flock) on `<work>.lock` for the life of this process.

    The lock file sits next to the work folder, not in it, so the final rename of the work folder onto
    the out never carries it along. A second writer (another `sim2real run`, or a new `dvc repro` while
    an orphan of a killed one still trains) is refused at once with `WorkFolderBusy` naming the folder
    and the PID holding it. The kernel drops the lock when the holder dies, however it dies.
    """
    lock = work.with_name(work.name + ".lock")
    if lock in _LOCKS:
        return lock
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise WorkFolderBusy(f"{work}: work folder in use by another process (PID {holder}); wait for it "
                             f"to finish or stop it, then run again") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _LOCKS[lock] = fd
    return lock


def prepare_work(out: Path, fingerprint: str) -> Path:
    """The stable work folder, locked by this process; cleared when left by a run with other params or data."""
    work = _work_dir(out)
    stamp = work / "fingerprint.txt"
    rank, _ = dist_info()
    die_with_parent()
    if rank == 0:
        lock_work(work)
        if work.exists() and (not stamp.exists() or stamp.read_text() != fingerprint):
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
        stamp.write_text(fingerprint)
    _barrier()
    return work


def _barrier() -> None:
    if dist_info()[1] > 1:
        torch.distributed.barrier()


def stage_fingerprint(cfg: Config, sections: list[str], extra: dict[str, Any]) -> str:
    blob = json.dumps({"params": {s: cfg.to_dict()[s] for s in sections}, **extra}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def finish_run(run_dir: Path, result: TrainResult, budget: dict[str, Any], title: str) -> dict[str, Any]:
    """Turn a run folder into its final form: model.pt (selected weights + budget), metrics, curves."""
    state = ckpt.read_checkpoint(result.best_path)
    state.pop("format", None)
    state["budget"] = budget
    state["history"] = result.history
    ckpt.save_checkpoint(run_dir / "model.pt", state)
    metrics = {"best_step": result.best_step, "steps": result.steps_done,
               **{k.replace("val/", "").replace("/", "_"): v for k, v in state.get("metrics", {}).items()
                  if "_iou/" not in k}, **budget}
    # metrics.json is read by people (mIoU in points, like every report); done.json keeps the loop's fractions
    (run_dir / "metrics.json").write_text(json.dumps(metrics_in_points(metrics), indent=1, sort_keys=True,
                                                     default=float))
    plot_curves({"": result.history}, run_dir / "curves.png", title=title)
    for name in ("best.pt", "last.pt"):
        (run_dir / name).unlink(missing_ok=True)
    (run_dir / "done.json").write_text(json.dumps(metrics, default=float))
    return metrics


def plot_curves(histories: dict[str, list[dict[str, float]]], path: Path, title: str = "") -> Path:
    """Training loss and validation mIoU against step, one line per run (e.g. per seed)."""
    plt = pyplot()
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, hist in histories.items():
        steps = [r["step"] for r in hist if "train/loss" in r]
        loss = np.array([r["train/loss"] for r in hist if "train/loss" in r])
        if len(loss):
            k = max(1, len(loss) // 20)  # light smoothing: the raw curve is noisy at batch 8
            smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
            ax_loss.plot(steps[k - 1:], smooth, label=f"{label} loss".strip())
        val_keys = sorted({k for r in hist for k in r if k.startswith("val/") and k.endswith("_miou")})
        for key in val_keys:
            pts = [(r["step"], 100.0 * r[key]) for r in hist if key in r]  # points, as in metrics.json
            ax_val.plot(*zip(*pts, strict=True), marker="o", label=f"{label} {key[4:]}".strip())
    ax_loss.set(xlabel="step", ylabel="train loss (cross-entropy)", title=title)
    ax_val.set(xlabel="step", ylabel="val mIoU (points, selection)", ylim=(0, None))
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _rel(ctx: StageContext, path: Path) -> str:
    return str(path.relative_to(ctx.root))


def train_job(cfg: Config, section: str, **kw: Any) -> TrainJob:
    s = cfg.section(section)
    base = dict(steps=s.steps, batch_size=s.batch_size, lr=s.lr, weight_decay=s.weight_decay,
                eval_every=s.eval_every, checkpoint_every=s.checkpoint_every, warmup_frac=s.warmup_frac,
                patience=s.patience, amp=s.amp, class_balance=s.class_balance, seed=getattr(s, "seed", 0),
                params=cfg.to_dict())
    base.update(kw)
    return TrainJob(**base)


def init_info(cfg: Config, model: torch.nn.Module) -> dict[str, Any]:
    return {"kind": "init", "encoder_weights": cfg.model.encoder_weights, "init_seed": cfg.model.init_seed,
            "arch": cfg.model.arch, "encoder": cfg.model.encoder, "state_sha": _state_sha(model)}


# ---------------------------------------------------------------- pretrained_model
def pretrained_model(cfg: Config, ctx: StageContext) -> StepResult:
    """Pretrain on `data/styled_scenes/<method>/train` (online augmentation), select on `pretrain.select`'s val set.

    Args:
        cfg: reads `model`, `pretrain`, `augment`, `project`.
        ctx: `ctx.item` is the style method; writes `data/pretrained_model/<method>/`.
    """
    method = ctx.item or cfg.style.method
    styled = ctx.stage_dir("styled_scenes", method)
    train_set = load_set(styled / "train", f"styled synthetic train set ({method})")
    vals = {"synthetic": load_set(styled / "val", f"styled synthetic val set ({method})")}
    real_val = ctx.stage_dir("real_target") / "val"
    if (real_val / "index.json").exists():
        vals["real"] = ArrayData.load(real_val)  # model selection only; test stays untouched
    augment = None
    device = stage_device(cfg, ctx)
    if cfg.augment.online:
        from sim2real.augment import online_augmentation

        augment = online_augmentation(cfg.augment, device)
    if augment is not None and hasattr(augment, "to"):
        augment = augment.to(device)
    model = create_model(cfg.model)
    init = init_info(cfg, model)
    inputs = data_signature(train_set, *vals.values())
    select = cfg.pretrain.select if cfg.pretrain.select in vals else "synthetic"  # no real val: synthetic picks
    job = train_job(cfg, "pretrain", name=f"pretrain {method}", stage="pretrained_model", init=init,
                    select=select, inputs=inputs)
    out = ctx.stage_dir()
    work = prepare_work(out, stage_fingerprint(cfg, ["model", "pretrain", "augment"],
                                                 {"inputs": inputs, "method": method}))
    result = train(model, job, train_set, vals, work, device=device, augment=augment)
    if dist_info()[0] != 0:
        return StepResult()
    budget = {"pretrain_steps": result.steps_done, "images_seen": result.images_seen,
              "synthetic_images_seen": result.images_seen, "real_images_seen": 0,
              "train_s": round(result.train_seconds, 2),
              "images_per_s": round(result.images_seen / max(result.train_seconds, 1e-9), 2)}
    metrics = finish_run(work, result, budget, title=f"pretrained_model {method}")
    (work / "fingerprint.txt").unlink(missing_ok=True)
    replace_dir(work, out)
    rows = [{"set": k, "best mIoU": metrics.get(f"{k}_miou", float("nan"))} for k in vals]
    return StepResult(
        metrics={k: float(v) for k, v in metrics.items() if isinstance(v, int | float)},
        tables={f"pretrained_model {method} (selected at step {result.best_step} on {select} val)":
                markdown_table(rows)},
        plots={f"pretraining curves ({method})": _rel(ctx, out / "curves.png")},
        extra={"init": init, "select": select},
    )


# ---------------------------------------------------------------- finetuned_model / real_only_model
def _per_seed(cfg: Config, ctx: StageContext, make_model, job_for_seed, train_set: ArrayData,
              vals: dict[str, ArrayData], fingerprint: str, budget_for, mix: ArrayData | None = None,
              ) -> StepResult:
    """One run per `finetune.seeds` value into seed-<s>/, then the whole stage folder atomically."""
    out = ctx.stage_dir()
    work = prepare_work(out, fingerprint)
    device = stage_device(cfg, ctx)
    rows, histories, per_seed = [], {}, {}
    for seed in cfg.finetune.seeds:
        run_dir = work / f"seed-{seed}"
        if (run_dir / "done.json").exists():  # finished before a kill: keep it
            metrics = json.loads((run_dir / "done.json").read_text())
            histories[f"seed {seed}"] = json.loads((run_dir / "history.json").read_text())
        else:
            model, init = make_model(seed)
            job = job_for_seed(seed, init)
            result = train(model, job, train_set, vals, run_dir, device=device, mix_data=mix)
            if dist_info()[0] != 0:
                continue
            metrics = finish_run(run_dir, result, budget_for(result), title=f"{ctx.stage} seed {seed}")
            histories[f"seed {seed}"] = result.history
        per_seed[seed] = metrics
        rows.append({"seed": seed, "real val mIoU": metrics.get("real_miou", float("nan")),
                     "best step": metrics["best_step"], "steps": metrics["steps"],
                     "images seen": metrics["images_seen"]})
    if dist_info()[0] != 0:
        return StepResult()
    scores = np.array([m.get("real_miou", np.nan) for m in per_seed.values()], dtype=float)
    first = next(iter(per_seed.values()))
    summary: dict[str, float] = {
        "real_val_miou_mean": float(np.nanmean(scores)), "real_val_miou_std": float(np.nanstd(scores)),
        "real_val_miou_min": float(np.nanmin(scores)), "real_val_miou_max": float(np.nanmax(scores)),
        "seeds": len(scores),
        **{k: float(v) for k, v in first.items()
           if k.endswith(("steps", "images_seen")) and isinstance(v, int | float)},
        "train_s": float(sum(m.get("train_s", 0.0) for m in per_seed.values())),
    }
    for seed, m in per_seed.items():
        summary[f"real_val_miou_seed{seed}"] = float(m.get("real_miou", np.nan))
    (work / "metrics.json").write_text(json.dumps(metrics_in_points(summary), indent=1, sort_keys=True))
    plot_curves(histories, work / "curves.png", title=ctx.stage)
    # all seeds in one DVCLive folder: one fixed plots path for dvc.yaml whatever finetune.seeds is
    write_live(work / "dvclive", {k.replace(" ", "-"): v for k, v in histories.items()})
    (work / "fingerprint.txt").unlink(missing_ok=True)
    replace_dir(work, out)
    return StepResult(metrics=summary, tables={f"{ctx.stage} per seed": markdown_table(rows)},
                      plots={f"{ctx.stage} curves": _rel(ctx, out / "curves.png")})


def _real_sets(ctx: StageContext) -> tuple[ArrayData, dict[str, ArrayData]]:
    real = ctx.stage_dir("real_target")
    few = load_set(real / "few_shot", "real few-shot subset")
    val = load_set(real / "val", "real val split")
    return few, {"real": val}


def finetuned_model(cfg: Config, ctx: StageContext) -> StepResult:
    """Fine-tune `data/pretrained_model/<style.method>/model.pt` on the N real images, one run per seed.

    Args:
        cfg: reads `finetune` (strategy, steps, lr, seeds, synthetic_mix, ...), `style.method`.
        ctx: writes `data/finetuned_model/seed-<s>/` (best by real val mIoU).
    """
    ft = cfg.finetune
    source = ctx.stage_dir("pretrained_model", cfg.style.method) / "model.pt"
    if not source.exists():
        raise FileNotFoundError(f"{source}: pretrained checkpoint not found; run "
                                f"`sim2real run pretrained_model --item {cfg.style.method}` first")
    pre_state = ckpt.read_checkpoint(source)  # an unreadable upstream file fails first, by name
    few, vals = _real_sets(ctx)
    mix = None
    if ft.synthetic_mix > 0:
        mix = load_set(ctx.stage_dir("styled_scenes", cfg.style.method) / "train", "styled synthetic train set")
    pre_budget = pre_state.get("budget", {})
    pre_sha = hashlib.sha256(source.read_bytes()).hexdigest()[:16]

    def make_model(seed: int):
        model, info = ckpt.load_model(source)
        model.train()
        init = {"kind": "checkpoint", "checkpoint": _rel(ctx, source), "checkpoint_sha": pre_sha,
                "checkpoint_step": int(info["step"]), "pretrained_init": info["init"]}
        return model, init

    def job_for_seed(seed: int, init: dict) -> TrainJob:
        job = train_job(cfg, "finetune", name=f"finetune seed {seed}", stage="finetuned_model", seed=seed,
                   init=init, strategy=ft.strategy, encoder_lr_factor=ft.encoder_lr_factor,
                   unfreeze_groups=ft.unfreeze_groups, synthetic_mix=ft.synthetic_mix, hflip=True,
                   inputs=inputs)
        return job

    def budget_for(result: TrainResult) -> dict[str, Any]:
        pre_steps = int(pre_budget.get("pretrain_steps", 0))
        pre_images = int(pre_budget.get("images_seen", 0))
        return {"finetune_steps": result.steps_done, "pretrain_steps": pre_steps,
                "total_steps": pre_steps + result.steps_done,
                "images_seen": pre_images + result.images_seen,
                "real_images_seen": result.real_images_seen,
                "synthetic_images_seen": pre_images + result.synthetic_images_seen,
                "train_s": round(result.train_seconds, 2)}

    inputs = data_signature(few, *vals.values(), *([mix] if mix is not None else []))
    fingerprint = stage_fingerprint(cfg, ["model", "finetune"], {"inputs": inputs, "source": pre_sha})
    return _per_seed(cfg, ctx, make_model, job_for_seed, few, vals, fingerprint, budget_for, mix=mix)


def real_only_steps(cfg: Config) -> int:
    """The baseline's budget: at least pretraining + fine-tuning steps (a fair comparison)."""
    return cfg.finetune.real_only_steps or cfg.pretrain.steps + cfg.finetune.steps


def real_only_model(cfg: Config, ctx: StageContext) -> StepResult:
    """Baseline: the pretraining start weights trained on the N real images only, same budget, per seed.

    Args:
        cfg: reads `model` (the same init as pretraining), `pretrain.steps`/`lr` and `finetune`.
        ctx: writes `data/real_only_model/seed-<s>/`.
    """
    ft = cfg.finetune
    few, vals = _real_sets(ctx)
    steps = real_only_steps(cfg)

    def make_model(seed: int):
        # same arch, weight source and init seed as pretrained_model: bit-identical start weights
        model = create_model(cfg.model)
        return model, init_info(cfg, model)

    def job_for_seed(seed: int, init: dict) -> TrainJob:
        job = train_job(cfg, "finetune", name=f"real-only seed {seed}", stage="real_only_model", seed=seed,
                   init=init, steps=steps, lr=ft.real_only_lr or cfg.pretrain.lr, strategy="full", hflip=True,
                   inputs=inputs)
        return job

    def budget_for(result: TrainResult) -> dict[str, Any]:
        return {"total_steps": result.steps_done, "images_seen": result.images_seen,
                "real_images_seen": result.images_seen, "synthetic_images_seen": 0,
                "train_s": round(result.train_seconds, 2)}

    inputs = data_signature(few, *vals.values())
    fingerprint = stage_fingerprint(cfg, ["model", "finetune"], {"inputs": inputs, "steps": steps,
                                                                 "lr": ft.real_only_lr or cfg.pretrain.lr})
    return _per_seed(cfg, ctx, make_model, job_for_seed, few, vals, fingerprint, budget_for)

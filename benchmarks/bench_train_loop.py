"""Training-loop overhead: `sim2real.train.loop.train` vs a bare smp loop, same model, data and steps.

The bare loop is the minimum: slice a batch, to float, normalize, forward, cross-entropy, backward,
AdamW, one-cycle step. Ours adds per-step seeding, strategy bookkeeping, DVCLive logging, progress, the
resume checkpoint at the end. Both run alternately (`--repeats` rounds) so machine load hits both alike;
the best round of each is compared. Target: ours loses at most 5% images/s.

Usage:
    python benchmarks/bench_train_loop.py                       # 96x128, batch 8, 30 steps, 1 thread
    python benchmarks/bench_train_loop.py --height 128 --width 160 --steps 40 --threads 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sim2real.config.train import ModelConfig
from sim2real.taxonomy import VOID
from sim2real.train.loop import ArrayData, TrainJob, train
from sim2real.train.models import create_model, preprocess


def make_data(n: int, height: int, width: int, seed: int = 0) -> ArrayData:
    rng = np.random.default_rng(seed)
    masks = rng.integers(0, 12, (n, height // 8, width // 8)).repeat(8, 1).repeat(8, 2).astype(np.uint8)
    images = (masks[..., None] * 20 + rng.integers(0, 30, (n, height, width, 3))).astype(np.uint8)
    return ArrayData(images, masks)


def bare_loop(model_cfg: ModelConfig, data: ArrayData, steps: int, batch: int, lr: float) -> float:
    """Seconds for `steps` plain smp training steps (the reference)."""
    model = create_model(model_cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    n = len(data)
    t0 = time.perf_counter()
    for step in range(steps):
        idx = np.arange(step * batch, (step + 1) * batch) % n
        x = preprocess(data.images[idx], "cpu")
        y = torch.as_tensor(data.masks[idx]).long()
        loss = F.cross_entropy(model(x), y, ignore_index=VOID)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        float(loss.detach())
    return time.perf_counter() - t0


def our_loop(model_cfg: ModelConfig, data: ArrayData, steps: int, batch: int, lr: float) -> float:
    """Seconds for the same steps through `train` (DVCLive, progress and final checkpoint included)."""
    model = create_model(model_cfg)
    job = TrainJob(name="bench", steps=steps, batch_size=batch, lr=lr, stage="bench", eval_every=10 ** 9,
                   params={"model": model_cfg.model_dump(mode="json")})
    with tempfile.TemporaryDirectory() as work:
        t0 = time.perf_counter()
        train(model, job, data, {}, Path(work), device="cpu", live=True, progress=True)
        return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--height", type=int, default=96)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--arch", default="DeepLabV3Plus")
    p.add_argument("--encoder", default="tu-efficientnet_lite0")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = ModelConfig(arch=args.arch, encoder=args.encoder, encoder_weights=None)
    data = make_data(64, args.height, args.width)
    images = args.steps * args.batch
    bare_loop(cfg, data, 3, args.batch, 1e-3)  # warm-up: allocator, kernels, imports
    bare, ours = [], []
    for r in range(args.repeats):
        bare.append(bare_loop(cfg, data, args.steps, args.batch, 1e-3))
        ours.append(our_loop(cfg, data, args.steps, args.batch, 1e-3))
        print(f"round {r}: bare {images / bare[-1]:.2f} img/s, ours {images / ours[-1]:.2f} img/s", flush=True)
    best_bare, best_ours = images / min(bare), images / min(ours)
    loss_pct = 100 * (1 - best_ours / best_bare)
    result = {"model": f"{args.arch}/{args.encoder}", "size": f"{args.height}x{args.width}", "batch": args.batch,
              "steps": args.steps, "threads": args.threads, "bare_images_per_s": round(best_bare, 2),
              "ours_images_per_s": round(best_ours, 2), "overhead_pct": round(loss_pct, 1),
              "target_met": loss_pct <= 5.0}
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

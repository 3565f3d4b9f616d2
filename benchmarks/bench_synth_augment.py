"""Is data ever the bottleneck? Generator and augmentation speed vs the training throughput.

Measured in one run on the same machine and threads, at one resolution (default 360x480):
- generator scenes/s (`generate_scenes`, default knobs);
- augmentation images/s: the project's kornia pipeline on batches vs albumentations per image
  with the same operations and probabilities;
- training images/s of the default model (DeepLabV3+ / tu-efficientnet_lite0, encoder_weights=None,
  batch 8, forward + backward + AdamW step);
and prints each as a ratio to training (the target: generation + augmentation >= 10x training).

    SIM2REAL_THREADS=1 python benchmarks/bench_synth_augment.py --height 360 --width 480
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torch.nn.functional as F

from sim2real.augment import albumentations_pipeline, build_augmentation
from sim2real.config.augment import AugmentConfig
from sim2real.config.synthetic import SyntheticConfig
from sim2real.synth import generate_scenes
from sim2real.taxonomy import VOID


def _timed(fn, repeat: int) -> float:
    fn()  # warm-up (allocations, lazy init)
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--width", type=int, default=480)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("SIM2REAL_THREADS", "1")))
    ap.add_argument("--scenes", type=int, default=16, help="scenes per timed generator call")
    ap.add_argument("--aug-batch", type=int, default=16)
    ap.add_argument("--train-steps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None, help="also write the figures (images/s, ratios) to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    h, w, dev = args.height, args.width, args.device
    cfg = SyntheticConfig()
    print(f"# {h}x{w}, {args.threads} thread(s), device {dev}, torch {torch.__version__}")

    t = _timed(lambda: generate_scenes(cfg, args.scenes, seed=1, height=h, width=w, device=dev), 1)
    gen = args.scenes / t
    images, masks, _ = generate_scenes(cfg, args.aug_batch, seed=2, height=h, width=w, device=dev)

    aug = build_augmentation(AugmentConfig())
    x = torch.as_tensor(images, device=dev).permute(0, 3, 1, 2).float() / 255.0
    y = torch.as_tensor(masks, device=dev).long()
    t = _timed(lambda: aug(x, y, seed=0), 3)
    kornia_ips = len(images) / t
    alb = albumentations_pipeline(AugmentConfig(), h, w)

    def run_alb() -> None:
        for i in range(len(images)):
            alb(image=images[i], mask=masks[i])

    t = _timed(run_alb, 3)
    alb_ips = len(images) / t

    from sim2real.config.train import ModelConfig
    from sim2real.train.models import create_model, normalize

    model = create_model(ModelConfig(encoder_weights=None)).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    xb = normalize(x[:8].repeat(1 + 8 // len(x), 1, 1, 1)[:8]).contiguous()
    yb = y[:8].repeat(1 + 8 // len(y), 1, 1)[:8]

    def step() -> None:
        loss = F.cross_entropy(model(xb), yb, ignore_index=VOID)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t = _timed(step, args.train_steps)
    train_ips = 8 / t
    combined = 1.0 / (1.0 / gen + 1.0 / kornia_ips)
    rows = [("generator (scenes/s)", gen), (f"augmentation kornia, batch {len(images)} (img/s)", kornia_ips),
            ("augmentation albumentations, per image (img/s)", alb_ips),
            ("generate + kornia augment, serial (img/s)", combined),
            ("training DeepLabV3+/effnet-lite0, batch 8 (img/s)", train_ips)]
    print("| what | images/s | x training |\n|---|---|---|")
    for name, v in rows:
        print(f"| {name} | {v:.2f} | {v / train_ips:.1f}x |")
    print(f"kornia / albumentations: {kornia_ips / alb_ips:.2f}x")
    if args.json:  # read by benchmarks/bench_all.py (`make bench`)
        with open(args.json, "w") as f:
            json.dump({"size": f"{h}x{w}", "threads": args.threads, "device": dev, "generator_scenes_per_s": gen,
                       "kornia_images_per_s": kornia_ips, "albumentations_images_per_s": alb_ips,
                       "generate_augment_images_per_s": combined, "training_images_per_s": train_ips}, f, indent=1)


if __name__ == "__main__":
    main()

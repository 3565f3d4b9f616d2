"""How good is the generator? Train only on synthetic scenes, evaluate on real CamVid val.

The default model (DeepLabV3+ / tu-efficientnet_lite0, ImageNet encoder weights from the offline
package) trains on procedural scenes only (no real labels), at 128x160, AdamW one-cycle, batch 8,
with the project's kornia augmentation online; then per-class IoU and mIoU on CamVid val (void
ignored) are printed, and a grid of synthetic scenes next to real CamVid images is written.

    SIM2REAL_THREADS=1 python benchmarks/synth_only_camvid.py --steps 800 --scenes 2000
    python benchmarks/synth_only_camvid.py --set num_cars=[0,12] --set haze=[0,0.2]   # try knobs

REFERENCE.md: a crude ~200-line numpy generator got 26.2-28.3 mIoU here (800 steps, ImageNet init).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sim2real.augment import build_augmentation
from sim2real.config import apply_overrides
from sim2real.config.augment import AugmentConfig
from sim2real.config.synthetic import SyntheticConfig
from sim2real.previews import save_grid
from sim2real.synth import generate_scenes
from sim2real.taxonomy import CLASSES, NUM_CLASSES, VOID

CAMVID = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"


def load_camvid(split: str, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    from sim2real.real.importers import load_split

    ds = load_split(CAMVID, "camvid", split, h, w)
    return ds.images, ds.masks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--scenes", type=int, default=2000, help="synthetic training scenes")
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("SIM2REAL_THREADS", "1")))
    ap.add_argument("--weights", default="imagenet-offline", help="imagenet-offline | none")
    ap.add_argument("--no-augment", action="store_true", help="horizontal flip only")
    ap.add_argument("--set", action="append", default=[], help="synthetic knob override KEY=VALUE")
    ap.add_argument("--out", default="data/benchmarks/synth_only_camvid")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    syn_cfg = SyntheticConfig.model_validate(apply_overrides({}, args.set, source="--set"))
    t0 = time.perf_counter()
    images, masks, _ = generate_scenes(syn_cfg, args.scenes, seed=args.seed, height=args.height, width=args.width)
    t_gen = time.perf_counter() - t0
    print(f"generated {args.scenes} scenes at {args.height}x{args.width} in {t_gen:.1f}s "
          f"({args.scenes / t_gen:.1f}/s)", flush=True)
    val_img, val_mask = load_camvid("val", args.height, args.width)
    real_img, _ = load_camvid("train", args.height, args.width)
    pick = np.linspace(0, len(real_img) - 1, 6).astype(int)
    save_grid(out / "synthetic_vs_camvid.png", [images[:6], real_img[pick]], masks[:6],
              titles=["synthetic", "CamVid (real)"])

    from sim2real.config.train import ModelConfig
    from sim2real.train.metrics import evaluate, per_class_iou
    from sim2real.train.models import create_model, normalize

    weights = None if args.weights == "none" else args.weights
    model = create_model(ModelConfig(encoder_weights=weights))
    init = model.info.get("encoder_weights")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps)
    aug_cfg = AugmentConfig() if not args.no_augment else AugmentConfig(
        affine_p=0, perspective_p=0, crop_p=0, color_jitter_p=0, gamma_p=0, blur_p=0, noise_p=0, motion_blur_p=0)
    aug = build_augmentation(aug_cfg)
    rng = np.random.default_rng(args.seed)
    model.train()
    t0 = time.perf_counter()
    for step in range(args.steps):
        idx = rng.integers(0, len(images), args.batch)
        x = torch.as_tensor(images[idx]).permute(0, 3, 1, 2).float() / 255.0
        y = torch.as_tensor(masks[idx]).long()
        x, y = aug(x, y, seed=args.seed * 1_000_003 + step)
        logits = model(normalize(x).contiguous())
        loss = F.cross_entropy(logits, y, ignore_index=VOID)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step:4d} loss {loss.item():.3f} ({time.perf_counter() - t0:.0f}s)", flush=True)
    t_train = time.perf_counter() - t0
    model.eval()
    cm = evaluate(model, val_img, val_mask, "cpu", batch_size=16)
    iou = per_class_iou(cm)
    miou = float(np.nanmean(iou))
    print(f"\nsource-only (synthetic only, init={init}), {args.steps} steps, {args.scenes} scenes, "
          f"{args.height}x{args.width}, train {t_train:.0f}s")
    print("| class | IoU |\n|---|---|")
    for name, v in zip(CLASSES, iou, strict=True):
        print(f"| {name} | {100 * v:.1f} |")
    print(f"| **mIoU** | **{100 * miou:.1f}** |")
    result = {"miou": 100 * miou, "iou": {c: 100 * float(v) for c, v in zip(CLASSES, iou, strict=True)},
              "steps": args.steps, "scenes": args.scenes, "init": init, "overrides": args.set,
              "augment": not args.no_augment, "train_s": t_train, "gen_s": t_gen,
              "size": [args.height, args.width], "num_classes": NUM_CLASSES}
    (out / "result.json").write_text(json.dumps(result, indent=1))
    # predictions on a few val images next to the truth
    with torch.no_grad():
        from sim2real.train.models import preprocess

        pred = model(preprocess(val_img[:6])).argmax(1).numpy().astype(np.uint8)
    from sim2real.taxonomy import colorize

    save_grid(out / "val_predictions.png", [val_img[:6], np.stack([colorize(p) for p in pred])], val_mask[:6],
              titles=["CamVid val", "prediction"])
    print(f"wrote {out / 'synthetic_vs_camvid.png'}, {out / 'val_predictions.png'}, {out / 'result.json'}")


if __name__ == "__main__":
    main()

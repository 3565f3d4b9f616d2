"""Few-shot CamVid: what synthetic pretraining buys over a fair real-only baseline, per N and seed.

Arms (each on the same model, the same initial weights):
- `source_only`: synthetic pretraining only, no real labels (once per init).
- `synthetic+finetune`: synthetic pretraining (`--pretrain-steps`), then `--finetune-steps` on N real.
- `real_only`: the same start weights, only the N real images, `--real-only-steps` (default: pretrain +
  finetune steps, so the baseline gets at least as much compute; REFERENCE.md "Fair comparisons").
For each run the CamVid val mIoU is recorded twice: `val_best` (best validation, i.e. selected on val, as
the pipeline does) and `val_last` (the last step, no selection) — CamVid here has no third split.

The few-shot subset of seed s is `select_few_shot(train masks, N, seed=s)` (class-balanced), so the spread
covers both the subset and the training order. Results are appended to `<out>/results.jsonl`, one line per
finished run; a rerun skips what is there, and a killed run resumes from its last checkpoint.

Usage (small, 1 thread):
    python benchmarks/fewshot_camvid.py --ns 10 --seeds 0 --height 96 --width 128 \\
        --synthetic 256 --pretrain-steps 100 --finetune-steps 60 --out data/bench/fewshot-small
The big run the issue asks for:
    python benchmarks/fewshot_camvid.py --ns 5,10,25,50,all --seeds 0,1,2 --height 128 --width 160 \\
        --synthetic 2000 --pretrain-steps 800 --finetune-steps 160 --inits imagenet-offline,null
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sim2real.config.train import ModelConfig
from sim2real.train.checkpoint import read_checkpoint
from sim2real.train.loop import ArrayData, TrainJob, train
from sim2real.train.metrics import evaluate, miou
from sim2real.train.models import create_model

CAMVID = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"
log = logging.getLogger("sim2real")


def load_camvid(root: Path, height: int, width: int, cache: Path) -> tuple[ArrayData, ArrayData]:
    """CamVid train (the few-shot pool) and val at the working size (cached as .npz)."""
    if cache.exists():
        z = np.load(cache)
        return ArrayData(z["ti"], z["tm"]), ArrayData(z["vi"], z["vm"])
    from sim2real.real.importers import load_split

    tr = load_split(root, "camvid", "train", height, width)
    va = load_split(root, "camvid", "val", height, width)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, ti=tr.images, tm=tr.masks, vi=va.images, vm=va.masks)
    return ArrayData(tr.images, tr.masks), ArrayData(va.images, va.masks)


def synthetic_set(n: int, height: int, width: int, seed: int, style: str, references: np.ndarray,
                  cache: Path) -> ArrayData:
    """n procedural scenes (sim2real.synth), optionally styled toward the CamVid train images."""
    if cache.exists():
        z = np.load(cache)
        return ArrayData(z["i"], z["m"])
    from sim2real.config.synthetic import SyntheticConfig
    from sim2real.synth.generate import generate_scenes

    images, masks = [], []
    for start in range(0, n, 64):
        im, m, _ = generate_scenes(SyntheticConfig(), min(64, n - start), seed, height, width, start=start)
        images.append(im)
        masks.append(m)
    images, masks = np.concatenate(images), np.concatenate(masks)
    if style != "none":
        from sim2real.style import get_method

        method = get_method(style)
        method.fit(references)
        images = method.apply(images)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, i=images, m=masks)
    return ArrayData(images, masks)


def val_miou(model: torch.nn.Module, val: ArrayData) -> float:
    model.eval()
    return miou(evaluate(model, val.images, val.masks, "cpu", batch_size=16))


def run_job(model: torch.nn.Module, job: TrainJob, data: ArrayData, val: ArrayData | None, work: Path,
            augment=None) -> dict[str, Any]:
    """Train (resumable in `work`), then the val mIoU of the selected and of the last weights."""
    vals = {"real": val} if val is not None else {}
    t0 = time.perf_counter()
    result = train(model, job, data, vals, work, augment=augment, live=False)
    wall = time.perf_counter() - t0
    last = val_miou(model, val) if val is not None else float("nan")
    best = result.best_metric if val is not None else float("nan")
    return {"val_best": best, "val_last": last, "best_step": result.best_step, "steps": result.steps_done,
            "images_seen": result.images_seen, "train_s": round(result.train_seconds, 1), "wall_s": round(wall, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--camvid", type=Path, default=CAMVID)
    p.add_argument("--ns", default="10", help="comma list of N (few-shot sizes); 'all' = the whole train split")
    p.add_argument("--seeds", default="0", help="comma list of seeds")
    p.add_argument("--inits", default="imagenet-offline", help="comma list: imagenet-offline, null")
    p.add_argument("--arms", default="source_only,synthetic+finetune,real_only")
    p.add_argument("--height", type=int, default=96)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--arch", default="DeepLabV3Plus")
    p.add_argument("--encoder", default="tu-efficientnet_lite0")
    p.add_argument("--synthetic", type=int, default=512, help="synthetic scenes for pretraining")
    p.add_argument("--style", default="none", help="style method fitted on CamVid train images (none, reinhard, ...)")
    p.add_argument("--augment", action="store_true", help="online augmentation (sim2real.augment) in pretraining")
    p.add_argument("--pretrain-steps", type=int, default=800)
    p.add_argument("--finetune-steps", type=int, default=160)
    p.add_argument("--real-only-steps", type=int, default=None, help="default: pretrain + finetune steps")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3, help="pretraining and real-only peak lr")
    p.add_argument("--finetune-lr", type=float, default=5e-4)
    p.add_argument("--eval-every", type=int, default=40)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("data/bench/fewshot_camvid"))
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)
    if not (args.camvid / "train").is_dir():
        raise SystemExit(f"CamVid not found at {args.camvid} (pass --camvid)")
    from sim2real.real.fewshot import select_few_shot

    res = f"{args.height}x{args.width}"
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    done = set()
    if results_path.exists():
        done = {json.loads(line)["key"] for line in results_path.read_text().splitlines() if line.strip()}
    pool, val = load_camvid(args.camvid, args.height, args.width, out / f"camvid-{res}.npz")
    real_only_steps = args.real_only_steps or args.pretrain_steps + args.finetune_steps
    augment = None
    if args.augment:
        from sim2real.augment import build_augmentation
        from sim2real.config.augment import AugmentConfig

        augment = build_augmentation(AugmentConfig())

    def record(row: dict[str, Any]) -> None:
        with open(results_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        done.add(row["key"])
        for ckpt_file in (out / "runs" / _safe(row["key"])).glob("*.pt"):
            ckpt_file.unlink()  # the row is the result; checkpoints were only for resuming (60 MB each)
        log.info("%s: val_best %.3f val_last %.3f (%s steps, %.0f s)", row["key"], row["val_best"],
                 row["val_last"], row["steps"], row["wall_s"])

    arms = args.arms.split(",")
    for init in args.inits.split(","):
        weights = None if init in ("null", "none", "random") else init
        mcfg = ModelConfig(arch=args.arch, encoder=args.encoder, encoder_weights=weights)
        pre_key = (f"pretrain|{init}|{args.arch}/{args.encoder}|{res}|syn{args.synthetic}|{args.style}|"
                   f"aug{int(args.augment)}|steps{args.pretrain_steps}|lr{args.lr}")
        pre_dir = out / "runs" / pre_key.replace("|", "_").replace("/", "-")
        if any(a in arms for a in ("source_only", "synthetic+finetune")) and not (pre_dir / "done").exists():
            syn = synthetic_set(args.synthetic, args.height, args.width, 0, args.style, pool.images,
                                out / f"synthetic-{res}-{args.synthetic}-{args.style}.npz")
            job = TrainJob(name=f"pretrain {init}", steps=args.pretrain_steps, batch_size=args.batch, lr=args.lr,
                           stage="bench_pretrain", eval_every=args.pretrain_steps, seed=0,
                           params={"model": mcfg.model_dump(mode="json")})
            run_job(create_model(mcfg), job, syn, None, pre_dir, augment=augment)
            (pre_dir / "last.pt").unlink()  # best.pt (= the last weights) is what the arms start from
            (pre_dir / "done").write_text(pre_key)
        src_key = f"source_only|{pre_key}"
        if "source_only" in arms and src_key not in done:
            model = create_model(mcfg.model_copy(update={"encoder_weights": None}))
            model.load_state_dict(read_checkpoint(pre_dir / "best.pt")["model"])
            score = val_miou(model, val)
            record({"key": src_key, "arm": "source_only", "init": init, "n": 0, "seed": 0, "res": res,
                    "val_best": score, "val_last": score, "steps": args.pretrain_steps, "pretrain_steps":
                    args.pretrain_steps, "wall_s": 0.0, "images_seen": args.pretrain_steps * args.batch})
        for n_text in args.ns.split(","):
            n = len(pool) if n_text == "all" else int(n_text)
            for seed in (int(s) for s in args.seeds.split(",")):
                idx = sorted(select_few_shot(pool.masks, n, seed))
                few = ArrayData(pool.images[idx], pool.masks[idx])
                common = {"init": init, "n": len(idx), "seed": seed, "res": res, "arch": args.arch,
                          "encoder": args.encoder}
                key = f"synthetic+finetune|{init}|n{len(idx)}|s{seed}|{res}|ft{args.finetune_steps}|{pre_key}"
                if "synthetic+finetune" in arms and key not in done:
                    model = create_model(mcfg.model_copy(update={"encoder_weights": None}))
                    model.load_state_dict(read_checkpoint(pre_dir / "best.pt")["model"])
                    job = TrainJob(name=f"finetune n{len(idx)} s{seed}", steps=args.finetune_steps,
                                   batch_size=args.batch, lr=args.finetune_lr, stage="bench_finetune", seed=seed,
                                   eval_every=args.eval_every, hflip=True,
                                   params={"model": mcfg.model_dump(mode="json")})
                    row = run_job(model, job, few, val, out / "runs" / _safe(key))
                    record({"key": key, "arm": "synthetic+finetune", **common, **row,
                            "pretrain_steps": args.pretrain_steps, "total_steps": args.pretrain_steps + row["steps"]})
                key = f"real_only|{init}|n{len(idx)}|s{seed}|{res}|steps{real_only_steps}|lr{args.lr}"
                if "real_only" in arms and key not in done:
                    job = TrainJob(name=f"real-only n{len(idx)} s{seed}", steps=real_only_steps,
                                   batch_size=args.batch, lr=args.lr, stage="bench_real_only", seed=seed,
                                   eval_every=args.eval_every, hflip=True,
                                   params={"model": mcfg.model_dump(mode="json")})
                    row = run_job(create_model(mcfg), job, few, val, out / "runs" / _safe(key))
                    record({"key": key, "arm": "real_only", **common, **row, "total_steps": row["steps"]})
    print(summary(results_path))


def _safe(key: str) -> str:
    return key.replace("|", "_").replace("/", "-")


def summary(results_path: Path) -> str:
    """Markdown table: mean +- std of val mIoU per (arm, init, N) over seeds."""
    rows = [json.loads(line) for line in results_path.read_text().splitlines() if line.strip()]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["arm"], r["init"], r["n"], r.get("res"), r.get("total_steps", r["steps"])),
                          []).append(r)
    lines = ["| arm | init | N | res | steps | seeds | val mIoU best (selected) | val mIoU last |",
             "|---|---|---|---|---|---|---|---|"]
    for (arm, init, n, res, steps), rs in sorted(groups.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1])):
        best = np.array([r["val_best"] for r in rs]) * 100
        last = np.array([r["val_last"] for r in rs]) * 100
        lines.append(f"| {arm} | {init} | {n} | {res} | {steps} | {len(rs)} | {best.mean():.1f} +- {best.std():.1f} "
                     f"| {last.mean():.1f} +- {last.std():.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

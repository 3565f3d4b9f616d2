"""Stage `synthetic_scenes`: render the train and val sets, report class statistics and a sample grid."""

from __future__ import annotations

import time

import numpy as np

from sim2real.config import Config
from sim2real.context import StageContext, StepResult, markdown_table
from sim2real.previews import save_grid
from sim2real.progress import Progress
from sim2real.shards import ShardWriter
from sim2real.synth.generate import generate_scenes
from sim2real.taxonomy import CAMVID_TRAIN_FREQ, CLASSES, NUM_CLASSES, VOID, class_histogram

# val scenes come from a disjoint seed stream: dataset seed + this offset
VAL_SEED_OFFSET = 1_000_003


def split_seed(seed: int, split: str) -> int:
    """Dataset seed of a split ("train" uses `seed`, "val" a disjoint stream)."""
    if split == "train":
        return seed
    if split == "val":
        return seed + VAL_SEED_OFFSET
    raise ValueError(f"unknown split {split!r}; choose train or val")


def synthetic_scenes(cfg: Config, ctx: StageContext) -> StepResult:
    """Render `synthetic.num_train` + `synthetic.num_val` scenes into data/synthetic_scenes/{train,val}."""
    sc = cfg.synthetic
    h, w = cfg.project.image_height, cfg.project.image_width
    device = ctx.device(cfg.project.device)
    out = ctx.stage_dir()
    hist = {"train": np.zeros(VOID + 1, np.int64), "val": np.zeros(VOID + 1, np.int64)}
    present = np.zeros(NUM_CLASSES, np.int64)
    first: tuple[np.ndarray, np.ndarray] | None = None
    t0 = time.perf_counter()
    total = sc.num_train + sc.num_val
    prog = Progress(total=total, desc="rendering scenes", unit="scene")
    for split, n in (("train", sc.num_train), ("val", sc.num_val)):
        seed = split_seed(sc.seed, split)
        with ShardWriter(out / split, shard_size=sc.shard_size,
                         extra={"split": split, "dataset_seed": seed, "domain": "synthetic"}) as writer:
            for start in range(0, n, sc.batch_size):
                k = min(sc.batch_size, n - start)
                images, masks, records = generate_scenes(sc, k, seed, h, w, start=start, device=device)
                writer.add(images, masks, records)
                hist[split] += class_histogram(masks)
                if split == "train":
                    for m in masks:
                        present += np.bincount(m.ravel(), minlength=VOID + 1)[:NUM_CLASSES] > 0
                if first is None:
                    first = (images[:8], masks[:8])
                prog.update(k)
    prog.close()
    dt = time.perf_counter() - t0
    tr = hist["train"] / max(hist["train"].sum(), 1) * 100.0
    rows, metrics = [], {"scenes": float(total), "scenes_per_s": round(total / max(dt, 1e-9), 2)}
    for i, name in enumerate(CLASSES):
        cov = 100.0 * present[i] / max(sc.num_train, 1)
        rows.append({"class": name, "synthetic %": float(tr[i]), "CamVid train %": CAMVID_TRAIN_FREQ[name],
                     "scenes with class %": cov})
        metrics[f"freq_{name}"] = round(float(tr[i]), 3)
        metrics[f"coverage_{name}"] = round(float(cov), 2)
    rows.append({"class": "void", "synthetic %": float(tr[VOID]), "CamVid train %": 3.95})
    # total variation distance between the synthetic and CamVid class distributions (void excluded)
    real = np.array([CAMVID_TRAIN_FREQ[c] for c in CLASSES])
    syn = tr[:NUM_CLASSES]
    metrics["class_freq_tv_distance"] = round(float(0.5 * np.abs(syn / syn.sum() - real / real.sum()).sum()), 4)
    plots = {}
    if first is not None:
        path = save_grid(out / "samples.png", [first[0]], first[1], titles=["synthetic"])
        plots["synthetic samples"] = str(path.relative_to(ctx.root))
    return StepResult(
        metrics=metrics,
        tables={"class pixel frequency: synthetic train vs CamVid train": markdown_table(rows, floatfmt=".2f")},
        plots=plots,
        text=f"{sc.num_train} train + {sc.num_val} val scenes at {h}x{w} on {device}",
    )

"""Stage `synthetic_scenes`: render the train and val sets (or import a real source dataset), report class
statistics and a sample grid."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from sim2real.config import Config
from sim2real.context import StageContext, StepResult, markdown_table, write_json
from sim2real.previews import save_grid
from sim2real.progress import Progress
from sim2real.shards import ShardWriter
from sim2real.synth.imported import import_source
from sim2real.synth.imported import records as imported_records
from sim2real.synth.parallel import SceneBatches
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
    """Render `synthetic.num_train` + `synthetic.num_val` scenes into data/synthetic_scenes/{train,val}.

    With `synthetic.source` camvid | cityscapes | folder, import that dataset's train and val splits
    there instead (`sim2real.synth.imported`): a real -> real pair runs through the same chain.
    """
    if cfg.synthetic.source != "procedural":
        return imported_scenes(cfg, ctx)
    sc = cfg.synthetic
    h, w = cfg.project.image_height, cfg.project.image_width
    device = ctx.device(cfg.project.device)
    out = ctx.stage_dir()
    (out / "source.json").unlink(missing_ok=True)  # left by an earlier imported source
    stats = ClassStats()
    first: tuple[np.ndarray, np.ndarray] | None = None
    t0 = time.perf_counter()
    total = sc.num_train + sc.num_val
    prog = Progress(total=total, desc="rendering scenes", unit="scene")
    # the cores this stage may use, as render processes (a GPU device renders here)
    with SceneBatches(sc, h, w, device, workers=torch.get_num_threads()) as renderer:
        for split, n in (("train", sc.num_train), ("val", sc.num_val)):
            seed = split_seed(sc.seed, split)
            with ShardWriter(out / split, shard_size=sc.shard_size,
                             extra={"split": split, "dataset_seed": seed, "domain": "synthetic"}) as writer:
                for images, masks, records in renderer.batches(n, seed, sc.batch_size):
                    writer.add(images, masks, records)
                    stats.add(split, masks)
                    if first is None:
                        first = (images[:8], masks[:8])
                    prog.update(len(images))
    prog.close()
    dt = time.perf_counter() - t0
    metrics, table = stats.summary("synthetic")
    metrics = {"scenes": float(total), "scenes_per_s": round(total / max(dt, 1e-9), 2), **metrics}
    return StepResult(
        metrics=metrics, tables={"class pixel frequency: synthetic train vs CamVid train": table},
        plots=_samples(ctx, out, first, "synthetic"),
        text=f"{sc.num_train} train + {sc.num_val} val scenes at {h}x{w} on {device}"
             + (f" ({renderer.workers} worker processes)" if renderer.workers > 1 and total > sc.batch_size else ""),
    )


def imported_scenes(cfg: Config, ctx: StageContext) -> StepResult:
    """A real labelled dataset as the source: its train and val splits, in the procedural scenes' place."""
    sc = cfg.synthetic
    h, w = cfg.project.image_height, cfg.project.image_width
    src = import_source(cfg, ctx)
    out = ctx.stage_dir()
    stats = ClassStats()
    for split, s in src.splits.items():
        with ShardWriter(out / split, shard_size=sc.shard_size,
                         extra={"split": split, "domain": "imported", "source": sc.source,
                                "root": src.info["root"], "fit": sc.fit}) as writer:
            writer.add(s.images, s.masks, imported_records(s, split))
        stats.add(split, s.masks)
    write_json(out / "source.json", src.info)
    train = src.splits["train"]
    metrics, table = stats.summary("source")
    metrics = {"scenes": float(sum(src.info["counts"].values())), **metrics,
               "skipped_files": float(len(src.info["skipped"]))}
    tables = {f"class pixel frequency: source ({sc.source}) train vs CamVid train": table}
    if src.info["skipped"]:
        tables["skipped files"] = markdown_table(src.info["skipped"])
    counts = src.info["counts"]
    return StepResult(
        metrics=metrics, tables=tables,
        plots=_samples(ctx, out, (train.images[:8], train.masks[:8]), f"source: {sc.source}"),
        text=(f"Source imported from {sc.source} ({src.info['root']}) in place of procedural scenes: "
              f"{counts['train']} train + {counts['val']} val images at {h}x{w}, frames fitted by "
              f"synthetic.fit={sc.fit}" + _capped(src.info)
              + (f"; skipped {len(src.info['skipped'])} invalid file(s)" if src.info["skipped"] else "")),
        extra={"source": src.info},
    )


def _capped(info: dict) -> str:
    """Which splits synthetic.num_train / num_val cut short, in words ("" when none)."""
    cut = [f"{info['used'][s]} of {info['available'][s]} {s} files" for s in info["used"]
           if info["available"][s] > info["cap"][s]]
    return f"; {', '.join(cut)} (synthetic.num_train / num_val: the first in name order)" if cut else ""


def _samples(ctx: StageContext, out: Path, first: tuple[np.ndarray, np.ndarray] | None,
             title: str) -> dict[str, str]:
    if first is None or not len(first[0]):
        return {}
    path = save_grid(out / "samples.png", [first[0]], first[1], titles=[title])
    return {f"{title} samples": str(path.relative_to(ctx.root))}


class ClassStats:
    """Class pixel histograms per split and per-class image coverage of train."""

    def __init__(self) -> None:
        self.hist = {"train": np.zeros(VOID + 1, np.int64), "val": np.zeros(VOID + 1, np.int64)}
        self.present = np.zeros(NUM_CLASSES, np.int64)
        self.train_images = 0

    def add(self, split: str, masks: np.ndarray) -> None:
        self.hist[split] += class_histogram(masks)
        if split == "train":
            self.train_images += len(masks)
            for m in masks:
                self.present += np.bincount(m.ravel(), minlength=VOID + 1)[:NUM_CLASSES] > 0

    def summary(self, label: str) -> tuple[dict[str, float], str]:
        """Per-class frequency and coverage metrics and the table against CamVid train."""
        tr = self.hist["train"] / max(self.hist["train"].sum(), 1) * 100.0
        rows, metrics = [], {}
        for i, name in enumerate(CLASSES):
            cov = 100.0 * self.present[i] / max(self.train_images, 1)
            rows.append({"class": name, f"{label} %": float(tr[i]), "CamVid train %": CAMVID_TRAIN_FREQ[name],
                         "scenes with class %": cov})
            metrics[f"freq_{name}"] = round(float(tr[i]), 3)
            metrics[f"coverage_{name}"] = round(float(cov), 2)
        rows.append({"class": "void", f"{label} %": float(tr[VOID]), "CamVid train %": 3.95})
        # total variation distance between the source and CamVid class distributions (void excluded)
        real = np.array([CAMVID_TRAIN_FREQ[c] for c in CLASSES])
        syn = tr[:NUM_CLASSES]
        metrics["class_freq_tv_distance"] = round(float(0.5 * np.abs(syn / max(syn.sum(), 1e-9)
                                                                     - real / real.sum()).sum()), 4)
        return metrics, markdown_table(rows, floatfmt=".2f")

"""Stage `styled_scenes` (one instance per method in `style.ablation`): synthetic scenes styled
toward the real target.

Fits the method once on the real reference images (`style.references`: the few-shot images or
all real train images, labels unused), then styles data/augmented_scenes/train ->
data/styled_scenes/<method>/train and data/synthetic_scenes/val -> .../val, batch by batch;
masks and records are copied unchanged. The effect is measured: colour-statistics distances
between the synthetic images and the real val images (never used for fitting), before and after.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from sim2real.config import Config
from sim2real.context import StageContext, StepResult, markdown_table
from sim2real.previews import pyplot
from sim2real.progress import Progress
from sim2real.shards import ShardDataset, ShardWriter, staged_dir
from sim2real.style.distance import (
    DISTANCES,
    MAX_IMAGES,
    channel_histograms,
    colour_stats,
    stats_distance,
    subsample,
)
from sim2real.style.methods import StyleMethod, method_from_config

INPUTS = {"train": ("augmented_scenes", "train"), "val": ("synthetic_scenes", "val")}


def reference_images(cfg: Config, ctx: StageContext) -> np.ndarray:
    """The real images the style is fitted on (uint8 (N, H, W, 3))."""
    split = "few_shot" if cfg.style.references == "few_shot" else "train"
    images, _ = ShardDataset(ctx.stage_dir("real_target") / split).arrays()
    return images


def _style_split(method: StyleMethod, src: Path, dst: Path, batch_size: int, what: str
                 ) -> tuple[np.ndarray, np.ndarray, int]:
    """Style one shard folder; returns strided samples (before, after) for the distances, and the count."""
    ds = ShardDataset(src)
    n = len(ds)
    keep = set(np.linspace(0, n - 1, min(n, MAX_IMAGES)).round().astype(int).tolist()) if n else set()
    shard = int(ds.index["shards"][0]["count"]) if ds.index["shards"] else 256
    records = ds.records()
    before, after = [], []
    with ShardWriter(dst, shard_size=max(1, shard), extra={"style": method.name, "source": str(src.name)}) as w:
        bar = Progress(total=n, desc=f"style {method.name} {what}", unit="img")
        for start, (images, masks) in zip(range(0, n, batch_size), ds.iter_batches(batch_size), strict=True):
            styled = method.apply(images)
            recs = [{**r, "style": method.name} for r in records[start:start + len(images)]]
            w.add(styled, masks, recs)
            sel = [i for i in range(len(images)) if start + i in keep]
            before.append(images[sel])
            after.append(styled[sel])
            bar.update(len(images))
        bar.close()
    return np.concatenate(before), np.concatenate(after), n


def _plot(path: Path, real: np.ndarray, before: np.ndarray, after: np.ndarray, method: str) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(10, 2.8), sharey=True)
    x = np.arange(64) * 4 + 2
    hists = {"real val": channel_histograms(real, 64), "synthetic": channel_histograms(before, 64),
             f"styled ({method})": channel_histograms(after, 64)}
    styles = {"real val": "k-", "synthetic": "C0--", f"styled ({method})": "C3-"}
    for c, (ax, name) in enumerate(zip(axes, "RGB", strict=True)):
        for label, h in hists.items():
            ax.plot(x, h[c], styles[label], label=label, lw=1.2)
        ax.set_title(f"{name} channel")
        ax.set_xlabel("value")
    axes[0].set_ylabel("share of pixels")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def styled_scenes(cfg: Config, ctx: StageContext) -> StepResult:
    """Fit the style method (`ctx.item`) on real references and style the synthetic train/val sets.

    Args:
        cfg: `style.*` (references, fda_beta, pda_transform, batch_size).
        ctx: stage context; `ctx.item` is the method name; writes only data/styled_scenes/<method>.
    """
    name = ctx.item or cfg.style.method
    method = method_from_config(name, cfg.style)
    refs = reference_images(cfg, ctx)
    real_val, _ = ShardDataset(ctx.stage_dir("real_target") / "val").arrays()
    real_val = subsample(real_val)
    t0 = time.perf_counter()
    method.fit(refs)
    fit_s = time.perf_counter() - t0

    out = ctx.stage_dir()
    metrics: dict[str, float] = {"references": float(len(refs)), "fit_s": round(fit_s, 3)}
    rows = []
    with staged_dir(out) as tmp:
        t1 = time.perf_counter()
        samples = {}
        for split, (stage, sub) in INPUTS.items():
            before, after, n = _style_split(method, ctx.stage_dir(stage) / sub, tmp / split,
                                            cfg.style.batch_size, split)
            samples[split] = (before, after)
            metrics[f"{split}_images"] = float(n)
        metrics["apply_s"] = round(time.perf_counter() - t1, 3)
        real_stats = colour_stats(real_val)
        for split, (before, after) in samples.items():
            d0 = stats_distance(colour_stats(before), real_stats)
            d1 = stats_distance(colour_stats(after), real_stats)
            prefix = "" if split == "train" else f"{split}_"
            for k in DISTANCES:
                metrics[f"{prefix}{k}_before"] = round(d0[k], 5)
                metrics[f"{prefix}{k}_after"] = round(d1[k], 5)
                rows.append({"set": f"synthetic {split}", "distance": k, "before": d0[k], "after": d1[k],
                             "after/before": d1[k] / d0[k] if d0[k] > 0 else float("nan")})
        plot_rel = (out / "colour_histograms.png").relative_to(ctx.root).as_posix()
        _plot(tmp / "colour_histograms.png", real_val, *samples["train"], name)
    d = {k: (metrics[f"{k}_before"], metrics[f"{k}_after"]) for k in DISTANCES}
    text = (f"Style method {name!r} fitted on {len(refs)} real {cfg.style.references} reference images; "
            f"styled {int(metrics['train_images'])} augmented train and {int(metrics['val_images'])} "
            f"synthetic val scenes (masks unchanged). Distance synthetic train -> real val: "
            + ", ".join(f"{k} {b:.3g} -> {a:.3g}" for k, (b, a) in d.items()) + ".")
    return StepResult(metrics=metrics,
                      tables={"colour-statistics distance to real val (before -> after)": markdown_table(rows)},
                      plots={"colour histograms": plot_rel}, text=text)

"""Per-class label statistics: real CamVid train against the synthetic scenes at default knobs.

For each of the 11 classes, on label maps resized to one size (default 128x160, labels nearest):
- pixel %: share of all pixels (void included in the denominator, like CAMVID_TRAIN_FREQ);
- present %: share of images with at least one pixel of the class;
- mean row: mean vertical position of the class's pixels (0 = top edge, 1 = bottom edge);
- blobs/img: connected components (8-neighbourhood) per image where the class is present;
- blob px, blob h: typical area (pixels) and height (rows) of those components: the pixel-weighted
  median (the size of the component the median pixel of the class lies in), so annotation specks
  do not hide the objects.
The ratio columns (syn/real) flag where the generator differs grossly. When the split's images are there
too, one more line compares the images' fine detail: the mean absolute difference between a pixel's grey
level and its 3x3 neighbourhood's mean, real frames loaded as the pipeline loads them (`load_split`,
bilinear) against the synthetic scenes rendered at the same size. No training, CPU only.

    SIM2REAL_THREADS=1 taskset -c 1 python benchmarks/synth_stats.py                 # 367 scenes vs CamVid train
    python benchmarks/synth_stats.py --camvid /path/to/camvid --scenes 200 --out stats.md
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import numpy as np
import torch

from sim2real.config.synthetic import SyntheticConfig
from sim2real.real.importers import load_split
from sim2real.synth import generate_scenes
from sim2real.taxonomy import CLASSES, VOID

CAMVID = Path("/work/shared/data/camvid")
COLUMNS = ("pixel %", "present %", "mean row", "blobs/img", "blob px", "blob h")


def weighted_median(values: list[float], weights: list[float]) -> float:
    """The value at half of the total weight (nan for no values)."""
    if not values:
        return float("nan")
    order = np.argsort(values, kind="stable")
    v, w = np.asarray(values, np.float64)[order], np.asarray(weights, np.float64)[order]
    return float(v[np.searchsorted(np.cumsum(w), 0.5 * w.sum())])


def label_stats(masks: np.ndarray) -> dict[str, dict[str, float]]:
    """The statistics above for label maps (N, H, W) uint8 with ids 0..10 (11 = void)."""
    if masks.ndim != 3 or len(masks) == 0:
        raise ValueError(f"label maps must be a non-empty (N, H, W) array, got shape {masks.shape}")
    n, h, _ = masks.shape
    total = masks.size
    rows = (np.arange(h, dtype=np.float64) + 0.5) / h
    out: dict[str, dict[str, float]] = {}
    for c, name in enumerate(CLASSES):
        on = masks == c
        count = int(on.sum())
        present = on.reshape(n, -1).any(1)
        areas, heights, blobs = [], [], 0
        for i in np.nonzero(present)[0]:
            k, _, stats, _ = cv2.connectedComponentsWithStats(on[i].astype(np.uint8), connectivity=8)
            blobs += k - 1
            areas += stats[1:, cv2.CC_STAT_AREA].tolist()
            heights += stats[1:, cv2.CC_STAT_HEIGHT].tolist()
        per_row = on.sum(axis=(0, 2))
        out[name] = {
            "pixel %": 100.0 * count / total,
            "present %": 100.0 * present.mean(),
            "mean row": float((per_row * rows).sum() / count) if count else float("nan"),
            "blobs/img": blobs / max(int(present.sum()), 1),
            "blob px": weighted_median(areas, areas),
            "blob h": weighted_median(heights, areas),
        }
    return out


def load_camvid_labels(root: Path, split: str, height: int, width: int) -> np.ndarray:
    """SegNet-layout CamVid label maps (`<split>annot/*.png`, ids 0..11) resized (nearest) to height x width."""
    folder = Path(root) / f"{split}annot"
    files = sorted(folder.glob("*.png"))
    if not files:
        raise FileNotFoundError(f"no label PNGs in {folder} (expected the SegNet CamVid layout: {split}annot/*.png)")
    out = np.empty((len(files), height, width), np.uint8)
    for i, f in enumerate(files):
        ids = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        if ids is None or ids.ndim != 2:
            raise ValueError(f"{f}: not a single-channel label PNG")
        out[i] = cv2.resize(ids, (width, height), interpolation=cv2.INTER_NEAREST)
    if out.max() > VOID:
        raise ValueError(f"{folder}: label ids above {VOID} (expected CamVid's 11 classes + void)")
    return out


def fine_detail(images: np.ndarray) -> float:
    """Mean |grey - its 3x3 mean| (grey levels 0..255) over uint8 (N, H, W, 3) images: how much of the
    picture sits at the scale of single pixels (edges, texture, noise, aliasing)."""
    total = 0.0
    for img in images:
        g = img[..., :3].astype(np.float32).mean(-1)
        total += float(np.abs(g - cv2.blur(g, (3, 3), borderType=cv2.BORDER_REFLECT)).mean())
    return total / max(len(images), 1)


def _fmt(v: float, digits: int) -> str:
    return "-" if not np.isfinite(v) else f"{v:.{digits}f}"


def compare_table(real: dict[str, dict[str, float]], syn: dict[str, dict[str, float]]) -> str:
    """Markdown: real | synthetic | synthetic / real, per class and statistic."""
    head = ["class"] + [f"{c} real / syn" for c in COLUMNS] + ["pixel syn/real", "blob px syn/real"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    digits = {"pixel %": 2, "present %": 0, "mean row": 2, "blobs/img": 1, "blob px": 0, "blob h": 0}
    for name in CLASSES:
        r, s = real[name], syn[name]
        cells = [f"{_fmt(r[c], digits[c])} / {_fmt(s[c], digits[c])}" for c in COLUMNS]
        ratio = [s[c] / r[c] if r[c] and np.isfinite(r[c]) and np.isfinite(s[c]) else float("nan")
                 for c in ("pixel %", "blob px")]
        lines.append("| " + " | ".join([name, *cells, *(_fmt(x, 2) for x in ratio)]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--camvid", type=Path, default=CAMVID, help="CamVid root in the SegNet layout")
    ap.add_argument("--split", default="train")
    ap.add_argument("--scenes", type=int, default=367, help="synthetic scenes (default: as many as CamVid train)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    args = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("SIM2REAL_THREADS", "1")))
    real = load_camvid_labels(args.camvid, args.split, args.height, args.width)
    images, syn, _ = generate_scenes(SyntheticConfig(), args.scenes, seed=args.seed, height=args.height,
                                     width=args.width)
    text = (f"CamVid {args.split} ({len(real)} label maps) vs {args.scenes} synthetic scenes (seed {args.seed}, "
            f"default knobs), {args.height}x{args.width}\n\n" + compare_table(label_stats(real), label_stats(syn)))
    if (args.camvid / args.split).is_dir():
        frames = load_split(args.camvid, "camvid", args.split, args.height, args.width).images
        text += (f"\n\nfine detail (mean |grey - 3x3 mean|, grey levels): real {fine_detail(frames):.2f}, "
                 f"synthetic {fine_detail(images):.2f}")
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return text


if __name__ == "__main__":
    main()

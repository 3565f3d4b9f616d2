"""Real CamVid crops next to synthetic ones, class by class: one PNG to look at what the numbers of
benchmarks/synth_stats.py summarise (scale, position, occlusion, texture, colour, silhouette, context).

One row per class (sim2real.taxonomy.CLASSES): `k` crops from real train frames, then `k` from
synthetic scenes. Each crop is the largest connected component (8-neighbourhood) of the class in one
frame, frames drawn with a fixed seed among those holding a component of at least `--min-area`
pixels; the crop keeps context around the blob (`--context` times its size on each side), the class's
pixels are outlined (the chosen blob magenta, other pixels of the class yellow)
and the caption gives the blob's height in pixels and its centre row in the frame (0 = top, 1 = bottom).
Crops in a row are sorted by blob area, largest first. A class absent from one side gets an empty,
labelled cell.

Both sides are read the way the stages read them, with params.yaml + a profile (default camvid:
128x160): real frames by `sim2real.real.importers.load_split` (real.source, real.root, real.fit),
synthetic scenes by `sim2real.synth.generate_scenes` with the `synthetic:` section and the train
split's seed, i.e. the first `--scenes` scenes of stage synthetic_scenes' train set. CPU only.

    SIM2REAL_THREADS=1 taskset -c 1 python benchmarks/synth_grid.py --out docs/evidence/synth_vs_real_classes.png
    python benchmarks/synth_grid.py --profile camvid -S real.root=/data/camvid --k 8 --scenes 96 --out grid.png
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw

from sim2real.config import Config, load_config
from sim2real.real.importers import load_split
from sim2real.synth import generate_scenes
from sim2real.synth.stage import split_seed
from sim2real.taxonomy import CLASSES

REPO = Path(__file__).resolve().parents[1]
CELL = (100, 80)  # crop cell width x height (the 160x128 frame's 5:4 aspect)
MIN_CROP = 40  # narrowest crop (frame pixels): a speck keeps some context and is not blown up 25x
CAPTION = 11  # pixels under each cell for its caption
LABEL_W = 78  # left column with the class name
GAP = 10  # between the real and the synthetic half
HEADER = 14
OUTLINE = (255, 255, 0)
CHOSEN = (255, 0, 255)
BACKGROUND = (255, 255, 255)
TEXT = (0, 0, 0)


@dataclass(frozen=True)
class Crop:
    """One class blob in one frame: the frame's index, its box (x0, y0, x1, y1) and the crop box."""

    index: int
    blob: tuple[int, int, int, int]
    area: int
    box: tuple[int, int, int, int]


def largest_blob(on: np.ndarray) -> tuple[tuple[int, int, int, int], int, np.ndarray] | None:
    """The largest 8-connected component of a boolean map: (x0, y0, x1, y1), area, its own mask."""
    k, labels, stats, _ = cv2.connectedComponentsWithStats(on.astype(np.uint8), connectivity=8)
    if k < 2:
        return None
    j = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h, area = (int(v) for v in stats[j])
    return (x, y, x + w, y + h), area, labels == j


def context_box(blob: tuple[int, int, int, int], height: int, width: int, context: float,
                aspect: float = CELL[0] / CELL[1]) -> tuple[int, int, int, int]:
    """The blob's box grown by `context` x its size (at least 6 px) each side, widened to `aspect`
    (width / height) and to at least MIN_CROP wide, shifted inside the frame and clipped to it."""
    x0, y0, x1, y1 = blob
    pad = max(6.0, context * max(x1 - x0, y1 - y0))
    w, h = (x1 - x0) + 2 * pad, (y1 - y0) + 2 * pad
    w = max(w, h * aspect, MIN_CROP)
    h = max(h, w / aspect)
    w, h = min(w, width), min(h, height)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    bx0 = int(round(min(max(cx - w / 2, 0), width - w)))
    by0 = int(round(min(max(cy - h / 2, 0), height - h)))
    return bx0, by0, bx0 + int(round(w)), by0 + int(round(h))


def pick_crops(masks: np.ndarray, class_id: int, k: int, seed: int, min_area: int,
               context: float) -> list[Crop]:
    """Up to k crops of class `class_id`: frames drawn with `seed` among those whose largest blob of the
    class has >= min_area pixels, that blob in each; sorted by area, largest first."""
    n, h, w = masks.shape
    found: list[Crop] = []
    for i in range(n):
        got = largest_blob(masks[i] == class_id)
        if got is not None and got[1] >= min_area:
            found.append(Crop(i, got[0], got[1], context_box(got[0], h, w, context)))
    rng = np.random.default_rng([seed, class_id])
    chosen = rng.choice(len(found), size=min(k, len(found)), replace=False) if found else []
    return sorted((found[int(j)] for j in chosen), key=lambda c: (-c.area, c.index))


def _outline(on: np.ndarray) -> np.ndarray:
    """The boundary pixels of a boolean map (pixels of it with a 4-neighbour outside it)."""
    inner = cv2.erode(on.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    return on & (inner == 0)


def render_cell(image: np.ndarray, mask: np.ndarray, class_id: int, crop: Crop) -> np.ndarray:
    """The crop resized to CELL (image bilinear, labels nearest) with the class outlined."""
    x0, y0, x1, y1 = crop.box
    size = CELL
    cell = cv2.resize(image[y0:y1, x0:x1], size, interpolation=cv2.INTER_LINEAR)
    on = cv2.resize((mask[y0:y1, x0:x1] == class_id).astype(np.uint8), size,
                    interpolation=cv2.INTER_NEAREST).astype(bool)
    got = largest_blob(mask == class_id)
    blob = got[2] if got is not None else np.zeros(mask.shape, bool)
    mine = cv2.resize(blob[y0:y1, x0:x1].astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    cell[_outline(on & ~mine)] = OUTLINE
    cell[_outline(mine)] = CHOSEN
    return cell


def _caption(crop: Crop, domain: str, height: int) -> str:
    x0, y0, x1, y1 = crop.blob
    return f"{domain} h{y1 - y0} y.{min(int(100 * (y0 + y1) / 2 / height), 99):02d}"


def class_grid(real: tuple[np.ndarray, np.ndarray], synthetic: tuple[np.ndarray, np.ndarray], k: int = 6,
               seed: int = 0, min_area: int = 12, context: float = 0.6,
               headers: tuple[str, str] = ("real", "synthetic")) -> Image.Image:
    """The grid: one row per class, k real crops then k synthetic crops (see the module docstring).

    Args:
        real, synthetic: (images (N, H, W, 3) uint8, masks (N, H, W) ids 0..11), same H x W per side.
        k: crops per side and class.
        seed: frame choice seed.
        min_area: smallest blob (pixels at the working size) a crop may show.
        context: context around the blob, as a multiple of its size, on each side.
        headers: titles over the two halves.
    """
    cw, ch = CELL
    row_h = ch + CAPTION + 2
    half = k * (cw + 2)
    grid = Image.new("RGB", (LABEL_W + 2 * half + GAP, HEADER + len(CLASSES) * row_h), BACKGROUND)
    draw = ImageDraw.Draw(grid)
    for j, title in enumerate(headers):
        draw.text((LABEL_W + j * (half + GAP) + 2, 1), title, fill=TEXT)
    for c, name in enumerate(CLASSES):
        top = HEADER + c * row_h
        draw.text((3, top + ch // 2 - 5), name, fill=TEXT)
        for j, ((images, masks), domain) in enumerate(zip((real, synthetic), ("real", "synthetic"), strict=True)):
            crops = pick_crops(masks, c, k, seed, min_area, context)
            for slot in range(k):
                left = LABEL_W + j * (half + GAP) + slot * (cw + 2)
                if slot < len(crops):
                    cr = crops[slot]
                    grid.paste(Image.fromarray(render_cell(images[cr.index], masks[cr.index], c, cr)), (left, top))
                    draw.text((left + 1, top + ch), _caption(cr, domain, masks.shape[1]), fill=TEXT)
                else:
                    draw.rectangle((left, top, left + cw - 1, top + ch - 1), fill=(225, 225, 225))
                    draw.text((left + 4, top + ch // 2 - 5), f"no {name}", fill=TEXT)
                    draw.text((left + 1, top + ch), f"{domain} (absent)", fill=TEXT)
    return grid


def save_png(grid: Image.Image, path: Path, colors: int = 0) -> Path:
    """Write the grid (palette-quantized to `colors` when > 0, to keep the file small), atomically."""
    img = grid.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE) if colors else grid
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    img.save(tmp, optimize=True)
    tmp.replace(path)
    return path


def load_both(cfg: Config, split: str, scenes: int) -> tuple[tuple[np.ndarray, np.ndarray],
                                                            tuple[np.ndarray, np.ndarray]]:
    """Real frames of `split` and the first `scenes` synthetic train scenes, as the stages read them."""
    real, sc = cfg.real, cfg.synthetic
    h, w = cfg.project.image_height, cfg.project.image_width
    if real.source == "proxy" or not real.root:
        raise ValueError(f"real.source={real.source!r}, real.root={real.root!r}: the grid needs a real dataset "
                         "(use --profile camvid or -S real.source=camvid -S real.root=DIR)")
    root = Path(real.root) if Path(real.root).is_absolute() else REPO / real.root
    mapping = str(Path(real.mapping) if Path(real.mapping).is_absolute() else REPO / real.mapping) \
        if real.mapping else None
    r = load_split(root, real.source, split, h, w, mapping=mapping, skip_bad=real.skip_bad, fit=real.fit)
    images, masks, _ = generate_scenes(sc, scenes, split_seed(sc.seed, "train"), h, w)
    return (r.images, r.masks), (images, masks)


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml")
    ap.add_argument("--profile", default="camvid", help="profile merged over params (real source, 128x160)")
    ap.add_argument("-S", "--set", dest="overrides", action="append", default=[], help="KEY=VALUE override")
    ap.add_argument("--split", default="train", help="real split")
    ap.add_argument("--scenes", type=int, default=48, help="synthetic train scenes to draw crops from")
    ap.add_argument("--k", type=int, default=6, help="crops per side and class")
    ap.add_argument("--seed", type=int, default=0, help="frame choice seed")
    ap.add_argument("--min-area", type=int, default=12, help="smallest blob shown, pixels at the working size")
    ap.add_argument("--context", type=float, default=0.6, help="context each side, x the blob's size")
    ap.add_argument("--colors", type=int, default=128, help="palette colours of the PNG (0 = full RGB)")
    ap.add_argument("--out", type=Path, required=True, help="output PNG")
    args = ap.parse_args(argv)
    if args.k < 1 or args.scenes < 1:
        ap.error("--k and --scenes must be >= 1")
    torch.set_num_threads(int(os.environ.get("SIM2REAL_THREADS", "1")))
    cfg = load_config(args.params, overrides=args.overrides, profile=args.profile or None)
    real, syn = load_both(cfg, args.split, args.scenes)
    h, w = cfg.project.image_height, cfg.project.image_width
    headers = (f"real: {cfg.real.source} {args.split} ({len(real[0])} frames, {h}x{w})",
               f"synthetic: first {args.scenes} train scenes (synthetic.seed {cfg.synthetic.seed})")
    grid = class_grid(real, syn, args.k, args.seed, args.min_area, args.context, headers)
    path = save_png(grid, args.out, args.colors)
    print(f"{path}: {grid.width}x{grid.height}, {path.stat().st_size / 1024:.0f} KB")
    return path


if __name__ == "__main__":
    main()

"""Colour-statistics distance synthetic -> CamVid val, before and after each style method.

The styling is fitted on real CamVid train images (the 10-image class-balanced few-shot subset
that real_target draws with seed 0, or all 367 train images as unlabelled references) and applied
to procedural synthetic scenes; the distance is measured against CamVid val (never used to fit).
No model is trained here.

Run (about a minute on 2 cores):
    SIM2REAL_THREADS=1 python benchmarks/style_camvid.py [--camvid ../shared/data/camvid] [--n 256]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from sim2real.config.synthetic import SyntheticConfig
from sim2real.context import markdown_table
from sim2real.real.fewshot import select_few_shot
from sim2real.real.importers import load_split
from sim2real.style import METHODS, get_method
from sim2real.style.distance import DISTANCES, colour_stats, stats_distance
from sim2real.synth import generate_scenes

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--camvid", type=Path, default=REPO.parent / "shared" / "data" / "camvid")
    ap.add_argument("--height", type=int, default=96)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--n", type=int, default=256, help="synthetic scenes")
    ap.add_argument("--few-shot", type=int, default=10)
    ap.add_argument("--fda-betas", type=float, nargs="*", default=[0.0, 0.01, 0.03, 0.05, 0.1])
    args = ap.parse_args()
    torch.set_num_threads(1)
    h, w = args.height, args.width

    t0 = time.perf_counter()
    train = load_split(args.camvid, "camvid", "train", h, w)
    val = load_split(args.camvid, "camvid", "val", h, w)
    synthetic, _, _ = generate_scenes(SyntheticConfig(), args.n, seed=0, height=h, width=w)
    few = train.images[sorted(select_few_shot(train.masks, args.few_shot, seed=0))]
    print(f"loaded CamVid train {len(train)} / val {len(val)} and {args.n} synthetic scenes at {h}x{w} "
          f"in {time.perf_counter() - t0:.1f}s")

    real_stats = colour_stats(val.images)
    base = stats_distance(colour_stats(synthetic), real_stats)
    floor = stats_distance(colour_stats(train.images), real_stats)
    refs = {f"few_shot ({len(few)})": few, f"unlabelled ({len(train)})": train.images}

    rows = []
    for ref_name, ref in refs.items():
        for name in sorted(METHODS):
            m = get_method(name)
            t = time.perf_counter()
            m.fit(ref)
            fit_s = time.perf_counter() - t
            t = time.perf_counter()
            styled = m.apply(synthetic)
            apply_ms = 1000 * (time.perf_counter() - t) / len(synthetic)
            after = stats_distance(colour_stats(styled), real_stats)
            row: dict[str, object] = {"method": name, "references": ref_name}
            for k in DISTANCES:
                row[f"{k} before"] = base[k]
                row[f"{k} after"] = after[k]
            row.update({"fit s": fit_s, "apply ms/img": apply_ms})
            rows.append(row)
    print(f"\n## Colour-statistics distance, synthetic -> CamVid val ({h}x{w})\n")
    print(markdown_table(rows))
    print("\nreference point, CamVid train -> CamVid val (real vs real): "
          + ", ".join(f"{k} {floor[k]:.3g}" for k in DISTANCES))

    beta_rows = []
    for beta in args.fda_betas:
        styled = get_method("fda", beta=beta).fit(few).apply(synthetic)
        d = stats_distance(colour_stats(styled), real_stats)
        b = int(np.floor(min(h, w) * beta))
        beta_rows.append({"fda beta": beta, "window": f"{2 * b + 1}x{2 * b + 1}",
                          **{f"{k} after": d[k] for k in DISTANCES}})
    print(f"\n## FDA beta sweep (few-shot references)\n\n{markdown_table(beta_rows)}")


if __name__ == "__main__":
    main()

"""Pictures a stage writes next to its data: sample grids (images, then their colourised labels), and
the headless matplotlib every stage plots with."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.taxonomy import colorize


def save_grid(path: Path, image_rows: Sequence[np.ndarray], masks: np.ndarray | None = None,
              titles: Sequence[str] | None = None) -> Path:
    """Save a PNG grid: one row per image set (k, H, W, 3), then the colourised masks.

    Args:
        path: output PNG.
        image_rows: image batches of equal shape, one grid row each.
        masks: (k, H, W) label masks for a last row (SegNet palette), optional.
        titles: row labels (drawn at the left edge).
    """
    from PIL import Image, ImageDraw

    rows = [np.concatenate(list(r), axis=1) for r in image_rows]
    if masks is not None:
        rows.append(np.concatenate([colorize(m) for m in masks], axis=1))
    grid = Image.fromarray(np.concatenate(rows, axis=0))
    if titles:
        draw = ImageDraw.Draw(grid)
        h = image_rows[0].shape[1]
        for i, t in enumerate(list(titles) + (["labels"] if masks is not None else [])):
            draw.text((3, i * h + 2), t, fill=(255, 255, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    grid.save(tmp)
    tmp.replace(path)
    return path


def pyplot() -> Any:
    """`matplotlib.pyplot` on the file-only Agg backend (stages write PNGs and never open a window).

    Imported on first use: matplotlib takes a second to import and most commands never plot.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt

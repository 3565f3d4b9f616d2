"""Fit a camera's frames to the model's working size: squash, or keep the aspect (pad / sliding window).

A foreign camera rarely has the working size's aspect (KITTI 1224x370 is 3.3:1, the model 128x96 is
1.33:1). `real.fit` chooses how its frames become working-size samples:
- `squash`: resize both sides to the working size (aspect lost; the old behaviour, exact when the
  aspects match).
- `pad`: resize so the whole frame fits inside the working size with its aspect kept, then pad the
  rest (image: edge pixels; labels: void, so padding is never scored nor trained on). One sample per frame.
- `window`: resize the short side to the working size's (aspect kept), then cut working-size windows
  along the long side, evenly spaced from one end to the other (overlapping as little as possible).
  Several samples per frame, named `<frame>@<offset>`; every pixel is covered.

When the aspects match, all three give the same single sample.

Example:
    >>> samples = fit_frame(image, labels, height=96, width=128, mode="window")   # [(name suffix, image, labels)]
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from sim2real.taxonomy import VOID

__all__ = ["FIT_MODES", "fit_frame", "resize_pair", "window_offsets"]

FIT_MODES = ("squash", "pad", "window")


def resize_pair(image: np.ndarray, ids: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Image bilinear (area-like when shrinking), labels nearest, to `height` x `width`."""
    if image.shape[:2] == (height, width):
        return image, ids
    return (np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR)),
            np.asarray(Image.fromarray(ids).resize((width, height), Image.NEAREST)))


def window_offsets(length: int, window: int) -> list[int]:
    """Start offsets of the fewest `window`-long windows covering `length`, evenly spaced, ends included."""
    if length <= window:
        return [0]
    n = math.ceil(length / window)
    return [round(i * (length - window) / (n - 1)) for i in range(n)]


def _same_aspect(h: int, w: int, height: int, width: int) -> bool:
    return abs(h * width - w * height) <= max(h, w, height, width) // 2  # within rounding


def fit_frame(image: np.ndarray, ids: np.ndarray, height: int, width: int, mode: str = "squash",
              ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Working-size samples of one frame: [(name suffix, image (h, w, 3) uint8, ids (h, w) uint8)].

    Args:
        image: (H, W, 3) uint8 frame.
        ids: (H, W) taxonomy ids (11 = void).
        height, width: the working size.
        mode: squash | pad | window (see the module docstring).
    """
    if mode not in FIT_MODES:
        raise ValueError(f"real.fit: unknown mode {mode!r}; choose one of {list(FIT_MODES)}")
    h, w = image.shape[:2]
    if mode == "squash" or _same_aspect(h, w, height, width):
        img, lab = resize_pair(image, ids, height, width)
        return [("", img, lab)]
    if mode == "pad":
        scale = min(height / h, width / w)
        nh, nw = max(1, min(height, round(h * scale))), max(1, min(width, round(w * scale)))
        img, lab = resize_pair(image, ids, nh, nw)
        top, left = (height - nh) // 2, (width - nw) // 2
        pads = ((top, height - nh - top), (left, width - nw - left))
        return [("", np.pad(img, (*pads, (0, 0)), mode="edge"),
                 np.pad(lab, pads, mode="constant", constant_values=VOID))]
    scale = max(height / h, width / w)  # the short side (relative to the working aspect) fills
    nh, nw = max(height, round(h * scale)), max(width, round(w * scale))
    img, lab = resize_pair(image, ids, nh, nw)
    out = []
    if nw > width:
        for x in window_offsets(nw, width):
            out.append((f"@x{x}", img[:, x:x + width], lab[:, x:x + width]))
    else:
        for y in window_offsets(nh, height):
            out.append((f"@y{y}", img[y:y + height], lab[y:y + height]))
    return [(s, np.ascontiguousarray(i), np.ascontiguousarray(m)) for s, i, m in out]

"""A seeded, class-balanced few-shot subset of the labelled real training pool.

Greedy: at every pick, take the class that is least covered by the images chosen so far (the rarer
one in the pool breaks ties), and draw, with the seed, one of the remaining images that contain it,
weighted toward images that also bring other under-covered classes. Rare classes (Pole,
SignSymbol, Pedestrian, Bicyclist) are therefore in the subset early, and different seeds give
different subsets with the same balance.

Example:
    >>> chosen = select_few_shot(masks, n=10, seed=0)   # indices into the pool, in pick order
"""

from __future__ import annotations

import numpy as np

from sim2real.taxonomy import NUM_CLASSES, VOID

# a class "is in" an image when it covers at least this share of its pixels (a few stray pixels
# of Bicyclist at the border would otherwise count as covering the class)
MIN_FRACTION = 0.001


def class_presence(masks: np.ndarray, min_fraction: float = MIN_FRACTION) -> np.ndarray:
    """(N, 11) bool: class k covers at least `min_fraction` of image i's pixels (void ignored)."""
    n = len(masks)
    if n == 0:
        return np.zeros((0, NUM_CLASSES), bool)
    flat = np.asarray(masks).reshape(n, -1).astype(np.int64)
    counts = np.stack([np.bincount(row, minlength=VOID + 1)[:NUM_CLASSES] for row in flat])
    return counts >= max(1.0, min_fraction * flat.shape[1])


def select_few_shot(masks: np.ndarray, n: int, seed: int, min_fraction: float = MIN_FRACTION) -> list[int]:
    """Pick `n` images of the pool, covering rare classes first; the same inputs give the same picks.

    Args:
        masks: (N, H, W) taxonomy ids of the pool (the labelled real train split).
        n: subset size; n >= N takes the whole pool.
        seed: seed of the draw.
        min_fraction: pixel share above which a class counts as present in an image.

    Returns:
        Pool indices in pick order.
    """
    if n < 1:
        raise ValueError(f"few-shot size must be >= 1, got {n}")
    total = len(masks)
    if n >= total:
        return list(range(total))
    presence = class_presence(masks, min_fraction)
    pool_images = presence.sum(0).astype(float)  # how many pool images show each class
    rng = np.random.default_rng(seed)
    remaining = np.ones(total, bool)
    cover = np.zeros(NUM_CLASSES)
    chosen: list[int] = []
    while len(chosen) < n:
        obtainable = np.flatnonzero(presence[remaining].any(0))
        if len(obtainable):
            # np.lexsort: last key is primary -> least covered, then rarest, then random
            order = np.lexsort((rng.random(len(obtainable)), pool_images[obtainable], cover[obtainable]))
            k = obtainable[order[0]]
            cands = np.flatnonzero(remaining & presence[:, k])
            gain = (presence[cands] / (1.0 + cover)).sum(1)
            pick = int(rng.choice(cands, p=gain / gain.sum()))
        else:  # only images without any (non-void) class left
            pick = int(rng.choice(np.flatnonzero(remaining)))
        chosen.append(pick)
        remaining[pick] = False
        cover += presence[pick]
    return chosen


def coverage(masks: np.ndarray, indices: list[int] | None = None,
             min_fraction: float = MIN_FRACTION) -> np.ndarray:
    """(11,) number of images (of `indices`, default all) in which each class is present."""
    presence = class_presence(masks if indices is None else masks[list(indices)], min_fraction)
    return presence.sum(0)

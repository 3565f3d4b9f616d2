"""The mIoU change an intervention makes, its bootstrap CI over images, and the verdict.

mIoU is a dataset-level number (confusion matrices summed over images, then IoU per class), so the
bootstrap resamples *images* and recomputes both mIoUs on each resample from per-image confusion
matrices: paired (the same resampled images before and after) for an intervention that changes the
images, and "subset vs all of the same resample" for one that keeps a subset.

Example:
    >>> cms = image_confusions(predictions, masks)                    # (N, 11, 11)
    >>> ch = bootstrap_change(cms, cms_after, keep=None, rows=np.arange(len(cms)), samples=500, ci=0.95, seed=0)
    >>> decide(ch, gap=12.0, min_share=0.1, band=0.5)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim2real.evaluate.metrics import confusion_matrix
from sim2real.taxonomy import NUM_CLASSES

__all__ = ["Change", "image_confusions", "miou_of", "bootstrap_change", "decide", "VERDICTS"]

VERDICTS = ("confirmed", "inconclusive", "rejected")  # the report's order


def image_confusions(predictions: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(N, C, C) int64: one confusion matrix per image (void truth ignored)."""
    return np.stack([confusion_matrix(p, t) for p, t in zip(predictions, masks, strict=True)]) if len(masks) else \
        np.zeros((0, NUM_CLASSES, NUM_CLASSES), np.int64)


def miou_of(cms: np.ndarray) -> np.ndarray:
    """mIoU (points) of summed confusion matrices (..., C, C), as `evaluate.metrics.mean_iou` does it."""
    cms = np.asarray(cms, np.float64)
    tp = np.diagonal(cms, axis1=-2, axis2=-1)
    denom = cms.sum(-2) + cms.sum(-1) - tp
    present = denom > 0
    iou = np.where(present, tp / np.where(present, denom, 1), 0.0)
    k = present.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(k > 0, 100 * iou.sum(-1) / np.maximum(k, 1), np.nan)


@dataclass(frozen=True)
class Change:
    """mIoU points: before, after, their difference with a percentile bootstrap CI, on `images` images."""

    before: float
    after: float
    value: float
    low: float
    high: float
    images: int


def bootstrap_change(before: np.ndarray, after: np.ndarray, keep: np.ndarray | None, rows: np.ndarray,
                     samples: int, ci: float, seed: int) -> Change:
    """The change on the images `rows` (indices into the original target), with its bootstrap CI.

    Args:
        before: (N, C, C) per-image confusion matrices of the original target.
        after: per-image matrices of the intervened set: (N, C, C) paired, or (len(keep), C, C).
        keep: None (paired) or the original indices of a subset intervention's images.
        rows: which original images the change is measured on (all, or the hardest k).
        samples, ci, seed: bootstrap resamples, interval level, seed (same seed, same interval).
    """
    rows = np.asarray(rows, dtype=int)
    full = before.copy()
    weight = np.ones(len(before))
    if keep is None:
        full[:] = after
    else:
        full[keep] = after
        weight[:] = 0.0
        weight[keep] = 1.0
    b, a, w = before[rows].reshape(len(rows), -1), full[rows].reshape(len(rows), -1), weight[rows]
    shape = (NUM_CLASSES, NUM_CLASSES)
    m_before = float(miou_of(b.sum(0).reshape(shape)))
    kept = w > 0
    m_after = float(miou_of((a * w[:, None]).sum(0).reshape(shape))) if kept.any() else float("nan")
    if not kept.any() or not len(rows):
        return Change(m_before, m_after, float("nan"), float("nan"), float("nan"), int(kept.sum()))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(rows), size=(samples, len(rows)))
    counts = np.zeros((samples, len(rows)))
    np.add.at(counts, (np.arange(samples)[:, None], draws), 1.0)
    diff = miou_of(((counts * w) @ a).reshape(samples, *shape)) - miou_of((counts @ b).reshape(samples, *shape))
    diff = diff[np.isfinite(diff)]
    alpha = (1 - ci) / 2
    low, high = (np.quantile(diff, [alpha, 1 - alpha]) if len(diff) else (np.nan, np.nan))
    return Change(m_before, m_after, m_after - m_before, float(low), float(high), int(kept.sum()))


def decide(change: Change, gap: float, min_share: float, band: float) -> tuple[str, str]:
    """(verdict, why) for a change on all images against the gap it should close (mIoU points).

    - confirmed: the CI excludes 0 and the change closes at least `min_share` of a positive gap;
    - rejected: the CI's upper end is below +`band` (no more than `band` points can be closed);
    - inconclusive: otherwise.
    """
    if not np.isfinite(change.value):
        return "inconclusive", "no images left to measure on"
    share = change.value / gap if gap > 0 else float("nan")
    ci = f"{change.value:+.2f} [{change.low:+.2f}, {change.high:+.2f}]"
    if change.low > 0 and gap > 0 and share >= min_share:
        return "confirmed", f"{ci}: CI excludes 0 and closes {share:.0%} of the {gap:.1f}-point gap (>= {min_share:.0%})"
    if change.high < band:
        return "rejected", f"{ci}: the CI's upper end is below +{band:g} points"
    if gap <= 0:
        return "inconclusive", f"{ci}: there is no gap to close ({gap:+.1f} points)"
    if change.low > 0:
        return "inconclusive", f"{ci}: significant, but closes only {share:.0%} of the {gap:.1f}-point gap " \
                               f"(< {min_share:.0%})"
    return "inconclusive", f"{ci}: the CI includes 0"

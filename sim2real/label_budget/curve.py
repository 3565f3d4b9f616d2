"""Curve arithmetic: per-N aggregation over seeds and "labels saved" (no torch, no I/O).

"Labels saved" answers the question a user comes with: with synthetic pretraining, how many real
labels reach the accuracy that real-only training reaches with all of them? The synthetic curve is
read as piecewise linear in log N between tested sizes (and linear from the source-only point at
N = 0 to the smallest N). A crossing outside the tested sizes is extrapolated along the last
segment and flagged as such.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Point:
    n: int  # real labelled images (0 = source-only)
    mean: float  # mIoU points, mean over seeds
    spread: float  # std over seeds (0 with one seed)
    seeds: int


@dataclass(frozen=True)
class LabelsSaved:
    target: float  # mIoU points to match (real-only with all images)
    n_all: int  # images behind the target
    n_match: float | None  # N at which synthetic + N reaches the target (None = not reached)
    extrapolated: bool  # n_match lies outside the tested sizes
    note: str

    @property
    def saved(self) -> float | None:
        return None if self.n_match is None else max(0.0, self.n_all - self.n_match)

    @property
    def saved_fraction(self) -> float | None:
        return None if self.saved is None or self.n_all <= 0 else self.saved / self.n_all


def aggregate(values: dict[int, list[float]]) -> list[Point]:
    """{N: [mIoU per seed]} -> points sorted by N (std with ddof=0: the seeds are the population)."""
    return [Point(n, float(np.mean(v)), float(np.std(v)) if len(v) > 1 else 0.0, len(v))
            for n, v in sorted(values.items()) if v]


def _x(n: float) -> float:
    return math.log(n) if n > 0 else -math.inf


def _interp_n(p: Point, q: Point, target: float) -> float:
    """N at which the segment p -> q reaches `target` (log-N linear; linear from N = 0)."""
    t = (target - p.mean) / (q.mean - p.mean)
    if p.n == 0:
        return p.n + t * (q.n - p.n)
    return math.exp(_x(p.n) + t * (_x(q.n) - _x(p.n)))


def labels_saved(synthetic: list[Point], target: float, n_all: int) -> LabelsSaved:
    """Where the synthetic curve (N = 0 allowed: source-only) first reaches `target`.

    Args:
        synthetic: synthetic + N points, sorted by N; may start at N = 0 (source-only).
        target: mIoU points of real-only with all `n_all` images.
        n_all: size of the real train pool.
    """
    pts = sorted(synthetic, key=lambda p: p.n)
    if not pts:
        return LabelsSaved(target, n_all, None, False, "no synthetic points")
    if pts[0].mean >= target:
        if pts[0].n == 0:
            return LabelsSaved(target, n_all, 0.0, False, "source-only already matches real-only with all images")
        if len(pts) >= 2 and pts[1].mean > pts[0].mean:  # extrapolate down along the first segment
            n = max(0.0, _interp_n(pts[0], pts[1], target))
            return LabelsSaved(target, n_all, n, True, f"reached below the smallest tested N ({pts[0].n}); "
                               "extrapolated along the first segment")
        return LabelsSaved(target, n_all, float(pts[0].n), True,
                           f"already reached at the smallest tested N ({pts[0].n}); the true N may be lower")
    for p, q in zip(pts, pts[1:], strict=False):
        if p.mean < target <= q.mean:
            return LabelsSaved(target, n_all, _interp_n(p, q, target), False,
                               f"interpolated between N={p.n} and N={q.n}")
    last = pts[-1]
    if len(pts) >= 2 and last.mean > pts[-2].mean and last.n > 0:
        n = _interp_n(pts[-2], last, target)
        return LabelsSaved(target, n_all, n, True, f"not reached by N={last.n}; extrapolated along the last "
                           f"segment to N={n:.0f}" + (" (more than all the real images)" if n > n_all else ""))
    return LabelsSaved(target, n_all, None, False, f"not reached by N={last.n} and the curve is not rising")


def paired_gain(synthetic: dict[int, float], real_only: dict[int, float]) -> tuple[float, float, int]:
    """Mean and std of per-seed differences synthetic - real-only (seeds present in both)."""
    common = sorted(set(synthetic) & set(real_only))
    d = np.array([synthetic[s] - real_only[s] for s in common], dtype=float)
    if not len(d):
        return float("nan"), float("nan"), 0
    return float(d.mean()), float(d.std()) if len(d) > 1 else 0.0, len(d)

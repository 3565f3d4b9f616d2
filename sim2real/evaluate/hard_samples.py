"""Hardest real samples: the top-k images by loss, and what they share compared with the rest.

Each image gets its mean cross-entropy over non-void pixels (the ranking), its own mIoU and pixel
accuracy, and the properties of `domain_stats.image_properties` (brightness, contrast, edge density,
sky fraction, void fraction, per-class pixel fractions). The comparison table puts the top-k mean of
each property next to the rest's mean, with the difference in units of the rest's standard deviation
(an effect size), so "the hardest images are darker / have less sky / contain Pedestrians" reads off
the first rows.

Example:
    >>> ranking = rank_by_loss(losses, k=8); table = compare_hard_vs_rest(props, ranking)
"""

from __future__ import annotations

import numpy as np

from sim2real.evaluate.domain_stats import PRESENCE_MIN
from sim2real.taxonomy import CLASSES

__all__ = ["rank_by_loss", "compare_hard_vs_rest", "hard_sample_rows"]

# properties worth a row in the "what they share" table (per-class fractions are added below)
_SHARED = ("brightness", "contrast", "edge_density", "saturation", "sky_fraction", "void_fraction",
           "num_classes_present")


def rank_by_loss(losses: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest-loss samples, hardest first (NaN losses, e.g. all-void, last)."""
    losses = np.asarray(losses, dtype=np.float64)
    key = np.where(np.isfinite(losses), losses, -np.inf)
    order = np.argsort(-key, kind="stable")
    return order[: min(k, len(order))]


def compare_hard_vs_rest(props: dict[str, np.ndarray], hard: np.ndarray) -> list[dict]:
    """Rows (property, top-k mean, rest mean, difference, effect size) sorted by |effect size|.

    Args:
        props: per-image arrays (from `image_properties` with masks) plus e.g. "loss".
        hard: indices of the hardest samples.
    """
    n = len(next(iter(props.values())))
    is_hard = np.zeros(n, bool)
    is_hard[np.asarray(hard, dtype=int)] = True
    rows = []
    keys = [k for k in _SHARED if k in props]
    # per-class pixel fractions (Sky is already there as sky_fraction)
    keys += [f"frac_{c}" for c in CLASSES if f"frac_{c}" in props and not (c == "Sky" and "sky_fraction" in keys)]
    for key in keys:
        v = np.asarray(props[key], dtype=np.float64)
        rows.append(_row(key, v[is_hard], v[~is_hard]))
    # class presence: share of images where the class covers >= 0.5% of labelled pixels
    for c in CLASSES:
        key = f"frac_{c}"
        if key in props:
            present = (np.asarray(props[key]) >= PRESENCE_MIN).astype(np.float64)
            rows.append(_row(f"has_{c}", present[is_hard], present[~is_hard]))
    rows.sort(key=lambda r: -abs(r["effect_size"]) if r["effect_size"] is not None else 0.0)
    return rows


def _row(name: str, hard: np.ndarray, rest: np.ndarray) -> dict:
    h = float(hard.mean()) if len(hard) else float("nan")
    r = float(rest.mean()) if len(rest) else float("nan")
    sd = float(rest.std()) if len(rest) > 1 else 0.0
    if sd <= 1e-12:  # a constant rest: compare against the pooled spread instead
        pooled = np.concatenate([hard, rest])
        sd = float(pooled.std()) if len(pooled) > 1 else 0.0
    effect = (h - r) / sd if sd > 1e-12 and np.isfinite(h) and np.isfinite(r) else None
    return {"property": name, "hardest_mean": h, "rest_mean": r, "difference": h - r, "effect_size": effect}


def hard_sample_rows(hard: np.ndarray, names: list[str], props: dict[str, np.ndarray]) -> list[dict]:
    """Store rows (table hard_samples) for the ranked hardest samples."""
    rows = []
    for rank, i in enumerate(np.asarray(hard, dtype=int), start=1):
        present = [c for c in CLASSES if props.get(f"frac_{c}") is not None and props[f"frac_{c}"][i] >= PRESENCE_MIN]
        rows.append({
            "rank": rank, "sample_index": int(i), "sample_name": names[i] if i < len(names) else str(i),
            "loss": float(props["loss"][i]), "miou": 100 * float(props["miou"][i]),
            "pixel_accuracy": 100 * float(props["pixel_accuracy"][i]),
            "brightness": float(props["brightness"][i]), "contrast": float(props["contrast"][i]),
            "edge_density": float(props["edge_density"][i]),
            "sky_fraction": float(props.get("sky_fraction", np.full(i + 1, np.nan))[i]),
            "void_fraction": float(props.get("void_fraction", np.full(i + 1, np.nan))[i]),
            "classes_present": ",".join(present),
        })
    return rows

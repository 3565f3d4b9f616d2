"""Image and label statistics of a domain, and a distance for each between two domains.

Per image: brightness (mean luma), contrast (std of luma), edge density (Sobel), colour moments
(mean / std / skewness per RGB channel), saturation; per domain: RGB histograms and the class pixel
distribution. Scalar per-image statistics are compared with the 1-D Wasserstein distance between
the two domains' per-image values (in the statistic's own units); histograms and class distributions
with the Jensen-Shannon distance (0 = identical, 1 = disjoint, base 2).

Example:
    >>> rows = compare_domains(synthetic_images, real_images, synthetic_masks, real_masks)
    >>> [(r["statistic"], r["distance"]) for r in rows]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import sobel
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from sim2real.taxonomy import CLASSES, NUM_CLASSES, VOID, class_histogram

__all__ = ["image_properties", "DomainSummary", "summarize_domain", "compare_domains", "SCALAR_STATS"]

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
EDGE_THRESHOLD = 0.25  # Sobel magnitude on luma in [0, 1]; ~a clear step edge, above sensor noise
PRESENCE_MIN = 0.005  # a class "is present" in an image above 0.5% of its labelled pixels

SCALAR_STATS = ("brightness", "contrast", "edge_density", "saturation",
                "mean_r", "mean_g", "mean_b", "std_r", "std_g", "std_b", "skew_r", "skew_g", "skew_b")


def image_properties(images: np.ndarray, masks: np.ndarray | None = None, chunk: int = 64) -> dict[str, np.ndarray]:
    """Per-image statistics (each an (N,) array) used by domain comparison and hard-sample analysis.

    Args:
        images: (N, H, W, 3) uint8.
        masks: optional (N, H, W) ids 0..11; adds sky/void fractions and per-class pixel fractions.
        chunk: images processed at once (bounds memory on large splits).
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3), got {images.shape}")
    out: dict[str, list[np.ndarray]] = {k: [] for k in SCALAR_STATS}
    for s in range(0, len(images), chunk):
        x = images[s:s + chunk].astype(np.float32) / 255.0
        luma = x @ _LUMA
        out["brightness"].append(luma.mean((1, 2)))
        out["contrast"].append(luma.std((1, 2)))
        gx, gy = sobel(luma, axis=2), sobel(luma, axis=1)
        # scipy's Sobel kernel sums to 4x the intensity step; normalize so a 0->1 step reads 1
        mag = np.hypot(gx, gy) / 4.0
        out["edge_density"].append((mag > EDGE_THRESHOLD).mean((1, 2)))
        mx, mn = x.max(-1), x.min(-1)
        out["saturation"].append(np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-6), 0).mean((1, 2)))
        flat = x.reshape(len(x), -1, 3)
        mu = flat.mean(1)
        sd = flat.std(1)
        skew = ((flat - mu[:, None]) ** 3).mean(1) / np.maximum(sd, 1e-6) ** 3
        for i, ch in enumerate("rgb"):
            out[f"mean_{ch}"].append(mu[:, i])
            out[f"std_{ch}"].append(sd[:, i])
            out[f"skew_{ch}"].append(skew[:, i])
    props = {k: np.concatenate(v).astype(np.float64) if v else np.zeros(0) for k, v in out.items()}
    if masks is not None:
        masks = np.asarray(masks)
        counts = np.stack([class_histogram(m) for m in masks]) if len(masks) else np.zeros((0, VOID + 1))
        labelled = counts[:, :NUM_CLASSES].sum(1)
        total = counts.sum(1)
        frac = counts[:, :NUM_CLASSES] / np.maximum(labelled, 1)[:, None]
        props["void_fraction"] = counts[:, VOID] / np.maximum(total, 1)
        for c, name in enumerate(CLASSES):
            props[f"frac_{name}"] = frac[:, c]
        props["sky_fraction"] = props["frac_Sky"]
        props["num_classes_present"] = (frac >= PRESENCE_MIN).sum(1).astype(np.float64)
    return props


@dataclass
class DomainSummary:
    """What compare_domains needs of one domain (computed once, reused for every pair)."""

    name: str
    props: dict[str, np.ndarray]
    hist: np.ndarray  # (3, bins) RGB histograms, each normalized to sum 1
    class_dist: np.ndarray | None  # (11,) labelled-pixel fractions, or None without masks
    n: int


def summarize_domain(name: str, images: np.ndarray, masks: np.ndarray | None = None,
                     bins: int = 32) -> DomainSummary:
    """Per-image properties, RGB histograms and class distribution of one image set."""
    images = np.asarray(images)
    hist = np.stack([np.bincount((images[..., c].ravel().astype(np.int64) * bins) // 256, minlength=bins)
                     for c in range(3)]).astype(np.float64)
    hist /= np.maximum(hist.sum(1, keepdims=True), 1)
    class_dist = None
    if masks is not None:
        counts = class_histogram(np.asarray(masks))[:NUM_CLASSES].astype(np.float64)
        class_dist = counts / max(counts.sum(), 1)
    return DomainSummary(name, image_properties(images, masks), hist, class_dist, len(images))


def compare_domains(a: DomainSummary, b: DomainSummary) -> list[dict]:
    """One row per statistic: distance between domains a (source) and b (target), and their means."""
    rows = []
    for stat in SCALAR_STATS:
        va, vb = a.props[stat], b.props[stat]
        rows.append({"source": a.name, "target": b.name, "statistic": stat, "distance_name": "wasserstein1",
                     "distance": float(wasserstein_distance(va, vb)) if len(va) and len(vb) else None,
                     "source_value": float(va.mean()) if len(va) else None,
                     "target_value": float(vb.mean()) if len(vb) else None})
    js = [float(jensenshannon(a.hist[c], b.hist[c], base=2)) for c in range(3)]
    rows.append({"source": a.name, "target": b.name, "statistic": "hist_rgb", "distance_name": "jensen_shannon",
                 "distance": float(np.mean(js)), "source_value": None, "target_value": None})
    if a.class_dist is not None and b.class_dist is not None:
        rows.append({"source": a.name, "target": b.name, "statistic": "class_distribution",
                     "distance_name": "jensen_shannon",
                     "distance": float(jensenshannon(a.class_dist, b.class_dist, base=2)),
                     "source_value": None, "target_value": None})
        for c, name in enumerate(CLASSES):
            rows.append({"source": a.name, "target": b.name, "statistic": f"class_fraction/{name}",
                         "distance_name": "abs_difference",
                         "distance": float(abs(a.class_dist[c] - b.class_dist[c])),
                         "source_value": float(a.class_dist[c]), "target_value": float(b.class_dist[c])})
    return rows

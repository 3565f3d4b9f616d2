"""Latent-space gap between two sets of encoder features: Fréchet distance, MMD, proxy A-distance.

- Fréchet distance (the FID formula on the model's own encoder features):
  |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2), computed exactly from the singular
  values of the (small) sample cross-product, so it is 0 for identical sets and never complex. It has
  the features' units, so across models whose features differ in scale `frechet_normalized` (divided by the total
  variance of both sets) is the comparable one.
- MMD^2 with an RBF kernel (biased V-statistic, so identical sets give exactly 0); the bandwidth is
  the median pairwise distance *within the source set*, fixed by the source alone so the value grows
  monotonically as the target drifts away (a pooled median would grow with the shift and hide it).
- Proxy A-distance: a linear domain classifier (standardized features, Ledoit-Wolf shrinkage LDA:
  closed form, well-posed with fewer images than channels) scored on held-out folds; PAD = 2 (1 - 2 err), ~0 when the domains cannot be told apart, 2 when they
  separate perfectly.

Example:
    >>> fd = frechet_distance(feats_synthetic, feats_real); pad, acc = proxy_a_distance(fs, fr)
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.distance import cdist, pdist
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = ["frechet_distance", "frechet_normalized", "mmd2", "proxy_a_distance", "embed_2d", "latent_gap", "extract_features"]


def _as2d(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"{name}: need an (N >= 2, C) feature array, got shape {x.shape}")
    return x


def _centered(x: np.ndarray) -> np.ndarray:
    """Centered samples scaled so that X^T X is the (unbiased) covariance."""
    return (x - x.mean(0)) / np.sqrt(max(len(x) - 1, 1))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a (N, C) and b (M, C).

    With S_a = A^T A and S_b = B^T B (A, B the scaled centered samples), the eigenvalues of
    S_a^1/2 S_b S_a^1/2 are the squared singular values of A B^T, so the cross term is the nuclear
    norm of an N x M matrix: exact, and cheap when there are fewer images than feature channels.
    """
    a, b = _as2d(a, "a"), _as2d(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature widths differ: {a.shape[1]} vs {b.shape[1]}")
    A, B = _centered(a), _centered(b)
    if len(a) * len(b) <= a.shape[1] ** 2:
        cross = float(np.linalg.svd(A @ B.T, compute_uv=False).sum())
    else:  # many images, few channels: the C x C form is the smaller problem
        w, v = np.linalg.eigh(A.T @ A)
        root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        m = root @ (B.T @ B) @ root
        cross = float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum())
    value = float(((a.mean(0) - b.mean(0)) ** 2).sum() + (A ** 2).sum() + (B ** 2).sum() - 2 * cross)
    return max(value, 0.0)


def frechet_normalized(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance divided by the total feature variance Tr(S_a) + Tr(S_b): scale-free, so models
    whose features live at different scales (e.g. before and after AdaBN) can be compared."""
    a, b = _as2d(a, "a"), _as2d(b, "b")
    scale = float((_centered(a) ** 2).sum() + (_centered(b) ** 2).sum())  # Tr(S_a) + Tr(S_b)
    return frechet_distance(a, b) / scale if scale > 0 else 0.0


def mmd2(a: np.ndarray, b: np.ndarray, bandwidth: float | None = None) -> float:
    """Squared MMD with an RBF kernel (biased estimate, >= 0; exactly 0 for identical sets).

    Args:
        a: source features (N, C); also sets the default bandwidth.
        b: target features (M, C).
        bandwidth: kernel width sigma; default = median pairwise distance within `a`.
    """
    a, b = _as2d(a, "a"), _as2d(b, "b")
    if bandwidth is None:
        d = pdist(a)
        bandwidth = float(np.median(d[d > 0])) if (d > 0).any() else 1.0
    gamma = 1.0 / (2 * bandwidth ** 2)
    k_aa = np.exp(-gamma * cdist(a, a, "sqeuclidean")).mean()
    k_bb = np.exp(-gamma * cdist(b, b, "sqeuclidean")).mean()
    k_ab = np.exp(-gamma * cdist(a, b, "sqeuclidean")).mean()
    return max(float(k_aa + k_bb - 2 * k_ab), 0.0)


def proxy_a_distance(a: np.ndarray, b: np.ndarray, folds: int = 5, seed: int = 0) -> tuple[float, float]:
    """(proxy A-distance, held-out domain accuracy) of a linear classifier separating a from b."""
    a, b = _as2d(a, "a"), _as2d(b, "b")
    x = np.concatenate([a, b])
    y = np.r_[np.zeros(len(a)), np.ones(len(b))]
    k = max(2, min(folds, len(a), len(b)))
    # shrinkage LDA: a linear classifier in closed form (no iterations), well-posed with N << C
    clf = make_pipeline(StandardScaler(), LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"))
    pred = cross_val_predict(clf, x, y, cv=StratifiedKFold(k, shuffle=True, random_state=seed))
    # balanced accuracy: chance is 0.5 even when the two sets differ in size
    acc = float(0.5 * ((pred[y == 0] == 0).mean() + (pred[y == 1] == 1).mean()))
    return 2.0 * (1.0 - 2.0 * (1.0 - acc)), acc


def embed_2d(*sets: np.ndarray) -> list[np.ndarray]:
    """PCA of the pooled, standardized features to 2-D (deterministic); one (N_i, 2) array per set."""
    x = np.concatenate([_as2d(s, f"set {i}") for i, s in enumerate(sets)])
    z = StandardScaler().fit_transform(x)
    y = PCA(n_components=min(2, z.shape[1]), random_state=0).fit_transform(z)
    if y.shape[1] == 1:
        y = np.c_[y, np.zeros(len(y))]
    out, start = [], 0
    for s in sets:
        out.append(y[start:start + len(s)])
        start += len(s)
    return out


def latent_gap(a: np.ndarray, b: np.ndarray, seed: int = 0) -> dict[str, float]:
    """All latent gap measures between source features a and target features b."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # small matrices: BLAS threads only contend with torch for the cores
        return _latent_gap(a, b, seed)


def _latent_gap(a: np.ndarray, b: np.ndarray, seed: int) -> dict[str, float]:
    pad, acc = proxy_a_distance(a, b, seed=seed)
    return {"frechet": frechet_distance(a, b), "frechet_normalized": frechet_normalized(a, b), "mmd2": mmd2(a, b),
            "domain_accuracy": acc, "proxy_a_distance": pad}


@torch.no_grad()
def extract_features(model: torch.nn.Module, images: np.ndarray, device: str = "cpu",
                     batch_size: int = 16) -> np.ndarray:
    """Pooled deepest encoder features (N, C) of uint8 images, via the TRAIN helper's contract."""
    from sim2real.train.models import encoder_features, preprocess

    feats = []
    for s in range(0, len(images), batch_size):
        x = preprocess(np.ascontiguousarray(images[s:s + batch_size]), device)
        feats.append(encoder_features(model, x).float().cpu().numpy())
    return np.concatenate(feats) if feats else np.zeros((0, 0))

"""Colour/style normalization methods, picked by name: none, fda, histogram, reinhard, pda.

Each method is `fit` once on a set of reference images (its statistics are computed there, once
per target) and then `apply`s to any number of images in batches. Nothing is specific to the
direction: fit on real images and apply to synthetic ones (training), or fit on synthetic and apply
to real ones (test-time normalization toward the source).

- `none`: identity (the baseline).
- `fda`: Fourier Domain Adaptation (Yang & Soatto, CVPR 2020): the low-frequency amplitude of each
  image's spectrum is replaced by the mean amplitude of the references; phase (content) is kept.
- `histogram`: per-channel histogram matching of each image to the pooled reference histogram.
- `reinhard`: Reinhard et al. 2001 colour transfer: each image's Lab mean/std -> the references'.
- `pda`: albumentations' PixelDistributionAdaptation (its `DomainAdapter`): each image's pixels are
  whitened by a transform fitted on them (PCA / standard / min-max) and mapped back through the
  same transform fitted once on all reference pixels.

Example:
    >>> m = get_method("reinhard").fit(real_images)        # uint8 (N, H, W, 3)
    >>> styled = m.apply(synthetic_images)                  # uint8, same shape
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

__all__ = ["StyleMethod", "METHODS", "get_method", "method_from_config", "rgb_to_lab", "lab_to_rgb"]


def _check(images: np.ndarray, what: str) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    if len(images) == 0:
        raise ValueError(f"{what}: no images")
    return images


def rgb_to_lab(images: np.ndarray) -> np.ndarray:
    """uint8 sRGB (..., 3) -> float32 CIE Lab (D65)."""
    from skimage.color import rgb2lab

    return rgb2lab(images.astype(np.float32) / 255.0, channel_axis=-1).astype(np.float32)


# sRGB (D65) <-> CIE XYZ, as in skimage.color
_RGB2XYZ = np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                     [0.019334, 0.119193, 0.950227]])
_WHITE = np.array([0.95047, 1.0, 1.08883])
_XYZ2LIN = (np.linalg.inv(_RGB2XYZ) * _WHITE[None, :]).T.astype(np.float32)
_mid = (np.arange(255) + 0.5) / 255.0
# linear-light values halfway between consecutive sRGB levels: searchsorted = nearest level, no pow()
_LEVEL_EDGES = np.where(_mid > 0.04045, ((_mid + 0.055) / 1.055) ** 2.4, _mid / 12.92).astype(np.float32)
_D = 6.0 / 29.0


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """float CIE Lab (..., 3) -> uint8 sRGB (nearest level; out-of-gamut colours clipped).

    Same result as skimage's lab2rgb + rounding (within one level), about 1.5x faster, and exact on
    the round trip of `rgb_to_lab`.
    """
    lab = np.asarray(lab, dtype=np.float32)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], -1)
    xyz = np.where(f > _D, f ** 3, 3.0 * _D * _D * (f - 4.0 / 29.0))
    lin = np.maximum(xyz, 0.0) @ _XYZ2LIN
    return np.searchsorted(_LEVEL_EDGES, lin).astype(np.uint8)


class StyleMethod:
    """Base class: `fit(references)` once, then `apply(images)` in batches of `batch_size`."""

    name = "base"

    def __init__(self, batch_size: int = 128):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.fitted = False

    def fit(self, references: np.ndarray) -> StyleMethod:
        """Compute the target statistics from reference images (uint8 (N, H, W, 3))."""
        self._fit(_check(references, f"{self.name}: reference images"))
        self.fitted = True
        return self

    def apply(self, images: np.ndarray) -> np.ndarray:
        """Move images (uint8 (N, H, W, 3)) toward the fitted target; returns uint8, same shape."""
        if not self.fitted:
            raise RuntimeError(f"style method {self.name!r}: call fit(reference_images) before apply()")
        images = _check(images, f"{self.name}: images")
        out = np.empty_like(images)
        for start in range(0, len(images), self.batch_size):
            sl = slice(start, start + self.batch_size)
            out[sl] = self._apply(images[sl])
        return out

    def _fit(self, references: np.ndarray) -> None:
        raise NotImplementedError

    def _apply(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class NoStyle(StyleMethod):
    """Identity: the baseline every method is compared against."""

    name = "none"

    def _fit(self, references: np.ndarray) -> None:
        pass

    def _apply(self, images: np.ndarray) -> np.ndarray:
        return images.copy()


class Reinhard(StyleMethod):
    """Lab mean/std transfer (Reinhard et al. 2001); target statistics pooled over all references."""

    name = "reinhard"

    def _fit(self, references: np.ndarray) -> None:
        lab = np.concatenate([rgb_to_lab(references[i:i + 64]).reshape(-1, 3)
                              for i in range(0, len(references), 64)])
        self.mean = lab.mean(0)
        self.std = lab.std(0)

    def _apply(self, images: np.ndarray) -> np.ndarray:
        lab = rgb_to_lab(images)
        mu = lab.mean(axis=(1, 2), keepdims=True)
        sd = lab.std(axis=(1, 2), keepdims=True)
        # a flat channel (e.g. a grey image's a/b) keeps its offset, it is not blown up
        scale = np.where(sd > 1e-3, self.std / np.maximum(sd, 1e-3), 1.0)
        return lab_to_rgb((lab - mu) * scale + self.mean)


class HistogramMatching(StyleMethod):
    """Per-channel histogram matching of each image to the pooled histogram of all references."""

    name = "histogram"

    def _fit(self, references: np.ndarray) -> None:
        hist = np.stack([np.bincount(references[..., c].ravel(), minlength=256) for c in range(3)])
        self.target_cdf = np.cumsum(hist, 1) / hist.sum(1, keepdims=True)  # (3, 256)

    def _apply(self, images: np.ndarray) -> np.ndarray:
        n = len(images)
        # every image's three channel histograms in one bincount
        offsets = (np.arange(n)[:, None, None, None] * 3 + np.arange(3)) * 256
        hist = np.bincount((images.astype(np.int64) + offsets).ravel(), minlength=n * 3 * 256)
        hist = hist.reshape(n, 3, 256)
        # mid-rank CDF: a level's pixels map to the target level at the middle of their quantile range
        cdf = (np.cumsum(hist, 2) - 0.5 * hist) / hist.sum(2, keepdims=True)
        levels = np.arange(256, dtype=np.float64)
        lut = np.empty((n, 3, 256), np.uint8)
        for c in range(3):
            tgt = self.target_cdf[c]
            for i in range(n):
                lut[i, c] = np.clip(np.rint(np.interp(cdf[i, c], tgt, levels)), 0, 255)
        return lut[np.arange(n)[:, None, None, None], np.arange(3), images]


class FDA(StyleMethod):
    """Fourier Domain Adaptation: swap the low-frequency amplitude with the references' mean amplitude.

    Args:
        beta: half-size of the swapped window as a share of min(H, W): the frequencies
            |fy|, |fx| <= floor(beta * min(H, W)) are swapped (beta=0 swaps only the mean colour).
        batch_size: images per batch.
    """

    name = "fda"

    def __init__(self, beta: float = 0.03, batch_size: int = 128):
        super().__init__(batch_size)
        if not 0.0 <= beta <= 0.5:
            raise ValueError(f"fda beta must be in [0, 0.5], got {beta}")
        self.beta = beta
        self._amp: dict[tuple[int, int], np.ndarray] = {}

    def _fit(self, references: np.ndarray) -> None:
        self.references = references
        self._amp = {}
        self._amplitude(references.shape[1:3])

    def _amplitude(self, hw: tuple[int, int]) -> np.ndarray:
        """Mean amplitude spectrum of the references at size hw (computed once per size)."""
        if hw not in self._amp:
            import scipy.fft

            refs = self.references
            if refs.shape[1:3] != hw:
                refs = np.stack([np.asarray(Image.fromarray(r).resize((hw[1], hw[0]), Image.BILINEAR))
                                 for r in refs])
            total = np.zeros((hw[0], hw[1] // 2 + 1, 3), np.float64)
            for i in range(0, len(refs), 64):
                spec = scipy.fft.rfft2(refs[i:i + 64].astype(np.float32), axes=(1, 2), workers=1)
                total += np.abs(spec).sum(0)
            self._amp[hw] = (total / len(refs)).astype(np.float32)
        return self._amp[hw]

    def window(self, hw: tuple[int, int]) -> np.ndarray:
        """(H, W // 2 + 1) bool: the swapped low frequencies |fy|, |fx| <= b (real-FFT layout)."""
        b = int(np.floor(min(hw) * self.beta))
        fy = np.abs(np.fft.fftfreq(hw[0]) * hw[0])
        fx = np.fft.rfftfreq(hw[1]) * hw[1]
        return (fy[:, None] <= b) & (fx[None, :] <= b)

    def _apply(self, images: np.ndarray) -> np.ndarray:
        import scipy.fft

        hw = images.shape[1:3]
        amp_t = self._amplitude(hw)
        win = self.window(hw)
        # real FFT: half the spectrum (the other half is its mirror); only the window's bins change
        spec = scipy.fft.rfft2(images.astype(np.float32), axes=(1, 2), workers=1)
        low = spec[:, win]  # (N, k, 3)
        spec[:, win] = amp_t[win][None] * np.exp(1j * np.angle(low))
        out = scipy.fft.irfft2(spec, s=hw, axes=(1, 2), workers=1)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)


class PixelDistribution(StyleMethod):
    """albumentations PixelDistributionAdaptation with the reference transform fitted once.

    albumentations' transform fits the reference on every call (and resizes it to the input image);
    its `DomainAdapter` is used here directly with all reference pixels, so the target is fitted once
    (and the uint8 scaling bug of albumentations 2.0.8's blend step is avoided, see `_apply`).

    Args:
        transform_type: pca | standard | minmax.
        batch_size: images per batch.
    """

    name = "pda"

    def __init__(self, transform_type: str = "pca", batch_size: int = 128):
        super().__init__(batch_size)
        if transform_type not in ("pca", "standard", "minmax"):
            raise ValueError(f"pda transform_type must be one of ['pca', 'standard', 'minmax'], got "
                             f"{transform_type!r}")
        self.transform_type = transform_type

    def _fit(self, references: np.ndarray) -> None:
        from albumentations.augmentations.mixing.domain_adaptation_functional import (
            DomainAdapter,
            MinMaxScaler,
            StandardScaler,
        )
        from albumentations.augmentations.utils import PCA

        transformer = {"pca": PCA, "standard": StandardScaler, "minmax": MinMaxScaler}[self.transform_type]()
        # DomainAdapter flattens to (pixels, 3): stacking the references into one tall image pools them
        mosaic = np.ascontiguousarray(references.reshape(-1, references.shape[2], 3))
        self.adapter = DomainAdapter(transformer=transformer, ref_img=mosaic)

    def _apply(self, images: np.ndarray) -> np.ndarray:
        # the adapter works on [0, 1] floats and returns them (clipped below 0 only); albumentations
        # 2.0.8's own adapt_pixel_distribution blends that with the [0, 255] input and casts to uint8,
        # which gives all-black images for uint8 input (checked in tests/test_style.py)
        out = np.stack([self.adapter(img) for img in images])
        return np.clip(np.rint(np.clip(out, 0.0, 1.0) * 255.0), 0, 255).astype(np.uint8)


METHODS: dict[str, type[StyleMethod]] = {
    m.name: m for m in (NoStyle, FDA, HistogramMatching, Reinhard, PixelDistribution)
}


def get_method(name: str, **kwargs: Any) -> StyleMethod:
    """A style method by name.

    Args:
        name: none | fda | histogram | reinhard | pda.
        **kwargs: the method's options (fda: beta; pda: transform_type; all: batch_size).

    Raises:
        ValueError: for an unknown name (lists the choices) or an option the method does not take.
    """
    try:
        cls = METHODS[name]
    except KeyError:
        raise ValueError(f"unknown style method {name!r}; choose one of {sorted(METHODS)}") from None
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ValueError(f"style method {name!r}: bad options {sorted(kwargs)} ({err})") from None


def method_from_config(name: str, style: Any) -> StyleMethod:
    """A method with its options from the `style:` config section."""
    options: dict[str, dict[str, Any]] = {"fda": {"beta": style.fda_beta},
                                          "pda": {"transform_type": style.pda_transform}}
    return get_method(name, batch_size=style.batch_size, **options.get(name, {}))

"""Online augmentation picks the faster path per device; the CPU path (albumentations) is reproducible."""

from __future__ import annotations

import pytest
import torch

from sim2real.augment import AlbumentationsAugmenter, Augmenter, online_augmentation
from sim2real.config.augment import AugmentConfig
from sim2real.taxonomy import VOID


def _batch(n: int = 4, h: int = 32, w: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, h, w, generator=g), torch.randint(0, 11, (n, h, w), generator=g)


def test_backend_per_device_and_override() -> None:
    assert isinstance(online_augmentation(AugmentConfig(), "cpu"), AlbumentationsAugmenter)
    assert isinstance(online_augmentation(AugmentConfig(), "cuda:0"), Augmenter)
    assert isinstance(online_augmentation(AugmentConfig(online_backend="kornia"), "cpu"), Augmenter)
    assert isinstance(online_augmentation(AugmentConfig(online_backend="albumentations"), "cuda"),
                      AlbumentationsAugmenter)


def test_albumentations_path_is_seeded_by_torch_rng_and_keeps_labels_valid() -> None:
    aug = AlbumentationsAugmenter(AugmentConfig(affine_p=1.0, perspective_p=1.0, color_jitter_p=1.0))
    x, y = _batch()
    torch.manual_seed(5)
    a = aug(x, y)
    torch.manual_seed(5)
    b = aug(x, y)
    torch.manual_seed(6)
    c = aug(x, y)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])  # the training loop seeds torch per step
    assert not torch.equal(a[0], c[0])
    xo, yo = a
    assert xo.shape == x.shape and xo.dtype == torch.float32 and 0.0 <= xo.min() and xo.max() <= 1.0
    assert yo.shape == y.shape and yo.dtype == torch.long
    assert set(yo.unique().tolist()) <= set(range(VOID + 1))
    assert (yo == VOID).any()  # the warps pull pixels in from outside: void, never a made-up class


def test_albumentations_path_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"masks must be \(N,H,W\)"):
        AlbumentationsAugmenter(AugmentConfig())(torch.rand(2, 3, 8, 8), torch.zeros(2, 8, 9, dtype=torch.long))

"""kornia augmentation on image+mask batches: alignment, no interpolated ids, void, seeding, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sim2real.augment import build_augmentation
from sim2real.config import ConfigError, config_from_dict
from sim2real.config.augment import AugmentConfig
from sim2real.taxonomy import PALETTE, VOID

GEOMETRIC_ONLY = dict(color_jitter_p=0.0, gamma_p=0.0, blur_p=0.0, noise_p=0.0, motion_blur_p=0.0)
ALWAYS = dict(hflip_p=0.5, affine_p=1.0, perspective_p=1.0, crop_p=1.0)


def _blocks(n: int = 6, h: int = 48, w: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks of random rectangles of ids 0..10; images coloured by the id (a known pattern)."""
    rng = np.random.default_rng(0)
    masks = np.zeros((n, h, w), np.int64)
    for i in range(n):
        for _ in range(12):
            y0, x0 = rng.integers(0, h - 8), rng.integers(0, w - 8)
            masks[i, y0:y0 + rng.integers(6, 20), x0:x0 + rng.integers(6, 24)] = rng.integers(0, 11)
    images = torch.as_tensor(PALETTE[masks].astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()
    return images, torch.as_tensor(masks)


def test_image_and_mask_stay_aligned():
    aug = build_augmentation(AugmentConfig(**GEOMETRIC_ONLY, **ALWAYS))
    images, masks = _blocks()
    out, om = aug(images, masks, seed=1)
    assert out.shape == images.shape and om.shape == masks.shape and om.dtype == torch.long
    assert not torch.equal(om, masks)  # something moved
    valid = om != VOID
    pal = torch.as_tensor(PALETTE[:VOID].astype(np.float32) / 255.0)
    # which class colour is each augmented image pixel closest to? it must be the mask's id
    dist = ((out.permute(0, 2, 3, 1)[..., None, :] - pal) ** 2).sum(-1)
    agree = ((dist.argmin(-1) == om) & valid).sum() / valid.sum()
    # only boundary pixels may disagree (bilinear image vs nearest mask)
    assert agree > 0.9
    # the check is sensitive: the same mask shifted by 2 pixels agrees far less
    shifted = ((dist.argmin(-1) == torch.roll(om, 2, dims=2)) & valid).sum() / valid.sum()
    assert shifted < agree - 0.05


def test_masks_never_gain_interpolated_ids():
    aug = build_augmentation(AugmentConfig(**ALWAYS))
    rng = np.random.default_rng(1)
    masks = torch.as_tensor(rng.choice([0, 10], size=(8, 40, 56)))
    images = torch.rand(8, 3, 40, 56)
    out, om = aug(images, masks, seed=2)
    assert set(om.unique().tolist()) <= {0, 10, VOID}
    assert out.min() >= 0 and out.max() <= 1


def test_pixels_from_outside_become_void():
    cfg = AugmentConfig(**GEOMETRIC_ONLY, hflip_p=0.0, crop_p=0.0, perspective_p=0.0, affine_p=1.0,
                        affine_translate=0.3, affine_degrees=20.0)
    images, masks = _blocks()
    _, om = build_augmentation(cfg)(images, masks, seed=3)
    assert (om == VOID).float().mean() > 0.02
    assert not (masks == VOID).any()


def test_seeded_draws_are_reproducible_and_leave_the_global_rng():
    aug = build_augmentation(AugmentConfig())
    images, masks = _blocks()
    state = torch.get_rng_state()
    a = aug(images, masks, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    b = aug(images, masks, seed=5)
    c = aug(images, masks, seed=6)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_all_off_is_identity():
    off = dict(hflip_p=0.0, affine_p=0.0, perspective_p=0.0, crop_p=0.0, **GEOMETRIC_ONLY)
    images, masks = _blocks(2)
    out, om = build_augmentation(AugmentConfig(**off))(images, masks, seed=0)
    assert torch.allclose(out, images) and torch.equal(om, masks)


def test_bad_values_name_the_key():
    with pytest.raises(ConfigError, match="augment.motion_blur_kernel"):
        config_from_dict({"augment": {"motion_blur_kernel": 4}})
    with pytest.raises(ConfigError, match="augment.hflip_p"):
        config_from_dict({"augment": {"hflip_p": 2}})
    with pytest.raises(ConfigError, match="augment.gamma"):
        config_from_dict({"augment": {"gamma": [1.5, 0.5]}})
    with pytest.raises(ValueError, match="masks"):
        build_augmentation(AugmentConfig())(torch.rand(2, 3, 8, 8), torch.zeros(2, 8, 9, dtype=torch.long))

"""kornia augmentation on image+mask batches: alignment, no interpolated ids, void, seeding, errors."""

from __future__ import annotations

import math

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


def test_color_jitter_is_kornias_brightness_contrast_saturation_in_any_order_and_turns_hue_the_same_way():
    """The fused colour matrix against kornia's step-by-step formulas (inside [0, 1], where no step clamps)."""
    from kornia.enhance import (
        adjust_brightness_accumulative,
        adjust_contrast_with_mean_subtraction,
        adjust_hue,
        adjust_saturation_with_gray_subtraction,
    )

    from sim2real.augment import color_jitter

    torch.manual_seed(0)
    x = torch.rand(4, 3, 20, 30) * 0.5 + 0.25
    b, c, s = torch.tensor([0.9, 1.1, 1.0, 0.95]), torch.tensor([1.1, 0.9, 1.2, 1.0]), torch.tensor([0.8, 1.2, 1.0, 1.25])
    ours = color_jitter(x, b, c, s, torch.zeros(4))
    bcs = adjust_saturation_with_gray_subtraction(adjust_contrast_with_mean_subtraction(
        adjust_brightness_accumulative(x, b), c), s)
    scb = adjust_brightness_accumulative(adjust_contrast_with_mean_subtraction(
        adjust_saturation_with_gray_subtraction(x, s), c), b)
    assert (ours - bcs).abs().max() < 1e-5 and (ours - scb).abs().max() < 1e-5
    assert (ours - x).abs().mean() > 0.02  # the factors did something
    # hue: the same direction and size as kornia's (torchvision's) HSV shift, not the opposite
    one = torch.ones(4)
    for turns in (0.03, -0.03):
        ref = adjust_hue(x, torch.full((4,), turns * 2 * math.pi)) - x
        mine = color_jitter(x, one, one, one, torch.full((4,), turns)) - x
        cos = ((mine * ref).sum(1) / (mine.norm(dim=1) * ref.norm(dim=1) + 1e-9)).mean()
        assert cos > 0.5, turns
        assert 0.8 < mine.norm(dim=1).mean() / ref.norm(dim=1).mean() < 1.25


def test_warp_moves_by_whole_pixels_exactly_and_marks_what_comes_from_outside():
    """`warp`'s pixel convention: a shift by 3 columns and a mirror are exact, and the uncovered strip is 0."""
    from sim2real.augment import warp

    images, masks = _blocks(2)
    m = (masks + 1).float()[:, None]
    shift = torch.tensor([[1.0, 0.0, 3.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]).repeat(2, 1, 1)
    wi, wm = warp(images, m, shift)
    assert torch.allclose(wi[..., 3:], images[..., :-3], atol=1e-5) and torch.equal(wm[..., 3:], m[..., :-3])
    assert wi[..., :3].abs().max() < 1e-4 and (wm[..., :3] == 0).all()
    w = images.shape[-1]
    mirror = torch.tensor([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]).repeat(2, 1, 1)
    wi, wm = warp(images, m, mirror)
    assert torch.allclose(wi, images.flip(-1), atol=1e-5) and torch.equal(wm, m.flip(-1))


def test_each_op_runs_only_on_the_images_drawn_for_it():
    images = torch.rand(32, 3, 24, 32) * 0.6 + 0.2
    masks = torch.randint(0, 11, (32, 24, 32))
    off = dict(hflip_p=0.0, affine_p=0.0, perspective_p=0.0, crop_p=0.0, **GEOMETRIC_ONLY)
    half = build_augmentation(AugmentConfig(**{**off, "color_jitter_p": 0.5}))
    out, om = half(images, masks, seed=4)
    same = torch.tensor([torch.equal(out[i], images[i]) for i in range(32)])
    assert 4 <= int(same.sum()) <= 28 and torch.equal(om, masks)
    moved = build_augmentation(AugmentConfig(**{**off, "affine_p": 0.5, "affine_translate": 0.2}))
    _, om = moved(images, masks, seed=4)
    kept = torch.tensor([torch.equal(om[i], masks[i]) for i in range(32)])
    assert 4 <= int(kept.sum()) <= 28

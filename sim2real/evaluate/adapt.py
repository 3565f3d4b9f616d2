"""Cheap test-time baselines for a source-only model: no labels, no training.

- `reverse_style`: the style functions run backwards: fit on *source* (synthetic) images, apply to
  the real images, so the model sees real scenes in the colours it was trained on.
- `adabn`: AdaBN (Li et al., 2016): re-estimate every batch-norm layer's running mean/variance on
  unlabelled target images, keep all learned weights.

Example:
    >>> adapted = adabn(model, real_train_images, device="cpu")
    >>> real_as_source = reverse_style("reinhard", synthetic_images, real_images)
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

__all__ = ["reverse_style", "adabn", "ADAPTATIONS"]

ADAPTATIONS = ("none", "adabn", "reverse_<method>")


def reverse_style(method: str, source_images: np.ndarray, target_images: np.ndarray, **kwargs) -> np.ndarray:
    """Target (real) images normalized toward the source (synthetic) style with a style method.

    Args:
        method: a `sim2real.style` method name (e.g. reinhard, histogram, fda, pda).
        source_images: (N, H, W, 3) uint8 source-style references.
        target_images: (M, H, W, 3) uint8 images to restyle.
        **kwargs: passed to `sim2real.style.get_method` (e.g. beta for fda).
    """
    from sim2real.style import get_method

    styler = get_method(method, **kwargs)
    styler.fit(np.ascontiguousarray(source_images))
    out = np.asarray(styler.apply(np.ascontiguousarray(target_images)))
    if out.shape != target_images.shape or out.dtype != np.uint8:
        raise ValueError(f"style method {method!r} returned {out.shape} {out.dtype}, "
                         f"expected {target_images.shape} uint8")
    return out


@torch.no_grad()
def adabn(model: nn.Module, images: np.ndarray, device: str = "cpu", batch_size: int = 16) -> nn.Module:
    """A copy of `model` whose batch-norm statistics are re-estimated on unlabelled `images`.

    Args:
        model: a trained model (left untouched).
        images: (N, H, W, 3) uint8 target images (no labels needed).
        device: where to run.
        batch_size: images per forward pass; the running statistics are a cumulative average over
            all batches (momentum None), so the result does not depend on batch order.
    """
    from sim2real.train.models import preprocess

    if len(images) < 2:
        raise ValueError(f"adabn needs at least 2 unlabelled target images, got {len(images)}")
    adapted = copy.deepcopy(model).to(device).eval()
    bns = [m for m in adapted.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        raise ValueError("adabn: the model has no batch-norm layers")
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average over every batch seen
        bn.train()  # only BN layers switch; dropout and the rest stay in eval mode
    # balanced chunks: a trailing batch of 1 would break BN layers on pooled 1x1 maps (ASPP)
    for chunk in np.array_split(np.arange(len(images)), max(1, -(-len(images) // max(2, batch_size)))):
        adapted(preprocess(np.ascontiguousarray(images[chunk]), device))
    adapted.eval()
    return adapted

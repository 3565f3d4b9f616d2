"""Fast mIoU for model selection: one confusion matrix over a validation set, void ignored.

The evaluation stage (`sim2real.evaluate`) writes the full report; this is what training selects on.

Example:
    >>> cm = confusion(pred, target)          # (11, 11) counts, rows = truth
    >>> miou(cm), per_class_iou(cm)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sim2real.taxonomy import NUM_CLASSES, VOID


def confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Confusion counts (rows = truth, cols = prediction) over pixels whose truth is not void."""
    keep = target != VOID
    t = target[keep].long()
    p = pred[keep].long()
    return torch.bincount(t * num_classes + p, minlength=num_classes * num_classes).view(
        num_classes, num_classes).cpu()


def per_class_iou(cm: torch.Tensor | np.ndarray) -> np.ndarray:
    """IoU per class; NaN for a class absent from both truth and prediction."""
    cm = np.asarray(cm, dtype=np.float64)
    inter = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, np.nan)


def miou(cm: torch.Tensor | np.ndarray) -> float:
    """Mean IoU over the classes present in truth or prediction (0..1)."""
    iou = per_class_iou(cm)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0


def pixel_accuracy(cm: torch.Tensor | np.ndarray) -> float:
    cm = np.asarray(cm, dtype=np.float64)
    return float(np.trace(cm) / max(cm.sum(), 1.0))


@torch.no_grad()
def evaluate(model: nn.Module, images: np.ndarray, masks: np.ndarray, device: str | torch.device,
             batch_size: int = 16, channels_last: bool = False) -> torch.Tensor:
    """Confusion matrix of `model` (put in eval mode by the caller) over uint8 images / masks."""
    from sim2real.train.models import preprocess

    cm = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.long)
    for start in range(0, len(images), batch_size):
        x = preprocess(images[start:start + batch_size], device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.as_tensor(np.asarray(masks[start:start + batch_size]), device=device)
        logits = model(x)
        cm += confusion(logits.argmax(1), y)
    return cm

"""Run a segmentation model over a labelled image set: confusion matrix, per-image loss and scores.

Example:
    >>> result = evaluate_model(model, images, masks, device="cpu", batch_size=16)
    >>> result.scores.miou, result.losses[:3], result.predictions.shape
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sim2real.evaluate.metrics import ConfusionAccumulator, SegScores, per_image_scores, summarize
from sim2real.taxonomy import NUM_CLASSES, VOID

__all__ = ["EvalResult", "evaluate_model"]


@dataclass
class EvalResult:
    scores: SegScores
    losses: np.ndarray  # (N,) mean cross-entropy over non-void pixels (NaN for an all-void image)
    image_miou: np.ndarray  # (N,)
    image_accuracy: np.ndarray  # (N,)
    predictions: np.ndarray  # (N, H, W) uint8 class ids

    @property
    def mean_loss(self) -> float:
        finite = self.losses[np.isfinite(self.losses)]
        return float(finite.mean()) if len(finite) else float("nan")

    def metric_rows(self) -> list[dict]:
        """Rows for the store's `metrics` table (without run/model/split keys)."""
        return [{"name": "miou", "value": self.scores.miou},
                {"name": "pixel_accuracy", "value": self.scores.pixel_accuracy},
                {"name": "mean_loss", "value": self.mean_loss},
                {"name": "images", "value": float(len(self.losses))},
                {"name": "present_classes", "value": float(self.scores.present.sum())}]


@torch.no_grad()
def evaluate_model(model: nn.Module, images: np.ndarray, masks: np.ndarray, device: str = "cpu",
                   batch_size: int = 16) -> EvalResult:
    """Evaluate `model` (eval mode) on uint8 images (N,H,W,3) with masks (N,H,W) (11 = void, ignored).

    Args:
        model: a segmentation model taking `sim2real.train.models.preprocess` input, returning logits.
        images: uint8 images at the model's working resolution.
        masks: ids 0..11.
        device: where to run.
        batch_size: images per forward pass.
    """
    from sim2real.train.models import preprocess

    if len(images) != len(masks):
        raise ValueError(f"{len(images)} images but {len(masks)} masks")
    model.eval()
    acc = ConfusionAccumulator(NUM_CLASSES, VOID)
    losses, mious, accs, preds = [], [], [], []
    for s in range(0, len(images), batch_size):
        x = preprocess(np.ascontiguousarray(images[s:s + batch_size]), device)
        t = torch.as_tensor(np.asarray(masks[s:s + batch_size]), device=device).long()
        logits = model(x)
        if logits.shape[-2:] != t.shape[-2:]:
            raise ValueError(f"model output {tuple(logits.shape[-2:])} does not match masks {tuple(t.shape[-2:])}")
        pixel = F.cross_entropy(logits.float(), t, ignore_index=VOID, reduction="none")  # void pixels -> 0
        valid = (t != VOID).flatten(1).sum(1)
        loss = pixel.flatten(1).sum(1) / valid.clamp(min=1)
        loss = torch.where(valid > 0, loss, torch.full_like(loss, float("nan")))
        p = logits.argmax(1)
        acc.update(p, t)
        m, a = per_image_scores(p, t)
        losses.append(loss.cpu().numpy())
        mious.append(m)
        accs.append(a)
        preds.append(p.to(torch.uint8).cpu().numpy())
    return EvalResult(scores=summarize(acc.matrix), losses=_cat(losses).astype(np.float64),
                      image_miou=_cat(mious), image_accuracy=_cat(accs),
                      predictions=np.concatenate(preds) if preds else np.zeros((0,) + masks.shape[1:], np.uint8))


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0)

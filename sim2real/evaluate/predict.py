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
    features: np.ndarray | None = None  # (N, C) pooled deepest encoder features (when asked for)

    @property
    def mean_loss(self) -> float:
        finite = self.losses[np.isfinite(self.losses)]
        return float(finite.mean()) if len(finite) else float("nan")

    def metric_rows(self) -> list[dict]:
        """Rows for the store's `metrics` table (without run/model/split keys); mIoU and accuracy in points."""
        return [{"name": "miou", "value": 100 * self.scores.miou},
                {"name": "pixel_accuracy", "value": 100 * self.scores.pixel_accuracy},
                {"name": "mean_loss", "value": self.mean_loss},
                {"name": "images", "value": float(len(self.losses))},
                {"name": "present_classes", "value": float(self.scores.present.sum())}]


class _FeatureTap:
    """Pooled deepest encoder features captured during the segmentation forward pass.

    The same numbers as `sim2real.train.models.encoder_features` (the encoder sees the padded input in
    both), without running the encoder a second time.
    """

    def __init__(self, model: nn.Module):
        inner = model.module if hasattr(model, "module") else model
        self.encoder = getattr(inner, "encoder", None)
        self.model = model
        self.batches: list[np.ndarray] = []
        self._seen: torch.Tensor | None = None
        self._handle = self.encoder.register_forward_hook(self._hook) if self.encoder is not None else None

    def _hook(self, module: nn.Module, inputs: tuple, output: list[torch.Tensor]) -> None:
        self._seen = output[-1].float().mean(dim=(2, 3))

    def collect(self, x: torch.Tensor) -> None:
        if self._seen is None:  # no encoder attribute: ask the TRAIN helper's contract directly
            from sim2real.train.models import encoder_features

            self._seen = encoder_features(self.model, x)
        self.batches.append(self._seen.cpu().numpy())
        self._seen = None

    def close(self) -> np.ndarray:
        if self._handle is not None:
            self._handle.remove()
        return np.concatenate(self.batches) if self.batches else np.zeros((0, 0), np.float32)


@torch.no_grad()
def evaluate_model(model: nn.Module, images: np.ndarray, masks: np.ndarray, device: str = "cpu",
                   batch_size: int = 16, features: bool = False) -> EvalResult:
    """Evaluate `model` (eval mode) on uint8 images (N,H,W,3) with masks (N,H,W) (11 = void, ignored).

    Args:
        model: a segmentation model taking `sim2real.train.models.preprocess` input, returning logits.
        images: uint8 images at the model's working resolution.
        masks: ids 0..11.
        device: where to run.
        batch_size: images per forward pass.
        features: also return the pooled deepest encoder features (for the latent gap).
    """
    from sim2real.train.models import preprocess

    if len(images) != len(masks):
        raise ValueError(f"{len(images)} images but {len(masks)} masks")
    model.eval()
    acc = ConfusionAccumulator(NUM_CLASSES, VOID)
    losses, mious, accs, preds = [], [], [], []
    tap = _FeatureTap(model) if features else None
    try:
        for s in range(0, len(images), batch_size):
            x = preprocess(np.ascontiguousarray(images[s:s + batch_size]), device)
            t = torch.as_tensor(np.asarray(masks[s:s + batch_size]), device=device).long()
            logits = model(x)
            if tap is not None:
                tap.collect(x)
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
    finally:
        feats = tap.close() if tap is not None else None
    return EvalResult(scores=summarize(acc.matrix), losses=_cat(losses).astype(np.float64),
                      image_miou=_cat(mious), image_accuracy=_cat(accs),
                      features=feats,
                      predictions=np.concatenate(preds) if preds else np.zeros((0,) + masks.shape[1:], np.uint8))


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0)

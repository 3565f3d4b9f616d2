"""Segmentation metrics from a confusion matrix: per-class IoU, mIoU, pixel accuracy.

Void pixels (truth id 11) are ignored everywhere. A class that appears in neither the prediction
nor the truth has no IoU: it is NaN ("absent") and left out of the mean, never counted as 0 or 1.
A class that appears only in the prediction (false positives, no truth pixels) has IoU 0 and is
counted: the model hallucinated it.

Example:
    >>> cm = confusion_matrix(pred, truth)            # (11, 11), rows = truth, cols = prediction
    >>> s = summarize(cm); s.miou, s.pixel_accuracy, s.iou   # NaN where a class is absent
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sim2real.taxonomy import CLASSES, NUM_CLASSES, VOID

__all__ = ["confusion_matrix", "ConfusionAccumulator", "per_class_iou", "mean_iou", "pixel_accuracy",
           "SegScores", "summarize", "per_image_scores"]


def confusion_matrix(pred: np.ndarray | torch.Tensor, truth: np.ndarray | torch.Tensor,
                     num_classes: int = NUM_CLASSES, ignore: int = VOID) -> np.ndarray:
    """Pixel confusion matrix, rows = truth class, columns = predicted class; `ignore` truth skipped.

    Args:
        pred: predicted ids (any shape), 0..num_classes-1.
        truth: true ids, same shape; pixels equal to `ignore` (default void = 11) are not counted.
        num_classes: number of real classes (default 11).
        ignore: the truth id to skip.

    Returns:
        (num_classes, num_classes) int64 counts.
    """
    acc = ConfusionAccumulator(num_classes, ignore)
    acc.update(pred, truth)
    return acc.matrix


class ConfusionAccumulator:
    """Adds up a confusion matrix batch by batch, on whatever device the tensors live."""

    def __init__(self, num_classes: int = NUM_CLASSES, ignore: int = VOID):
        self.num_classes = num_classes
        self.ignore = ignore
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, pred: np.ndarray | torch.Tensor, truth: np.ndarray | torch.Tensor) -> np.ndarray:
        """Add one batch; returns that batch's own matrix."""
        p = torch.as_tensor(pred).long()
        t = torch.as_tensor(truth, device=p.device).long()
        _validate_t(p, t, self.num_classes)
        keep = t != self.ignore
        idx = t[keep] * self.num_classes + p[keep]
        cm = torch.bincount(idx, minlength=self.num_classes ** 2).reshape(self.num_classes, self.num_classes)
        cm = cm.cpu().numpy().astype(np.int64)
        self.matrix += cm
        return cm


def _validate_t(p: torch.Tensor, t: torch.Tensor, num_classes: int) -> None:
    if p.shape != t.shape:
        raise ValueError(f"prediction shape {tuple(p.shape)} differs from truth shape {tuple(t.shape)}")
    if p.numel():
        lo, hi = int(p.min()), int(p.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"predicted ids must be 0..{num_classes - 1}, found {lo}..{hi}")
        tlo, thi = int(t.min()), int(t.max())
        if tlo < 0 or thi > VOID:
            raise ValueError(f"truth ids must be 0..{VOID} ({VOID} = void), found {tlo}..{thi}")


def per_class_iou(cm: np.ndarray) -> np.ndarray:
    """IoU per class = TP / (TP + FP + FN); NaN for a class absent from both truth and prediction."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    denom = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / np.where(denom > 0, denom, 1), np.nan)


def mean_iou(cm: np.ndarray) -> float:
    """Mean IoU over the classes present in truth or prediction; NaN when there are none."""
    iou = per_class_iou(cm)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def pixel_accuracy(cm: np.ndarray) -> float:
    """Correct non-void pixels / all non-void pixels; NaN when no pixel was counted."""
    total = np.asarray(cm).sum()
    return float(np.trace(cm) / total) if total else float("nan")


@dataclass
class SegScores:
    """Everything the report needs from one confusion matrix."""

    matrix: np.ndarray
    iou: np.ndarray  # per class, NaN = absent
    miou: float
    pixel_accuracy: float
    class_accuracy: np.ndarray  # recall per class, NaN when the class has no truth pixels

    @property
    def present(self) -> np.ndarray:
        return np.isfinite(self.iou)

    def class_rows(self, names: tuple[str, ...] = CLASSES) -> list[dict]:
        """One dict per class (IoU in points; NaN -> None, 'absent' flag) for tables and the store."""
        cm = self.matrix
        tp = np.diag(cm)
        rows = []
        for c, name in enumerate(names[: len(self.iou)]):
            present = bool(np.isfinite(self.iou[c]))
            rows.append({"class_id": c, "class_name": name,
                         "iou": 100 * float(self.iou[c]) if present else None, "present": present,
                         "tp": int(tp[c]), "fp": int(cm[:, c].sum() - tp[c]),
                         "fn": int(cm[c, :].sum() - tp[c])})
        return rows


def summarize(cm: np.ndarray) -> SegScores:
    """Confusion matrix -> per-class IoU, mIoU, pixel accuracy and per-class recall."""
    cm = np.asarray(cm, dtype=np.int64)
    truth = cm.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(truth > 0, np.diag(cm) / np.where(truth > 0, truth, 1), np.nan)
    return SegScores(matrix=cm, iou=per_class_iou(cm), miou=mean_iou(cm),
                     pixel_accuracy=pixel_accuracy(cm), class_accuracy=recall)


def per_image_scores(pred: torch.Tensor, truth: torch.Tensor, num_classes: int = NUM_CLASSES,
                     ignore: int = VOID) -> tuple[np.ndarray, np.ndarray]:
    """Per-image mIoU and pixel accuracy for a batch (N,H,W) (NaN for an all-void image)."""
    miou, acc = [], []
    for p, t in zip(pred, truth, strict=True):
        s = summarize(ConfusionAccumulator(num_classes, ignore).update(p, t))
        miou.append(s.miou)
        acc.append(s.pixel_accuracy)
    return np.asarray(miou, dtype=np.float64), np.asarray(acc, dtype=np.float64)

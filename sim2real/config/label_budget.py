"""`label_budget:` section: the label-budget curve (real mIoU against the number of real labels N).

For each N in `sizes` and each seed in `seeds`, two arms train from the same start weights:
- synthetic + N: the pretrained model (`style.method`) fine-tuned on N real images;
- real-only: the pretraining start weights trained on the same N images, with at least the
  synthetic arm's total optimizer steps (pretraining + fine-tuning).
Both select their best checkpoint on real val and are scored once on real test.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator

from sim2real.config.base import Section

Size = int | Literal["all"]


class LabelBudgetConfig(Section):
    # N real labelled images per point of the curve; "all" = the whole real train pool
    # -S 'label_budget.sizes=[10,all]'
    sizes: list[Size] = Field(default_factory=lambda: [5, 10, 25, 50, "all"], min_length=1)
    # one run of each arm per seed (data order, augmentation, the N-image draw); mean and spread reported
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    # fine-tuning steps scale with N: clip(steps_per_image x N, min_steps, max_steps)
    steps_per_image: float = Field(32.0, gt=0)
    min_steps: int = Field(160, ge=1)
    max_steps: int = Field(1600, ge=1)
    # real-only budget: null = pretrain.steps + fine-tuning steps(N), the fair minimum. A number
    # below that minimum at any N is an error: a short real-only baseline fakes a gain (REFERENCE.md)
    real_only_steps: int | None = Field(None, ge=1)
    # validations per run (both arms): the best checkpoint on real val is kept
    evals_per_run: int = Field(8, ge=1)
    # stop a run after this many validations without improvement (0 = train the whole budget)
    patience: int = Field(0, ge=0)

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, v: list[Size]) -> list[Size]:
        for n in v:
            if n != "all" and n < 1:
                raise ValueError(f"sizes must be >= 1 or 'all', got {n}")
        if len({str(n) for n in v}) != len(v):
            raise ValueError(f"duplicate sizes: {v}")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if any(s < 0 for s in v) or len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct and >= 0, got {v}")
        return v

    def finetune_steps(self, n: int) -> int:
        """Fine-tuning steps at N real images (more labels, more steps to converge)."""
        return int(min(self.max_steps, max(self.min_steps, math.ceil(self.steps_per_image * n))))

    def real_only_budget(self, pretrain_steps: int, n: int) -> int:
        """Real-only steps at N: never fewer than the synthetic arm's pretraining + fine-tuning steps."""
        fair = pretrain_steps + self.finetune_steps(n)
        return max(fair, self.real_only_steps or 0)

    def eval_every(self, steps: int) -> int:
        return max(1, math.ceil(steps / self.evals_per_run))

"""`transfer:` section: the layer-wise transferability ablation (stages `transfer_ablation`, `transfer_curve`).

For each k in `frozen` and each seed in `seeds`, the model is fine-tuned on the N few-shot real images
with encoder stages 1..k frozen (k = 0: nothing frozen), twice: from the synthetic-pretrained model
(`style.method`) and from the ImageNet-only initialisation (`model.encoder_weights`, no synthetic data).
Each run keeps its best checkpoint on real val; the curve plots real-val mIoU against k.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from sim2real.config.base import Section


class TransferConfig(Section):
    # k = encoder stages 1..k frozen (0 = none); efficientnet-lite0 has 5 stages  -S 'transfer.frozen=[0,1,2,3,4,5]'
    frozen: list[int] = Field(default_factory=lambda: [0, 3, 5], min_length=1)
    # one run per init per seed (data order, head init of the ImageNet arm); mean and spread over seeds
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    # fine-tuning optimizer steps per run (both inits); lr and batch size are finetune.lr / finetune.batch_size
    steps: int = Field(20, ge=1)
    # validations on real val per run; the best one is kept
    evals_per_run: int = Field(1, ge=1)

    @field_validator("frozen", "seeds")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        if any(x < 0 for x in v) or len(set(v)) != len(v):
            raise ValueError(f"values must be distinct and >= 0, got {v}")
        return v

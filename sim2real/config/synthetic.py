"""`synthetic:` section: the procedural scene generator and its domain randomization knobs."""

from __future__ import annotations

from pydantic import Field

from sim2real.config.base import Section


class SyntheticConfig(Section):
    num_train: int = Field(512, ge=1)  # scenes for pretraining
    num_val: int = Field(64, ge=1)  # held-out synthetic scenes (synthetic-val mIoU)
    seed: int = 0  # dataset seed; sample i's seed derives from (seed, i)
    shard_size: int = Field(256, ge=1)  # scenes per shard file (keeps DVC file counts low)
    batch_size: int = Field(64, ge=1)  # scenes rendered per vectorised batch

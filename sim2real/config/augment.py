"""`augment:` section: kornia augmentation (materialized set and online in training)."""

from __future__ import annotations

from pydantic import Field

from sim2real.config.base import Section


class AugmentConfig(Section):
    copies: int = Field(1, ge=1)  # augmented copies of each synthetic scene
    batch_size: int = Field(64, ge=1)
    hflip_p: float = Field(0.5, ge=0.0, le=1.0)
    online: bool = True  # also augment batches on the fly during pretraining

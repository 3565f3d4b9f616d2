"""`style:` section: colour/style normalization of synthetic scenes toward the real target."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sim2real.config.base import Section

StyleMethod = Literal["none", "fda", "histogram", "reinhard", "pda"]


class StyleConfig(Section):
    method: StyleMethod = "reinhard"  # used by the main chain  -S style.method=fda
    # one styled set + pretrained model each (a DVC matrix / Dagster partition over the method name)
    ablation: list[StyleMethod] = Field(["none", "reinhard"], min_length=1)
    # FDA: half-size of the swapped low-frequency window as a share of min(H, W); 0 swaps only the
    # mean colour (the DC term). At 96x128, 0.03 = a 5x5 window.  -S style.fda_beta=0.05
    fda_beta: float = Field(0.03, ge=0.0, le=0.5)
    # PixelDistributionAdaptation's statistical transform (albumentations): pca | standard | minmax
    pda_transform: Literal["pca", "standard", "minmax"] = "pca"
    # real images the style comes from: few_shot = the N labelled images; unlabelled = all real train
    # images, labels unused
    references: Literal["few_shot", "unlabelled"] = "few_shot"
    batch_size: int = Field(128, ge=1)  # images styled per batch

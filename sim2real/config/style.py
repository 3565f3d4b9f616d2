"""`style:` section: colour/style normalization of synthetic scenes toward the real target."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sim2real.config.base import Section

StyleMethod = Literal["none", "fda", "histogram", "reinhard", "pda"]


class StyleConfig(Section):
    method: StyleMethod = "reinhard"  # used by the main chain
    ablation: list[StyleMethod] = ["none", "reinhard"]  # one styled set + pretrained model each
    fda_beta: float = Field(0.01, gt=0.0, le=0.5)
    references: Literal["few_shot", "unlabelled"] = "few_shot"  # real images the style comes from

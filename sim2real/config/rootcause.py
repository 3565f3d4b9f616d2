"""`rootcause:` section: root-cause checks (stage `root_causes`).

Root-cause checks: each named intervention (`sim2real.rootcause.interventions`) removes one suspected
trait from the real target images (or picks a subset), the same source-only model is re-evaluated,
and the mIoU change gets a seeded bootstrap confidence interval over images and a verdict:
- confirmed: the CI excludes 0 and the change closes at least `min_gap_share` of the gap;
- rejected: the CI's upper end is below `band` points (the intervention cannot close more than that);
- inconclusive: anything else.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from sim2real.config.base import Section
from sim2real.config.style import StyleMethod


class RootCauseConfig(Section):
    # interventions to test, by registry name (sim2real.rootcause.interventions); -S 'rootcause.interventions=[brightness_contrast]'
    interventions: list[str] = Field(
        default_factory=lambda: ["colour_to_source", "brightness_contrast", "sky_crop", "blur_noise",
                                 "class_presence", "hard_sample_trait"], min_length=1)
    # the real split the model is re-evaluated on: val | test
    split: str = "val"
    # hardest target images (by the model's loss) the change is also reported on
    hardest_k: int = Field(8, ge=1)
    # bootstrap resamples over images for the confidence interval (seeded)
    bootstrap: int = Field(500, ge=50)
    ci: float = Field(0.95, gt=0.5, lt=1.0)
    seed: int = 0
    # confirmed: CI excludes 0 and the change closes at least this share of the gap (0.1 = 10%)
    min_gap_share: float = Field(0.1, ge=0.0, le=1.0)
    # rejected: the CI's upper end is below this many mIoU points (a change this small is no cause)
    band: float = Field(0.5, ge=0.0)
    # source images the interventions take their statistics from (the model's own training set)
    source_images: int = Field(64, ge=2)
    # cap on target images (0 = all)
    max_images: int = Field(0, ge=0)
    # style method that moves colour statistics to the source's (colour_to_source)
    colour_method: StyleMethod = "reinhard"
    # sky_crop: at most this share of rows is cropped away; set means closer than `sky_tolerance` = nothing to do
    max_crop: float = Field(0.4, gt=0.0, lt=1.0)
    sky_tolerance: float = Field(0.02, ge=0.0)
    @field_validator("split")
    @classmethod
    def _split(cls, v: str) -> str:
        if v not in ("val", "test"):
            raise ValueError(f"split must be val or test, got {v!r}")
        return v

    @field_validator("interventions")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"duplicate interventions: {v}")
        return v

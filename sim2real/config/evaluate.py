"""`evaluate:` and `store:` sections (helper EVAL): the gap report and the DuckDB store.

Every field can be overridden for one run, e.g. `sim2real run gap_report -S evaluate.hardest_k=4`.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from sim2real.config.base import Section
from sim2real.config.style import StyleMethod


class EvaluateConfig(Section):
    # images per forward pass during evaluation; -S evaluate.batch_size=32
    batch_size: int = Field(16, ge=1)
    # hardest real-val images (by loss) shown with prediction and truth, and analysed; -S evaluate.hardest_k=4
    hardest_k: int = Field(8, ge=1)
    # test-time baseline: real images normalized toward the source style with these style methods
    # (fit on the model's own synthetic training images, applied to real); [] = off
    reverse_styles: list[StyleMethod] = ["reinhard", "histogram"]
    # test-time baseline: AdaBN, batch-norm statistics re-estimated on unlabelled real train images
    adabn: bool = True
    # at most this many unlabelled real train images feed the AdaBN statistics
    adabn_images: int = Field(256, ge=2)
    # synthetic training images the reverse style is fitted on
    style_references: int = Field(64, ge=1)
    # at most this many images per domain go into the latent gap (Fréchet, MMD, A-distance)
    feature_images: int = Field(128, ge=4)
    # cap on images per evaluated split (0 = all); keeps big folders quick
    max_images: int = Field(0, ge=0)
    # bins per RGB channel of the colour histograms
    hist_bins: int = Field(32, ge=4, le=256)

    @field_validator("reverse_styles")
    @classmethod
    def _no_none(cls, v: list[str]) -> list[str]:
        if "none" in v:
            raise ValueError("'none' is not a reverse style (leave it out; the plain model is always evaluated)")
        if len(set(v)) != len(v):
            raise ValueError(f"duplicate methods in {v}")
        return v


class StoreConfig(Section):
    # one DuckDB file for every run (relative = to the repo root); env SIM2REAL_STORE overrides
    path: str = "data/store/sim2real.duckdb"
    # how long a writer waits (retrying with backoff) while another process holds the file
    lock_timeout_s: float = Field(120.0, gt=0)

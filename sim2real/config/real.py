"""`real:` section: the real target domain (import, validation, few-shot split)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from sim2real.config.base import Section


class RealConfig(Section):
    # proxy = the embedded stand-in target domain made in code (no dataset needed);
    # camvid / cityscapes / folder read a dataset from `root`.  -S real.source=camvid
    source: Literal["proxy", "camvid", "cityscapes", "folder"] = "proxy"
    # dataset folder (relative to the repo or absolute); needed unless source=proxy.
    # -S real.root=../shared/data/camvid
    root: str | None = None
    # label mapping file (JSON/YAML: source id -> class name | id | void) for source=folder (optional for
    # the others: it overrides their built-in mapping)
    mapping: str | None = None
    # N labelled real images for fine-tuning, drawn class-balanced from train; N >= pool size = all
    few_shot: int = Field(10, ge=1)
    seed: int = 0  # seed of the few-shot draw (a different seed = a different subset, same balance)
    proxy_train: int = Field(64, ge=1)  # proxy-domain pool sizes (source=proxy only)
    proxy_val: int = Field(48, ge=1)
    proxy_test: int = Field(48, ge=1)
    skip_bad: bool = False  # skip unreadable/invalid files (listed in the report) instead of failing
    # frames of another aspect than the working size: squash (resize both sides) | pad (keep the aspect,
    # void-labelled border) | window (short side resized, working-size windows along the long side)
    fit: Literal["squash", "pad", "window"] = "squash"

    @model_validator(mode="after")
    def _root_for_datasets(self) -> RealConfig:
        if self.source != "proxy" and not self.root:
            raise ValueError(f"real.root is required when real.source={self.source!r} (the dataset folder)")
        return self

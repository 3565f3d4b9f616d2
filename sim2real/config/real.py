"""`real:` section: the real target domain (import, validation, few-shot split)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sim2real.config.base import Section


class RealConfig(Section):
    # proxy = the embedded stand-in target domain made in code (no dataset needed);
    # camvid / cityscapes / folder read a dataset from `root`.
    source: Literal["proxy", "camvid", "cityscapes", "folder"] = "proxy"
    root: str | None = None  # dataset folder (relative to the repo or absolute)
    mapping: str | None = None  # label mapping file for source=folder
    few_shot: int = Field(10, ge=1)  # N labelled real images for fine-tuning (0 < N)
    seed: int = 0  # seed of the few-shot draw
    proxy_train: int = Field(64, ge=1)  # proxy-domain sizes (source=proxy only)
    proxy_val: int = Field(48, ge=1)
    proxy_test: int = Field(48, ge=1)
    skip_bad: bool = False  # skip unreadable/invalid files (listed in the report) instead of failing

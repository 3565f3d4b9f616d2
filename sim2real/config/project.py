"""`project:` section: seeds, working resolution, device and threads."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sim2real.config.base import Section


class ProjectConfig(Section):
    seed: int = 0  # global seed; every stage derives its own from it
    image_height: int = Field(96, ge=16, le=2048)  # working resolution (all stages)
    image_width: int = Field(128, ge=16, le=4096)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto = cuda when available
    num_threads: int = Field(0, ge=0)  # torch threads; 0 = the cores free to this process

"""`augment:` section: kornia augmentation (materialized set and online in training).

Each operation has a probability `*_p` (0 switches it off) and its ranges. Geometric ops move
image and mask together (masks nearest-neighbour; pixels from outside the image become void).
Override for a run: `sim2real run augmented_scenes -S augment.perspective_p=0`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from sim2real.config.base import Section
from sim2real.config.synthetic import NonNegRange, Prob, Range


class AugmentConfig(Section):
    copies: int = Field(1, ge=1)  # augmented copies of each synthetic scene
    batch_size: int = Field(64, ge=1)  # images per kornia call
    seed: int = 0  # seed of the materialized augmented set
    online: bool = True  # also augment batches on the fly during pretraining
    # online path: auto = kornia batched on CUDA, albumentations per image on the CPU (the faster of each)
    online_backend: Literal["auto", "kornia", "albumentations"] = "auto"
    # --- geometric (image and mask alike) ---
    hflip_p: Prob = 0.5
    affine_p: Prob = 0.5
    affine_degrees: float = Field(4.0, ge=0.0, le=180.0)  # max rotation (roll of the camera)
    affine_translate: float = Field(0.05, ge=0.0, le=1.0)  # max shift, fraction of size
    affine_scale: Range = (0.9, 1.15)  # zoom range
    affine_shear: float = Field(3.0, ge=0.0, le=45.0)  # max shear, degrees
    perspective_p: Prob = 0.25
    perspective_distortion: float = Field(0.15, ge=0.0, le=1.0)
    crop_p: Prob = 0.4  # random resized crop back to the input size
    crop_scale: Range = (0.5, 1.0)  # area fraction kept
    crop_ratio: Range = (1.1, 1.55)  # width/height of the crop
    # --- photometric (image only) ---
    color_jitter_p: Prob = 0.8
    brightness: float = Field(0.25, ge=0.0, le=1.0)
    contrast: float = Field(0.25, ge=0.0, le=1.0)
    saturation: float = Field(0.3, ge=0.0, le=1.0)
    hue: float = Field(0.03, ge=0.0, le=0.5)
    gamma_p: Prob = 0.3
    gamma: Range = (0.75, 1.35)
    blur_p: Prob = 0.25
    blur_sigma: NonNegRange = (0.1, 1.2)
    noise_p: Prob = 0.3
    noise_std: float = Field(0.025, ge=0.0, le=0.5)
    motion_blur_p: Prob = 0.1
    motion_blur_kernel: int = Field(5, ge=3, le=31)  # odd kernel size in pixels

    @field_validator("motion_blur_kernel")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError(f"must be odd, got {v}")
        return v

    @field_validator("affine_scale", "gamma", "crop_scale", "crop_ratio")
    @classmethod
    def _positive(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[0] <= 0:
            raise ValueError(f"range must be > 0, got {list(v)}")
        return v

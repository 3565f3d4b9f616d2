"""`synthetic:` section: the procedural scene generator and its domain randomization knobs.

Ranges are `[low, high]` lists sampled uniformly per scene (`low == high` fixes a value).
Defaults are tuned so class pixel frequencies and camera geometry resemble CamVid
(dashboard camera ~1.3 m high, horizon near mid-image, buildings on both sides).
Override one for a run: `sim2real run synthetic_scenes -S synthetic.num_cars=[0,12]`.

The source need not be synthetic: `source: camvid | cityscapes | folder` imports a real labelled
dataset from `root` into the same shard format (its train split -> train, val -> val), so the rest of
the chain (augmentation, style, pretraining, fine-tuning, the gap report) runs unchanged on a
real -> real pair ("trained on city A, evaluated on city B"). The generator knobs then do nothing.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from sim2real.config.base import Section


def _ordered(v: tuple) -> tuple:
    if v[0] > v[1]:
        raise ValueError(f"range [low, high] needs low <= high, got {list(v)}")
    return v


# a [low, high] range sampled uniformly per scene
Range = Annotated[tuple[float, float], AfterValidator(_ordered)]
IntRange = Annotated[tuple[int, int], AfterValidator(_ordered)]
Prob = Annotated[float, Field(ge=0.0, le=1.0)]


def _nonneg(v: tuple) -> tuple:
    if v[0] < 0:
        raise ValueError(f"range must be >= 0, got {list(v)}")
    return v


NonNegRange = Annotated[Range, AfterValidator(_nonneg)]
CountRange = Annotated[IntRange, AfterValidator(_nonneg)]


def _unit(v: tuple) -> tuple:
    if v[0] < 0 or v[1] > 1:
        raise ValueError(f"range must lie in [0, 1], got {list(v)}")
    return v


UnitRange = Annotated[Range, AfterValidator(_unit)]


IMPORTED_SOURCES = ("camvid", "cityscapes", "folder")


class SyntheticConfig(Section):
    # --- where the source comes from ---
    # procedural = the scene generator below; camvid | cityscapes | folder = a real labelled dataset read
    # from `root` (train and val splits) in place of the rendered scenes.  -S synthetic.source=folder
    source: Literal["procedural", "camvid", "cityscapes", "folder"] = "procedural"
    root: str | None = None  # dataset folder of an imported source (relative to the repo or absolute)
    # label mapping file (JSON/YAML: source id -> class name | id | void); needed by folder sources whose
    # masks are not taxonomy ids, optional for camvid/cityscapes (overrides their built-in mapping)
    mapping: str | None = None
    # frames of another aspect than the working size: squash | pad | window (as real.fit)
    fit: Literal["squash", "pad", "window"] = "squash"
    skip_bad: bool = False  # skip unreadable/invalid files of an imported source (listed) instead of failing
    # --- dataset (an imported source: num_train / num_val cap its train / val splits, the first N image
    # files of each in name order; the seeds and the rest below are the procedural generator's) ---
    num_train: int = Field(512, ge=1)  # scenes for pretraining
    num_val: int = Field(64, ge=1)  # held-out synthetic scenes (synthetic-val mIoU); disjoint seed stream
    seed: int = 0  # dataset seed; sample i's seed derives from (seed, i)
    shard_size: int = Field(256, ge=1)  # scenes per shard file (keeps DVC file counts low)
    batch_size: int = Field(64, ge=1)  # scenes rendered per call before writing a shard chunk
    # --- camera pose and intrinsics ---
    camera_height_m: Annotated[Range, AfterValidator(_nonneg)] = (1.1, 1.6)  # dashboard camera height
    camera_pitch_deg: Range = (-1.5, 3.0)  # downward tilt; + moves the horizon up
    camera_roll_deg: NonNegRange = (0.0, 1.5)  # |roll| range, random sign
    camera_yaw_deg: NonNegRange = (0.0, 6.0)  # |yaw| range: the vanishing point leaves the centre
    camera_hfov_deg: Annotated[Range, AfterValidator(_nonneg)] = (50.0, 66.0)  # horizontal field of view
    # --- street layout (metres) ---
    road_width_m: NonNegRange = (6.0, 13.0)  # kerb to kerb
    road_offset_m: Range = (-1.0, 2.5)  # road centre relative to the camera (+ = to the right)
    pavement_width_m: NonNegRange = (1.5, 5.0)
    kerb_width_m: NonNegRange = (0.15, 0.35)
    lane_marking_p: Prob = 0.85  # chance the road has lane markings
    road_wear: UnitRange = (0.1, 0.8)  # patchiness / cracks / repairs of the asphalt
    puddle_p: Prob = 0.2  # chance of wet patches / puddles on the road
    # facades: per side a row of segments along the street, each building | trees | gap
    facade_setback_m: NonNegRange = (0.0, 3.0)  # facade distance behind the pavement
    segment_length_m: NonNegRange = (6.0, 28.0)
    building_height_m: NonNegRange = (5.0, 24.0)
    building_p: Prob = 0.72  # segment type probabilities (rest = gap showing the backdrop)
    tree_row_p: Prob = 0.18
    backdrop_p: Prob = 0.8  # chance of a second row (trees/buildings) further back, seen through gaps
    far_wall_p: Prob = 0.45  # chance the street ends in a cross facade (T-junction)
    # --- objects (counts per scene) and placement ---
    num_trees: CountRange = (0, 5)  # street trees on the pavement
    num_poles: CountRange = (3, 12)  # lamp posts / bollards
    num_signs: CountRange = (1, 6)  # signs and traffic lights (on their own poles)
    fence_p: Prob = 0.25  # chance of a railing along each pavement
    fence_back_p: Prob = 0.5  # chance a railing stands at the back of the pavement (on a wall, before a hedge)
    num_cars: CountRange = (1, 9)  # parked at the kerbs and driving in lanes
    num_pedestrians: CountRange = (0, 10)  # mostly on pavements, some crossing
    num_bicyclists: CountRange = (0, 2)  # on the road near the kerb
    object_distance_m: NonNegRange = (4.0, 70.0)  # distance range objects are placed in
    # --- sky, lighting, shadows ---
    sunny_p: Prob = 0.4  # sunny (hard shadows, bright) vs overcast (flat light, pale sky)
    sun_elevation_deg: NonNegRange = (12.0, 55.0)
    cloud_cover: UnitRange = (0.0, 0.9)
    haze: UnitRange = (0.0, 0.5)  # aerial perspective toward the horizon
    # --- colour palettes and textures ---
    palette_jitter: UnitRange = (0.0, 0.25)  # random hue/brightness shift of the class palettes
    texture_strength: UnitRange = (0.3, 1.0)  # procedural texture contrast
    photo_texture_p: Prob = 0.5  # chance a surface uses a photo texture (skimage samples / texture_dir)
    texture_dir: str | None = None  # optional folder of texture photos (png/jpg); relative to the repo
    # --- sensor ---
    exposure: Annotated[Range, AfterValidator(_nonneg)] = (0.75, 1.25)  # global gain
    white_balance: NonNegRange = (0.0, 0.08)  # max per-channel gain deviation
    saturation: NonNegRange = (0.6, 1.1)
    vignette: UnitRange = (0.0, 0.35)
    noise_std: NonNegRange = (0.0, 0.03)  # Gaussian sensor noise (fraction of full scale)
    blur_sigma: NonNegRange = (0.0, 0.9)  # optical blur, pixels at 360x480 (scaled with size)
    # rendering below 360 rows: look like a 360x480 frame loaded at the working size (as real frames are,
    # PIL bilinear), not like a sensor of the working size. Gaussian sigma in working-size pixels, times
    # sqrt(1 - (h/360)^2); the sensor noise is averaged down by h/360. 0 = off. 0.57 matches CamVid val's
    # fine detail but did not raise source-only mIoU (docs/generator_camvid.md, eighth session): off
    sensor_footprint: float = Field(0.0, ge=0.0, le=2.0)
    jpeg_quality: Annotated[IntRange, AfterValidator(_nonneg)] = (55, 98)  # 100 = no JPEG round trip

    @field_validator("jpeg_quality")
    @classmethod
    def _jpeg(cls, v: tuple[int, int]) -> tuple[int, int]:
        if v[1] > 100:
            raise ValueError(f"JPEG quality must be <= 100 (100 = no JPEG), got {list(v)}")
        return v

    @model_validator(mode="after")
    def _check(self) -> SyntheticConfig:
        if self.source in IMPORTED_SOURCES and not self.root:
            raise ValueError(f"synthetic.root is required when synthetic.source={self.source!r} "
                             "(the source dataset folder)")
        if self.source == "procedural" and (self.root or self.mapping):
            key = "synthetic.root" if self.root else "synthetic.mapping"
            raise ValueError(f"{key} is set but synthetic.source='procedural' renders scenes and reads no "
                             "dataset; set synthetic.source to camvid, cityscapes or folder")
        if self.building_p + self.tree_row_p > 1.0:
            raise ValueError("building_p + tree_row_p must be <= 1 (the rest is gaps), "
                             f"got {self.building_p} + {self.tree_row_p}")
        return self

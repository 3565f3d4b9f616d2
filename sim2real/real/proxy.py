"""The embedded proxy target domain: a stand-in for real data when no dataset is configured.

It is rendered by the scene generator in its `proxy` style (a different palette, textures,
lighting, camera noise, blur and JPEG artefacts), so there is a measurable domain gap that style
normalization and fine-tuning can shrink. It is NOT real data; numbers on it say that the
pipeline works, not how well a model transfers to a real camera.

The splits use one fixed seed and disjoint index ranges, so no proxy scene repeats across
train/val/test, none shares a scene seed with the synthetic training scenes, and changing one
split's size leaves the other splits' scenes unchanged.
"""

from __future__ import annotations

from sim2real.config import Config
from sim2real.config.synthetic import SyntheticConfig
from sim2real.real.importers import LabelledSet

# far from the synthetic dataset seeds (small integers), so proxy layouts never repeat training scenes
PROXY_SEED = 7_919_001
# split index ranges: sample i of split s is scene PROXY_SEED, SPLIT_START[s] + i
SPLIT_START = {"train": 0, "val": 1_000_000, "test": 2_000_000}


def proxy_splits(cfg: Config, device: str = "cpu") -> dict[str, LabelledSet]:
    """Render the proxy train/val/test pools at the working resolution.

    The generator runs with its default knobs, not `cfg.synthetic`: tuning the source domain's
    randomization must not move the target domain it is measured against.

    Args:
        cfg: the project config (`real.proxy_*` sizes, `project.seed`, working resolution).
        device: torch device for rendering.
    """
    from sim2real.synth import generate_scenes

    sizes = {"train": cfg.real.proxy_train, "val": cfg.real.proxy_val, "test": cfg.real.proxy_test}
    seed = PROXY_SEED + cfg.project.seed
    h, w = cfg.project.image_height, cfg.project.image_width
    out = {}
    for split, n in sizes.items():
        images, masks, records = generate_scenes(SyntheticConfig(), n, seed, h, w,
                                                 start=SPLIT_START[split], domain="proxy", device=device)
        names = [f"proxy-{split}-{i:06d}" for i in range(n)]
        recs = [{**r, "domain": "proxy"} for r in records]
        out[split] = LabelledSet(images, masks.astype("uint8"), names, sources=[], records=recs)
    return out

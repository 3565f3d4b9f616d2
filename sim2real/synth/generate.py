"""`generate_scenes`: the public entry point of the procedural generator."""

from __future__ import annotations

from typing import Any

import numpy as np

from sim2real.config.synthetic import SyntheticConfig
from sim2real.synth.render import render_scenes
from sim2real.synth.sampling import DOMAINS, sample_scene, scene_seed
from sim2real.synth.textures import TextureBank


def sample_params(cfg: SyntheticConfig, n: int, seed: int, start: int = 0,
                  domain: str = "synthetic") -> list[dict[str, Any]]:
    """The sampled parameters of scenes start..start+n-1 (no rendering)."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; choose one of {list(DOMAINS)}")
    return [sample_scene(cfg, scene_seed(seed, start + i, domain), domain) | {"index": start + i}
            for i in range(n)]


def generate_scenes(cfg: SyntheticConfig, n: int, seed: int, height: int, width: int, start: int = 0,
                    domain: str = "synthetic", device: str = "cpu") -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Render n procedural road scenes with pixel-exact CamVid-taxonomy labels.

    Sample i depends only on (seed, start + i, domain, cfg), so any sample regenerates alone:
    `generate_scenes(cfg, 1, seed, h, w, start=i)` equals the i-th scene of a larger call.

    Args:
        cfg: the `synthetic:` section (domain randomization knobs).
        n: number of scenes.
        seed: dataset seed.
        height, width: image size in pixels.
        start: index of the first scene.
        domain: "synthetic" (the training source) or "proxy" (the embedded stand-in target domain:
            a different palette, camera, light, noise, blur and JPEG quality).
        device: torch device for rendering ("cpu", "cuda", ...).

    Returns:
        images uint8 (n, H, W, 3), masks uint8 (n, H, W) with ids 0..10 (11 = void), one record per
        scene: its seed, index and all sampled parameters.

    Example:
        >>> from sim2real.config.synthetic import SyntheticConfig
        >>> images, masks, records = generate_scenes(SyntheticConfig(), 4, seed=0, height=96, width=128)
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if height < 8 or width < 8:
        raise ValueError(f"image size must be at least 8x8, got {height}x{width}")
    records = sample_params(cfg, n, seed, start, domain)
    textures = TextureBank.load(cfg.texture_dir) if cfg.texture_dir else TextureBank.default()
    images, masks = render_scenes(records, height, width, device=device, textures=textures)
    return images, masks, records

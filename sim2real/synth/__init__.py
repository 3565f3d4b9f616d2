"""Procedural road scenes with pixel-exact labels (domain randomization), deterministic by seed.

Example:
    >>> from sim2real.synth import generate_scenes
    >>> from sim2real.config.synthetic import SyntheticConfig
    >>> images, masks, records = generate_scenes(SyntheticConfig(), 8, seed=0, height=96, width=128)
"""

from sim2real.synth.generate import generate_scenes, sample_params
from sim2real.synth.sampling import scene_seed

__all__ = ["generate_scenes", "sample_params", "scene_seed"]

"""Colour/style normalization toward a target domain, and colour-statistics distances.

Example:
    >>> from sim2real.style import get_method
    >>> styled = get_method("fda", beta=0.03).fit(real_images).apply(synthetic_images)
"""

from sim2real.style.distance import colour_distances
from sim2real.style.methods import METHODS, StyleMethod, get_method, method_from_config

__all__ = ["METHODS", "StyleMethod", "get_method", "method_from_config", "colour_distances"]

"""Root-cause checks: does removing a suspected trait from the target images close the gap?

Each *intervention* is one function in a registry (`registry.INTERVENTIONS`): it takes the target
images (and the source images the model was trained on, the hardest samples, the settings) and
returns the intervened target set, e.g. target images with the source's brightness and contrast.
Stage `root_causes` re-evaluates the same source-only model on every intervened set and turns the
mIoU change into a verdict (confirmed / rejected / inconclusive) with a bootstrap CI over images.

Add one with one function:

    >>> from sim2real.rootcause import Intervened, Probe, intervention
    >>> @intervention("grayscale", trait="colour saturation")
    ... def grayscale(p: Probe) -> Intervened:
    ...     g = p.images.mean(-1, keepdims=True).repeat(3, -1).astype("uint8")
    ...     return Intervened(g, p.masks)

then list it in `params.yaml` (`rootcause.interventions`) in a module the stage imports (or
register it before calling the stage).
"""

from sim2real.rootcause.interventions import BUILTIN
from sim2real.rootcause.registry import (
    INTERVENTIONS,
    Intervened,
    Intervention,
    Probe,
    get_intervention,
    intervention,
)

__all__ = ["BUILTIN", "INTERVENTIONS", "Intervened", "Intervention", "Probe", "get_intervention", "intervention"]

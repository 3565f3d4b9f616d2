"""The intervention registry: a name -> one function that removes one suspected trait from the target.

An intervention gets a `Probe` (target images and masks, the source images the model was trained
on, the hardest target samples, the settings) and returns an `Intervened` set: the same images
changed (paired with the originals, one for one), or a subset of them (`keep`), never new labels
for unchanged pixels. Registering is a decorator:

    >>> @intervention("brightness_contrast", trait="brightness and contrast")
    ... def brightness_contrast(p: Probe) -> Intervened: ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Probe", "Intervened", "Intervention", "INTERVENTIONS", "intervention", "get_intervention"]


@dataclass(frozen=True)
class Probe:
    """What an intervention sees.

    Attributes:
        images: target images (N, H, W, 3) uint8, as the model is evaluated on them.
        masks: their labels (N, H, W), ids 0..10, 11 = void.
        source_images: images of the model's own training domain (M, H, W, 3) uint8: the reference
            an intervention moves the target toward.
        source_masks: their labels (M, H, W).
        hard: indices of the hardest target images by the model's loss, hardest first.
        losses: (N,) the model's per-image loss on the target.
        settings: the `rootcause:` config section (thresholds, colour method, crop limits).
    """

    images: np.ndarray
    masks: np.ndarray
    source_images: np.ndarray
    source_masks: np.ndarray
    hard: np.ndarray
    losses: np.ndarray
    settings: Any = None


@dataclass
class Intervened:
    """An intervention's result.

    Attributes:
        images, masks: the intervened target set; one per original image (paired), or one per
            index in `keep` (a subset of the originals).
        keep: None for a paired intervention; else the indices of the original images kept.
        note: what was done, in numbers (shown in the report).
        trait: overrides the registered trait (an intervention that picks its trait at run time).
    """

    images: np.ndarray
    masks: np.ndarray
    keep: np.ndarray | None = None
    note: str = ""
    trait: str | None = None

    def check(self, probe: Probe, name: str) -> Intervened:
        """Shapes and dtypes the evaluation relies on; a clear error naming the intervention."""
        n = len(probe.images) if self.keep is None else len(self.keep)
        img, msk = np.asarray(self.images), np.asarray(self.masks)
        if img.shape != (n, *probe.images.shape[1:]) or img.dtype != np.uint8:
            raise ValueError(f"intervention {name!r} returned images {img.dtype} {img.shape}, "
                             f"expected uint8 {(n, *probe.images.shape[1:])}")
        if msk.shape != (n, *probe.masks.shape[1:]):
            raise ValueError(f"intervention {name!r} returned masks {msk.shape}, expected {(n, *probe.masks.shape[1:])}")
        if self.keep is not None:
            keep = np.asarray(self.keep, dtype=int)
            if len(keep) and (keep.min() < 0 or keep.max() >= len(probe.images) or len(set(keep)) != len(keep)):
                raise ValueError(f"intervention {name!r}: keep must be distinct indices into the target")
            self.keep = keep
        self.images, self.masks = img, msk
        return self


@dataclass(frozen=True)
class Intervention:
    name: str
    trait: str
    description: str
    func: Callable[[Probe], Intervened] = field(repr=False)

    def __call__(self, probe: Probe) -> Intervened:
        out = self.func(probe)
        if not isinstance(out, Intervened):
            raise TypeError(f"intervention {self.name!r} must return an Intervened, got {type(out).__name__}")
        return out.check(probe, self.name)


INTERVENTIONS: dict[str, Intervention] = {}


def intervention(name: str, trait: str = "", description: str = "", replace: bool = False
                 ) -> Callable[[Callable[[Probe], Intervened]], Callable[[Probe], Intervened]]:
    """Register `func` under `name` (the key listed in `rootcause.interventions`).

    Args:
        name: registry key.
        trait: the suspected cause it removes, in the user's words (default: the name).
        description: one line for the report (default: the function docstring's first line).
        replace: allow re-registering an existing name (otherwise an error).
    """

    def register(func: Callable[[Probe], Intervened]) -> Callable[[Probe], Intervened]:
        if name in INTERVENTIONS and not replace:
            raise ValueError(f"intervention {name!r} is already registered (pass replace=True to override)")
        doc = description or (func.__doc__ or "").strip().split("\n")[0]
        INTERVENTIONS[name] = Intervention(name, trait or name.replace("_", " "), doc, func)
        return func

    return register


def get_intervention(name: str) -> Intervention:
    try:
        return INTERVENTIONS[name]
    except KeyError:
        raise KeyError(f"unknown intervention {name!r}; choose one of {sorted(INTERVENTIONS)} "
                       "(or register one with @sim2real.rootcause.intervention)") from None

"""The built-in interventions, one function each (see `registry` for the contract).

| name | trait | what it does to the target |
|---|---|---|
| colour_to_source | colour statistics | the style functions in reverse: fit on source images, applied to the target |
| brightness_contrast | brightness and contrast | each image's luma mean and std set to the source's average |
| sky_crop | sky fraction | top (or bottom) rows cropped until the sky fraction is the source's, resized back |
| blur_noise | blur / noise | Gaussian blur (or unsharp masking) until the high-frequency energy is the source's |
| class_presence | class presence | the subset of target images whose class-presence rates match the source's |
| hard_sample_trait | the trait the hard-sample table points at | that trait normalized toward the easier target images |
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from sim2real.evaluate.domain_stats import PRESENCE_MIN, image_properties
from sim2real.evaluate.hard_samples import compare_hard_vs_rest
from sim2real.rootcause.registry import INTERVENTIONS, Intervened, Probe, intervention
from sim2real.style.methods import get_method
from sim2real.taxonomy import CLASS_ID, NUM_CLASSES, VOID

__all__ = ["BUILTIN", "luma_stats", "sky_fractions", "high_frequency", "presence"]

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
SKY = CLASS_ID["Sky"]


def luma_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image luma mean and std (0..255)."""
    luma = np.asarray(images, np.float32) @ _LUMA
    return luma.mean((1, 2)), luma.std((1, 2))


def sky_fractions(masks: np.ndarray) -> np.ndarray:
    """Per-image share of labelled pixels that are Sky."""
    masks = np.asarray(masks)
    labelled = (masks != VOID).sum((1, 2))
    return (masks == SKY).sum((1, 2)) / np.maximum(labelled, 1)


def high_frequency(images: np.ndarray) -> float:
    """Mean absolute difference between the luma and its Gaussian blur (sigma 1): blur lowers it, noise raises it."""
    luma = np.asarray(images, np.float32) @ _LUMA
    return float(np.abs(luma - gaussian_filter(luma, (0, 1, 1))).mean())


def presence(masks: np.ndarray) -> np.ndarray:
    """(N, classes) 1.0 where a class covers at least PRESENCE_MIN of the image's labelled pixels."""
    masks = np.asarray(masks)
    counts = np.stack([np.bincount(m.ravel().astype(np.int64), minlength=VOID + 1)[:NUM_CLASSES] for m in masks])
    return (counts / np.maximum(counts.sum(1, keepdims=True), 1) >= PRESENCE_MIN).astype(np.float64)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


@intervention("colour_to_source", trait="colour statistics")
def colour_to_source(p: Probe) -> Intervened:
    """Target colours moved to the source's with a style method run in reverse (fit on source, apply to target)."""
    method = getattr(p.settings, "colour_method", "reinhard")
    styler = get_method(method).fit(np.ascontiguousarray(p.source_images))
    return Intervened(np.asarray(styler.apply(np.ascontiguousarray(p.images))), p.masks,
                      note=f"style method {method} fitted on {len(p.source_images)} source images")


@intervention("brightness_contrast", trait="brightness and contrast")
def brightness_contrast(p: Probe) -> Intervened:
    """Each target image's luma mean and std set to the source's average (one gain and offset per image)."""
    mu_s, sd_s = (v.mean() for v in luma_stats(p.source_images))
    mu, sd = luma_stats(p.images)
    gain = sd_s / np.maximum(sd, 1.0)
    out = (p.images.astype(np.float32) - mu[:, None, None, None]) * gain[:, None, None, None] + mu_s
    return Intervened(_to_uint8(out), p.masks,
                      note=f"luma mean {mu.mean():.1f} -> {mu_s:.1f}, std {sd.mean():.1f} -> {sd_s:.1f} (0..255)")


def _resize(images: np.ndarray, masks: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    img = np.asarray(Image.fromarray(images).resize((w, h), Image.BILINEAR))
    msk = np.asarray(Image.fromarray(masks.astype(np.uint8)).resize((w, h), Image.NEAREST))
    return img, msk


def _best_crop(mask: np.ndarray, want: float, max_rows: int, from_top: bool) -> int:
    """Rows to crop (from the top or the bottom) that bring the sky fraction closest to `want`."""
    rows = mask if from_top else mask[::-1]
    sky = np.concatenate([[0], np.cumsum((rows == SKY).sum(1))])
    lab = np.concatenate([[0], np.cumsum((rows != VOID).sum(1))])
    r = np.arange(max_rows + 1)
    frac = (sky[-1] - sky[r]) / np.maximum(lab[-1] - lab[r], 1)
    return int(r[np.argmin(np.abs(frac - want))])


@intervention("sky_crop", trait="sky fraction")
def sky_crop(p: Probe) -> Intervened:
    """Sky fraction equalized by cropping: top rows (too much sky) or bottom rows (too little), resized back."""
    s = p.settings
    want = float(sky_fractions(p.source_masks).mean())
    have = sky_fractions(p.masks)
    tol = getattr(s, "sky_tolerance", 0.02)
    if abs(have.mean() - want) <= tol:
        return Intervened(p.images.copy(), p.masks.copy(),
                          note=f"sky fraction {have.mean():.3f} already within {tol} of the source's {want:.3f}: "
                               "nothing cropped")
    n, h, w = p.masks.shape
    max_rows = int(h * getattr(s, "max_crop", 0.4))
    images, masks, cropped = p.images.copy(), p.masks.copy(), []
    for i in range(n):
        top = have[i] > want
        r = _best_crop(p.masks[i], want, max_rows, from_top=top)
        cropped.append(r)
        if r:
            sl = slice(r, h) if top else slice(0, h - r)
            images[i], masks[i] = _resize(p.images[i, sl], p.masks[i, sl], h, w)
    after = sky_fractions(masks).mean()
    return Intervened(images, masks, note=f"sky fraction {have.mean():.3f} -> {after:.3f} (source {want:.3f}); "
                                          f"{np.mean(cropped) / h:.0%} of rows cropped on average")


@intervention("blur_noise", trait="blur / noise")
def blur_noise(p: Probe) -> Intervened:
    """Blur (noisier, sharper target) or unsharp masking (blurrier target) until the high-frequency energy matches."""
    want, have = high_frequency(p.source_images), high_frequency(p.images)
    if abs(have - want) <= 0.05 * max(want, 1e-6):
        return Intervened(p.images.copy(), p.masks.copy(),
                          note=f"high-frequency energy {have:.2f} already within 5% of the source's {want:.2f}")
    x = p.images.astype(np.float32)
    soft = gaussian_filter(x, (0, 1, 1, 0))
    if have > want:
        candidates = {f"Gaussian blur sigma {sg}": gaussian_filter(x, (0, sg, sg, 0))
                      for sg in (0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)}
    else:
        candidates = {f"unsharp mask amount {a}": x + a * (x - soft) for a in (0.25, 0.5, 1.0, 2.0, 4.0)}
    outs = {k: _to_uint8(v) for k, v in candidates.items()}
    best = min(outs, key=lambda k: abs(high_frequency(outs[k]) - want))
    return Intervened(outs[best], p.masks, note=f"{best}: high-frequency energy {have:.2f} -> "
                                                f"{high_frequency(outs[best]):.2f} (source {want:.2f})")


@intervention("class_presence", trait="class presence")
def class_presence(p: Probe) -> Intervened:
    """The target subset whose class-presence rates match the source's (greedy removal, at least a third kept)."""
    want = presence(p.source_masks).mean(0)
    pres = presence(p.masks)
    keep = list(range(len(pres)))
    floor = max(2, len(keep) // 3)

    def dist(rows: list[int]) -> float:
        return float(np.abs(pres[rows].mean(0) - want).sum())

    before = current = dist(keep)
    while len(keep) > floor:
        total = pres[keep].sum(0)
        after_drop = np.abs((total[None] - pres[keep]) / (len(keep) - 1) - want[None]).sum(1)
        j = int(np.argmin(after_drop))
        if after_drop[j] >= current - 1e-12:
            break
        current = float(after_drop[j])
        keep.pop(j)
    idx = np.asarray(keep, dtype=int)
    return Intervened(p.images[idx], p.masks[idx], keep=idx,
                      note=f"{len(idx)} of {len(pres)} images kept; L1 distance of class-presence rates to the "
                           f"source {before:.2f} -> {current:.2f}")


# hard-sample table properties a built-in intervention can normalize (per-class properties cannot:
# "keep the images like the easy ones" would just drop the hard ones)
TRAIT_INTERVENTION = {"brightness": "brightness_contrast", "contrast": "brightness_contrast",
                      "saturation": "colour_to_source", "edge_density": "blur_noise", "sky_fraction": "sky_crop"}


@intervention("hard_sample_trait", trait="what the hardest images share")
def hard_sample_trait(p: Probe) -> Intervened:
    """The hard-sample table's strongest normalizable trait: the hardest images' moved toward the rest of the target."""
    props = image_properties(p.images, p.masks)
    props["loss"] = np.asarray(p.losses, np.float64)
    rows = compare_hard_vs_rest(props, p.hard)
    row = next((r for r in rows if r["property"] in TRAIT_INTERVENTION and r["effect_size"] is not None), None)
    if row is None or len(p.hard) >= len(p.images):
        return Intervened(p.images.copy(), p.masks.copy(), note="no normalizable trait in the hard-sample table")
    hard = np.asarray(p.hard, dtype=int)
    rest = np.setdiff1d(np.arange(len(p.images)), hard)
    # the hardest images alone, with the easier target images as the reference to move toward
    sub = dataclasses.replace(p, images=p.images[hard], masks=p.masks[hard], source_images=p.images[rest],
                              source_masks=p.masks[rest], hard=np.arange(len(hard)), losses=p.losses[hard])
    name = TRAIT_INTERVENTION[row["property"]]
    moved = INTERVENTIONS[name].func(sub)
    images, masks = p.images.copy(), p.masks.copy()
    images[hard], masks[hard] = moved.images, moved.masks
    trait = (f"{row['property']} of the hardest images ({row['hardest_mean']:.3g} vs rest {row['rest_mean']:.3g}, "
             f"effect {row['effect_size']:+.2f} sd)")
    return Intervened(images, masks, trait=trait,
                      note=f"{name} on the {len(hard)} hardest images toward the {len(rest)} others: {moved.note}")


BUILTIN = ("colour_to_source", "brightness_contrast", "sky_crop", "blur_noise", "class_presence", "hard_sample_trait")

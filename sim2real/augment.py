"""Augmentation of image+mask batches with kornia, used for the materialized set and online.

`build_augmentation(cfg.augment)` returns an `Augmenter`; `augmenter(images, masks)` takes float
(N,3,H,W) images in [0,1] and long (N,H,W) masks on any device and returns the same. Geometric
ops (flip, affine, perspective, resized crop) move mask and image together with nearest-neighbour
sampling for the mask, so no new ids appear; pixels pulled in from outside the image become void
(11). Photometric ops (colour jitter, gamma, blur, noise, motion blur) touch the image only.
Pass `seed=` for reproducible draws (kornia samples from torch's global generator, so the call
runs inside a forked, seeded RNG state and leaves the caller's RNG untouched).

Example:
    >>> aug = build_augmentation(AugmentConfig())
    >>> images, masks = aug(images, masks, seed=0)
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from sim2real.config import Config
from sim2real.config.augment import AugmentConfig
from sim2real.context import StageContext, StepResult, markdown_table
from sim2real.previews import save_grid
from sim2real.progress import Progress
from sim2real.shards import ShardDataset, ShardWriter
from sim2real.taxonomy import CLASSES, VOID, class_histogram

__all__ = ["AlbumentationsAugmenter", "Augmenter", "albumentations_pipeline", "augmented_scenes", "batch_seed",
           "build_augmentation", "color_jitter", "online_augmentation", "warp"]


# luma weights (BT.601, as kornia's grayscale) and the YIQ transform whose I/Q plane hue rotates
_LUMA = (0.299, 0.587, 0.114)
_YIQ = ((0.299, 0.587, 0.114), (0.595716, -0.274453, -0.321263), (0.211456, -0.522591, 0.311135))


def color_jitter(images: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor, saturation: torch.Tensor,
                 hue: torch.Tensor) -> torch.Tensor:
    """Brightness, contrast, saturation and hue of each image as one 3x3 colour matrix and an offset.

    The formulas of torchvision's (and kornia's) `ColorJitter`: brightness multiplies, contrast blends with
    the image's mean grey, saturation with the pixel's grey. Hue turns colours about the grey axis by
    `hue` turns (in YIQ, keeping luma) instead of a trip through HSV (which keeps the largest channel): a
    shift of the same size and direction (at 0.03 turns, the colour changes of the two have the same length
    and a cosine of 0.7), and linear, so the four steps fold into one matrix. Without the intermediate clamps, the order of the steps does not
    matter (each keeps grey grey and the mean grey scales with brightness alone), so one product is every
    order. kornia's `ColorJitter` runs each step over the whole batch (hue via HSV: 2.1 ms of its 5.5 ms an
    image at 128x160 on one core); this is one batched matmul.

    Args:
        images: float (N, 3, H, W) in [0, 1].
        brightness, contrast, saturation: (N,) factors (1 = unchanged).
        hue: (N,) shift in turns (0 = unchanged).

    Returns:
        (N, 3, H, W) clamped to [0, 1].
    """
    n = len(images)
    dev, dt = images.device, images.dtype
    yiq = torch.tensor(_YIQ, device=dev, dtype=dt)
    angle = hue * (-2.0 * math.pi)  # the sign of torchvision's: +hue takes red toward yellow
    cos, sin = torch.cos(angle), torch.sin(angle)
    # in YIQ: luma kept, chroma scaled by saturation and turned by hue
    inner = torch.zeros((n, 3, 3), device=dev, dtype=dt)
    inner[:, 0, 0] = 1.0
    inner[:, 1, 1], inner[:, 1, 2] = saturation * cos, -saturation * sin
    inner[:, 2, 1], inner[:, 2, 2] = saturation * sin, saturation * cos
    gain = brightness * contrast
    mat = torch.linalg.inv(yiq) @ inner @ yiq * gain[:, None, None]
    x = images.clamp(0.0, 1.0).reshape(n, 3, -1)
    grey_mean = torch.tensordot(x.mean(-1), torch.tensor(_LUMA, device=dev, dtype=dt), dims=([1], [0]))
    offset = (brightness * (1.0 - contrast) * grey_mean)[:, None, None].expand(n, 3, 1)
    return torch.baddbmm(offset, mat, x).clamp_(0.0, 1.0).reshape(images.shape)


def warp(images: torch.Tensor, masks: torch.Tensor, mat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (bilinear) and masks (nearest) through homographies `mat` (N, 3, 3, input pixel -> output pixel,
    pixel centres at integers); what comes from outside the image is 0 in both.

    Args:
        images: float (N, C, H, W).
        masks: float (N, 1, H, W).
    """
    import torch.nn.functional as F

    n, _, h, w = images.shape
    dev, dt = images.device, images.dtype
    # output pixel -> where it comes from, in grid_sample's [-1, 1] coordinates: the normalisation folded into
    # the inverse, and the grid built row by column (x and y separate), not as a product with every pixel
    norm = torch.tensor([[2.0 / max(w - 1, 1), 0.0, -1.0], [0.0, 2.0 / max(h - 1, 1), -1.0], [0.0, 0.0, 1.0]],
                        dtype=torch.float64, device=dev)
    inv = (norm @ torch.linalg.inv(mat.to(torch.float64))).to(dt)[:, :, :, None, None]  # (N, 3, 3, 1, 1)
    xs = torch.arange(w, device=dev, dtype=dt)[None, :]
    ys = torch.arange(h, device=dev, dtype=dt)[:, None]
    src = inv[:, :, 0] * xs + (inv[:, :, 1] * ys + inv[:, :, 2])  # (N, 3, H, W)
    z = src[:, 2]
    rz = 1.0 / z.masked_fill(z.abs() < 1e-8, 1e-8)
    grid = torch.empty((n, h, w, 2), device=dev, dtype=dt)
    torch.mul(src[:, 0], rz, out=grid[..., 0])
    torch.mul(src[:, 1], rz, out=grid[..., 1])
    return (F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True),
            F.grid_sample(masks, grid, mode="nearest", padding_mode="zeros", align_corners=True))


def _drawn(n: int, p: float, device: torch.device) -> torch.Tensor:
    """Indices of the images an operation of probability `p` applies to (drawn on the CPU: any device, same draw)."""
    return torch.nonzero(torch.rand(n) < p).squeeze(1).to(device)


class Augmenter:
    """kornia augmentation of (image, mask) batches, configured by the `augment:` section.

    Each operation runs only on the images drawn for it (kornia's own probability gate computes every op on the
    whole batch and blends). The geometric ops (flip, resized crop, affine, perspective) are kornia's, for their
    parameter draws and matrices; their product warps each image once (bilinear) and its mask once (nearest),
    instead of once per op: less resampling blur and a quarter of the work. The photometric ops follow: colour
    jitter (`color_jitter`), then kornia's gamma, Gaussian blur, motion blur and noise.
    """

    def __init__(self, cfg: AugmentConfig):
        self.cfg = cfg
        self._ops: dict[tuple[int, int], tuple[list, list]] = {}

    def _build(self, height: int, width: int) -> tuple[list, list]:
        import kornia.augmentation as K

        c = self.cfg
        geometric = [
            (c.hflip_p, K.RandomHorizontalFlip(p=1.0)),
            (c.crop_p, K.RandomResizedCrop((height, width), scale=c.crop_scale, ratio=c.crop_ratio, p=1.0,
                                           cropping_mode="resample")),
            (c.affine_p, K.RandomAffine(degrees=c.affine_degrees, translate=(c.affine_translate, c.affine_translate),
                                        scale=c.affine_scale, shear=c.affine_shear, p=1.0)),
            (c.perspective_p, K.RandomPerspective(distortion_scale=c.perspective_distortion, p=1.0)),
        ]
        photometric = [
            (c.color_jitter_p, self._jitter),
            (c.gamma_p, K.RandomGamma(gamma=c.gamma, p=1.0)),
            (c.blur_p, K.RandomGaussianBlur((5, 5), sigma=c.blur_sigma, p=1.0)),
            (c.motion_blur_p, K.RandomMotionBlur(c.motion_blur_kernel, angle=(-30.0, 30.0), direction=(-1.0, 1.0),
                                                 p=1.0)),
            (c.noise_p, K.RandomGaussianNoise(mean=0.0, std=c.noise_std, p=1.0)),
        ]
        return [(p, op) for p, op in geometric if p > 0], [(p, op) for p, op in photometric if p > 0]

    def _jitter(self, images: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        n = len(images)

        def factor(spread: float) -> torch.Tensor:  # torchvision's range: [max(0, 1 - s), 1 + s]
            lo = max(0.0, 1.0 - spread)
            return (lo + torch.rand(n) * (1.0 + spread - lo)).to(images.device, images.dtype)

        b, k, s = factor(c.brightness), factor(c.contrast), factor(c.saturation)
        h = ((torch.rand(n) * 2.0 - 1.0) * c.hue).to(images.device, images.dtype)
        return color_jitter(images, b, k, s, h)

    def _seq(self, height: int, width: int) -> tuple[list, list]:
        key = (height, width)
        if key not in self._ops:
            self._ops[key] = self._build(height, width)
        return self._ops[key]

    def __call__(self, images: torch.Tensor, masks: torch.Tensor,
                 seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment a batch.

        Args:
            images: float (N, 3, H, W) in [0, 1].
            masks: integer (N, H, W) ids 0..10, 11 = void.
            seed: if given, the draw is reproducible (and the global RNG is left as it was).

        Returns:
            (images float (N,3,H,W) in [0,1], masks long (N,H,W)) on the input device.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (N,3,H,W), got {tuple(images.shape)}")
        if masks.shape != (images.shape[0], *images.shape[2:]):
            raise ValueError(f"masks must be (N,H,W) matching images, got {tuple(masks.shape)}")
        if seed is None:
            return self._apply(images, masks)
        devices = [images.device] if images.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(seed))
            return self._apply(images, masks)

    def _apply(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        masks = masks.long()
        if len(images) == 0:
            return images, masks
        n, _, h, w = images.shape
        dev = images.device
        geometric, photometric = self._seq(h, w)
        mat = torch.eye(3, device=dev, dtype=images.dtype).repeat(n, 1, 1)
        moved = torch.zeros(n, dtype=torch.bool, device=dev)
        for p, op in geometric:
            idx = _drawn(n, p, dev)
            if len(idx):
                params = op.forward_parameters((len(idx), 3, h, w))
                step = op.compute_transformation(images.index_select(0, idx), params, op.flags).to(images.dtype)
                mat.index_copy_(0, idx, step @ mat.index_select(0, idx))
                moved[idx] = True
        out = images.clamp(0.0, 1.0)  # a new tensor: the ops below write into it, never into the caller's
        idx = torch.nonzero(moved).squeeze(1)
        if len(idx):
            # ids shifted by one, so that 0 marks pixels pulled in from outside the image (void)
            shifted = (masks.index_select(0, idx) + 1).to(images.dtype).unsqueeze(1)
            wi, wm = warp(out.index_select(0, idx), shifted, mat.index_select(0, idx))
            wm = wm.squeeze(1).long()  # nearest sampling: whole numbers already
            out.index_copy_(0, idx, wi)
            masks = masks.index_copy(0, idx, torch.where(wm <= 0, VOID, wm - 1).clamp(0, VOID))
        for p, op in photometric:
            idx = _drawn(n, p, dev)
            if len(idx):
                out.index_copy_(0, idx, op(out.index_select(0, idx)))
        return out.clamp_(0.0, 1.0), masks


def build_augmentation(cfg: AugmentConfig) -> Augmenter:
    """The augmentation pipeline configured by `cfg` (see `Augmenter`)."""
    return Augmenter(cfg)


def albumentations_pipeline(c: AugmentConfig, height: int, width: int, seed: int | None = 0):
    """The kornia pipeline's operations and probabilities, per image, in albumentations 2.x (cv2).

    Masks move with the image (nearest-neighbour); pixels pulled in from outside become void.
    """
    import albumentations as A
    import cv2

    return A.Compose([
        A.HorizontalFlip(p=c.hflip_p),
        A.RandomResizedCrop(size=(height, width), scale=c.crop_scale, ratio=c.crop_ratio, p=c.crop_p),
        A.Affine(rotate=(-c.affine_degrees, c.affine_degrees),
                 translate_percent=(-c.affine_translate, c.affine_translate), scale=c.affine_scale,
                 shear=(-c.affine_shear, c.affine_shear), interpolation=cv2.INTER_LINEAR,
                 mask_interpolation=cv2.INTER_NEAREST, fill_mask=VOID, p=c.affine_p),
        A.Perspective(scale=(0.0, c.perspective_distortion / 2), fill_mask=VOID, p=c.perspective_p),
        A.ColorJitter(c.brightness, c.contrast, c.saturation, c.hue, p=c.color_jitter_p),
        A.RandomGamma(gamma_limit=(c.gamma[0] * 100, c.gamma[1] * 100), p=c.gamma_p),
        A.GaussianBlur(blur_limit=(5, 5), sigma_limit=c.blur_sigma, p=c.blur_p),
        A.MotionBlur(blur_limit=(3, c.motion_blur_kernel), p=c.motion_blur_p),
        A.GaussNoise(std_range=(c.noise_std, c.noise_std), p=c.noise_p),
    ], seed=seed)


class AlbumentationsAugmenter:
    """`Augmenter`'s interface and operations, run per image with albumentations (cv2) on the CPU.

    On the CPU this is ~2x faster than `Augmenter` at 128x160 (BENCHMARKS.md: 1318 against 603 images/s
    on one core), which keeps online augmentation within 10% of the training loop's images/s there. Each call draws its albumentations
    seed from torch's global RNG (or `seed=`), so the per-step seeding of the training loop makes a
    run, and its resume, reproducible.
    """

    def __init__(self, cfg: AugmentConfig):
        self.cfg = cfg
        self._pipes: dict[tuple[int, int], object] = {}

    def __call__(self, images: torch.Tensor, masks: torch.Tensor,
                 seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (N,3,H,W), got {tuple(images.shape)}")
        if masks.shape != (images.shape[0], *images.shape[2:]):
            raise ValueError(f"masks must be (N,H,W) matching images, got {tuple(masks.shape)}")
        if len(images) == 0:
            return images, masks.long()
        h, w = images.shape[2], images.shape[3]
        if (h, w) not in self._pipes:
            self._pipes[(h, w)] = albumentations_pipeline(self.cfg, h, w, seed=None)
        pipe = self._pipes[(h, w)]
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        pipe.set_random_seed(int(seed))  # type: ignore[attr-defined]
        img, msk = to_arrays(images, masks)
        out = [pipe(image=img[i], mask=msk[i]) for i in range(len(img))]  # type: ignore[operator]
        x = np.stack([o["image"] for o in out])
        m = np.stack([o["mask"] for o in out])
        return to_tensors(x, m, images.device)


def online_augmentation(cfg: AugmentConfig, device: str | torch.device) -> Augmenter | AlbumentationsAugmenter:
    """The faster online augmentation for `device`: kornia batched on CUDA, albumentations per image on
    the CPU (`cfg.online_backend` = kornia | albumentations overrides the choice)."""
    backend = cfg.online_backend
    if backend == "auto":
        backend = "kornia" if torch.device(device).type == "cuda" else "albumentations"
    return Augmenter(cfg) if backend == "kornia" else AlbumentationsAugmenter(cfg)


def batch_seed(seed: int, copy: int, batch: int) -> int:
    """Seed of one materialized batch: a pure function of (augment seed, copy, batch)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, copy, batch]).generate_state(1)[0] & 0x7FFFFFFF)


def to_tensors(images: np.ndarray, masks: np.ndarray, device: str | torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 NHWC images + uint8 NHW masks -> float N3HW [0,1] + long NHW on `device`."""
    x = torch.as_tensor(np.ascontiguousarray(images), device=device).permute(0, 3, 1, 2).float() / 255.0
    return x, torch.as_tensor(np.ascontiguousarray(masks), device=device).long()


def to_arrays(images: torch.Tensor, masks: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of `to_tensors` (rounded to uint8)."""
    img = torch.clamp(images * 255.0 + 0.5, 0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return img, masks.to(torch.uint8).cpu().numpy()


def augmented_scenes(cfg: Config, ctx: StageContext) -> StepResult:
    """Stage: every synthetic train scene through the augmentation `copies` times (seeded)."""
    src = ShardDataset(ctx.stage_dir("synthetic_scenes") / "train")
    device = ctx.device(cfg.project.device)
    ac = cfg.augment
    aug = build_augmentation(ac)
    out_dir = ctx.stage_dir() / "train"
    hist_in = np.zeros(VOID + 1, np.int64)
    hist_out = np.zeros(VOID + 1, np.int64)
    n_batches = (len(src) + ac.batch_size - 1) // ac.batch_size
    t0 = time.perf_counter()
    sample_img = sample_mask = None
    # same shard size as the source set (its layout is already DVC-friendly)
    shard_size = max([s["count"] for s in src.index["shards"]] + [1])
    with ShardWriter(out_dir, shard_size=shard_size,
                     extra={"source": "synthetic_scenes/train", "copies": ac.copies}) as writer:
        prog = Progress(total=ac.copies * n_batches, desc="augmenting", unit="batch")
        for copy in range(ac.copies):
            for b, (images, masks) in enumerate(src.iter_batches(ac.batch_size)):
                seed = batch_seed(ac.seed, copy, b)
                x, m = to_tensors(images, masks, device)
                xa, ma = aug(x, m, seed=seed)
                img, msk = to_arrays(xa, ma)
                start = b * ac.batch_size
                writer.add(img, msk, [{"source_index": start + i, "copy": copy, "batch_seed": seed}
                                      for i in range(len(img))])
                hist_in += class_histogram(masks)
                hist_out += class_histogram(msk)
                if sample_img is None:
                    sample_img, sample_mask = img[:8], msk[:8]
                    src_img = images[:8]
                prog.update(1)
        prog.close()
    dt = time.perf_counter() - t0
    n = ac.copies * len(src)
    rows = [{"class": name, "source %": 100.0 * hist_in[i] / max(hist_in.sum(), 1),
             "augmented %": 100.0 * hist_out[i] / max(hist_out.sum(), 1)} for i, name in enumerate(CLASSES)]
    rows.append({"class": "void", "source %": 100.0 * hist_in[VOID] / max(hist_in.sum(), 1),
                 "augmented %": 100.0 * hist_out[VOID] / max(hist_out.sum(), 1)})
    plots = {}
    if sample_img is not None:
        path = ctx.stage_dir() / "samples.png"
        save_grid(path, [src_img, sample_img], sample_mask, titles=["synthetic", "augmented"])
        plots["augmented samples"] = str(path.relative_to(ctx.root))
    return StepResult(
        metrics={"images": float(n), "void_fraction": float(hist_out[VOID] / max(hist_out.sum(), 1)),
                 "images_per_s": round(n / max(dt, 1e-9), 2)},
        tables={"class pixel frequency (%)": markdown_table(rows, floatfmt=".2f")},
        plots=plots,
        text=f"{n} augmented images ({ac.copies} copies of {len(src)} scenes) on {device}",
    )

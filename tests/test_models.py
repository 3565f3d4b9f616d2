"""Models and weight sources: the offline ImageNet weights are really ImageNet's; the hub fails fast."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from sim2real.config.train import ModelConfig
from sim2real.train import weights as W
from sim2real.train.models import ModelError, create_model, encoder_features, preprocess

TINY = ModelConfig(arch="DeepLabV3Plus", encoder="tu-test_efficientnet", encoder_weights=None)


@pytest.fixture(scope="module")
def lite0_classifier() -> torch.nn.Module:
    import timm

    net = timm.create_model("efficientnet_lite0", pretrained=False)
    net.load_state_dict(W.lite0_timm_state_dict(), strict=True)  # all 296 tensors, classifier included
    return net.eval()


def _classify(net: torch.nn.Module, image: np.ndarray) -> list[int]:
    """Top-3 ImageNet classes: the whole photo resized to 224x224, ImageNet mean/std (timm's config)."""
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=net)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    x = torch.nn.functional.interpolate(x, size=cfg["input_size"][1:], mode="bicubic", align_corners=False,
                                        antialias=True).clamp(0, 1)
    x = (x - torch.tensor(cfg["mean"]).view(1, 3, 1, 1)) / torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        return net(x)[0].topk(3).indices.tolist()


def test_offline_weights_are_imagenet(lite0_classifier: torch.nn.Module) -> None:
    from skimage import data

    cat = _classify(lite0_classifier, data.chelsea())
    coffee = _classify(lite0_classifier, data.coffee())
    assert cat[0] == 285, f"chelsea should be 285 (Egyptian cat), top-3 {cat}"
    assert set(cat) <= {281, 282, 283, 284, 285}, f"chelsea's top-3 should all be cats, got {cat}"
    assert coffee[0] == 967, f"coffee should be 967 (espresso), top-3 {coffee}"


def test_package_has_296_tensors_mapped_in_order() -> None:
    import timm

    sd = W.lite0_timm_state_dict()
    ref = timm.create_model("efficientnet_lite0", pretrained=False).state_dict()
    assert len(sd) == 296 and list(sd) == list(ref)
    assert all(sd[k].shape == ref[k].shape for k in ref)


def test_smp_encoder_gets_the_imagenet_weights() -> None:
    model = create_model(ModelConfig(encoder_weights="imagenet-offline", encoder_depth=3))
    sd = W.lite0_timm_state_dict()
    enc = model.encoder.model.state_dict()
    assert enc, "encoder has no tensors"
    assert all(torch.equal(v, sd[k]) for k, v in enc.items())
    assert "imagenet" in model.info["loaded"]


def test_offline_source_rejects_other_encoders() -> None:
    with pytest.raises(ModelError, match="only available for model.encoder"):
        create_model(ModelConfig(encoder="tu-test_efficientnet", encoder_weights="imagenet-offline"))


def test_hub_imagenet_fails_fast_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(W.WeightsError, match=r"offline .*HF_HUB_OFFLINE.*imagenet-offline"):
        create_model(ModelConfig(encoder_weights="imagenet"))
    assert time.perf_counter() - t0 < 5.0


def test_hub_probe_failure_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """No offline flag but no route: the probe answers within its timeout (here a refused loopback port)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("SIM2REAL_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://127.0.0.1")  # nothing listens on 443 here
    t0 = time.perf_counter()
    with pytest.raises(W.WeightsError, match="cannot reach 127.0.0.1"):
        create_model(ModelConfig(encoder="tu-test_efficientnet", encoder_weights="imagenet"))
    assert time.perf_counter() - t0 < 5.0


@pytest.mark.parametrize("field,value,match", [
    ("arch", "NoSuchNet", "model.arch: unknown architecture 'NoSuchNet'; choose one of .*DeepLabV3Plus"),
    ("encoder", "no_such_encoder", "model.encoder: unknown encoder 'no_such_encoder'; choose one of .*resnet18"),
    ("encoder", "tu-no_such_model", "timm has no model 'no_such_model'"),
])
def test_bad_names_list_the_choices(field: str, value: str, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        create_model(TINY.model_copy(update={field: value}))


def test_same_seed_same_weights_any_size() -> None:
    a, b = create_model(TINY), create_model(TINY)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    c = create_model(TINY.model_copy(update={"init_seed": 1}))
    assert not all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values(), strict=True))
    x = preprocess(np.zeros((2, 30, 45, 3), np.uint8), "cpu")  # not a multiple of the stride: padded
    assert a.eval()(x).shape == (2, 11, 30, 45)
    assert encoder_features(a, x).shape[0] == 2


def test_preprocess_normalizes_and_checks() -> None:
    x = preprocess(np.full((1, 4, 4, 3), 255, np.uint8), "cpu")
    assert x.shape == (1, 3, 4, 4) and torch.allclose(x[0, :, 0, 0], torch.tensor(
        [(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225]))
    with pytest.raises(ValueError, match="uint8"):
        preprocess(np.zeros((1, 4, 4, 3), np.float32), "cpu")

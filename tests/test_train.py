"""The training loop, fine-tuning strategies and checkpoints on tiny images (32x48, a tiny encoder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_train_support import TINY_OVERRIDES, scenes

from sim2real.config.train import ModelConfig
from sim2real.taxonomy import CLASS_ID, VOID
from sim2real.train import checkpoint as ckpt
from sim2real.train.loop import ArrayData, TrainJob, batch_indices, class_weights, train
from sim2real.train.models import create_model
from sim2real.train.strategies import STRATEGIES, get_strategy, model_units

TINY = ModelConfig(arch="DeepLabV3Plus", encoder="tu-test_efficientnet", encoder_weights=None)
PARAMS = {"model": TINY.model_dump(mode="json"), "overrides": TINY_OVERRIDES}


@pytest.fixture(scope="module")
def data() -> ArrayData:
    return ArrayData(*scenes(16, 0))


def _job(**kw) -> TrainJob:
    base = dict(name="test", steps=6, batch_size=4, lr=3e-3, stage="test", eval_every=100, params=PARAMS,
                init={"kind": "init"})
    base.update(kw)
    return TrainJob(**base)


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _changed(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> dict[str, bool]:
    """Unit name -> any of its tensors (parameters or running statistics) changed."""
    names = {id(m): n for n, m in model.named_modules()}
    out = {}
    for unit, modules in model_units(model, 3).items():
        keys = [f"{names[id(m)]}.{k}" for m in modules for k, _ in
                list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False))]
        out[unit] = any(not torch.equal(model.state_dict()[k], before[k]) for k in keys)
    return out


def test_a_few_steps_reduce_the_loss(data: ArrayData, tmp_path: Path) -> None:
    model = create_model(TINY)
    result = train(model, _job(steps=24, eval_every=12), data, {"real": data}, tmp_path, progress=False)
    losses = [r["train/loss"] for r in result.history]
    assert np.mean(losses[-4:]) < 0.7 * np.mean(losses[:4]), losses
    assert result.best_metric > 0.1 and result.best_step in (12, 24)
    assert (tmp_path / "dvclive" / "metrics.json").exists()
    assert (tmp_path / "dvclive" / "plots" / "metrics" / "train" / "loss.tsv").exists()


@pytest.mark.parametrize("name,expected", [
    ("full", {"encoder.0": True, "encoder.1": True, "encoder.2": True, "decoder": True, "head": True}),
    ("discriminative", {"encoder.0": True, "encoder.1": True, "encoder.2": True, "decoder": True, "head": True}),
    ("frozen_encoder", {"encoder.0": False, "encoder.1": False, "encoder.2": False, "decoder": True, "head": True}),
    ("head_only", {"encoder.0": False, "encoder.1": False, "encoder.2": False, "decoder": False, "head": True}),
])
def test_strategy_trains_exactly_its_parameters(name: str, expected: dict, data: ArrayData, tmp_path: Path) -> None:
    model = create_model(TINY)
    before = _snapshot(model)
    train(model, _job(strategy=name, steps=4), data, {}, tmp_path, live=False, progress=False)
    assert _changed(model, before) == expected
    if name == "discriminative":
        groups = ckpt.read_checkpoint(tmp_path / "last.pt")["optimizer"]["param_groups"]
        enc, head = groups[0], groups[1]
        assert enc["max_lr"] == pytest.approx(0.1 * head["max_lr"])


def test_head_only_starts_from_a_fresh_head(data: ArrayData, tmp_path: Path) -> None:
    model = create_model(TINY)
    with torch.no_grad():
        for p in model.segmentation_head.parameters():
            p.fill_(0.5)  # a "pretrained" head
    get_strategy("head_only").prepare(model, seed=0)
    assert not all(torch.all(p == 0.5) for p in model.segmentation_head.parameters())


def test_gradual_unfreezes_deepest_first(data: ArrayData, tmp_path: Path) -> None:
    # 8 steps, 3 encoder chunks -> phases of 2 steps: head+decoder, +chunk 2, +chunk 1, +chunk 0
    expected_by_pause = {
        2: {"encoder.0": False, "encoder.1": False, "encoder.2": False, "decoder": True, "head": True},
        4: {"encoder.0": False, "encoder.1": False, "encoder.2": True, "decoder": True, "head": True},
        6: {"encoder.0": False, "encoder.1": True, "encoder.2": True, "decoder": True, "head": True},
        8: {"encoder.0": True, "encoder.1": True, "encoder.2": True, "decoder": True, "head": True},
    }
    model = create_model(TINY)
    start = _snapshot(model)
    for pause, expected in expected_by_pause.items():
        train(model, _job(strategy="gradual", steps=8, unfreeze_groups=3), data, {}, tmp_path, live=False,
              progress=False, stop_at=pause)
        assert _changed(model, start) == expected, f"after {pause} steps"


def test_all_strategies_registered() -> None:
    assert set(STRATEGIES) == {"full", "frozen_encoder", "head_only", "discriminative", "gradual"}
    with pytest.raises(ValueError, match="choose one of"):
        get_strategy("nope")


def test_batches_are_a_function_of_seed_and_step() -> None:
    a = [batch_indices(10, 4, seed=3, step=s) for s in range(5)]
    b = [batch_indices(10, 4, seed=3, step=s) for s in reversed(range(5))][::-1]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    # one epoch = every sample once
    assert sorted(np.concatenate([batch_indices(12, 4, 0, s) for s in range(3)]).tolist()) == list(range(12))


def test_synthetic_mixing_counts(data: ArrayData, tmp_path: Path) -> None:
    result = train(create_model(TINY), _job(steps=2, synthetic_mix=0.5), data, {}, tmp_path, live=False,
                   progress=False, mix_data=ArrayData(*scenes(8, 1)))
    assert result.synthetic_images_seen == 4 and result.real_images_seen == 4


def test_class_balance_weights_rare_classes_up_from_the_labels_a_batch_draws() -> None:
    images = np.zeros((2, 4, 10, 3), np.uint8)
    masks = np.full((2, 4, 10), CLASS_ID["Road"], np.uint8)
    masks[:, 0, :2] = CLASS_ID["Pole"]  # 4 pixels
    masks[:, 1, :] = CLASS_ID["Sky"]  # 20
    masks[:, 2, :] = VOID  # void never counts
    data = ArrayData(images, masks)
    assert class_weights(_job(), data) is None  # class_balance 0: plain cross-entropy
    w = class_weights(_job(class_balance=1.0), data)
    # pixels (void excluded): Pole 4, Sky 20, Road 36 -> median 20
    assert w[CLASS_ID["Pole"]].item() == pytest.approx(5.0)
    assert w[CLASS_ID["Sky"]].item() == pytest.approx(1.0)
    assert w[CLASS_ID["Road"]].item() == pytest.approx(20 / 36)
    assert w[CLASS_ID["Car"]].item() == 1.0  # absent
    half = class_weights(_job(class_balance=0.5), data)
    assert half[CLASS_ID["Pole"]].item() == pytest.approx(5.0 ** 0.5)
    # the synthetic mix counts at its share of the batch: all-Car synthetic labels make Car common
    mix = ArrayData(images, np.full((2, 4, 10), CLASS_ID["Car"], np.uint8))
    mixed = class_weights(_job(class_balance=1.0, synthetic_mix=0.5), data, mix)
    assert mixed[CLASS_ID["Car"]].item() < 1.0 < mixed[CLASS_ID["Pole"]].item()
    with pytest.raises(ValueError, match="all void"):
        class_weights(_job(class_balance=1.0), ArrayData(images, np.full((2, 4, 10), VOID, np.uint8)))


def test_class_balanced_training_runs_and_changes_the_updates(data: ArrayData, tmp_path: Path) -> None:
    plain = train(create_model(TINY), _job(steps=3), data, {}, tmp_path / "plain", live=False, progress=False)
    balanced = train(create_model(TINY), _job(steps=3, class_balance=1.0), data, {}, tmp_path / "balanced",
                     live=False, progress=False)
    assert all(np.isfinite(r["train/loss"]) for r in balanced.history)
    assert [r["train/loss"] for r in plain.history] != [r["train/loss"] for r in balanced.history]


def test_checkpoint_roundtrip_and_load_model(data: ArrayData, tmp_path: Path) -> None:
    model = create_model(TINY)
    train(model, _job(steps=2), data, {}, tmp_path, live=False, progress=False)
    loaded, info = ckpt.load_model(tmp_path / "best.pt")
    assert not loaded.training
    assert info["stage"] == "test" and info["step"] == 2 and info["init"] == {"kind": "init"}
    assert info["params"]["model"]["encoder"] == "tu-test_efficientnet"
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values(),
                                                 strict=True))


class _Payload:
    """A pickled object whose unpickling would run code (what weights-only loading must refuse)."""

    def __reduce__(self):
        return (print, ("this ran while loading a checkpoint",))


def test_foreign_pickle_payload_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "model.pt"
    torch.save({"format": ckpt.FORMAT, "model": {}, "extra": _Payload()}, bad)
    with pytest.raises(ckpt.CheckpointError, match="refused: the file holds a pickle payload"):
        ckpt.load_model(bad)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(ckpt.CheckpointError, match="not a sim2real checkpoint"):
        ckpt.load_model(other)
    with pytest.raises(ckpt.CheckpointError, match="not found"):
        ckpt.load_model(tmp_path / "missing.pt")


def test_checkpoint_write_is_atomic(tmp_path: Path) -> None:
    path = ckpt.save_checkpoint(tmp_path / "a.pt", {"step": 1})
    ckpt.save_checkpoint(path, {"step": 2})
    assert ckpt.read_checkpoint(path)["step"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]  # no temp files left behind


def test_early_stopping_on_no_improvement(data: ArrayData, tmp_path: Path) -> None:
    # a vanishing lr barely moves val mIoU (only batch-norm statistics drift): it soon stops improving
    result = train(create_model(TINY), _job(steps=20, eval_every=1, patience=2, lr=1e-12), data, {"real": data},
                   tmp_path, live=False, progress=False)
    scores = [r["val/real_miou"] for r in result.history]
    best, bad, expected_stop = -1.0, 0, 20
    for step, score in enumerate(scores, start=1):
        best, bad = (score, 0) if score > best else (best, bad + 1)
        if bad >= 2:
            expected_stop = step
            break
    assert expected_stop < 20, f"metric kept improving: {scores}"
    assert result.steps_done == expected_stop == len(scores)
    assert result.best_metric == max(scores)


@pytest.mark.parametrize("override,match", [
    ("model.encoder_weights=imagenet-online", "model.encoder_weights"),
    ("finetune.seeds=[1, 1]", "finetune.seeds has duplicates"),
    ("finetune.strategy=everything", "finetune.strategy"),
    ("finetune.synthetic_mix=1.5", "finetune.synthetic_mix"),
    ("pretrain.class_balance=2", "pretrain.class_balance"),
])
def test_bad_train_params_name_the_key(override: str, match: str) -> None:
    from test_train_support import tiny_config

    from sim2real.config import ConfigError

    with pytest.raises(ConfigError, match=match):
        tiny_config([override])

"""Layer-wise transferability: exactly the unfrozen encoder stages train; the k x seed grid; a tiny curve."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sim2real import dvcyaml
from sim2real.config import ConfigError, load_config
from sim2real.stages import get_stage
from sim2real.train import checkpoint as ckpt
from sim2real.train.loop import ArrayData, TrainJob, train
from sim2real.train.models import create_model
from sim2real.transfer.freeze import StagesFrozen, encoder_stages, owners
from sim2real.transfer.runs import parse_item, run_dir
from tests.conftest import make_project

REPO = Path(__file__).resolve().parents[1]


def _tensors(modules: list[torch.nn.Module]) -> list[torch.Tensor]:
    return [t.detach().clone() for m in modules for t in (*m.parameters(recurse=False), *m.buffers(recurse=False))
            if t.is_floating_point()]


def _data(n: int, seed: int) -> ArrayData:
    """Random images, labels in vertical bands of every class (and void)."""
    cols = ((np.arange(48) // 4) % 12).astype(np.uint8)
    masks = np.broadcast_to(cols[None, None, :], (n, 32, 48)).copy()
    return ArrayData(np.random.default_rng(seed).integers(0, 255, (n, 32, 48, 3)).astype(np.uint8), masks)


def test_encoder_stages_split_the_encoder_without_overlap() -> None:
    model = create_model(load_config(REPO / "params.yaml").model)
    stages = encoder_stages(model)
    assert len(stages) == 5 and all(stages)
    ids = [id(m) for s in stages for m in s]
    assert len(ids) == len(set(ids)) and set(ids) == {id(m) for m in owners(model.encoder)}
    with pytest.raises(ValueError, match="transfer.frozen: k=6 is not in 0..5"):
        StagesFrozen(model, 6)


def test_exactly_the_unfrozen_stages_train(tmp_path: Path) -> None:
    """Stages 1..k: weights and BN statistics bit-identical after training; every other tensor moved."""
    cfg = load_config(REPO / "params.yaml", profile="tiny")
    model = create_model(cfg.model)
    k = 2
    stages = encoder_stages(model)
    frozen_before = _tensors([m for s in stages[:k] for m in s])
    rest_modules = [m for s in stages[k:] for m in s] + owners(model.decoder) + owners(model.segmentation_head)
    rest_before = _tensors(rest_modules)
    per_stage_before = [_tensors(st) for st in stages[k:]]
    job = TrainJob(name="freeze test", steps=3, batch_size=4, lr=1e-2, stage="test", eval_every=3,
                   checkpoint_every=0, warmup_frac=0.0, strategy="full", hflip=True, params=cfg.to_dict(),
                   init={"kind": "test"})
    data = _data(8, 0)
    wrapped = StagesFrozen(model, k)
    result = train(wrapped, job, data, {"real": data}, tmp_path / "run", device="cpu")
    assert result.steps_done == 3
    frozen_after = _tensors([m for s in stages[:k] for m in s])
    assert frozen_before and all(torch.equal(a, b) for a, b in zip(frozen_before, frozen_after, strict=True))
    rest_after = _tensors(rest_modules)
    changed = [not torch.equal(a, b) for a, b in zip(rest_before, rest_after, strict=True)]
    assert all(changed), f"only {sum(changed)} of {len(changed)} trainable tensors changed"
    for i, (st, before) in enumerate(zip(stages[k:], per_stage_before, strict=True)):  # every unfrozen stage trained
        assert any(not torch.equal(a, b) for a, b in zip(before, _tensors(st), strict=True)), f"stage {k + i + 1}"
    assert all(not p.requires_grad for s in stages[:k] for m in s for p in m.parameters(recurse=False))
    # the checkpoint is a plain model's: it loads as one
    loaded, _ = ckpt.load_model(result.best_path)
    assert set(loaded.state_dict()) == set(model.state_dict())


def test_grid_is_k_x_seed_and_items_name_the_out_dirs() -> None:
    from orchestration.assets import partitions_for

    cfg = load_config(REPO / "params.yaml", overrides=["transfer.frozen=[0,2,5]", "transfer.seeds=[0,1]"])
    stage = get_stage("transfer_ablation")
    entry = yaml.safe_load(dvcyaml.render())["stages"]["transfer_ablation"]
    assert entry["matrix"] == {"k": "${transfer.frozen}", "seed": "${transfer.seeds}"}
    assert "transfer.frozen" not in entry["params"]
    items = stage.items(cfg)
    assert items == ["0-0", "0-1", "2-0", "2-1", "5-0", "5-1"]
    assert partitions_for(stage, cfg).get_partition_keys() == items
    for item in items:
        k, seed = parse_item(item)
        assert run_dir(REPO, k, seed) == REPO / stage.out_dir(item)
    with pytest.raises(ConfigError, match="transfer.frozen"):
        load_config(REPO / "params.yaml", overrides=["transfer.frozen=[1,1]"])


@pytest.mark.e2e  # a whole tiny chain
def test_tiny_transfer_curve(tmp_path: Path) -> None:
    from sim2real.runner import run_stage

    root = make_project(tmp_path / "proj", dvc=False)
    cfg = load_config(root / "params.yaml", overrides=["style.ablation=[reinhard]"])
    for name, item in [("synthetic_scenes", None), ("real_target", None), ("augmented_scenes", None),
                       ("styled_scenes", "reinhard"), ("pretrained_model", "reinhard")]:
        run_stage(name, item, root=root, cfg=cfg)
    for item in get_stage("transfer_ablation").items(cfg):
        run_stage("transfer_ablation", item, root=root, cfg=cfg)
    run = json.loads((root / "data/transfer_ablation/k-2/seed-0/run.json").read_text())
    assert set(run["arms"]) == {"synthetic", "imagenet"} and run["arms"]["synthetic"]["stages"] == 5
    result = run_stage("transfer_curve", root=root, cfg=cfg)
    out = root / "data/transfer_curve"
    assert (out / "curve.png").stat().st_size > 10_000
    md = (out / "curve.md").read_text()
    assert "budgets: every run fine-tunes 2 steps" in md and "synthetic-pretrained" in md and "ImageNet-only" in md
    doc = json.loads((out / "curve.json").read_text())
    assert [p["k"] for p in doc["points"]["synthetic"]] == [0, 2]
    assert "synthetic_k0_val_miou" in result.metrics and result.plots


def test_the_reading_says_how_deep_the_encoder_transfers() -> None:
    from sim2real.transfer.curve import reading, transferable_depth

    def pts(*means: tuple[int, float]) -> list[dict]:
        return [{"k": k, "mean": m, "spread": 0.0, "seeds": 1, "values": [m]} for k, m in means]

    assert transferable_depth(pts((0, 40.0), (1, 39.5), (3, 36.0), (5, 30.0))) == 1
    assert transferable_depth(pts((0, 40.0), (2, 41.0), (5, 39.5))) == 5
    assert transferable_depth(pts((2, 40.0))) is None
    lines = reading({"synthetic": pts((0, 40.0), (1, 39.5), (3, 36.0)), "imagenet": pts((0, 30.0), (3, 20.0))}, 5)
    assert "stages 1..1 of 5 transfer as they are; the stages above 1 must adapt" in lines[0]
    assert "must adapt" in lines[1] and lines[2].startswith("Synthetic pretraining vs ImageNet-only init") \
        and "+10.0" in lines[2]
    # costs more than the tolerance at k = 3, not at k = 5: said to be inconclusive, not "must adapt"
    bumpy = reading({"synthetic": pts((0, 46.4), (3, 45.1), (5, 47.5)), "imagenet": pts((0, 30.0), (5, 29.5))}, 5)
    assert bumpy[0].startswith("synthetic-pretrained: inconclusive: freezing 1..3 costs more than the tolerance "
                               "but freezing 1..5 does not")


def test_runs_that_peak_at_their_last_validation_are_flagged() -> None:
    from sim2real.transfer.curve import budget_warnings

    def run(syn_best: int, img_best: int) -> dict:
        return {"arms": {"synthetic": {"best_step": syn_best, "steps": 160},
                         "imagenet": {"best_step": img_best, "steps": 160}}}

    warnings = budget_warnings([run(120, 160), run(160, 160), run(80, 120)])
    assert len(warnings) == 1 and warnings[0].startswith("WARNING ImageNet-only: best at the last validation in 2 of 3")
    assert budget_warnings([run(120, 80), run(40, 120)]) == []

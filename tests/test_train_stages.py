"""The three training stages through `sim2real.runner.run_stage` in a tmp root with tiny data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from test_train_support import make_tiny_root

from sim2real.runner import run_stage
from sim2real.train.checkpoint import load_model
from tests.conftest import scratch

pytestmark = pytest.mark.e2e  # trains a whole tiny chain: not in `make test-fast`


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Iterator[tuple[Path, dict]]:
    with scratch(tmp_path_factory, "stages") as root:
        cfg = make_tiny_root(root)
        results = {
            "pretrained_model": run_stage("pretrained_model", item="none", root=root, cfg=cfg),
            "finetuned_model": run_stage("finetuned_model", root=root, cfg=cfg),
            "real_only_model": run_stage("real_only_model", root=root, cfg=cfg),
        }
        yield root, results


def test_pretrained_model_outputs(trained) -> None:
    root, results = trained
    out = root / "data" / "pretrained_model" / "none"
    model, info = load_model(out / "model.pt")
    assert info["stage"] == "pretrained_model" and info["init"]["encoder_weights"] is None
    assert info["budget"]["pretrain_steps"] == 12 and info["budget"]["images_seen"] == 48
    assert info["step"] in (6, 12)  # selected on real val at one of the validations
    assert "val/real_miou" in info["metrics"] and "val/synthetic_miou" in info["metrics"]
    r = results["pretrained_model"]
    # the checkpoint keeps the loop's fraction; the stage reports mIoU points (one unit everywhere)
    assert r.metrics["real_miou"] == pytest.approx(100 * info["metrics"]["val/real_miou"], abs=1e-3)
    on_disk = json.loads((out / "metrics.json").read_text())  # the file a person opens: points too
    assert on_disk["real_miou"] == pytest.approx(r.metrics["real_miou"], abs=1e-3)
    assert on_disk["best_metric"] == pytest.approx(100 * info["metrics"]["best_metric"], abs=1e-3)
    assert (root / r.plots["pretraining curves (none)"]).exists()
    # the DVCLive plots a person opens (`dvc plots show`) are in points too; history.json is the loop's record
    rows = [r.split("\t") for r in (out / "dvclive" / "plots" / "metrics" / "val" / "real_miou.tsv").read_text().split("\n")
            if r.strip()]
    step_col, value_col = rows[0].index("step"), rows[0].index("real_miou")
    plotted = {int(r[step_col]): float(r[value_col]) for r in rows[1:]}
    history = {h["step"]: h["val/real_miou"] for h in json.loads((out / "history.json").read_text())
               if "val/real_miou" in h}
    assert plotted.keys() == history.keys() and plotted[info["step"]] == pytest.approx(on_disk["real_miou"], abs=1e-3)
    assert all(v == pytest.approx(100 * history[k], abs=1e-4) for k, v in plotted.items())
    assert not list(out.glob("*.partial")) and not (out.parent / ".none.partial").exists()
    assert json.loads((root / "data" / "metrics" / "pretrained_model-none.json").read_text())["steps"] == 12


def test_pretrain_select_picks_the_checkpoint_on_that_val_set(tmp_path: Path) -> None:
    """pretrain.select=synthetic: the published step is the best synthetic-val validation, whatever real val
    says (no real label touches a source-only model); `real` picks on real val."""
    for select in ("synthetic", "real"):
        root = tmp_path / select
        cfg = make_tiny_root(root, [f"pretrain.select={select}", "pretrain.eval_every=3"])
        res = run_stage("pretrained_model", item="none", root=root, cfg=cfg)
        out = root / "data" / "pretrained_model" / "none"
        evals = [h for h in json.loads((out / "history.json").read_text()) if f"val/{select}_miou" in h]
        assert len(evals) == 4
        best = max(evals, key=lambda h: h[f"val/{select}_miou"])  # the first of equals wins, like the loop
        _, info = load_model(out / "model.pt")
        assert info["step"] == best["step"], (select, [(h["step"], h[f"val/{select}_miou"]) for h in evals])
        assert res.extra["select"] == select and f"on {select} val" in next(iter(res.tables))
    with pytest.raises(Exception, match="pretrain.select"):
        make_tiny_root(tmp_path / "bad", ["pretrain.select=test"])


def test_finetuned_model_per_seed(trained) -> None:
    root, results = trained
    out = root / "data" / "finetuned_model"
    for seed in (0, 1):
        model, info = load_model(out / f"seed-{seed}" / "model.pt")
        assert info["init"]["kind"] == "checkpoint"
        assert info["init"]["checkpoint"] == "data/pretrained_model/none/model.pt"
        b = info["budget"]
        assert b["finetune_steps"] == 8 and b["pretrain_steps"] == 12 and b["total_steps"] == 20
        assert b["real_images_seen"] == 32 and b["synthetic_images_seen"] == 48
    m = results["finetuned_model"].metrics
    assert m["seeds"] == 2 and 0 <= m["real_val_miou_mean"] <= 100  # points, like every report
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["real_val_miou_mean"] == pytest.approx(m["real_val_miou_mean"], abs=1e-3)
    seed0 = json.loads((out / "seed-0" / "metrics.json").read_text())
    assert seed0["real_miou"] == pytest.approx(m["real_val_miou_seed0"], abs=1e-3)
    assert {"real_val_miou_seed0", "real_val_miou_seed1", "real_val_miou_std"} <= set(m)
    assert (root / results["finetuned_model"].plots["finetuned_model curves"]).exists()


def test_real_only_starts_from_the_pretraining_init(trained) -> None:
    root, results = trained
    _, pre = load_model(root / "data" / "pretrained_model" / "none" / "model.pt")
    for seed in (0, 1):
        _, info = load_model(root / "data" / "real_only_model" / f"seed-{seed}" / "model.pt")
        assert info["init"] == pre["init"]  # same weight source, seed and bit-identical start weights
        assert info["budget"]["total_steps"] == 20  # pretrain.steps + finetune.steps: a fair budget
        assert info["budget"]["synthetic_images_seen"] == 0
    assert results["real_only_model"].metrics["total_steps"] == 20


def test_models_predict(trained) -> None:
    root, _ = trained
    from sim2real.shards import ShardDataset
    from sim2real.train.models import preprocess

    images, _ = ShardDataset(root / "data" / "real_target" / "val").arrays()
    model, _ = load_model(root / "data" / "finetuned_model" / "seed-0" / "model.pt")
    with torch.no_grad():
        assert model(preprocess(images[:2], "cpu")).shape == (2, 11, 32, 48)


def test_missing_upstream_is_a_clear_error(tmp_path: Path) -> None:
    cfg = make_tiny_root(tmp_path)
    with pytest.raises(FileNotFoundError, match="pretrained checkpoint not found; run `sim2real run "
                                                "pretrained_model --item none`"):
        run_stage("finetuned_model", root=tmp_path, cfg=cfg)

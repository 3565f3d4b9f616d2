"""The label-budget curve: labels-saved arithmetic, the fair-budget rule, the N x seed grid, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sim2real import dvcyaml
from sim2real.config import ConfigError, load_config
from sim2real.label_budget.curve import Point, aggregate, labels_saved, paired_gain
from sim2real.label_budget.runs import STAGE, parse_item, run_dir
from sim2real.stages import get_stage

REPO = Path(__file__).resolve().parents[1]


def _pts(*pairs: tuple[int, float]) -> list[Point]:
    return [Point(n, m, 0.0, 1) for n, m in pairs]


# ---------------------------------------------------------------- labels saved on hand-made curves
def test_labels_saved_interpolates_in_log_n() -> None:
    s = labels_saved(_pts((0, 20.0), (10, 40.0), (100, 60.0)), target=50.0, n_all=367)
    assert not s.extrapolated
    assert s.n_match == pytest.approx(10 ** 1.5)  # halfway between 10 and 100 in log N
    assert s.saved == pytest.approx(367 - 10 ** 1.5)
    assert 0 < s.saved_fraction < 1


def test_labels_saved_from_the_source_only_point_is_linear_in_n() -> None:
    s = labels_saved(_pts((0, 20.0), (10, 40.0)), target=30.0, n_all=100)
    assert s.n_match == pytest.approx(5.0) and not s.extrapolated


def test_labels_saved_beyond_the_tested_sizes_is_flagged_as_extrapolation() -> None:
    s = labels_saved(_pts((0, 20.0), (10, 40.0), (100, 50.0)), target=55.0, n_all=367)
    assert s.extrapolated and s.n_match == pytest.approx(10 ** 2.5)
    assert "extrapolated" in s.note


def test_labels_saved_reached_before_the_smallest_n_is_flagged() -> None:
    s = labels_saved(_pts((5, 50.0), (10, 60.0)), target=45.0, n_all=367)
    assert s.extrapolated and s.n_match < 5


def test_labels_saved_not_reached_on_a_flat_curve() -> None:
    s = labels_saved(_pts((0, 20.0), (10, 40.0), (100, 39.0)), target=55.0, n_all=367)
    assert s.n_match is None and s.saved is None and "not rising" in s.note


def test_source_only_matching_saves_every_label() -> None:
    s = labels_saved(_pts((0, 60.0), (10, 61.0)), target=55.0, n_all=367)
    assert s.n_match == 0 and s.saved == 367


def test_aggregate_and_paired_gain() -> None:
    pts = aggregate({10: [40.0, 42.0], 5: [30.0]})
    assert [p.n for p in pts] == [5, 10] and pts[1].mean == 41.0 and pts[1].spread == 1.0
    mean, spread, k = paired_gain({0: 45.0, 1: 44.0, 2: 50.0}, {0: 40.0, 1: 41.0})
    assert (mean, spread, k) == (4.0, 1.0, 2)


# ---------------------------------------------------------------- the fair-budget rule
def test_a_short_real_only_budget_is_an_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"label_budget\.real_only_steps=100 is below"):
        load_config(REPO / "params.yaml", overrides=["label_budget.real_only_steps=100"])
    with pytest.raises(ConfigError, match=r"finetune\.real_only_steps=5 is below"):
        load_config(REPO / "params.yaml", overrides=["finetune.real_only_steps=5"])
    cfg = load_config(REPO / "params.yaml", profile="camvid")
    lb = cfg.label_budget
    for n in (1, 5, 10, 25, 50, 367):
        assert lb.real_only_budget(cfg.pretrain.steps, n) >= cfg.pretrain.steps + lb.finetune_steps(n)
    # a generous explicit budget is accepted and used
    ok = load_config(REPO / "params.yaml", overrides=["label_budget.real_only_steps=100000"])
    assert ok.label_budget.real_only_budget(ok.pretrain.steps, 10) == 100000


def test_bad_sizes_and_seeds_are_errors() -> None:
    for bad in ("label_budget.sizes=[0]", "label_budget.sizes=[5,5]", "label_budget.seeds=[-1]",
                "label_budget.sizes=[some]"):
        with pytest.raises(ConfigError, match="label_budget"):
            load_config(REPO / "params.yaml", overrides=[bad])


# ---------------------------------------------------------------- the grid: DVC matrix, Dagster partitions
def test_dvc_matrix_and_dagster_partitions_are_the_n_x_seed_grid() -> None:
    from orchestration.assets import partitions_for

    cfg = load_config(REPO / "params.yaml", overrides=["label_budget.sizes=[5,10,all]", "label_budget.seeds=[0,1]"])
    rendered = yaml.safe_load(dvcyaml.render())["stages"]
    for arm, name in STAGE.items():
        stage = get_stage(name)
        entry = rendered[name]
        assert entry["matrix"] == {"n": "${label_budget.sizes}", "seed": "${label_budget.seeds}"}
        assert entry["cmd"].endswith("--item ${item.n}-${item.seed}")
        assert "label_budget.sizes" not in entry["params"] and "label_budget.seeds" not in entry["params"]
        items = stage.items(cfg)
        assert items == ["5-0", "5-1", "10-0", "10-1", "all-0", "all-1"]  # DVC's names: <stage>@10-1
        assert partitions_for(stage, cfg).get_partition_keys() == items
        for item in items:
            label, _, seed = item.partition("-")
            assert run_dir(REPO, label, int(seed), arm) == REPO / stage.out_dir(item)
    assert parse_item("all-2", 367) == ("all", 367, 2) and parse_item("500-0", 367) == ("500", 367, 0)
    with pytest.raises(ValueError, match="<N>-<seed>"):
        parse_item("ten-0", 367)


def test_the_real_only_arm_reads_no_fine_tuning_recipe_and_no_synthetic_data() -> None:
    """So a recipe search over fine-tuning knobs re-uses the real-only runs (DVC run cache) instead of
    training them again: the real-only stage must not depend on any knob of the synthetic arm."""
    rendered = yaml.safe_load(dvcyaml.render())["stages"]
    real_only, synthetic = rendered[STAGE["real_only"]], rendered[STAGE["synthetic"]]
    keys = {k for group in real_only["params"] for k in ([group] if isinstance(group, str) else list(group))}
    recipe = {"finetune.strategy", "finetune.lr", "finetune.synthetic_mix", "finetune.encoder_lr_factor",
              "finetune.unfreeze_groups", "style.method"}
    assert not keys & recipe, keys & recipe
    assert not any(d.startswith(("data/pretrained_model", "data/styled_scenes")) for d in real_only["deps"])
    syn_keys = {k for group in synthetic["params"] for k in ([group] if isinstance(group, str) else list(group))}
    assert recipe <= syn_keys  # ... while every recipe knob re-runs the synthetic arm


def _arm_json(arm: str, *, picks: list[int], total: int, miou: float) -> dict:
    split = {"miou": miou, "images": 4, "class_iou": {}}
    return {"arm": arm, "n": 2, "n_label": "2", "seed": 0, "pretrain_steps": 10, "finetune_steps": 5,
            "real_only_steps": total if arm == "real_only" else 15, "total_steps": total, "steps": total,
            "best_step": total, "val": split, "test": split, "picks": picks, "pool_size": 8}


def _write_point(root: Path, syn: dict, ro: dict) -> None:
    for arm, doc in (("synthetic", syn), ("real_only", ro)):
        d = run_dir(root, "2", 0, arm)
        d.mkdir(parents=True, exist_ok=True)
        (d / "run.json").write_text(json.dumps(doc))


def test_the_curve_refuses_arms_that_are_not_comparable(tmp_path: Path) -> None:
    from sim2real.label_budget.stage import FairnessError, load_runs

    cfg = load_config(REPO / "params.yaml", overrides=["label_budget.sizes=[2]", "label_budget.seeds=[0]"])
    with pytest.raises(FileNotFoundError, match=r"label_budget_synthetic --item 2-0"):
        load_runs(cfg, tmp_path)
    _write_point(tmp_path, _arm_json("synthetic", picks=[1, 4], total=15, miou=40.0),
                 _arm_json("real_only", picks=[1, 4], total=15, miou=38.0))
    run = load_runs(cfg, tmp_path)[0]
    assert run["gain_test"] == 2.0 and run["real_only_steps"] == 15
    # other images: a different draw (e.g. real.seed changed for one arm only)
    _write_point(tmp_path, _arm_json("synthetic", picks=[1, 4], total=15, miou=40.0),
                 _arm_json("real_only", picks=[2, 4], total=15, miou=38.0))
    with pytest.raises(FairnessError, match="different real images"):
        load_runs(cfg, tmp_path)
    # a real-only run with fewer steps than pretraining + fine-tuning (e.g. pretrain.steps raised since)
    _write_point(tmp_path, _arm_json("synthetic", picks=[1, 4], total=15, miou=40.0),
                 _arm_json("real_only", picks=[1, 4], total=12, miou=38.0))
    with pytest.raises(FairnessError, match=r"real-only budget 12 steps is below the synthetic arm's 15"):
        load_runs(cfg, tmp_path)


# ---------------------------------------------------------------- end to end on the tiny profile
@pytest.mark.e2e
def test_quick_label_budget_end_to_end_and_one_n_reruns_alone(repro_project: Path) -> None:
    """`dvc repro` built the curve; adding one N makes only that run (and the curve) stale."""
    from tests.conftest import BIN, run

    root = repro_project
    out = root / "data" / "label_budget"
    curve = json.loads((out / "curve.json").read_text())
    assert (out / "curve.png").stat().st_size > 10_000 and "labels saved" in (out / "curve.md").read_text()
    test = curve["test"]
    assert [p["n"] for p in test["synthetic"]] == [2, 12] and [p["n"] for p in test["real_only"]] == [2, 12]
    for r in curve["budgets"]:  # the fair rule, as it ran
        assert r["real-only steps"] >= r["pretrain steps"] + r["fine-tune steps"]
    syn = json.loads((root / "data/label_budget_synthetic/n-2/seed-0/run.json").read_text())
    ro = json.loads((root / "data/label_budget_real_only/n-2/seed-0/run.json").read_text())
    assert ro["steps"] >= syn["total_steps"] == syn["pretrain_steps"] + syn["finetune_steps"]
    assert len(syn["picks"]) == 2 and syn["picks"] == ro["picks"]
    # the loss of each arm and of the pretraining behind the synthetic one are on record
    assert syn["class_balance"] == ro["class_balance"] == 0.0 and syn["pretrain_class_balance"] == 0.0
    assert syn["pretrain_select"] == "real"

    import duckdb

    con = duckdb.connect(str(root / "data/store/sim2real.duckdb"), read_only=True)
    rows = con.execute("SELECT arm, n, split, miou FROM label_budget ORDER BY arm, n, split").fetchall()
    con.close()
    assert {(a, n) for a, n, _, _ in rows} == {("source_only", 0), ("synthetic", 2), ("synthetic", 12),
                                               ("real_only", 2), ("real_only", 12)}
    assert all(0 <= m <= 100 for *_, m in rows)

    page = (out / "report.html").read_text()
    assert "curve.png" in page and "labels saved" in page
    shown = run([str(BIN / "sim2real"), "gap"], root).stdout
    assert "label-budget curve" in shown and "synthetic + N" in shown, shown

    params = root / "params.yaml"
    original = params.read_text()
    try:
        data = yaml.safe_load(original)
        assert data["label_budget"]["sizes"] == [2, "all"]
        data["label_budget"]["sizes"] = [2, 3, "all"]
        params.write_text(yaml.safe_dump(data))
        stale = json.loads(run([str(BIN / "dvc"), "status", "--json"], root).stdout)
        assert set(stale) == {"label_budget_synthetic@3-0", "label_budget_real_only@3-0", "label_budget"}, stale
        # a fine-tuning recipe knob re-runs the synthetic arm only: the real-only runs stay valid
        data["label_budget"]["sizes"] = [2, "all"]
        data["finetune"]["lr"] = float(data["finetune"]["lr"]) / 2
        params.write_text(yaml.safe_dump(data))
        stale = json.loads(run([str(BIN / "dvc"), "status", "--json"], root).stdout)
        lb = {s for s in stale if s.startswith("label_budget")}
        assert lb == {"label_budget_synthetic@2-0", "label_budget_synthetic@all-0"}, stale
    finally:
        params.write_text(original)
    assert "up to date" in run([str(BIN / "dvc"), "status"], root).stdout

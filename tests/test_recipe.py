"""Recipe search as DVC experiments: grid parsing, validation before queueing, ranking on val only."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim2real.recipe import (
    RANK_BY,
    RecipeError,
    RecipeResult,
    combinations,
    parse_grid,
    queue,
    ranking,
    recipe_name,
)

REPO = Path(__file__).resolve().parents[1]


def test_grid_parsing_and_combinations() -> None:
    grid = parse_grid(["finetune.lr=0.0002,0.0005", "finetune.seeds=[0,1],[2]"])
    assert grid == {"finetune.lr": ["0.0002", "0.0005"], "finetune.seeds": ["[0,1]", "[2]"]}
    combos = combinations(grid)
    assert len(combos) == 4 and ["finetune.lr=0.0002", "finetune.seeds=[2]"] in combos
    assert recipe_name(combos[0]) == recipe_name(list(reversed(combos[0])))  # order-free identity
    assert len({recipe_name(c) for c in combos}) == 4
    for bad in (["finetune.lr"], ["=1,2"], ["a=1", "a=2"], []):
        with pytest.raises(RecipeError):
            parse_grid(bad)


def test_an_invalid_combination_queues_nothing(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="finetune.lrr"):
        queue(REPO, parse_grid(["finetune.lr=0.001", "finetune.lrr=1"]), dvc=str(tmp_path / "no-dvc"))
    with pytest.raises(RecipeError, match="label_budget.real_only_steps"):  # the fair-budget rule too
        queue(REPO, parse_grid(["label_budget.real_only_steps=1,100000"]), dvc=str(tmp_path / "no-dvc"))


def test_ranking_is_on_val_and_reveals_test_for_the_winner_only() -> None:
    found = [RecipeResult("recipe-a", {"finetune.lr": 0.001, "x": 1}, {RANK_BY: 40.0, "test_gain": 3.0}),
             RecipeResult("recipe-b", {"finetune.lr": 0.0005, "x": 1}, {RANK_BY: 42.0, "test_gain": -9.0}),
             RecipeResult("recipe-c", {"finetune.lr": 0.01, "x": 1}, {})]  # not finished: left out
    rows, winner = ranking(found)
    assert winner == "recipe-b" and [r["experiment"] for r in rows] == ["recipe-b", "recipe-a"]
    assert "x" not in rows[0] and rows[0]["finetune.lr"] == 0.0005  # only the knobs that differ
    assert rows[0]["test gain (winner only)"] == -9.0 and rows[1]["test gain (winner only)"] == ""


@pytest.mark.e2e
def test_recipe_queue_run_show_as_dvc_experiments(repro_project: Path) -> None:
    """The README's recipe commands on the built tiny project: two DVC experiments, ranked on val."""
    from tests.conftest import BIN, run

    root = repro_project
    sim2real, dvc = str(BIN / "sim2real"), str(BIN / "dvc")
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "built", "--allow-empty"], root)
    out = run([sim2real, "recipe", "queue", "--grid", "label_budget.steps_per_image=1,2"], root).stdout
    assert out.count("queued recipe-") == 2, out
    run([sim2real, "recipe", "run"], root, timeout=900)
    assert "recipe-" in run([dvc, "exp", "show"], root).stdout
    shown = run([sim2real, "recipe", "show"], root).stdout
    assert shown.count("| recipe-") == 2 and "winner on val: recipe-" in shown, shown
    assert "label_budget.steps_per_image" in shown
    # the workspace a person works in is untouched by the experiments
    assert run(["git", "status", "--porcelain"], root).stdout.strip() == ""
    assert "up to date" in run([dvc, "status"], root).stdout

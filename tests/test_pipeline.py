"""The whole chain, for real, on the tiny profile: `dvc repro`, Dagster materialization, `make demo`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import BIN, make_project, run

pytestmark = [pytest.mark.timeout(900), pytest.mark.e2e]

DVC = str(BIN / "dvc")


def lock_hashes(root: Path) -> dict[str, str]:
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    return {name: next(o["md5"] for o in entry["outs"] if not o["path"].startswith("data/metrics/"))
            for name, entry in lock.items()}


def assert_clean(root: Path) -> None:
    out = run([DVC, "status"], root).stdout
    assert "up to date" in out, out


def test_dvc_repro_builds_every_stage(repro_project: Path) -> None:
    root = repro_project
    for d in ["synthetic_scenes/train", "synthetic_scenes/val", "augmented_scenes/train", "real_target/few_shot",
              "real_target/val", "styled_scenes/none/train", "styled_scenes/reinhard/train"]:
        assert (root / "data" / d / "index.json").exists(), d
    assert list((root / "data" / "pretrained_model").glob("*/model.pt"))
    assert list((root / "data" / "finetuned_model").rglob("model.pt"))
    assert list((root / "data" / "real_only_model").rglob("model.pt"))
    assert (root / "data" / "gap_report" / "report.html").exists()
    metrics = json.loads((root / "data" / "metrics" / "gap_report.json").read_text())
    assert metrics, "gap_report wrote no metrics"
    assert_clean(root)


def test_second_repro_does_nothing(repro_project: Path) -> None:
    root = repro_project
    before = {p: p.stat().st_mtime_ns for p in (root / "data").rglob("summary.json")}
    out = run([DVC, "repro"], root).stdout
    assert "Data and pipelines are up to date" in out or "didn't change" in out, out
    assert "Running stage" not in out, out
    after = {p: p.stat().st_mtime_ns for p in (root / "data").rglob("summary.json")}
    assert before == after


def test_dvc_metrics_show(repro_project: Path) -> None:
    out = run([DVC, "metrics", "show"], repro_project).stdout
    assert "gap_report" in out
    plots = run([DVC, "plots", "show", "--json"], repro_project).stdout
    assert "finetuned_model" in plots and "real_only_model" in plots, plots[:2000]


def test_dagster_materialize_matches_dvc_repro(repro_project: Path, tmp_path: Path) -> None:
    import dagster as dg

    from orchestration.run import materialize_all

    root = make_project(tmp_path / "proj")
    result = materialize_all(root, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    keys = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert keys == {"synthetic_scenes", "real_target", "augmented_scenes", "styled_scenes", "pretrained_model",
                    "finetuned_model", "real_only_model", "gap_report", "label_budget_synthetic",
                    "label_budget_real_only", "label_budget",
                    "root_causes", "transfer_ablation", "transfer_curve"}
    assert_clean(root)
    out = run([DVC, "repro"], root).stdout
    assert "Running stage" not in out, out
    a, b = lock_hashes(repro_project), lock_hashes(root)
    assert set(a) == set(b)
    for stage in ["synthetic_scenes", "real_target", "augmented_scenes", "styled_scenes@none",
                  "styled_scenes@reinhard"]:
        assert a[stage] == b[stage], f"{stage} differs between dvc repro and Dagster"
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks if c.check_name != "miou_not_regressed")


def test_dagster_cli_selection_on_materialized_project(repro_project: Path) -> None:
    """`dagster asset materialize --select` parses its selection and leaves DVC consistent."""
    env_root = str(repro_project)
    proc = run([str(BIN / "dagster"), "asset", "materialize", "-m", "orchestration.definitions",
                "--select", "synthetic_scenes"], repro_project, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "ord() expected" not in proc.stderr
    assert_clean(Path(env_root))


def test_readme_commands_on_the_built_project(repro_project: Path) -> None:
    """`make demo`, `sim2real gap`, `sim2real materialize`, `dvc exp run -S` on a built project."""
    root = repro_project
    sim2real = str(BIN / "sim2real")
    # `make demo` (install already done: -o install), which is `dvc repro` + the gap table
    out = run(["make", "-o", "install", f"VENV={BIN.parent}", "demo"], root).stdout
    assert "Running stage" not in out and "report:" in out, out[-2000:]
    out = run([sim2real, "gap"], root).stdout
    assert "gap" in out.lower() and "|" in out
    out = run([sim2real, "materialize"], root).stdout
    assert "success=True" in out
    assert_clean(root)
    # one DVC experiment with an override: only the stage reading the key re-runs
    out = run([DVC, "exp", "run", "-S", "evaluate.hardest_k=1"], root, timeout=600).stdout
    assert "Running stage 'gap_report'" in out and "Running stage 'pretrained_model" not in out, out[-3000:]
    assert "hardest_k: 1" in (root / "params.yaml").read_text()


def test_taxonomy_edit_makes_every_stage_stale_in_dvc(repro_project: Path) -> None:
    """The class ids are a code dep of every stage: editing them re-runs the whole chain (then undone)."""
    root = repro_project
    taxonomy = root / "sim2real" / "taxonomy.py"
    original = taxonomy.read_text()
    try:
        taxonomy.write_text(original + "\n# edited\n")
        out = run([DVC, "status", "--json"], root).stdout
        stale = json.loads(out)
        from sim2real.stages import STAGES

        for name in STAGES:
            entries = [k for k in stale if k.split("@")[0] == name]
            assert entries, f"{name} is not stale after a taxonomy edit: {out[:2000]}"
            for key in entries:
                changed = json.dumps(stale[key])
                assert "sim2real/taxonomy.py" in changed, (key, changed)
    finally:
        taxonomy.write_text(original)
    assert_clean(root)

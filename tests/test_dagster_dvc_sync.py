"""Dagster and DVC agree both ways (issue 17), on one tiny chain built by `dvc repro`.

One unit for mIoU (points) and a few headline numbers per DVC metrics file; a stage DVC skipped
keeps its data version; plots stay out of the event log; the regression check compares and blocks;
Dagster observes a command-line `dvc repro` without a run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sim2real.context import StepResult
from sim2real.reporting import MAX_DVC_METRICS, dvc_metrics, for_report
from tests.conftest import BIN, make_project, run, scratch

DVC = str(BIN / "dvc")
STAGE_ASSETS = {"synthetic_scenes", "real_target", "augmented_scenes", "styled_scenes", "pretrained_model",
                "finetuned_model", "real_only_model", "gap_report"}


# ------------------------------------------------------------------ unit level (no chain)
def test_training_fractions_become_points_at_the_reporting_boundary() -> None:
    r = StepResult(metrics={"real_val_miou_mean": 0.0494, "real_val_miou_std": 0.01, "steps": 3.0},
                   tables={"t": "| seed | real val mIoU | steps |\n|---|---|---|\n| 0 | 0.0494 | 3 |"})
    out = for_report("finetuned_model", r)
    assert out.metrics == {"real_val_miou_mean": 4.94, "real_val_miou_std": 1.0, "steps": 3.0}
    assert "| 0 | 4.94 | 3 |" in out.tables["t"]
    assert for_report("finetuned_model", out).metrics["real_val_miou_mean"] == 4.94  # converted once
    gap = StepResult(metrics={"finetuned_miou": 4.94})
    assert for_report("gap_report", gap).metrics["finetuned_miou"] == 4.94  # already points


def test_dvc_metrics_keep_a_few_headline_numbers() -> None:
    many = StepResult(metrics={f"freq_{i}": float(i) for i in range(40)} | {"scenes": 32.0},
                      timings={"wall_s": 2.0, "scenes_per_s": 9.0})
    m = dvc_metrics("synthetic_scenes", many)
    assert m == {"scenes": 32.0, "wall_s": 2.0}
    unknown = dvc_metrics("some_new_stage", StepResult(metrics={f"miou/{i}": 1.0 for i in range(20)},
                                                       timings={"wall_s": 1.0}))
    assert len(unknown) == MAX_DVC_METRICS and "wall_s" in unknown


def test_dvc_skipped_is_read_from_dvc_output() -> None:
    from orchestration.observe import dvc_skipped

    out = "Stage 'styled_scenes@none' didn't change, skipping\nData and pipelines are up to date."
    assert dvc_skipped(out, "styled_scenes@none")
    assert not dvc_skipped(out, "styled_scenes@reinhard")
    assert not dvc_skipped("Running stage 'gap_report':\n> sim2real run gap_report", "gap_report")


def test_every_asset_points_at_its_one_run_job(tmp_path: Path) -> None:
    """Finding 8: the obvious action is the job (one run), named on every asset's page."""
    from orchestration.definitions import build_definitions

    defs = build_definitions(make_project(tmp_path / "p", dvc=False))
    jobs = {j.name for j in defs.jobs}
    for spec in defs.resolve_all_asset_specs():
        named = [j for j in jobs if f"launch the job `{j}`" in (spec.description or "")]
        assert len(named) == 1, (spec.key, spec.description)
        job = defs.resolve_job_def(named[0])
        assert spec.key in job.asset_layer.selected_asset_keys, (spec.key, named)


# ------------------------------------------------------------------ one chain, several checks
@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    import dagster as dg

    with scratch(tmp_path_factory, "sync") as base:
        root = make_project(base / "proj")
        run([DVC, "repro"], root, timeout=900)
        home = base / "dagster_home"
        home.mkdir()
        instance = dg.DagsterInstance.local_temp(tempdir=str(home))
        yield root, instance, home
        instance.dispose()


def lock_md5(root: Path, address: str) -> str:
    entry = yaml.safe_load((root / "dvc.lock").read_text())["stages"][address]
    return next(o["md5"] for o in entry["outs"] if not o["path"].startswith("data/metrics/"))


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def stale_statuses(instance, defs) -> dict[str, str]:
    from dagster._utils.test.data_versions import get_stale_status_resolver

    graph = defs.resolve_asset_graph()
    resolver = get_stale_status_resolver(instance, list(defs.assets))
    out = {}
    for key in graph.get_all_asset_keys():
        pdef = graph.get(key).partitions_def
        for part in (pdef.get_partition_keys() if pdef else [None]):
            name = key.to_user_string() + (f"[{part}]" if part else "")
            out[name] = resolver.get_status(key, part).value  # FRESH, STALE or MISSING (never built)
    return out


@pytest.mark.e2e  # a real dvc repro chain
def test_dvc_metrics_are_few_headline_numbers_in_points(chain) -> None:
    """Finding 9 + the unit of finding 1: `dvc metrics show` reads like a dashboard, mIoU in points."""
    root, _, _ = chain
    files = sorted((root / "data" / "metrics").glob("*.json"))
    columns: set[str] = set()
    for f in files:
        keys = set(json.loads(f.read_text()))
        assert 1 <= len(keys) <= MAX_DVC_METRICS, (f.name, keys)
        columns |= keys
    assert len(columns) <= MAX_DVC_METRICS * len(files), sorted(columns)  # was over 100 before issue 17
    shown = json.loads(run([DVC, "metrics", "show", "--json"], root).stdout)
    assert shown, "dvc metrics show printed nothing"
    # the training stages report points, converted from the loop's fractions exactly once; the stage's own
    # metrics.json (the file a person opens) is in points too
    ft = json.loads((root / "data" / "metrics" / "finetuned_model.json").read_text())
    inner = json.loads((root / "data" / "finetuned_model" / "metrics.json").read_text())
    assert ft["real_miou"] == pytest.approx(inner["real_val_miou_mean"], abs=1e-3)
    summary = json.loads((root / "data" / "finetuned_model" / "summary.json").read_text())
    assert summary["metrics"]["real_val_miou_mean"] == pytest.approx(ft["real_miou"])
    gap = json.loads((root / "data" / "metrics" / "gap_report.json").read_text())
    assert gap["finetuned_miou"] == pytest.approx(ft["real_miou"], abs=0.1)  # same model, same split, same unit


@pytest.mark.e2e  # a real dvc repro chain
def test_dagster_run_on_a_current_chain_reports_skips_without_new_data(chain) -> None:
    """Finding 4: what DVC skipped keeps its DVC md5 as data version, flagged, and nothing turns stale."""
    from orchestration.definitions import build_definitions
    from orchestration.run import materialize_all

    root, instance, _ = chain
    result = materialize_all(root, instance=instance)
    assert result.success
    mats = result.get_asset_materialization_events()
    assert STAGE_ASSETS <= {e.asset_key.to_user_string() for e in mats}
    for ev in mats:
        mat = ev.step_materialization_data.materialization
        name = mat.asset_key.to_user_string()
        md = mat.metadata
        flags = [v.value for k, v in md.items() if k.endswith("dvc_skipped")]
        assert flags and all(flags), (name, sorted(md))
        if mat.partition is None and name not in ("styled_scenes", "pretrained_model"):
            assert mat.tags["dagster/data_version"] == lock_md5(root, name), name
    stale = {k: v for k, v in stale_statuses(instance, build_definitions(root)).items() if v == "STALE"}
    assert not stale, stale
    run_dvc_status = run([DVC, "status"], root).stdout
    assert "up to date" in run_dvc_status


@pytest.mark.e2e  # a real dvc repro chain
def test_event_log_growth_per_run_without_embedded_plots(chain, monkeypatch) -> None:
    """Finding 6: plots are linked, so one more run of an up-to-date chain adds little to the event log."""
    import base64

    import dagster as dg

    import orchestration.assets as assets_mod
    from orchestration.run import materialize_all

    root, _, home = chain

    def growth(tag: str) -> int:
        sub = home.parent / f"growth_{tag}"
        sub.mkdir()
        with dg.DagsterInstance.local_temp(tempdir=str(sub)) as inst:
            assert materialize_all(root, instance=inst).success  # creates the tables
            before = dir_bytes(sub)
            assert materialize_all(root, instance=inst).success
            return dir_bytes(sub) - before

    def embedded(path: Path) -> dg.MetadataValue:  # what _plot_md did before issue 17
        data = base64.b64encode(path.read_bytes()).decode()
        return dg.MetadataValue.md(f"![{path.name}](data:image/png;base64,{data})")

    with monkeypatch.context() as m:
        m.setattr(assets_mod, "plot_metadata", embedded)
        old = growth("embedded")
    new = growth("linked")
    report = {"embedded_plots_bytes_per_materialize_all": old, "linked_plots_bytes_per_materialize_all": new}
    (home.parent / "event_log_growth.json").write_text(json.dumps(report))
    print("event log growth per run:", report)
    # what is left (0.75-1 MB per `materialize_all`, i.e. one Dagster run per job, more as jobs are added)
    # is mostly SQLite's layout: one database file per run plus the asset index, not metadata
    assert new < old / 3, report


@pytest.mark.e2e  # a real dvc repro chain
def test_regression_check_fails_and_blocks_downstream(chain) -> None:
    """Finding 1: a crafted drop of fine-tuned mIoU fails `miou_not_regressed` and gap_report does not run."""
    import dagster as dg

    from orchestration.definitions import all_partitions_tags, build_definitions
    from sim2real.config import load_config

    root, instance, _ = chain
    last = instance.fetch_materializations(dg.AssetKey("gap_report"), limit=1).records[0]
    assert "finetuned_miou" in last.asset_materialization.metadata
    evals = [e for e in instance.fetch_materializations(dg.AssetKey("finetuned_model"), limit=1).records]
    current = float(evals[0].asset_materialization.metadata["real_val_miou_mean"].value)
    assert 0 < current <= 100
    # a previous materialization that was much better: the next one is a regression of 50 points
    instance.report_runless_asset_event(dg.AssetMaterialization(
        "finetuned_model", metadata={"real_val_miou_mean": current + 50.0}))
    defs = build_definitions(root)
    result = dg.materialize([*defs.assets, *defs.asset_checks], instance=instance,
                            selection=["finetuned_model", "gap_report"], raise_on_error=False,
                            tags=all_partitions_tags(load_config(root / "params.yaml")))
    checks = {(c.asset_key.to_user_string(), c.check_name): c for c in result.get_asset_check_evaluations()}
    failed = checks[("finetuned_model", "miou_not_regressed")]
    assert not failed.passed
    assert failed.metadata["previous"].value == pytest.approx(current + 50.0)
    assert failed.metadata["current"].value == pytest.approx(current)
    done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert done == {"finetuned_model"}, done  # blocked: no gap_report in the same run


@pytest.mark.e2e  # a real dvc repro chain
def test_dagster_observes_a_command_line_dvc_repro(chain) -> None:
    """Finding 3: a params edit + `dvc repro` show up in Dagster as DVC's md5s, nothing stale, no run."""
    from orchestration.definitions import build_definitions
    from orchestration.observe import current_data_version, observe_dvc_lock
    from orchestration.params_tags import write_overrides

    root, instance, _ = chain
    assert write_overrides(root / "params.yaml", ["evaluate.hardest_k=1"])
    out = run([DVC, "repro"], root, timeout=600).stdout
    assert "Stage 'gap_report' didn't change" not in out and "Running stage 'finetuned_model'" not in out, out
    runs = instance.get_runs_count()
    defs = build_definitions(root)  # what the code server serves after a reload
    assert current_data_version(instance, __import__("dagster").AssetKey("gap_report")) != lock_md5(root, "gap_report")
    observed = observe_dvc_lock(instance, defs, root)
    assert "gap_report" in observed
    import dagster as dg

    for name in ("synthetic_scenes", "real_target", "augmented_scenes", "finetuned_model", "real_only_model",
                 "gap_report"):
        assert current_data_version(instance, dg.AssetKey(name)) == lock_md5(root, name), name
    for item in ("none", "reinhard"):
        assert current_data_version(instance, dg.AssetKey("pretrained_model"), item) == \
            lock_md5(root, f"pretrained_model@{item}")
    statuses = stale_statuses(instance, defs)
    assert not {k: v for k, v in statuses.items() if v == "STALE"}, statuses
    assert statuses["gap_report"] == "FRESH"
    assert instance.get_runs_count() == runs  # observed, not recomputed
    assert observe_dvc_lock(instance, defs, root) == {}  # nothing new on the next tick


@pytest.mark.e2e  # a real dvc repro chain
def test_run_overrides_run_as_a_dvc_experiment_and_leave_the_workspace_alone(chain, tmp_path, monkeypatch) -> None:
    """Finding 2: a `sim2real/set` run (what nightly does) leaves params.yaml, dvc.lock and `git status` as they
    were, is listed by `dvc exp show` with its params, records what ran, and appends to the one DuckDB store."""
    import duckdb

    from orchestration.assets import code_version
    from orchestration.params_tags import SET_TAG
    from orchestration.run import materialize_all
    from orchestration.workspace import RUNS_DIR_ENV, experiment_name
    from sim2real.config import load_config
    from sim2real.stages import STAGES

    root, instance, _ = chain
    monkeypatch.setenv(RUNS_DIR_ENV, str(tmp_path / "runs"))
    before = {f: (root / f).read_bytes() for f in ("params.yaml", "dvc.lock")}
    status = run(["git", "status", "--porcelain"], root).stdout
    store = root / "data" / "store" / "sim2real.duckdb"

    def run_ids() -> set[str]:
        with duckdb.connect(str(store), read_only=True) as con:
            return {r[0] for r in con.execute("select run_id from runs").fetchall()}

    ids = run_ids()
    result = materialize_all(root, instance=instance, tags={SET_TAG: "evaluate.hardest_k=3"})
    assert result.success
    assert {f: (root / f).read_bytes() for f in before} == before
    assert run(["git", "status", "--porcelain"], root).stdout == status
    assert "up to date" in run([DVC, "status"], root).stdout
    name = experiment_name(result.runs[0].run_id)  # the chain's run (the label-budget run is another)
    exps = json.loads(run([DVC, "exp", "show", "--json"], root).stdout)
    found = {ex["name"]: ex for base in exps for e in (base.get("experiments") or []) for ex in e.get("revs", [])}
    assert name in found, sorted(found)
    params = found[name]["data"]["params"]["params.yaml"]["data"]
    assert params["evaluate"]["hardest_k"] == 3
    gap = next(e.step_materialization_data.materialization for e in result.get_asset_materialization_events()
               if e.asset_key.to_user_string() == "gap_report")
    assert gap.metadata["experiment"].value == name
    assert gap.metadata["params_overrides"].value == "evaluate.hardest_k=3"
    assert len(gap.metadata["git_rev"].value) == 40
    main_version = code_version(STAGES["gap_report"], load_config(root / "params.yaml"), root)
    assert gap.metadata["code_version_ran"].value != main_version  # what ran, not the workspace's version
    assert len(run_ids() - ids) == 1  # the nightly gap joins the time series


@pytest.mark.e2e  # a real dvc repro chain
def test_style_partitions_in_one_run_each_get_their_own_event_and_dvc_md5(chain) -> None:
    """Finding 5: one run over both style partitions (what the chain job does) records one materialization
    per partition, each with its own metadata and its DVC md5 as data version (was: one merged set of
    `none/...`, `reinhard/...` keys and no DVC data version)."""
    import dagster as dg

    from orchestration.definitions import all_partitions_tags, build_definitions
    from sim2real.config import load_config

    root, instance, _ = chain
    defs = build_definitions(root)
    result = dg.materialize([*defs.assets, *defs.asset_checks], instance=instance,
                            selection=["styled_scenes", "pretrained_model"],
                            tags=all_partitions_tags(load_config(root / "params.yaml")))
    assert result.success
    for name in ("styled_scenes", "pretrained_model"):
        mats = [e.step_materialization_data.materialization for e in result.get_asset_materialization_events()
                if e.asset_key.to_user_string() == name]
        assert sorted(m.partition for m in mats) == ["none", "reinhard"], mats
        for mat in mats:
            address = f"{name}@{mat.partition}"
            assert mat.tags["dagster/data_version"] == lock_md5(root, address), address
            assert mat.metadata["dvc_md5"].value == lock_md5(root, address)
            assert mat.metadata["partition"].value == mat.partition
            assert not any(k.startswith(("none/", "reinhard/")) for k in mat.metadata), sorted(mat.metadata)
        assert len({m.tags["dagster/data_version"] for m in mats}) == 2, name  # two outputs, two versions

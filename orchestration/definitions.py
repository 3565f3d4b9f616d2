"""Dagster `Definitions` for sim2real, derived from the stage registry.

`sim2real ui` (or `DAGSTER_HOME=$PWD/.dagster_home dagster dev -w workspace.yaml`) shows every
stage as an asset. Each asset's compute is `dvc repro --single-item STAGE`, so a Dagster
materialization leaves dvc.lock current and `dvc status` clean.
"""


import datetime as dt
import os
import warnings
from pathlib import Path

import dagster as dg

from orchestration.assets import FORCE_TAG, build_asset
from orchestration.checks import LABELLED, coverage_check, label_check, regression_check
from orchestration.events import partitions_tags
from orchestration.executors import executor_def
from orchestration.observe import observe_dvc_lock
from orchestration.params_tags import SET_TAG
from orchestration.watch import (
    changed_stages,
    data_fingerprint,
    read_cursor,
    run_key,
    watched_folders,
    write_cursor,
)
from sim2real.config import Config, load_config
from sim2real.stages import STAGES, topological_order

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

ROOT = Path(os.environ.get("SIM2REAL_ROOT", Path(__file__).resolve().parents[1])).resolve()


# the label-budget curve has its own partitions (N x seed) and its own job: a Dagster run covers the
# partitions of one partitions definition, so it cannot share a run with the style ablation
LABEL_BUDGET_GROUP = "label_budget"


def all_partitions_tags(cfg: Config, stage: str = "styled_scenes") -> dict[str, str]:
    """Tags that make one run cover every partition of `stage`'s kind (single-run backfill)."""
    return partitions_tags(STAGES[stage].items(cfg))  # one event per partition: orchestration/events.py


def label_budget_tags(cfg: Config) -> dict[str, str]:
    return all_partitions_tags(cfg, "label_budget_synthetic")


# the transferability ablation likewise (k x seed partitions): its own job
TRANSFER_GROUP = "transfer"
CHAIN_SELECTION = dg.AssetSelection.all() - dg.AssetSelection.groups(LABEL_BUDGET_GROUP, TRANSFER_GROUP)
LABEL_BUDGET_SELECTION = dg.AssetSelection.groups(LABEL_BUDGET_GROUP)


def build_definitions(root: Path = ROOT) -> dg.Definitions:
    cfg = load_config(root / "params.yaml")
    assets = [build_asset(STAGES[name], cfg, root) for name in topological_order()]
    checks = [label_check(stage, root) for stage in LABELLED]
    checks += [coverage_check(root), regression_check("finetuned_model"), regression_check("gap_report")]

    chain = dg.define_asset_job(
        "sim2real_chain", selection=CHAIN_SELECTION,
        description="The whole chain; one run covers every style-ablation partition.",
        tags=all_partitions_tags(cfg))
    curve = dg.define_asset_job(
        "label_budget_curve", selection=LABEL_BUDGET_SELECTION,
        description="The label-budget curve: every (N, seed) run, then the curve; one run covers every "
                    "partition. Re-run one point alone from the asset's partition page.",
        tags=label_budget_tags(cfg))
    transfer = dg.define_asset_job(
        "transferability", selection=dg.AssetSelection.groups(TRANSFER_GROUP),
        description="The layer-wise transferability curve: every (k frozen stages, seed) run, then the curve.",
        tags=all_partitions_tags(cfg, "transfer_ablation"))

    @dg.schedule(job=chain, cron_schedule="0 2 * * *", execution_timezone="UTC",
                 default_status=dg.DefaultScheduleStatus.STOPPED,
                 description="Nightly: a new synthetic seed, the chain re-run, the gap appended to DuckDB.")
    def nightly(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        day = (context.scheduled_execution_time or dt.datetime.now(dt.UTC)).strftime("%Y%m%d")
        return dg.RunRequest(run_key=f"nightly-{day}",
                             tags={**all_partitions_tags(cfg), SET_TAG: f"synthetic.seed={int(day)}"})

    @dg.sensor(job=chain, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.STOPPED,
               description="New or changed data under real.root (the real target) or synthetic.root (an "
                           "imported source dataset): re-import it and re-run downstream.")
    def new_real_data(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        current = load_config(root / "params.yaml")
        watched = watched_folders(current, root)
        if not watched:
            return dg.SkipReason("real.source is the embedded proxy domain and synthetic.source is procedural: "
                                 "no folder to watch")
        missing = [f"{w.key} {w.folder}" for w in watched if not w.folder.exists()]
        if missing:
            return dg.SkipReason(f"{'; '.join(missing)} does not exist")
        now = {w.stage: data_fingerprint(w.folder) for w in watched}
        before = read_cursor(context.cursor)
        if before == now:
            return dg.SkipReason("watched data unchanged")
        context.update_cursor(write_cursor(now))
        changed = changed_stages(before or {}, now)
        if not changed:
            return dg.SkipReason(f"recorded the current data of {', '.join(w.key for w in watched)}; "
                                 "will fire on the next change")
        # the dataset folders are no DVC dependencies: force the stage that imports the changed one
        return dg.SensorResult(run_requests=[dg.RunRequest(
            run_key=run_key(changed, now), tags={**all_partitions_tags(current), FORCE_TAG: ",".join(changed)})])

    @dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
               description="Observe dvc.lock: a `dvc repro` / `dvc checkout` on the command line shows up as "
                           "each stage's DVC md5 data version, without recomputing anything.")
    def dvc_lock_observer(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        observed = observe_dvc_lock(context.instance, defs, root)
        return dg.SkipReason(f"observed from dvc.lock: {', '.join(observed)}" if observed
                             else "Dagster's data versions match dvc.lock")

    defs = dg.Definitions(assets=assets, asset_checks=checks, jobs=[chain, curve, transfer], schedules=[nightly],
                          sensors=[new_real_data, dvc_lock_observer], executor=executor_def())
    return defs


defs = build_definitions()

"""One small factory: a Dagster asset (and its checks) per registered stage."""


import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from orchestration.dvc import out_hash, run_dvc
from orchestration.events import deferred, partition_events, records_own_events
from orchestration.executors import concurrent_steps
from orchestration.observe import dvc_skipped, plot_metadata
from orchestration.workspace import run_provenance, run_workspace, save_experiment
from sim2real.config import Config, load_config
from sim2real.context import StepResult
from sim2real.runner import read_summary
from sim2real.stages import STAGES, Stage
from sim2real.threads import PARALLEL_ENV

POOL = "dvc_repo"
FORCE_TAG = "sim2real/force"  # comma-separated stage names to re-run even if DVC finds them current
# the asset graph's "Materialize all" splits into one run per partitions definition (3 runs, 105 s on an
# up-to-date chain against 14.6 s): every asset page points at the job, which is one run
JOB_HINT = ("\n\n**To run it all, launch the job `{job}`** (Jobs > {job} > Materialize all): "
            "one run over every asset and partition, with the checks in between.")
# groups with partitions of their own (a grid), so their own job (orchestration/definitions.py)
GROUP_JOBS = {"label_budget": "label_budget_curve", "transfer": "transferability"}


def partitions_for(stage: Stage, cfg: Config) -> dg.StaticPartitionsDefinition | None:
    """One partition per DVC matrix item: a style method, or "<N>-<seed>" for the label-budget grid."""
    return dg.StaticPartitionsDefinition(stage.items(cfg)) if stage.fanned else None


def step_env(context: dg.AssetExecutionContext) -> dict[str, str]:
    """What the stage processes of this step need to know about their neighbours: SIM2REAL_PARALLEL."""
    steps = context.run.step_keys_to_execute
    parallel = concurrent_steps(context.job_def.executor_def.name, context.run.run_config,
                                len(steps) if steps else None)
    return {PARALLEL_ENV: str(parallel)} if parallel > 1 else {}


def code_version(stage: Stage, cfg: Config, root: Path) -> str:
    """Changes when the stage's params values or code change: Dagster then marks it stale."""
    h = hashlib.sha256(stage.func.encode())
    h.update(json.dumps({k: cfg.section(k) if "." in k else cfg.section(k).model_dump(mode="json")
                         for k in stage.params}, sort_keys=True, default=str).encode())
    for f in stage.code_files(root):  # the same paths dvc.yaml lists as the stage's code deps
        h.update(f.relative_to(root).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def result_metadata(summary: StepResult | None, root: Path, metrics_file: Path | None = None) -> dict[str, Any]:
    if summary is None:
        return {}
    meta: dict[str, Any] = {}
    numbers = dict(summary.metrics)
    if metrics_file is not None and metrics_file.exists():
        numbers.update(json.loads(metrics_file.read_text()))  # includes wall times
    for k, v in numbers.items():
        if isinstance(v, bool):
            meta[k] = dg.MetadataValue.bool(v)
        elif isinstance(v, int | float):
            meta[k] = dg.MetadataValue.float(float(v))
    for title, table in summary.tables.items():
        meta[title] = dg.MetadataValue.md(table)
    for title, rel in summary.plots.items():
        p = root / rel
        if p.exists():
            meta[title] = plot_metadata(p)  # a link: images never go into the event log
    if summary.text:
        meta["summary"] = dg.MetadataValue.md(summary.text)
    return meta


def _deps(stage: Stage, cfg: Config) -> list[dg.AssetDep]:
    deps = []
    for name in stage.upstream:
        up = STAGES[name]
        if up.matrix and name in stage.picks:
            mapping = dg.SpecificPartitionsPartitionMapping([str(cfg.section(stage.picks[name]))])
            deps.append(dg.AssetDep(name, partition_mapping=mapping))
        else:
            deps.append(dg.AssetDep(name))
    return deps


def build_asset(stage: Stage, cfg: Config, root: Path) -> dg.AssetsDefinition:
    partitions = partitions_for(stage, cfg)

    @dg.asset(
        name=stage.name,
        description=stage.description + f"\n\nDVC stage `{stage.name}` -> `{stage.out_dir()}`." + JOB_HINT.format(
            job=GROUP_JOBS.get(stage.group, "sim2real_chain")),
        group_name=stage.group,
        kinds=set(stage.kinds),
        deps=_deps(stage, cfg),
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run() if partitions else None,
        code_version=code_version(stage, cfg, root),
        pool=POOL,
        retry_policy=dg.RetryPolicy(max_retries=1, delay=5),
        metadata={"dvc_stage": stage.name, "path": stage.out_dir()},
    )
    def _asset(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult | dg.AssetMaterialization]:
        work = run_workspace(context, root)  # a run with params overrides: its own workspace, a DVC exp
        items = list(context.partition_keys) if partitions else [None]
        forced = {s.strip() for s in context.run.tags.get(FORCE_TAG, "").split(",") if s.strip()}
        skipped = {}
        for item in items:
            address = f"{stage.name}@{item}" if item else stage.name
            args = ["repro", "--single-item", address]
            if stage.name in forced or "*" in forced:
                args.append("--force")
            skipped[item] = dvc_skipped(run_dvc(args, work, log=context.log.info, env=step_env(context)), address)
        save_experiment(context, root, work, [f"{stage.name}@{i}" if i else stage.name for i in items])
        built = []
        for item in items:
            address = f"{stage.name}@{item}" if item else stage.name
            md5 = out_hash(work, address, stage.out_dir(item))
            meta = result_metadata(read_summary(work, stage.name, item), work, work / stage.metrics_file(item))
            meta.update(run_provenance(context, root, work, lambda: code_version(stage, load_config(work / "params.yaml"), work)))
            meta["dvc_md5"] = md5 or ""
            meta["dvc_skipped"] = skipped[item]  # DVC found it current: same data version, nothing new
            if item:
                meta["partition"] = item
            built.append((item, md5, meta))
        if not records_own_events(context, built):
            _, md5, meta = built[0]
            yield dg.MaterializeResult(metadata=meta, data_version=dg.DataVersion(md5) if md5 else None)
            return
        # several partitions in one run, or a run that records its own events (orchestration/events.py):
        # one materialization per partition, each with its own metadata and DVC md5
        if not deferred(context):
            for item, _md5, meta in built:  # Dagster's own events: each partition's own metadata
                context.add_asset_metadata(meta, partition_key=item)
        yield dg.MaterializeResult()  # the step's output: downstream steps of this run wait for it
        yield from partition_events(context, built)

    return _asset

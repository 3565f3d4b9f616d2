"""Dagster sees what DVC did: skipped stages, plots as linked files, and `dvc.lock` observed.

- `dvc_skipped`: `dvc repro --single-item` found the stage current and ran nothing. The asset still
  reports a materialization (downstream steps of the same run need one), with the same data version
  (the DVC md5) and `dvc_skipped: true`, so nothing downstream turns stale.
- `plot_metadata`: plots are linked as file paths, never embedded: base64 images in metadata live in
  the event log forever (about 2 MB per run measured).
- `observe_dvc_lock`: reads `dvc.lock` and records each stage's out md5 as the asset's data version
  (a runless materialization report with data provenance and the stage's summary), without
  recomputing anything. After a `dvc repro` or a `dvc checkout` on the command line, Dagster shows
  DVC's versions and nothing stale. The `dvc_lock_observer` sensor runs it every 30 s.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import dagster as dg

from orchestration.dvc import out_hash

__all__ = ["dvc_skipped", "plot_metadata", "observe_dvc_lock", "current_data_version"]

_DATA_VERSION = "dagster/data_version"
_CODE_VERSION = "dagster/code_version"
_USER_PROVIDED = "dagster/data_version_is_user_provided"
_INPUT_VERSION = "dagster/input_data_version/"
_INPUT_POINTER = "dagster/input_event_pointer/"


def dvc_skipped(output: str, address: str) -> bool:
    """True when `dvc repro` printed that `address` did not change and ran nothing."""
    return re.search(rf"Stage '{re.escape(address)}' didn't change, skipping", output) is not None


def plot_metadata(path: Path) -> dg.MetadataValue:
    """A plot as a link to its file (kept out of the event log)."""
    return dg.MetadataValue.path(str(path))


def _latest_record(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None):
    return instance.get_latest_data_version_record(key, False, partition)  # materializations


def current_data_version(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None = None) -> str | None:
    """The data version Dagster holds for an asset (partition): its latest materialization's."""
    rec = _latest_record(instance, key, partition)
    if rec is None:
        return None
    return (rec.event_log_entry.tags or {}).get(_DATA_VERSION)


def _addresses(stage_name: str, partitions: list[str] | None) -> list[tuple[str | None, str]]:
    if not partitions:
        return [(None, stage_name)]
    return [(p, f"{stage_name}@{p}") for p in partitions]


def observe_dvc_lock(instance: dg.DagsterInstance, defs: dg.Definitions, root: Path,
                     stages: list[str] | None = None) -> dict[str, str]:
    """Report `dvc.lock`'s md5 of every stage whose Dagster data version differs; returns {address: md5}.

    The reports are written upstream first, each with provenance (the asset's code version and its
    inputs' data versions and event pointers as they stand after their own report) and the stage's
    summary as metadata, so Dagster's staleness agrees with DVC (what `dvc status` calls current is
    fresh in Dagster) and checks comparing with the previous materialization see DVC's numbers.
    """
    from orchestration.assets import code_version, result_metadata
    from sim2real.config import load_config
    from sim2real.runner import read_summary
    from sim2real.stages import STAGES, topological_order

    graph = defs.resolve_asset_graph()
    cfg = load_config(root / "params.yaml")  # the params DVC ran with, even before a definitions reload
    code_versions: dict[str, str] = {}  # hashed only for what is reported: the sensor runs every 30 s
    observed: dict[str, str] = {}
    moved: set[dg.AssetKey] = set()
    for name in topological_order():
        if stages is not None and name not in stages:
            continue
        key = dg.AssetKey(name)
        if not graph.has(key):
            continue
        node = graph.get(key)
        stage = STAGES[name]
        pdef = node.partitions_def
        partitions = list(pdef.get_partition_keys()) if pdef is not None else None
        # a parent observed in this pass moved on: refresh the provenance of what DVC built from it
        parent_moved = any(p in moved for p in node.parent_keys)
        for partition, address in _addresses(name, partitions):
            md5 = out_hash(root, address, stage.out_dir(partition))
            if md5 is None or (current_data_version(instance, key, partition) == md5 and not parent_moved):
                continue
            if name not in code_versions:
                code_versions[name] = code_version(stage, cfg, root)
            tags = {_DATA_VERSION: md5, _USER_PROVIDED: "true", _CODE_VERSION: code_versions[name]}
            tags.update(_input_tags(instance, graph, node))
            meta = result_metadata(read_summary(root, name, partition), root, root / stage.metrics_file(partition))
            meta.update({"dvc_md5": md5, "dvc_stage": address, "dvc_observed": True,
                         "source": "dvc.lock: built by DVC outside Dagster, reported, not recomputed"})
            # a runless materialization (Dagster's "report an external materialization"): for an asset
            # Dagster materializes, staleness follows materializations, not observations
            instance.report_runless_asset_event(dg.AssetMaterialization(
                asset_key=key, partition=partition, tags=tags, metadata=meta))
            observed[address] = md5
            moved.add(key)
    return observed


def _input_tags(instance: dg.DagsterInstance, graph: Any, node: Any) -> dict[str, str]:
    """Provenance tags: each upstream asset's current data version and its latest event id."""
    tags: dict[str, str] = {}
    for parent in node.parent_keys:
        pnode = graph.get(parent)
        pdef = pnode.partitions_def
        parts = list(pdef.get_partition_keys()) if pdef is not None else [None]
        versions, pointer = [], None
        for part in parts:
            rec = _latest_record(instance, parent, part)
            if rec is None:
                continue
            versions.append((rec.event_log_entry.tags or {}).get(_DATA_VERSION) or "")
            pointer = max(pointer or 0, rec.storage_id)
        if pointer is None:
            continue
        user = parent.to_user_string()
        version = versions[0] if pdef is None else hashlib.sha256("".join(versions).encode()).hexdigest()[:32]
        tags[_INPUT_VERSION + user] = version
        tags[_INPUT_POINTER + user] = str(pointer)
    return tags

"""One materialization per partition, each with its own metadata and its DVC md5 as data version.

A run over several partitions (the chain job covers every style partition in one run: a single-run
backfill) calls an asset once for all of them. Dagster 1.13 then records one materialization per
partition from the asset's one result: the same metadata and one data version for all of them
(`MaterializeResult` has no partition; dagster-io/dagster#34013, #18649). So:

- runs that cover several partitions carry `OWN_EVENTS_TAG` (Dagster's `dagster/defer_asset_events`,
  set by `partitions_tags`): Dagster records no asset event of its own, and every asset of the run
  records its own, one per partition, with the same provenance tags Dagster would write (code version,
  each input's data version and event pointer) and the stage's DVC md5 as data version;
- a run over several partitions without the tag (a backfill launched from the asset's partition page)
  still gets each partition's own metadata on Dagster's events, followed by one event per partition
  with its DVC md5, so the latest materialization of each partition is right.

The chain's runs thus store one event per partition instead of one per asset. What Dagster no longer
records in such runs: the "planned" events that show assets as in progress in the UI while the run is
going.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster._core.definitions.data_version import compute_logical_data_version
from dagster._core.execution.plan.execute_step import (
    _build_data_version_tags,
    _get_code_version,
    _get_input_provenance_data,
)
from dagster._core.storage.tags import BACKFILL_ID_TAG, EXTERNALLY_MANAGED_ASSETS_TAG

__all__ = ["OWN_EVENTS_TAG", "deferred", "records_own_events", "partition_events", "partitions_tags"]

OWN_EVENTS_TAG = EXTERNALLY_MANAGED_ASSETS_TAG  # "dagster/defer_asset_events"
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"

# (partition or None, DVC md5 or None, metadata) for each partition the step built
Built = tuple[str | None, str | None, dict[str, Any]]


def partitions_tags(items: list[str]) -> dict[str, str]:
    """Run tags covering every partition in one run, each partition recorded with its own event."""
    return {RANGE_START: items[0], RANGE_END: items[-1], OWN_EVENTS_TAG: "true"}


def deferred(context: dg.AssetExecutionContext) -> bool:
    """True in a run where Dagster records no asset event of its own (`OWN_EVENTS_TAG`)."""
    return context.run.tags.get(OWN_EVENTS_TAG, "").lower() == "true"


def records_own_events(context: dg.AssetExecutionContext, built: list[Built]) -> bool:
    """True when the asset writes its materialization events itself (see the module doc)."""
    return deferred(context) or len(built) > 1


def partition_events(context: dg.AssetExecutionContext, built: list[Built]) -> Iterator[dg.AssetMaterialization]:
    """One materialization per built partition (or one for an unpartitioned asset), data version = DVC md5."""
    step = context.get_step_execution_context()
    key = context.asset_key
    code_version = _get_code_version(key, step)
    inputs = _get_input_provenance_data(key, step)  # what Dagster's own event would record
    backfill = context.run.tags.get(BACKFILL_ID_TAG)
    for partition, md5, meta in built:
        user = md5 is not None
        version = dg.DataVersion(md5) if user else compute_logical_data_version(
            code_version, {k: v["data_version"] for k, v in inputs.items()})
        tags = _build_data_version_tags(version, code_version, inputs, user)
        if backfill:
            tags[BACKFILL_ID_TAG] = backfill
        yield dg.AssetMaterialization(asset_key=key, partition=partition, metadata=meta, tags=tags)

"""Issue 17.5: a run over several partitions records one materialization per partition, each with its
own metadata and its own data version (the DVC md5 for the stage assets).

A toy asset graph with the same event writer (orchestration/events.py) on a real Dagster instance;
the real assets over both style partitions: tests/test_dagster_dvc_sync.py (e2e, a `dvc repro` chain).
"""

import dagster as dg

from orchestration.events import OWN_EVENTS_TAG, partition_events, partitions_tags, records_own_events

PARTS = dg.StaticPartitionsDefinition(["none", "reinhard"])
MD5 = {"none": "aaa111.dir", "reinhard": "bbb222.dir"}
DATA_VERSION = "dagster/data_version"


def _toy_assets() -> list[dg.AssetsDefinition]:
    """styled -> pretrained (both partitioned), -> report (one): what the chain's assets do, minus DVC."""

    def body(context: dg.AssetExecutionContext, name: str):
        items = list(context.partition_keys) if context.assets_def.partitions_def else [None]
        built = [(p, f"{name}-{MD5[p]}" if p else f"{name}-md5", {"partition": p or "", "dvc_md5": MD5.get(p, "")})
                 for p in items]
        if not records_own_events(context, built):
            _, md5, meta = built[0]
            yield dg.MaterializeResult(metadata=meta, data_version=dg.DataVersion(md5))
            return
        yield dg.MaterializeResult()
        yield from partition_events(context, built)

    @dg.asset(partitions_def=PARTS, backfill_policy=dg.BackfillPolicy.single_run(), code_version="s1")
    def styled(context: dg.AssetExecutionContext):
        yield from body(context, "styled")

    @dg.asset(partitions_def=PARTS, backfill_policy=dg.BackfillPolicy.single_run(), deps=[styled],
              code_version="p1")
    def pretrained(context: dg.AssetExecutionContext):
        yield from body(context, "pretrained")

    @dg.asset(deps=[pretrained], code_version="r1")
    def report(context: dg.AssetExecutionContext):
        yield from body(context, "report")

    return [styled, pretrained, report]


def _events(result, asset: str) -> list[dg.AssetMaterialization]:
    return [e.step_materialization_data.materialization for e in result.get_asset_materialization_events()
            if e.asset_key.to_user_string() == asset]


def test_the_own_events_tag_is_dagsters() -> None:
    from dagster._core.storage.tags import EXTERNALLY_MANAGED_ASSETS_TAG

    assert OWN_EVENTS_TAG == EXTERNALLY_MANAGED_ASSETS_TAG == "dagster/defer_asset_events"
    tags = partitions_tags(["none", "reinhard"])
    assert tags["dagster/asset_partition_range_start"] == "none" and tags[OWN_EVENTS_TAG] == "true"


def test_one_run_over_both_partitions_records_one_event_per_partition_with_its_own_version() -> None:
    from tests.test_dagster_dvc_sync import stale_statuses

    assets = _toy_assets()
    with dg.instance_for_test() as instance:
        result = dg.materialize(assets, instance=instance, tags=partitions_tags(["none", "reinhard"]))
        assert result.success
        for asset in ("styled", "pretrained"):
            events = _events(result, asset)
            assert sorted(e.partition for e in events) == ["none", "reinhard"], events  # one each, no merged one
            for ev in events:
                assert ev.tags[DATA_VERSION] == f"{asset}-{MD5[ev.partition]}"
                assert ev.metadata["partition"].value == ev.partition
                assert ev.metadata["dvc_md5"].value == MD5[ev.partition]
                assert not any("/" in k for k in ev.metadata), sorted(ev.metadata)  # no other partition's keys
                rec = instance.get_latest_data_version_record(dg.AssetKey(asset), False, ev.partition)
                assert rec.event_log_entry.tags[DATA_VERSION] == f"{asset}-{MD5[ev.partition]}"
        [report] = _events(result, "report")
        assert report.tags[DATA_VERSION] == "report-md5"
        assert "dagster/input_data_version/pretrained" in report.tags  # provenance, as Dagster writes it
        assert report.tags["dagster/code_version"] == "r1"
        defs = dg.Definitions(assets=assets)
        assert set(stale_statuses(instance, defs).values()) == {"FRESH"}
        # a second run changes nothing: still fresh, and each partition still has its own version
        assert dg.materialize(assets, instance=instance, tags=partitions_tags(["none", "reinhard"])).success
        assert set(stale_statuses(instance, defs).values()) == {"FRESH"}


def test_a_range_run_without_the_tag_still_ends_with_each_partitions_own_version() -> None:
    """A backfill launched from the partition page (range tags only): Dagster's events come first (one
    shared version), then one per partition with its own, so the latest of each partition is right."""
    assets = _toy_assets()
    with dg.instance_for_test() as instance:
        tags = {k: v for k, v in partitions_tags(["none", "reinhard"]).items() if k != OWN_EVENTS_TAG}
        result = dg.materialize(assets[:1], instance=instance, tags=tags)
        assert result.success
        for part in ("none", "reinhard"):
            rec = instance.get_latest_data_version_record(dg.AssetKey("styled"), False, part)
            assert rec.event_log_entry.tags[DATA_VERSION] == f"styled-{MD5[part]}"


def test_a_one_partition_run_keeps_dagsters_own_event() -> None:
    assets = _toy_assets()
    with dg.instance_for_test() as instance:
        result = dg.materialize(assets[:1], instance=instance, partition_key="reinhard")
        [ev] = _events(result, "styled")
        assert ev.partition == "reinhard" and ev.tags[DATA_VERSION] == "styled-bbb222.dir"

"""Schedule, sensor and run-level overrides of the Dagster layer (without running the chain)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import pytest

from orchestration.assets import FORCE_TAG
from orchestration.params_tags import SET_TAG, parse_overrides, write_overrides
from sim2real.config import ConfigError, load_config
from tests.conftest import make_project


def test_nightly_schedule_sets_a_new_seed_and_covers_all_partitions(tmp_path: Path) -> None:
    from orchestration.definitions import build_definitions

    root = make_project(tmp_path / "p", dvc=False)
    defs = build_definitions(root)
    schedule = defs.resolve_schedule_def("nightly")
    when = dt.datetime(2026, 12, 2, 2, 0, tzinfo=dt.UTC)
    ctx = dg.build_schedule_context(scheduled_execution_time=when)
    req = schedule.evaluate_tick(ctx).run_requests[0]
    assert req.tags[SET_TAG] == "synthetic.seed=20261202"
    assert req.tags["dagster/asset_partition_range_start"] == "none"
    assert req.tags["dagster/asset_partition_range_end"] == "reinhard"


def test_sensor_fires_when_real_data_changes(tmp_path: Path) -> None:
    from orchestration.definitions import build_definitions

    root = make_project(tmp_path / "p", dvc=False)
    real = tmp_path / "real"
    real.mkdir()
    (real / "a.png").write_bytes(b"1")
    write_overrides(root / "params.yaml", ["real.source=folder", f"real.root={real}"])
    sensor = build_definitions(root).resolve_sensor_def("new_real_data")
    with dg.instance_for_test() as instance:
        first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
        assert not first.run_requests and first.cursor
        same = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert not same.run_requests
        (real / "b.png").write_bytes(b"2")
        fired = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert len(fired.run_requests) == 1
        assert fired.run_requests[0].tags[FORCE_TAG] == "real_target"


def test_sensor_watches_an_imported_source_folder(tmp_path: Path) -> None:
    """real -> real: a change under synthetic.root forces synthetic_scenes; both changed force both."""
    from orchestration.definitions import build_definitions
    from orchestration.watch import data_fingerprint

    root = make_project(tmp_path / "p", dvc=False)
    src, real = tmp_path / "city_a", tmp_path / "city_b"
    for folder in (src, real):
        folder.mkdir()
        (folder / "a.png").write_bytes(b"1")
    write_overrides(root / "params.yaml", ["synthetic.source=folder", f"synthetic.root={src}"])
    sensor = build_definitions(root).resolve_sensor_def("new_real_data")

    def tick(cursor: str | None) -> dg.SensorExecutionData:
        return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))

    with dg.instance_for_test() as instance:
        first = tick(None)  # real.source is the proxy: only the source folder is watched
        assert not first.run_requests and json.loads(first.cursor) == {"synthetic_scenes": data_fingerprint(src)}
        assert not tick(first.cursor).run_requests
        (src / "b.png").write_bytes(b"2")
        fired = tick(first.cursor)
        req, = fired.run_requests
        assert req.tags[FORCE_TAG] == "synthetic_scenes" and req.run_key == f"source-{data_fingerprint(src)[:16]}"
        (src / "c.png").write_bytes(b"3")
        again, = tick(fired.cursor).run_requests
        assert again.run_key != req.run_key  # one run key per fingerprint

        # the real target folder joins: recorded on its first tick, not a change
        write_overrides(root / "params.yaml", ["real.source=folder", f"real.root={real}"])
        joined = tick(tick(fired.cursor).cursor)
        assert not joined.run_requests and set(json.loads(joined.cursor)) == {"real_target", "synthetic_scenes"}
        (src / "d.png").write_bytes(b"4")
        (real / "b.png").write_bytes(b"2")
        both, = tick(joined.cursor).run_requests
        assert set(both.tags[FORCE_TAG].split(",")) == {"real_target", "synthetic_scenes"}
        assert both.run_key == (f"real-{data_fingerprint(real)[:16]}+source-{data_fingerprint(src)[:16]}")

        # a plain-string cursor (the real fingerprint, from before the source was watched) still works
        old = data_fingerprint(real)
        kept = tick(old)
        assert not kept.run_requests and json.loads(kept.cursor)["real_target"] == old
        (real / "c.png").write_bytes(b"3")
        real_only, = tick(old).run_requests
        assert real_only.tags[FORCE_TAG] == "real_target"


def test_sensor_skips_the_proxy_domain(tmp_path: Path) -> None:
    from orchestration.definitions import build_definitions

    root = make_project(tmp_path / "p", dvc=False)
    sensor = build_definitions(root).resolve_sensor_def("new_real_data")
    with dg.instance_for_test() as instance:
        res = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
    assert not res.run_requests and "proxy" in (res.skip_message or "")


def test_run_overrides_are_validated_and_keep_comments(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", dvc=False)
    params = root / "params.yaml"
    assert parse_overrides("a.b=1; c.d=x ;") == ["a.b=1", "c.d=x"]
    assert write_overrides(params, ["synthetic.seed=42"])
    assert load_config(params).synthetic.seed == 42
    assert "# sim2real: the one configuration" in params.read_text()
    assert not write_overrides(params, ["synthetic.seed=42"])  # unchanged: no rewrite
    before = params.read_text()
    with pytest.raises(ConfigError, match="synthetic.sed"):
        write_overrides(params, ["synthetic.sed=1"])
    assert params.read_text() == before

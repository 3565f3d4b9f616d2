"""Materialize the whole chain through Dagster in-process (what `sim2real materialize` does)."""

import os
from pathlib import Path

import dagster as dg


def dagster_home(root: Path) -> Path:
    home = root / ".dagster_home"
    home.mkdir(exist_ok=True)
    return home


def materialize_all(root: Path, instance: dg.DagsterInstance | None = None,
                    tags: dict[str, str] | None = None) -> dg.ExecuteInProcessResult:
    """One Dagster run over every asset and every ablation partition; raises on failure."""
    from orchestration.definitions import all_partitions_tags, build_definitions
    from sim2real.config import load_config

    defs = build_definitions(root)
    cfg = load_config(root / "params.yaml")
    assets = list(defs.assets or [])
    checks = list(defs.asset_checks or [])
    run_tags = {**all_partitions_tags(cfg), **(tags or {})}
    if instance is None:
        os.environ.setdefault("DAGSTER_HOME", str(dagster_home(root)))
        instance = dg.DagsterInstance.get()
    return dg.materialize([*assets, *checks], instance=instance, tags=run_tags)

"""Materialize the whole chain through Dagster in-process (what `sim2real materialize` does)."""

import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg


def dagster_home(root: Path) -> Path:
    home = root / ".dagster_home"
    home.mkdir(exist_ok=True)
    return home


@dataclass
class ChainResult:
    """The runs `materialize_all` made (the chain, then the label-budget curve), read as one."""

    runs: list[dg.ExecuteInProcessResult]

    @property
    def success(self) -> bool:
        return all(r.success for r in self.runs)

    def get_asset_materialization_events(self) -> list:
        return [e for r in self.runs for e in r.get_asset_materialization_events()]

    def get_asset_check_evaluations(self) -> list:
        return [c for r in self.runs for c in r.get_asset_check_evaluations()]


def materialize_all(root: Path, instance: dg.DagsterInstance | None = None,
                    tags: dict[str, str] | None = None) -> ChainResult:
    """Every asset and every partition: one run for the chain, one for the label-budget curve, one for
    the transferability curve.

    Dagster covers one partitions definition per run, so the style ablation, the (N, seed) grid of
    the label-budget curve and the (k, seed) grid of the transferability curve run one after the other.
    """
    from orchestration.definitions import (
        CHAIN_SELECTION,
        LABEL_BUDGET_SELECTION,
        TRANSFER_GROUP,
        all_partitions_tags,
        build_definitions,
        label_budget_tags,
    )
    from sim2real.config import load_config

    defs = build_definitions(root)
    cfg = load_config(root / "params.yaml")
    everything = [*(defs.assets or []), *(defs.asset_checks or [])]
    if instance is None:
        os.environ.setdefault("DAGSTER_HOME", str(dagster_home(root)))
        instance = dg.DagsterInstance.get()
    runs = []
    for selection, part_tags in ((CHAIN_SELECTION, all_partitions_tags(cfg)),
                                 (LABEL_BUDGET_SELECTION, label_budget_tags(cfg)),
                                 (dg.AssetSelection.groups(TRANSFER_GROUP), all_partitions_tags(cfg, "transfer_ablation"))):
        runs.append(dg.materialize(everything, instance=instance, selection=selection,
                                   tags={**part_tags, **(tags or {})}))
    return ChainResult(runs)

"""Dagster's selection parser works in this environment (antlr4 4.9 from hydra/omegaconf broke it)."""

import dagster as dg


def test_selection_strings_parse() -> None:
    sel = dg.AssetSelection.from_string("key:synthetic_scenes+")
    assert sel is not None
    from orchestration.definitions import defs

    job = defs.resolve_job_def("sim2real_chain")  # define_asset_job(selection="*")
    keys = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert {"synthetic_scenes", "gap_report", "real_only_model"} <= keys


def test_definitions_have_every_stage_and_checks() -> None:
    from orchestration.definitions import defs
    from sim2real.stages import STAGES

    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == set(STAGES)
    names = {c.name for c in graph.asset_check_keys}
    assert {"labels_valid", "class_coverage", "miou_not_regressed"} <= names
    assert defs.resolve_schedule_def("nightly") and defs.resolve_sensor_def("new_real_data")

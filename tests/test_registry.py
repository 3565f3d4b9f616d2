"""The stage registry is the single source: dvc.yaml, Dagster assets and the CLI derive from it."""

from pathlib import Path

import yaml
from typer.testing import CliRunner

from sim2real import dvcyaml
from sim2real.cli import app
from sim2real.stages import STAGES, get_stage, topological_order

REPO = Path(__file__).resolve().parents[1]


def test_committed_dvc_yaml_is_current() -> None:
    assert (REPO / "dvc.yaml").read_text() == dvcyaml.render(), "dvc.yaml is stale: run `sim2real dvc-yaml`"


def test_every_stage_function_resolves() -> None:
    for stage in STAGES.values():
        assert callable(stage.resolve()), stage.name


def test_dvc_stages_match_registry() -> None:
    doc = yaml.safe_load(dvcyaml.render())["stages"]
    assert set(doc) == set(STAGES)
    for name, entry in doc.items():
        assert entry["cmd"].startswith(f"sh bin/sim2real run {name}")  # PATH-independent launcher
        for up in STAGES[name].upstream:
            assert any(d.startswith(f"data/{up}") for d in entry["deps"]), (name, up)


def test_order_respects_upstream() -> None:
    order = topological_order()
    for name, stage in STAGES.items():
        for up in stage.upstream:
            assert order.index(up) < order.index(name)


def test_unknown_stage_lists_choices() -> None:
    import pytest

    with pytest.raises(KeyError, match="synthetic_scenes"):
        get_stage("nope")


def test_cli_stages_and_dvc_yaml_check(monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    runner = CliRunner()
    res = runner.invoke(app, ["stages"])
    assert res.exit_code == 0 and "gap_report" in res.output
    res = runner.invoke(app, ["dvc-yaml", "--check"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["run", "nope"])
    assert res.exit_code == 2 and "unknown stage" in res.output


def test_cli_run_rejects_bad_param(monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    res = CliRunner().invoke(app, ["run", "synthetic_scenes", "-S", "synthetic.num_trian=3"])
    assert res.exit_code == 2 and "unknown key 'synthetic.num_trian'" in res.output


def test_store_schema_doc_is_current() -> None:
    from sim2real.evaluate.store import schema_markdown

    doc = (REPO / "docs" / "store_schema.md").read_text()
    assert doc.strip() == schema_markdown().strip(), "regenerate docs/store_schema.md (see README)"

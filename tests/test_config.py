"""params.yaml -> validated config objects; bad keys and types are clear errors."""

from pathlib import Path

import pytest
import yaml

from sim2real.config import ConfigError, load_config
from sim2real.profiles import apply_profile

REPO = Path(__file__).resolve().parents[1]


def test_committed_params_load() -> None:
    cfg = load_config(REPO / "params.yaml")
    assert cfg.project.image_height > 0
    assert cfg.style.method in cfg.style.ablation


def _write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_unknown_key_names_the_key(tmp_path: Path) -> None:
    p = _write(tmp_path, {"pretrain": {"stepz": 3}})
    with pytest.raises(ConfigError, match=r"unknown key 'pretrain.stepz'"):
        load_config(p)


def test_unknown_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'trainn'"):
        load_config(_write(tmp_path, {"trainn": {}}))


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"key 'pretrain.steps'.*'many'"):
        load_config(_write(tmp_path, {"pretrain": {"steps": "many"}}))


def test_bad_choice_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"key 'style.method'"):
        load_config(_write(tmp_path, {"style": {"method": "vangogh"}}))


def test_overrides_and_bad_override(tmp_path: Path) -> None:
    p = REPO / "params.yaml"
    assert load_config(p, overrides=["pretrain.steps=7"]).pretrain.steps == 7
    with pytest.raises(ConfigError, match="not KEY=VALUE"):
        load_config(p, overrides=["pretrain.steps"])
    with pytest.raises(ConfigError, match="unknown key 'pretrain.nope'"):
        load_config(p, overrides=["pretrain.nope=1"])


def test_not_yaml_and_missing(tmp_path: Path) -> None:
    p = tmp_path / "params.yaml"
    p.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_profile_merges_and_keeps_comments(tmp_path: Path) -> None:
    p = tmp_path / "params.yaml"
    p.write_text((REPO / "params.yaml").read_text())
    changed = dict(apply_profile(p, "camvid"))
    assert changed["real.source"] == "camvid"
    cfg = load_config(p)
    assert cfg.real.source == "camvid" and cfg.real.root
    assert "# sim2real: the one configuration" in p.read_text()
    with pytest.raises(ConfigError, match="unknown profile 'nope'.*camvid"):
        apply_profile(p, "nope")

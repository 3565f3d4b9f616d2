"""The one configuration: `params.yaml`, loaded into typed, validated config objects.

Example:
    >>> from sim2real.config import load_config
    >>> cfg = load_config("params.yaml", overrides=["pretrain.steps=10"])
    >>> cfg.pretrain.steps
    10
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError, model_validator

from sim2real.config.augment import AugmentConfig
from sim2real.config.base import Section
from sim2real.config.evaluate import EvaluateConfig, StoreConfig
from sim2real.config.label_budget import LabelBudgetConfig
from sim2real.config.project import ProjectConfig
from sim2real.config.real import RealConfig
from sim2real.config.rootcause import RootCauseConfig
from sim2real.config.style import StyleConfig
from sim2real.config.synthetic import SyntheticConfig
from sim2real.config.train import FinetuneConfig, ModelConfig, PretrainConfig
from sim2real.config.transfer import TransferConfig

__all__ = ["Config", "ConfigError", "load_config", "apply_overrides", "params_hash", "PROFILES_DIR"]

PROFILES_DIR = Path(__file__).resolve().parents[2] / "profiles"


class ConfigError(ValueError):
    """A bad params file: names the file and the offending key."""


class Config(Section):
    project: ProjectConfig = ProjectConfig()
    synthetic: SyntheticConfig = SyntheticConfig()
    augment: AugmentConfig = AugmentConfig()
    real: RealConfig = RealConfig()
    style: StyleConfig = StyleConfig()
    model: ModelConfig = ModelConfig()
    pretrain: PretrainConfig = PretrainConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    store: StoreConfig = StoreConfig()
    label_budget: LabelBudgetConfig = LabelBudgetConfig()
    rootcause: RootCauseConfig = RootCauseConfig()
    transfer: TransferConfig = TransferConfig()

    @model_validator(mode="after")
    def _fair_real_only_budget(self) -> Config:
        """A real-only baseline with fewer steps than pretraining + fine-tuning is not a fair comparison."""
        ft = self.finetune
        if ft.real_only_steps is not None and ft.real_only_steps < self.pretrain.steps + ft.steps:
            raise ValueError(
                f"finetune.real_only_steps={ft.real_only_steps} is below pretrain.steps + finetune.steps "
                f"({self.pretrain.steps} + {ft.steps}): the real-only baseline must get at least the "
                "synthetic arm's optimizer steps (null = exactly that)")
        lb = self.label_budget
        if lb.real_only_steps is None:
            return self
        numeric = [n for n in lb.sizes if n != "all"]
        worst = lb.max_steps if "all" in lb.sizes else lb.finetune_steps(max(numeric))
        need = self.pretrain.steps + worst
        if lb.real_only_steps < need:
            raise ValueError(
                f"label_budget.real_only_steps={lb.real_only_steps} is below pretrain.steps + fine-tuning "
                f"steps at the largest N ({self.pretrain.steps} + {worst} = {need}): the real-only baseline "
                "must get at least the synthetic arm's optimizer steps (null = exactly that)")
        return self

    def section(self, dotted: str) -> Any:
        """Value at a dotted key, e.g. `cfg.section("pretrain.steps")`."""
        node: Any = self
        for part in dotted.split("."):
            node = getattr(node, part)
        return node

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _format_error(source: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if not key:  # a rule across sections: its message names the keys
            lines.append(f"{source}: {str(e['msg']).removeprefix('Value error, ')}")
        elif e["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{key}'")
        else:
            lines.append(f"{source}: key '{key}': {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text) if text != "" else ""


def apply_overrides(data: dict[str, Any], overrides: list[str] | None, source: str = "override") -> dict:
    """Apply `a.b=value` overrides (value parsed as YAML) to a nested dict copy."""
    data = copy.deepcopy(data)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"{source}: override {item!r} is not KEY=VALUE")
        key, value = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{source}: key '{key}': '{part}' is not a section")
            node = child
        node[parts[-1]] = _parse_value(value)
    return data


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def config_from_dict(data: dict[str, Any], source: str = "params") -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping of sections")
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_error(source, err)) from None


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"{path}: params file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:  # one line: where, and what the parser expected
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = " ".join(str(x) for x in (getattr(err, "context", None), getattr(err, "problem", None)) if x)
        raise ConfigError(f"{path}: not valid YAML{where}: {what or str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    return data


def load_config(
    path: str | Path = "params.yaml",
    overrides: list[str] | None = None,
    profile: str | None = None,
) -> Config:
    """Load and validate params.yaml (+ optional profile file and KEY=VALUE overrides)."""
    path = Path(path)
    data = read_yaml(path)
    if profile:
        data = deep_merge(data, read_yaml(profile_path(profile)))
    data = apply_overrides(data, overrides, source=str(path))
    return config_from_dict(data, source=str(path))


def profile_path(name: str) -> Path:
    path = PROFILES_DIR / f"{name}.yaml"
    if not path.exists():
        choices = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown profile {name!r}; choose one of {choices}")
    return path


def params_hash(cfg: Config, keys: list[str] | None = None) -> str:
    """Stable hash of the whole config or of some dotted keys."""
    full = cfg.to_dict()
    if keys:
        full = {k: _lookup(full, k) for k in sorted(keys)}
    blob = json.dumps(full, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _lookup(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        node = node[part]
    return node

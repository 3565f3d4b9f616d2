"""Run-level params overrides: a run tag `sim2real/set` = "key=value;key=value".

A run with overrides never edits the workspace's params.yaml: it runs as a DVC experiment in its
own workspace (`orchestration/workspace.py`), where `write_overrides` applies them, validated.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from ruamel.yaml import YAML

from sim2real.config import apply_overrides, config_from_dict, read_yaml

SET_TAG = "sim2real/set"


def parse_overrides(tag: str) -> list[str]:
    return [part.strip() for part in tag.split(";") if part.strip()]


def write_overrides(params: Path, overrides: list[str]) -> bool:
    """Apply KEY=VALUE overrides to params.yaml in place (validated first, comments kept)."""
    data = read_yaml(params)
    new = apply_overrides(data, overrides, source=str(params))
    config_from_dict(new, source=f"{params} (run overrides)")
    if new == data:
        return False
    ry = YAML()
    doc = ry.load(params.read_text())
    for item in overrides:
        key, value = item.split("=", 1)
        node = doc
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(value)
    tmp = params.with_name(params.name + ".tmp")
    with open(tmp, "w") as f:
        ry.dump(doc, f)
    tmp.replace(params)
    return True

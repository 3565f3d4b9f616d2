"""Profiles: named partial params files under profiles/, merged into params.yaml with comments kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from sim2real.config import config_from_dict, deep_merge, profile_path, read_yaml


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out += _flatten(v, key + ".")
        else:
            out.append((key, v))
    return out


def apply_profile(params: Path, name: str) -> list[tuple[str, Any]]:
    """Write the profile's values into `params` (validated first); returns the changed keys."""
    profile = read_yaml(profile_path(name))
    merged = deep_merge(read_yaml(params), profile)
    config_from_dict(merged, source=f"{params} + profile {name}")  # validate before writing
    yaml = YAML()
    yaml.preserve_quotes = True
    doc = yaml.load(params.read_text())
    changed = []
    for key, value in _flatten(profile):
        node = doc
        parts = key.split(".")
        for part in parts[:-1]:
            if part not in node:
                node[part] = {}
            node = node[part]
        if node.get(parts[-1]) != value:
            node[parts[-1]] = value
            changed.append((key, value))
    tmp = params.with_name(params.name + ".tmp")
    with open(tmp, "w") as f:
        yaml.dump(doc, f)
    tmp.replace(params)
    return changed

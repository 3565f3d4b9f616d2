"""The data folders sensor `new_real_data` watches, and what changed in them since its cursor.

`real.root` (a real target folder) feeds stage `real_target`; `synthetic.root` (a real labelled
dataset imported as the source: real -> real) feeds stage `synthetic_scenes`. A change under a folder
forces its stage: the folders are no DVC dependencies (they may lie outside the repository). The
cursor is one JSON object, stage -> fingerprint; a plain-string cursor (written before the source
folder was watched) is the real target's fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from sim2real.config import Config

# run-key prefix per forced stage: a run key names every fingerprint it was requested for
RUN_KEY_PREFIX = {"real_target": "real", "synthetic_scenes": "source"}


@dataclass(frozen=True)
class Watched:
    stage: str  # the stage its files feed
    key: str  # the params.yaml key naming the folder
    folder: Path


def data_fingerprint(folder: Path) -> str:
    """Names, sizes and mtimes of every file under a dataset folder."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def watched_folders(cfg: Config, root: Path) -> list[Watched]:
    """The dataset folders of the current params: real.root (not the proxy) and synthetic.root (imported)."""
    found = []
    if cfg.real.source != "proxy" and cfg.real.root:
        found.append(Watched("real_target", "real.root", _resolve(cfg.real.root, root)))
    if cfg.synthetic.source != "procedural" and cfg.synthetic.root:
        found.append(Watched("synthetic_scenes", "synthetic.root", _resolve(cfg.synthetic.root, root)))
    return found


def _resolve(folder: str, root: Path) -> Path:
    path = Path(folder)
    return path if path.is_absolute() else root / path


def read_cursor(cursor: str | None) -> dict[str, str] | None:
    """Stage -> fingerprint; None before the first tick. An old plain-string cursor is real_target's."""
    if cursor is None:
        return None
    try:
        parsed = json.loads(cursor)
    except json.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and all(isinstance(v, str) for v in parsed.values()):
        return parsed
    return {"real_target": cursor}


def write_cursor(fingerprints: dict[str, str]) -> str:
    return json.dumps(fingerprints, sort_keys=True)


def changed_stages(before: dict[str, str], now: dict[str, str]) -> list[str]:
    """Stages whose folder changed. A folder watched for the first time is recorded, not a change."""
    return [stage for stage, fp in now.items() if stage in before and before[stage] != fp]


def run_key(stages: list[str], now: dict[str, str]) -> str:
    """One key per set of fingerprints, e.g. `real-<16 hex>+source-<16 hex>`."""
    return "+".join(f"{RUN_KEY_PREFIX[s]}-{now[s][:16]}" for s in stages)

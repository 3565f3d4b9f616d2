"""Run one registered stage in-process: the body of `sim2real run STAGE` (each DVC stage's cmd)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from sim2real.config import Config, ConfigError, load_config
from sim2real.context import StageContext, StepResult, write_json
from sim2real.reporting import dvc_metrics, for_report
from sim2real.stages import get_stage

log = logging.getLogger("sim2real")


def setup_threads(cfg: Config) -> int:
    """Size torch's thread pool to the cores free to this process (`sim2real.threads.thread_budget`:
    oversubscription collapses CPU speed)."""
    import torch

    from sim2real.threads import thread_budget

    n, why = thread_budget(cfg.project.num_threads)
    torch.set_num_threads(n)
    log.info("torch threads: %d (%s)", n, why)
    return n


def check_input_size(cfg: Config, root: Path, upstream: tuple[str, ...]) -> None:
    """Refuse a working resolution other than that of the upstream datasets already on disk.

    `sim2real run STAGE -S project.image_height=64` on one stage, with its inputs made at 32x48, would
    otherwise train or evaluate at a silent mix of sizes. Raises ConfigError naming the key(s), the
    input folder and both sizes.
    """
    want = (cfg.project.image_height, cfg.project.image_width)
    for up in upstream:
        base = root / "data" / up
        found = next(iter(sorted(base.glob("*/index.json")) or sorted(base.glob("*/*/index.json"))), None)
        if found is None:
            continue
        try:
            meta = json.loads(found.read_text())
            got = (int(meta["height"]), int(meta["width"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a broken index is reported, by name, by the stage that reads it
        if got != want:
            keys = [f"project.{k}={w}" for k, w, g in zip(("image_height", "image_width"), want, got, strict=True)
                    if w != g]
            raise ConfigError(f"{', '.join(keys)}: the working size {want[0]}x{want[1]} differs from the "
                              f"input {found.parent.relative_to(root)} ({got[0]}x{got[1]}); re-run the upstream "
                              f"stages at that size (`dvc repro`) or drop the override")


def run_stage(name: str, item: str | None = None, root: Path | None = None,
              cfg: Config | None = None, overrides: list[str] | None = None) -> StepResult:
    from sim2real.context import repo_root

    stage = get_stage(name)
    root = Path(root) if root is not None else repo_root()
    cfg = cfg or load_config(root / "params.yaml", overrides=overrides)
    items = stage.items(cfg)
    if stage.fanned:
        over = " x ".join(key for _, key in stage.dims)
        if item is None:
            raise ValueError(f"stage {name} runs once per {over} value; pass --item, one of {items}")
        if item not in items:
            raise ValueError(f"stage {name}: --item {item!r} is not in {over} = {items}")
    elif item is not None:
        raise ValueError(f"stage {name} has no matrix; --item is not accepted")
    check_input_size(cfg, root, stage.upstream)
    setup_threads(cfg)
    ctx = StageContext(root=root, stage=name, item=item)
    t0 = time.perf_counter()
    log.info("stage %s%s: start", name, f"@{item}" if item else "")
    result = for_report(name, stage.resolve()(cfg, ctx))  # mIoU in points from here on
    result.split_timings()
    result.timings["wall_s"] = round(time.perf_counter() - t0, 2)
    result.write(root / stage.summary_file(item))
    write_json(root / stage.metrics_file(item), dvc_metrics(name, result))
    log.info("stage %s%s: done in %.1fs", name, f"@{item}" if item else "", result.timings["wall_s"])
    return result


def read_summary(root: Path, name: str, item: str | None = None) -> StepResult | None:
    path = root / get_stage(name).summary_file(item)
    if not path.exists():
        return None
    return StepResult.from_json(json.loads(path.read_text()))

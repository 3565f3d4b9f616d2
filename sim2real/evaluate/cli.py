"""Bodies of `sim2real gap` (headline table from DuckDB) and `sim2real evaluate` (any checkpoint, any folder).

Example:
    >>> print(gap_main(store=None, run_id=None))           # latest run in store.path
    >>> print(evaluate_main(Path("data/finetuned_model/seed-0/model.pt"), Path("/data/camvid"),
    ...                     split="test", mapping=None, fmt=None, store=None))
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sim2real.config import Config, ConfigError, load_config
from sim2real.context import markdown_table, repo_root
from sim2real.evaluate.data import file_sha
from sim2real.evaluate.report import headline_pivot
from sim2real.evaluate.store import ENV_STORE, RunRows, Store, git_revision, resolve_store_path
from sim2real.label_budget.show import latest_curve

if TYPE_CHECKING:
    from sim2real.evaluate.predict import EvalResult

__all__ = ["gap_main", "evaluate_main"]


def _config(root: Path) -> Config:
    params = root / "params.yaml"
    return load_config(params) if params.exists() else Config()


def _store(explicit: Path | None) -> Store:
    root = repo_root()
    try:
        cfg = _config(root)
    except ConfigError:
        if explicit is None and not os.environ.get(ENV_STORE):
            raise  # the store path itself comes from params.yaml
        cfg = Config()  # reading a named store needs nothing from a broken params.yaml
    return Store(resolve_store_path(cfg.store.path, root, explicit), cfg.store.lock_timeout_s)


def gap_main(store: Path | None, run_id: str | None) -> str:
    """The headline table of a run (default: the latest) from the DuckDB store, as text.

    Args:
        store: DuckDB file (default: SIM2REAL_STORE, else params `store.path`).
        run_id: a run id (default: the newest run).
    """
    st = _store(store)
    # the latest gap report: a later `sim2real evaluate` run (one checkpoint, no headline) is not "the gap"
    rid = run_id or st.latest_run(stage="gap_report") or st.latest_run(stage="evaluate")
    if rid is None:
        curve = latest_curve(st)  # a store with only the label-budget curve in it
        if curve:
            return curve
        raise ValueError(f"{st.path}: the store holds no runs yet")
    runs = st.query("SELECT * FROM runs WHERE run_id = ?", [rid])
    if not runs:
        known = [r["run_id"] for r in st.query("SELECT run_id FROM runs ORDER BY created_at DESC LIMIT 10")]
        raise ValueError(f"{st.path}: no run {rid!r}; recent runs: {known}")
    run = runs[0]
    lines = [f"run {rid} ({run['stage']}, {run['created_at']:%Y-%m-%d %H:%M} UTC, target {run['target']}, "
             f"{run['image_height']}x{run['image_width']}, git {str(run['git_rev'])[:10]})"]
    headline = st.query("SELECT figure, split, value, spread, n, note FROM headline WHERE run_id = ?", [rid])
    if headline:
        lines += ["", "headline (mIoU points):", markdown_table(headline_pivot(headline), ".1f")]
    scores = st.query("SELECT model_id, split, adaptation, value FROM metrics WHERE run_id = ? AND name = 'miou' "
                      "ORDER BY model_id, adaptation <> 'none', adaptation, split", [rid])
    if scores:
        table: dict[str, dict] = {}
        for s in scores:
            key = s["model_id"] + ("" if s["adaptation"] == "none" else f" +{s['adaptation']}")
            table.setdefault(key, {"model": key})[s["split"]] = s["value"]
        lines += ["", "mIoU (%) per model and split:", markdown_table(list(table.values()), ".1f")]
    if run.get("note"):
        lines += ["", f"WARNING: {run['note']}"]
    curve = latest_curve(st) if run_id is None else None
    if curve:
        lines += ["", curve]
    return "\n".join(lines)


def evaluate_main(checkpoint: Path, root: Path, split: str | None, mapping: Path | None, fmt: str | None,
                  store: Path | None, skip_bad: bool = False) -> str:
    """Evaluate a checkpoint on a labelled folder at its working resolution; rows go to the store.

    Args:
        checkpoint: a sim2real `model.pt`.
        root: dataset folder (camvid, cityscapes or folder layout).
        split: split name (None: the importer's default).
        mapping: label mapping file (source id -> class) for folder-style data.
        fmt: camvid | cityscapes | folder (None: detected from the folder).
        store: DuckDB file (default: SIM2REAL_STORE, else params `store.path`).
        skip_bad: skip unreadable or invalid image/mask files (counted in the run's note) instead of failing.

    Returns:
        A text summary: mIoU, pixel accuracy, per-class IoU, run id.
    """
    import torch

    from sim2real.evaluate.domain_stats import image_properties
    from sim2real.evaluate.hard_samples import hard_sample_rows, rank_by_loss
    from sim2real.evaluate.predict import evaluate_model
    from sim2real.real.importers import detect_format, load_split
    from sim2real.real.validate import DatasetError
    from sim2real.train.checkpoint import CheckpointError, load_model

    checkpoint, root = Path(checkpoint), Path(root)
    if not checkpoint.exists():
        raise FileNotFoundError(f"{checkpoint}: checkpoint not found")
    here = repo_root()
    cfg = _config(here)
    st = Store(resolve_store_path(cfg.store.path, here, store), cfg.store.lock_timeout_s)
    st.check_writable()  # a bad or unwritable store fails before minutes of evaluation, not after
    device = "cuda" if torch.cuda.is_available() and cfg.project.device != "cpu" else "cpu"
    try:
        model, info = load_model(checkpoint, device=device)
    except CheckpointError as err:  # a bad input file: the CLI reports it as a usage error
        raise ValueError(str(err)) from None
    proj = info.get("params", {}).get("project", {})
    height = int(proj.get("image_height", cfg.project.image_height))
    width = int(proj.get("image_width", cfg.project.image_width))
    fmt = fmt or detect_format(root)
    try:
        data = load_split(root, fmt, split, height, width, mapping=mapping, skip_bad=skip_bad, fit=cfg.real.fit)
    except DatasetError as err:  # one line naming the first bad file; the importer's hint names a flag here
        head, *files = str(err).replace("set real.skip_bad=true", "pass --skip-bad").splitlines()
        more = f" (and {len(files) - 1} more)" if len(files) > 1 else ""
        raise DatasetError(f"{head} {files[0].strip()}{more}" if files else head) from None
    result = evaluate_model(model, data.images, data.masks, device, cfg.evaluate.batch_size)
    split_name = f"{fmt}:{split or 'default'}"
    sha = file_sha(checkpoint)
    map_sha = file_sha(mapping) if mapping else ""
    run_id = "eval-" + hashlib.sha256(json.dumps(
        [sha, str(root.resolve()), fmt, split, map_sha, height, width, cfg.real.fit]).encode()).hexdigest()[:12]
    model_id = f"checkpoint/{info.get('stage', 'model')}"
    keys = {"model_id": model_id, "split": split_name, "adaptation": "none"}
    props = {**image_properties(data.images, data.masks), "loss": result.losses, "miou": result.image_miou,
             "pixel_accuracy": result.image_accuracy}
    hard = rank_by_loss(result.losses, min(cfg.evaluate.hardest_k, len(data)))
    rows = RunRows(
        run={"run_id": run_id, "stage": "evaluate", "git_rev": git_revision(here),
             "params_hash": hashlib.sha256(json.dumps(info.get("params", {}), sort_keys=True, default=str)
                                           .encode()).hexdigest()[:16],
             "params_json": json.dumps(info.get("params", {}), sort_keys=True, default=str),
             "target": f"{fmt}:{root.resolve()}", "image_height": height, "image_width": width,
             "note": f"real.fit={cfg.real.fit}" + (f"; {len(data.skipped)} file(s) skipped" if data.skipped else "")},
        tables={"models": [_checkpoint_row(model_id, checkpoint, sha, info)],
                "metrics": [{**keys, **r} for r in result.metric_rows()],
                "class_iou": [{**keys, **r} for r in result.scores.class_rows()],
                "hard_samples": [{"model_id": model_id, "split": split_name, **r}
                                 for r in hard_sample_rows(hard, data.names, props)]})
    st.write_run(rows)
    # which fit (params real.fit) turned frames of another aspect into working-size samples
    head = (f"{checkpoint} on {root} [{split_name}] at {height}x{width}: {len(data)} images"
            + (f" ({len(data.skipped)} skipped)" if data.skipped else "") + f"; real.fit={cfg.real.fit}")
    return _summary(head, result, f"stored as run {run_id} in {st.path}")


def _checkpoint_row(model_id: str, checkpoint: Path, sha: str, info: dict[str, Any]) -> dict[str, Any]:
    """The `models` row of a checkpoint evaluated on its own (no chain: no seed, no N)."""
    init = info.get("init")
    return {"model_id": model_id, "kind": "checkpoint",
            "style_method": info.get("params", {}).get("style", {}).get("method"),
            "seed": None, "few_shot": None, "steps": int(info.get("step", 0)),
            "total_steps": int(info.get("total_steps", info.get("step", 0))),
            "init": init if isinstance(init, str) else json.dumps(init, default=str),
            "checkpoint": str(checkpoint.resolve()), "checkpoint_sha": sha}


def _summary(head: str, result: EvalResult, tail: str) -> str:
    """mIoU, pixel accuracy, loss and the per-class IoU table, between a head and a tail line."""
    s = result.scores
    classes = [{"class": r["class_name"], "IoU %": r["iou"],
                "present": "yes" if r["present"] else "absent"} for r in s.class_rows()]
    lines = [head, f"mIoU {100 * s.miou:.2f}  pixel accuracy {100 * s.pixel_accuracy:.2f}  "
                   f"mean loss {result.mean_loss:.3f}  ({int(np.isfinite(s.iou).sum())} classes present)",
             "", markdown_table(classes, ".1f"), "", tail]
    return "\n".join(lines)

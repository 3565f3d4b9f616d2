"""The reporting boundary of a stage: one mIoU unit and a few headline numbers for DVC.

A stage function returns a `StepResult`; before it is written (`summary.json`, the DVC metrics
file `data/metrics/<stage>.json`) and shown (Dagster metadata), `for_report` puts every mIoU in
points (0-100, the unit of `gap_report`, DuckDB and the HTML report). The training stages work in
fractions internally (checkpoint selection, DVCLive curves); they are converted here, once.

`dvc_metrics` keeps the DVC metrics file to a few headline numbers per stage (at most
`MAX_DVC_METRICS`), so `dvc metrics show` / `dvc metrics diff` read like a dashboard; every other
number stays in the stage's `summary.json` (and in Dagster's metadata).

Example:
    >>> r = StepResult(metrics={"real_val_miou_mean": 0.25, "steps": 3.0})
    >>> for_report("finetuned_model", r).metrics["real_val_miou_mean"]
    25.0
"""

from __future__ import annotations

import re
from typing import Any

from sim2real.context import StepResult

__all__ = ["FRACTION_STAGES", "HEADLINE", "MAX_DVC_METRICS", "dvc_metrics", "for_report", "is_miou_key",
           "metrics_in_points"]

MAX_DVC_METRICS = 8
# stages whose StepResult reports mIoU as a fraction in [0, 1] (the training loop's unit)
FRACTION_STAGES = frozenset({"pretrained_model", "finetuned_model", "real_only_model"})
# headline numbers per stage: {name in the DVC metrics file: key in the stage's metrics}, in this
# order (missing keys are left out). Shared names (`real_miou`, `steps`, `wall_s`) keep the columns of
# `dvc metrics show` (the union over all files) few. mIoU in points.
HEADLINE: dict[str, dict[str, str]] = {
    "synthetic_scenes": {"scenes": "scenes", "class_freq_tv_distance": "class_freq_tv_distance"},
    "real_target": {"few_shot_images": "few_shot_images", "val_images": "val_images",
                    "test_images": "test_images"},
    "augmented_scenes": {"images": "images", "void_fraction": "void_fraction"},
    "styled_scenes": {"lab_before": "lab_before", "lab_after": "lab_after"},
    "pretrained_model": {"real_miou": "real_miou", "synthetic_miou": "synthetic_miou", "steps": "steps"},
    "finetuned_model": {"real_miou": "real_val_miou_mean", "real_miou_std": "real_val_miou_std", "steps": "steps",
                       "total_steps": "total_steps"},
    "real_only_model": {"real_miou": "real_val_miou_mean", "real_miou_std": "real_val_miou_std", "steps": "steps",
                       "total_steps": "total_steps"},
    "gap_report": {"domain_gap": "domain_gap", "source_only_real_miou": "source_only_real_miou",
                   "finetuned_miou": "finetuned_miou", "real_only_miou": "real_only_miou",
                   "remaining_gap": "remaining_gap"},
    "label_budget_synthetic": {"val_miou": "val_miou", "test_miou": "test_miou", "steps": "steps"},
    "label_budget_real_only": {"val_miou": "val_miou", "test_miou": "test_miou", "steps": "steps"},
    "label_budget": {"source_only_test_miou": "source_only_test_miou", "val_synthetic_miou": "val_synthetic_miou",
                     "val_gain": "val_gain", "test_gain": "test_gain", "labels_saved": "labels_saved",
                     "labels_saved_extrapolated": "labels_saved_extrapolated"},
}


def is_miou_key(key: str) -> bool:
    """A metric (or table column) holding an mIoU: `real_miou`, `real_val_miou_mean`, `best mIoU`."""
    k = key.lower()
    return "miou" in k or k == "best_metric"


def _points(v: float) -> float:
    return round(100.0 * float(v), 3)


def _table_to_points(table: str) -> str:
    """Multiply the numeric cells of every mIoU column of a markdown table by 100."""
    lines = table.split("\n")
    if len(lines) < 3 or not lines[0].startswith("|"):
        return table
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    cols = [i for i, c in enumerate(header) if is_miou_key(c)]
    if not cols:
        return table
    out = lines[:2]
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        for i in cols:
            if i < len(cells) and re.fullmatch(r"-?[0-9.]+(e-?[0-9]+)?", cells[i]):
                cells[i] = format(100.0 * float(cells[i]), ".3g")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def metrics_in_points(metrics: dict[str, Any]) -> dict[str, Any]:
    """A training loop's metrics (mIoU as a fraction) with every numeric mIoU in points, for files a person reads."""
    return {k: _points(v) if is_miou_key(k) and isinstance(v, int | float) and not isinstance(v, bool) else v
            for k, v in metrics.items()}


def for_report(stage: str, result: StepResult) -> StepResult:
    """`result` with every mIoU in points (converted once, for the stages that report fractions)."""
    if stage not in FRACTION_STAGES or result.extra.get("miou_unit") == "points":
        return result
    result.metrics = metrics_in_points(result.metrics)
    result.tables = {title.replace("(fraction)", "(points)"): _table_to_points(t) for title, t in result.tables.items()}
    result.extra = {**result.extra, "miou_unit": "points"}
    return result


def dvc_metrics(stage: str, result: StepResult) -> dict[str, float]:
    """The headline numbers of a stage for its DVC metrics file (at most `MAX_DVC_METRICS`, with `wall_s`)."""
    numbers = result.all_metrics()
    names = HEADLINE.get(stage)
    if names is None:  # a stage without a declared headline: its mIoUs
        names = {k: k for k in sorted(k for k in numbers if is_miou_key(k))}
    out = {name: numbers[key] for name, key in names.items() if key in numbers}
    out = dict(list(out.items())[: MAX_DVC_METRICS - 1])
    if "wall_s" in numbers:
        out["wall_s"] = numbers["wall_s"]
    return out

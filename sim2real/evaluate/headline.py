"""The headline figures of the gap report (mIoU points per real split), with budgets and fairness warnings.

Reading order: how big the gap is (the baseline source-only model, `data.baseline_source`), what style
normalization and test-time baselines recovered, what fine-tuning recovered, and what synthetic
pretraining bought over the real-only baseline at the same N.

Example:
    >>> rows = headline_rows(ev, models, "reinhard", ["real/val", "real/test"])
    >>> {(r["figure"], r["split"]): r["value"] for r in rows}[("domain_gap", "real/val")]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim2real.evaluate.data import Evaluator, ModelEntry, baseline_source, main_source

__all__ = ["headline_rows", "budget_note", "pretraining_gain", "points"]


def points(x: float) -> float:
    """A [0, 1] score in points (NaN stays NaN)."""
    return 100.0 * x if x is not None and np.isfinite(x) else float("nan")


def mean_sd(values: list[float]) -> tuple[float, float | None, int]:
    """Mean, sample std (None below two values) and count of the finite values."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if not len(v):
        return float("nan"), None, 0
    return float(v.mean()), (float(v.std(ddof=1)) if len(v) > 1 else None), len(v)


def figure_row(figure: str, split: str, value: float, spread: float | None = None, n: int = 1,
               note: str = "") -> dict[str, Any]:
    return {"figure": figure, "split": split, "value": value, "spread": spread, "n": n, "note": note}


def headline_rows(ev: Evaluator, models: list[ModelEntry], method: str, splits: list[str]) -> list[dict]:
    """The headline figures (mIoU points) on each real split, with budgets and warnings in the notes.

    Args:
        ev: the evaluations (plain and test-time adapted).
        models: every model of the chain.
        method: `style.method`, the style of the main chain (what fine-tuning starts from).
        splits: the real splits to report on.
    """
    base, main = baseline_source(models), main_source(models, method)
    ft = [m for m in models if m.kind == "finetuned"]
    ro = [m for m in models if m.kind == "real_only"]
    rows: list[dict] = []
    for split in splits:
        if base is not None:
            rows += gap_rows(ev, base, [m for m in models if m.kind == "source_only"], split)
        if main is not None:
            rows += tta_rows(ev, main, split)
        if ft and main is not None:
            rows += finetuning_rows(ev, ft, main, base, split)
        if ro:
            mean, sd, n = mean_sd([points(ev.miou(m.model_id, split)) for m in ro])
            rows.append(figure_row("real_only_miou", split, mean, sd, n,
                                   note=f"seeds {[m.seed for m in ro]}, N={ro[0].few_shot}"))
        if ft and ro:
            gain, spread, n, note = pretraining_gain(ev, ft, ro, split)
            rows.append(figure_row("synthetic_pretraining_gain", split, gain, spread, n, note=note))
    return rows


def gap_rows(ev: Evaluator, base: ModelEntry, source_only: list[ModelEntry], split: str) -> list[dict]:
    """The domain gap of the baseline source-only model, and what each style method changed on `split`."""
    own = base.own_val
    s_val = points(ev.miou(base.model_id, own))
    r_val = points(ev.miou(base.model_id, split))
    rows = [figure_row("source_only_synthetic_val_miou", split, s_val, note=f"{base.model_id} on {own}"),
            figure_row("source_only_real_miou", split, r_val, note=base.model_id),
            figure_row("domain_gap", split, s_val - r_val,
                       note=f"{base.model_id}: {own} {s_val:.1f} minus {split} {r_val:.1f}")]
    rows += [figure_row(f"recovered_by_style/{m.style_method}", split, points(ev.miou(m.model_id, split)) - r_val,
                        note=f"{m.model_id} minus {base.model_id} on {split}")
             for m in source_only if m is not base]
    return rows


def tta_rows(ev: Evaluator, main: ModelEntry, split: str) -> list[dict]:
    """What each test-time baseline changed on the main source-only model (in evaluation order)."""
    main_real = points(ev.miou(main.model_id, split))
    return [figure_row(f"tta/{adaptation}", split, points(ev.miou(mid, sp, adaptation)) - main_real,
                       note=f"test-time {adaptation} on {main.model_id} (no labels, no training)")
            for (mid, sp, adaptation) in ev.results
            if mid == main.model_id and sp == split and adaptation != "none"]


def finetuning_rows(ev: Evaluator, ft: list[ModelEntry], main: ModelEntry, base: ModelEntry | None,
                    split: str) -> list[dict]:
    """The fine-tuned seeds' mIoU, what fine-tuning recovered over `main`, and the gap that remains."""
    mean, sd, n = mean_sd([points(ev.miou(m.model_id, split)) for m in ft])
    rows = [figure_row("finetuned_miou", split, mean, sd, n, note=f"seeds {[m.seed for m in ft]}, N={ft[0].few_shot}"),
            figure_row("recovered_by_finetuning", split, mean - points(ev.miou(main.model_id, split)), sd, n,
                       note=f"fine-tuned (N={ft[0].few_shot}) minus {main.model_id}")]
    if base is not None:
        rows.append(figure_row("remaining_gap", split, points(ev.miou(base.model_id, base.own_val)) - mean, sd, n,
                               note=f"{base.model_id} synthetic val minus fine-tuned {split}"))
    return rows


def budget_note(ft: list[ModelEntry], ro: list[ModelEntry]) -> tuple[str, list[str]]:
    """The budgets behind the pretraining gain, and warnings when the comparison is not fair."""
    warnings = []
    f_total = max(m.total_steps for m in ft)
    r_total = min(m.total_steps for m in ro)
    f_pre = f_total - max(m.steps for m in ft)
    note = (f"budgets: fine-tuned = {f_pre} pretraining + {max(m.steps for m in ft)} fine-tuning = {f_total} "
            f"steps; real-only = {r_total} steps; N = {ft[0].few_shot} vs {ro[0].few_shot}")
    if r_total < f_total:
        warnings.append(f"real-only baseline trained {r_total} steps < {f_total} steps of pretraining + "
                        f"fine-tuning: part of the 'gain' is extra compute, not synthetic data")
    if ft[0].few_shot != ro[0].few_shot:
        warnings.append(f"different N: fine-tuned on {ft[0].few_shot}, real-only on {ro[0].few_shot} real images")
    fm = ft[0].info.get("params", {}).get("model", {})
    rm = ro[0].info.get("params", {}).get("model", {})
    keys = ("arch", "encoder", "encoder_weights", "init_seed")
    if any(fm.get(k) != rm.get(k) for k in keys):
        warnings.append(f"different model/initial weights: fine-tuned {[fm.get(k) for k in keys]} vs "
                        f"real-only {[rm.get(k) for k in keys]}")
    elif ft[0].init_sha and ro[0].init_sha and ft[0].init_sha != ro[0].init_sha:
        warnings.append(f"different initial weights (state hash {ft[0].init_sha} before pretraining vs "
                        f"{ro[0].init_sha} for real-only)")
    same = ft[0].init_sha is not None and ft[0].init_sha == ro[0].init_sha
    note += "; same initial weights (hash-checked)" if same else ""
    return note, warnings


def pretraining_gain(ev: Evaluator, ft: list[ModelEntry], ro: list[ModelEntry],
                     split: str) -> tuple[float, float | None, int, str]:
    """Fine-tuned minus real-only mIoU on `split`: (gain, spread, n, note with budgets and warnings)."""
    f = {m.seed: points(ev.miou(m.model_id, split)) for m in ft}
    r = {m.seed: points(ev.miou(m.model_id, split)) for m in ro}
    fm, fsd, fn = mean_sd(list(f.values()))
    rm, rsd, rn = mean_sd(list(r.values()))
    paired = sorted(set(f) & set(r))
    if len(paired) >= 2:
        diffs = [f[s] - r[s] for s in paired]
        spread = float(np.std(diffs, ddof=1))
        how = f"std of {len(paired)} seed-paired differences"
    else:
        spread = float(np.hypot(fsd, rsd)) if fsd is not None and rsd is not None else None
        how = "combined std of both arms" if spread is not None else "one seed: no spread"
    note, warnings = budget_note(ft, ro)
    text = (f"fine-tuned {fm:.1f}" + (f" ± {fsd:.1f}" if fsd is not None else "") + f" (n={fn}) minus real-only "
            f"{rm:.1f}" + (f" ± {rsd:.1f}" if rsd is not None else "") + f" (n={rn}); spread = {how}; {note}")
    if warnings:
        text += "; WARNING: " + "; ".join(warnings)
    return fm - rm, spread, min(fn, rn), text

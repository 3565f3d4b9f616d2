"""Stage `root_causes`: which suspected traits of the target really cause the gap?

The source-only model (`pretrained_model/<style.method>`) is evaluated on its own styled synthetic
val (the source mIoU) and on the real target split (`rootcause.split`): their difference is the gap.
Then, for each intervention in `rootcause.interventions` (registry: `sim2real.rootcause`), the same
model is re-evaluated on the intervened target set; the mIoU change on all images and on the
hardest k images gets a seeded bootstrap CI over images, and a verdict (confirmed / inconclusive /
rejected, see `verdict.decide`). Confirmed causes are listed first.

Writes `data/root_causes/`: `causes.md` (findings + table), `causes.json` (every number),
`causes.png` (change with CI per intervention, coloured by verdict); rows to DuckDB (`root_causes`).

Run:  sim2real run root_causes   (after pretrained_model, real_target, styled_scenes)
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.config import Config
from sim2real.context import StageContext, StepResult, markdown_table
from sim2real.evaluate.data import ImageSet, file_sha, load_set
from sim2real.evaluate.hard_samples import rank_by_loss
from sim2real.evaluate.predict import EvalResult, evaluate_model
from sim2real.evaluate.store import RunRows, Store, resolve_store_path, stage_run
from sim2real.rootcause.registry import Probe, get_intervention
from sim2real.rootcause.verdict import VERDICTS, bootstrap_change, decide, image_confusions
from sim2real.shards import replace_dir, temp_sibling
from sim2real.train.checkpoint import load_model

__all__ = ["root_causes", "check_intervention", "findings", "load_inputs"]

COLOURS = {"confirmed": "tab:green", "inconclusive": "tab:gray", "rejected": "tab:red"}


def load_inputs(cfg: Config, ctx: StageContext) -> tuple[ImageSet, ImageSet, ImageSet]:
    """(target split, the model's own styled val, source reference images) as ImageSets."""
    rc, method = cfg.rootcause, cfg.style.method
    target_dir = ctx.stage_dir("real_target") / rc.split
    styled = ctx.stage_dir("styled_scenes", method)
    sets = (load_set(target_dir, f"real/{rc.split}", rc.max_images),
            load_set(styled / "val", f"styled/{method}/val"),
            load_set(styled / "train", f"styled/{method}/train", rc.source_images))
    for s, path in zip(sets, (target_dir, styled / "val", styled / "train"), strict=True):
        if s is None:
            raise FileNotFoundError(f"root_causes: {path} not found; run its stage first")
    return sets  # type: ignore[return-value]


def check_intervention(name: str, model: Any, probe: Probe, before: np.ndarray, gap: float, cfg: Config,
                       device: str) -> dict[str, Any]:
    """Apply one intervention, re-evaluate, measure the change (all images, hardest k) and decide."""
    rc = cfg.rootcause
    iv = get_intervention(name)
    out = iv(probe)
    res = evaluate_model(model, out.images, out.masks, device=device, batch_size=cfg.evaluate.batch_size)
    after = image_confusions(res.predictions, out.masks)
    n = len(probe.images)
    every = bootstrap_change(before, after, out.keep, np.arange(n), rc.bootstrap, rc.ci, rc.seed)
    hard = bootstrap_change(before, after, out.keep, probe.hard, rc.bootstrap, rc.ci, rc.seed)
    verdict, why = decide(every, gap, rc.min_gap_share, rc.band)
    return {"intervention": name, "trait": out.trait or iv.trait, "description": iv.description,
            "kind": "paired" if out.keep is None else "subset", "all": asdict(every), "hardest": asdict(hard),
            "gap_share": every.value / gap if gap > 0 and np.isfinite(every.value) else None,
            "verdict": verdict, "why": why, "note": out.note}


def order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Confirmed first, then inconclusive, then rejected; larger changes first within each."""
    def key(r: dict[str, Any]) -> tuple[int, float]:
        v = r["all"]["value"]
        return VERDICTS.index(r["verdict"]), -(v if np.isfinite(v) else -1e9)
    return sorted(rows, key=key)


def _ci(c: dict[str, Any]) -> str:
    if not np.isfinite(c["value"]):
        return "n/a"
    return f"{c['value']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}]"


def table_rows(rows: list[dict[str, Any]], k: int, level: float) -> list[dict[str, Any]]:
    pct = f"{level:.0%}"
    return [{"trait": r["trait"], "intervention": r["intervention"], "images": r["all"]["images"],
             "mIoU before -> after": f"{r['all']['before']:.1f} -> {r['all']['after']:.1f}",
             f"change, all images [{pct} CI]": _ci(r["all"]), f"change, hardest {k} [{pct} CI]": _ci(r["hardest"]),
             "share of gap": "" if r["gap_share"] is None else f"{r['gap_share']:.0%}", "verdict": r["verdict"]}
            for r in rows]


def findings(rows: list[dict[str, Any]], gap: dict[str, Any]) -> list[str]:
    """The findings list: confirmed causes first, then what was ruled out, then what stays open."""
    out = []
    for r in rows:
        if r["verdict"] == "confirmed":
            out.append(f"CONFIRMED: {r['trait']} ({r['intervention']}): {r['why']}.")
    if not out:
        out.append(f"No cause confirmed: no intervention closed at least the stated share of the "
                   f"{gap['gap']:.1f}-point gap with a CI excluding 0.")
    rejected = [r["intervention"] for r in rows if r["verdict"] == "rejected"]
    open_ = [r["intervention"] for r in rows if r["verdict"] == "inconclusive"]
    if rejected:
        out.append("Rejected (removing the trait does not help): " + ", ".join(rejected) + ".")
    if open_:
        out.append("Inconclusive (more images or a stronger effect needed): " + ", ".join(open_) + ".")
    return out


def plot_causes(rows: list[dict[str, Any]], gap: dict[str, Any], k: int, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.5 * len(rows)))
    y = np.arange(len(rows))[::-1]
    for yi, r in zip(y, rows, strict=True):
        for part, dy, marker in (("all", 0.12, "o"), ("hardest", -0.12, "s")):
            c = r[part]
            if not np.isfinite(c["value"]):
                continue
            ax.errorbar([c["value"]], [yi + dy], xerr=[[c["value"] - c["low"]], [c["high"] - c["value"]]],
                        fmt=marker, color=COLOURS[r["verdict"]], capsize=3, ms=5,
                        alpha=1.0 if part == "all" else 0.55)
    ax.axvline(0, color="black", lw=0.8)
    ax.axvline(gap["gap"], color="tab:blue", ls="--", lw=0.8, label=f"the whole gap ({gap['gap']:.1f})")
    ax.set_yticks(y, [f"{r['intervention']} ({r['verdict']})" for r in rows], fontsize=8)
    ax.set(xlabel=f"mIoU change on {gap['target']} (points; o = all images, s = hardest {k})",
           title="Root-cause checks: does removing the trait close the gap?")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def store_rows(rows: list[dict[str, Any]], gap: dict[str, Any], k: int) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        a, h = r["all"], r["hardest"]
        out.append({"model_id": gap["model_id"], "split": gap["target"], "intervention": r["intervention"],
                    "trait": r["trait"], "kind": r["kind"], "images": a["images"], "hardest_k": k,
                    "miou_before": a["before"], "miou_after": a["after"], "change": a["value"],
                    "ci_low": a["low"], "ci_high": a["high"], "hard_change": h["value"], "hard_ci_low": h["low"],
                    "hard_ci_high": h["high"], "gap": gap["gap"], "gap_share": r["gap_share"],
                    "verdict": r["verdict"], "note": f"{r['why']}; {r['note']}"})
    return out


def _clean(v: Any) -> Any:
    """JSON-safe: NaN / inf -> None, numpy scalars -> Python numbers."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        return float(v) if np.isfinite(v) else None
    return v


def root_causes(cfg: Config, ctx: StageContext) -> StepResult:
    """Test every configured intervention on the source-only model; confirmed causes first.

    Args:
        cfg: reads `rootcause` (interventions, split, hardest_k, bootstrap, thresholds), `style.method`
            (which source-only model), `evaluate.batch_size`, `store`.
        ctx: writes `data/root_causes/`.
    """
    rc = cfg.rootcause
    names = [get_intervention(n).name for n in rc.interventions]  # an unknown name fails before any work
    store = Store(resolve_store_path(cfg.store.path, ctx.root), cfg.store.lock_timeout_s)
    store.check_writable()
    device = ctx.device(cfg.project.device)
    ckpt_path = ctx.stage_dir("pretrained_model", cfg.style.method) / "model.pt"
    if not ckpt_path.exists():
        raise FileNotFoundError(f"{ckpt_path}: source-only model not found; run "
                                f"`sim2real run pretrained_model --item {cfg.style.method}` first")
    model, _ = load_model(ckpt_path, device=device)
    target, source_val, source_ref = load_inputs(cfg, ctx)
    base: EvalResult = evaluate_model(model, target.images, target.masks, device=device,
                                      batch_size=cfg.evaluate.batch_size)
    src = evaluate_model(model, source_val.images, source_val.masks, device=device, batch_size=cfg.evaluate.batch_size)
    gap = {"model_id": f"source_only/{cfg.style.method}", "checkpoint_sha": file_sha(ckpt_path),
           "source": source_val.name, "target": target.name, "images": len(target),
           "source_miou": 100 * src.scores.miou, "target_miou": 100 * base.scores.miou}
    gap["gap"] = gap["source_miou"] - gap["target_miou"]
    k = min(rc.hardest_k, len(target))
    hard = rank_by_loss(base.losses, k)
    probe = Probe(target.images, target.masks, source_ref.images, source_ref.masks, hard, base.losses, rc)
    before = image_confusions(base.predictions, target.masks)
    rows = order([check_intervention(n, model, probe, before, gap["gap"], cfg, device) for n in names])

    lines = findings(rows, gap)
    table = markdown_table(table_rows(rows, k, rc.ci))
    settings = {"bootstrap": rc.bootstrap, "ci": rc.ci, "seed": rc.seed, "min_gap_share": rc.min_gap_share,
                "band": rc.band, "hardest_k": k}
    text = (f"## Root causes of the gap ({gap['model_id']}: {gap['source_miou']:.1f} mIoU on {gap['source']}, "
            f"{gap['target_miou']:.1f} on {gap['target']}; gap {gap['gap']:.1f} points)\n\n"
            + "\n".join(f"- {f}" for f in lines) + f"\n\n{table}\n\n"
            f"Verdicts: confirmed = the {rc.ci:.0%} bootstrap CI over images ({rc.bootstrap} resamples, seed "
            f"{rc.seed}) excludes 0 and the change closes >= {rc.min_gap_share:.0%} of the gap; rejected = the "
            f"CI's upper end is below +{rc.band:g} points; else inconclusive.\n\n### What each intervention did\n\n"
            + "\n".join(f"- **{r['intervention']}** ({r['description'].rstrip('.')}): {r['note']}. {r['why']}." for r in rows)
            + "\n")
    doc = {"gap": gap, "settings": settings, "findings": lines, "causes": rows}
    out = ctx.stage_dir()
    tmp = temp_sibling(out)
    try:
        (tmp / "causes.md").write_text(text)
        (tmp / "causes.json").write_text(json.dumps(_clean(doc), indent=1, sort_keys=True))
        plot_causes(rows, gap, k, tmp / "causes.png")
        store.write_run(RunRows(run=stage_run("root_causes", cfg, ctx.root, doc),
                                tables={"root_causes": store_rows(rows, gap, k)}))
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # mIoU-named keys: they are the stage's headline numbers in `dvc metrics show`
    metrics = {"gap_miou": gap["gap"], "confirmed": float(sum(r["verdict"] == "confirmed" for r in rows))}
    metrics |= {f"miou_change/{r['intervention']}": r["all"]["value"] for r in rows if np.isfinite(r["all"]["value"])}
    return StepResult(metrics=metrics, tables={f"root causes ({gap['target']}, mIoU points)": table},
                      plots={"root causes": str((out / "causes.png").relative_to(ctx.root))},
                      text="\n".join(lines), extra={"confirmed": [r["intervention"] for r in rows
                                                                  if r["verdict"] == "confirmed"]})


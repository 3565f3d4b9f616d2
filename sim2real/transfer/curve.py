"""Stage `transfer_curve`: real-val mIoU against k frozen encoder stages, synthetic vs ImageNet init.

Reads every `data/transfer_ablation/k-<k>/seed-<s>/run.json` and writes `data/transfer_curve/`:
`curve.png` (mean and seed spread per init, budgets in the caption), `curve.md` (the table and
what it says), `curve.json`. Reading: freezing stages 1..k costs `k=0 minus k` points; while that
cost stays within the seed spread (or `TOLERANCE` points), stages 1..k carry features that transfer
as they are; the first k where it grows marks the stages that must adapt to the real target.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.config import Config
from sim2real.context import StageContext, StepResult, markdown_table
from sim2real.shards import replace_dir, temp_sibling
from sim2real.transfer.runs import ARMS, run_dir

__all__ = ["transfer_curve", "load_runs", "summarize", "transferable_depth", "budget_warnings", "TOLERANCE"]

TOLERANCE = 1.0  # mIoU points: freezing that costs less than this (or the seed spread) "transfers"
LABELS = {"synthetic": "synthetic-pretrained", "imagenet": "ImageNet-only"}


def load_runs(cfg: Config, root: Path) -> list[dict[str, Any]]:
    runs = []
    for k in cfg.transfer.frozen:
        for seed in cfg.transfer.seeds:
            path = run_dir(root, k, seed) / "run.json"
            if not path.exists():
                raise FileNotFoundError(f"{path}: not found; run `sim2real run transfer_ablation --item {k}-{seed}` "
                                        f"(or `dvc repro transfer_ablation@{k}-{seed}`) first")
            runs.append(json.loads(path.read_text()))
    return runs


def summarize(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per init: one point per k (mean, std over seeds, the seeds' values), k ascending."""
    out: dict[str, list[dict[str, Any]]] = {}
    for arm in ARMS:
        by_k: dict[int, list[float]] = {}
        for r in runs:
            by_k.setdefault(int(r["k"]), []).append(float(r["arms"][arm]["val_miou"]))
        out[arm] = [{"k": k, "mean": float(np.mean(v)), "spread": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                     "seeds": len(v), "values": v} for k, v in sorted(by_k.items())]
    return out


def transferable_depth(points: list[dict[str, Any]]) -> int | None:
    """The largest k whose freezing costs at most max(TOLERANCE, seed spread) against k = 0 (None without k = 0)."""
    base = next((p for p in points if p["k"] == 0), None)
    if base is None:
        return None
    depth = 0
    for p in points:
        if p["k"] == 0:
            continue
        if base["mean"] - p["mean"] <= max(TOLERANCE, base["spread"], p["spread"]):
            depth = p["k"]
        else:
            break
    return depth


def reading(summary: dict[str, list[dict[str, Any]]], stages: int) -> list[str]:
    """What the curve says, per init: how deep the encoder transfers as it is, and where it must adapt."""
    lines = []
    for arm in ARMS:
        pts = summary[arm]
        d = transferable_depth(pts)
        base = next((p for p in pts if p["k"] == 0), None)
        if d is None or base is None:
            lines.append(f"{LABELS[arm]}: no k = 0 run, so no reference to measure the cost of freezing against "
                         "(add 0 to transfer.frozen).")
            continue
        costs = ", ".join(f"1..{p['k']}: {base['mean'] - p['mean']:+.1f}" for p in pts if p["k"] > 0)
        tol = max(TOLERANCE, *(p["spread"] for p in pts))
        later = [p["k"] for p in pts if p["k"] > d and base["mean"] - p["mean"] <= tol]
        first_cost = next((p["k"] for p in pts if p["k"] > d), None)
        if later:  # costs more than the tolerance at some k, then not at a deeper one
            text = (f"inconclusive: freezing 1..{first_cost} costs more than the tolerance but freezing 1..{later[-1]} "
                    "does not; the curve is not monotonic, so seed noise dominates at this budget (add seeds or steps)")
        elif d == 0:
            text = "freezing even the shallowest tested stages costs more than the tolerance: the encoder must adapt"
        elif d >= stages:
            text = (f"freezing the whole encoder (all {stages} stages) costs at most the tolerance: at this budget "
                    "its features transfer as they are and only the decoder and head adapt")
        else:
            text = f"stages 1..{d} of {stages} transfer as they are; the stages above {d} must adapt"
        lines.append(f"{LABELS[arm]}: {text}. Cost of freezing stages (points, k = 0 minus k): {costs}; "
                     f"tolerance {tol:.1f} (max of {TOLERANCE:g} and the seed spread).")
    syn = next((p for p in summary["synthetic"] if p["k"] == 0), None)
    img = next((p for p in summary["imagenet"] if p["k"] == 0), None)
    if syn and img:
        lines.append(f"Synthetic pretraining vs ImageNet-only init, nothing frozen: {syn['mean'] - img['mean']:+.1f} "
                     "points on real val at this budget; the fair, converged comparison is the label-budget curve.")
    return lines


def budget_warnings(runs: list[dict[str, Any]]) -> list[str]:
    """Inits whose runs peaked at their last validation: still improving when the budget ran out."""
    lines = []
    for arm in ARMS:
        at_end = [r for r in runs if int(r["arms"][arm]["best_step"]) >= int(r["arms"][arm]["steps"])]
        if 2 * len(at_end) >= len(runs):
            lines.append(f"WARNING {LABELS[arm]}: best at the last validation in {len(at_end)} of {len(runs)} runs, "
                         "so it was still improving when the budget ran out: its mIoU is a floor, and differences "
                         "against the other init hold at this budget only. Raise transfer.steps for converged runs.")
    return lines


def table_rows(summary: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    ks = sorted({p["k"] for pts in summary.values() for p in pts})
    for k in ks:
        row: dict[str, Any] = {"k (stages 1..k frozen)": k}
        for arm in ARMS:
            p = next(q for q in summary[arm] if q["k"] == k)
            base = next((q for q in summary[arm] if q["k"] == 0), None)
            row[f"{LABELS[arm]} mIoU"] = f"{p['mean']:.1f} ± {p['spread']:.1f}" if p["seeds"] > 1 else f"{p['mean']:.1f}"
            row[f"{LABELS[arm]} cost of freezing"] = "" if base is None else f"{base['mean'] - p['mean']:+.1f}"
        rows.append(row)
    return rows


def plot_curve(summary: dict[str, list[dict[str, Any]]], budget: str, stages: int, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 4.4))
    for arm, colour in (("synthetic", "tab:orange"), ("imagenet", "tab:blue")):
        pts = summary[arm]
        ks = np.array([p["k"] for p in pts], float)
        mean = np.array([p["mean"] for p in pts])
        spread = np.array([p["spread"] for p in pts])
        ax.plot(ks, mean, marker="o", color=colour, label=f"{LABELS[arm]} init (mean ± std over seeds)")
        ax.fill_between(ks, mean - spread, mean + spread, color=colour, alpha=0.15)
        for p in pts:
            ax.scatter([p["k"]] * len(p["values"]), p["values"], color=colour, s=9, alpha=0.5)
    ax.set_xticks(range(stages + 1))
    ax.set(xlabel=f"encoder stages 1..k frozen (of {stages})", ylabel="real val mIoU (points)",
           title="Layer-wise transferability: which encoder stages must adapt?")
    fig.text(0.01, 0.01, budget, fontsize=6.5, wrap=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def transfer_curve(cfg: Config, ctx: StageContext) -> StepResult:
    """The curve, the table and the reading from every `transfer_ablation` run.

    Args:
        cfg: `transfer.frozen` / `transfer.seeds` (which runs exist).
        ctx: writes `data/transfer_curve/`.
    """
    runs = load_runs(cfg, ctx.root)
    summary = summarize(runs)
    stages = max(int(r["arms"]["synthetic"]["stages"]) for r in runs)
    r0 = runs[0]
    budget = (f"budgets: every run fine-tunes {r0['finetune_steps']} steps on the same N={r0['n']} real images "
              f"(lr {cfg.finetune.lr:g}, batch {cfg.finetune.batch_size}), best of "
              f"{cfg.transfer.evals_per_run} validations on real val; synthetic init = pretrained_model/"
              f"{r0['style_method']} ({r0['pretrain_steps']} pretraining steps); ImageNet init = {r0['imagenet_init']}")
    lines = budget_warnings(runs) + reading(summary, stages)
    table = markdown_table(table_rows(summary))
    text = ("## Layer-wise transferability (real val mIoU, points)\n\n" + "\n".join(f"- {line}" for line in lines)
            + f"\n\n{table}\n\n{budget}\n")
    out = ctx.stage_dir()
    tmp = temp_sibling(out)
    try:
        plot_curve(summary, budget, stages, tmp / "curve.png")
        (tmp / "curve.md").write_text(text)
        (tmp / "curve.json").write_text(json.dumps({"points": summary, "reading": lines, "budget": budget,
                                                    "stages": stages, "tolerance": TOLERANCE},
                                                   indent=1, sort_keys=True))
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    metrics = {f"{arm}_k{p['k']}_val_miou": p["mean"] for arm in ARMS for p in summary[arm]}
    for arm in ARMS:
        d = transferable_depth(summary[arm])
        if d is not None:
            metrics[f"{arm}_transferable_stages"] = float(d)
    return StepResult(metrics=metrics, tables={"transferability (real val mIoU against k frozen stages)": table},
                      plots={"transferability curve": str((out / "curve.png").relative_to(ctx.root))},
                      text="\n".join(lines) + "\n" + budget)

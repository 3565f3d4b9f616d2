"""The gap report a person reads: headline table first, findings in plain words, then plots and tables.

Everything is static: `report.html` next to its PNG plots (matplotlib), no scripts, no network. The
same tables go into the stage's StepResult (Dagster metadata, `sim2real run` output).

Example:
    >>> plots = write_report(out_dir, inputs)   # {title: "class_iou.png", ...}; out_dir/report.html
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sim2real.context import markdown_table
from sim2real.evaluate.data import (
    REAL_TEST,
    REAL_VAL,
    Evaluator,
    ImageSet,
    ModelEntry,
    Point,
    baseline_source,
)
from sim2real.previews import pyplot
from sim2real.taxonomy import CLASSES, PALETTE, colorize

if TYPE_CHECKING:
    from sim2real.evaluate.store import RunRows, Store

__all__ = ["ReportInputs", "write_report", "findings", "findings_markdown", "headline_markdown", "class_table", "class_gap_table",
           "history_rows", "few_shot_rows", "FIGURE_LABELS", "root_cause_findings", "root_cause_rows", "ordered_causes"]

FIGURE_LABELS = {
    "source_only_synthetic_val_miou": "Source-only mIoU on synthetic val",
    "source_only_real_miou": "Source-only mIoU on real",
    "domain_gap": "Domain gap (synthetic val − real, source-only)",
    "recovered_by_finetuning": "Recovered by fine-tuning (vs source-only)",
    "remaining_gap": "Gap remaining after fine-tuning",
    "finetuned_miou": "Fine-tuned mIoU",
    "real_only_miou": "Real-only baseline mIoU",
    "synthetic_pretraining_gain": "What synthetic pretraining bought (fine-tuned − real-only)",
}


# reading order of the headline: how big the gap is, what each step recovered, what pretraining bought
FIGURE_ORDER = ("source_only_synthetic_val_miou", "source_only_real_miou", "domain_gap", "recovered_by_style/",
                "tta/", "finetuned_miou", "recovered_by_finetuning", "remaining_gap", "real_only_miou",
                "synthetic_pretraining_gain")


def figure_rank(figure: str) -> int:
    for i, key in enumerate(FIGURE_ORDER):
        if figure == key or (key.endswith("/") and figure.startswith(key)):
            return i
    return len(FIGURE_ORDER)


def figure_label(figure: str) -> str:
    if figure in FIGURE_LABELS:
        return FIGURE_LABELS[figure]
    if figure.startswith("recovered_by_style/"):
        return f"Recovered by style normalization: {figure.split('/', 1)[1]} (vs none)"
    if figure.startswith("tta/"):
        return f"Test-time baseline: {figure.split('/', 1)[1]} (vs plain source-only)"
    return figure


@dataclass
class ReportInputs:
    run: RunRows
    models: list[ModelEntry]
    evaluator: Evaluator
    headline: list[dict]
    points: list[Point]
    fit_rows: list[dict]
    domain_rows: list[dict]
    latent_rows: list[dict]
    share_rows: list[dict]
    primary: ModelEntry
    main_source: ModelEntry | None
    hard_idx: np.ndarray
    real_val: ImageSet
    warnings: list[str] = field(default_factory=list)
    budget: str = ""  # the budgets behind the pretraining gain, in words
    embedding: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    few_shot: list[dict] = field(default_factory=list)
    # data/root_causes/causes.json of the root_causes stage (None: not run); its causes close the findings
    root_causes: dict[str, Any] | None = None
    source: str = "synthetic (procedural scenes)"  # the source domain, in words (an imported dataset: real -> real)


# ------------------------------------------------------------------------------------- tables


def _fmt(v: Any, spec: str = ".1f") -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float | np.floating):
        return "–" if not math.isfinite(float(v)) else format(float(v), spec)
    return str(v)


def headline_pivot(headline: list[dict]) -> list[dict]:
    """One row per figure with a column per real split (the headline table)."""
    rows: dict[str, dict] = {}
    splits = sorted(dict.fromkeys(h["split"] for h in headline), key=lambda sp: (sp != REAL_VAL, sp))
    for h in sorted(headline, key=lambda h: (figure_rank(h["figure"]), h["figure"])):
        r = rows.setdefault(h["figure"], {"figure": figure_label(h["figure"]), **{s: None for s in splits}})
        r[h["split"]] = h["value"]
        if h["split"] == REAL_VAL or "± (val)" not in r:
            r["± (val)"] = h["spread"] if h["split"] == REAL_VAL else r.get("± (val)")
            r["n"] = h["n"]
            r["note"] = h["note"]
    return list(rows.values())


def headline_markdown(headline: list[dict]) -> str:
    return markdown_table(headline_pivot(headline), ".1f")


def class_table(ev: Evaluator, models: list[ModelEntry], split: str) -> list[dict]:
    """Per-class IoU (points) per model on a split; seeds of one kind averaged; absent -> None."""
    groups: dict[str, list[str]] = {}
    for m in models:
        label = m.model_id if m.kind in ("source_only", "checkpoint") else f"{m.kind} (mean)"
        groups.setdefault(label, []).append(m.model_id)
    rows = []
    for c, name in enumerate(CLASSES):
        row: dict[str, Any] = {"class": name}
        for label, ids in groups.items():
            vals = [ev.results[(i, split, "none")].scores.iou[c] for i in ids if (i, split, "none") in ev.results]
            vals = [v for v in vals if np.isfinite(v)]
            row[label] = 100 * float(np.mean(vals)) if vals else None
        rows.append(row)
    return rows


def class_gap_table(ev: Evaluator, models: list[ModelEntry]) -> list[dict]:
    """Where the gap is and what closed it, per class (IoU points): the source-only model's synthetic val
    vs real val, each style method, fine-tuning and the real-only baseline, and the pretraining gain."""
    src = {m.style_method: m for m in models if m.kind == "source_only"}
    base = baseline_source(models)

    def iou(ids: list[str], split: str, c: int) -> float | None:
        vals = [ev.results[(i, split, "none")].scores.iou[c] for i in ids if (i, split, "none") in ev.results]
        vals = [v for v in vals if np.isfinite(v)]
        return 100 * float(np.mean(vals)) if vals else None

    ft = [m.model_id for m in models if m.kind == "finetuned"]
    ro = [m.model_id for m in models if m.kind == "real_only"]
    rows = []
    for c, name in enumerate(CLASSES):
        row: dict[str, Any] = {"class": name}
        if base is not None:
            syn, real = iou([base.model_id], base.own_val, c), iou([base.model_id], REAL_VAL, c)
            row[f"{base.model_id} synthetic val"] = syn
            row[f"{base.model_id} real val"] = real
            row["domain gap"] = syn - real if syn is not None and real is not None else None
        for m in src.values():
            if m is not base:
                row[f"{m.model_id} real val"] = iou([m.model_id], REAL_VAL, c)
        if ft:
            row["fine-tuned real val"] = iou(ft, REAL_VAL, c)
        if ro:
            row["real-only real val"] = iou(ro, REAL_VAL, c)
        if ft and ro:
            f, r = row["fine-tuned real val"], row["real-only real val"]
            row["pretraining gain"] = f - r if f is not None and r is not None else None
        rows.append(row)
    return rows


def model_table(inp: ReportInputs) -> list[dict]:
    ev = inp.evaluator
    splits = sorted({s for (_, s, a) in ev.results if a == "none"}, key=lambda s: (not s.startswith("real"), s))
    rows = []
    for m in inp.models:
        row: dict[str, Any] = {"model": m.model_id, "steps": m.steps, "kept step": m.selected_step,
                               "total steps": m.total_steps,
                               "N real": m.few_shot, "starts from": m.init_label}
        for s in splits:
            r = ev.results.get((m.model_id, s, "none"))
            row[f"mIoU {s}"] = 100 * r.scores.miou if r is not None else None
        r = ev.results.get((m.model_id, REAL_VAL, "none"))
        row["pixel acc real/val"] = 100 * r.scores.pixel_accuracy if r is not None else None
        rows.append(row)
    return rows


def tta_table(inp: ReportInputs) -> list[dict]:
    ev = inp.evaluator
    rows = []
    for (mid, split, adaptation), r in ev.results.items():
        if adaptation == "none" or not split.startswith("real"):
            continue
        plain = ev.results[(mid, split, "none")].scores.miou
        rows.append({"model": mid, "split": split, "adaptation": adaptation, "mIoU": 100 * r.scores.miou,
                     "plain mIoU": 100 * plain, "change": 100 * (r.scores.miou - plain)})
    return rows


# ------------------------------------------------------------------------------------- store queries


def history_rows(store: Store, run: RunRows, exclude: str) -> list[dict]:
    """Headline values of earlier gap_report runs on the same target/resolution, plus this run's."""
    rows: list[dict] = []
    if store.path.exists():
        rows = store.query(
            "SELECT r.run_id, r.created_at, h.figure, h.value FROM headline h JOIN runs r USING (run_id) "
            "WHERE r.stage = 'gap_report' AND h.split = ? AND r.target = ? AND r.image_height = ? "
            "AND r.image_width = ? AND r.run_id <> ? ORDER BY r.created_at",
            [REAL_VAL, run.run["target"], run.run["image_height"], run.run["image_width"], exclude])
    rows += [{"run_id": run.run_id, "created_at": None, "figure": h["figure"], "value": h["value"]}
             for h in run.tables.get("headline", []) if h["split"] == REAL_VAL]
    return rows


def few_shot_rows(store: Store, run: RunRows) -> list[dict]:
    """mIoU on real val per (kind, N) over every stored run of this target/resolution (+ this run)."""
    pts: list[dict] = []
    if store.path.exists():
        pts = store.query(
            "SELECT m.kind, m.few_shot, t.value FROM models m "
            "JOIN metrics t ON t.run_id = m.run_id AND t.model_id = m.model_id "
            "JOIN runs r ON r.run_id = m.run_id "
            "WHERE t.split = ? AND t.adaptation = 'none' AND t.name = 'miou' "
            "AND m.kind IN ('finetuned', 'real_only') AND r.target = ? AND r.image_height = ? "
            "AND r.image_width = ? AND r.run_id <> ?",
            [REAL_VAL, run.run["target"], run.run["image_height"], run.run["image_width"], run.run_id])
    kinds = {m["model_id"]: m for m in run.tables.get("models", [])}
    for t in run.tables.get("metrics", []):
        m = kinds.get(t["model_id"])
        if (m and m["kind"] in ("finetuned", "real_only") and t["split"] == REAL_VAL
                and t["adaptation"] == "none" and t["name"] == "miou"):
            pts.append({"kind": m["kind"], "few_shot": m["few_shot"], "value": t["value"]})
    out: dict[tuple[str, int], list[float]] = {}
    for p in pts:
        if p["value"] is not None and math.isfinite(p["value"]):
            out.setdefault((p["kind"], int(p["few_shot"] or 0)), []).append(float(p["value"]))
    return [{"kind": k, "few_shot": n, "mean": float(np.mean(v)), "std": float(np.std(v)), "n": len(v)}
            for (k, n), v in sorted(out.items())]


# ------------------------------------------------------------------------------------- plots


def _save(fig, path: Path, rect: tuple[float, float, float, float] | None = None) -> None:
    """Lay out, write (PNG, 100 dpi) and close a figure."""
    fig.tight_layout(**({"rect": rect} if rect else {}))
    fig.savefig(path, dpi=100)
    pyplot().close(fig)


def plot_class_iou(rows: list[dict], synth: list[float | None] | None, path: Path, synth_label: str = "") -> None:
    plt = pyplot()
    labels = [k for k in rows[0] if k != "class"]
    x = np.arange(len(rows))
    w = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(11, 4))
    cmap = plt.get_cmap("tab10")
    for i, label in enumerate(labels):
        vals = np.array([r[label] if r[label] is not None else np.nan for r in rows], dtype=float)
        ax.bar(x - 0.4 + w * (i + 0.5), np.nan_to_num(vals), w, label=label, color=cmap(i % 10))
        for j in np.flatnonzero(~np.isfinite(vals)):
            ax.text(x[j] - 0.4 + w * (i + 0.5), 1, "absent", rotation=90, fontsize=6, ha="center", va="bottom")
    if synth is not None:
        sv = np.array([s if s is not None else np.nan for s in synth], dtype=float)
        ax.scatter(x, sv, marker="_", s=400, color="black", zorder=3, label=synth_label or "source-only on its synthetic val")
    ax.set_xticks(x, [r["class"] for r in rows], rotation=30, ha="right")
    ax.set_ylabel("IoU on real val (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Per-class IoU on real val, per model")
    ax.legend(fontsize=7, ncol=3, loc="upper right")
    _save(fig, path)


def plot_confusion(panels: list[tuple[str, np.ndarray]], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    for ax, (title, cm) in zip(axes[0], panels, strict=True):
        rows = cm.sum(1, keepdims=True)
        norm = np.divide(cm, rows, out=np.zeros(cm.shape, float), where=rows > 0)
        im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=90, fontsize=7)
        ax.set_yticks(range(len(CLASSES)), CLASSES, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("truth")
        ax.set_title(title, fontsize=9)
        for i in range(len(CLASSES)):
            for j in range(len(CLASSES)):
                if norm[i, j] >= 0.1:
                    ax.text(j, i, f"{norm[i, j]:.1f}", ha="center", va="center", fontsize=5,
                            color="white" if norm[i, j] > 0.5 else "black")
        fig.colorbar(im, ax=ax, fraction=0.046, label="share of truth pixels")
    _save(fig, path)


def plot_embedding(panels: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2), squeeze=False)
    colors = {"real": "tab:red", "other": "tab:blue"}
    for ax, panel in zip(axes[0], panels, strict=True):
        for name, xy in panel["groups"].items():
            c = colors["real"] if name.startswith("real") else colors["other"]
            ax.scatter(xy[:, 0], xy[:, 1], s=12, alpha=0.7, color=c, label=f"{name} ({len(xy)})")
        ax.set_title(f"encoder features of {panel['model_id']} (PCA)", fontsize=9)
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        ax.legend(fontsize=7)
    _save(fig, path)


def plot_hardest(images: np.ndarray, preds: np.ndarray, truths: np.ndarray, captions: list[str],
                 path: Path) -> None:
    plt = pyplot()
    k = len(images)
    h, w = images.shape[1:3]
    fig, axes = plt.subplots(k, 3, figsize=(7.5, 2.6 * k * h / w + 0.4), squeeze=False)
    for i in range(k):
        for j, (img, title) in enumerate([(images[i], "image"), (colorize(preds[i]), "prediction"),
                                          (colorize(truths[i]), "truth")]):
            ax = axes[i, j]
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=9)
            if j == 0:
                ax.set_ylabel(captions[i], fontsize=7)
    handles = [plt.Rectangle((0, 0), 1, 1, color=PALETTE[c] / 255) for c in range(len(CLASSES))]
    fig.legend(handles, CLASSES, loc="lower center", ncol=6, fontsize=6, frameon=False)
    _save(fig, path, rect=(0, 0.04, 1, 1))


def plot_few_shot(rows: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, color in (("finetuned", "tab:blue"), ("real_only", "tab:orange")):
        pts = [r for r in rows if r["kind"] == kind]
        if pts:
            ax.errorbar([p["few_shot"] for p in pts], [p["mean"] for p in pts], yerr=[p["std"] for p in pts],
                        marker="o", capsize=3, color=color,
                        label="synthetic pretraining + fine-tuning" if kind == "finetuned" else "real-only")
    ax.set_xscale("log")
    ax.set_xlabel("N real labelled images")
    ax.set_ylabel("mIoU on real val (%)")
    ax.set_title("Few-shot curve (all stored runs of this target)")
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_history(rows: list[dict], path: Path) -> None:
    plt = pyplot()
    order = list(dict.fromkeys(r["run_id"] for r in rows))
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for fig_name in ("domain_gap", "source_only_real_miou", "finetuned_miou", "real_only_miou", "remaining_gap"):
        pts = [(order.index(r["run_id"]), r["value"]) for r in rows
               if r["figure"] == fig_name and r["value"] is not None and math.isfinite(r["value"])]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=figure_label(fig_name))
    ax.set_xticks(range(len(order)), [o[-6:] for o in order], rotation=45, fontsize=7)
    ax.set_xlabel("run (oldest → newest; last = this run)")
    ax.set_ylabel("mIoU points (real val)")
    ax.set_title("Gap over successive runs")
    ax.legend(fontsize=7)
    _save(fig, path)


def plot_gap_metrics(points: list[Point], fit_rows: list[dict], path: Path) -> list[str]:
    plt = pyplot()
    top = [r for r in fit_rows if r["spearman"] is not None][:3]
    if not top:
        return []
    fig, axes = plt.subplots(1, len(top), figsize=(4.2 * len(top), 3.6), squeeze=False)
    for ax, r in zip(axes[0], top, strict=True):
        xs = [p.stats.get(r["statistic"], np.nan) for p in points]
        ys = [p.drop for p in points]
        ax.scatter(xs, ys, color="tab:purple")
        for p, x, y in zip(points, xs, ys, strict=True):
            ax.annotate(f"{p.model_id.split('/')[-1]}/{p.adaptation}", (x, y), fontsize=5)
        ax.set_xlabel(r["statistic"])
        ax.set_ylabel("mIoU drop (points)")
        ax.set_title(f"ρ = {r['spearman']:.2f} (n = {r['n_points']})", fontsize=9)
    _save(fig, path)
    return [r["statistic"] for r in top]


def make_plots(out: Path, inp: ReportInputs) -> dict[str, str]:
    """Every plot the data allows; {title: file name under out}."""
    ev = inp.evaluator
    plots: dict[str, str] = {}
    rows = class_table(ev, inp.models, REAL_VAL)
    synth = None
    base = baseline_source(inp.models)  # the same model the domain gap is measured on
    if base is not None:
        r = ev.results.get((base.model_id, base.own_val, "none"))
        if r is not None:
            synth = [100 * v if np.isfinite(v) else None for v in r.scores.iou]
    plot_class_iou(rows, synth, out / "class_iou.png",
                   synth_label=f"{base.model_id} on its synthetic val" if base is not None else "")
    plots["Per-class IoU on real val per model"] = "class_iou.png"
    panels = []
    for m in dict.fromkeys([x for x in (inp.main_source, inp.primary) if x is not None]):
        r = ev.results.get((m.model_id, REAL_VAL, "none"))
        if r is not None:
            panels.append((f"{m.model_id} on real val (rows normalized)", r.scores.matrix))
    if panels:
        plot_confusion(panels, out / "confusion.png")
        plots["Confusion matrix on real val"] = "confusion.png"
    if inp.embedding:
        plot_embedding(inp.embedding, out / "embedding.png")
        plots["Encoder-feature embedding by domain"] = "embedding.png"
    if len(inp.hard_idx):
        r = ev.results[(inp.primary.model_id, REAL_VAL, "none")]
        idx = inp.hard_idx
        caps = [f"#{i + 1} {inp.real_val.names[j]}\nloss {r.losses[j]:.2f} mIoU {100 * r.image_miou[j]:.0f}"
                for i, j in enumerate(idx)]
        plot_hardest(inp.real_val.images[idx], r.predictions[idx], inp.real_val.masks[idx], caps,
                     out / "hardest.png")
        plots[f"Hardest real val images ({inp.primary.model_id})"] = "hardest.png"
    if len({r["few_shot"] for r in inp.few_shot}) >= 2:
        plot_few_shot(inp.few_shot, out / "few_shot.png")
        plots["Few-shot curve"] = "few_shot.png"
    if inp.history:
        plot_history(inp.history, out / "history.png")
        plots["Gap over successive runs"] = "history.png"
    if plot_gap_metrics(inp.points, inp.fit_rows, out / "gap_metrics.png"):
        plots["mIoU drop vs the best-ranked gap statistics"] = "gap_metrics.png"
    return plots


# ------------------------------------------------------------------------------------- words


def findings(inp: ReportInputs) -> list[str]:
    """The report's conclusions in plain sentences, computed from the numbers (nothing canned)."""
    h = {(r["figure"], r["split"]): r for r in inp.headline}
    out: list[str] = []

    def val(fig: str) -> float | None:
        r = h.get((fig, REAL_VAL))
        return r["value"] if r is not None and r["value"] is not None and math.isfinite(r["value"]) else None

    gap = val("domain_gap")
    if gap is not None:
        out.append(f"<b>How big:</b> the source-only model scores {val('source_only_synthetic_val_miou'):.1f} mIoU "
                   f"on synthetic val but {val('source_only_real_miou'):.1f} on real val: a domain gap of "
                   f"{gap:.1f} points.")
    styles = [(f.split("/", 1)[1], r["value"]) for (f, s), r in h.items()
              if f.startswith("recovered_by_style/") and s == REAL_VAL]
    for method, v in styles:
        out.append(f"<b>Style normalization</b> ({method}) changed real-val mIoU by {v:+.1f} points "
                   f"(source-only {method} vs none).")
    tta = [(f.split("/", 1)[1], r["value"]) for (f, s), r in h.items() if f.startswith("tta/") and s == REAL_VAL]
    if tta:
        out.append("<b>Test-time baselines</b> (no labels) on the source-only model: "
                   + ", ".join(f"{a} {v:+.1f}" for a, v in tta) + " points.")
    rec = h.get(("recovered_by_finetuning", REAL_VAL))
    if rec is not None:
        sd = f" ± {rec['spread']:.1f}" if rec["spread"] is not None else ""
        rem = val("remaining_gap")
        out.append(f"<b>Fine-tuning</b> on N = {inp.primary.few_shot} real images recovered {rec['value']:+.1f}{sd} "
                   f"points over source-only ({rec['n']} seed(s))"
                   + (f"; the remaining gap (source-only synthetic val minus fine-tuned real val) is "
                      f"{rem:.1f} points." if rem is not None else "."))
    gain = h.get(("synthetic_pretraining_gain", REAL_VAL))
    if gain is not None:
        sd = f" ± {gain['spread']:.1f}" if gain["spread"] is not None else ""
        out.append(f"<b>What synthetic pretraining bought</b> over the real-only baseline at the same N: "
                   f"{gain['value']:+.1f}{sd} points on real val ({gain['n']} seed(s)); "
                   f"{html.escape(inp.budget)}.")
        test = h.get(("synthetic_pretraining_gain", REAL_TEST))
        if test is not None:
            out.append(f"On real test (never used for selection) the same figure is {test['value']:+.1f} points.")
    for w in inp.warnings:
        out.append(f"<b class='warn'>Warning:</b> {html.escape(w)}.")
    out += _class_findings(inp)
    out += _metric_findings(inp)
    if inp.share_rows and len(inp.hard_idx):
        top = [r for r in inp.share_rows if r["effect_size"] is not None][:3]
        if top:
            out.append(f"<b>Hardest real images</b> ({len(inp.hard_idx)} for {inp.primary.model_id}) differ most "
                       f"from the rest in: " + "; ".join(
                           f"{r['property']} {r['hardest_mean']:.2f} vs {r['rest_mean']:.2f}" for r in top) + ".")
    return out + root_cause_findings(inp.root_causes)


# the verdicts in the order the findings list them: what was confirmed, then what was ruled out, then what is open
CAUSE_ORDER = ("confirmed", "rejected", "inconclusive")


def ordered_causes(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The tested causes, confirmed first, then rejected, then inconclusive (larger changes first within)."""
    def key(c: dict[str, Any]) -> tuple[int, float]:
        v = (c.get("all") or {}).get("value")
        rank = CAUSE_ORDER.index(c["verdict"]) if c.get("verdict") in CAUSE_ORDER else len(CAUSE_ORDER)
        return rank, -(v if isinstance(v, int | float) and math.isfinite(v) else -1e9)
    return sorted(doc.get("causes") or [], key=key)


def _change(c: dict[str, Any] | None) -> str:
    if not c or c.get("value") is None:
        return "n/a"
    lo, hi = c.get("low"), c.get("high")
    ci = f" [{lo:+.1f}, {hi:+.1f}]" if lo is not None and hi is not None else ""
    return f"{c['value']:+.1f}{ci}"


def root_cause_findings(doc: dict[str, Any] | None) -> list[str]:
    """The report's last findings: the causes the root_causes stage tested, confirmed ones first.

    Correlations (what the hardest images share, which statistic tracks the drop) come before; these
    close the list because each was tested by removing the trait and re-evaluating the model.
    """
    if doc is None:
        return ["<b>Root causes:</b> not tested (no data/root_causes output); run <code>dvc repro root_causes"
                "</code> to confirm or reject each suspected trait."]
    gap, causes = doc.get("gap") or {}, ordered_causes(doc)
    settings = doc.get("settings") or {}
    k = settings.get("hardest_k", "k")
    out = [f"<b>Root causes, tested</b> on {html.escape(str(gap.get('model_id', '?')))}: each suspected trait "
           f"removed from {html.escape(str(gap.get('target', 'the target')))} and the model re-evaluated "
           f"(mIoU change on all images [{settings.get('ci', 0.95):.0%} bootstrap CI], gap "
           f"{gap.get('gap', float('nan')):.1f} points)."]
    if not any(c["verdict"] == "confirmed" for c in causes):
        out.append("<b>No cause confirmed:</b> no intervention closed the stated share of the gap with a CI "
                   "excluding 0.")
    label = {"confirmed": "Confirmed cause", "rejected": "Rejected", "inconclusive": "Inconclusive"}
    for c in causes:
        share = c.get("gap_share")
        out.append(f"<b>{label.get(c['verdict'], c['verdict'])}:</b> {html.escape(str(c['trait']))} "
                   f"(<code>{html.escape(str(c['intervention']))}</code>): {_change(c.get('all'))} points on all "
                   f"images, {_change(c.get('hardest'))} on the hardest {k}"
                   + (f"; closes {share:.0%} of the gap" if isinstance(share, int | float) else "") + ".")
    for w in doc.get("warnings") or []:
        out.append(f"<b class='warn'>Root causes:</b> {html.escape(w)}.")
    return out


def root_cause_rows(doc: dict[str, Any] | None) -> list[dict]:
    """The tested causes as table rows (the report's root-cause table)."""
    if doc is None:
        return []
    return [{"verdict": c["verdict"], "trait": c["trait"], "intervention": c["intervention"],
             "images": (c.get("all") or {}).get("images"), "change, all images": _change(c.get("all")),
             "change, hardest": _change(c.get("hardest")),
             "share of gap": None if c.get("gap_share") is None else f"{c['gap_share']:.0%}"}
            for c in ordered_causes(doc)]


def findings_markdown(inp: ReportInputs) -> str:
    """The findings as a markdown list (Dagster metadata, `sim2real run` output)."""
    def md(f: str) -> str:
        return html.unescape(re.sub(r"<code>(.*?)</code>", r"`\1`", re.sub(r"<b[^>]*>(.*?)</b>", r"**\1**", f)))
    return "\n".join("- " + md(f) for f in findings(inp))


def _class_findings(inp: ReportInputs) -> list[str]:
    ev, base = inp.evaluator, baseline_source(inp.models)
    if base is None:
        return []
    s = ev.results.get((base.model_id, base.own_val, "none"))
    r = ev.results.get((base.model_id, REAL_VAL, "none"))
    if s is None or r is None:
        return []
    gaps = [(CLASSES[c], 100 * s.scores.iou[c], 100 * r.scores.iou[c]) for c in range(len(CLASSES))
            if np.isfinite(s.scores.iou[c]) and np.isfinite(r.scores.iou[c])]
    gaps.sort(key=lambda g: -(g[1] - g[2]))
    if not gaps:
        return []
    ft = [m for m in inp.models if m.kind == "finetuned"]
    after = {}
    if ft:
        for c, name in enumerate(CLASSES):
            vals = [ev.results[(m.model_id, REAL_VAL, "none")].scores.iou[c] for m in ft]
            vals = [v for v in vals if np.isfinite(v)]
            after[name] = 100 * float(np.mean(vals)) if vals else None
    parts = []
    for name, sv, rv in gaps[:3]:
        t = f"{name} ({sv:.0f} → {rv:.0f}"
        if after.get(name) is not None:
            t += f", {after[name]:.0f} after fine-tuning"
        parts.append(t + ")")
    out = [f"<b>Where:</b> the largest per-class gaps of {base.model_id} (synthetic val → real val IoU) are "
           + "; ".join(parts) + "."]
    gains = [(r["class"], r["pretraining gain"]) for r in class_gap_table(ev, inp.models)
             if r.get("pretraining gain") is not None]
    if gains:
        gains.sort(key=lambda g: -g[1])
        best = ", ".join(f"{c} {g:+.1f}" for c, g in gains[:3] if g > 0) or "no class"
        worst = ", ".join(f"{c} {g:+.1f}" for c, g in gains[::-1][:2] if g < 0)
        out.append(f"<b>Per class, synthetic pretraining</b> (fine-tuned − real-only IoU) helped most on {best}"
                   + (f" and cost most on {worst}" if worst else "") + ".")
    return out


def _metric_findings(inp: ReportInputs) -> list[str]:
    rows = [r for r in inp.fit_rows if r["spearman"] is not None]
    n = max((r["n_points"] for r in inp.fit_rows), default=0)
    if not rows:
        return [f"<b>Which gap metric to trust:</b> not enough points ({n}) with a varying mIoU drop to rank "
                f"the gap statistics; add style methods to style.ablation or test-time baselines."]
    best = rows[0]
    lat = {r["statistic"]: r for r in rows if r["statistic"].startswith("latent/")}
    best_img = next((r for r in rows if r["statistic"].startswith("image/")), None)
    text = (f"<b>Which gap metric to trust:</b> across {best['n_points']} model/variant points, "
            f"{best['statistic']} ranked the real-val mIoU drop best (Spearman ρ = {best['spearman']:.2f}).")
    if "latent/frechet" in lat and best["statistic"] != "latent/frechet":
        text += f" The Fréchet distance on encoder features: ρ = {lat['latent/frechet']['spearman']:.2f}."
    if best_img is not None and best_img is not best:
        text += f" Best image-level statistic: {best_img['statistic']} (ρ = {best_img['spearman']:.2f})."
    if n < 6:
        text += f" With only {n} points this ranking is indicative, not conclusive."
    return [text]


# ------------------------------------------------------------------------------------- html

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1180px;margin:24px auto;
padding:0 16px;color:#1d2330;line-height:1.45}
h1{margin-bottom:2px} h2{margin-top:34px;border-bottom:1px solid #dde;padding-bottom:4px}
.meta{color:#667;font-size:13px} table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #d6d9e0;padding:3px 8px;text-align:right} th{background:#f2f4f8}
td:first-child,th:first-child{text-align:left} td.note{text-align:left;color:#556;font-size:12px;max-width:460px}
.findings li{margin:6px 0} .warn{color:#b3261e} .warnbox{background:#fdecea;border:1px solid #f5c2bd;
padding:8px 12px;border-radius:6px} figure{margin:18px 0} figcaption{color:#556;font-size:13px}
img{max-width:100%;border:1px solid #e4e6eb} .tw{overflow-x:auto;max-width:100%}
"""


def _html_table(rows: list[dict], spec: str = ".1f", note_cols: tuple[str, ...] = ("note",)) -> str:
    if not rows:
        return "<p class='meta'>(nothing to show)</p>"
    cols = list(rows[0])
    for r in rows[1:]:
        cols += [c for c in r if c not in cols]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = []
    for r in rows:
        cells = []
        for c in cols:
            cls = " class='note'" if c in note_cols else ""
            cells.append(f"<td{cls}>{html.escape(_fmt(r.get(c), spec))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<div class='tw'><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"


def render_html(inp: ReportInputs, plots: dict[str, str]) -> str:
    run = inp.run.run
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>sim2real gap report</title>", f"<style>{_CSS}</style></head><body>",
        "<h1>" + ("Sim-to-real" if inp.source.startswith("synthetic") else "Source-to-target") + " gap report</h1>",
        f"<p class='meta'>run <code>{html.escape(inp.run.run_id)}</code> · source "
        f"<b>{html.escape(inp.source)}</b> · target "
        f"<b>{html.escape(str(run['target']))}</b> · {run['image_height']}×{run['image_width']} · git "
        f"<code>{html.escape(str(run['git_rev'])[:10])}</code> · params <code>{html.escape(run['params_hash'])}"
        f"</code></p>",
    ]
    if inp.warnings:
        parts.append("<div class='warnbox'>" + "<br>".join(f"<b>Warning:</b> {html.escape(w)}"
                                                           for w in inp.warnings) + "</div>")
    parts += ["<h2>Headline (mIoU points)</h2>", _html_table(headline_pivot(inp.headline)),
              "<p class='meta'>What synthetic data buys at every label budget, with fair real-only baselines "
              "and the labels it saves: <a href='../label_budget/report.html'>the label-budget curve</a> "
              "(stage <code>label_budget</code>, <code>dvc repro label_budget</code>).</p>",
              "<h2>Findings</h2><ul class='findings'>", *[f"<li>{f}</li>" for f in findings(inp)], "</ul>",
              "<h2>Plots</h2>"]
    for title, name in plots.items():
        parts.append(f"<figure><img src='{html.escape(name)}' alt='{html.escape(title)}'>"
                     f"<figcaption>{html.escape(title)}</figcaption></figure>")
    parts += ["<h2>Models and scores (mIoU %)</h2>", _html_table(model_table(inp)),
              "<h2>Per class: where the gap is and what closed it (IoU %)</h2>",
              "<p class='meta'>– = the class is absent from both truth and prediction (not averaged).</p>",
              _html_table(class_gap_table(inp.evaluator, inp.models)),
              "<h2>Test-time baselines</h2>", _html_table(tta_table(inp)),
              "<h2>Which gap statistic tracks the mIoU drop</h2>",
              "<p class='meta'>Spearman rank correlation over the model × style × test-time-adaptation points "
              "below (drop = the model's synthetic-val mIoU minus its real-val mIoU).</p>",
              _html_table(inp.fit_rows, ".3g"),
              _html_table([{"model": p.model_id, "adaptation": p.adaptation, "drop": p.drop,
                            **{k: v for k, v in p.stats.items() if k.startswith("latent/")},
                            "image/hist_rgb": p.stats.get("image/hist_rgb")} for p in inp.points], ".3g"),
              "<h2>Domain statistics (source vs target)</h2>",
              _html_table([r for r in inp.domain_rows if not r["statistic"].startswith("class_fraction/")], ".3g"),
              "<h2>Latent gap</h2>", _html_table(inp.latent_rows, ".3g"),
              "<h2>Root causes: tested, not correlated</h2>",
              "<p class='meta'>Each suspected trait removed from the real target by a named intervention and the "
              "source-only model re-evaluated (stage <code>root_causes</code>; mIoU points, bootstrap CI over "
              "images): <a href='../root_causes/causes.md'>details</a>, "
              "<a href='../root_causes/causes.png'>the figure</a>.</p>",
              _html_table(root_cause_rows(inp.root_causes)),
              "<h2>Hardest real images: what they share</h2>",
              "<p class='meta'>effect size = (hardest mean − rest mean) / rest std.</p>",
              _html_table(inp.share_rows, ".3g"),
              _html_table([r for r in inp.run.tables.get("hard_samples", [])
                           if r["model_id"] == inp.primary.model_id], ".3g"),
              "</body></html>"]
    return "\n".join(parts)


def write_report(out: Path, inp: ReportInputs) -> dict[str, str]:
    """Plots + report.html into `out` (an existing folder); returns {title: png file name}."""
    plots = make_plots(out, inp)
    (out / "report.html").write_text(render_html(inp, plots), encoding="utf-8")
    return plots

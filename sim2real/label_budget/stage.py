"""Stage `label_budget`: the label-budget curve from every point's two arms, plus source-only.

Reads `data/label_budget_{synthetic,real_only}/n-<N>/seed-<s>/run.json` for every configured (N, seed)
(checking that both arms trained on the same images with fair budgets), scores the
source-only model (`pretrained_model/<style.method>`, N = 0) on the same real val and test, and writes
`data/label_budget/`: `curve.png` (mIoU on real test against N, seed spread, budgets in the caption),
`curve.json` (every point, gains, labels saved), `curve.md` (the table); the rows also go to DuckDB
(table `label_budget`, headline figures `label_budget/...`).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.config import Config
from sim2real.context import StageContext, StepResult, markdown_table, write_json
from sim2real.evaluate.store import RunRows, Store, resolve_store_path, stage_run
from sim2real.label_budget.curve import LabelsSaved, Point, aggregate, labels_saved, paired_gain
from sim2real.label_budget.runs import ARMS, STAGE, items, run_dir, score
from sim2real.previews import pyplot
from sim2real.shards import staged_dir
from sim2real.train import checkpoint as ckpt
from sim2real.train.loop import ArrayData

SPLITS = {"val": "real/val", "test": "real/test"}


class FairnessError(ValueError):
    """The two arms of one point are not comparable (other images, or a short real-only budget)."""


def load_runs(cfg: Config, root: Path) -> list[dict[str, Any]]:
    """Every configured point, both arms joined; a missing arm names the stage instance to run.

    Refuses a point whose arms trained on different images, or whose real-only arm got fewer optimizer
    steps than the synthetic arm's pretraining + fine-tuning (a short baseline fakes a gain).
    """
    runs = []
    for label, seed in items(cfg):
        arms = {}
        for arm in ARMS:
            path = run_dir(root, label, seed, arm) / "run.json"
            if not path.exists():
                item = f"{label}-{seed}"
                raise FileNotFoundError(f"{path}: not found; run `sim2real run {STAGE[arm]} --item {item}` "
                                        f"(or `dvc repro {STAGE[arm]}@{item}`) first")
            arms[arm] = json.loads(path.read_text())
        syn, ro = arms["synthetic"], arms["real_only"]
        where = f"label_budget point N={label} seed {seed}"
        if syn["picks"] != ro["picks"]:
            raise FairnessError(f"{where}: the arms trained on different real images ({run_dir(root, label, seed)} "
                                f"vs the real-only run); re-run both (dvc repro)")
        if ro["total_steps"] < syn["total_steps"]:
            raise FairnessError(f"{where}: real-only budget {ro['total_steps']} steps is below the synthetic arm's "
                                f"{syn['total_steps']} (pretraining {syn['pretrain_steps']} + fine-tuning "
                                f"{syn['finetune_steps']}); raise label_budget.real_only_steps or re-run "
                                f"{STAGE['real_only']}@{label}-{seed}")
        runs.append({"n": syn["n"], "n_label": syn["n_label"], "seed": seed, "pool_size": syn["pool_size"],
                     "picks": syn["picks"], "pretrain_steps": syn["pretrain_steps"],
                     "finetune_steps": syn["finetune_steps"], "real_only_steps": ro["total_steps"],
                     "style_method": syn.get("style_method"), "arms": arms,
                     "gain_test": round(syn["test"]["miou"] - ro["test"]["miou"], 4),
                     "gain_val": round(syn["val"]["miou"] - ro["val"]["miou"], 4)})
    return runs


def source_only(cfg: Config, ctx: StageContext) -> dict[str, Any]:
    """The pretrained model, no real labels: the N = 0 point of the synthetic curve."""
    path = ctx.stage_dir("pretrained_model", cfg.style.method) / "model.pt"
    model, info = ckpt.load_model(path, device=ctx.device(cfg.project.device))
    real = ctx.stage_dir("real_target")
    device = ctx.device(cfg.project.device)
    out: dict[str, Any] = {"arm": "source_only", "n": 0, "n_label": "0", "seed": None,
                           "steps": int(info.get("budget", {}).get("pretrain_steps", info["step"])),
                           "best_step": int(info["step"])}
    out["total_steps"] = out["steps"]
    for split in SPLITS:
        out[split] = score(model, ArrayData.load(real / split), device, cfg.evaluate.batch_size)
    return out


def curve_points(runs: list[dict[str, Any]], split: str) -> dict[str, dict[int, list[float]]]:
    by_arm: dict[str, dict[int, list[float]]] = {"synthetic": {}, "real_only": {}}
    for run in runs:
        for arm, res in run["arms"].items():
            by_arm[arm].setdefault(int(run["n"]), []).append(float(res[split]["miou"]))
    return by_arm


def summarize(runs: list[dict[str, Any]], src: dict[str, Any], split: str) -> dict[str, Any]:
    """Points per arm, paired gains per N and labels saved, on one split."""
    values = curve_points(runs, split)
    real_only, synthetic = aggregate(values["real_only"]), aggregate(values["synthetic"])
    src_point = Point(0, float(src[split]["miou"]), 0.0, 1)
    pool = max(int(r["pool_size"]) for r in runs)
    full = next((p for p in real_only if p.n == pool), None)
    saved = (labels_saved([src_point, *synthetic], full.mean, pool) if full else
             LabelsSaved(float("nan"), pool, None, False, "no real-only run with all images (add 'all' to sizes)"))
    gains = []
    for n in sorted(values["synthetic"]):
        by_seed = {arm: {r["seed"]: r["arms"][arm][split]["miou"] for r in runs if int(r["n"]) == n}
                   for arm in ("synthetic", "real_only")}
        mean, spread, k = paired_gain(by_seed["synthetic"], by_seed["real_only"])
        gains.append({"n": n, "gain": mean, "spread": spread, "seeds": k})
    return {"source_only": src_point, "synthetic": synthetic, "real_only": real_only, "gains": gains,
            "labels_saved": saved, "pool": pool}


def budget_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[int, dict[str, Any]] = {}
    for r in runs:
        seen.setdefault(int(r["n"]), {"N": r["n_label"] if r["n_label"] == "all" else int(r["n"]),
                                      "images": int(r["n"]), "pretrain steps": r["pretrain_steps"],
                                      "fine-tune steps": r["finetune_steps"],
                                      "synthetic total steps": r["pretrain_steps"] + r["finetune_steps"],
                                      "real-only steps": r["real_only_steps"]})
    return [seen[n] for n in sorted(seen)]


def table_rows(s: dict[str, Any]) -> list[dict[str, Any]]:
    ro = {p.n: p for p in s["real_only"]}
    gains = {g["n"]: g for g in s["gains"]}
    rows = [{"N": 0, "source-only": _pm(s["source_only"]), "real-only": "", "synthetic + N": "", "gain": ""}]
    for p in s["synthetic"]:
        g = gains.get(p.n, {})
        rows.append({"N": p.n, "source-only": "", "real-only": _pm(ro[p.n]) if p.n in ro else "",
                     "synthetic + N": _pm(p), "gain": f"{g.get('gain', float('nan')):+.1f} ± {g.get('spread', 0):.1f}"})
    return rows


def _pm(p: Point) -> str:
    return f"{p.mean:.1f} ± {p.spread:.1f}" if p.seeds > 1 else f"{p.mean:.1f}"


def saved_text(saved: LabelsSaved) -> str:
    if saved.n_match is None:
        return f"labels saved: none ({saved.note})"
    flag = " (EXTRAPOLATED)" if saved.extrapolated else ""
    return (f"labels saved: synthetic + {saved.n_match:.1f} real images match real-only with all {saved.n_all} "
            f"({saved.target:.1f} mIoU): {saved.saved:.0f} labels saved ({100 * saved.saved_fraction:.0f}%)"
            f"{flag}; {saved.note}")


def plot_curve(s: dict[str, Any], budgets: list[dict[str, Any]], runs: list[dict[str, Any]], split: str,
               path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    for arm, colour, label in (("real_only", "tab:blue", "real-only"), ("synthetic", "tab:orange", "synthetic + N")):
        pts = s[arm]
        ns = np.array([p.n for p in pts], float)
        means = np.array([p.mean for p in pts])
        spreads = np.array([p.spread for p in pts])
        ax.plot(ns, means, marker="o", color=colour, label=f"{label} (mean ± std over seeds)")
        ax.fill_between(ns, means - spreads, means + spreads, color=colour, alpha=0.15)
        for r in runs:  # the seeds themselves
            ax.scatter([r["n"]], [r["arms"][arm][split]["miou"]], color=colour, s=9, alpha=0.5)
    src = s["source_only"]
    ax.axhline(src.mean, color="tab:gray", ls=":", label=f"source-only, N = 0 ({src.mean:.1f})")
    saved = s["labels_saved"]
    if np.isfinite(saved.target):
        ax.axhline(saved.target, color="tab:blue", ls="--", lw=0.8,
                   label=f"real-only, all {saved.n_all} images ({saved.target:.1f})")
    if saved.n_match is not None and saved.n_match > 0:
        ax.plot([saved.n_match], [saved.target], marker="*", ms=14, color="tab:red", ls="none",
                label=f"match at N = {saved.n_match:.1f}" + (" (extrapolated)" if saved.extrapolated else ""))
    ax.set_xscale("log")
    ticks = sorted({p.n for p in s["synthetic"]} | {p.n for p in s["real_only"]})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set(xlabel="real labelled images N (log scale)", ylabel=f"mIoU on {SPLITS[split]} (points)",
           title="Label-budget curve: what synthetic pretraining buys")
    b = budgets[0] if budgets else {}
    caption = (f"budgets: pretraining {b.get('pretrain steps', '?')} steps; fine-tuning "
               + ", ".join(f"N={r['N']}: {r['fine-tune steps']}" for r in budgets)
               + "; real-only " + ", ".join(f"N={r['N']}: {r['real-only steps']}" for r in budgets)
               + " steps; best checkpoint on real val")
    fig.text(0.01, 0.01, caption, fontsize=6.5, wrap=True)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def store_rows(runs: list[dict[str, Any]], src: dict[str, Any], summaries: dict[str, dict[str, Any]]
               ) -> dict[str, list[dict[str, Any]]]:
    rows = []
    for arm_res, n, label, seed in [(src, 0, "0", None)] + [
            (r["arms"][a], r["n"], r["n_label"], r["seed"]) for r in runs for a in ("synthetic", "real_only")]:
        for split, name in SPLITS.items():
            rows.append({"arm": arm_res["arm"], "n_label": str(label), "n": int(n), "seed": seed, "split": name,
                         "miou": arm_res[split]["miou"], "steps": arm_res["steps"],
                         "total_steps": arm_res["total_steps"], "best_step": arm_res["best_step"]})
    headline = []
    for split, s in summaries.items():
        for g in s["gains"]:
            headline.append({"figure": f"label_budget/gain/n-{g['n']}", "split": SPLITS[split], "value": g["gain"],
                             "spread": g["spread"] if g["seeds"] > 1 else None, "n": g["seeds"],
                             "note": "synthetic + N minus real-only at N, paired by seed"})
        saved = s["labels_saved"]
        if saved.saved is not None:
            headline.append({"figure": "label_budget/labels_saved", "split": SPLITS[split], "value": saved.saved,
                             "spread": None, "n": saved.n_all, "note": saved_text(saved)})
    return {"label_budget": rows, "headline": headline}


def _html_rows(rows: list[dict[str, Any]]) -> str:
    cols = list(rows[0]) if rows else []
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in cols) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(test: dict[str, Any], budgets: list[dict[str, Any]], saved: str) -> str:
    """A standalone page: the curve on real test (and val), the table, labels saved, the budgets."""
    style = ("body{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
             "text-align:right}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>sim2real label-budget curve</title>"
            f"<style>{style}</style></head><body><h1>What synthetic data buys: the label-budget curve</h1>"
            f"<p><b>{html.escape(saved)}</b></p><img src='curve.png' alt='label-budget curve on real test'>"
            f"<h2>mIoU points on real test (never used for selection)</h2>{_html_rows(table_rows(test))}"
            f"<h2>Budgets (optimizer steps)</h2>{_html_rows(budgets)}"
            "<p>Both arms start from the same weights, train on the same N images and keep their best "
            "checkpoint on real val; real-only gets at least the synthetic arm's total steps.</p>"
            "<h2>The same curve on real val (selection split)</h2>"
            "<img src='curve_val.png' alt='label-budget curve on real val'></body></html>")


def headline_metrics(summaries: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The few numbers DVC shows (`dvc metrics show`), in mIoU points; per-N figures are in curve.json.

    The val figures are what a recipe search may rank on; test is for the report.
    """
    val, test = summaries["val"], summaries["test"]
    metrics = {"source_only_test_miou": round(test["source_only"].mean, 3),
               "val_synthetic_miou": round(float(np.mean([p.mean for p in val["synthetic"]])), 3),
               "val_gain": round(float(np.mean([g["gain"] for g in val["gains"]])), 3),
               "test_gain": round(float(np.mean([g["gain"] for g in test["gains"]])), 3)}
    saved = test["labels_saved"]
    if saved.saved is not None:
        metrics["labels_saved"] = round(saved.saved, 1)
        metrics["labels_saved_extrapolated"] = float(saved.extrapolated)
    return metrics


def label_budget(cfg: Config, ctx: StageContext) -> StepResult:
    """Assemble the curve, the labels-saved figure, the plot, the table and the DuckDB rows.

    Args:
        cfg: `label_budget.sizes`/`seeds` (which runs), `style.method` (source-only model), `store`.
        ctx: writes `data/label_budget/`.
    """
    store = Store(resolve_store_path(cfg.store.path, ctx.root), cfg.store.lock_timeout_s)
    store.check_writable()  # before the work: a read-only or full store fails now, not after it
    runs = load_runs(cfg, ctx.root)
    src = source_only(cfg, ctx)
    summaries = {split: summarize(runs, src, split) for split in SPLITS}
    budgets = budget_rows(runs)
    test = summaries["test"]
    out = ctx.stage_dir()
    with staged_dir(out) as tmp:
        plot_curve(test, budgets, runs, "test", tmp / "curve.png")
        plot_curve(summaries["val"], budgets, runs, "val", tmp / "curve_val.png")
        table = markdown_table(table_rows(test))
        text = (f"## Label-budget curve (mIoU points on {SPLITS['test']}, never used for selection)\n\n"
                f"{table}\n\n{saved_text(test['labels_saved'])}\n\n### Budgets (optimizer steps)\n\n"
                f"{markdown_table(budgets)}\n")
        (tmp / "curve.md").write_text(text)
        (tmp / "report.html").write_text(render_html(test, budgets, saved_text(test["labels_saved"])))
        doc = {split: {"source_only": vars(s["source_only"]), "synthetic": [vars(p) for p in s["synthetic"]],
                       "real_only": [vars(p) for p in s["real_only"]], "gains": s["gains"],
                       "labels_saved": {**vars(s["labels_saved"]), "saved": s["labels_saved"].saved,
                                        "text": saved_text(s["labels_saved"])}}
               for split, s in summaries.items()}
        doc["budgets"] = budgets
        write_json(tmp / "curve.json", doc)
        tables = store_rows(runs, src, summaries)
        store.write_run(RunRows(run=stage_run("label_budget", cfg, ctx.root, doc), tables=tables))
    metrics = headline_metrics(summaries)
    rel = out.relative_to(ctx.root)
    return StepResult(metrics=metrics, tables={"label-budget curve (real test, mIoU points)": table,
                                               "budgets (optimizer steps)": markdown_table(budgets)},
                      plots={"label-budget curve": str(rel / "curve.png")},
                      text=saved_text(test["labels_saved"]))

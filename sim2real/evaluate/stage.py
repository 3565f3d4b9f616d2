"""Stage `gap_report`: how big the sim-to-real gap is, where it is, and what closed it.

Every model the chain produced (source-only per style method, fine-tuned per seed, the real-only
baseline per seed) is evaluated on every split it can see (its own styled synthetic val, plain
synthetic val, real val, real test); the source-only models also with the test-time baselines (real
images styled back toward the source, AdaBN). Then: headline figures with budgets, domain statistics,
latent gap, hardest real samples, and which gap statistic actually predicts the mIoU drop. All rows go
to the DuckDB store in one transaction; `data/gap_report/` gets report.html and the PNG plots.

`gap_report` reads as its steps: load splits, load models, evaluate all, test-time baselines, domain
statistics, latent gap, hardest samples, run rows, write outputs. Each step is a function that
returns its result.

Run:  sim2real run gap_report   (after the model stages)
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from sim2real.config import Config, params_hash
from sim2real.context import StageContext, StepResult, markdown_table
from sim2real.evaluate import report
from sim2real.evaluate.adapt import adabn, reverse_style
from sim2real.evaluate.data import (
    REAL_TEST,
    REAL_TRAIN,
    REAL_VAL,
    SYNTH_VAL,
    Evaluator,
    ImageSet,
    ModelEntry,
    Point,
    file_sha,
    load_set,
    main_source,
    spaced,
    styled_val,
)
from sim2real.evaluate.domain_stats import SCALAR_STATS, DomainSummary, compare_domains, summarize_domain
from sim2real.evaluate.hard_samples import compare_hard_vs_rest, hard_sample_rows, rank_by_loss
from sim2real.evaluate.headline import budget_note, headline_rows, points
from sim2real.evaluate.latent import embed_2d, latent_gap
from sim2real.evaluate.store import RunRows, Store, git_revision, resolve_store_path
from sim2real.progress import Progress
from sim2real.shards import staged_dir
from sim2real.train.checkpoint import load_model

log = logging.getLogger("sim2real")

__all__ = ["gap_report", "spearman_rows", "discover_models"]

IMAGE_GAP_STATS = (*SCALAR_STATS, "hist_rgb", "class_distribution")
LATENT_GAP_STATS = ("frechet", "frechet_normalized", "mmd2", "proxy_a_distance")


def gap_report(cfg: Config, ctx: StageContext) -> StepResult:
    """Evaluate every model of the chain, store the rows in DuckDB and write data/gap_report/report.html."""
    # a store that cannot be written fails now, in one line, not after minutes of evaluation
    Store(resolve_store_path(cfg.store.path, ctx.root), cfg.store.lock_timeout_s).check_writable()
    device = ctx.device(cfg.project.device)
    splits = load_splits(cfg, ctx.data)
    models = load_models(cfg, ctx, device, splits.size)
    main = main_source(models, cfg.style.method)
    ev = evaluate_all(models, splits, device, cfg.evaluate.batch_size)
    restyled = test_time_baselines(cfg, ctx.data, models, main, splits, ev)
    domains = domain_statistics(splits, cfg.evaluate.hist_bins)
    gap = latent_gap_points(cfg, models, splits, ev, restyled, domains)
    primary = next((m for m in models if m.kind == "finetuned"), main or models[0])
    hard = hardest_samples(models, primary, ev, splits.real_val, domains.summaries[REAL_VAL],
                           cfg.evaluate.hardest_k)
    run = run_rows(cfg, ctx, models, ev, splits, domains, gap, hard)
    return write_outputs(cfg, ctx, run, models, ev, gap, hard, primary, main, splits.real_val)


# ------------------------------------------------------------------------------------- load splits


@dataclass
class Splits:
    """The labelled sets every model is scored on (by split name) and unlabelled real train images (AdaBN)."""

    labelled: dict[str, ImageSet]
    unlabelled: ImageSet | None

    @property
    def real_val(self) -> ImageSet:
        return self.labelled[REAL_VAL]

    @property
    def real(self) -> list[str]:
        """The real splits present: real val, and real test when there is one."""
        return [s for s in (REAL_VAL, REAL_TEST) if s in self.labelled]

    @property
    def size(self) -> tuple[int, int]:
        height, width = self.real_val.images.shape[1:3]
        return int(height), int(width)


def load_splits(cfg: Config, data: Path) -> Splits:
    """Synthetic val, real val/test and each styled synthetic val (capped at `evaluate.max_images`)."""
    cap = cfg.evaluate.max_images
    sets: dict[str, ImageSet] = {}
    for name, path in [(SYNTH_VAL, data / "synthetic_scenes" / "val"),
                       (REAL_VAL, data / "real_target" / "val"), (REAL_TEST, data / "real_target" / "test")]:
        s = load_set(path, name, cap)
        if s is not None:
            sets[name] = s
    if REAL_VAL not in sets:
        raise FileNotFoundError(f"gap_report: {data / 'real_target' / 'val'} is missing; run real_target first")
    for m in cfg.style.ablation:
        if m != "none":
            s = load_set(data / "styled_scenes" / m / "val", styled_val(m), cap)
            if s is not None:
                sets[s.name] = s
    unlabelled = load_set(data / "real_target" / "train", REAL_TRAIN, cfg.evaluate.adabn_images, labels=False)
    splits = Splits(sets, unlabelled)
    for s in sets.values():
        if s.images.shape[1:3] != splits.size:
            raise ValueError(f"gap_report: split {s.name} is {s.images.shape[1:3]} but real/val is "
                             f"{splits.size}; re-run the stages at one project.image_height/width")
    return splits


# ------------------------------------------------------------------------------------- load models


def load_models(cfg: Config, ctx: StageContext, device: str, size: tuple[int, int]) -> list[ModelEntry]:
    """Every model of the chain, checked to have been trained at the data's resolution."""
    models = discover_models(cfg, ctx, device)
    for e in models:
        p = e.info.get("params", {}).get("project", {})
        if "image_height" in p and "image_width" in p and (int(p["image_height"]), int(p["image_width"])) != size:
            raise ValueError(f"gap_report: {e.path} was trained at {(int(p['image_height']), int(p['image_width']))} "
                             f"but the data is {size}")
    return models


def discover_models(cfg: Config, ctx: StageContext, device: str) -> list[ModelEntry]:
    """Every checkpoint the chain produced, loaded with the TRAIN helper's `load_model`."""
    found: list[tuple[str, str, Path, str | None, int | None]] = []
    for m in cfg.style.ablation:
        found.append((f"source_only/{m}", "source_only", ctx.stage_dir("pretrained_model", m) / "model.pt", m, None))
    for kind, stage in (("finetuned", "finetuned_model"), ("real_only", "real_only_model")):
        base = ctx.stage_dir(stage)
        for p in sorted(base.glob("seed-*/model.pt"), key=lambda p: _seed_of(p.parent.name)):
            found.append((f"{kind}/{p.parent.name}", kind, p, None, _seed_of(p.parent.name)))
    entries = []
    for model_id, kind, path, method, seed in found:
        if not path.exists():
            log.warning("gap_report: %s not found (%s); skipped", model_id, path)
            continue
        model, info = load_model(path, device=device)
        model.to(memory_format=torch.channels_last)  # ~25% faster CPU inference, same numbers
        if kind == "finetuned":
            method = info.get("params", {}).get("style", {}).get("method", cfg.style.method)
        few = 0 if kind == "source_only" else _few_shot_n(ctx, info)
        entries.append(ModelEntry(model_id, kind, path, model, info, method, seed, few, 0, file_sha(path)))
    if not entries:
        raise FileNotFoundError(f"gap_report: no model checkpoints under {ctx.data} (expected "
                                f"pretrained_model/<method>/model.pt for style.ablation={cfg.style.ablation}); "
                                f"run the model stages first")
    by_id = {e.model_id: e for e in entries}
    for e in entries:
        total = (e.info.get("budget") or {}).get("total_steps", e.info.get("total_steps"))
        if total is None:
            total = e.steps
            if e.kind == "finetuned":
                pre = by_id.get(f"source_only/{e.style_method}")
                total += pre.steps if pre else 0
        e.total_steps = int(total)
    return entries


def _seed_of(name: str) -> int:
    try:
        return int(name.split("-", 1)[1])
    except (IndexError, ValueError):
        return 10 ** 9


def _few_shot_n(ctx: StageContext, info: dict[str, Any]) -> int:
    real = info.get("params", {}).get("real", {})
    split = ctx.data / "real_target" / "split.json"
    if split.exists():
        try:
            return int(json.loads(split.read_text())["few_shot"]["size"])
        except (KeyError, TypeError, ValueError, json.JSONDecodeError):
            pass
    return int(real.get("few_shot", 0) or 0)


# ------------------------------------------------------------------------------------- evaluate all


def evaluate_all(models: list[ModelEntry], splits: Splits, device: str, batch_size: int) -> Evaluator:
    """Every model on every split it can see, without test-time adaptation."""
    jobs: list[tuple[ModelEntry, str]] = []
    for m in models:
        # source-only: its own (styled) synthetic val and plain synthetic val; fine-tuned: its own val
        # (the drop it still has); real-only: real splits only (its source domain is real)
        synthetic = {"source_only": [m.own_val, SYNTH_VAL], "finetuned": [m.own_val]}.get(m.kind, [])
        jobs += [(m, split) for split in dict.fromkeys([*synthetic, *splits.real]) if split in splits.labelled]
    ev = Evaluator(device, batch_size)
    for m, split in Progress(jobs, desc="gap_report: evaluate", unit="eval"):
        ev.run(m.model_id, m.model, splits.labelled[split])
    return ev


def test_time_baselines(cfg: Config, data: Path, models: list[ModelEntry], main: ModelEntry | None,
                        splits: Splits, ev: Evaluator) -> dict[tuple[str, str, str], np.ndarray]:
    """The source-only models on real images restyled toward their source, and with AdaBN, into `ev`.

    Every source-only model on real val (points for the gap-metric ranking); the main one also on real
    test (the headline figure's honest split). Returns the restyled images by (model id, reverse style
    method, split).
    """
    ecfg = cfg.evaluate
    restyled: dict[tuple[str, str, str], np.ndarray] = {}
    adapted: dict[str, Any] = {}
    jobs: list[tuple[ModelEntry, str, str]] = []
    for m in (m for m in models if m.kind == "source_only"):
        tta_splits = [s for s in splits.real if s == REAL_VAL or m is main]
        refs = source_references(data, m, ecfg.style_references) or splits.labelled.get(m.own_val)
        if refs is None and ecfg.reverse_styles:
            log.warning("gap_report: no synthetic images to fit the reverse style of %s; skipped", m.model_id)
        for r in ecfg.reverse_styles if refs is not None else []:
            for split in tta_splits:
                jobs.append((m, f"reverse_{r}", split))
                restyled[(m.model_id, r, split)] = reverse_style(r, refs.images, splits.labelled[split].images)
        if ecfg.adabn and splits.unlabelled is not None and len(splits.unlabelled) >= 2:
            adapted[m.model_id] = adabn(m.model, splits.unlabelled.images, ev.device, ecfg.batch_size)
            jobs += [(m, "adabn", split) for split in tta_splits]
    for m, adaptation, split in Progress(jobs, desc="gap_report: test-time baselines", unit="eval"):
        if adaptation == "adabn":
            ev.run(m.model_id, adapted[m.model_id], splits.labelled[split], "adabn")
        else:
            ev.run(m.model_id, m.model, splits.labelled[split], adaptation,
                   images=restyled[(m.model_id, adaptation.removeprefix("reverse_"), split)])
    return restyled


def source_references(data: Path, m: ModelEntry, cap: int) -> ImageSet | None:
    """What the source looks like: the model's own training images, else plain synthetic train."""
    return (load_set(data / "styled_scenes" / str(m.style_method) / "train", "refs", cap, labels=False)
            or load_set(data / "synthetic_scenes" / "train", "refs", cap, labels=False))


# ------------------------------------------------------------------------------------- domain statistics


@dataclass
class DomainStatistics:
    summaries: dict[str, DomainSummary]  # by split name
    rows: list[dict]  # each synthetic val vs real val, real val vs real test


def domain_statistics(splits: Splits, hist_bins: int) -> DomainStatistics:
    """Image-level statistics of every labelled split, and each synthetic val (then real test) vs real val."""
    sets = splits.labelled
    summaries = {name: summarize_domain(name, s.images, s.masks, hist_bins) for name, s in sets.items()}
    rows: list[dict] = []
    for name in [SYNTH_VAL, *[s for s in sets if s.startswith("styled/")]]:
        if name in sets:
            rows += compare_domains(summaries[name], summaries[REAL_VAL])
    if REAL_TEST in sets:
        rows += compare_domains(summaries[REAL_VAL], summaries[REAL_TEST])
    return DomainStatistics(summaries, rows)


def image_gap(rows: list[dict]) -> dict[str, float]:
    """The image-level gap statistics of one domain comparison, keyed for a Point."""
    return {f"image/{r['statistic']}": r["distance"] for r in rows
            if r["statistic"] in IMAGE_GAP_STATS and r["distance"] is not None}


# ------------------------------------------------------------------------------------- latent gap


@dataclass
class LatentGap:
    points: list[Point]  # one per (model, test-time adaptation) with a sim-to-real drop
    latent_rows: list[dict]
    domain_rows: list[dict]  # image statistics of the pairs not already in DomainStatistics.rows
    fit_rows: list[dict]  # which gap statistic predicts the drop (spearman_rows)


def latent_gap_points(cfg: Config, models: list[ModelEntry], splits: Splits, ev: Evaluator,
                      restyled: dict[tuple[str, str, str], np.ndarray], domains: DomainStatistics) -> LatentGap:
    """Latent and image gap of each model (and test-time variant) vs real val, and its mIoU drop."""
    real_val = splits.real_val
    fidx_real = spaced(len(real_val), cfg.evaluate.feature_images)
    pairs_done = {(r["source"], r["target"]) for r in domains.rows}
    target_summaries: dict[str, DomainSummary] = {}
    candidates: list[tuple[ModelEntry, str]] = []
    for m in models:
        if m.kind == "real_only":
            continue  # its source domain is real: no sim-to-real drop to explain
        candidates.append((m, "none"))
        if m.kind == "source_only":
            candidates += [(m, a) for (mid, sp, a) in ev.results if mid == m.model_id and sp == REAL_VAL
                           and a != "none"]
    points_, latent_rows, domain_rows = [], [], []
    for m, adaptation in Progress(candidates, desc="gap_report: latent gap", unit="model"):
        own = m.own_val
        if own not in splits.labelled:
            continue
        tgt_name, tgt_summary = REAL_VAL, domains.summaries[REAL_VAL]
        if adaptation.startswith("reverse_"):
            tgt_name = f"{REAL_VAL}+{adaptation}({m.style_method})"
            if tgt_name not in target_summaries:
                images = restyled[(m.model_id, adaptation.removeprefix("reverse_"), REAL_VAL)]
                target_summaries[tgt_name] = summarize_domain(tgt_name, images, real_val.masks,
                                                              cfg.evaluate.hist_bins)
            tgt_summary = target_summaries[tgt_name]
        # features come from the evaluation passes: the source side always from the plain model (what
        # it learned), the target side as the model saw it (restyled images / AdaBN statistics)
        fs = ev.results[(m.model_id, own, "none")].features[spaced(len(splits.labelled[own]),
                                                                   cfg.evaluate.feature_images)]
        ft = ev.results[(m.model_id, REAL_VAL, adaptation)].features[fidx_real]
        gap = latent_gap(fs, ft, seed=cfg.project.seed)
        latent_rows += [{"model_id": m.model_id, "adaptation": adaptation, "source": own, "target": tgt_name,
                         "metric": metric, "value": value, "n_source": len(fs), "n_target": len(ft)}
                        for metric, value in gap.items()]
        image_rows = compare_domains(domains.summaries[own], tgt_summary)
        if (own, tgt_name) not in pairs_done:
            pairs_done.add((own, tgt_name))
            domain_rows += image_rows
        drop = points(ev.miou(m.model_id, own)) - points(ev.miou(m.model_id, REAL_VAL, adaptation))
        points_.append(Point(m.model_id, adaptation, own, tgt_name, drop,
                             {**{f"latent/{k}": v for k, v in gap.items()}, **image_gap(image_rows)}))
    return LatentGap(points_, latent_rows, domain_rows, spearman_rows(points_))


def spearman_rows(points: list[Point]) -> list[dict]:
    """Rank correlation of each gap statistic with the mIoU drop across points (NaN when undefined)."""
    rows = []
    drops = np.asarray([p.drop for p in points], dtype=np.float64)
    keys = [f"latent/{k}" for k in LATENT_GAP_STATS] + [f"image/{k}" for k in IMAGE_GAP_STATS]
    for key in keys:
        vals = np.asarray([p.stats.get(key, np.nan) for p in points], dtype=np.float64)
        ok = np.isfinite(vals) & np.isfinite(drops)
        rho = pv = None
        if ok.sum() >= 3 and np.ptp(vals[ok]) > 0 and np.ptp(drops[ok]) > 0:
            res = spearmanr(vals[ok], drops[ok])
            rho, pv = float(res.statistic), float(res.pvalue)
        rows.append({"statistic": key, "spearman": rho, "p_value": pv, "n_points": int(ok.sum())})
    rows.sort(key=lambda r: -abs(r["spearman"]) if r["spearman"] is not None else 1.0)
    return rows


# ------------------------------------------------------------------------------------- hardest samples


@dataclass
class HardSamples:
    rows: list[dict]  # the k hardest real val images of every model
    share_rows: list[dict]  # what the primary model's hardest images share, vs the rest
    primary_idx: np.ndarray  # the primary model's hardest images (indices into real val)


def hardest_samples(models: list[ModelEntry], primary: ModelEntry, ev: Evaluator, real_val: ImageSet,
                    real_val_summary: DomainSummary, hardest_k: int) -> HardSamples:
    """Each model's highest-loss real val images, and what the primary model's hardest ones share."""
    k = min(hardest_k, len(real_val))
    hard = HardSamples([], [], np.zeros(0, int))
    for m in models:
        r = ev.results[(m.model_id, REAL_VAL, "none")]
        props = {**real_val_summary.props, "loss": r.losses, "miou": r.image_miou, "pixel_accuracy": r.image_accuracy}
        idx = rank_by_loss(r.losses, k)
        hard.rows += [{"model_id": m.model_id, "split": REAL_VAL, **row}
                      for row in hard_sample_rows(idx, real_val.names, props)]
        if m is primary:
            hard.primary_idx = idx
            hard.share_rows = compare_hard_vs_rest(dict(real_val_summary.props), idx)
    return hard


# ------------------------------------------------------------------------------------- run rows


def run_rows(cfg: Config, ctx: StageContext, models: list[ModelEntry], ev: Evaluator, splits: Splits,
             domains: DomainStatistics, gap: LatentGap, hard: HardSamples) -> RunRows:
    """Every row of this run for the store: the run, its models, scores, headline and statistics."""
    headline = headline_rows(ev, models, cfg.style.method, splits.real)
    phash = params_hash(cfg)
    rev = git_revision(ctx.root)
    run_id = "gap-" + hashlib.sha256(json.dumps(
        [phash, rev, sorted((m.model_id, m.sha) for m in models)]).encode()).hexdigest()[:12]
    metric_rows, class_rows = [], []
    for (mid, split, adaptation), r in ev.results.items():
        keys = {"model_id": mid, "split": split, "adaptation": adaptation}
        metric_rows += [{**keys, **row} for row in r.metric_rows()]
        class_rows += [{**keys, **row} for row in r.scores.class_rows()]
    height, width = splits.size
    return RunRows(
        run={"run_id": run_id, "stage": "gap_report", "git_rev": rev, "params_hash": phash,
             "params_json": json.dumps(cfg.to_dict(), sort_keys=True), "target": _target_name(ctx.data),
             "image_height": height, "image_width": width, "note": "; ".join(_budget(models)[1])},
        tables={"models": [m.store_row() for m in models], "metrics": metric_rows, "class_iou": class_rows,
                "headline": headline, "domain_stats": domains.rows + gap.domain_rows,
                "latent_gap": gap.latent_rows, "hard_samples": hard.rows, "gap_metric_fit": gap.fit_rows})


def _target_name(data: Path) -> str:
    split_info = data / "real_target" / "split.json"
    if split_info.exists():
        try:
            return str(json.loads(split_info.read_text()).get("source", "unknown"))
        except json.JSONDecodeError:
            pass
    return "unknown"


def _budget(models: list[ModelEntry]) -> tuple[str, list[str]]:
    """The budgets behind the pretraining gain and fairness warnings (none without both arms)."""
    ft = [m for m in models if m.kind == "finetuned"]
    ro = [m for m in models if m.kind == "real_only"]
    return budget_note(ft, ro) if ft and ro else ("", [])


# ------------------------------------------------------------------------------------- write outputs


def write_outputs(cfg: Config, ctx: StageContext, run: RunRows, models: list[ModelEntry], ev: Evaluator,
                  gap: LatentGap, hard: HardSamples, primary: ModelEntry, main: ModelEntry | None,
                  real_val: ImageSet) -> StepResult:
    """Plots and report.html in a temp folder, the rows to the store, then the folder into place."""
    store = Store(resolve_store_path(cfg.store.path, ctx.root), cfg.store.lock_timeout_s)
    budget, warnings = _budget(models)
    out = ctx.stage_dir()
    with staged_dir(out) as tmp:
        inputs = report.ReportInputs(
            run=run, models=models, evaluator=ev, headline=run.tables["headline"], points=gap.points,
            fit_rows=gap.fit_rows, domain_rows=run.tables["domain_stats"], latent_rows=gap.latent_rows,
            share_rows=hard.share_rows, primary=primary, main_source=main, hard_idx=hard.primary_idx,
            real_val=real_val, warnings=warnings, budget=budget, embedding=embedding(ev, main, primary),
            history=report.history_rows(store, run, exclude=run.run_id), few_shot=report.few_shot_rows(store, run),
            root_causes=load_root_causes(ctx.data, models), source=source_name(ctx.data))
        plots = report.write_report(tmp, inputs)
        store.write_run(run)
    rel = out.relative_to(ctx.root) if out.is_relative_to(ctx.root) else out
    return StepResult(metrics=stage_metrics(run, ev), tables=stage_tables(inputs),
                      plots={title: str(rel / name) for title, name in plots.items()},
                      text=report.findings_markdown(inputs),
                      extra={"run_id": run.run_id, "report": str(rel / "report.html"),
                             "store": str(store.path), "warnings": warnings})


def load_root_causes(data: Path, models: list[ModelEntry]) -> dict[str, Any] | None:
    """The root_causes stage's output (`causes.json`), checked to be about a model this report evaluates.

    None when the stage has not run (an in-process run; under DVC and Dagster it is an upstream). A doc
    about another checkpoint than the one evaluated here gets a warning the findings show.
    """
    path = data / "root_causes" / "causes.json"
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err}); re-run `sim2real run root_causes`") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("causes"), list):
        raise ValueError(f"{path}: no 'causes' list; re-run `sim2real run root_causes`")
    gap = doc.get("gap") or {}
    model = next((m for m in models if m.model_id == gap.get("model_id")), None)
    doc["warnings"] = []
    if model is None:
        doc["warnings"].append(f"they were tested on {gap.get('model_id')}, which this report does not evaluate")
    elif gap.get("checkpoint_sha") and gap["checkpoint_sha"] != model.sha:
        doc["warnings"].append(f"they were tested on another checkpoint of {model.model_id} than the one evaluated "
                               "here (stale); re-run root_causes")
    return doc


def source_name(data: Path) -> str:
    """The source domain in words: the procedural scenes, or the dataset imported in their place."""
    path = data / "synthetic_scenes" / "source.json"
    if not path.exists():
        return "synthetic (procedural scenes)"
    try:
        info = json.loads(path.read_text())
        return f"{info['source']} dataset {info['root']}"
    except (json.JSONDecodeError, KeyError, TypeError):
        return "imported dataset (data/synthetic_scenes/source.json unreadable)"


def stage_metrics(run: RunRows, ev: Evaluator) -> dict[str, float]:
    """The headline on real val and every plain mIoU (points), for dvc metrics and Dagster."""
    metrics = {"store_rows": float(sum(len(v) for v in run.tables.values()))}
    for row in run.tables["headline"]:
        if row["split"] == REAL_VAL and np.isfinite(row["value"]):
            metrics[row["figure"]] = round(float(row["value"]), 3)
    for (mid, split, adaptation), r in ev.results.items():
        if adaptation == "none" and np.isfinite(r.scores.miou):
            metrics[f"miou/{mid}/{split}"] = round(100 * r.scores.miou, 3)
    return metrics


def stage_tables(inputs: report.ReportInputs) -> dict[str, str]:
    return {"headline (mIoU points)": report.headline_markdown(inputs.headline),
            "findings": report.findings_markdown(inputs),
            "per class: where the gap is and what closed it (IoU %)": markdown_table(
                report.class_gap_table(inputs.evaluator, inputs.models), ".1f"),
            "which gap statistic tracks the real-val mIoU drop": markdown_table(inputs.fit_rows[:8], ".3g"),
            "hardest real images vs the rest": markdown_table(inputs.share_rows[:10], ".3g"),
            "root causes, tested (mIoU points)": markdown_table(report.root_cause_rows(inputs.root_causes))
            if inputs.root_causes else "(root_causes not run)"}


def embedding(ev: Evaluator, main: ModelEntry | None, primary: ModelEntry) -> list[dict]:
    """2-D PCA panels: per model, its own synthetic val vs real val encoder features."""
    panels = []
    for m in dict.fromkeys([x for x in (main, primary) if x is not None]):
        groups = {}
        for split in (m.own_val, REAL_VAL):
            r = ev.results.get((m.model_id, split, "none"))
            if r is not None and r.features is not None and len(r.features) >= 2:
                groups[split] = r.features
        if len(groups) == 2:
            coords = embed_2d(*groups.values())
            panels.append({"model_id": m.model_id, "groups": dict(zip(groups, coords, strict=True))})
    return panels

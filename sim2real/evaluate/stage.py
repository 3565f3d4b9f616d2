"""Stage `gap_report`: how big the sim-to-real gap is, where it is, and what closed it.

Every model the chain produced (source-only per style method, fine-tuned per seed, the real-only
baseline per seed) is evaluated on every split it can see (its own styled synthetic val, plain
synthetic val, real val, real test); the source-only models also with the test-time baselines (real
images styled back toward the source, AdaBN). Then: headline figures with budgets, domain statistics,
latent gap, hardest real samples, and which gap statistic actually predicts the mIoU drop. All rows go
to the DuckDB store in one transaction; `data/gap_report/` gets report.html and the PNG plots.

Run:  sim2real run gap_report   (after the model stages)
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sim2real.config import Config, params_hash
from sim2real.context import StageContext, StepResult, markdown_table
from sim2real.evaluate import domain_stats as DS
from sim2real.evaluate import hard_samples as HS
from sim2real.evaluate import latent as LT
from sim2real.evaluate import report as RP
from sim2real.evaluate.adapt import adabn, reverse_style
from sim2real.evaluate.predict import EvalResult, evaluate_model
from sim2real.evaluate.store import RunRows, Store, git_revision, resolve_store_path
from sim2real.progress import Progress
from sim2real.shards import ShardDataset, replace_dir, temp_sibling

log = logging.getLogger("sim2real")

__all__ = ["gap_report", "ImageSet", "ModelEntry", "spearman_rows", "headline_rows"]

REAL_VAL, REAL_TEST, SYNTH_VAL = "real/val", "real/test", "synthetic/val"
IMAGE_GAP_STATS = (*DS.SCALAR_STATS, "hist_rgb", "class_distribution")
LATENT_GAP_STATS = ("frechet", "frechet_normalized", "mmd2", "proxy_a_distance")


@dataclass
class ImageSet:
    name: str
    images: np.ndarray
    masks: np.ndarray | None
    names: list[str]

    def __len__(self) -> int:
        return len(self.images)


@dataclass(eq=False)  # identity semantics: entries hold live models
class ModelEntry:
    model_id: str
    kind: str  # source_only | finetuned | real_only | checkpoint
    path: Path
    model: Any
    info: dict[str, Any]
    style_method: str | None = None
    seed: int | None = None
    few_shot: int = 0
    total_steps: int = 0
    sha: str = ""

    @property
    def steps(self) -> int:
        """Optimizer steps this model's own stage ran (its budget), else the selected checkpoint's step."""
        budget = self.info.get("budget") or {}
        key = {"source_only": "pretrain_steps", "finetuned": "finetune_steps"}.get(self.kind, "total_steps")
        return int(budget.get(key, budget.get("total_steps", self.info.get("step", 0))) or 0)

    @property
    def selected_step(self) -> int:
        """The step of the weights kept (best-on-val selection)."""
        return int(self.info.get("step", 0))

    @property
    def init_label(self) -> str:
        """What the weights started from, in a few words."""
        init = self.info.get("init")
        if not isinstance(init, dict):
            return str(init)
        if init.get("kind") == "checkpoint":
            return f"checkpoint {init.get('checkpoint', '?')} (step {init.get('checkpoint_step', '?')})"
        weights = init.get("encoder_weights") or "random"
        return f"{weights} encoder, init seed {init.get('init_seed', '?')}"

    @property
    def init_sha(self) -> str | None:
        """Hash of the weights training started from (through a checkpoint init to its own start)."""
        init = self.info.get("init")
        while isinstance(init, dict):
            if init.get("state_sha"):
                return str(init["state_sha"])
            init = init.get("pretrained_init")
        return None

    @property
    def init(self) -> str:
        init = self.info.get("init")
        return init if isinstance(init, str) else json.dumps(init, sort_keys=True, default=str)

    def store_row(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "kind": self.kind, "style_method": self.style_method,
                "seed": self.seed, "few_shot": self.few_shot, "steps": self.steps,
                "total_steps": self.total_steps, "init": self.init, "checkpoint": str(self.path),
                "checkpoint_sha": self.sha}


@dataclass
class Point:
    """One (model, test-time adaptation) pair: a source domain, a target domain, and the mIoU drop."""

    model_id: str
    adaptation: str
    source: str
    target: str
    drop: float  # mIoU points: model's own synthetic val minus real val (as the model sees it)
    stats: dict[str, float] = field(default_factory=dict)


def file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _spaced(n: int, cap: int) -> np.ndarray:
    """`cap` evenly spaced indices out of n (all when cap is 0 or >= n): deterministic subsets."""
    if cap <= 0 or cap >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, cap).round().astype(int))


def load_set(path: Path, name: str, cap: int = 0, labels: bool = True) -> ImageSet | None:
    """A shard folder as an ImageSet (None when the folder does not exist)."""
    if not (path / "index.json").exists():
        return None
    ds = ShardDataset(path)
    idx = _spaced(len(ds), cap)
    images, masks = ds.take(idx) if len(idx) else (np.zeros((0, *ds.size, 3), np.uint8), None)
    recs = ds.records()
    names = [str(recs[i].get("name", recs[i].get("index", i))) if i < len(recs) else str(i) for i in idx]
    return ImageSet(name, images, masks if labels else None, names)


def _few_shot_n(ctx: StageContext, info: dict[str, Any]) -> int:
    real = info.get("params", {}).get("real", {})
    split = ctx.data / "real_target" / "split.json"
    if split.exists():
        try:
            return int(json.loads(split.read_text())["few_shot"]["size"])
        except (KeyError, TypeError, ValueError, json.JSONDecodeError):
            pass
    return int(real.get("few_shot", 0) or 0)


def discover_models(cfg: Config, ctx: StageContext, device: str) -> list[ModelEntry]:
    """Every checkpoint the chain produced, loaded with the TRAIN helper's `load_model`."""
    from sim2real.train.checkpoint import load_model

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


def _model_resolution(e: ModelEntry) -> tuple[int, int] | None:
    p = e.info.get("params", {}).get("project", {})
    if "image_height" in p and "image_width" in p:
        return int(p["image_height"]), int(p["image_width"])
    return None


class Evaluator:
    """Evaluates (model, split, adaptation) once and remembers the result."""

    def __init__(self, device: str, batch_size: int):
        self.device, self.batch_size = device, batch_size
        self.results: dict[tuple[str, str, str], EvalResult] = {}

    def run(self, model_id: str, model: Any, split: ImageSet, adaptation: str = "none",
            images: np.ndarray | None = None) -> EvalResult:
        key = (model_id, split.name, adaptation)
        if key not in self.results:
            assert split.masks is not None
            self.results[key] = evaluate_model(model, split.images if images is None else images, split.masks,
                                               self.device, self.batch_size, features=True)
        return self.results[key]

    def miou(self, model_id: str, split: str, adaptation: str = "none") -> float:
        r = self.results.get((model_id, split, adaptation))
        return r.scores.miou if r is not None else float("nan")


def _pts(x: float) -> float:
    return 100.0 * x if x is not None and np.isfinite(x) else float("nan")


def _mean_sd(values: list[float]) -> tuple[float, float | None, int]:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if not len(v):
        return float("nan"), None, 0
    return float(v.mean()), (float(v.std(ddof=1)) if len(v) > 1 else None), len(v)


def spearman_rows(points: list[Point]) -> list[dict]:
    """Rank correlation of each gap statistic with the mIoU drop across points (NaN when undefined)."""
    from scipy.stats import spearmanr

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


def headline_rows(ev: Evaluator, models: list[ModelEntry], cfg: Config, splits: list[str]) -> list[dict]:
    """The headline figures (mIoU points) on each real split, with budgets and warnings in the notes."""
    by_kind: dict[str, list[ModelEntry]] = {}
    for m in models:
        by_kind.setdefault(m.kind, []).append(m)
    src = {m.style_method: m for m in by_kind.get("source_only", [])}
    base = src.get("none") or (next(iter(src.values())) if src else None)
    main = src.get(cfg.style.method) or base
    ft, ro = by_kind.get("finetuned", []), by_kind.get("real_only", [])
    rows: list[dict] = []

    def add(figure: str, split: str, value: float, spread: float | None = None, n: int = 1, note: str = "") -> None:
        rows.append({"figure": figure, "split": split, "value": value, "spread": spread, "n": n, "note": note})

    for split in splits:
        if base is not None:
            own = _own_val(base)
            s_val = _pts(ev.miou(base.model_id, own))
            r_val = _pts(ev.miou(base.model_id, split))
            add("source_only_synthetic_val_miou", split, s_val, note=f"{base.model_id} on {own}")
            add("source_only_real_miou", split, r_val, note=base.model_id)
            add("domain_gap", split, s_val - r_val,
                note=f"{base.model_id}: {own} {s_val:.1f} minus {split} {r_val:.1f}")
            for method, m in src.items():
                if m is base:
                    continue
                add(f"recovered_by_style/{method}", split, _pts(ev.miou(m.model_id, split)) - r_val,
                    note=f"{m.model_id} minus {base.model_id} on {split}")
        if main is not None:
            main_real = _pts(ev.miou(main.model_id, split))
            for (mid, sp, adaptation) in list(ev.results):
                if mid == main.model_id and sp == split and adaptation != "none":
                    add(f"tta/{adaptation}", split, _pts(ev.miou(mid, sp, adaptation)) - main_real,
                        note=f"test-time {adaptation} on {main.model_id} (no labels, no training)")
        if ft and main is not None:
            vals = [_pts(ev.miou(m.model_id, split)) for m in ft]
            mean, sd, n = _mean_sd(vals)
            add("finetuned_miou", split, mean, sd, n, note=f"seeds {[m.seed for m in ft]}, N={ft[0].few_shot}")
            main_real = _pts(ev.miou(main.model_id, split))
            add("recovered_by_finetuning", split, mean - main_real, sd, n,
                note=f"fine-tuned (N={ft[0].few_shot}) minus {main.model_id}")
            if base is not None:
                add("remaining_gap", split, _pts(ev.miou(base.model_id, _own_val(base))) - mean, sd, n,
                    note=f"{base.model_id} synthetic val minus fine-tuned {split}")
        if ro:
            vals = [_pts(ev.miou(m.model_id, split)) for m in ro]
            mean, sd, n = _mean_sd(vals)
            add("real_only_miou", split, mean, sd, n, note=f"seeds {[m.seed for m in ro]}, N={ro[0].few_shot}")
        if ft and ro:
            gain, spread, n, note = _pretraining_gain(ev, ft, ro, split)
            add("synthetic_pretraining_gain", split, gain, spread, n, note=note)
    return rows


def _own_val(m: ModelEntry) -> str:
    return SYNTH_VAL if m.style_method in (None, "none") else f"styled/{m.style_method}/val"


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


def _pretraining_gain(ev: Evaluator, ft: list[ModelEntry], ro: list[ModelEntry],
                      split: str) -> tuple[float, float | None, int, str]:
    f = {m.seed: _pts(ev.miou(m.model_id, split)) for m in ft}
    r = {m.seed: _pts(ev.miou(m.model_id, split)) for m in ro}
    fm, fsd, fn = _mean_sd(list(f.values()))
    rm, rsd, rn = _mean_sd(list(r.values()))
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


def gap_report(cfg: Config, ctx: StageContext) -> StepResult:
    """Evaluate every model of the chain, store the rows in DuckDB and write data/gap_report/report.html."""
    ecfg = cfg.evaluate
    device = ctx.device(cfg.project.device)
    data = ctx.data
    cap = ecfg.max_images

    # ---- data -----------------------------------------------------------------------------------
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
            s = load_set(data / "styled_scenes" / m / "val", f"styled/{m}/val", cap)
            if s is not None:
                sets[s.name] = s
    unlabelled = load_set(data / "real_target" / "train", "real/train", ecfg.adabn_images, labels=False)
    height, width = sets[REAL_VAL].images.shape[1:3]
    for s in sets.values():
        if s.images.shape[1:3] != (height, width):
            raise ValueError(f"gap_report: split {s.name} is {s.images.shape[1:3]} but real/val is "
                             f"{(height, width)}; re-run the stages at one project.image_height/width")
    real_splits = [s for s in (REAL_VAL, REAL_TEST) if s in sets]

    # ---- models ---------------------------------------------------------------------------------
    models = discover_models(cfg, ctx, device)
    for e in models:
        res = _model_resolution(e)
        if res is not None and res != (height, width):
            raise ValueError(f"gap_report: {e.path} was trained at {res} but the data is {(height, width)}")
    source_only = [m for m in models if m.kind == "source_only"]
    main_src = next((m for m in source_only if m.style_method == cfg.style.method),
                    source_only[0] if source_only else None)

    # ---- plain evaluations ----------------------------------------------------------------------
    ev = Evaluator(device, ecfg.batch_size)
    jobs: list[tuple[ModelEntry, str]] = []
    for m in models:
        # source-only: its own (styled) synthetic val and plain synthetic val; fine-tuned: its own val
        # (the drop it still has); real-only: real splits only (its source domain is real)
        synthetic = {"source_only": [_own_val(m), SYNTH_VAL], "finetuned": [_own_val(m)]}.get(m.kind, [])
        for split in dict.fromkeys([*synthetic, *real_splits]):
            if split in sets:
                jobs.append((m, split))
    for m, split in Progress(jobs, desc="gap_report: evaluate", unit="eval"):
        ev.run(m.model_id, m.model, sets[split])

    # ---- test-time baselines on the source-only models ------------------------------------------
    restyled: dict[tuple[str, str, str], np.ndarray] = {}  # (model_id, reverse method, split) -> images
    adapted: dict[str, Any] = {}
    tta_jobs = []
    for m in source_only:
        # every source-only model on real val (points for the gap-metric ranking); the headline model
        # also on real test (the headline figure's honest split)
        tta_splits = [s for s in real_splits if s == REAL_VAL or m is main_src]
        # "what the source looks like": the model's own training images, else plain synthetic train,
        # else its own synthetic val set
        refs = (load_set(data / "styled_scenes" / str(m.style_method) / "train", "refs", ecfg.style_references,
                         labels=False)
                or load_set(data / "synthetic_scenes" / "train", "refs", ecfg.style_references, labels=False)
                or sets.get(_own_val(m)))
        if refs is None and ecfg.reverse_styles:
            log.warning("gap_report: no synthetic images to fit the reverse style of %s; skipped", m.model_id)
        for r in ecfg.reverse_styles if refs is not None else []:
            for split in tta_splits:
                tta_jobs.append((m, f"reverse_{r}", split))
                restyled[(m.model_id, r, split)] = reverse_style(r, refs.images, sets[split].images)
        if ecfg.adabn and unlabelled is not None and len(unlabelled) >= 2:
            adapted[m.model_id] = adabn(m.model, unlabelled.images, device, ecfg.batch_size)
            for split in tta_splits:
                tta_jobs.append((m, "adabn", split))
    for m, adaptation, split in Progress(tta_jobs, desc="gap_report: test-time baselines", unit="eval"):
        if adaptation == "adabn":
            ev.run(m.model_id, adapted[m.model_id], sets[split], "adabn")
        else:
            ev.run(m.model_id, m.model, sets[split], adaptation,
                   images=restyled[(m.model_id, adaptation.removeprefix("reverse_"), split)])

    # ---- domain statistics ----------------------------------------------------------------------
    summaries: dict[str, DS.DomainSummary] = {}

    def summary(name: str, images: np.ndarray, masks: np.ndarray | None) -> DS.DomainSummary:
        if name not in summaries:
            summaries[name] = DS.summarize_domain(name, images, masks, ecfg.hist_bins)
        return summaries[name]

    real_val = sets[REAL_VAL]
    domain_rows: list[dict] = []
    pairs_done: set[tuple[str, str]] = set()

    def compare(a: DS.DomainSummary, b: DS.DomainSummary) -> dict[str, float]:
        rows = DS.compare_domains(a, b)
        if (a.name, b.name) not in pairs_done:
            pairs_done.add((a.name, b.name))
            domain_rows.extend(rows)
        return {f"image/{r['statistic']}": r["distance"] for r in rows
                if r["statistic"] in IMAGE_GAP_STATS and r["distance"] is not None}

    rv = summary(REAL_VAL, real_val.images, real_val.masks)
    for name in [SYNTH_VAL, *[s for s in sets if s.startswith("styled/")]]:
        if name in sets:
            compare(summary(name, sets[name].images, sets[name].masks), rv)
    if REAL_TEST in sets:
        compare(summary(REAL_VAL, real_val.images, real_val.masks),
                summary(REAL_TEST, sets[REAL_TEST].images, sets[REAL_TEST].masks))

    # ---- latent gap and the points for "which gap metric predicts the drop" ---------------------
    points: list[Point] = []
    latent_rows: list[dict] = []
    fidx_real = _spaced(len(real_val), ecfg.feature_images)

    candidates: list[tuple[ModelEntry, str]] = []
    for m in models:
        if m.kind == "real_only":
            continue  # its source domain is real: no sim-to-real drop to explain
        candidates.append((m, "none"))
        if m.kind == "source_only":
            candidates += [(m, a) for (mid, sp, a) in ev.results if mid == m.model_id and sp == REAL_VAL
                           and a != "none"]
    for m, adaptation in Progress(candidates, desc="gap_report: latent gap", unit="model"):
        own = _own_val(m)
        if own not in sets:
            continue
        src_set = sets[own]
        tgt_images = real_val.images
        tgt_name = REAL_VAL
        if adaptation.startswith("reverse_"):
            tgt_images = restyled[(m.model_id, adaptation.removeprefix("reverse_"), REAL_VAL)]
            tgt_name = f"{REAL_VAL}+{adaptation}({m.style_method})"
        sidx = _spaced(len(src_set), ecfg.feature_images)
        # features come from the evaluation passes: the source side always from the plain model (what
        # it learned), the target side as the model saw it (restyled images / AdaBN statistics)
        fs = ev.results[(m.model_id, own, "none")].features[sidx]
        ft = ev.results[(m.model_id, REAL_VAL, adaptation)].features[fidx_real]
        gap = LT.latent_gap(fs, ft, seed=cfg.project.seed)
        for metric, value in gap.items():
            latent_rows.append({"model_id": m.model_id, "adaptation": adaptation, "source": own,
                                "target": tgt_name, "metric": metric, "value": value,
                                "n_source": len(fs), "n_target": len(ft)})
        stats = {f"latent/{k}": v for k, v in gap.items()}
        stats.update(compare(summary(own, src_set.images, src_set.masks),
                             summary(tgt_name, tgt_images, real_val.masks)))
        drop = _pts(ev.miou(m.model_id, own)) - _pts(ev.miou(m.model_id, REAL_VAL, adaptation))
        points.append(Point(m.model_id, adaptation, own, tgt_name, drop, stats))
    fit_rows = spearman_rows(points)

    # ---- hardest real samples -------------------------------------------------------------------
    ft_models = [m for m in models if m.kind == "finetuned"]
    primary = ft_models[0] if ft_models else (main_src or models[0])
    k = min(ecfg.hardest_k, len(real_val))
    hard_rows: list[dict] = []
    share_rows: list[dict] = []
    hard_idx = np.zeros(0, int)
    for m in models:
        r = ev.results[(m.model_id, REAL_VAL, "none")]
        props = {**rv.props, "loss": r.losses, "miou": r.image_miou, "pixel_accuracy": r.image_accuracy}
        idx = HS.rank_by_loss(r.losses, k)
        hard_rows += [{"model_id": m.model_id, "split": REAL_VAL, **row}
                      for row in HS.hard_sample_rows(idx, real_val.names, props)]
        if m is primary:
            hard_idx = idx
            share_rows = HS.compare_hard_vs_rest({k_: v for k_, v in props.items()
                                                  if k_ not in ("loss", "miou", "pixel_accuracy")}, idx)

    # ---- headline and run rows ------------------------------------------------------------------
    headline = headline_rows(ev, models, cfg, real_splits)
    ft_seeds = [m for m in models if m.kind == "finetuned"]
    ro_seeds = [m for m in models if m.kind == "real_only"]
    budget, warnings = budget_note(ft_seeds, ro_seeds) if ft_seeds and ro_seeds else ("", [])
    split_info = data / "real_target" / "split.json"
    target = cfg_target = "unknown"
    if split_info.exists():
        try:
            target = str(json.loads(split_info.read_text()).get("source", cfg_target))
        except json.JSONDecodeError:
            pass
    phash = params_hash(cfg)
    rev = git_revision(ctx.root)
    run_id = "gap-" + hashlib.sha256(json.dumps(
        [phash, rev, sorted((m.model_id, m.sha) for m in models)]).encode()).hexdigest()[:12]
    metric_rows, class_rows = [], []
    for (mid, split, adaptation), r in ev.results.items():
        keys = {"model_id": mid, "split": split, "adaptation": adaptation}
        metric_rows += [{**keys, **row} for row in r.metric_rows()]
        class_rows += [{**keys, **row} for row in r.scores.class_rows()]
    run = RunRows(
        run={"run_id": run_id, "stage": "gap_report", "git_rev": rev, "params_hash": phash,
             "params_json": json.dumps(cfg.to_dict(), sort_keys=True), "target": target,
             "image_height": int(height), "image_width": int(width), "note": "; ".join(warnings)},
        tables={"models": [m.store_row() for m in models], "metrics": metric_rows, "class_iou": class_rows,
                "headline": headline, "domain_stats": domain_rows, "latent_gap": latent_rows,
                "hard_samples": hard_rows, "gap_metric_fit": fit_rows})

    # ---- plots and report (temp folder first; the store write and the swap come last) -----------
    store = Store(resolve_store_path(cfg.store.path, ctx.root), cfg.store.lock_timeout_s)
    history = RP.history_rows(store, run, exclude=run_id)
    out = ctx.stage_dir()
    tmp = temp_sibling(out)
    try:
        bundle = RP.ReportInputs(
            run=run, models=models, evaluator=ev, headline=headline, points=points, fit_rows=fit_rows,
            domain_rows=domain_rows, latent_rows=latent_rows, share_rows=share_rows, primary=primary,
            main_source=main_src, hard_idx=hard_idx, real_val=real_val, warnings=warnings, budget=budget,
            embedding=_embedding(ev, main_src, primary), history=history,
            few_shot=RP.few_shot_rows(store, run))
        plots = RP.write_report(tmp, bundle)
        store.write_run(run)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    rel = out.relative_to(ctx.root) if out.is_relative_to(ctx.root) else out
    metrics = {"store_rows": float(sum(len(v) for v in run.tables.values()))}
    for row in headline:
        if row["split"] == REAL_VAL and np.isfinite(row["value"]):
            metrics[row["figure"]] = round(float(row["value"]), 3)
    for (mid, split, adaptation), r in ev.results.items():
        if adaptation == "none" and np.isfinite(r.scores.miou):
            metrics[f"miou/{mid}/{split}"] = round(100 * r.scores.miou, 3)
    tables = {"headline (mIoU points)": RP.headline_markdown(headline),
              "findings": RP.findings_markdown(bundle),
              "per class: where the gap is and what closed it (IoU %)": markdown_table(
                  RP.class_gap_table(ev, models), ".1f"),
              "which gap statistic tracks the real-val mIoU drop": markdown_table(fit_rows[:8], ".3g"),
              "hardest real images vs the rest": markdown_table(share_rows[:10], ".3g")}
    return StepResult(metrics=metrics, tables=tables,
                      plots={title: str(rel / name) for title, name in plots.items()},
                      text=RP.findings_markdown(bundle),
                      extra={"run_id": run_id, "report": str(rel / "report.html"),
                             "store": str(store.path), "warnings": warnings})


def _embedding(ev: Evaluator, main_src: ModelEntry | None, primary: ModelEntry) -> list[dict]:
    """2-D PCA panels: per model, its own synthetic val vs real val encoder features."""
    panels = []
    for m in dict.fromkeys([x for x in (main_src, primary) if x is not None]):
        groups = {}
        for split in (_own_val(m), REAL_VAL):
            r = ev.results.get((m.model_id, split, "none"))
            if r is not None and r.features is not None and len(r.features) >= 2:
                groups[split] = r.features
        if len(groups) == 2:
            coords = LT.embed_2d(*groups.values())
            panels.append({"model_id": m.model_id, "groups": dict(zip(groups, coords, strict=True))})
    return panels

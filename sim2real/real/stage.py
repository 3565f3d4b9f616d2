"""Stage `real_target`: the real target domain, imported, validated, split, with a few-shot subset.

Writes `data/real_target/{train,few_shot,val,test}` (shard folders) and `split.json` (which
images are where, the few-shot choice and its seed, class counts). Everything is read and
validated in memory first and written to a temp folder that replaces the old output in one
rename, so a failed import leaves the previous output as it was.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.config import Config
from sim2real.context import StageContext, StepResult, markdown_table
from sim2real.real.fewshot import MIN_FRACTION, class_presence, coverage, select_few_shot
from sim2real.real.importers import LabelledSet, available_splits, load_split
from sim2real.real.validate import DatasetError, validate_arrays
from sim2real.shards import staged_dir, write_dataset
from sim2real.taxonomy import CLASSES, class_histogram

SPLITS = ("train", "few_shot", "val", "test")


def _split_val(val: LabelledSet) -> tuple[LabelledSet, LabelledSet]:
    """Halve a val split by name order (= sequence, then frame): first half val, second half test.

    Contiguous halves, not interleaved frames: neighbouring video frames are near-duplicates, and
    interleaving would put near-copies of test images into the selection split.
    """
    order = sorted(range(len(val)), key=lambda i: val.names[i])
    cut = (len(order) + 1) // 2
    if cut == 0 or cut == len(order):
        raise DatasetError(f"val split has {len(val)} image(s); at least 2 are needed to carve out a test half")
    return val.subset(order[:cut]), val.subset(order[cut:])


def gather_splits(cfg: Config, ctx: StageContext) -> tuple[dict[str, LabelledSet], dict[str, Any]]:
    """Read train/val/test of the configured source into memory (validated, resized).

    Returns:
        The splits and a description (source, root, where the test split came from).
    """
    real = cfg.real
    h, w = cfg.project.image_height, cfg.project.image_width
    if real.source == "proxy":
        from sim2real.real.proxy import PROXY_SEED, proxy_splits

        splits = proxy_splits(cfg, device=ctx.device(cfg.project.device))
        info = {"source": "proxy", "root": None, "format": "proxy", "test_from": "test",
                "proxy_seed": PROXY_SEED + cfg.project.seed,
                "note": "embedded proxy target domain rendered in code: a stand-in, not real data"}
        return splits, info
    if not real.root:
        raise DatasetError(f"real.root: needed for real.source={real.source!r} (the dataset folder)")
    root = ctx.path(real.root)
    mapping = str(ctx.path(real.mapping)) if real.mapping else None
    present = available_splits(root, real.source)
    missing = [s for s in ("train", "val") if s not in present]
    if missing:
        raise DatasetError(f"{root}: {real.source} dataset needs splits train and val; missing {missing} "
                           f"(found {present})")
    def load(split: str) -> LabelledSet:
        return load_split(root, real.source, split, h, w, mapping=mapping, skip_bad=real.skip_bad, fit=real.fit)

    splits = {"train": load("train"), "val": load("val")}
    if "test" in present:
        splits["test"] = load("test")
        test_from = "test"
        note = "test = the dataset's own test split"
    else:
        val_all = splits["val"]
        splits["val"], splits["test"] = _split_val(val_all)
        splits["test"].skipped = []  # listed once, with val
        test_from = "val-second-half"
        note = (f"the dataset has no test split: its val split ({len(val_all)} images) was halved by "
                f"file-name order (sequence, then frame) into val = first {len(splits['val'])} "
                f"(model selection) and test = last {len(splits['test'])} (final numbers only)")
    info = {"source": real.source, "root": str(root), "format": real.source, "test_from": test_from,
            "mapping": mapping, "fit": real.fit, "note": note}
    return splits, info


def _check_disjoint(splits: dict[str, LabelledSet]) -> int:
    """No name in two of train/val/test; returns how many exact duplicate images cross splits."""
    seen: dict[str, str] = {}
    for split in ("train", "val", "test"):
        for name in splits[split].names:
            if name in seen and seen[name] != split:
                raise DatasetError(f"{name}: appears in both the {seen[name]} and {split} splits (leakage)")
            seen[name] = split
    digests: dict[bytes, str] = {}
    dup = 0
    for split in ("train", "val", "test"):
        for img in splits[split].images:
            d = hashlib.blake2b(img.tobytes(), digest_size=16).digest()
            if d in digests and digests[d] != split:
                dup += 1
            digests.setdefault(d, split)
    return dup


def _records(s: LabelledSet, split: str, pool_index: list[int] | None = None) -> list[dict]:
    out = []
    for i, name in enumerate(s.names):
        rec: dict[str, Any] = dict(s.records[i]) if s.records else {}
        rec.update(name=name, split=split)
        if s.sources:
            rec["source"] = s.sources[i]
        if pool_index is not None:
            rec["pool_index"] = pool_index[i]
        out.append(rec)
    return out


def _class_pixels(masks: np.ndarray) -> dict[str, int]:
    hist = class_histogram(masks)
    return {**{c: int(hist[i]) for i, c in enumerate(CLASSES)}, "void": int(hist[-1])}


def real_target(cfg: Config, ctx: StageContext) -> StepResult:
    """Import, validate and split the real target; draw the few-shot subset; write atomically.

    Args:
        cfg: `real.*` picks the source (proxy | camvid | cityscapes | folder), `real.few_shot` and
            `real.seed` the subset; `project.image_height/width` the working resolution.
        ctx: stage context; writes only under data/real_target.
    """
    splits, info = gather_splits(cfg, ctx)
    dup = _check_disjoint(splits)
    train = splits["train"]
    picks = select_few_shot(train.masks, cfg.real.few_shot, cfg.real.seed)
    few_idx = sorted(picks)  # stored in pool order; pick order goes to split.json
    splits["few_shot"] = train.subset(few_idx)
    splits["few_shot"].skipped = []
    for split in SPLITS:
        validate_arrays(splits[split].images, splits[split].masks, f"real_target/{split}")

    presence = {s: class_presence(splits[s].masks).any(0) for s in SPLITS}
    few_cov = coverage(train.masks, few_idx)
    pool_cov = coverage(train.masks)
    manifest: dict[str, Any] = {
        **info,
        "height": cfg.project.image_height, "width": cfg.project.image_width,
        "few_shot": {
            "requested": cfg.real.few_shot, "size": len(few_idx), "seed": cfg.real.seed,
            "pool": "train", "pool_size": len(train), "method": "greedy rarest-class-first, seeded",
            "min_class_fraction": MIN_FRACTION,
            "pick_order": [train.names[i] for i in picks], "pool_indices": few_idx,
            "names": splits["few_shot"].names,
            "class_images": {c: int(few_cov[i]) for i, c in enumerate(CLASSES)},
            "pool_class_images": {c: int(pool_cov[i]) for i, c in enumerate(CLASSES)},
        },
        "splits": {s: {"count": len(splits[s]), "names": splits[s].names,
                       "class_pixels": _class_pixels(splits[s].masks)} for s in SPLITS},
        "skipped": [{"file": f, "reason": r} for s in SPLITS for f, r in splits[s].skipped],
        "cross_split_duplicate_images": dup,
    }

    with staged_dir(ctx.stage_dir()) as tmp:
        for split in SPLITS:
            s = splits[split]
            recs = _records(s, split, few_idx if split == "few_shot" else None)
            write_dataset(tmp / split, s.images, s.masks, recs, shard_size=256,
                          extra={"split": split, "source": info["source"]})
        (tmp / "split.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return _result(splits, manifest, presence, few_cov, pool_cov, info)


def _result(splits: dict[str, LabelledSet], manifest: dict[str, Any], presence: dict[str, np.ndarray],
            few_cov: np.ndarray, pool_cov: np.ndarray, info: dict[str, Any]) -> StepResult:
    skipped = manifest["skipped"]
    metrics = {f"{s}_images": float(len(splits[s])) for s in SPLITS}
    metrics.update(skipped_files=float(len(skipped)),
                   few_shot_classes=float((few_cov > 0).sum()),
                   train_classes=float((pool_cov > 0).sum()),
                   cross_split_duplicates=float(manifest["cross_split_duplicate_images"]))
    origin = {"train": f"{info['source']} train", "few_shot": "subset of train",
              "val": f"{info['source']} val" + (" (first half)" if info["test_from"] == "val-second-half" else ""),
              "test": {"test": f"{info['source']} test", "val-second-half": f"{info['source']} val (second half)"}
              [info["test_from"]]}
    tables = {
        "splits": markdown_table([{"split": s, "images": len(splits[s]), "from": origin[s],
                                   "classes present": int(presence[s].sum())} for s in SPLITS]),
        "class pixel share (%)": markdown_table([
            {"class": c, **{s: round(100.0 * manifest["splits"][s]["class_pixels"][c] /
                                     max(1, splits[s].masks.size), 2) for s in SPLITS}}
            for c in (*CLASSES, "void")]),
        "few-shot subset": markdown_table([
            {"pick": k + 1, "name": name,
             "classes": ", ".join(c for c, p in zip(CLASSES, class_presence(
                 splits["train"].masks[[splits["train"].names.index(name)]])[0], strict=True) if p)}
            for k, name in enumerate(manifest["few_shot"]["pick_order"])]),
    }
    if skipped:
        tables["skipped files"] = markdown_table(skipped)
    n = manifest["few_shot"]
    text = (f"Real target from {info['source']}"
            + (f" ({info['root']})" if info.get("root") else "") + f". {info['note']}. "
            f"Few-shot subset: {n['size']} of {n['pool_size']} train images (requested {n['requested']}, "
            f"seed {n['seed']}), covering {int((few_cov > 0).sum())} of {int((pool_cov > 0).sum())} classes "
            f"present in train; val and test are disjoint from train and few_shot."
            + (f" Skipped {len(skipped)} invalid file(s) (real.skip_bad)." if skipped else ""))
    return StepResult(metrics=metrics, tables=tables, text=text, extra={"split_json": "data/real_target/split.json"})


def read_split_json(root: Path) -> dict[str, Any]:
    """The split manifest written by the stage (for downstream stages and tests)."""
    path = root / "data" / "real_target" / "split.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; run `sim2real run real_target` first")
    return json.loads(path.read_text())

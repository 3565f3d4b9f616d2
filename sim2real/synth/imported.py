"""A real labelled dataset as the *source* domain, in place of the procedural scenes.

`synthetic.source: camvid | cityscapes | folder` with `synthetic.root` (and `synthetic.mapping` for a
folder whose masks are not taxonomy ids): the dataset's train split becomes
`data/synthetic_scenes/train` and its val split `data/synthetic_scenes/val`, in the same shard format
the procedural generator writes, so augmentation, styling, pretraining, fine-tuning and the gap
report run unchanged: a model trained on city A, evaluated on city B. The importers are those of the
real target (`sim2real.real.importers`): validated, mapped to the 11-class taxonomy, resized to the
working size with `synthetic.fit` (squash | pad | window) for frames of another aspect.
`synthetic.num_train` / `synthetic.num_val` cap the splits: the first N image files of each in name
order (sorted, so the same files on every run; with fit=window each gives several samples).
`source.json` records per split the files available, the files used and the samples written.

Example (params.yaml):
    synthetic: {source: camvid, root: /data/city_a}
    real: {source: folder, root: /data/city_b, mapping: /data/city_b/mapping.yaml}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim2real.config import Config
from sim2real.context import StageContext
from sim2real.real.importers import LabelledSet, available_splits, count_pairs, load_split
from sim2real.real.validate import DatasetError

__all__ = ["ImportedSource", "import_source", "records", "SOURCE_SPLITS"]

SOURCE_SPLITS = ("train", "val")


@dataclass
class ImportedSource:
    """The source dataset's train and val splits and where they came from."""

    splits: dict[str, LabelledSet]
    info: dict[str, Any]


def import_source(cfg: Config, ctx: StageContext) -> ImportedSource:
    """Read train and val of the configured source dataset (validated, mapped, at the working size).

    Raises:
        DatasetError: naming `synthetic.root` / `synthetic.mapping` and the folder or file at fault.
    """
    sc = cfg.synthetic
    if not sc.root:  # the config validator already says so; a Config built by hand may not have run it
        raise DatasetError(f"synthetic.root: needed for synthetic.source={sc.source!r} (the source dataset folder)")
    root = ctx.path(sc.root)
    if not root.is_dir():
        raise DatasetError(f"synthetic.root: {root}: source dataset folder not found")
    mapping = str(ctx.path(sc.mapping)) if sc.mapping else None
    if mapping is not None and not Path(mapping).is_file():
        raise DatasetError(f"synthetic.mapping: {mapping}: label mapping file not found")
    present = available_splits(root, sc.source)
    missing = [s for s in SOURCE_SPLITS if s not in present]
    if missing:
        raise DatasetError(f"synthetic.root: {root}: a {sc.source} source needs the splits train and val; "
                           f"missing {missing} (found {present})")
    h, w = cfg.project.image_height, cfg.project.image_width
    cap = {"train": sc.num_train, "val": sc.num_val}
    splits = {s: load_split(root, sc.source, s, h, w, mapping=mapping, skip_bad=sc.skip_bad, fit=sc.fit,
                            limit=cap[s]) for s in SOURCE_SPLITS}
    info = {"source": sc.source, "root": str(root), "mapping": mapping, "fit": sc.fit,
            "cap": cap, "selection": "first N image files in name order",
            "available": {s: count_pairs(root, sc.source, s) for s in SOURCE_SPLITS},  # image files
            "used": {s: len(set(v.sources)) for s, v in splits.items()},  # image files imported
            "counts": {s: len(v) for s, v in splits.items()},  # samples written (window: several per file)
            "skipped": [{"split": s, "file": f, "reason": r} for s, v in splits.items() for f, r in v.skipped]}
    return ImportedSource(splits, info)


def records(s: LabelledSet, split: str) -> list[dict[str, Any]]:
    """One record per sample: its name, split and file (relative to the dataset root)."""
    return [{"name": n, "split": split, **({"file": s.sources[i]} if s.sources else {})}
            for i, n in enumerate(s.names)]

"""Asset checks: label values valid, class coverage, mIoU not regressed."""


from pathlib import Path

import dagster as dg
import numpy as np

from sim2real.shards import ShardDataset, ShardFormatError
from sim2real.taxonomy import CLASSES, NUM_CLASSES, VOID, class_histogram

LABELLED = {"synthetic_scenes": ("train", "val"), "augmented_scenes": ("train",),
            "real_target": ("few_shot", "train", "val", "test")}
REGRESSION_KEY = "finetuned_real_val_miou"  # gap_report metric watched for regressions
REGRESSION_TOLERANCE = 2.0  # mIoU points


def _datasets(root: Path, stage: str) -> list[tuple[str, ShardDataset]]:
    out = []
    for split in LABELLED[stage]:
        path = root / "data" / stage / split
        if (path / "index.json").exists():
            out.append((split, ShardDataset(path)))
    return out


def label_check(stage: str, root: Path) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=stage, name="labels_valid", blocking=True,
                    description=f"Every mask of {stage} holds only ids 0..{VOID} and matches its image size.")
    def _check() -> dg.AssetCheckResult:
        problems, counts = [], {}
        try:
            sets = _datasets(root, stage)
        except ShardFormatError as err:
            return dg.AssetCheckResult(passed=False, metadata={"error": str(err)})
        for split, ds in sets:
            counts[split] = len(ds)
            for images, masks in ds.iter_batches(256):
                if masks.size and int(masks.max()) > VOID:
                    problems.append(f"{split}: id {int(masks.max())}")
                    break
                if images.shape[:3] != masks.shape:
                    problems.append(f"{split}: image/mask size mismatch")
                    break
        return dg.AssetCheckResult(passed=not problems and bool(sets),
                                   metadata={"samples": dg.MetadataValue.json(counts),
                                             "problems": ", ".join(problems) or "none"})

    return _check


def coverage_check(root: Path) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset="synthetic_scenes", name="class_coverage",
                    description="All 11 classes appear in the synthetic training scenes.")
    def _check() -> dg.AssetCheckResult:
        ds = ShardDataset(root / "data" / "synthetic_scenes" / "train")
        hist = np.zeros(VOID + 1, dtype=np.int64)
        for _, masks in ds.iter_batches(256):
            hist += class_histogram(masks)
        missing = [CLASSES[i] for i in range(NUM_CLASSES) if hist[i] == 0]
        frac = hist[:NUM_CLASSES] / max(hist.sum(), 1)
        return dg.AssetCheckResult(
            passed=not missing,
            metadata={"missing": ", ".join(missing) or "none",
                      "min_class_fraction": float(frac.min())})

    return _check


def regression_check() -> dg.AssetChecksDefinition:
    @dg.asset_check(asset="gap_report", name="miou_not_regressed",
                    description=f"Fine-tuned real-val mIoU did not drop more than {REGRESSION_TOLERANCE} "
                                "points against the previous materialization.")
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        records = context.instance.fetch_materializations(dg.AssetKey("gap_report"), limit=2).records
        values = []
        for rec in records:
            mat = rec.asset_materialization
            md = mat.metadata if mat else {}
            if REGRESSION_KEY in md:
                values.append(float(md[REGRESSION_KEY].value))
        if not values:
            return dg.AssetCheckResult(passed=True, metadata={"note": f"no {REGRESSION_KEY} recorded yet"})
        if len(values) == 1:
            return dg.AssetCheckResult(passed=True, metadata={"current": values[0], "note": "first run"})
        current, previous = values[0], values[1]
        return dg.AssetCheckResult(
            passed=current >= previous - REGRESSION_TOLERANCE,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"current": current, "previous": previous, "delta": current - previous})

    return _check

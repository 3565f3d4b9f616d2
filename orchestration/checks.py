"""Asset checks: label values valid, class coverage, mIoU not regressed."""


from pathlib import Path

import dagster as dg
import numpy as np

from sim2real.shards import ShardDataset, ShardFormatError
from sim2real.taxonomy import CLASSES, NUM_CLASSES, VOID, class_histogram

LABELLED = {"synthetic_scenes": ("train", "val"), "augmented_scenes": ("train",),
            "real_target": ("few_shot", "train", "val", "test")}
# mIoU (points, 0-100, in every metadata entry) watched for regressions, per asset. The check on
# finetuned_model blocks gap_report in the same run; the one on gap_report guards the report itself.
REGRESSION_KEYS = {"finetuned_model": "real_val_miou_mean", "gap_report": "finetuned_miou"}
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


def regression_check(asset: str = "gap_report") -> dg.AssetChecksDefinition:
    key = REGRESSION_KEYS[asset]

    @dg.asset_check(asset=asset, name="miou_not_regressed", blocking=True,
                    description=f"`{key}` (mIoU points) did not drop more than {REGRESSION_TOLERANCE} points "
                                "against the previous materialization; a failure stops downstream assets.")
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        records = context.instance.fetch_materializations(dg.AssetKey(asset), limit=2).records
        values = []
        for rec in records:
            mat = rec.asset_materialization
            md = mat.metadata if mat else {}
            if key not in md:
                break  # an older materialization without the key counts as no history
            values.append(float(md[key].value))
        if not values:  # the one being checked lacks its headline: that is a failure, not a pass
            return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR,
                                       metadata={"error": f"the latest {asset} materialization has no {key}"})
        if len(values) == 1:
            return dg.AssetCheckResult(passed=True, metadata={"current": values[0], "note": "first run"})
        current, previous = values[0], values[1]
        return dg.AssetCheckResult(
            passed=current >= previous - REGRESSION_TOLERANCE,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"current": current, "previous": previous, "delta": current - previous,
                      "tolerance": REGRESSION_TOLERANCE, "unit": "mIoU points"})

    return _check

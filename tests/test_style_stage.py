"""Stage styled_scenes through the runner in a temp root: every method, masks and records unchanged,
distances before/after in the metadata, references from few_shot or all (unlabelled) train images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sim2real.runner import run_stage
from sim2real.shards import ShardDataset, write_dataset
from sim2real.style import METHODS
from tests.test_real_import import write_camvid
from tests.test_real_stage import SMALL, camvid_overrides, make_root
from tests.test_style import image_set

ALL = "[" + ",".join(sorted(METHODS)) + "]"


@pytest.fixture(scope="module")
def styled_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temp project with a real target and (stand-in) synthetic/augmented scenes on disk."""
    root = make_root(tmp_path_factory.mktemp("style"))
    write_camvid(root / "camvid", {"train": 10, "val": 12}, seed=4, cast=(0.6, 0.7, 0.9))
    run_stage("real_target", root=root, overrides=camvid_overrides(4))
    # the upstream stages' outputs, written directly: this test is about styling, not generation
    for stage, split, n, seed in (("augmented_scenes", "train", 20, 0), ("synthetic_scenes", "val", 7, 1)):
        images = image_set(n, seed, (1.3, 1.0, 0.5), 15.0, 2.0, h=16, w=24)
        masks = np.random.default_rng(seed).integers(0, 12, (n, 16, 24)).astype(np.uint8)
        write_dataset(root / "data" / stage / split, images, masks,
                      [{"name": f"{split}{i}", "seed": i} for i in range(n)], shard_size=8)
    return root


@pytest.mark.parametrize("method", sorted(METHODS))
def test_styled_scenes_stage(styled_root: Path, method: str) -> None:
    root = styled_root
    result = run_stage("styled_scenes", item=method, root=root, overrides=SMALL + [f"style.ablation={ALL}"])
    out = root / "data" / "styled_scenes" / method
    for split, (stage, sub) in {"train": ("augmented_scenes", "train"), "val": ("synthetic_scenes", "val")}.items():
        src, dst = ShardDataset(root / "data" / stage / sub), ShardDataset(out / split)
        (si, sm), (di, dm) = src.arrays(), dst.arrays()
        assert np.array_equal(sm, dm), "masks must be unchanged"
        assert di.shape == si.shape and di.dtype == np.uint8
        assert [r["name"] for r in dst.records()] == [r["name"] for r in src.records()]
        assert all(r["style"] == method for r in dst.records())
        assert np.array_equal(di, si) == (method == "none")
    m = result.metrics
    assert m["references"] == 4 and m["train_images"] == 20 and m["val_images"] == 7
    if method == "none":
        assert m["lab_after"] == m["lab_before"] and m["hist_w1_after"] == m["hist_w1_before"]
    else:  # measured on real val, which the method never saw
        assert m["lab_after"] < m["lab_before"] and m["hist_w1_after"] < m["hist_w1_before"]
        assert m["val_lab_after"] < m["val_lab_before"]
    table = result.tables["colour-statistics distance to real val (before -> after)"]
    assert "hist_tv" in table and "synthetic val" in table
    assert (root / result.plots["colour histograms"]).is_file()
    assert (out / "summary.json").is_file()
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(".")]


def test_unlabelled_references_use_all_real_train_images(styled_root: Path) -> None:
    result = run_stage("styled_scenes", item="reinhard", root=styled_root,
                       overrides=SMALL + ["style.references=unlabelled"])
    assert result.metrics["references"] == 10


def test_missing_upstream_fails_cleanly(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    with pytest.raises(Exception, match="run its stage first"):
        run_stage("styled_scenes", item="none", root=root, overrides=SMALL)
    assert not (root / "data" / "styled_scenes" / "none").exists()

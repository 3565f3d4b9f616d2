"""Stage real_target through the runner in a temp root: splits, few-shot subset, no leakage, atomic
failure (a bad import leaves the earlier output untouched), skip_bad reporting, the proxy default."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from sim2real.config import ConfigError
from sim2real.real.fewshot import class_presence, select_few_shot
from sim2real.real.validate import DatasetError
from sim2real.runner import run_stage
from sim2real.shards import ShardDataset
from tests.conftest import REPO, camvid_or_skip
from tests.test_real_import import BREAKERS, write_camvid, write_folder

SMALL = ["project.image_height=16", "project.image_width=24"]


def make_root(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    return root


def camvid_overrides(n: int = 4, root: str = "camvid") -> list[str]:
    return SMALL + ["real.source=camvid", f"real.root={root}", f"real.few_shot={n}"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_camvid_without_test_split_halves_val(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    write_camvid(root / "camvid", {"train": 12, "val": 7})
    result = run_stage("real_target", root=root, overrides=camvid_overrides())
    out = root / "data" / "real_target"
    split = json.loads((out / "split.json").read_text())
    assert split["test_from"] == "val-second-half" and "no test split" in result.text
    val, test = split["splits"]["val"]["names"], split["splits"]["test"]["names"]
    assert len(val) == 4 and len(test) == 3
    assert max(val) < min(test)  # contiguous halves in file-name order
    for s, n in {"train": 12, "few_shot": 4, "val": 4, "test": 3}.items():
        ds = ShardDataset(out / s)
        assert len(ds) == n and ds.size == (16, 24)
        assert [r["name"] for r in ds.records()] == split["splits"][s]["names"]
    assert result.metrics["few_shot_images"] == 4
    assert "few-shot subset" in result.tables and "splits" in result.tables


def test_dataset_test_split_is_used_when_present(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    write_camvid(root / "camvid", {"train": 8, "val": 3, "test": 3})
    run_stage("real_target", root=root, overrides=camvid_overrides())
    split = json.loads((root / "data/real_target/split.json").read_text())
    assert split["test_from"] == "test"
    assert split["splits"]["val"]["count"] == 3 and split["splits"]["test"]["count"] == 3


def test_few_shot_is_deterministic_balanced_and_never_leaks(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    write_camvid(root / "camvid", {"train": 16, "val": 6})
    run_stage("real_target", root=root, overrides=camvid_overrides(5))
    out = root / "data" / "real_target"
    first = json.loads((out / "split.json").read_text())["few_shot"]
    run_stage("real_target", root=root, overrides=camvid_overrides(5))
    again = json.loads((out / "split.json").read_text())["few_shot"]
    assert first["names"] == again["names"] and first["seed"] == 0
    run_stage("real_target", root=root, overrides=camvid_overrides(5) + ["real.seed=3"])
    other = json.loads((out / "split.json").read_text())["few_shot"]
    assert other["names"] != first["names"]

    names = {s: [r["name"] for r in ShardDataset(out / s).records()] for s in ("train", "few_shot", "val", "test")}
    assert set(names["few_shot"]) <= set(names["train"])
    held_out = set(names["val"]) | set(names["test"])
    assert not held_out & (set(names["train"]) | set(names["few_shot"]))
    # by content too: no few-shot or train image is a val/test image
    seen = {ShardDataset(out / s)[i][0].tobytes() for s in ("val", "test") for i in range(len(names[s]))}
    for s in ("train", "few_shot"):
        ds = ShardDataset(out / s)
        assert all(ds[i][0].tobytes() not in seen for i in range(len(ds)))


def test_few_shot_selection_covers_rare_classes_first() -> None:
    rng = np.random.default_rng(0)
    masks = np.zeros((40, 20, 20), np.uint8)  # all sky ...
    masks[:, 10:] = 3  # ... and road
    masks[7, :4, :4] = 10  # one bicyclist image
    masks[23, :4, :4] = 9  # one pedestrian image
    masks[rng.choice(40, 10, replace=False), 5:8, :] = 1  # some buildings
    picks = select_few_shot(masks, 3, seed=0)
    assert set(picks[:2]) == {7, 23}  # the two rarest classes come first
    assert select_few_shot(masks, 3, seed=0) == picks
    assert select_few_shot(masks, 100, seed=0) == list(range(40))  # N >= pool = all
    present = class_presence(masks[picks]).any(0)
    assert present[[0, 1, 3, 9, 10]].all()


def test_failed_import_leaves_previous_output_untouched(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    data = write_camvid(root / "camvid", {"train": 8, "val": 4})
    run_stage("real_target", root=root, overrides=camvid_overrides())
    out = root / "data" / "real_target"
    good = snapshot(out)
    for kind, (breaker, msg) in sorted(BREAKERS.items()):
        shutil.rmtree(data)
        write_camvid(data, {"train": 8, "val": 4})
        bad = breaker(data)
        with pytest.raises(DatasetError, match=msg) as err:
            run_stage("real_target", root=root, overrides=camvid_overrides())
        assert str(bad) in str(err.value), kind
        assert snapshot(out) == good, f"{kind}: earlier output changed"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "temp folders left behind"


def test_skip_bad_lists_the_skipped_files(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    data = write_camvid(root / "camvid", {"train": 8, "val": 4})
    bad = BREAKERS["truncated"][0](data)
    result = run_stage("real_target", root=root, overrides=camvid_overrides() + ["real.skip_bad=true"])
    assert result.metrics["train_images"] == 7 and result.metrics["skipped_files"] == 1
    assert bad.name in result.tables["skipped files"]
    split = json.loads((root / "data/real_target/split.json").read_text())
    assert split["skipped"][0]["file"] == str(bad)


def test_folder_source_with_mapping(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    write_folder(root / "f", n=5, split="train")
    write_folder(root / "f", n=2, split="val", start=5)
    run_stage("real_target", root=root, overrides=SMALL + [
        "real.source=folder", "real.root=f", "real.mapping=f/mapping.yaml", "real.few_shot=2"])
    assert len(ShardDataset(root / "data/real_target/few_shot")) == 2
    assert ShardDataset(root / "data/real_target/train").arrays()[1].max() <= 11
    # the same name in two splits is leakage, and an error
    write_folder(root / "f", n=1, split="val", start=0)
    with pytest.raises(DatasetError, match="frame000: appears in both the train and val splits"):
        run_stage("real_target", root=root, overrides=SMALL + [
            "real.source=folder", "real.root=f", "real.mapping=f/mapping.yaml", "real.few_shot=2"])


def test_dataset_source_needs_root(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    with pytest.raises(ConfigError, match="real.root is required"):
        run_stage("real_target", root=root, overrides=SMALL + ["real.source=camvid"])
    with pytest.raises(DatasetError, match="dataset folder not found"):
        run_stage("real_target", root=root, overrides=camvid_overrides(root="nowhere"))


def test_proxy_target_default(tmp_path: Path) -> None:
    try:
        from sim2real.synth import generate_scenes  # noqa: F401
    except ImportError:
        pytest.skip("sim2real.synth.generate_scenes (helper SYNTH) not available yet")
    root = make_root(tmp_path)
    result = run_stage("real_target", root=root, overrides=SMALL + [
        "real.proxy_train=6", "real.proxy_val=3", "real.proxy_test=3", "real.few_shot=2"])
    out = root / "data" / "real_target"
    split = json.loads((out / "split.json").read_text())
    assert split["source"] == "proxy" and "stand-in" in split["note"]
    assert [len(ShardDataset(out / s)) for s in ("train", "few_shot", "val", "test")] == [6, 2, 3, 3]
    images = {s: ShardDataset(out / s).arrays()[0] for s in ("train", "val", "test")}
    assert not np.array_equal(images["train"][:3], images["val"])  # disjoint scene seeds
    assert result.metrics["test_images"] == 3


def test_camvid_shared_copy_stage(tmp_path: Path) -> None:
    camvid = camvid_or_skip()
    root = make_root(tmp_path)
    result = run_stage("real_target", root=root, overrides=camvid_overrides(10, str(camvid)))
    assert result.metrics["train_images"] == 367
    assert result.metrics["val_images"] == 51 and result.metrics["test_images"] == 50
    assert result.metrics["few_shot_classes"] == 11

"""Any source -> any target: a real labelled dataset as the source in place of the procedural scenes.

`synthetic.source: camvid | cityscapes | folder` imports that dataset's train/val into
`data/synthetic_scenes/` in the shard format the chain reads; the end-to-end test runs the whole tiny
chain with a folder source (city A) and a CamVid-layout target (city B, another colour cast) written
here as tiny PNGs, and checks the gap report is the one of that pair.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sim2real.config import ConfigError, load_config
from sim2real.real.importers import load_split
from sim2real.real.validate import DatasetError
from sim2real.runner import run_stage
from sim2real.shards import ShardDataset
from tests.conftest import REPO
from tests.test_real_import import write_camvid, write_folder

SMALL = ["project.image_height=16", "project.image_width=24"]


def _folder_source(root: Path) -> list[str]:
    write_folder(root / "city_a", n=6, split="train")
    write_folder(root / "city_a", n=3, split="val", start=6)
    return ["synthetic.source=folder", "synthetic.root=city_a", "synthetic.mapping=city_a/mapping.yaml"]


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "params.yaml").write_text((REPO / "params.yaml").read_text())
    return root


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"synthetic.root is required when synthetic.source='camvid'"):
        load_config(REPO / "params.yaml", overrides=["synthetic.source=camvid"])
    with pytest.raises(ConfigError, match=r"synthetic.root is set but synthetic.source='procedural'"):
        load_config(REPO / "params.yaml", overrides=["synthetic.root=somewhere"])
    with pytest.raises(ConfigError, match=r"synthetic.source"):
        load_config(REPO / "params.yaml", overrides=["synthetic.source=kitti"])
    assert load_config(REPO / "params.yaml").synthetic.source == "procedural"  # the default stays synthetic


def test_folder_source_becomes_the_source_scenes(tmp_path: Path) -> None:
    root = _root(tmp_path)
    result = run_stage("synthetic_scenes", root=root, overrides=SMALL + _folder_source(root))
    out = root / "data/synthetic_scenes"
    for split, n in (("train", 6), ("val", 3)):
        ds = ShardDataset(out / split)
        expect = load_split(root / "city_a", "folder", split, 16, 24, mapping=root / "city_a/mapping.yaml")
        images, masks = ds.arrays()
        assert len(ds) == n and ds.size == (16, 24)
        assert np.array_equal(images, expect.images) and np.array_equal(masks, expect.masks)
        assert [r["name"] for r in ds.records()] == expect.names
        assert ds.index["domain"] == "imported" and ds.index["source"] == "folder"
    info = json.loads((out / "source.json").read_text())
    assert info["source"] == "folder" and info["counts"] == {"train": 6, "val": 3}
    assert result.metrics["scenes"] == 9 and "Source imported from folder" in result.text
    # switching back to procedural leaves no trace of the imported source
    run_stage("synthetic_scenes", root=root, overrides=SMALL + ["synthetic.num_train=4", "synthetic.num_val=2"])
    assert not (out / "source.json").exists() and len(ShardDataset(out / "train")) == 4


def test_bad_source_datasets_name_the_key(tmp_path: Path) -> None:
    root = _root(tmp_path)
    with pytest.raises(DatasetError, match=r"synthetic.root: .*nowhere: source dataset folder not found"):
        run_stage("synthetic_scenes", root=root, overrides=SMALL + ["synthetic.source=camvid", "synthetic.root=nowhere"])
    write_camvid(root / "only_train", {"train": 3})
    with pytest.raises(DatasetError, match=r"synthetic.root: .*needs the splits train and val; missing \['val'\]"):
        run_stage("synthetic_scenes", root=root,
                  overrides=SMALL + ["synthetic.source=camvid", "synthetic.root=only_train"])
    over = _folder_source(root)
    with pytest.raises(DatasetError, match=r"synthetic.mapping: .*missing.yaml: label mapping file not found"):
        run_stage("synthetic_scenes", root=root, overrides=SMALL + over[:2] + ["synthetic.mapping=missing.yaml"])
    with pytest.raises(DatasetError, match="unknown label"):  # folder ids 100/200/7 unmapped without the file
        run_stage("synthetic_scenes", root=root, overrides=SMALL + over[:2])

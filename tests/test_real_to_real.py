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
from sim2real.taxonomy import CLASS_ID
from tests.conftest import BIN, REPO, make_project, run
from tests.test_real_import import save, scene, write_camvid, write_folder

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


def test_num_train_and_num_val_cap_an_imported_source(tmp_path: Path) -> None:
    """The caps keep the first N image files of each split in name order; source.json says available vs used."""
    root = _root(tmp_path)
    over = SMALL + _folder_source(root)
    result = run_stage("synthetic_scenes", root=root, overrides=over + ["synthetic.num_train=4", "synthetic.num_val=50"])
    out = root / "data/synthetic_scenes"
    every = load_split(root / "city_a", "folder", "train", 16, 24, mapping=root / "city_a/mapping.yaml")
    train = ShardDataset(out / "train")
    assert [r["name"] for r in train.records()] == every.names[:4] and len(every) == 6
    assert np.array_equal(train.arrays()[0], every.images[:4])
    assert len(ShardDataset(out / "val")) == 3  # a cap above the split's size takes it all
    info = json.loads((out / "source.json").read_text())
    assert info["available"] == {"train": 6, "val": 3} and info["used"] == {"train": 4, "val": 3}
    assert info["counts"] == {"train": 4, "val": 3} and info["cap"] == {"train": 4, "val": 50}
    assert result.metrics["scenes"] == 7 and "4 of 6 train files" in result.text and "val files" not in result.text

    # the cap counts files: with fit=window each 24x32 CamVid frame gives two 16x16 samples
    write_camvid(root / "src", {"train": 3, "val": 2})
    run_stage("synthetic_scenes", root=root, overrides=[
        "project.image_height=16", "project.image_width=16", "synthetic.source=camvid", "synthetic.root=src",
        "synthetic.fit=window", "synthetic.num_train=2", "synthetic.num_val=1"])
    info = json.loads((out / "source.json").read_text())
    assert info["available"] == {"train": 3, "val": 2} and info["used"] == {"train": 2, "val": 1}
    assert info["counts"] == {"train": 4, "val": 2} and len(ShardDataset(out / "train")) == 4


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


def write_city(root: Path, splits: dict[str, int], seed: int, cast: tuple[float, float, float]) -> Path:
    """A labelled folder dataset (`<split>/images`, `<split>/masks`, mapping.yaml) with its own colour cast:
    source ids 100 = sky, 200 = road, 7 = car (rectangles of other classes become cars), 255 = void."""
    rng = np.random.default_rng(seed)
    i = 0
    for split, n in splits.items():
        for _ in range(n):
            image, mask = scene(rng)
            image = np.clip(image * np.array(cast), 0, 255).astype(np.uint8)
            ids = np.where(mask == CLASS_ID["Sky"], 100, np.where(mask == CLASS_ID["Road"], 200, 7)).astype(np.uint8)
            ids[0, 0] = 255
            save(root / split / "images" / f"{root.name}_{i:03d}.png", image)
            save(root / split / "masks" / f"{root.name}_{i:03d}.png", ids)
            i += 1
    (root / "mapping.yaml").write_text("mapping:\n  100: Sky\n  200: Road\n  7: Car\n  255: void\n")
    return root


@pytest.mark.e2e  # a whole tiny chain
def test_real_to_real_tiny_chain_produces_a_gap_report(tmp_path: Path) -> None:
    """City A (a folder source) -> city B (a folder target, bluer): the whole chain and the gap report."""
    import duckdb

    root = make_project(tmp_path / "proj", dvc=False)
    run([str(BIN / "sim2real"), "profile", "real2real"], root)  # the README's command
    ext = root / "data/external"
    write_city(ext / "city_a", {"train": 10, "val": 4}, seed=0, cast=(1.0, 1.0, 1.0))
    write_city(ext / "city_b", {"train": 8, "val": 4, "test": 4}, seed=1, cast=(0.6, 0.8, 1.3))
    cfg = load_config(root / "params.yaml")
    assert (cfg.synthetic.source, cfg.real.source) == ("folder", "folder")
    for name in ("synthetic_scenes", "real_target", "augmented_scenes"):
        run_stage(name, root=root, cfg=cfg)
    for method in cfg.style.ablation:
        run_stage("styled_scenes", method, root=root, cfg=cfg)
        run_stage("pretrained_model", method, root=root, cfg=cfg)
    for name in ("finetuned_model", "real_only_model", "root_causes"):
        run_stage(name, root=root, cfg=cfg)
    result = run_stage("gap_report", root=root, cfg=cfg)

    # the source is city A's images, the target city B's: nothing procedural in the chain
    data = root / "data"
    src_val = ShardDataset(data / "synthetic_scenes/val")
    assert [r["name"] for r in src_val.records()] == [f"city_a_{i:03d}" for i in range(10, 14)]
    assert json.loads((data / "synthetic_scenes/source.json").read_text())["root"] == str(ext / "city_a")
    split = json.loads((data / "real_target/split.json").read_text())
    assert split["source"] == "folder" and split["splits"]["test"]["names"][0] == "city_b_012"
    # the report of that pair: headline gap, source named, root causes closing the findings
    page = (data / "gap_report/report.html").read_text()
    assert "<h1>Source-to-target gap report</h1>" in page and f"folder dataset {ext / 'city_a'}" in page
    assert "domain_gap" in result.metrics and "miou/source_only/none/real/val" in result.metrics
    assert "**Root causes, tested**" in result.text and "Root causes: tested" in page
    con = duckdb.connect(str(data / "store/sim2real.duckdb"), read_only=True)
    try:
        target, = con.execute("SELECT target FROM runs WHERE stage = 'gap_report'").fetchone()
        n_causes, = con.execute("SELECT count(*) FROM root_causes").fetchone()
    finally:
        con.close()
    assert target == "folder" and n_causes == len(cfg.rootcause.interventions)


@pytest.mark.parametrize("fmt", ["camvid", "cityscapes"])
def test_camvid_and_cityscapes_sources_keep_the_aspect_when_asked(tmp_path: Path, fmt: str) -> None:
    """The other importers work as sources too; synthetic.fit=window cuts a wide working size into windows."""
    from tests.test_real_import import write_cityscapes

    root = _root(tmp_path)
    if fmt == "camvid":
        write_camvid(root / "src", {"train": 3, "val": 2})
    else:
        write_cityscapes(root / "src", "train", 3)
        write_cityscapes(root / "src", "val", 2)
    over = ["project.image_height=16", "project.image_width=16", f"synthetic.source={fmt}", "synthetic.root=src"]
    run_stage("synthetic_scenes", root=root, overrides=over)
    squashed = ShardDataset(root / "data/synthetic_scenes/train")
    assert len(squashed) == 3 and squashed.size == (16, 16)
    run_stage("synthetic_scenes", root=root, overrides=over + ["synthetic.fit=window"])
    windows = ShardDataset(root / "data/synthetic_scenes/train")
    names = [r["name"] for r in windows.records()]
    assert len(windows) > 3 and all("@x" in n for n in names), names  # 24x32 frames: two 16x16 windows each
    assert json.loads((root / "data/synthetic_scenes/source.json").read_text())["fit"] == "window"

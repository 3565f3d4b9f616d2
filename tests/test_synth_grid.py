"""benchmarks/synth_grid.py: real crops next to synthetic crops, one row per class, in one PNG."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sim2real.config.synthetic import SyntheticConfig
from sim2real.real.importers import load_split
from sim2real.synth import generate_scenes
from sim2real.taxonomy import CLASS_ID, CLASSES
from tests.test_real_import import write_camvid

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import synth_grid  # noqa: E402

EMPTY = (225, 225, 225)


def fake_camvid(root: Path) -> Path:
    """A tiny SegNet-layout CamVid with no Bicyclist pixel anywhere (made Road)."""
    write_camvid(root, {"train": 3, "val": 1})
    for f in sorted((root / "trainannot").glob("*.png")):
        ids = np.asarray(Image.open(f)).copy()
        ids[ids == CLASS_ID["Bicyclist"]] = CLASS_ID["Road"]
        Image.fromarray(ids).save(f)
    return root


def cell(grid: Image.Image, class_name: str, side: int, slot: int, k: int) -> np.ndarray:
    """The pixels of one crop cell (side 0 = real, 1 = synthetic)."""
    cw, ch = synth_grid.CELL
    left = synth_grid.LABEL_W + side * (k * (cw + 2) + synth_grid.GAP) + slot * (cw + 2)
    top = synth_grid.HEADER + CLASSES.index(class_name) * (ch + synth_grid.CAPTION + 2)
    return np.asarray(grid.convert("RGB"))[top:top + ch, left:left + cw]


def test_context_box_keeps_the_blob_and_the_cell_aspect_inside_the_frame() -> None:
    box = synth_grid.context_box((150, 60, 158, 80), 128, 160, context=0.6)  # a pole at the right edge
    x0, y0, x1, y1 = box
    assert 0 <= x0 <= 150 and x1 == 160 and y0 <= 60 and y1 >= 80 and y1 <= 128
    assert (x1 - x0) / (y1 - y0) == pytest.approx(synth_grid.CELL[0] / synth_grid.CELL[1], rel=0.05)
    assert synth_grid.context_box((0, 0, 160, 128), 128, 160, context=0.6) == (0, 0, 160, 128)


def test_grid_has_a_row_per_class_and_an_empty_labelled_cell_for_an_absent_class(tmp_path: Path) -> None:
    r = load_split(fake_camvid(tmp_path / "camvid"), "camvid", "train", 32, 40)
    images, masks, _ = generate_scenes(SyntheticConfig(), 2, seed=0, height=32, width=40)
    assert not (r.masks == CLASS_ID["Bicyclist"]).any() and (r.masks == CLASS_ID["Road"]).any()
    k = 2
    grid = synth_grid.class_grid((r.images, r.masks), (images, masks), k=k, min_area=2)
    cw, ch = synth_grid.CELL
    assert grid.size == (synth_grid.LABEL_W + 2 * k * (cw + 2) + synth_grid.GAP,
                         synth_grid.HEADER + len(CLASSES) * (ch + synth_grid.CAPTION + 2))
    absent = cell(grid, "Bicyclist", 0, 0, k)
    assert (absent[:4, :4] == EMPTY).all() and (absent != EMPTY).any()  # grey, with its "no Bicyclist" label
    road = cell(grid, "Road", 0, 0, k)
    assert not (road[:4, :4] == EMPTY).all()  # a real crop
    assert (road == synth_grid.CHOSEN).all(-1).any()  # the chosen blob is outlined
    assert not (cell(grid, "Road", 1, 0, k)[:4, :4] == EMPTY).all()  # a synthetic crop
    again = synth_grid.class_grid((r.images, r.masks), (images, masks), k=k, min_area=2)
    assert np.array_equal(np.asarray(grid), np.asarray(again))  # deterministic


def test_cli_reads_both_sides_the_way_the_stages_do(tmp_path: Path) -> None:
    root = fake_camvid(tmp_path / "camvid")
    out = tmp_path / "grid.png"
    small = ["-S", "project.image_height=32", "-S", "project.image_width=40"]
    path = synth_grid.main(["-S", f"real.root={root}", *small, "--scenes", "2", "--k", "3", "--min-area", "2",
                            "--out", str(out)])
    assert path == out
    png = Image.open(out)
    cw, ch = synth_grid.CELL
    assert png.mode == "P" and png.size == (synth_grid.LABEL_W + 2 * 3 * (cw + 2) + synth_grid.GAP,
                                            synth_grid.HEADER + 11 * (ch + synth_grid.CAPTION + 2))
    with pytest.raises(ValueError, match="needs a real dataset"):
        synth_grid.main(["-S", "real.source=proxy", *small, "--scenes", "1", "--out", str(out)])

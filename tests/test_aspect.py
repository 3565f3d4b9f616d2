"""Frames of another aspect (a KITTI-like 3.3:1 camera) keep their aspect: pad or sliding windows, chosen in params."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from sim2real.config import ConfigError, load_config
from sim2real.real.aspect import fit_frame, window_offsets
from sim2real.real.importers import load_split
from sim2real.taxonomy import VOID

REPO = Path(__file__).resolve().parents[1]
KITTI = (92, 306)  # 1224 x 370 scaled by 1/4: aspect 3.3


def _frame(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = np.zeros((h, w), np.uint8)
    ids[h // 2:] = 3  # sky above, road below
    return rng.integers(0, 255, (h, w, 3)).astype(np.uint8), ids


def test_window_offsets_cover_the_long_side() -> None:
    assert window_offsets(48, 48) == [0] and window_offsets(30, 48) == [0]
    offs = window_offsets(159, 48)
    assert offs[0] == 0 and offs[-1] == 159 - 48 and len(offs) == 4
    assert all(b - a <= 48 for a, b in zip(offs, offs[1:], strict=False))  # no gap between windows


def test_squash_pad_and_window_on_a_wide_frame() -> None:
    image, ids = _frame(*KITTI)
    (_, sq_img, sq_ids), = fit_frame(image, ids, 32, 48, "squash")
    assert sq_img.shape == (32, 48, 3) and (sq_ids != VOID).all()
    (_, pad_img, pad_ids), = fit_frame(image, ids, 32, 48, "pad")
    rows = np.flatnonzero((pad_ids != VOID).any(1))
    assert pad_img.shape == (32, 48, 3) and (pad_ids == VOID).any()
    kept = len(rows)  # the labelled band keeps the frame's aspect: 48 wide, 48 / 3.3 high
    assert abs(48 / kept - KITTI[1] / KITTI[0]) < 0.5, kept
    windows = fit_frame(image, ids, 32, 48, "window")  # short side 92 -> 32: 306 -> 106 wide, 3 windows of 48
    assert len(windows) == 3 and all(i.shape == (32, 48, 3) and m.shape == (32, 48) for _, i, m in windows)
    assert [s for s, _, _ in windows][0] == "@x0" and (windows[0][2] != VOID).all()
    # the same aspect: every mode is the plain resize
    same, same_ids = _frame(64, 96)
    outs = [fit_frame(same, same_ids, 32, 48, m) for m in ("squash", "pad", "window")]
    assert all(len(o) == 1 and np.array_equal(o[0][1], outs[0][0][1]) for o in outs)
    with pytest.raises(ValueError, match="real.fit"):
        fit_frame(image, ids, 32, 48, "stretch")
    with pytest.raises(ConfigError, match="real.fit"):
        load_config(REPO / "params.yaml", overrides=["real.fit=stretch"])


def _kitti_folder(root: Path, n: int = 2) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        image, ids = _frame(*KITTI, seed=i)
        Image.fromarray(image).save(root / "images" / f"frame_{i:02d}.png")
        Image.fromarray(np.where(ids == 3, 7, 0).astype(np.uint8)).save(root / "masks" / f"frame_{i:02d}.png")
    (root / "labels.json").write_text(json.dumps({"0": "Sky", "7": "Road"}))
    return root


def test_import_keeps_the_aspect_when_asked(tmp_path: Path) -> None:
    root = _kitti_folder(tmp_path / "kitti")
    squash = load_split(root, "folder", None, 32, 48, mapping=root / "labels.json")
    pad = load_split(root, "folder", None, 32, 48, mapping=root / "labels.json", fit="pad")
    window = load_split(root, "folder", None, 32, 48, mapping=root / "labels.json", fit="window")
    assert len(squash) == len(pad) == 2 and (pad.masks == VOID).any() and not (squash.masks == VOID).any()
    assert len(window) == 6 and window.names[:3] == ["frame_00@x0", "frame_00@x29", "frame_00@x58"]


def test_sim2real_evaluate_reports_the_fit_it_used(tmp_path: Path, monkeypatch) -> None:
    from sim2real.cli import app
    from sim2real.train.checkpoint import save_checkpoint
    from sim2real.train.models import create_model

    torch.set_num_threads(1)
    project = tmp_path / "proj"
    project.mkdir()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["real"]["fit"] = "window"
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setenv("SIM2REAL_ROOT", str(project))
    monkeypatch.delenv("SIM2REAL_STORE", raising=False)
    cfg = load_config(project / "params.yaml", overrides=[
        "project.image_height=32", "project.image_width=48", "model.arch=FPN",
        "model.encoder=tu-mobilenetv3_small_050", "model.encoder_weights=null"])
    ckpt = tmp_path / "model.pt"
    save_checkpoint(ckpt, {"model": create_model(cfg.model).eval().state_dict(), "params": cfg.to_dict(),
                           "stage": "finetuned_model", "step": 1, "init": {"kind": "init"}})
    root = _kitti_folder(tmp_path / "kitti")
    res = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(ckpt), "--root", str(root), "--mapping",
                                   str(root / "labels.json"), "--store", str(tmp_path / "s.duckdb")])
    assert res.exit_code == 0, res.output
    assert "at 32x48: 6 images" in res.output and "real.fit=window" in res.output

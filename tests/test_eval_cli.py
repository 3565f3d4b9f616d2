"""`sim2real evaluate` on a plain image/mask folder with a label-mapping file, and on CamVid; rows land in the store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sim2real.cli import app
from sim2real.config import load_config

REPO = Path(__file__).resolve().parents[1]
CAMVID = REPO.parent / "shared" / "data" / "camvid"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sim2real.train.checkpoint import save_checkpoint
    from sim2real.train.models import create_model

    torch.set_num_threads(1)
    cfg = load_config(REPO / "params.yaml", overrides=[
        "project.image_height=32", "project.image_width=48", "model.arch=FPN",
        "model.encoder=tu-mobilenetv3_small_050", "model.encoder_weights=null"])
    model = create_model(cfg.model).eval()
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(path, {"model": model.state_dict(), "params": cfg.to_dict(), "stage": "finetuned_model",
                           "step": 7, "init": {"kind": "init", "encoder_weights": None, "init_seed": 0}})
    return path


def _folder(root: Path, n: int = 5) -> Path:
    """images/ + masks/ at 64x96 with foreign label ids 0 (sky), 7 (road), 9 (car), 255 (unlabelled)."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        mask = np.full((64, 96), 7, np.uint8)
        mask[:20] = 0
        mask[30:40, 10 + 5 * i:40 + 5 * i] = 9
        mask[:3] = 255
        image = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "images" / f"frame_{i:02d}.png")
        Image.fromarray(mask).save(root / "masks" / f"frame_{i:02d}.png")
    (root / "labels.json").write_text(json.dumps({"0": "Sky", "7": "Road", "9": "car", "255": "void"}))
    return root


def test_evaluate_folder_with_mapping_writes_the_store(tmp_path: Path, checkpoint: Path, monkeypatch) -> None:
    from sim2real.evaluate.store import Store

    monkeypatch.delenv("SIM2REAL_STORE", raising=False)
    root = _folder(tmp_path / "cam")
    store = tmp_path / "store.duckdb"
    args = ["evaluate", "--checkpoint", str(checkpoint), "--root", str(root), "--mapping",
            str(root / "labels.json"), "--store", str(store)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "mIoU" in res.output and "at 32x48: 5 images" in res.output
    st = Store(store)
    run_id = st.latest_run("evaluate")
    assert run_id and run_id in res.output
    classes = st.query("SELECT class_name, present, tp + fn AS truth FROM class_iou WHERE run_id = ? "
                       "ORDER BY class_id", [run_id])
    assert len(classes) == 11
    truth = {c["class_name"]: c["truth"] for c in classes}
    # the mapping put pixels only into Sky, Road and Car (255 -> void is ignored)
    assert {k for k, v in truth.items() if v > 0} == {"Sky", "Road", "Car"}
    images = st.query("SELECT value FROM metrics WHERE run_id = ? AND name = 'images'", [run_id])
    assert images[0]["value"] == 5
    assert st.count("hard_samples", run_id) == 5
    counts = st.counts(("runs", "metrics", "class_iou", "hard_samples"))
    assert CliRunner().invoke(app, args).exit_code == 0  # the same evaluation again replaces its rows
    assert st.counts(tuple(counts)) == counts
    gap = CliRunner().invoke(app, ["gap", "--store", str(store)])
    assert gap.exit_code == 0 and "checkpoint/finetuned_model" in gap.output


def test_evaluate_bad_mapping_is_a_clear_error(tmp_path: Path, checkpoint: Path) -> None:
    root = _folder(tmp_path / "cam", n=2)
    (root / "labels.json").write_text(json.dumps({"0": "Sky", "7": "Road"}))  # 9 and 255 unmapped
    res = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(checkpoint), "--root", str(root), "--mapping",
                                   str(root / "labels.json"), "--store", str(tmp_path / "s.duckdb")])
    assert res.exit_code == 2
    assert "frame_00.png" in res.output
    assert not (tmp_path / "s.duckdb").exists(), "nothing is written for a failed evaluation"


@pytest.mark.camvid
def test_evaluate_on_camvid_split(tmp_path: Path, checkpoint: Path) -> None:
    if not (CAMVID / "valannot").is_dir():
        pytest.skip(f"CamVid not found at {CAMVID}")
    res = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(checkpoint), "--root", str(CAMVID),
                                   "--split", "val", "--store", str(tmp_path / "s.duckdb")])
    assert res.exit_code == 0, res.output
    assert "[camvid:val] at 32x48: 101 images" in res.output


def test_bad_checkpoint_and_bad_store_are_clear_errors(tmp_path: Path, checkpoint: Path) -> None:
    root = _folder(tmp_path / "cam", n=1)
    junk = tmp_path / "model.pt"
    junk.write_bytes(b"not a checkpoint")
    res = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(junk), "--root", str(root),
                                   "--store", str(tmp_path / "s.duckdb")])
    assert res.exit_code == 2 and str(junk) in res.output
    bad_store = tmp_path / "notes.duckdb"
    bad_store.write_text("my notes, not a database\n")
    for args in (["gap", "--store", str(bad_store)],
                 ["evaluate", "--checkpoint", str(checkpoint), "--root", str(root), "--store", str(bad_store)]):
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 2 and "not a DuckDB database file" in res.output, res.output
    assert bad_store.read_text() == "my notes, not a database\n"

"""benchmarks/synth_stats.py: per-class label statistics, real (SegNet layout) against synthetic."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import synth_stats  # noqa: E402

from sim2real.taxonomy import CLASS_ID, VOID  # noqa: E402


def test_label_stats_measure_share_presence_position_and_blobs() -> None:
    masks = np.full((2, 10, 10), CLASS_ID["Road"], np.uint8)
    masks[0, 0:4, 1:2] = CLASS_ID["Pole"]  # a 4x1 pole at the top
    masks[0, 6:8, 6:9] = CLASS_ID["Car"]  # a 2x3 car and a 1-pixel speck
    masks[0, 0, 9] = CLASS_ID["Car"]
    masks[1, :, :] = VOID
    st = synth_stats.label_stats(masks)
    assert st["Pole"]["pixel %"] == pytest.approx(100 * 4 / 200)
    assert st["Pole"]["present %"] == 50.0 and st["Road"]["present %"] == 50.0
    assert st["Pole"]["mean row"] == pytest.approx(0.2)  # rows 0..3, centres 0.05..0.35
    assert st["Car"]["blobs/img"] == 2.0
    assert st["Car"]["blob px"] == 6 and st["Car"]["blob h"] == 2  # pixel-weighted: the speck does not count
    assert st["Pole"]["blob h"] == 4
    assert np.isnan(st["Sky"]["mean row"]) and st["Sky"]["present %"] == 0.0
    with pytest.raises(ValueError, match="non-empty"):
        synth_stats.label_stats(np.zeros((0, 4, 4), np.uint8))


def test_cli_compares_a_segnet_folder_with_synthetic_scenes(tmp_path: Path) -> None:
    (tmp_path / "trainannot").mkdir()
    for i in range(3):
        ids = np.full((36, 48), CLASS_ID["Sky"], np.uint8)
        ids[18:] = CLASS_ID["Road"]
        ids[20:30, 5:7] = CLASS_ID["Pole"]
        cv2.imwrite(str(tmp_path / "trainannot" / f"f{i}.png"), ids)
    out = tmp_path / "stats.md"
    text = synth_stats.main(["--camvid", str(tmp_path), "--scenes", "4", "--height", "24", "--width", "32",
                             "--out", str(out)])
    assert "fine detail" not in text  # no images: labels only
    (tmp_path / "train").mkdir()
    for i in range(3):  # flat frames: no detail at all
        cv2.imwrite(str(tmp_path / "train" / f"f{i}.png"), np.full((36, 48, 3), 90, np.uint8))
    text = synth_stats.main(["--camvid", str(tmp_path), "--scenes", "4", "--height", "24", "--width", "32",
                             "--out", str(out)])
    detail = text.splitlines()[-1]
    assert detail.startswith("fine detail (mean |grey - 3x3 mean|, grey levels): real 0.00, synthetic ")
    assert float(detail.rsplit(" ", 1)[1]) > 1.0
    assert out.read_text().strip() == text.strip()
    assert "CamVid train (3 label maps) vs 4 synthetic scenes" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| class")]
    assert [r.split(" | ")[0][2:] for r in rows][:4] == ["Sky", "Building", "Pole", "Road"] and len(rows) == 11
    road = next(r for r in rows if r.startswith("| Road"))
    assert road.split(" | ")[2].startswith("100 / ")  # present in every real frame
    with pytest.raises(FileNotFoundError, match="valannot"):
        synth_stats.main(["--camvid", str(tmp_path), "--split", "val", "--scenes", "1"])

"""Importers (CamVid, Cityscapes-style, folder + mapping) on tiny fixtures written here, bad inputs,
and the shared CamVid copy. The fixture writers are reused by the other test_real*/test_style* files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sim2real.real.importers import (
    CITYSCAPES_TO_CAMVID,
    available_splits,
    detect_format,
    load_mapping,
    load_split,
)
from sim2real.real.validate import DatasetError
from sim2real.taxonomy import CLASS_ID, VOID
from tests.conftest import camvid_or_skip

H, W = 24, 32  # fixture file size (the importer resizes to the working size)


def scene(rng: np.random.Generator, h: int = H, w: int = W, classes: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """A blocky labelled scene: sky on top, road below, a few random class rectangles."""
    mask = np.full((h, w), CLASS_ID["Sky"], np.uint8)
    mask[h // 2:] = CLASS_ID["Road"]
    for _ in range(4):
        y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
        mask[y:y + rng.integers(2, 6), x:x + rng.integers(2, 8)] = rng.integers(0, classes)
    mask[0, 0] = VOID
    palette = rng.integers(0, 256, (VOID + 1, 3))
    image = np.clip(palette[mask] + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)
    return image, mask


def save(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def write_camvid(root: Path, counts: dict[str, int] | None = None, seed: int = 0, prefix: str = "0001TP",
                 cast: tuple[float, float, float] | None = None) -> Path:
    """A CamVid (SegNet layout) folder with `counts` images per split (`cast`: a colour cast + noise)."""
    rng = np.random.default_rng(seed)
    for split, n in (counts or {"train": 12, "val": 6}).items():
        for i in range(n):
            image, mask = scene(rng)
            if cast is not None:
                image = np.clip(image * np.array(cast) + 40 + rng.normal(0, 10, image.shape), 0, 255).astype(np.uint8)
            save(root / split / f"{prefix}_{split}{i:04d}.png", image)
            save(root / f"{split}annot" / f"{prefix}_{split}{i:04d}.png", mask)
    return root


def write_cityscapes(root: Path, split: str = "val", n: int = 3) -> Path:
    rng = np.random.default_rng(1)
    cs_ids = sorted(CITYSCAPES_TO_CAMVID) + [0, 1, 4]
    for i in range(n):
        image, _ = scene(rng)
        ids = rng.choice(cs_ids, size=(H, W)).astype(np.uint8)
        stem = f"aachen_{i:06d}_000019"
        save(root / "leftImg8bit" / split / "aachen" / f"{stem}_leftImg8bit.png", image)
        save(root / "gtFine" / split / "aachen" / f"{stem}_gtFine_labelIds.png", ids)
        save(root / "gtFine" / split / "aachen" / f"{stem}_gtFine_color.png", image)  # ignored
    return root


def write_folder(root: Path, n: int = 4, split: str | None = None, start: int = 0) -> Path:
    """Images + masks with source ids 100 (sky), 200 (road), 7 (car), 255 (ignore)."""
    rng = np.random.default_rng(2)
    base = root / split if split else root
    for i in range(start, start + n):
        image, mask = scene(rng)
        src = np.where(mask == CLASS_ID["Sky"], 100, np.where(mask == CLASS_ID["Road"], 200, 7)).astype(np.uint8)
        src[0, :3] = 255
        save(base / "images" / f"frame{i:03d}.jpg", image)
        save(base / "masks" / f"frame{i:03d}.png", src)
    (root / "mapping.yaml").write_text("mapping:\n  100: sky\n  200: Road\n  7: 8\n  255: void\n")
    return root


# ---------------------------------------------------------------- good inputs


def test_camvid_importer_resizes_and_keeps_ids(tmp_path: Path) -> None:
    root = write_camvid(tmp_path / "camvid")
    assert detect_format(root) == "camvid"
    assert available_splits(root, "camvid") == ["train", "val"]
    s = load_split(root, "camvid", "train", 12, 16)
    assert s.images.shape == (12, 12, 16, 3) and s.images.dtype == np.uint8
    assert s.masks.shape == (12, 12, 16) and s.masks.dtype == np.uint8
    assert s.names == sorted(s.names) and s.names[0] == "0001TP_train0000"
    assert s.sources[0] == "train/0001TP_train0000.png"
    # nearest resizing never invents ids
    raw = np.asarray(Image.open(root / "trainannot" / "0001TP_train0000.png"))
    assert set(np.unique(s.masks[0])) <= set(np.unique(raw))
    same = load_split(root, "camvid", "train", H, W)
    assert np.array_equal(same.masks[0], raw)


def test_cityscapes_importer_maps_label_ids(tmp_path: Path) -> None:
    root = write_cityscapes(tmp_path / "cs")
    assert detect_format(root) == "cityscapes"
    s = load_split(root, "cityscapes", "val", H, W)
    assert s.names == [f"aachen_{i:06d}_000019" for i in range(3)]
    raw = np.asarray(Image.open(root / "gtFine/val/aachen/aachen_000000_000019_gtFine_labelIds.png"))
    assert np.all(s.masks[0][raw == 26] == CLASS_ID["Car"])
    assert np.all(s.masks[0][raw == 24] == CLASS_ID["Pedestrian"])
    assert np.all(s.masks[0][raw == 23] == CLASS_ID["Sky"])
    assert np.all(s.masks[0][np.isin(raw, [0, 1, 4])] == VOID)


def test_folder_importer_with_yaml_and_json_mapping(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "f")
    s = load_split(root, "folder", None, H, W, mapping=root / "mapping.yaml")
    assert len(s) == 4 and s.names[0] == "frame000"
    raw = np.asarray(Image.open(root / "masks" / "frame000.png"))
    assert np.all(s.masks[0][raw == 100] == CLASS_ID["Sky"])
    assert np.all(s.masks[0][raw == 7] == CLASS_ID["Car"])
    assert np.all(s.masks[0][raw == 255] == VOID)
    (root / "m.json").write_text(json.dumps({"100": "Sky", "200": 3, "7": "car", "255": "ignore"}))
    s2 = load_split(root, "folder", None, H, W, mapping=root / "m.json")
    assert np.array_equal(s.masks, s2.masks)
    # default: void maps every unlisted id to void instead of failing
    lut = load_mapping({"mapping": {100: "Sky"}, "default": "void"})
    assert lut[100] == CLASS_ID["Sky"] and lut[7] == VOID


def test_folder_without_mapping_needs_taxonomy_ids(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "f", n=1)
    with pytest.raises(DatasetError, match=r"frame000\.png: unknown label values \[100, 200, 255\]"):
        load_split(root, "folder", None, H, W)


@pytest.mark.parametrize("mapping, msg", [
    ({"100": "Skyy"}, "unknown class 'Skyy'"),
    ({"x": "Sky"}, "not an integer source label id"),
    ({"100": 12}, "outside 0..11"),
    ({"mapping": {"1": "Sky"}, "default": "maybe"}, "'default' must be"),
])
def test_bad_mapping_names_the_key(tmp_path: Path, mapping: dict, msg: str) -> None:
    path = tmp_path / "map.json"
    path.write_text(json.dumps(mapping))
    with pytest.raises(DatasetError, match=msg) as err:
        load_mapping(path)
    assert str(path) in str(err.value)


# ---------------------------------------------------------------- bad inputs, one error each


def _first(root: Path, split: str = "train") -> tuple[Path, Path]:
    name = sorted((root / split).iterdir())[0].name
    return root / split / name, root / f"{split}annot" / name


def _break_unreadable(root: Path) -> Path:
    img, _ = _first(root)
    img.write_bytes(b"this is not a png")
    return img


def _break_truncated(root: Path) -> Path:
    img, _ = _first(root)
    data = img.read_bytes()
    img.write_bytes(data[: len(data) // 2])
    return img


def _break_size(root: Path) -> Path:
    _, mask = _first(root)
    save(mask, np.zeros((H + 2, W), np.uint8))
    return mask


def _break_missing_mask(root: Path) -> Path:
    img, mask = _first(root)
    mask.unlink()
    return img


def _break_missing_image(root: Path) -> Path:
    img, mask = _first(root)
    img.unlink()
    return mask


def _break_unknown_label(root: Path) -> Path:
    _, mask = _first(root)
    arr = np.asarray(Image.open(mask)).copy()
    arr[3, 3] = 50
    save(mask, arr)
    return mask


def _break_grey_image(root: Path) -> Path:
    img, _ = _first(root)
    save(img, np.zeros((H, W), np.uint8))
    return img


def _break_rgb_mask(root: Path) -> Path:
    _, mask = _first(root)
    save(mask, np.zeros((H, W, 3), np.uint8))
    return mask


def _break_empty(root: Path) -> Path:
    for p in (root / "train").iterdir():
        p.unlink()
    return root / "train"


BREAKERS = {
    "unreadable": (_break_unreadable, "unreadable or truncated"),
    "truncated": (_break_truncated, "unreadable or truncated"),
    "size-mismatch": (_break_size, "differs from its image"),
    "missing-mask": (_break_missing_mask, "missing partner"),
    "missing-image": (_break_missing_image, "missing partner"),
    "unknown-label": (_break_unknown_label, r"unknown label values \[50\]"),
    "grey-image": (_break_grey_image, "expected an RGB image with 3 channels"),
    "rgb-mask": (_break_rgb_mask, "single-channel label mask"),
    "empty-folder": (_break_empty, "empty folder"),
}


@pytest.mark.parametrize("kind", sorted(BREAKERS))
def test_each_bad_input_gives_an_error_naming_the_file(tmp_path: Path, kind: str) -> None:
    root = write_camvid(tmp_path / "camvid")
    breaker, msg = BREAKERS[kind]
    bad = breaker(root)
    with pytest.raises(DatasetError, match=msg) as err:
        load_split(root, "camvid", "train", 12, 16)
    assert str(bad) in str(err.value)
    if kind != "empty-folder":  # skip_bad drops exactly the broken sample and lists it
        s = load_split(root, "camvid", "train", 12, 16, skip_bad=True)
        assert len(s) == 11
        assert [f for f, _ in s.skipped] == [str(bad)]


def test_missing_split_lists_the_available_ones(tmp_path: Path) -> None:
    root = write_camvid(tmp_path / "camvid")
    with pytest.raises(DatasetError, match=r"available splits: \['train', 'val'\]"):
        load_split(root, "camvid", "test", 12, 16)
    with pytest.raises(DatasetError, match="unknown dataset format 'kitti'"):
        load_split(root, "kitti", "val", 12, 16)


# ---------------------------------------------------------------- the shared CamVid copy


def test_camvid_shared_copy_imports() -> None:
    root = camvid_or_skip()
    assert available_splits(root, "camvid") == ["train", "val"]
    s = load_split(root, "camvid", "val", 48, 64)
    assert len(s) == 101 and s.images.shape == (101, 48, 64, 3)
    assert s.masks.max() <= VOID and len(np.unique(s.masks)) == 12
    assert s.names[0] == "0016E5_07959"

"""Importers for labelled real datasets, mapped into the 11-class taxonomy (11 = void).

Formats (pick by name; `detect_format` guesses from the folder):
- `camvid`: the SegNet layout, `train/ trainannot/ val/ valannot/ [test/ testannot/]`, PNG masks with
  ids 0..10 and 11 = void (same basenames in image and label folders).
- `cityscapes`: `leftImg8bit/<split>/<city>/*_leftImg8bit.png` with
  `gtFine/<split>/<city>/*_gtFine_labelIds.png`; the 34 Cityscapes label ids are mapped to the 11
  classes by `CITYSCAPES_TO_CAMVID` (unmatched ones become void).
- `folder`: `images/` + `masks/` (or `<split>/images/` + `<split>/masks/`), partners matched by file
  stem, with a JSON/YAML label mapping (source id -> class name, id or "void"). Without a mapping the
  mask values must already be taxonomy ids 0..11.

Every file is validated (readable, not truncated, RGB image, single-channel mask, same size, a
partner present, every label value known); problems are `DatasetError`s naming the file, or with
`skip_bad=True` they are skipped and listed in `LabelledSet.skipped`.

Example:
    >>> s = load_split("/data/camvid", "camvid", "val", height=96, width=128)
    >>> s.images.shape, s.masks.shape, s.names[0]
    ((101, 96, 128, 3), (101, 96, 128), '0016E5_07959')
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sim2real.progress import Progress
from sim2real.real.aspect import fit_frame
from sim2real.real.validate import (
    IMAGE_SUFFIXES,
    UNKNOWN,
    DatasetError,
    check_same_size,
    list_images,
    map_labels,
    read_image,
    read_mask,
)
from sim2real.taxonomy import CLASS_ID, VOID

__all__ = ["LabelledSet", "load_split", "count_pairs", "available_splits", "detect_format", "load_mapping", "FORMATS",
           "CITYSCAPES_TO_CAMVID", "DatasetError"]

# Cityscapes labelIds (0..33, see cityscapesScripts labels.py) -> CamVid 11 classes, grouped the way
# the SegNet 11-class CamVid grouping does (e.g. TrafficLight is in SignSymbol, Truck/Bus in Car,
# MotorcycleScooter in Bicyclist). Ids not listed (unlabeled, ego vehicle, border, out of roi,
# static, dynamic, ground, rail track) are void.
CITYSCAPES_TO_CAMVID: dict[int, str] = {
    7: "Road", 9: "Road",  # road, parking
    8: "Pavement",  # sidewalk
    11: "Building", 12: "Building", 15: "Building", 16: "Building",  # building, wall, bridge, tunnel
    13: "Fence", 14: "Fence",  # fence, guard rail
    17: "Pole", 18: "Pole",  # pole, polegroup
    19: "SignSymbol", 20: "SignSymbol",  # traffic light, traffic sign
    21: "Tree", 22: "Tree",  # vegetation, terrain
    23: "Sky",
    24: "Pedestrian",  # person
    25: "Bicyclist", 32: "Bicyclist", 33: "Bicyclist",  # rider, motorcycle, bicycle
    26: "Car", 27: "Car", 28: "Car", 29: "Car", 30: "Car", 31: "Car",  # car, truck, bus, caravan, trailer, train
}
CITYSCAPES_MAX_ID = 33


@dataclass
class LabelledSet:
    """Images (N,H,W,3) uint8, masks (N,H,W) uint8 ids 0..11, one name (file stem) per sample."""

    images: np.ndarray
    masks: np.ndarray
    names: list[str]
    sources: list[str] = field(default_factory=list)  # image path relative to the dataset root
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    records: list[dict] = field(default_factory=list)  # extra per-sample metadata (e.g. proxy scene params)

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, indices: Sequence[int]) -> LabelledSet:
        idx = list(indices)
        return LabelledSet(self.images[idx], self.masks[idx], [self.names[i] for i in idx],
                           [self.sources[i] for i in idx] if self.sources else [], list(self.skipped),
                           [self.records[i] for i in idx] if self.records else [])


@dataclass(frozen=True)
class _Pair:
    name: str
    image: Path
    mask: Path


# ---------------------------------------------------------------- label mappings


def _lut_from(mapping: dict[int, int], default: int = UNKNOWN) -> np.ndarray:
    lut = np.full(256, default, dtype=np.uint8)
    for src, dst in mapping.items():
        lut[src] = dst
    return lut


def _target_id(value: Any, where: str) -> int:
    """A mapping target: class name (any case), taxonomy id 0..11, or void/ignore."""
    if isinstance(value, bool):
        raise DatasetError(f"{where}: target {value!r} is not a class name, id or 'void'")
    if isinstance(value, int):
        if 0 <= value <= VOID:
            return value
        raise DatasetError(f"{where}: target id {value} is outside 0..{VOID} (11 = void)")
    if isinstance(value, str):
        key = value.strip().lower()
        if key in ("void", "ignore", "unlabelled", "unlabeled"):
            return VOID
        by_lower = {k.lower(): v for k, v in CLASS_ID.items()}
        if key in by_lower:
            return by_lower[key]
        raise DatasetError(f"{where}: unknown class {value!r}; choose one of {list(CLASS_ID)} or 'void'")
    raise DatasetError(f"{where}: target {value!r} is not a class name, id or 'void'")


def load_mapping(mapping: str | Path | dict | None) -> np.ndarray | None:
    """Parse a label mapping (file or dict) into a 256-entry lookup table.

    The file (JSON or YAML) is either a flat `{source_id: target}` dict or
    `{"mapping": {...}, "default": "error" | "void"}`; a target is a class name (any case), a taxonomy
    id 0..11 or "void". With `default: void` unlisted source ids become void instead of an error.

    Args:
        mapping: path, already-parsed dict, or None (no mapping).

    Raises:
        DatasetError: naming the file and the bad key.
    """
    if mapping is None:
        return None
    where = "label mapping"
    if isinstance(mapping, (str, Path)):
        path = Path(mapping)
        where = str(path)
        if not path.is_file():
            raise DatasetError(f"{path}: label mapping file not found")
        try:
            text = path.read_text()
            data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as err:
            raise DatasetError(f"{path}: not valid JSON/YAML: {err}") from None
    else:
        data = mapping
    if not isinstance(data, dict) or not data:
        raise DatasetError(f"{where}: expected a non-empty mapping of source id -> class")
    default = UNKNOWN
    if "mapping" in data:
        extra = set(data) - {"mapping", "default"}
        if extra:
            raise DatasetError(f"{where}: unknown key(s) {sorted(extra)}; allowed: mapping, default")
        dflt = str(data.get("default", "error")).lower()
        if dflt not in ("error", "void"):
            raise DatasetError(f"{where}: key 'default' must be 'error' or 'void', got {data['default']!r}")
        default = VOID if dflt == "void" else UNKNOWN
        data = data["mapping"]
        if not isinstance(data, dict) or not data:
            raise DatasetError(f"{where}: key 'mapping' must be a non-empty mapping of source id -> class")
    table: dict[int, int] = {}
    for key, value in data.items():
        try:
            src = int(key)
        except (TypeError, ValueError):
            raise DatasetError(f"{where}: key {key!r} is not an integer source label id") from None
        if not 0 <= src <= 255:
            raise DatasetError(f"{where}: key {key!r}: source ids must be 0..255 (8-bit masks)")
        table[src] = _target_id(value, f"{where}: key {key!r}")
    return _lut_from(table, default)


def _identity_lut() -> np.ndarray:
    return _lut_from({i: i for i in range(VOID + 1)})


def _cityscapes_lut() -> np.ndarray:
    table = {i: VOID for i in range(CITYSCAPES_MAX_ID + 1)}
    table.update({k: CLASS_ID[v] for k, v in CITYSCAPES_TO_CAMVID.items()})
    return _lut_from(table)


# ---------------------------------------------------------------- layouts


def _match(images: list[Path], masks: list[Path], key_image: Callable[[Path], str],
           key_mask: Callable[[Path], str], mask_dir: Path) -> tuple[list[_Pair], list[tuple[str, str]]]:
    """Pair files by key; unpaired files are problems naming the file and the missing partner."""
    by_mask = {key_mask(m): m for m in masks}
    by_image = {key_image(p): p for p in images}
    pairs, problems = [], []
    for key, img in by_image.items():
        if key in by_mask:
            pairs.append(_Pair(Path(key).name, img, by_mask[key]))
        else:
            problems.append((str(img), f"missing partner: no label mask for it in {mask_dir}"))
    for key, m in by_mask.items():
        if key not in by_image:
            problems.append((str(m), "missing partner: label mask without an image"))
    return pairs, problems


class CamVidFormat:
    """SegNet layout: `<split>/` images and `<split>annot/` masks with the same basenames."""

    name = "camvid"

    def splits(self, root: Path) -> list[str]:
        found = [p.name for p in sorted(root.iterdir()) if p.is_dir() and (root / f"{p.name}annot").is_dir()]
        order = {"train": 0, "val": 1, "test": 2}
        return sorted(found, key=lambda s: (order.get(s, 3), s))

    def pairs(self, root: Path, split: str | None) -> tuple[list[_Pair], list[tuple[str, str]]]:
        split = split or "val"
        img_dir, mask_dir = root / split, root / f"{split}annot"
        if not img_dir.is_dir() or not mask_dir.is_dir():
            raise DatasetError(f"{root}: camvid split {split!r} needs folders {split}/ and {split}annot/; "
                               f"available splits: {self.splits(root)}")
        return _match(list_images(img_dir), list_images(mask_dir), lambda p: p.stem, lambda p: p.stem, mask_dir)

    def lut(self) -> np.ndarray:
        return _identity_lut()


class CityscapesFormat:
    """`leftImg8bit/<split>/<city>/*_leftImg8bit.*` + `gtFine/<split>/<city>/*_gtFine_labelIds.png`."""

    name = "cityscapes"
    image_suffix = "_leftImg8bit"
    mask_suffix = "_gtFine_labelIds"

    def splits(self, root: Path) -> list[str]:
        img_root, gt_root = root / "leftImg8bit", root / "gtFine"
        if not img_root.is_dir():
            return []
        return [p.name for p in sorted(img_root.iterdir()) if p.is_dir() and (gt_root / p.name).is_dir()]

    def _files(self, folder: Path, suffix: str) -> list[Path]:
        if not folder.is_dir():
            raise DatasetError(f"{folder}: folder not found")
        files = sorted(p for p in folder.rglob(f"*{suffix}.*")
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and p.stem.endswith(suffix))
        if not files:
            raise DatasetError(f"{folder}: empty folder (no *{suffix} image files)")
        return files

    def pairs(self, root: Path, split: str | None) -> tuple[list[_Pair], list[tuple[str, str]]]:
        split = split or "val"
        img_dir, mask_dir = root / "leftImg8bit" / split, root / "gtFine" / split
        if not img_dir.is_dir() or not mask_dir.is_dir():
            raise DatasetError(f"{root}: cityscapes split {split!r} needs leftImg8bit/{split}/ and "
                               f"gtFine/{split}/; available splits: {self.splits(root)}")
        images = self._files(img_dir, self.image_suffix)
        masks = self._files(mask_dir, self.mask_suffix)

        def key(base: Path, suffix: str) -> Callable[[Path], str]:
            return lambda p: str(p.relative_to(base).with_name(p.stem[: -len(suffix)]))

        return _match(images, masks, key(img_dir, self.image_suffix), key(mask_dir, self.mask_suffix), mask_dir)

    def lut(self) -> np.ndarray:
        return _cityscapes_lut()


class FolderFormat:
    """`[<split>/]images/` + `[<split>/]masks/`, partners matched by file stem."""

    name = "folder"

    def splits(self, root: Path) -> list[str]:
        return [p.name for p in sorted(root.iterdir())
                if p.is_dir() and (p / "images").is_dir() and (p / "masks").is_dir()]

    def pairs(self, root: Path, split: str | None) -> tuple[list[_Pair], list[tuple[str, str]]]:
        base = root / split if split else root
        if split and not base.is_dir():
            raise DatasetError(f"{root}: folder split {split!r} not found; available splits: {self.splits(root)}")
        img_dir, mask_dir = base / "images", base / "masks"
        return _match(list_images(img_dir), list_images(mask_dir), lambda p: p.stem, lambda p: p.stem, mask_dir)

    def lut(self) -> np.ndarray:
        # without a mapping file the masks must already hold taxonomy ids
        return _identity_lut()


FORMATS: dict[str, Any] = {f.name: f for f in (CamVidFormat(), CityscapesFormat(), FolderFormat())}


def _format(fmt: str) -> Any:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise DatasetError(f"unknown dataset format {fmt!r}; choose one of {sorted(FORMATS)}") from None


def detect_format(root: str | Path) -> str:
    """Guess the format of a dataset folder (camvid, cityscapes or folder)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    if (root / "leftImg8bit").is_dir():
        return "cityscapes"
    if any((root / f"{s}annot").is_dir() for s in ("train", "val", "test")):
        return "camvid"
    if (root / "images").is_dir() or FolderFormat().splits(root):
        return "folder"
    raise DatasetError(f"{root}: cannot tell the dataset format (expected camvid train/ + trainannot/, "
                       f"cityscapes leftImg8bit/ + gtFine/, or images/ + masks/)")


def available_splits(root: str | Path, fmt: str) -> list[str]:
    """Splits present in a dataset folder (e.g. ['train', 'val'] for our CamVid copy)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    return _format(fmt).splits(root)


# ---------------------------------------------------------------- loading


def _load_one(pair: _Pair, lut: np.ndarray, height: int, width: int, fit: str = "squash",
              ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    image = read_image(pair.image)
    raw = read_mask(pair.mask)
    check_same_size(image, raw, pair.image, pair.mask)
    ids = map_labels(raw, lut, pair.mask)
    return fit_frame(image, ids, height, width, fit)


def _workers() -> int:
    # decoding PNGs releases the GIL; a couple of threads is enough on a small machine
    return max(1, min(4, len(os.sched_getaffinity(0))))


def count_pairs(root: str | Path, fmt: str, split: str | None) -> int:
    """Image/mask pairs of one split (before validation): what `load_split` would read without a limit."""
    return len(_format(fmt).pairs(Path(root), split)[0])


def load_split(root: str | Path, fmt: str, split: str | None, height: int, width: int,
               mapping: str | Path | dict | None = None, skip_bad: bool = False, fit: str = "squash",
               limit: int | None = None) -> LabelledSet:
    """Import one split, validated, resized to `height` x `width`, ids mapped to the taxonomy.

    Args:
        root: dataset folder.
        fmt: camvid | cityscapes | folder.
        split: split name (e.g. train, val, test); None = val for camvid/cityscapes and the flat
            `images/` + `masks/` layout for folder.
        height, width: working resolution (images bilinear, masks nearest).
        mapping: label mapping file or dict (source id -> class name, id or "void"); overrides the
            format's own mapping.
        skip_bad: skip invalid files (listed in `skipped`) instead of failing.
        fit: squash | pad | window: how a frame of another aspect becomes working-size samples
            (`sim2real.real.aspect`); window gives several samples per frame, named `<stem>@x<offset>`.
        limit: read only the first `limit` image/mask pairs in name order (the rest are not decoded);
            None = all. With skip_bad an invalid one among them leaves fewer.

    Returns:
        LabelledSet sorted by name.

    Raises:
        DatasetError: naming the file(s), for any invalid file (unless skip_bad), an empty or
            missing folder, or when nothing valid is left.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    layout = _format(fmt)
    lut = load_mapping(mapping)
    if lut is None:
        lut = layout.lut()
    pairs, problems = layout.pairs(root, split)
    pairs = sorted(pairs, key=lambda p: p.name)[:limit]
    where = f"{root} [{fmt}:{split or 'all'}]"
    images, masks, names, sources = [], [], [], []

    def job(pair: _Pair) -> list[tuple[str, np.ndarray, np.ndarray]] | DatasetError:
        try:
            return _load_one(pair, lut, height, width, fit)
        except DatasetError as err:
            return err

    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        results = pool.map(job, pairs)
        for pair, res in Progress(zip(pairs, results, strict=True), total=len(pairs),
                                  desc=f"import {fmt}:{split or 'all'}", unit="img"):
            if isinstance(res, DatasetError):
                path, _, reason = str(res).partition(": ")
                problems.append((path, reason))
                continue
            for suffix, image, ids in res:
                images.append(image)
                masks.append(ids)
                names.append(pair.name + suffix)
                sources.append(str(pair.image.relative_to(root)))
    if problems and not skip_bad:
        listed = "\n".join(f"  {p}: {r}" for p, r in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise DatasetError(f"{where}: {len(problems)} invalid file(s) (set real.skip_bad=true to skip "
                           f"them):\n{listed}{more}")
    if not names:
        raise DatasetError(f"{where}: no valid image/mask pairs left ({len(problems)} skipped)")
    return LabelledSet(np.stack(images), np.stack(masks).astype(np.uint8), names, sources, problems)


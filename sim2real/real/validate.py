"""Checks on real-data files and arrays: every problem is an error that names the file.

Reading goes through PIL with truncated-image loading off, so a cut-off PNG/JPEG is an error here
rather than a silently grey image later.

Example:
    >>> image = read_image(Path("train/0001TP_006690.png"))      # (H, W, 3) uint8
    >>> ids = map_labels(read_mask(Path("trainannot/0001TP_006690.png")), lut, path)
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from sim2real.taxonomy import VOID

# unknown source ids in a lookup table (anything above 255 cannot occur in a uint8 LUT)
UNKNOWN = 255
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# PIL modes that decode to one channel of integer ids (P = palette indices, which are the ids)
MASK_MODES = ("L", "P", "I", "I;16", "I;16B", "I;16L")


class DatasetError(ValueError):
    """A real-data file or folder that cannot be imported; the message names it."""


def _open(path: Path) -> Image.Image:
    # A cut-off file must fail, never decode into a half-grey picture.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            img.load()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as err:
        raise DatasetError(f"{path}: unreadable or truncated image ({err})") from None
    return img


def read_image(path: Path) -> np.ndarray:
    """Read an RGB image as (H, W, 3) uint8.

    Args:
        path: image file (PNG, JPEG, ...). 8-bit RGB only; grey, RGBA, CMYK and 16-bit images are
            rejected (a wrong channel count is usually a mask or a depth map in the wrong folder).

    Raises:
        DatasetError: naming `path`, when it is unreadable, truncated or not 3-channel RGB.
    """
    img = _open(path)
    if img.mode != "RGB":
        bands = len(img.getbands())
        raise DatasetError(f"{path}: expected an RGB image with 3 channels, got mode {img.mode!r} "
                           f"with {bands} channel{'s' if bands != 1 else ''}")
    return np.asarray(img, dtype=np.uint8)


def read_mask(path: Path) -> np.ndarray:
    """Read a label mask as (H, W) integer ids (palette PNGs give their indices).

    Raises:
        DatasetError: naming `path`, when unreadable/truncated or not single-channel (colour-coded
            RGB masks are not label ids; convert them to ids first).
    """
    img = _open(path)
    if img.mode not in MASK_MODES:
        bands = len(img.getbands())
        raise DatasetError(f"{path}: expected a single-channel label mask, got mode {img.mode!r} with "
                           f"{bands} channels (colour-coded masks are not label ids)")
    arr = np.asarray(img)
    if arr.ndim != 2:
        raise DatasetError(f"{path}: expected a 2-D label mask, got shape {arr.shape}")
    return arr


def check_same_size(image: np.ndarray, mask: np.ndarray, image_path: Path, mask_path: Path) -> None:
    """Image and mask must have the same height and width before any resizing."""
    if image.shape[:2] != mask.shape[:2]:
        raise DatasetError(f"{mask_path}: mask size {mask.shape[1]}x{mask.shape[0]} (WxH) differs from its "
                           f"image {image_path.name} at {image.shape[1]}x{image.shape[0]}")


def map_labels(mask: np.ndarray, lut: np.ndarray, path: Path) -> np.ndarray:
    """Map source label ids to taxonomy ids 0..10 / void 11 through a 256-entry lookup table.

    Args:
        mask: (H, W) source ids.
        lut: (256,) uint8; UNKNOWN (255) marks ids that have no mapping.
        path: the mask file, for the error message.

    Raises:
        DatasetError: naming `path` and the offending values, when an id is unknown.
    """
    if mask.size and (int(mask.min()) < 0 or int(mask.max()) > 255):
        bad = np.unique(mask[(mask < 0) | (mask > 255)])[:10]
        raise DatasetError(f"{path}: unknown label values {bad.tolist()} (no mapping for them)")
    out = lut[mask.astype(np.intp)]
    if (out == UNKNOWN).any():
        bad = np.unique(mask[out == UNKNOWN])[:10]
        raise DatasetError(f"{path}: unknown label values {bad.tolist()} (no mapping for them)")
    return out


def validate_arrays(images: np.ndarray, masks: np.ndarray, what: str) -> None:
    """Check an in-memory split before it is written (shape, dtype, ids, non-empty).

    Raises:
        DatasetError: naming `what` (a split or folder).
    """
    if len(images) == 0:
        raise DatasetError(f"{what}: no images")
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise DatasetError(f"{what}: images must be (N, H, W, 3) uint8, got {images.shape} {images.dtype}")
    if masks.shape != images.shape[:3] or masks.dtype != np.uint8:
        raise DatasetError(f"{what}: masks must be (N, H, W) uint8 matching the images, got {masks.shape} "
                           f"{masks.dtype}")
    if int(masks.max()) > VOID:
        raise DatasetError(f"{what}: mask ids must be 0..{VOID}, found {int(masks.max())}")


def list_images(folder: Path) -> list[Path]:
    """Image files in `folder`, sorted by name (hidden files skipped).

    Raises:
        DatasetError: when the folder is missing or holds no images.
    """
    if not folder.is_dir():
        raise DatasetError(f"{folder}: folder not found")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"{folder}: empty folder (no image files with suffix {', '.join(IMAGE_SUFFIXES)})")
    return files

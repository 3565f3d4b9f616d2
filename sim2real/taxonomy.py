"""The CamVid 11-class taxonomy every dataset is mapped into (11 = void, ignored)."""

from __future__ import annotations

import numpy as np

CLASSES: tuple[str, ...] = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree",
    "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
)
NUM_CLASSES = len(CLASSES)
VOID = 11
CLASS_ID = {name: i for i, name in enumerate(CLASSES)}

# SegNet display colours (RGB), void black
PALETTE = np.array(
    [
        (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
        (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
        (0, 128, 192), (0, 0, 0),
    ],
    dtype=np.uint8,
)

# CamVid train class pixel frequencies (% of all pixels, void included), from the dataset README
CAMVID_TRAIN_FREQ = {
    "Sky": 16.85, "Building": 23.26, "Pole": 0.98, "Road": 31.66, "Pavement": 4.49, "Tree": 9.72,
    "SignSymbol": 1.17, "Fence": 1.13, "Car": 5.87, "Pedestrian": 0.64, "Bicyclist": 0.29,
}


def colorize(mask: np.ndarray) -> np.ndarray:
    """Label mask (H, W) with ids 0..11 -> RGB image (H, W, 3) in the SegNet palette."""
    return PALETTE[np.clip(mask, 0, VOID)]


def class_histogram(masks: np.ndarray) -> np.ndarray:
    """Pixel counts per id 0..11 over any array of label ids."""
    return np.bincount(np.asarray(masks, dtype=np.int64).ravel(), minlength=VOID + 1)[: VOID + 1]

"""Photo textures for surfaces: scikit-image's bundled samples and an optional user folder.

Nothing is downloaded: `skimage.data.brick/gravel/grass` ship inside the installed package.
Textures are kept as luminance detail maps (mean 1) that modulate the procedural colours, so
photos add real-world micro-structure while palettes stay under the randomization knobs.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch

SIZE = 256  # texels per side: a power of two (lookup wraps with a bit mask)
BUILTIN = ("brick", "gravel", "grass")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _detail(gray: np.ndarray) -> np.ndarray:
    g = cv2.resize(gray.astype(np.float32), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    g = g / max(float(g.mean()), 1e-6)
    # keep the structure, bound the contrast (a photo must not overpower the palette)
    return np.clip(1.0 + (g - 1.0) * 0.8, 0.3, 1.8).astype(np.float32)


class TextureBank:
    """Luminance detail maps (T, SIZE, SIZE); ids 0..2 are brick, gravel, grass, then user photos."""

    def __init__(self, maps: np.ndarray, names: list[str]):
        self.maps = maps
        self.names = names
        self._dev: dict[str, torch.Tensor] = {}

    @classmethod
    @lru_cache(maxsize=1)
    def default(cls) -> TextureBank:
        return cls.load(None)

    @classmethod
    def load(cls, folder: str | Path | None) -> TextureBank:
        """Bundled samples plus every image in `folder` (if given)."""
        from skimage import data

        maps, names = [], []
        for name in BUILTIN:
            img = getattr(data, name)()
            gray = img if img.ndim == 2 else img[..., :3].mean(-1)
            maps.append(_detail(gray))
            names.append(name)
        if folder is not None:
            folder = Path(folder)
            if not folder.is_dir():
                raise FileNotFoundError(f"synthetic.texture_dir: {folder} is not a folder")
            for p in sorted(folder.iterdir()):
                if p.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
                if img is None:
                    raise ValueError(f"synthetic.texture_dir: cannot read image {p}")
                maps.append(_detail(img))
                names.append(p.name)
        return cls(np.stack(maps), names)

    def __len__(self) -> int:
        return len(self.maps)

    def on(self, device: torch.device) -> torch.Tensor:
        key = str(device)
        if key not in self._dev:
            self._dev[key] = torch.as_tensor(self.maps, device=device).reshape(-1)
        return self._dev[key]

    def lookup(self, tex_id: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Detail value at texture coordinates (u, v) in texture tiles (wraps), nearest texel."""
        flat = self.on(u.device)
        # & (SIZE - 1) is the remainder mod SIZE (a power of two) for negative values too; index_select on
        # the flat index, as in noise._lookup, instead of advanced indexing
        iu = torch.floor(u * SIZE).long() & (SIZE - 1)
        iv = torch.floor(v * SIZE).long() & (SIZE - 1)
        tid = torch.remainder(tex_id.long(), len(self))
        idx = tid * (SIZE * SIZE) + iv * SIZE + iu
        return flat.index_select(0, idx.reshape(-1)).reshape(idx.shape)

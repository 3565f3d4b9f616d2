"""Deterministic procedural noise: precomputed tileable tables, looked up by integer coordinates.

Every value is a pure function of (coordinates, seed) computed with exact operations (floor,
integer arithmetic, gathers), so rendering a scene alone or inside a batch gives the same bytes
(on CPU or GPU: the noise itself; see `render.py` for the square roots around it). The tables are built once from a fixed numpy seed; a scene's seed shifts the
lookup window, so different seeds see different noise. Smooth noise has a period of 64 lattice
units, far larger than any surface feature it textures.
"""

from __future__ import annotations

import numpy as np
import torch

_SIZE = 512  # texels per table side
_RES = 8  # texels per lattice unit (smooth noise)
_CELLS = _SIZE // _RES
_MASK = _SIZE - 1


def _build() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20240611)
    white = rng.random((_SIZE, _SIZE))
    t = (np.arange(_SIZE) + 0.5) / _RES

    def octave(cells: int) -> np.ndarray:
        # tileable value noise on a `cells` lattice, smoothstep interpolation
        lat = rng.random((cells, cells))
        x = t * cells / _CELLS
        i0 = np.floor(x).astype(int) % cells
        i1 = (i0 + 1) % cells
        f = x - np.floor(x)
        s = f * f * (3 - 2 * f)
        rows = lat[i0][:, i0] * (1 - s)[None, :] + lat[i0][:, i1] * s[None, :]
        rows1 = lat[i1][:, i0] * (1 - s)[None, :] + lat[i1][:, i1] * s[None, :]
        return rows * (1 - s)[:, None] + rows1 * s[:, None]

    o = [octave(_CELLS * 2 ** k) for k in range(4)]
    tables = {"white": white, "value": o[0]}
    for n in (2, 3, 4):
        amps = [0.5 ** k for k in range(n)]
        tables[f"fbm{n}"] = sum(a * oc for a, oc in zip(amps, o, strict=False)) / sum(amps)
    return {k: v.astype(np.float32).reshape(-1) for k, v in tables.items()}


_TABLES = _build()
_ON: dict[tuple[str, str], torch.Tensor] = {}


def _table(name: str, device: torch.device) -> torch.Tensor:
    key = (name, str(device))
    if key not in _ON:
        _ON[key] = torch.as_tensor(_TABLES[name], device=device)
    return _ON[key]


def _window(ix: torch.Tensor, iy: torch.Tensor, seed: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
    """Table column and row (int32, wrapped) of lattice point (ix, iy) under `seed`."""
    # wrap to the table first (exact: & keeps the low bits), then the cheap int32 arithmetic
    # (several times faster than int64 ops on CPU)
    ix = (ix & _MASK).to(torch.int32)
    iy = (iy & _MASK).to(torch.int32)
    if isinstance(seed, torch.Tensor):
        seed = (seed & 0x3FFFF).to(torch.int32)
    return (ix + (seed & _MASK)) & _MASK, (iy + ((seed >> 9) & _MASK)) & _MASK


def _gather(name: str, idx: torch.Tensor) -> torch.Tensor:
    # index_select on the flat table: several times faster than advanced indexing on CPU
    return _table(name, idx.device).index_select(0, idx.reshape(-1)).reshape(idx.shape)


def _lookup(name: str, ix: torch.Tensor, iy: torch.Tensor, seed: torch.Tensor | int) -> torch.Tensor:
    col, row = _window(ix, iy, seed)
    return _gather(name, row * _SIZE + col)


def _corners(name: str, ix: torch.Tensor, iy: torch.Tensor, seed: torch.Tensor | int) -> torch.Tensor:
    """`_lookup` at (ix, iy), (ix + 1, iy), (ix, iy + 1), (ix + 1, iy + 1), stacked: one window and one
    gather instead of four (the same values: the table wraps, so the neighbour of a wrapped column is
    the wrapped neighbour)."""
    col, row = _window(ix, iy, seed)
    col1 = (col + 1) & _MASK
    row0 = row * _SIZE
    row1 = ((row + 1) & _MASK) * _SIZE
    return _gather(name, torch.stack([row0 + col, row0 + col1, row1 + col, row1 + col1]))


def hash2(ix: torch.Tensor, iy: torch.Tensor, seed: torch.Tensor | int) -> torch.Tensor:
    """Integer lattice hash -> float32 in [0, 1) (white noise; period 512 per axis).

    Args:
        ix, iy: int64 tensors (any shape, broadcastable).
        seed: int or int64 tensor broadcastable to ix (seeds differing mod 2^18 differ).
    """
    return _lookup("white", ix, iy, seed)


def white_window(rows: torch.Tensor, width: int, seed: int) -> torch.Tensor:
    """`hash2` over a grid: out[i, j] = hash2(j, rows[i], seed) for columns j = 0..width-1, as a gather of
    table rows and a slice of columns instead of an index per element (the same values).

    Args:
        rows: 1-D int64 lattice coordinates.
        width: number of columns.
        seed: int.
    """
    seed = seed & 0x3FFFF
    sx, sy = seed & _MASK, (seed >> 9) & _MASK
    picked = _table("white", rows.device).view(_SIZE, _SIZE).index_select(0, (rows + sy) & _MASK)
    if sx + width <= _SIZE:  # the window does not wrap: a view
        return picked[:, sx:sx + width]
    return picked.index_select(1, (torch.arange(width, device=rows.device) + sx) & _MASK)


def _smooth(name: str, x: torch.Tensor, y: torch.Tensor, seed: torch.Tensor | int,
            bilinear: bool = False) -> torch.Tensor:
    fx = torch.floor(x * _RES)
    fy = torch.floor(y * _RES)
    ix, iy = fx.long(), fy.long()
    if not bilinear:  # nearest texel: 1/8 lattice unit, fine for texture detail
        return _lookup(name, ix, iy, seed)
    # bilinear: for coarse noise that gets thresholded (patches, puddles) and must not look blocky
    tx, ty = x * _RES - fx, y * _RES - fy
    a, b, c, d = _corners(name, ix, iy, seed)
    top = a + (b - a) * tx
    bot = c + (d - c) * tx
    return top + (bot - top) * ty


def value_noise(x: torch.Tensor, y: torch.Tensor, seed: torch.Tensor | int, bilinear: bool = False) -> torch.Tensor:
    """Smooth value noise in [0, 1) at float coordinates (lattice spacing 1)."""
    return _smooth("value", x, y, seed, bilinear)


def fbm(x: torch.Tensor, y: torch.Tensor, seed: torch.Tensor | int, octaves: int = 3,
        bilinear: bool = False) -> torch.Tensor:
    """Fractal noise (1-4 octaves, lattice spacing 1 for the first), in [0, 1), mean ~0.5."""
    if octaves <= 1:
        return value_noise(x, y, seed, bilinear)
    return _smooth(f"fbm{min(octaves, 4)}", x, y, seed, bilinear)

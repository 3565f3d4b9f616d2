"""Deterministic procedural noise from integer hashing (exact on any device and batch size).

Every value is a pure function of (coordinates, seed) built from integer ops and exact float
arithmetic (no transcendental functions), so rendering a scene alone or inside a batch, on CPU or
GPU, gives the same bytes.
"""

from __future__ import annotations

import torch

_M32 = 0xFFFFFFFF


def hash2(ix: torch.Tensor, iy: torch.Tensor, seed: torch.Tensor | int) -> torch.Tensor:
    """Integer lattice hash -> float32 in [0, 1).

    Args:
        ix, iy: int64 tensors (any shape, broadcastable).
        seed: int or int64 tensor broadcastable to ix.
    """
    h = (ix * 374761393 + iy * 668265263 + seed * 2246822519) & _M32
    h = ((h ^ (h >> 13)) * 1274126177) & _M32
    h = h ^ (h >> 16)
    return (h & 0xFFFFFF).to(torch.float32) * (1.0 / 16777216.0)


def value_noise(x: torch.Tensor, y: torch.Tensor, seed: torch.Tensor | int) -> torch.Tensor:
    """Smooth value noise in [0, 1) at float coordinates (lattice spacing 1)."""
    fx = torch.floor(x)
    fy = torch.floor(y)
    ix = fx.to(torch.int64)
    iy = fy.to(torch.int64)
    tx = x - fx
    ty = y - fy
    # smoothstep written as plain products (no fused ops: identical in SIMD and scalar paths)
    sx = tx * tx * (3.0 - 2.0 * tx)
    sy = ty * ty * (3.0 - 2.0 * ty)
    a = hash2(ix, iy, seed)
    b = hash2(ix + 1, iy, seed)
    c = hash2(ix, iy + 1, seed)
    d = hash2(ix + 1, iy + 1, seed)
    top = a + (b - a) * sx
    bot = c + (d - c) * sx
    return top + (bot - top) * sy


def fbm(x: torch.Tensor, y: torch.Tensor, seed: torch.Tensor | int, octaves: int = 3) -> torch.Tensor:
    """Fractal sum of value noise, roughly in [0, 1), mean ~0.5."""
    total = torch.zeros_like(x)
    amp, norm, freq = 0.5, 0.0, 1.0
    for k in range(octaves):
        total = total + amp * value_noise(x * freq, y * freq, seed + 1013 * k)
        norm += amp
        amp *= 0.5
        freq *= 2.0
    return total * (1.0 / norm)

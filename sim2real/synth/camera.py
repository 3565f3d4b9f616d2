"""The simulated camera: exposure, white balance, saturation, vignette, blur, noise, JPEG."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sim2real.synth.noise import hash2
from sim2real.synth.render import blur, gaussian_weights, jpeg_roundtrip


def apply_camera(img: torch.Tensor, scenes: list[dict[str, Any]]) -> np.ndarray:
    """Linear scene colours (N, 3, H, W) -> uint8 NHWC images as the scene's sensor records them."""
    n, _, h, w = img.shape
    dev = img.device
    sen = [s["sensor"] for s in scenes]

    def col(fn) -> torch.Tensor:
        return torch.as_tensor(np.array([fn(s) for s in sen], np.float64).astype(np.float32), device=dev)

    gain = col(lambda s: [s["exposure"] * g for g in s["wb"]]).view(n, 3, 1, 1)
    x = img * gain
    sat = col(lambda s: s["saturation"]).view(n, 1, 1, 1)
    grey = (x[:, 0:1] + x[:, 1:2] + x[:, 2:3]) * (1.0 / 3.0)
    x = grey + (x - grey) * sat
    vv, uu = torch.meshgrid(torch.arange(h, device=dev, dtype=torch.float32),
                            torch.arange(w, device=dev, dtype=torch.float32), indexing="ij")
    ru = (uu + 0.5 - w / 2) / (w / 2)
    rv = (vv + 0.5 - h / 2) / (h / 2)
    r2 = (ru * ru + rv * rv) * 0.5
    vig = col(lambda s: s["vignette"]).view(n, 1, 1, 1)
    x = x * (1.0 - vig * r2)
    # soft highlight roll-off instead of hard clipping (real sensors/tone curves compress highlights)
    x = torch.clamp(x, min=0.0)
    x = torch.where(x > 0.8, 0.8 + (x - 0.8) / (1.0 + (x - 0.8) * 2.5), x)
    # optics: Gaussian blur, sigma given at 360x480 and scaled to this size
    taps = np.stack([gaussian_weights(s["blur"] * h / 360.0) for s in sen]).astype(np.float32)
    if (taps[:, taps.shape[1] // 2] < 1.0).any():
        x = blur(x, torch.as_tensor(taps, device=dev))
    # sensor noise: triangular (sum of two uniforms), per pixel and channel, seeded by the scene
    std = col(lambda s: s["noise"]).view(n, 1, 1, 1)
    seeds = torch.as_tensor([int(s["seed"]) for s in sen], device=dev, dtype=torch.long).view(n, 1, 1, 1)
    ch = torch.arange(3, device=dev, dtype=torch.long).view(1, 3, 1, 1)
    col_i = uu.long().view(1, 1, h, w)
    row_i = vv.long().view(1, 1, h, w) * 3 + ch
    nz = hash2(col_i, row_i, seeds) + hash2(col_i, row_i, seeds + 100003) - 1.0
    x = x + nz * (std * 2.449)
    x = torch.clamp(x, 0.0, 1.0)
    out = torch.floor(x * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()
    for i, s in enumerate(sen):
        out[i] = jpeg_roundtrip(out[i], int(s["jpeg"]))
    return out

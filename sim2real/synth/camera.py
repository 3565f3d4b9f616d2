"""The simulated camera: exposure, white balance, saturation, vignette, blur, noise, JPEG.

The last step of rendering: `apply_camera` turns the linear scene colours that shading returns into
the uint8 images the scene's sensor records. The image filters it uses (Gaussian taps, separable
blur, JPEG round trip) live here too; this module imports nothing else of the generator but noise and
its compiled CPU kernels (`kernels.camera`, the same bytes as the torch chain here).
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from sim2real.synth import kernels
from sim2real.synth import noise as N
from sim2real.synth.noise import white_window

SENSOR_ROWS = 360  # the rows the sensor parameters are given at: CamVid's 360x480 frames


def footprint(s: dict[str, Any], h: int) -> tuple[float, float]:
    """(blur sigma in pixels at `h` rows, noise factor) of sensor `s` rendered at `h` rows.

    Real frames reach the model shrunk from the camera's 360 rows (PIL bilinear, `real.aspect`): each
    working-size pixel averages several sensor pixels, so edges and textures are softer and the sensor
    noise weaker than a sensor of the working size would record. A renderer that samples the working size
    directly gave about twice the real frames' fine detail at 128x160 (the mean absolute difference to a
    3x3 box mean: 9.4 against 4.9). With `footprint` = k, the optical blur (given at 360 rows) gets a
    Gaussian of k * sqrt(1 - (h/360)^2) pixels added in quadrature and the noise is scaled by h/360.
    k = 0.57 (0.53 pixel at 128 rows, 0.40 at 256) gives the fine detail of CamVid's val frames at both
    sizes: 4.84 against 4.92 at 128x160, 4.29 against 4.29 at 256x320. It did not raise source-only mIoU
    at 128x160 (three seeds, `docs/generator_camvid.md`), so the default is 0: the working size is the
    sensor, as before (scenes sampled before the key existed have none).
    """
    k = float(s.get("footprint", 0.0))
    rel = h / SENSOR_ROWS
    optical = s["blur"] * h / SENSOR_ROWS  # the same float as before the footprint existed
    if k <= 0.0 or rel >= 1.0:
        return optical, 1.0
    return math.sqrt(optical * optical + k * k * (1.0 - rel * rel)), rel


def gaussian_weights(sigma: float, radius: int = 3) -> np.ndarray:
    """Normalised 1-D Gaussian taps (float64); a delta for tiny sigma."""
    k = np.arange(-radius, radius + 1, dtype=np.float64)
    if sigma < 0.25:
        return (k == 0).astype(np.float64)
    wts = np.exp(-(k ** 2) / (2 * sigma ** 2))
    return wts / wts.sum()


def blur(img: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Separable blur of (N, 3, H, W) with per-image taps (N, K), as exact shifted sums."""
    k = weights.shape[1]
    r = k // 2
    x = F.pad(img, (r, r, 0, 0), mode="replicate")
    out = torch.zeros_like(img)
    wdt = img.shape[-1]
    for i in range(k):
        out += weights[:, i].view(-1, 1, 1, 1) * x[..., i:i + wdt]
    x = F.pad(out, (0, 0, r, r), mode="replicate")
    out = torch.zeros_like(img)
    hgt = img.shape[-2]
    for i in range(k):
        out += weights[:, i].view(-1, 1, 1, 1) * x[..., i:i + hgt, :]
    return out


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode/decode one uint8 RGB image as JPEG (libjpeg is deterministic); 100 = unchanged."""
    if quality >= 100:
        return img
    ok, buf = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]


def _camera_torch(img: torch.Tensor, gain: torch.Tensor, sat: torch.Tensor, vig: torch.Tensor, taps: np.ndarray,
                  soft: np.ndarray, noise_amp: torch.Tensor, sen: list[dict[str, Any]]) -> np.ndarray:
    """`apply_camera` up to the JPEG step, in torch (any device): uint8 NHWC."""
    n, _, h, w = img.shape
    dev = img.device
    x = img * gain.view(n, 3, 1, 1)
    grey = (x[:, 0:1] + x[:, 1:2] + x[:, 2:3]) * (1.0 / 3.0)
    x = grey + (x - grey) * sat
    vv, uu = torch.meshgrid(torch.arange(h, device=dev, dtype=torch.float32),
                            torch.arange(w, device=dev, dtype=torch.float32), indexing="ij")
    ru = (uu + 0.5 - w / 2) / (w / 2)
    rv = (vv + 0.5 - h / 2) / (h / 2)
    r2 = (ru * ru + rv * rv) * 0.5
    x = x * (1.0 - vig * r2)
    # soft highlight roll-off instead of hard clipping (real sensors/tone curves compress highlights)
    x = torch.clamp(x, min=0.0)
    over = x - 0.8
    x = torch.where(over > 0.0, 0.8 + over / (1.0 + over * 2.5), x)
    blurred = np.nonzero(soft)[0]
    if len(blurred):
        sel = torch.as_tensor(blurred, device=dev)
        x = x.index_copy(0, sel, blur(x.index_select(0, sel), torch.as_tensor(taps[blurred], device=dev)))
    # hash2(column, row * 3 + channel, seed): a window of the white-noise table per image
    rows = (torch.arange(h, device=dev).view(1, h) * 3 + torch.arange(3, device=dev).view(3, 1)).reshape(-1)
    nz = torch.stack([white_window(rows, w, int(s["seed"])) + white_window(rows, w, int(s["seed"]) + 100003)
                      for s in sen]).view(n, 3, h, w) - 1.0
    x = x + nz * noise_amp
    x = torch.clamp(x, 0.0, 1.0)
    return torch.floor(x * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()


def apply_camera(img: torch.Tensor, scenes: list[dict[str, Any]]) -> np.ndarray:
    """Linear scene colours (N, 3, H, W) -> uint8 NHWC images as the scene's sensor records them."""
    n, _, h, w = img.shape
    dev = img.device
    sen = [s["sensor"] for s in scenes]

    def col(fn) -> torch.Tensor:
        return torch.as_tensor(np.array([fn(s) for s in sen], np.float64).astype(np.float32), device=dev)

    gain = col(lambda s: [s["exposure"] * g for g in s["wb"]])
    sat, vig = col(lambda s: s["saturation"]), col(lambda s: s["vignette"])
    # optics: Gaussian blur, sigma given at 360x480 and scaled to this size, and the pixel footprint
    taps = np.stack([gaussian_weights(footprint(s, h)[0]) for s in sen]).astype(np.float32)
    soft = taps[:, taps.shape[1] // 2] < 1.0  # the images whose taps are not a delta (the identity)
    # sensor noise: triangular (sum of two uniforms), per pixel and channel, seeded by the scene
    noise_amp = col(lambda s: s["noise"] * footprint(s, h)[1]) * 2.449
    if kernels.enabled(dev):  # the same bytes as the torch chain below
        out = np.empty((n, h, w, 3), np.uint8)
        kernels.camera(img.contiguous().numpy(), gain.numpy(), sat.numpy(), vig.numpy(), taps, soft,
                       noise_amp.numpy(), np.array([int(s["seed"]) for s in sen], np.int64), N._TABLES["white"],
                       np.empty((3, h, w), np.float32), np.empty((3, h, w), np.float32), out)
    else:
        out = _camera_torch(img, gain, sat.view(n, 1, 1, 1), vig.view(n, 1, 1, 1), taps, soft,
                            noise_amp.view(n, 1, 1, 1), sen)
    for i, s in enumerate(sen):
        out[i] = jpeg_roundtrip(out[i], int(s["jpeg"]))
    return out


__all__ = ["apply_camera", "blur", "gaussian_weights", "jpeg_roundtrip"]

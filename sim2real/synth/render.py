"""Render sampled scenes: vectorised ray casting of primitives with a per-pixel depth test.

Pipeline (torch on any device; on the CPU the hot passes run as compiled kernels, `kernels.py`, which
give the same bits as the torch code they stand for):
1. per-pixel camera rays from height, pitch, roll, yaw and field of view;
2. every primitive is ray-cast inside its projected bounding box (one flat, ragged batch of
   "elements" over all primitives of all scenes in the chunk), cut-out tests (foliage holes,
   fence bars, sign shapes, wheel rims, skylines) decide visibility;
3. per pixel the nearest hit wins (`scatter_reduce` min: order-independent, hence exact);
4. deferred shading on the winners only: procedural materials, sun/sky lighting, facade shadows;
5. sky with clouds where nothing was hit, haze by distance (`shading.shade`: linear colour and classes);
6. the camera, once, at the end (`camera.apply_camera`): exposure, white balance, saturation,
   vignette, blur, sensor noise, JPEG.

Only deterministic elementwise operations (integer hashing, + - * /, sqrt, min/max, gathers) touch
per-pixel values, and per-scene constants are computed in float64 numpy, so a scene renders to the
same bytes alone or inside any batch. (This torch build's CPU sqrt is a pure function of its input but
not the correctly rounded square root: it differs from it in about one float32 in five. CUDA's need not
be the same function, so the CPU and CUDA renderers are not promised the same last bit of every pixel;
not checked, no GPU has been lent.)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from sim2real.synth import kernels
from sim2real.synth import noise as N
from sim2real.synth import primitives as P
from sim2real.synth.camera import apply_camera
from sim2real.synth.noise import fbm, hash2
from sim2real.synth.shading import RayCast, bars, is_veil, shade
from sim2real.synth.textures import TextureBank

INF = float("inf")
# elements per chunk: bounds memory and keeps the working set near the cache. 400k (6 scenes at 128x160)
# rendered 1.15x faster than 1M on one core (17.5 vs 20.4 ms per scene, 64 scenes, best of 4 rounds)
MAX_ELEMENTS = 400_000
NEAR = 0.1  # near plane (m): geometry closer than this to the camera plane is not drawn


def camera_matrices(cam: dict[str, Any], height: int, width: int) -> tuple[np.ndarray, float, float, float]:
    """Camera-to-world rotation (3x3, float64) and intrinsics (f, cx, cy) in pixels."""
    pitch, roll, yaw = (math.radians(cam[k]) for k in ("pitch", "roll", "yaw"))
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    cy_, sy_ = math.cos(yaw), math.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])  # pitch down: forward -> (0, -sin, cos)
    ry = np.array([[cy_, 0, sy_], [0, 1, 0], [-sy_, 0, cy_]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    rot = ry @ rx @ rz
    f = (width / 2) / math.tan(math.radians(cam["hfov"]) / 2)
    return rot, f, width / 2, height / 2


def _bbox(table: np.ndarray, cams: list[tuple], heights: np.ndarray, h: int, w: int) -> np.ndarray:
    """Projected pixel bounding boxes (u0, v0, bw, bh) per primitive (vectorised); empty when not visible."""
    n = len(table)
    out = np.zeros((n, 4), np.int64)
    if n == 0:
        return out
    scn = table[:, P.SCN].astype(np.int64)
    rot = np.stack([c[0] for c in cams])[scn]  # (P, 3, 3)
    f = np.array([c[1] for c in cams])[scn]
    cx = np.array([c[2] for c in cams])[scn]
    cy = np.array([c[3] for c in cams])[scn]
    hgt = heights[scn]
    t = table.astype(np.float64)
    xs = t[:, [P.X0, P.X1]]
    ys = t[:, [P.Y0, P.Y1]] - hgt[:, None]
    zs = t[:, [P.Z0, P.Z1]].copy()
    # clip each box along world z to the part in front of the camera's near plane, so that facades
    # starting beside/behind the camera still get a tight box
    fwd = rot[:, :, 2]  # camera forward axis in world coordinates
    lateral = np.minimum(fwd[:, 0:1] * xs, fwd[:, 0:1] * xs[:, ::-1]).min(1) + np.minimum(
        fwd[:, 1:2] * ys, fwd[:, 1:2] * ys[:, ::-1]).min(1)
    fz = np.maximum(fwd[:, 2], 1e-6)
    zs[:, 0] = np.maximum(zs[:, 0], (NEAR - lateral) / fz)
    valid = zs[:, 0] <= zs[:, 1]
    corners = np.stack(np.broadcast_arrays(
        xs[:, :, None, None], ys[:, None, :, None], zs[:, None, None, :]), -1).reshape(n, 8, 3)
    pc = np.einsum("pkj,pji->pki", corners, rot)  # world -> camera: R^T p
    pz = pc[..., 2]
    behind = (pz <= NEAR * 0.5).any(1)
    valid &= ~(pz <= NEAR * 0.5).all(1)
    pzs = np.where(pz > NEAR * 0.5, pz, 1.0)
    u = cx[:, None] + f[:, None] * pc[..., 0] / pzs
    v = cy[:, None] - f[:, None] * pc[..., 1] / pzs
    u0 = np.clip(np.floor(u.min(1)) - 1, 0, w)
    u1 = np.clip(np.ceil(u.max(1)) + 1, 0, w)
    v0 = np.clip(np.floor(v.min(1)) - 1, 0, h)
    v1 = np.clip(np.ceil(v.max(1)) + 1, 0, h)
    out[:, 0], out[:, 1] = u0, v0
    out[:, 2], out[:, 3] = np.maximum(u1 - u0, 0), np.maximum(v1 - v0, 0)
    out[behind] = (0, 0, w, h)  # straddles the camera plane: test the whole frame
    out[~valid] = 0
    # the ground: rows from just above the horizon (its vanishing line) down, all columns
    for i in np.nonzero(t[:, P.KIND] == P.K_GROUND)[0]:
        far = np.array([[-1e5, 0, 1e6], [1e5, 0, 1e6], [0, 0, 1e6]]) - np.array([0, hgt[i], 0])
        pcg = far @ rot[i]
        vg = cy[i] - f[i] * pcg[:, 1] / pcg[:, 2]
        top = int(np.clip(np.floor(vg.min()) - 1, 0, h))
        out[i] = (0, top, w, h - top)
    return out


# depths (m) where planes along the street are cut for ray casting: a facade 6-28 m long projects to a
# trapezoid that fills a third of its bounding box. Cut at every doubling of depth, each piece fills
# most of its own box: these planes cast 0.74 instead of 1.31 elements per pixel at 128x160 (finer cuts
# add more box padding than they save: 0.87 at every factor 2^(1/4))
SPLIT_Z = 2.0 * 2.0 ** np.arange(9)  # 2 m .. 512 m


def _split_along_street(table: np.ndarray) -> np.ndarray:
    """Planes x = const (facades, tree rows, fences, backdrops) cut into pieces at `SPLIT_Z` depths.

    The pieces tile the plane exactly (neighbours share the float32 bound), keep the original row's
    place (ties between primitives resolve as before) and every other column, so the pixels do not
    change. Shop fascias (M_SIGN) stay whole: their shading reads their z extent.
    """
    cut = (table[:, P.KIND] == P.K_QUADX) & (table[:, P.MAT] != P.M_SIGN)
    if not cut.any():
        return table
    z0, z1 = table[:, P.Z0].astype(np.float64), table[:, P.Z1].astype(np.float64)
    inner = (SPLIT_Z[None, :] > z0[:, None]) & (SPLIT_Z[None, :] < z1[:, None]) & cut[:, None]
    pieces = 1 + inner.sum(1)
    out = np.repeat(table, pieces, axis=0)
    rows = np.nonzero(inner.any(1))[0]
    first = np.cumsum(pieces) - pieces  # where each original row's pieces start in `out`
    for r in rows:
        bounds = np.concatenate([[table[r, P.Z0]], SPLIT_Z[inner[r]].astype(np.float32), [table[r, P.Z1]]])
        k = first[r]
        out[k:k + pieces[r], P.Z0] = bounds[:-1]
        out[k:k + pieces[r], P.Z1] = bounds[1:]
    return out


def _rays(cams: list[tuple], h: int, w: int, device: torch.device) -> torch.Tensor:
    """Per-pixel world ray directions (3, N*H*W), one row per axis (unnormalised: camera z = 1)."""
    if kernels.enabled(device):
        out = torch.empty((3, len(cams) * h * w))
        kernels.rays(np.array([[*rot.ravel(), f, cx, cy] for rot, f, cx, cy in cams], np.float32), h, w, out.numpy())
        return out
    vv, uu = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                            torch.arange(w, device=device, dtype=torch.float32), indexing="ij")
    out = []
    for rot, f, cx, cy in cams:
        xn = (uu.reshape(-1) + 0.5 - cx) / f
        yn = (cy - (vv.reshape(-1) + 0.5)) / f
        r = [float(v) for v in rot.ravel()]
        d = torch.stack([r[0] * xn + r[1] * yn + r[2], r[3] * xn + r[4] * yn + r[5],
                         r[6] * xn + r[7] * yn + r[8]])
        out.append(d)
    return torch.cat(out, 1)


class _Elements:
    """The flat ragged batch: one element per (primitive, pixel inside its bounding box)."""

    def __init__(self, prm: torch.Tensor, boxes: np.ndarray, h: int, w: int, device: torch.device):
        area = boxes[:, 2] * boxes[:, 3]
        self.area = area
        dev = device
        e = int(area.sum())
        if kernels.enabled(dev):
            self.pid, self.g, self.scn = (torch.empty(e, dtype=torch.long) for _ in range(3))
            kernels.elements(boxes.astype(np.int64), prm[:, P.SCN].to(torch.int64).numpy(), h, w,
                             self.pid.numpy(), self.g.numpy(), self.scn.numpy())
            return
        area_t = torch.as_tensor(area, device=dev)
        self.pid = torch.repeat_interleave(torch.arange(len(boxes), device=dev), area_t)
        # per box: its first element's rank and its first pixel's number (scene * H * W + v0 * W + u0)
        offs = (torch.cumsum(area_t, 0) - area_t).to(torch.float64)
        scn = prm[:, P.SCN].to(torch.int64)
        first = scn * (h * w) + torch.as_tensor(boxes[:, 1] * w + boxes[:, 0], device=dev)
        # pixel (u, v) inside the box from the element's rank, in float32: exact because the rank
        # within one box is < 2^24 and the +0.5 keeps the quotient away from integers
        local = (torch.arange(e, device=dev, dtype=torch.float64) - offs.index_select(0, self.pid)).to(torch.float32)
        bw = torch.as_tensor(np.maximum(boxes[:, 2], 1), device=dev, dtype=torch.float32).index_select(0, self.pid)
        vf = torch.floor((local + 0.5) / bw)
        uf = local - vf * bw
        # v * W + u < 2^24 as well, so the float32 sum is exact
        self.g = first.index_select(0, self.pid) + (vf * w + uf).to(torch.int64)
        self.scn = scn.index_select(0, self.pid)


def _safe(x: torch.Tensor) -> torch.Tensor:
    return x.masked_fill(x.abs() < 1e-9, 1e-9)


def _intersect(param_columns: torch.Tensor, pid: torch.Tensor, ranges: dict[int, slice], d: torch.Tensor,
               oy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray parameter t of the first hit (inf: none) and the hit face axis (boxes).

    Elements are sorted by primitive kind; `ranges[kind]` is that kind's slice of elements.
    """
    dx, dy, dz = d[0], d[1], d[2]
    t = torch.full_like(dx, INF)
    face = torch.zeros_like(pid, dtype=torch.int8)

    def c(k: int, sel: slice) -> torch.Tensor:
        return param_columns[k].index_select(0, pid[sel])

    # ground plane y = 0
    m = ranges[P.K_GROUND]
    if m.stop > m.start:
        tt = -oy[m] / torch.clamp(dy[m], max=-1e-9)
        t[m] = tt.masked_fill(~(dy[m] < 0), INF)
    # planes x = const (facades, fences, tree rows) and z = const (side walls, far facades, horizon)
    for kind, axis, other, (lo, hi) in ((P.K_QUADX, 0, 2, (P.Z0, P.Z1)), (P.K_QUADZ, 2, 0, (P.X0, P.X1))):
        m = ranges[kind]
        if m.stop > m.start:
            tt = c(P.X0 if axis == 0 else P.Z0, m) / _safe(d[axis, m])
            y = oy[m] + tt * dy[m]
            along = tt * d[other, m]
            ok = (tt > 0) & (along >= c(lo, m)) & (along <= c(hi, m)) & (y >= c(P.Y0, m)) & (y <= c(P.Y1, m))
            t[m] = tt.masked_fill(~ok, INF)
    # axis-aligned boxes (slab test)
    m = ranges[P.K_BOX]
    if m.stop > m.start:
        o = (torch.zeros_like(oy[m]), oy[m], torch.zeros_like(oy[m]))
        tmins, tmaxs = [], []
        for a, (lo, hi) in enumerate(((P.X0, P.X1), (P.Y0, P.Y1), (P.Z0, P.Z1))):
            inv = 1.0 / _safe(d[a, m])
            t1 = (c(lo, m) - o[a]) * inv
            t2 = (c(hi, m) - o[a]) * inv
            tmins.append(torch.minimum(t1, t2))
            tmaxs.append(torch.maximum(t1, t2))
        tmin = torch.maximum(torch.maximum(tmins[0], tmins[1]), tmins[2])
        tmax = torch.minimum(torch.minimum(tmaxs[0], tmaxs[1]), tmaxs[2])
        ok = (tmax >= tmin) & (tmin > 1e-4)
        t[m] = tmin.masked_fill(~ok, INF)
        f = torch.zeros_like(tmin, dtype=torch.int8).masked_fill(tmin == tmins[1], 1).masked_fill(tmin == tmins[2], 2)
        face[m] = f
    # ellipsoids
    m = ranges[P.K_ELL]
    if m.stop > m.start:
        cs = [(c(lo, m) + c(hi, m)) * 0.5 for lo, hi in ((P.X0, P.X1), (P.Y0, P.Y1), (P.Z0, P.Z1))]
        rs = [torch.clamp((c(hi, m) - c(lo, m)) * 0.5, min=1e-3) for lo, hi in ((P.X0, P.X1), (P.Y0, P.Y1), (P.Z0, P.Z1))]
        o = (torch.zeros_like(oy[m]), oy[m], torch.zeros_like(oy[m]))
        oc = [(o[a] - cs[a]) / rs[a] for a in range(3)]
        dd = [d[a, m] / rs[a] for a in range(3)]
        qa = dd[0] * dd[0] + dd[1] * dd[1] + dd[2] * dd[2]
        qb = oc[0] * dd[0] + oc[1] * dd[1] + oc[2] * dd[2]
        qc = oc[0] * oc[0] + oc[1] * oc[1] + oc[2] * oc[2] - 1.0
        disc = qb * qb - qa * qc
        tt = (-qb - torch.sqrt(torch.clamp(disc, min=0.0))) / qa
        ok = (disc >= 0) & (tt > 0)
        t[m] = tt.masked_fill(~ok, INF)
    # vertical cylinders (poles, trunks)
    m = ranges[P.K_CYL]
    if m.stop > m.start:
        cx = (c(P.X0, m) + c(P.X1, m)) * 0.5
        cz = (c(P.Z0, m) + c(P.Z1, m)) * 0.5
        r = (c(P.X1, m) - c(P.X0, m)) * 0.5
        qa = dx[m] * dx[m] + dz[m] * dz[m]
        qb = -cx * dx[m] - cz * dz[m]
        qc = cx * cx + cz * cz - r * r
        disc = qb * qb - qa * qc
        tt = (-qb - torch.sqrt(torch.clamp(disc, min=0.0))) / torch.clamp(qa, min=1e-12)
        y = oy[m] + tt * dy[m]
        ok = (disc >= 0) & (tt > 0) & (y >= c(P.Y0, m)) & (y <= c(P.Y1, m))
        t[m] = tt.masked_fill(~ok, INF)
    return t, face


def _alpha(param_columns: torch.Tensor, pid: torch.Tensor, t: torch.Tensor, d: torch.Tensor,
           oy: torch.Tensor) -> torch.Tensor:
    """Cut-out tests on hit points: True where the primitive is solid."""
    al = param_columns[P.ALPHA].to(torch.int8).index_select(0, pid)
    solid = torch.ones_like(t, dtype=torch.bool)
    cand = torch.nonzero(torch.isfinite(t) & (al != P.AL_NONE)).squeeze(1)  # hits that need a cut-out test
    al_c = al.index_select(0, cand)
    for a in (P.AL_SILHOUETTE, P.AL_FOLIAGE, P.AL_BARS, P.AL_SIGN, P.AL_RING, P.AL_SKYLINE):
        m = cand[al_c == a]
        if len(m) == 0:
            continue
        pm = pid.index_select(0, m)
        tt = t.index_select(0, m)
        dm = d.index_select(1, m)
        px, py, pz = tt * dm[0], oy.index_select(0, m) + tt * dm[1], tt * dm[2]

        def c(k: int, pm: torch.Tensor = pm) -> torch.Tensor:
            return param_columns[k].index_select(0, pm)

        seed = c(P.SEED).long()
        along = torch.where(c(P.KIND) == P.K_QUADX, pz, px)
        if a == P.AL_SILHOUETTE:
            amp, freq = c(P.AL0), c(P.AL1)
            n = fbm(along * freq, torch.zeros_like(along), seed, octaves=4, bilinear=True)
            ok = py <= c(P.Y1) - amp * n
        elif a == P.AL_SKYLINE:
            b = torch.floor(along / c(P.AL0)).long()
            fr = c(P.AL1) + (1.0 - c(P.AL1)) * hash2(b, torch.zeros_like(b), seed)
            ok = py <= c(P.Y0) + (c(P.Y1) - c(P.Y0)) * fr
        elif a == P.AL_FOLIAGE:
            cx, cy, cz = ((c(lo) + c(hi)) * 0.5 for lo, hi in ((P.X0, P.X1), (P.Y0, P.Y1), (P.Z0, P.Z1)))
            rx, ry = (c(P.X1) - c(P.X0)) * 0.5, (c(P.Y1) - c(P.Y0)) * 0.5
            sc = 2.5 * c(P.AL1)
            n = fbm((px - cx + pz - cz) * sc, (py - cy) * sc, seed, octaves=3)
            # holes grow toward the silhouette: ragged outline, denser middle
            ex = (px - cx) / rx
            ey = (py - cy) / ry
            rim = torch.clamp(ex * ex + ey * ey, 0.0, 1.0)
            ok = n > c(P.AL0) * (0.35 + 0.9 * rim)
        elif a == P.AL_BARS:
            ok = bars(along, py - c(P.Y0), c(P.Y1) - c(P.Y0), c(P.AL0), c(P.AL1))
        elif a == P.AL_SIGN:
            lx = (px - (c(P.X0) + c(P.X1)) * 0.5) / ((c(P.X1) - c(P.X0)) * 0.5)
            ly = (py - (c(P.Y0) + c(P.Y1)) * 0.5) / ((c(P.Y1) - c(P.Y0)) * 0.5)
            shape = c(P.AL0)
            ok = torch.where(shape == 1, lx * lx + ly * ly <= 1.0,
                             torch.where(shape == 2, lx.abs() <= (1.0 - ly) * 0.5, torch.ones_like(lx, dtype=torch.bool)))
        else:  # AL_RING: a wheel: tyre, hub and two spokes, see-through between
            ry = (c(P.Y1) - c(P.Y0)) * 0.5
            ly = py - (c(P.Y0) + c(P.Y1)) * 0.5
            lz = pz - (c(P.Z0) + c(P.Z1)) * 0.5
            rr = (ly * ly + lz * lz) / (ry * ry)
            ok = (rr >= c(P.AL0) * c(P.AL0)) | (ly.abs() < 0.02) | (lz.abs() < 0.02)
        solid.index_copy_(0, m, ok)
    return solid


def _cast_compiled(param_columns: torch.Tensor, elements: _Elements, ranges: dict[int, slice], rays: torch.Tensor,
                   oy_scene: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`_intersect`, `_alpha` and the masking as compiled kernels (`kernels.intersect`, `kernels.finish`): the
    same t and faces. Ellipsoids and cylinders take torch's square root of their discriminant in between."""
    e = len(elements.pid)
    t, face, disc = torch.empty(e), torch.empty(e, dtype=torch.int8), torch.empty(e)
    args = (elements.pid.numpy(), elements.g.numpy(), elements.scn.numpy(), rays.numpy(), oy_scene.numpy(),
            param_columns.numpy())
    kernels.intersect(*args, t.numpy(), face.numpy(), disc.numpy())
    curved = [ranges[k] for k in (P.K_ELL, P.K_CYL) if ranges[k].stop > ranges[k].start]
    lo, hi = (curved[0].start, curved[-1].stop) if curved else (0, 0)
    root = torch.sqrt(torch.clamp(disc[lo:hi], min=0.0))  # root[i] belongs to element lo + i
    kernels.finish(*args, root.numpy(), lo, hi, N._TABLES["fbm4"], N._TABLES["fbm3"], N._TABLES["white"], t.numpy())
    return t, face


def _nearest(t: torch.Tensor, g: torch.Tensor, npx: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel: the nearest finite hit's distance and element (-1: none); ties go to the later element.

    `scatter_reduce` min and max are order-independent, hence exact and deterministic.
    """
    best = torch.full((npx,), INF, device=t.device).scatter_reduce(0, g, t, "amin")
    win = torch.isfinite(t) & (t == best.index_select(0, g))
    idx = torch.arange(len(t), device=t.device).masked_fill(~win, -1)
    return best, torch.full((npx,), -1, device=t.device, dtype=torch.long).scatter_reduce(0, g, idx, "amax")


def render_scenes(scenes: list[dict[str, Any]], height: int, width: int, device: str | torch.device = "cpu",
                  textures: TextureBank | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render scenes (from `sampling.sample_scene`) to uint8 images (N,H,W,3) and masks (N,H,W).

    Args:
        scenes: sampled scene dicts.
        height, width: output size in pixels.
        device: torch device for the per-pixel work.
        textures: photo textures (default: the bundled scikit-image samples).
    """
    dev = torch.device(device)
    textures = textures or TextureBank.default()
    imgs, masks = [], []
    # chunk scenes so the ragged element batch stays bounded in memory
    chunk: list[dict] = []
    budget = 0
    per_scene = 3 * height * width
    for sc in scenes:
        if chunk and budget + per_scene > MAX_ELEMENTS:
            i, m = _render_chunk(chunk, height, width, dev, textures)
            imgs.append(i)
            masks.append(m)
            chunk, budget = [], 0
        chunk.append(sc)
        budget += per_scene
    if chunk:
        i, m = _render_chunk(chunk, height, width, dev, textures)
        imgs.append(i)
        masks.append(m)
    if not imgs:
        return np.zeros((0, height, width, 3), np.uint8), np.zeros((0, height, width), np.uint8)
    return np.concatenate(imgs), np.concatenate(masks)


def _render_chunk(scenes: list[dict], h: int, w: int, dev: torch.device,
                  textures: TextureBank) -> tuple[np.ndarray, np.ndarray]:
    color, cls = shade(scenes, cast_rays(scenes, h, w, dev), textures)
    return apply_camera(color, scenes), cls.to(torch.uint8).cpu().numpy()


def cast_rays(scenes: list[dict], h: int, w: int, dev: torch.device) -> RayCast:
    """Ray casting of a chunk of scenes: per pixel the nearest solid hit and the see-through one before it."""
    n = len(scenes)
    cams = [camera_matrices(s["camera"], h, w) for s in scenes]
    heights = np.array([s["camera"]["height"] for s in scenes], np.float64)
    table = _split_along_street(np.concatenate([P.build_primitives(s, i) for i, s in enumerate(scenes)]))
    boxes = _bbox(table, cams, heights, h, w)
    keep = boxes[:, 2] * boxes[:, 3] > 0
    # sort by kind (stable): each kind's elements form one contiguous slice
    order = np.argsort(table[keep][:, P.KIND], kind="stable")
    table, boxes = table[keep][order], boxes[keep][order]
    area = boxes[:, 2] * boxes[:, 3]
    ends = np.cumsum(area)
    ranges = {}
    for k in (P.K_GROUND, P.K_QUADX, P.K_QUADZ, P.K_BOX, P.K_ELL, P.K_CYL):
        idx = np.nonzero(table[:, P.KIND] == k)[0]
        ranges[k] = slice(int(ends[idx[0]] - area[idx[0]]), int(ends[idx[-1]])) if len(idx) else slice(0, 0)
    prm = torch.as_tensor(table, device=dev)
    param_columns = prm.t().contiguous()  # one row per parameter: param_columns[P.X][pid]
    rays = _rays(cams, h, w, dev)
    oy_scene = torch.as_tensor(heights.astype(np.float32), device=dev)

    elements = _Elements(prm, boxes, h, w, dev)
    npx = n * h * w
    if kernels.enabled(dev):  # the same t, faces and layers as below
        t, face = _cast_compiled(param_columns, elements, ranges, rays, oy_scene)
        winner, veil = torch.full((npx,), -1), torch.full((npx,), -1)
        kernels.layers(t.numpy(), elements.g.numpy(), elements.pid.numpy(), is_veil(param_columns).numpy(),
                       torch.full((npx,), INF).numpy(), winner.numpy(), veil.numpy())
    else:
        d = rays.index_select(1, elements.g)
        oy = oy_scene.index_select(0, elements.scn)
        t, face = _intersect(param_columns, elements.pid, ranges, d, oy)
        solid = _alpha(param_columns, elements.pid, t, d, oy)
        t = t.masked_fill(~solid, INF)
        # two layers: the nearest solid surface, and a see-through crown (bare tree) in front of it
        see_through = is_veil(param_columns).index_select(0, elements.pid)
        best, winner = _nearest(torch.where(see_through, INF, t), elements.g, npx)
        crowns = torch.nonzero(see_through & torch.isfinite(t)).squeeze(1)  # few: the veil layer looks at these only
        veil = torch.full_like(winner, -1)
        if len(crowns):
            best_veil, in_crowns = _nearest(t.index_select(0, crowns), elements.g.index_select(0, crowns), npx)
            veil = torch.where((best_veil < best) & (in_crowns >= 0), crowns.index_select(0, in_crowns.clamp(min=0)),
                               veil)
    return RayCast(prm=prm, pid=elements.pid, t=t, face=face, winner=winner, veil=veil, rays=rays, oy=oy_scene,
                   height=h, width=w)


__all__ = ["render_scenes", "camera_matrices"]

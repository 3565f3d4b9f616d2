"""Compiled CPU kernels (numba) for the renderer's hottest per-pixel passes.

Each kernel is one loop over pixels that does what a chain of torch operations in `shading.py` does, with
the same float32 operations in the same order, so it gives the same bytes (tests/test_synth.py renders
scenes both ways and compares them). On the CPU the torch chain reads and writes every intermediate
(masks, gathers, `nonzero`, `index_copy`) over the whole pixel set, once per operation; the kernel keeps
a pixel's values in registers. The torch code stays the reference, and the path on any other device.

Rules that keep the bytes: every constant is a float32 (`np.float32(0.45)`, as torch casts a Python
scalar to the tensor's float32), no fused multiply-add (numba does not contract by default), and the
operations associate as the torch expression does (`a * b * c` is `(a * b) * c`). Square roots stay
torch's: this torch build's CPU `sqrt` is not the correctly rounded one (it differs from numpy's in about
one float32 in five, the same way wherever the value sits in a tensor), so kernels take them precomputed
or leave them to torch.

`SIM2REAL_KERNELS=torch` switches the kernels off (the torch code runs everywhere), for A/B runs and tests.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from sim2real.synth import primitives as P
from sim2real.synth.textures import SIZE as TEX_SIZE

try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency; the torch path still renders without it
    numba = None

ENV = "SIM2REAL_KERNELS"
f32 = np.float32

# noise.py's table layout (asserted in tests): 512x512 tables, 8 texels per lattice unit
_NSIZE, _NMASK, _NRES = 512, 511, f32(8.0)
_TEXELS = TEX_SIZE  # TextureBank's maps: TEX_SIZE x TEX_SIZE texels each
_TSIZE = f32(TEX_SIZE)


def enabled(device: torch.device) -> bool:
    """Whether the compiled kernels render on `device` (CPU only, numba present, not switched off)."""
    if numba is None or device.type != "cpu":
        return False
    mode = os.environ.get(ENV, "numba")
    if mode not in ("numba", "torch"):
        raise ValueError(f"{ENV}={mode!r}: expected 'numba' (compiled CPU kernels, the default) or 'torch'")
    return mode == "numba"


def _jit(fn):
    if numba is None:  # pragma: no cover
        return fn
    return numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")(fn)


# ---------------- noise.py, per value ----------------

@_jit
def _cell(ix, iy, seed):
    """noise._window + the flat index: table position of lattice point (ix, iy) under `seed`."""
    s = seed & 0x3FFFF
    col = ((ix & _NMASK) + (s & _NMASK)) & _NMASK
    row = ((iy & _NMASK) + ((s >> 9) & _NMASK)) & _NMASK
    return row, col


@_jit
def _nearest(tab, x, y, seed):
    """noise._smooth, nearest texel."""
    row, col = _cell(np.int64(np.floor(x * _NRES)), np.int64(np.floor(y * _NRES)), seed)
    return tab[row * _NSIZE + col]


@_jit
def _bilinear(tab, x, y, seed):
    """noise._smooth, bilinear."""
    fx = np.floor(x * _NRES)
    fy = np.floor(y * _NRES)
    row, col = _cell(np.int64(fx), np.int64(fy), seed)
    tx = x * _NRES - fx
    ty = y * _NRES - fy
    col1 = (col + 1) & _NMASK
    row0 = row * _NSIZE
    row1 = ((row + 1) & _NMASK) * _NSIZE
    a, b, c, d = tab[row0 + col], tab[row0 + col1], tab[row1 + col], tab[row1 + col1]
    top = a + (b - a) * tx
    bot = c + (d - c) * tx
    return top + (bot - top) * ty


# ---------------- the ground (shading._ground and what it calls) ----------------

# rows of the street table `ground` reads: shading._STREET_KEYS, then the colours (3 rows each)
(S_LE, S_RE, S_KERB, S_OFFSET, S_PL, S_PR, S_SEED, S_TS, S_VERGE, S_PHOTO, S_WEAR, S_PUDDLES, S_STYLE, S_PERIOD,
 S_FRAC, S_EDGES, S_MARKINGS, S_TILE, S_ROAD, S_PAVE, S_KERBC, S_MARK) = (*range(18), 18, 21, 24, 27)
STREET_ROWS = 30


@_jit
def _texel(tex, ntex, tid, u, v):
    """TextureBank.lookup: texture `tid`'s nearest texel at (u, v) in tiles (tex: the bank's flat maps)."""
    iu = np.int64(np.floor(u * _TSIZE)) & (_TEXELS - 1)
    iv = np.int64(np.floor(v * _TSIZE)) & (_TEXELS - 1)
    return tex[(tid % ntex) * (_TEXELS * _TEXELS) + iv * _TEXELS + iu]


@_jit
def _detail(tex, ntex, photo, x, z):
    """shading._detail: photo texture detail (1 where the scene has none), texture 1."""
    if not photo > f32(0.5):
        return f32(1.0)
    return f32(1.0) + (_texel(tex, ntex, 1, x * f32(0.5), z * f32(0.5)) - f32(1.0)) * f32(0.35)


@_jit
def _grain(fbm3, x, z, seed):
    """shading._grain."""
    return _nearest(fbm3, x * f32(1.5), z * f32(1.5), seed) - f32(0.5)


@_jit
def _surface(street, row, s, amount, fbm3, tex, ntex, x, z, seed):
    """Asphalt or slabs: the street colour at `row` (3 rows) times grain and photo detail (shading._road, _pave)."""
    k = f32(1.0) + street[S_TS, s] * _grain(fbm3, x, z, seed) * amount
    d = _detail(tex, ntex, street[S_PHOTO, s], x, z)
    return street[row, s] * k * d, street[row + 1, s] * k * d, street[row + 2, s] * k * d


@_jit
def ground(x_, z_, sc_, street, sky_hor, shadows, value, fbm3, tex, ntex, road_id, pave_id, tree_id, col, cls):
    """shading._ground: base colour (3, M) into `col` and class into `cls` of ground points (x, z) of scenes `sc`.

    street: (STREET_ROWS, scenes) float32; sky_hor: (3, scenes); shadows: (scenes, 5, K) (`_object_shadows`).
    """
    for i in range(x_.shape[0]):
        X, Z, s = x_[i], z_[i], sc_[i]
        le, re, kerb = street[S_LE, s], street[S_RE, s], street[S_KERB, s]
        in_road = (X >= le) & (X <= re)
        in_kerb = ((X < le) & (X >= le - kerb)) | ((X > re) & (X <= re + kerb))
        beyond = (X < le - street[S_PL, s]) | (X > re + street[S_PR, s])
        verge = beyond & (street[S_VERGE, s] > f32(0.5))
        cls[i] = tree_id if verge else (road_id if in_road else pave_id)
        seed = np.int64(street[S_SEED, s])
        r = g = b = f32(0.0)
        if verge:  # _verge
            k = f32(0.7) + f32(0.6) * _nearest(fbm3, X * f32(2.0), Z * f32(2.0), seed + 3)
            r, g, b = f32(0.28) * k, f32(0.36) * k, f32(0.17) * k
        elif in_road:  # _road
            r, g, b = _surface(street, S_ROAD, s, f32(0.5), fbm3, tex, ntex, X, Z, seed)
            wear = street[S_WEAR, s]
            if _bilinear(value, X * f32(0.18), Z * f32(0.12), seed + 5) > f32(1.0) - wear * f32(0.45):
                r, g, b = r * f32(0.82), g * f32(0.82), b * f32(0.82)
            if abs(_nearest(value, X * f32(2.0), Z * f32(0.7), seed + 17) - f32(0.5)) < f32(0.012) * wear:
                r, g, b = r * f32(0.6), g * f32(0.6), b * f32(0.6)
            if street[S_PUDDLES, s] > f32(0.5) and \
                    _bilinear(fbm3, X * f32(0.35), Z * f32(0.2), seed + 9) > f32(0.66):
                r = r * f32(0.45) + sky_hor[0, s] * f32(0.45)
                g = g * f32(0.45) + sky_hor[1, s] * f32(0.45)
                b = b * f32(0.45) + sky_hor[2, s] * f32(0.45)
            style = street[S_STYLE, s]
            off = street[S_OFFSET, s]
            period = street[S_PERIOD, s]
            dashed = (Z / period - np.floor(Z / period)) < street[S_FRAC, s]
            xo = X - off
            centre = (abs(xo) < f32(0.07)) & ((style == 1) | dashed)
            double = (style == 1) & ((abs(xo - f32(0.18)) < f32(0.06)) | (abs(xo + f32(0.18)) < f32(0.06)))
            q = (re - le) / f32(4.0)
            lanes = (style == 2) & dashed & ((abs(xo - q) < f32(0.06)) | (abs(xo + q) < f32(0.06)))
            edges = (street[S_EDGES, s] > f32(0.5)) & ((abs(X - le - f32(0.3)) < f32(0.05)) |
                                                      (abs(X - re + f32(0.3)) < f32(0.05)))
            if (street[S_MARKINGS, s] > f32(0.5)) & (centre | double | lanes | edges):
                fade = f32(0.9) - f32(0.5) * wear
                r = r + (street[S_MARK, s] - r) * fade
                g = g + (street[S_MARK + 1, s] - g) * fade
                b = b + (street[S_MARK + 2, s] - b) * fade
        elif in_kerb:  # _kerb
            k = f32(1.0) + f32(0.1) * _grain(fbm3, X, Z, seed)
            r = street[S_KERBC, s] * f32(1.12) * k
            g = street[S_KERBC + 1, s] * f32(1.12) * k
            b = street[S_KERBC + 2, s] * f32(1.12) * k
        else:  # _pave
            tile = street[S_TILE, s]
            grout = ((X / tile - np.floor(X / tile)) < f32(0.06)) | ((Z / tile - np.floor(Z / tile)) < f32(0.06))
            r, g, b = _surface(street, S_PAVE, s, f32(0.35), fbm3, tex, ntex, X, Z, seed)
            if grout:
                r, g, b = r * f32(0.85), g * f32(0.85), b * f32(0.85)
        # _ground_shadows: the darkest footprint over the point
        dark = f32(1.0)
        for j in range(shadows.shape[2]):
            f4 = shadows[s, 4, j]
            if f4 > 0 and X >= shadows[s, 0, j] and X <= shadows[s, 1, j] and Z >= shadows[s, 2, j] and \
                    Z <= shadows[s, 3, j]:
                dark = min(dark, f32(1.0) - f4)
        col[0, i], col[1, i], col[2, i] = r * dark, g * dark, b * dark


# ---------------- hits, normals and light (shading._hits, _normals, _light, _facade_shadow) ----------------

_SCN, _KIND, _X0, _Y0, _Z0, _X1, _Y1, _Z1 = P.SCN, P.KIND, P.X0, P.Y0, P.Z0, P.X1, P.Y1, P.Z1
_K_QUADX, _K_QUADZ, _K_BOX, _K_ELL, _K_CYL = P.K_QUADX, P.K_QUADZ, P.K_BOX, P.K_ELL, P.K_CYL


@_jit
def _sign(x):
    """torch.sign (0 for 0)."""
    return f32(1.0) if x > 0 else (f32(-1.0) if x < 0 else f32(0.0))


@_jit
def hits(elements, pix, el_pid, el_t, el_face, rays, ray_len, prm, oy, pid, sc, p, n, q, dist):
    """shading._hits: for element `elements[i]` hit by pixel `pix[i]`, its primitive `pid`, scene `sc`, hit
    point `p` (3, M), surface normal `n` (3, M) (`_normals`) and ray distance `dist`.

    prm: the primitive table as parameter rows (NCOL, P); rays: (3, pixels) and `ray_len`, their lengths
    (torch's sqrt); oy: camera height per scene. The normals of ellipsoids and cylinders are left
    unnormalised, with their squared length in `q` (elsewhere -1): the caller divides by torch's sqrt.
    """
    for i in range(elements.shape[0]):
        e, px = elements[i], pix[i]
        k = el_pid[e]
        tw = el_t[e]
        d0, d1, d2 = rays[0, px], rays[1, px], rays[2, px]
        s = np.int64(prm[_SCN, k])
        pid[i], sc[i] = k, s
        p0, p1, p2 = tw * d0, oy[s] + tw * d1, tw * d2
        p[0, i], p[1, i], p[2, i] = p0, p1, p2
        dist[i] = tw * ray_len[px]
        kind = np.int64(prm[_KIND, k])
        n0, n1, n2 = f32(0.0), f32(1.0), f32(0.0)  # the ground
        q[i] = f32(-1.0)
        if kind == _K_QUADX:
            n0, n1 = -_sign(prm[_X0, k]), f32(0.0)
        elif kind == _K_QUADZ:
            n1, n2 = f32(0.0), f32(-1.0)
        elif kind == _K_BOX:
            ax = np.int64(el_face[e])
            n1 = f32(0.0)
            if ax == 0:
                n0 = -_sign(d0)
            elif ax == 1:
                n1 = -_sign(d1)
            else:
                n2 = -_sign(d2)
        elif kind == _K_ELL:
            rx = (prm[_X1, k] - prm[_X0, k]) * f32(0.5)
            ry = (prm[_Y1, k] - prm[_Y0, k]) * f32(0.5)
            rz = (prm[_Z1, k] - prm[_Z0, k]) * f32(0.5)
            n0 = (p0 - (prm[_X0, k] + prm[_X1, k]) * f32(0.5)) / max(rx * rx, f32(1e-6))
            n1 = (p1 - (prm[_Y0, k] + prm[_Y1, k]) * f32(0.5)) / max(ry * ry, f32(1e-6))
            n2 = (p2 - (prm[_Z0, k] + prm[_Z1, k]) * f32(0.5)) / max(rz * rz, f32(1e-6))
            q[i] = n0 * n0 + n1 * n1 + n2 * n2
        elif kind == _K_CYL:
            n0 = p0 - (prm[_X0, k] + prm[_X1, k]) * f32(0.5)
            n1 = f32(0.0)
            n2 = p2 - (prm[_Z0, k] + prm[_Z1, k]) * f32(0.5)
            q[i] = n0 * n0 + n2 * n2
        n[0, i], n[1, i], n[2, i] = n0, n1, n2


@_jit
def light(base, n, p, sc, dist, sun, light_tab, sky_par, sky_hor, profiles, rows_x, z0, dz, at, out):
    """shading._light: lit, hazed linear colour of surface colours `base` (3, M) at hit points `p` with normals
    `n` of scenes `sc`, into out[:, at[i]]; `profiles`/`rows_x`: `_facade_profiles` (z0, dz: its grid)."""
    length = profiles.shape[0] // max(rows_x.shape[0], 1)
    for i in range(base.shape[1]):
        s = sc[i]
        l0, l1, l2 = sun[0, s], sun[1, s], sun[2, s]
        n0, n1, n2 = n[0, i], n[1, i], n[2, i]
        ndl = max(n0 * l0 + n1 * l1 + n2 * l2, f32(0.0))
        shadowed = f32(0.0)
        if light_tab[3, s] > f32(0.5):  # _facade_shadow
            lx = f32(1e-4) if abs(l0) < f32(1e-4) else l0
            k = (rows_x[s] - p[0, i]) / lx
            y = p[1, i] + k * l1
            z = p[2, i] + k * l2
            zi = min(max(np.int64(np.floor((z - z0) / dz)), 0), length - 1)
            if k > f32(0.05) and y < profiles[s * length + zi]:
                shadowed = f32(1.0)
        lit = light_tab[0, s] * (f32(1.0) - f32(0.15) * shadowed) + light_tab[1, s] * ndl * (f32(1.0) - shadowed)
        lit = lit + f32(0.08) * max(n1, f32(0.0))
        f = sky_par[3, s] * dist[i] / (dist[i] + f32(150.0))
        for c in range(3):
            col = base[c, i] * lit
            out[c, at[i]] = col + (sky_hor[c, s] - col) * f


# ---------------- materials ----------------

_SEED, _A0, _KR, _KR2, _Y1c = P.SEED, P.A0, P.R, P.R2, P.Y1


@_jit
def _white(white, ix, iy, seed):
    """noise.hash2."""
    row, col = _cell(ix, iy, seed)
    return white[row * _NSIZE + col]


@_jit
def facade(idx, p_, pid_, sc_, prm, sky_hor, white, fbm3, tex, ntex, base):
    """shading._facade: wall colour of the hits `idx` (positions in p_, pid_, sc_) into base[:, idx]."""
    for j in range(idx.shape[0]):
        i = idx[j]
        k, s = pid_[i], sc_[i]
        seed = np.int64(prm[_SEED, k])
        floor_h, spacing = prm[_A0, k], prm[_A0 + 1, k]
        win_w, win_h, shop = prm[_A0 + 2, k], prm[_A0 + 3, k], prm[_A0 + 4, k] > f32(0.5)
        ts, photo = prm[_A0 + 5, k], prm[_A0 + 6, k] > f32(0.5)
        top = prm[_Y1c, k]
        along = p_[2, i] if np.int64(prm[_KIND, k]) == _K_QUADX else p_[0, i]
        y = p_[1, i]
        fl = np.floor(y / floor_h)
        fy = y / floor_h - fl
        col_i = np.floor(along / spacing)
        fc = along / spacing - col_i
        is_win = (abs(fc - f32(0.5)) < win_w * f32(0.5)) & (abs(fy - f32(0.5)) < win_h * f32(0.5)) & \
            (fl >= 1) & (y < top - f32(0.5))
        two = spacing * f32(2.0)
        big = shop & (fl == 0) & (fy > f32(0.12)) & (fy < f32(0.8)) & \
            ((along / two - np.floor(along / two)) > f32(0.06))
        grain = _nearest(fbm3, along * f32(0.9), y * f32(0.9), seed) - f32(0.5)
        detail = f32(1.0)
        if photo:
            detail = f32(1.0) + (_texel(tex, ntex, 0, along * f32(0.25), y * f32(0.25)) - f32(1.0)) * f32(0.6)
        kw = f32(1.0) + ts * grain * f32(0.45)
        m = (f32(0.9) if fy < f32(0.035) else f32(1.0))
        m2 = (f32(1.12) if y > top - f32(0.35) else f32(1.0))
        m3 = (f32(0.85) if y < f32(0.4) else f32(1.0))
        wv = _white(white, np.int64(col_i), np.int64(fl), seed)
        kg = f32(0.6) + f32(0.8) * wv
        edge = ((abs(fc - f32(0.5)) > win_w * f32(0.5) - f32(0.04) / spacing) |
                (abs(fy - f32(0.5)) > win_h * f32(0.5) - f32(0.05))) & is_win
        recess = (fy > f32(0.5) + win_h * f32(0.5) - f32(0.12)) & ~edge
        ps = np.int64(prm[_SEED, k])
        bar_frame = _white(white, ps, ps, 17) > f32(0.5)
        glazing_bar = is_win & (abs(fc - f32(0.5)) < f32(0.025) / spacing) & (wv > f32(0.25))
        pitch = f32(0.8) + f32(0.7) * _white(white, ps, ps, 19)
        fm = along / pitch - np.floor(along / pitch)
        mullion = big & ((fm < f32(0.07) / pitch) | (abs(fy - f32(0.62)) < f32(0.018)))
        pipe_dark = _white(white, ps, ps, 23) > f32(0.4)
        pipe = (fc < f32(0.1) / spacing) & (_white(white, np.int64(col_i), 29, seed) < f32(0.22)) & \
            (y < top - f32(0.3))
        rnd = f32(1.25) - f32(0.5) * abs(fc * spacing / f32(0.05) - f32(1.0))
        for c in range(3):
            wall = prm[_KR + c, k] * kw * detail * m * m2 * m3
            if pipe:
                v = f32(0.09) if pipe_dark else wall * f32(0.7)
                v = v * rnd
            elif is_win | big:
                if glazing_bar | mullion:
                    v = f32(0.8) if bar_frame else wall * f32(0.35)
                else:
                    v = prm[_KR2 + c, k] * kg + sky_hor[c, s] * f32(0.15) * fy
                    if edge & (wv > f32(0.3)):
                        v = f32(0.8)
                    if recess:
                        v = v * f32(0.6)
            else:
                v = wall
            base[c, i] = v


# ---------------- ray casting (render._Elements, render._nearest) ----------------

@_jit
def elements(boxes, scn, h, w, pid, g, el_scn):
    """render._Elements: one element per (primitive, pixel of its box (u0, v0, bw, bh)), boxes in order,
    pixels row by row; its primitive, pixel number (scene * h * w + row * w + column) and scene."""
    e = 0
    for b in range(boxes.shape[0]):
        u0, v0, bw, bh = boxes[b, 0], boxes[b, 1], boxes[b, 2], boxes[b, 3]
        first = scn[b] * (h * w) + v0 * w + u0
        for v in range(bh):
            for u in range(bw):
                pid[e], g[e], el_scn[e] = b, first + v * w + u, scn[b]
                e += 1


# ---------------- the camera (camera.apply_camera up to the JPEG) ----------------

_THIRD = f32(1.0 / 3.0)

@_jit
def camera(img, gain, sat, vig, taps, soft, noise_amp, seeds, white, x, tmp, out):
    """camera.apply_camera before the JPEG step: linear colours img (N, 3, H, W) -> uint8 out (N, H, W, 3).

    gain (N, 3), sat, vig, noise_amp (std * 2.449), seeds: per image; taps (N, K): the blur, applied
    where `soft`; x, tmp: (3, H, W) float32 work buffers.
    """
    n, _, h, w = img.shape
    hw_, hh_ = f32(w / 2), f32(h / 2)
    r = taps.shape[1] // 2
    for i in range(n):
        for yy in range(h):
            rv = (f32(yy) + f32(0.5) - hh_) / hh_
            for u in range(w):
                ru = (f32(u) + f32(0.5) - hw_) / hw_
                v = f32(1.0) - vig[i] * ((ru * ru + rv * rv) * f32(0.5))
                a0, a1, a2 = img[i, 0, yy, u] * gain[i, 0], img[i, 1, yy, u] * gain[i, 1], img[i, 2, yy, u] * gain[i, 2]
                grey = (a0 + a1 + a2) * _THIRD
                aa = (a0, a1, a2)
                for c in range(3):
                    xv = max((grey + (aa[c] - grey) * sat[i]) * v, f32(0.0))
                    over = xv - f32(0.8)
                    if over > f32(0.0):
                        xv = f32(0.8) + over / (f32(1.0) + over * f32(2.5))
                    x[c, yy, u] = xv
        if soft[i]:  # camera.blur: replicate padding, taps summed in order
            for c in range(3):
                for yy in range(h):
                    for u in range(w):
                        acc = f32(0.0)
                        for k in range(taps.shape[1]):
                            acc += taps[i, k] * x[c, yy, min(max(u + k - r, 0), w - 1)]
                        tmp[c, yy, u] = acc
                for yy in range(h):
                    for u in range(w):
                        acc = f32(0.0)
                        for k in range(taps.shape[1]):
                            acc += taps[i, k] * tmp[c, min(max(yy + k - r, 0), h - 1), u]
                        x[c, yy, u] = acc
        s1, s2 = seeds[i], seeds[i] + 100003
        for yy in range(h):
            for c in range(3):
                for u in range(w):
                    nz = _white(white, u, yy * 3 + c, s1) + _white(white, u, yy * 3 + c, s2) - f32(1.0)
                    xv = min(max(x[c, yy, u] + nz * noise_amp[i], f32(0.0)), f32(1.0))
                    out[i, yy, u, c] = np.uint8(np.floor(xv * f32(255.0) + f32(0.5)))


# ---------------- ray casting: intersections and cut-outs (render._intersect, render._alpha) ----------------

_K_GROUND = P.K_GROUND
_ALPHA, _AL0, _AL1 = P.ALPHA, P.AL0, P.AL1
_AL_SILHOUETTE, _AL_FOLIAGE, _AL_BARS, _AL_SIGN, _AL_RING, _AL_SKYLINE = (
    P.AL_SILHOUETTE, P.AL_FOLIAGE, P.AL_BARS, P.AL_SIGN, P.AL_RING, P.AL_SKYLINE)
_INF = np.float32(np.inf)
_TINY = f32(1e-9)


@_jit
def _safe(x):
    """render._safe."""
    return _TINY if abs(x) < _TINY else x


@_jit
def _curved(kind, prm, k, d0, d1, d2, oy):
    """(qa, qb, qc) of an ellipsoid's or a vertical cylinder's quadratic (render._intersect)."""
    if kind == _K_ELL:
        c0 = (prm[_X0, k] + prm[_X1, k]) * f32(0.5)
        c1 = (prm[_Y0, k] + prm[_Y1, k]) * f32(0.5)
        c2 = (prm[_Z0, k] + prm[_Z1, k]) * f32(0.5)
        r0 = max((prm[_X1, k] - prm[_X0, k]) * f32(0.5), f32(1e-3))
        r1 = max((prm[_Y1, k] - prm[_Y0, k]) * f32(0.5), f32(1e-3))
        r2 = max((prm[_Z1, k] - prm[_Z0, k]) * f32(0.5), f32(1e-3))
        o0, o1, o2 = (f32(0.0) - c0) / r0, (oy - c1) / r1, (f32(0.0) - c2) / r2
        e0, e1, e2 = d0 / r0, d1 / r1, d2 / r2
        qa = e0 * e0 + e1 * e1 + e2 * e2
        qb = o0 * e0 + o1 * e1 + o2 * e2
        qc = o0 * o0 + o1 * o1 + o2 * o2 - f32(1.0)
        return qa, qb, qc
    cx = (prm[_X0, k] + prm[_X1, k]) * f32(0.5)
    cz = (prm[_Z0, k] + prm[_Z1, k]) * f32(0.5)
    r = (prm[_X1, k] - prm[_X0, k]) * f32(0.5)
    return d0 * d0 + d2 * d2, -cx * d0 - cz * d2, cx * cx + cz * cz - r * r


@_jit
def intersect(pid, g, scn, rays, oy_scene, prm, t, face, disc):
    """render._intersect, first pass: t and the box face of every element; for ellipsoids and cylinders only
    their discriminant into `disc` (the caller takes torch's sqrt and calls `finish`)."""
    for e in range(pid.shape[0]):
        k, px = pid[e], g[e]
        d0, d1, d2 = rays[0, px], rays[1, px], rays[2, px]
        oy = oy_scene[scn[e]]
        kind = np.int64(prm[_KIND, k])
        tt = _INF
        face[e] = 0
        if kind == _K_GROUND:
            if d1 < 0:
                tt = -oy / min(d1, -_TINY)
        elif kind == _K_QUADX or kind == _K_QUADZ:
            if kind == _K_QUADX:
                tt = prm[_X0, k] / _safe(d0)
                along, lo, hi = tt * d2, prm[_Z0, k], prm[_Z1, k]
            else:
                tt = prm[_Z0, k] / _safe(d2)
                along, lo, hi = tt * d0, prm[_X0, k], prm[_X1, k]
            y = oy + tt * d1
            if not ((tt > 0) & (along >= lo) & (along <= hi) & (y >= prm[_Y0, k]) & (y <= prm[_Y1, k])):
                tt = _INF
        elif kind == _K_BOX:
            inv = f32(1.0) / _safe(d0)
            a1, a2 = (prm[_X0, k] - f32(0.0)) * inv, (prm[_X1, k] - f32(0.0)) * inv
            mn0, mx0 = min(a1, a2), max(a1, a2)
            inv = f32(1.0) / _safe(d1)
            a1, a2 = (prm[_Y0, k] - oy) * inv, (prm[_Y1, k] - oy) * inv
            mn1, mx1 = min(a1, a2), max(a1, a2)
            inv = f32(1.0) / _safe(d2)
            a1, a2 = (prm[_Z0, k] - f32(0.0)) * inv, (prm[_Z1, k] - f32(0.0)) * inv
            mn2, mx2 = min(a1, a2), max(a1, a2)
            tmin = max(max(mn0, mn1), mn2)
            tmax = min(min(mx0, mx1), mx2)
            if (tmax >= tmin) & (tmin > f32(1e-4)):
                tt = tmin
            face[e] = 2 if tmin == mn2 else (1 if tmin == mn1 else 0)
        else:
            qa, qb, qc = _curved(kind, prm, k, d0, d1, d2, oy)
            disc[e] = qb * qb - qa * qc
        t[e] = tt


@_jit
def finish(pid, g, scn, rays, oy_scene, prm, root, lo, hi, fbm4, fbm3, white, t):
    """render._intersect for elements lo..hi (ellipsoids, cylinders; root[e - lo] = torch's sqrt(max(disc, 0))),
    then render._alpha for every hit: t becomes inf where a cut-out test says see-through."""
    for e in range(pid.shape[0]):
        k, px = pid[e], g[e]
        d0, d1, d2 = rays[0, px], rays[1, px], rays[2, px]
        oy = oy_scene[scn[e]]
        if e >= lo and e < hi:
            kind = np.int64(prm[_KIND, k])
            qa, qb, qc = _curved(kind, prm, k, d0, d1, d2, oy)
            disc = qb * qb - qa * qc
            tt = _INF
            if kind == _K_ELL:
                v = (-qb - root[e - lo]) / qa
                if (disc >= 0) & (v > 0):
                    tt = v
            else:
                v = (-qb - root[e - lo]) / max(qa, f32(1e-12))
                y = oy + v * d1
                if (disc >= 0) & (v > 0) & (y >= prm[_Y0, k]) & (y <= prm[_Y1, k]):
                    tt = v
            t[e] = tt
        tt = t[e]
        if not np.isfinite(tt):
            continue
        al = np.int64(np.int8(prm[_ALPHA, k]))
        if al != _AL_SILHOUETTE and al != _AL_FOLIAGE and al != _AL_BARS and al != _AL_SIGN and al != _AL_RING \
                and al != _AL_SKYLINE:
            continue
        p0, p1, p2 = tt * d0, oy + tt * d1, tt * d2
        seed = np.int64(prm[_SEED, k])
        along = p2 if np.int64(prm[_KIND, k]) == _K_QUADX else p0
        x0, y0, z0, x1, y1, z1 = prm[_X0, k], prm[_Y0, k], prm[_Z0, k], prm[_X1, k], prm[_Y1, k], prm[_Z1, k]
        a0, a1 = prm[_AL0, k], prm[_AL1, k]
        if al == _AL_SILHOUETTE:
            ok = p1 <= y1 - a0 * _bilinear(fbm4, along * a1, f32(0.0), seed)
        elif al == _AL_SKYLINE:
            b = np.int64(np.floor(along / a0))
            fr = a1 + (f32(1.0) - a1) * _white(white, b, 0, seed)
            ok = p1 <= y0 + (y1 - y0) * fr
        elif al == _AL_FOLIAGE:
            cx, cy, cz = (x0 + x1) * f32(0.5), (y0 + y1) * f32(0.5), (z0 + z1) * f32(0.5)
            rx, ry = (x1 - x0) * f32(0.5), (y1 - y0) * f32(0.5)
            sc = f32(2.5) * a1
            n = _nearest(fbm3, (p0 - cx + p2 - cz) * sc, (p1 - cy) * sc, seed)
            ex = (p0 - cx) / rx
            ey = (p1 - cy) / ry
            rim = min(max(ex * ex + ey * ey, f32(0.0)), f32(1.0))
            ok = n > a0 * (f32(0.35) + f32(0.9) * rim)
        elif al == _AL_BARS:
            ly, height = p1 - y0, y1 - y0
            ok = (ly > height - f32(0.07)) | (abs(ly - f32(0.15)) < f32(0.035)) | \
                ((along / a0 - np.floor(along / a0)) < a1)
        elif al == _AL_SIGN:
            lx = (p0 - (x0 + x1) * f32(0.5)) / ((x1 - x0) * f32(0.5))
            ly = (p1 - (y0 + y1) * f32(0.5)) / ((y1 - y0) * f32(0.5))
            if a0 == 1:
                ok = lx * lx + ly * ly <= f32(1.0)
            elif a0 == 2:
                ok = abs(lx) <= (f32(1.0) - ly) * f32(0.5)
            else:
                ok = True
        else:  # _AL_RING
            ry = (y1 - y0) * f32(0.5)
            ly = p1 - (y0 + y1) * f32(0.5)
            lz = p2 - (z0 + z1) * f32(0.5)
            rr = (ly * ly + lz * lz) / (ry * ry)
            ok = (rr >= a0 * a0) | (abs(ly) < f32(0.02)) | (abs(lz) < f32(0.02))
        if not ok:
            t[e] = _INF


@_jit
def layers(t, g, pid, see_through, best, win, veil):
    """render.cast_rays' two layers at once: per pixel the nearest solid hit (`nearest` over the elements
    whose primitive is not see-through) and the nearest see-through hit in front of it (-1: none).
    best: +inf, win and veil: -1 on entry."""
    vbest = np.full(best.shape[0], _INF, np.float32)
    for e in range(t.shape[0]):
        te, px = t[e], g[e]
        if see_through[pid[e]]:
            if np.isfinite(te) and te < vbest[px]:
                vbest[px] = te
        elif te != te or te < best[px]:
            best[px] = te
    for e in range(t.shape[0]):
        te, px = t[e], g[e]
        if not np.isfinite(te):
            continue
        if see_through[pid[e]]:
            if te == vbest[px] and vbest[px] < best[px]:
                veil[px] = e
        elif te == best[px]:
            win[px] = e


# ---------------- shading's bookkeeping ----------------

@_jit
def split(winner, out):
    """Pixel positions where nothing was hit (winner < 0), then the others, each ascending (two `nonzero`s);
    returns how many of the first kind."""
    n = 0
    for i in range(winner.shape[0]):
        if winner[i] < 0:
            out[n] = i
            n += 1
    m = n
    for i in range(winner.shape[0]):
        if winner[i] >= 0:
            out[m] = i
            m += 1
    return n


@_jit
def buckets(key_of, pid, order, starts):
    """Positions i grouped by key_of[pid[i]] (0..len(starts)-2), ascending within each group (a `nonzero` per
    key): group k is order[starts[k]:starts[k + 1]]."""
    starts[:] = 0
    for i in range(pid.shape[0]):
        starts[np.int64(key_of[pid[i]]) + 1] += 1
    for k in range(1, starts.shape[0]):
        starts[k] += starts[k - 1]
    pos = starts[:-1].copy()
    for i in range(pid.shape[0]):
        k = np.int64(key_of[pid[i]])
        order[pos[k]] = i
        pos[k] += 1


@_jit
def rays(cams, h, w, out):
    """render._rays: per-pixel world ray directions (3, N*h*w); cams (N, 12) float32: the rotation (row-major),
    f, cx, cy."""
    for i in range(cams.shape[0]):
        f, cx, cy = cams[i, 9], cams[i, 10], cams[i, 11]
        for v in range(h):
            yn = (cy - (f32(v) + f32(0.5))) / f
            for u in range(w):
                xn = (f32(u) + f32(0.5) - cx) / f
                j = (i * h + v) * w + u
                for a in range(3):
                    out[a, j] = cams[i, 3 * a] * xn + cams[i, 3 * a + 1] * yn + cams[i, 3 * a + 2]


@_jit
def sky(rays, elev, wgt, skyp, hw, sky_top, sky_hor, sky_par, fbm4, fbm2, color):
    """shading.sky_colour into color[:, skyp]: the gradient and the clouds along rays[:, skyp]; elev and wgt
    (per sky pixel) are torch's (they take square roots)."""
    for j in range(skyp.shape[0]):
        px = skyp[j]
        s = px // hw
        sdx, sdy, sdz = rays[0, px], rays[1, px], rays[2, px]
        cover, cscale, cseed = sky_par[0, s], sky_par[1, s], np.int64(sky_par[2, s])
        dyc = max(sdy, f32(0.04))
        cu = sdx / dyc * cscale
        cv = sdz / dyc * cscale * f32(0.5)
        cn = _bilinear(fbm4, cu, cv, cseed)
        dens = min(max((cn - (f32(1.0) - cover)) * f32(3.0), f32(0.0)), f32(1.0)) * \
            min(max(elev[j] * f32(8.0), f32(0.0)), f32(1.0))
        cloud = f32(0.78) + f32(0.2) * _nearest(fbm2, cu * f32(2.0), cv * f32(2.0), cseed + 5)
        for c in range(3):
            hor = sky_hor[c, s]
            scol = hor + (sky_top[c, s] - hor) * wgt[j]
            color[c, px] = scol + (cloud - scol) * dens

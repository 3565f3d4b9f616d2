"""Deferred shading of the winning hit per pixel: materials, light, shadows, sky, haze.

`shade` returns linear scene colours and class ids; the camera (`camera.apply_camera`) is applied
once, afterwards, by the renderer. Every per-pixel value is an exact function of the scene's
parameters (see `render.py`).

Layout: per-pixel vectors are rows. Colours, hit points, normals and rays are (3, M) tensors, one row per
channel or axis, and per-scene tables are (values, scenes); gathers and scatters run along the last axis.
Elementwise work then runs over long contiguous rows: on the CPU, broadcasting over (M, 3) cost 3-7x more
per operation than the same work on (3, M).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sim2real.synth import kernels
from sim2real.synth import noise as N
from sim2real.synth import primitives as P
from sim2real.synth.noise import fbm, hash2, value_noise
from sim2real.synth.textures import TextureBank
from sim2real.taxonomy import CLASS_ID

ROAD, PAVEMENT, TREE, SKY = CLASS_ID["Road"], CLASS_ID["Pavement"], CLASS_ID["Tree"], CLASS_ID["Sky"]


def _scene_table(scenes: list[dict[str, Any]], fn) -> np.ndarray:
    return np.array([fn(s) for s in scenes], np.float64)


def _sun(light: dict[str, Any]) -> list[float]:
    e, a = math.radians(light["elev"]), math.radians(light["azim"])
    return [math.cos(e) * math.sin(a), math.sin(e), math.cos(e) * math.cos(a)]


class _Hits:
    """Values of the winning hits of one material (gathered once), plus table access."""

    def __init__(self, param_columns, pid, sc, p, n, dev):
        self.param_columns, self.pid, self.sc, self.p, self.dev = param_columns, pid, sc, p, dev
        self._n, self._n_idx = n, None

    @property
    def n(self) -> torch.Tensor:
        """Surface normals (gathered on first use: the ground and facades never need them)."""
        if self._n_idx is not None:
            self._n, self._n_idx = self._n.index_select(-1, self._n_idx), None
        return self._n

    def subset(self, idx: torch.Tensor) -> _Hits:
        sub = _Hits(self.param_columns, self.pid.index_select(-1, idx), self.sc.index_select(-1, idx),
                    self.p.index_select(-1, idx), self._n, self.dev)
        if self._n_idx is not None:  # compose with a pending gather
            sub._n_idx = self._n_idx.index_select(-1, idx)
        else:
            sub._n_idx = idx
        return sub

    def c(self, k: int) -> torch.Tensor:
        return self.param_columns[k].index_select(-1, self.pid)

    def rgb(self, k: int) -> torch.Tensor:
        return torch.stack([self.c(k), self.c(k + 1), self.c(k + 2)])


@dataclass(frozen=True)
class RayCast:
    """What ray casting found for a chunk of scenes: the input of `shade`.

    Elements are (primitive, pixel) pairs; pixels are numbered scene * H * W + row * W + column.
    Two layers per pixel: `winner`, the nearest solid surface, and `veil`, a see-through crown
    (a leafless tree) in front of it: drawn as twigs over whatever is behind and labelled Tree
    as a whole, as CamVid labels bare trees over facades and sky alike.
    """

    prm: torch.Tensor  # primitive table (P, NCOL), see `primitives`
    pid: torch.Tensor  # element -> primitive row
    t: torch.Tensor  # element -> ray parameter of its hit (inf: none)
    face: torch.Tensor  # element -> hit face axis (boxes)
    winner: torch.Tensor  # pixel -> winning solid element (-1: nothing hit, sky)
    veil: torch.Tensor  # pixel -> see-through crown element in front of `winner` (-1: none)
    rays: torch.Tensor  # world ray direction per pixel (3, N*H*W), camera z = 1
    oy: torch.Tensor  # scene -> camera height (m)
    height: int
    width: int


def is_veil(param_columns: torch.Tensor) -> torch.Tensor:
    """Per primitive: see-through, drawn over what is behind it and labelled as itself: a bare crown or a
    railing."""
    return (((param_columns[P.MAT] == P.M_FOLIAGE) & (param_columns[P.A0 + 1] > 0.5)) |
            (param_columns[P.ALPHA] == P.AL_RAILING))


def bars(along: torch.Tensor, ly: torch.Tensor, height: torch.Tensor, period: torch.Tensor,
         fill: torch.Tensor) -> torch.Tensor:
    """Where a fence of bars is solid: a top rail, a low rail, and vertical bars (`fill` of each `period`)."""
    rail = (ly > height - 0.07) | ((ly - 0.15).abs() < 0.035)
    return rail | ((along / period - torch.floor(along / period)) < fill)


class _Scenes:
    """Per-scene lighting and sky tables, looked up per pixel."""

    def __init__(self, scenes: list[dict[str, Any]], dev: torch.device):
        def per_scene(fn) -> torch.Tensor:
            return torch.as_tensor(_scene_table(scenes, fn).astype(np.float32).T.copy(), device=dev)  # (values, scenes)

        self.scenes = scenes
        self.sky_top = per_scene(lambda s: s["sky"]["top"])
        self.sky_hor = per_scene(lambda s: s["sky"]["horizon"])
        self.sky_par = per_scene(lambda s: [s["sky"]["clouds"], s["sky"]["cloud_scale"], s["sky"]["seed"],
                                            s["sky"]["haze"]])
        self.sun = per_scene(lambda s: _sun(s["light"]))
        self.light = per_scene(lambda s: [s["light"]["ambient"], s["light"]["sun"], s["light"]["shadow"],
                                          s["light"]["sunny"]])
        self.sky_tables = (self.sky_top, self.sky_hor, self.sky_par)
        self.dev = dev
        self._profiles: tuple[torch.Tensor, torch.Tensor] | None = None

    def facade_profiles(self) -> tuple[torch.Tensor, torch.Tensor]:
        """`_facade_profiles` of these scenes, built once for both layers."""
        if self._profiles is None:
            self._profiles = _facade_profiles(self.scenes, self.dev)
        return self._profiles


def _scaled(col: torch.Tensor, where: torch.Tensor, k: float) -> torch.Tensor:
    """Colours (3, M) times k where `where` holds: the same values as `torch.where(where[None], col * k, col)`
    (x * 1.0 == x), with a where over M values instead of 3M."""
    return col * torch.where(where, k, 1.0)[None]


def _hits(cast: RayCast, param_columns: torch.Tensor, pix: torch.Tensor, elements: torch.Tensor,
          ray_len: torch.Tensor | None = None) -> tuple[_Hits, torch.Tensor]:
    """The hits of `elements` (one per pixel in `pix`) and their ray distances (`ray_len`: the rays' lengths,
    which the compiled kernel needs)."""
    if ray_len is not None:
        m = len(pix)
        pid, sc = torch.empty(m, dtype=torch.long), torch.empty(m, dtype=torch.long)
        p, nrm, q, dist = torch.empty((3, m)), torch.empty((3, m)), torch.empty(m), torch.empty(m)
        kernels.hits(elements.numpy(), pix.numpy(), cast.pid.numpy(), cast.t.numpy(), cast.face.numpy(),
                     cast.rays.numpy(), ray_len.numpy(), param_columns.numpy(), cast.oy.numpy(), pid.numpy(), sc.numpy(),
                     p.numpy(), nrm.numpy(), q.numpy(), dist.numpy())
        curved = torch.nonzero(q >= 0).squeeze(1)  # ellipsoids and cylinders: normalise
        if len(curved):
            ln = torch.clamp(torch.sqrt(q.index_select(-1, curved)), min=1e-9)
            nrm.index_copy_(-1, curved, nrm.index_select(-1, curved) / ln[None])
        return _Hits(param_columns, pid, sc, p, nrm, pix.device), dist
    pid = cast.pid.index_select(-1, elements)
    tw = cast.t.index_select(-1, elements)
    fw = cast.face.index_select(-1, elements).long()
    d = cast.rays.index_select(-1, pix)
    sc = param_columns[P.SCN].index_select(-1, pid).long()  # = pix // (H * W), without an integer division
    oy = cast.oy.index_select(-1, sc)
    p = torch.stack([tw * d[0], oy + tw * d[1], tw * d[2]])
    kind = param_columns[P.KIND].long().index_select(-1, pid)
    nrm = _normals(param_columns, pid, kind, fw, p, d)
    dist = tw * torch.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
    return _Hits(param_columns, pid, sc, p, nrm, cast.rays.device), dist


def _light(hits: _Hits, base: torch.Tensor, dist: torch.Tensor, env: _Scenes,
           into: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Lit, hazed linear colour of surface colours `base` at `hits`; with `into` = (colour, pix), written into
    colour[:, pix] instead (`colour.index_copy_(-1, pix, ...)`)."""
    if kernels.enabled(hits.dev):
        out, at = into if into is not None else (torch.empty_like(base), torch.arange(base.shape[1]))
        profiles, rows_x = env.facade_profiles()
        kernels.light(base.numpy(), hits.n.numpy(), hits.p.numpy(), hits.sc.numpy(), dist.numpy(), env.sun.numpy(),
                      env.light.numpy(), env.sky_par.numpy(), env.sky_hor.numpy(), profiles.numpy(), rows_x.numpy(),
                      np.float32(SHADOW_Z0), np.float32(SHADOW_DZ), at.numpy(), out.numpy())
        return out
    sc, nrm = hits.sc, hits.n
    # light: ambient + sun (Lambert) unless a facade shadows the point
    L = env.sun.index_select(-1, sc)
    light_px = env.light.index_select(-1, sc)
    amb, sun_k = light_px[0], light_px[1]
    ndl = torch.clamp(nrm[0] * L[0] + nrm[1] * L[1] + nrm[2] * L[2], min=0.0)
    shadowed = _facade_shadow(env, hits.p, L, sc, light_px[3] > 0.5, hits.dev)
    lit = amb * (1.0 - 0.15 * shadowed) + sun_k * ndl * (1.0 - shadowed)
    lit = lit + 0.08 * torch.clamp(nrm[1], min=0.0)  # sky light from above
    col = base * lit[None]
    # haze: aerial perspective toward the horizon colour
    haze = env.sky_par[3].index_select(-1, sc)
    f = haze * dist / (dist + 150.0)
    out = col + (env.sky_hor.index_select(-1, sc) - col) * f[None]
    return out if into is None else into[0].index_copy_(-1, into[1], out)


def shade(scenes: list[dict[str, Any]], cast: RayCast, textures: TextureBank) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear colours (N, 3, H, W) float32 and class ids (N, H, W) int64 of the scenes in `cast`."""
    winner, rays = cast.winner, cast.rays
    h, w, dev = cast.height, cast.width, rays.device
    n_sc = len(scenes)
    hw = h * w
    env = _Scenes(scenes, dev)
    param_columns = cast.prm.t().contiguous()  # one row per parameter: param_columns[P.X][pid]

    # ---------- sky where nothing was hit ----------
    color = torch.zeros((3, n_sc * hw), device=dev)
    cls = torch.full((n_sc * hw,), SKY, device=dev, dtype=torch.long)
    compiled = kernels.enabled(dev)
    if compiled:
        both = torch.empty(len(winner), dtype=torch.long)
        n_sky = kernels.split(winner.numpy(), both.numpy())
        skyp, pix = both[:n_sky], both[n_sky:]
        r = cast.rays
        ray_len = torch.sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2])  # torch's sqrt (see kernels)
    else:
        skyp, pix = torch.nonzero(winner < 0).squeeze(1), torch.nonzero(winner >= 0).squeeze(1)
        ray_len = None
    if len(skyp) and compiled:
        elev = rays[1].index_select(-1, skyp) / ray_len.index_select(-1, skyp)  # sky_colour's square roots
        wgt = torch.sqrt(torch.clamp(elev / 0.6, 0.0, 1.0))
        kernels.sky(rays.numpy(), elev.numpy(), wgt.numpy(), skyp.numpy(), hw, *(t.numpy() for t in env.sky_tables),
                    N._TABLES["fbm4"], N._TABLES["fbm2"], color.numpy())
    elif len(skyp):
        color.index_copy_(-1, skyp, sky_colour(rays.index_select(-1, skyp), skyp // hw, env.sky_tables))

    # ---------- solid surfaces ----------
    hits, dist = _hits(cast, param_columns, pix, winner.index_select(-1, pix), ray_len)
    base = torch.zeros((3, len(pix)), device=dev)
    pcls = hits.c(P.CLS).long()
    if compiled:
        order, starts = torch.empty(len(pix), dtype=torch.long), np.zeros(len(_MATERIALS) + 1, np.int64)
        kernels.buckets(param_columns[P.MAT].numpy(), hits.pid.numpy(), order.numpy(), starts)
        groups = {m: order[starts[m]:starts[m + 1]] for m in _MATERIALS}
    else:
        mat = hits.c(P.MAT).long()
        groups = {m: torch.nonzero(mat == m).squeeze(1) for m in _MATERIALS}
    for m, fn in _MATERIALS.items():
        idx = groups[m]
        if len(idx) and compiled and m in _COMPILED:  # writes base[:, idx] in place
            _COMPILED[m](hits, idx, textures, env.sky_hor, base)
        elif len(idx):
            out = fn(hits.subset(idx), scenes, textures, env.sky_hor)
            if isinstance(out, tuple):
                base.index_copy_(-1, idx, out[0])
                pcls.index_copy_(-1, idx, out[1])
            else:
                base.index_copy_(-1, idx, out)
    _light(hits, base, dist, env, into=(color, pix))
    cls.index_copy_(-1, pix, pcls)

    # ---------- see-through crowns and railings: twigs or bars over what is behind, labelled as themselves ----------
    vpix = torch.nonzero(cast.veil >= 0).squeeze(1)
    if len(vpix):
        vh, vdist = _hits(cast, param_columns, vpix, cast.veil.index_select(-1, vpix), ray_len)
        railing = vh.c(P.ALPHA) == P.AL_RAILING
        twig = torch.empty((3, len(vpix)), device=dev)
        dens = torch.empty(len(vpix), device=dev)
        for idx, is_railing in ((torch.nonzero(~railing).squeeze(1), False), (torch.nonzero(railing).squeeze(1), True)):
            if len(idx) == 0:
                continue
            sub = vh.subset(idx)
            if is_railing:
                along = torch.where(sub.c(P.KIND) == P.K_QUADX, sub.p[2], sub.p[0])
                solid = bars(along, sub.p[1] - sub.c(P.Y0), sub.c(P.Y1) - sub.c(P.Y0), sub.c(P.AL0), sub.c(P.AL1))
                col, d = _paint(sub, scenes, textures, env.sky_hor), solid.to(dens.dtype)
            else:
                col, d = _twigs(sub)
            twig.index_copy_(-1, idx, col)
            dens.index_copy_(-1, idx, d)
        behind = color.index_select(-1, vpix)
        color.index_copy_(-1, vpix, behind + (_light(vh, twig, vdist, env) - behind) * dens[None])
        cls.index_copy_(-1, vpix, vh.c(P.CLS).long())

    return color.reshape(3, n_sc, h, w).permute(1, 0, 2, 3), cls.reshape(n_sc, h, w)


def sky_colour(d: torch.Tensor, sc: torch.Tensor, tables: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Sky radiance (3, M) along rays d (3, M) of scenes sc: horizon-to-zenith gradient plus clouds."""
    sky_top, sky_hor, sky_par = tables
    sdx, sdy, sdz = d[0], d[1], d[2]
    elev = sdy / torch.sqrt(sdx * sdx + sdy * sdy + sdz * sdz)
    wgt = torch.sqrt(torch.clamp(elev / 0.6, 0.0, 1.0))
    top, hor = sky_top.index_select(-1, sc), sky_hor.index_select(-1, sc)
    scol = hor + (top - hor) * wgt[None]
    par = sky_par.index_select(-1, sc)
    cover, cscale, cseed = par[0], par[1], par[2].long()
    dyc = torch.clamp(sdy, min=0.04)
    cu, cv = sdx / dyc * cscale, sdz / dyc * cscale * 0.5
    cn = fbm(cu, cv, cseed, octaves=4, bilinear=True)
    dens = torch.clamp((cn - (1.0 - cover)) * 3.0, 0.0, 1.0) * torch.clamp(elev * 8.0, 0.0, 1.0)
    cloud = (0.78 + 0.2 * fbm(cu * 2.0, cv * 2.0, cseed + 5, octaves=2))[None]
    return scol + (cloud - scol) * dens[None]


def _normals(param_columns, pid, kind, face, p, d) -> torch.Tensor:
    n = torch.zeros_like(p)
    n[1] = 1.0  # ground
    for k in (P.K_QUADX, P.K_QUADZ, P.K_BOX, P.K_ELL, P.K_CYL):
        idx = torch.nonzero(kind == k).squeeze(1)
        if len(idx) == 0:
            continue
        pk = pid.index_select(-1, idx)

        def c(col: int, pk: torch.Tensor = pk) -> torch.Tensor:
            return param_columns[col].index_select(-1, pk)

        if k == P.K_QUADX:
            zero = torch.zeros_like(pk, dtype=p.dtype)
            nk = torch.stack([-torch.sign(c(P.X0)), zero, zero])
        elif k == P.K_QUADZ:
            nk = torch.tensor([0.0, 0.0, -1.0], device=p.device)[:, None].expand(3, len(idx))
        elif k == P.K_BOX:
            nk = torch.zeros((3, len(idx)), device=p.device)
            ax = face.index_select(-1, idx)
            sgn = -torch.sign(d.index_select(-1, idx).gather(0, ax[None]).squeeze(0))
            nk.scatter_(0, ax[None], sgn[None])
        elif k == P.K_ELL:
            cen = torch.stack([(c(P.X0) + c(P.X1)) * 0.5, (c(P.Y0) + c(P.Y1)) * 0.5, (c(P.Z0) + c(P.Z1)) * 0.5])
            rad = torch.stack([c(P.X1) - c(P.X0), c(P.Y1) - c(P.Y0), c(P.Z1) - c(P.Z0)]) * 0.5
            v = (p.index_select(-1, idx) - cen) / torch.clamp(rad * rad, min=1e-6)
            nk = v / torch.clamp(torch.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])[None], min=1e-9)
        else:  # K_CYL
            pp = p.index_select(-1, idx)
            vx = pp[0] - (c(P.X0) + c(P.X1)) * 0.5
            vz = pp[2] - (c(P.Z0) + c(P.Z1)) * 0.5
            ln = torch.clamp(torch.sqrt(vx * vx + vz * vz), min=1e-9)
            nk = torch.stack([vx / ln, torch.zeros_like(vx), vz / ln])
        n.index_copy_(-1, idx, nk.contiguous())
    return n


SHADOW_Z0, SHADOW_DZ, SHADOW_LEN = -10.0, 0.5, 640  # facade height profile: z from -10 m, 0.5 m steps


def _facade_profiles(scenes: list[dict[str, Any]], dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per scene: the height profile over z of the facade row on the sun's side (flat, scene-major) and
    that row's mean x (0 where there is none or no sun)."""
    prof = np.zeros((len(scenes), SHADOW_LEN), np.float32)
    xs = np.zeros(len(scenes), np.float32)
    zgrid = SHADOW_Z0 + SHADOW_DZ * (np.arange(SHADOW_LEN) + 0.5)
    for i, s in enumerate(scenes):
        lx = _sun(s["light"])[0]
        segs = [f for f in s["facades"] if f["kind"] != "gap" and f["x"] * lx > 0]
        if not segs or not s["light"]["sunny"]:
            continue
        xs[i] = float(np.mean([f["x"] for f in segs]))
        for f in segs:
            prof[i, (zgrid >= f["z0"]) & (zgrid < f["z1"])] = f["height"]
    return torch.as_tensor(prof.reshape(-1), device=dev), torch.as_tensor(xs, device=dev)


def _facade_shadow(env: _Scenes, p, L, sc, sunny, dev) -> torch.Tensor:
    """1 where the sun ray from a point hits the facade row on the sun's side of the street.

    The row is a height profile over z (one lookup per point) at the row's mean x.
    """
    out = torch.zeros(p.shape[1], device=dev)
    sel = torch.nonzero(sunny).squeeze(1)
    if len(sel) == 0:
        return out
    table, xs_t = env.facade_profiles()
    ps, Ls, ss = p.index_select(-1, sel), L.index_select(-1, sel), sc.index_select(-1, sel)
    lx = Ls[0].masked_fill(Ls[0].abs() < 1e-4, 1e-4)
    k = (xs_t.index_select(-1, ss) - ps[0]) / lx
    y = ps[1] + k * Ls[1]
    z = ps[2] + k * Ls[2]
    zi = torch.clamp(torch.floor((z - SHADOW_Z0) / SHADOW_DZ).long(), 0, SHADOW_LEN - 1)
    hh = table.index_select(-1, ss * SHADOW_LEN + zi)
    out.index_copy_(-1, sel, ((k > 0.05) & (y < hh)).float())
    return out


# ---------------- materials: base colour (and class where the material decides it) ----------------

_STREET_KEYS = ("left_edge", "right_edge", "kerb", "offset", "pave_left", "pave_right", "tex_seed", "tex_strength",
                "verge", "photo", "wear", "puddles", "marking_style", "dash_period", "dash_fraction", "edge_lines",
                "markings", "pave_tile")
_STREET_RGB = ("road_color", "pave_color", "kerb_color", "mark_color")


class _Street:
    """Every street parameter the ground needs, per scene; `at(sc)` looks them up per pixel."""

    def __init__(self, scenes, dev):
        # one (scenes,) or (3, scenes) table per key
        self.columns = {k: torch.as_tensor(np.array([s["street"][k] for s in scenes], np.float64).astype(np.float32).T.copy(),
                                           device=dev) for k in (*_STREET_KEYS, *_STREET_RGB)}

    def table(self) -> np.ndarray:
        """Every column as one (kernels.STREET_ROWS, scenes) float32 array: the keys, then the colours' rows."""
        return torch.cat([self.columns[k].reshape(-1, self.columns[k].shape[-1])
                          for k in (*_STREET_KEYS, *_STREET_RGB)]).cpu().numpy()

    def at(self, sc: torch.Tensor) -> _StreetAt:
        return _StreetAt(self, sc)


class _StreetAt:
    """The street parameters of scenes `sc`, per pixel: each key gathered on first use."""

    def __init__(self, street: _Street, sc: torch.Tensor):
        self.street, self.sc, self.cache = street, sc, {}

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self.cache:
            self.cache[key] = self.street.columns[key].index_select(-1, self.sc)
        return self.cache[key]


def _object_shadows(scenes: list[dict[str, Any]]) -> np.ndarray:
    """Shadow footprints on the ground (N, 5, K): rows x0, x1, z0, z1, darkening (0 = padding), one column
    per footprint (the layout `_ground_shadows` compares in).

    Each object's footprint, pushed away from the sun by half its height (a contact shadow under
    overcast light, a cast shadow in sun).
    """
    rows = []
    for s in scenes:
        L = _sun(s["light"])
        dx, dz = -L[0] / max(L[1], 0.2), -L[2] / max(L[1], 0.2)
        dark = s["light"]["shadow"]
        r = []
        for o in s["objects"]:
            if o["cls"] == "Car":
                hw, hl, hh = o["w"] / 2 + 0.1, o["l"] / 2 + 0.1, o["h"] * 0.35
                strength = dark + 0.2
            elif o["cls"] in ("Pedestrian", "Bicyclist"):
                hw, hl, hh = 0.25, 0.3 if o["cls"] == "Pedestrian" else 0.8, o["h"] * 0.3
                strength = dark
            elif o["cls"] == "Tree":
                hw = hl = o["crown_w"] * 0.8
                hh = (o["trunk_h"] + o["crown_h"]) * 0.5
                strength = dark * 0.7
            else:
                continue
            sx, sz = dx * hh * s["light"]["sunny"], dz * hh * s["light"]["sunny"]
            r.append((o["x"] - hw + min(sx, 0), o["x"] + hw + max(sx, 0), o["z"] - hl + min(sz, 0),
                      o["z"] + hl + max(sz, 0), min(strength, 0.8)))
        rows.append(r)
    kmax = max((len(r) for r in rows), default=0)
    out = np.zeros((len(scenes), 5, max(kmax, 1)), np.float32)
    for i, r in enumerate(rows):
        if r:
            out[i, :, : len(r)] = np.asarray(r, np.float32).T
    return out


ROAD_PX, KERB_PX, PAVE_PX, VERGE_PX = range(4)  # ground regions, each shaded on its own pixels only


def _ground(hits: _Hits, scenes, tex: TextureBank, sky_hor):
    """Road, kerb, pavement and grass verge; classes Road / Pavement / Tree (CamVid labels grass Tree).

    `hits` are in pixel order, so the pixels of one scene form one run (object shadows use that).
    """
    sc = hits.sc
    dev = hits.dev
    X, Z = hits.p[0], hits.p[2]
    street = _Street(scenes, dev)
    if kernels.enabled(dev):
        col = torch.empty((3, len(X)))
        cls = torch.empty(len(X), dtype=torch.long)
        kernels.ground(X.numpy(), Z.numpy(), sc.numpy(), street.table(), sky_hor.numpy(), _object_shadows(scenes),
                       N._TABLES["value"], N._TABLES["fbm3"], tex.on(dev).numpy(), len(tex), ROAD, PAVEMENT, TREE,
                       col.numpy(), cls.numpy())
        return col, cls
    st = street.at(sc)
    le, re, kerb = st["left_edge"], st["right_edge"], st["kerb"]
    pl, pr = st["pave_left"], st["pave_right"]
    in_road = (X >= le) & (X <= re)
    in_kerb = ((X < le) & (X >= le - kerb)) | ((X > re) & (X <= re + kerb))
    beyond = (X < le - pl) | (X > re + pr)
    grass = st["verge"] > 0.5
    cls = torch.where(in_road, torch.full_like(sc, ROAD), torch.full_like(sc, PAVEMENT))
    cls = torch.where(beyond & grass, torch.full_like(sc, TREE), cls)
    region = torch.where(in_road, ROAD_PX, torch.where(in_kerb, KERB_PX, PAVE_PX))
    region = torch.where(beyond & grass, VERGE_PX, region)
    col = torch.empty((3, len(X)), device=dev)
    for r, fn in ((ROAD_PX, _road), (KERB_PX, _kerb), (PAVE_PX, _pave), (VERGE_PX, _verge)):
        idx = torch.nonzero(region == r).squeeze(1)
        if len(idx):
            sub_sc = sc.index_select(-1, idx)
            out = fn(X.index_select(-1, idx), Z.index_select(-1, idx), street.at(sub_sc), sub_sc, tex, sky_hor)
            col.index_copy_(-1, idx, out)
    return col * _ground_shadows(scenes, X, Z, sc)[None], cls


def _ground_shadows(scenes, X: torch.Tensor, Z: torch.Tensor, sc: torch.Tensor) -> torch.Tensor:
    """Darkening factor (1 = lit) of ground points from the objects' shadow footprints, scene by scene."""
    shadows = torch.as_tensor(_object_shadows(scenes), device=X.device)
    shade_f = torch.ones_like(X)
    bounds = torch.searchsorted(sc, torch.arange(len(scenes) + 1, device=sc.device)).tolist()
    for i in range(len(scenes)):
        a, b = bounds[i], bounds[i + 1]
        fp = shadows[i][:, shadows[i, 4] > 0]
        if a == b or fp.shape[1] == 0:
            continue
        # footprints down, points across: the min runs over rows, as an elementwise min of whole rows (1.5x
        # faster than a min over a short last axis)
        x, z, f = X[None, a:b], Z[None, a:b], fp[:, :, None]
        inside = (x >= f[0]) & (x <= f[1]) & (z >= f[2]) & (z <= f[3])
        dark = torch.where(inside, 1.0 - f[4], torch.ones_like(x)).amin(0)
        shade_f[a:b] = torch.minimum(shade_f[a:b], dark)
    return shade_f


def _grain(X, Z, st):
    return fbm(X * 1.5, Z * 1.5, st["tex_seed"].long(), octaves=3) - 0.5


def _detail(X, Z, st, tex: TextureBank):
    """Photo texture detail (1 where the scene has none)."""
    detail = torch.ones_like(X)
    idx = torch.nonzero(st["photo"] > 0.5).squeeze(1)
    if len(idx):
        look = tex.lookup(torch.ones_like(idx), X.index_select(-1, idx) * 0.5, Z.index_select(-1, idx) * 0.5)
        detail.index_copy_(-1, idx, 1.0 + (look - 1.0) * 0.35)
    return detail


def _road(X, Z, st, sc, tex: TextureBank, sky_hor):
    """Asphalt grain, worn/repaired patches, cracks, wet puddles, lane markings."""
    seed = st["tex_seed"].long()
    le, re, off = st["left_edge"], st["right_edge"], st["offset"]
    road = st["road_color"] * (1.0 + st["tex_strength"] * _grain(X, Z, st) * 0.5)[None] * _detail(X, Z, st, tex)[None]
    wear = st["wear"]
    patch = value_noise(X * 0.18, Z * 0.12, seed + 5, bilinear=True)
    road = _scaled(road, patch > 1.0 - wear * 0.45, 0.82)
    crack = (value_noise(X * 2.0, Z * 0.7, seed + 17) - 0.5).abs() < 0.012 * wear
    road = _scaled(road, crack, 0.6)
    wi = torch.nonzero(st["puddles"] > 0.5).squeeze(1)
    if len(wi):
        wet = fbm(X.index_select(-1, wi) * 0.35, Z.index_select(-1, wi) * 0.2, seed.index_select(-1, wi) + 9, octaves=3,
                  bilinear=True) > 0.66
        wi = wi[wet]
        rw = road.index_select(-1, wi)
        road.index_copy_(-1, wi, rw * 0.45 + sky_hor.index_select(-1, sc.index_select(-1, wi)) * 0.45)
    style = st["marking_style"]
    period, frac = st["dash_period"], st["dash_fraction"]
    dashed = (Z / period - torch.floor(Z / period)) < frac
    centre = ((X - off).abs() < 0.07) & ((style == 1) | dashed)
    double = (style == 1) & (((X - off - 0.18).abs() < 0.06) | ((X - off + 0.18).abs() < 0.06))
    lanes = (style == 2) & dashed & (((X - off - (re - le) / 4).abs() < 0.06) | ((X - off + (re - le) / 4).abs() < 0.06))
    edges = (st["edge_lines"] > 0.5) & (((X - le - 0.3).abs() < 0.05) | ((X - re + 0.3).abs() < 0.05))
    mark = (st["markings"] > 0.5) & (centre | double | lanes | edges)
    fade = (0.9 - 0.5 * wear)[None]
    return torch.where(mark[None], road + (st["mark_color"] - road) * fade, road)


def _kerb(X, Z, st, sc, tex: TextureBank, sky_hor):
    return st["kerb_color"] * 1.12 * (1.0 + 0.1 * _grain(X, Z, st))[None]


def _pave(X, Z, st, sc, tex: TextureBank, sky_hor):
    """Pavement slabs with grout lines."""
    tile = st["pave_tile"]
    gx = (X / tile - torch.floor(X / tile)) < 0.06
    gz = (Z / tile - torch.floor(Z / tile)) < 0.06
    pave = st["pave_color"] * (1.0 + st["tex_strength"] * _grain(X, Z, st) * 0.35)[None] * _detail(X, Z, st, tex)[None]
    return _scaled(pave, gx | gz, 0.85)


def _verge(X, Z, st, sc, tex: TextureBank, sky_hor):
    """Grass behind the pavement."""
    seed = st["tex_seed"].long()
    return torch.tensor([0.28, 0.36, 0.17], device=X.device)[:, None] * (0.7 + 0.6 * fbm(X * 2, Z * 2, seed + 3))[None]


def _paint(hits: _Hits, scenes, tex, sky_hor):
    p = hits.p
    c = hits.rgb(P.R)
    seed = hits.c(P.SEED).long()
    amt, scale = hits.c(P.A0), hits.c(P.A0 + 1)
    n = fbm((p[0] + p[2]) * scale + 0.5, p[1] * scale, seed, octaves=2) - 0.5
    return c * (1.0 + amt * n)[None]


def _facade(hits: _Hits, scenes, tex: TextureBank, sky_hor):
    p = hits.p
    c, c2 = hits.rgb(P.R), hits.rgb(P.R2)
    seed = hits.c(P.SEED).long()
    kind = hits.c(P.KIND).long()
    floor_h, spacing = hits.c(P.A0), hits.c(P.A0 + 1)
    win_w, win_h, shop = hits.c(P.A0 + 2), hits.c(P.A0 + 3), hits.c(P.A0 + 4) > 0.5
    ts, photo = hits.c(P.A0 + 5), hits.c(P.A0 + 6) > 0.5
    top = hits.c(P.Y1)
    along = torch.where(kind == P.K_QUADX, p[2], p[0])
    y = p[1]
    fl = torch.floor(y / floor_h)
    fy = y / floor_h - fl
    col_i = torch.floor(along / spacing)
    fc = along / spacing - col_i
    is_win = ((fc - 0.5).abs() < win_w * 0.5) & ((fy - 0.5).abs() < win_h * 0.5) & (fl >= 1) & (y < top - 0.5)
    big = shop & (fl == 0) & (fy > 0.12) & (fy < 0.8) & ((along / (2 * spacing) - torch.floor(along / (2 * spacing))) > 0.06)
    grain = fbm(along * 0.9, y * 0.9, seed, octaves=3) - 0.5
    detail = torch.where(photo, 1.0 + (tex.lookup(torch.zeros_like(seed), along * 0.25, y * 0.25) - 1.0) * 0.6,
                         torch.ones_like(y))
    wall = c * (1.0 + ts * grain * 0.45)[None] * detail[None]
    wall = _scaled(wall, fy < 0.035, 0.9)  # string courses between floors
    wall = _scaled(wall, y > top - 0.35, 1.12)  # cornice
    wall = _scaled(wall, y < 0.4, 0.85)  # grime near the ground
    # windows: per-window brightness (curtains, lights, reflections), light frames, dark recess at the top
    wv = hash2(col_i.long(), fl.long(), seed)
    glass = c2 * (0.6 + 0.8 * wv)[None] + 0.15 * sky_hor.index_select(-1, hits.sc) * fy[None]
    # (a window's frame; shop glass has no window grid to frame: it was drawn as white panels, where real
    # shopfronts are dark glass)
    edge = (((fc - 0.5).abs() > win_w * 0.5 - 0.04 / spacing) | ((fy - 0.5).abs() > win_h * 0.5 - 0.05)) & is_win
    frame = torch.full_like(glass, 0.8)
    glass = torch.where(edge[None] & (wv > 0.3)[None], frame, glass)
    recess = (fy > 0.5 + win_h * 0.5 - 0.12) & ~edge
    glass = _scaled(glass, recess, 0.6)
    # the thin verticals a real facade is full of, all Building: a glazing bar in most windows, mullions
    # and a transom across shop glass, drainpipes down some window columns. Without them the model took
    # every thin vertical on a real facade for a Pole (three quarters of its Pole pixels were Building)
    ps = hits.param_columns[P.SEED].long()  # per-building draws: hashed once per primitive, then gathered

    def per_building(k: int) -> torch.Tensor:
        return hash2(ps, ps, k).index_select(-1, hits.pid)

    bar_c = torch.where((per_building(17) > 0.5)[None], frame, wall * 0.35)
    glazing_bar = is_win & ((fc - 0.5).abs() < 0.025 / spacing) & (wv > 0.25)
    pitch = 0.8 + 0.7 * per_building(19)  # mullion spacing in metres
    fm = along / pitch - torch.floor(along / pitch)
    mullion = big & ((fm < 0.07 / pitch) | ((fy - 0.62).abs() < 0.018))
    glass = torch.where((glazing_bar | mullion)[None], bar_c, glass)
    col = torch.where(is_win[None] | big[None], glass, wall)
    pipe_c = (wall * 0.7).masked_fill((per_building(23) > 0.4)[None], 0.09)
    pipe = (fc < 0.1 / spacing) & (hash2(col_i.long(), torch.full_like(seed, 29), seed) < 0.22) & (y < top - 0.3)
    round_ = 1.25 - 0.5 * (fc * spacing / 0.05 - 1.0).abs()  # a 10 cm pipe, lit along its middle
    return torch.where(pipe[None], pipe_c * round_[None], col)


def _foliage(hits: _Hits, scenes, tex: TextureBank, sky_hor):
    p = hits.p
    c = hits.rgb(P.R)
    seed = hits.c(P.SEED).long()
    ts = hits.c(P.A0)
    u, v = (p[0] + p[2]) * 3.0, p[1] * 3.0
    n = fbm(u, v, seed, octaves=3)
    leaf = tex.lookup(torch.full_like(seed, 2), u * 0.15, v * 0.15)
    return c * (1.0 + ts * (n - 0.5) * 1.2)[None] * (0.75 + 0.25 * leaf)[None]


def _twigs(hits: _Hits) -> tuple[torch.Tensor, torch.Tensor]:
    """A leafless crown: twig colour and twig density (0..1) over what is behind the crown."""
    p = hits.p
    c = hits.rgb(P.R)
    seed = hits.c(P.SEED).long()
    u, v = (p[0] + p[2]) * 3.0, p[1] * 3.0
    n = fbm(u, v, seed, octaves=3)
    ridge = torch.zeros_like(u)
    for k, scale in enumerate((0.6, 1.3, 2.8)):
        r = 1.0 - (2.0 * value_noise(u * scale, v * scale * 0.7, seed + 11 * k) - 1.0).abs()
        ridge = torch.maximum(ridge, r - 0.04 * k)
    dens = torch.clamp((ridge - 0.62) * 3.0, 0.0, 1.0) * (0.6 + 0.4 * fbm(u * 0.3, v * 0.3, seed + 5))
    return c * (0.5 + 0.4 * n)[None], dens


def _glass(hits: _Hits, scenes, tex, sky_hor):
    p = hits.p
    c, c2 = hits.rgb(P.R), hits.rgb(P.R2)
    n = hits.n
    y0, y1 = hits.c(P.Y0), hits.c(P.Y1)
    x0, x1, z0, z1 = hits.c(P.X0), hits.c(P.X1), hits.c(P.Z0), hits.c(P.Z1)
    ly = (p[1] - y0) / (y1 - y0)
    lx = (p[0] - x0) / (x1 - x0)
    lz = (p[2] - z0) / (z1 - z0)
    refl = sky_hor.index_select(-1, hits.sc) * (0.1 + 0.3 * ly)[None]
    col = c2 + refl
    pillar = torch.where(n[0].abs() > 0.5, (lz < 0.1) | (lz > 0.9) | ((lz - 0.5).abs() < 0.04),
                         (lx < 0.1) | (lx > 0.9))
    body = pillar | (ly > 0.9) | (n[1] > 0.5)
    return torch.where(body[None], c, col)


def _carbody(hits: _Hits, scenes, tex, sky_hor):
    p = hits.p
    c = hits.rgb(P.R)
    n = hits.n
    seed = hits.c(P.SEED).long()
    y0, y1 = hits.c(P.Y0), hits.c(P.Y1)
    x0, x1, z0, z1 = hits.c(P.X0), hits.c(P.X1), hits.c(P.Z0), hits.c(P.Z1)
    ly = (p[1] - y0) / (y1 - y0)
    lx = (p[0] - (x0 + x1) * 0.5) / ((x1 - x0) * 0.5)
    lz = (p[2] - z0) / (z1 - z0)
    end = n[2].abs() > 0.5
    rear_red = (seed % 2) == 0
    lamp_c = torch.where(rear_red[None], torch.tensor([0.7, 0.06, 0.05], device=hits.dev)[:, None],
                         torch.tensor([0.92, 0.9, 0.82], device=hits.dev)[:, None])
    lamp = end & (ly > 0.55) & (lx.abs() > 0.62) & (lx.abs() < 0.95)
    plate = end & (lx.abs() < 0.22) & (ly > 0.22) & (ly < 0.45)
    bumper = ly < 0.18
    col = c * (1.0 + 0.1 * (fbm(lx * 3, ly * 3, seed) - 0.5))[None]
    col = torch.where((n[1] > 0.5)[None], col * 1.15 + 0.05, col)  # bonnet / boot catch the sky
    col = _scaled(col, bumper, 0.45)
    col = torch.where(lamp[None], lamp_c, col)
    col = col.masked_fill(plate[None], 0.88)
    side = (~end) & (n[1] < 0.5)
    # rounded panels: a body curves away at its corners and catches the sky along its shoulder, where the
    # flat box read as one plane
    across = torch.where(end, lx.abs(), (2.0 * lz - 1.0).abs())
    shape = (1.0 - 0.35 * across ** 6) * (0.78 + 0.3 * ly)
    col = torch.where((n[1] < 0.5)[None], col * shape[None], col)
    col = torch.where(((n[1] < 0.5) & (ly > 0.8) & (ly < 0.9))[None], col * 1.25 + 0.08, col)
    # wheel arches: the dark gap around each tyre (wheels at 18 % and 82 % of the length, centre 0.32 m up)
    dz = torch.minimum((lz - 0.18).abs(), (lz - 0.82).abs()) * (z1 - z0)
    arch = side & (dz * dz + (p[1] - 0.32) ** 2 < 0.41 ** 2)
    return col.masked_fill(arch[None], 0.04)


def _sign(hits: _Hits, scenes, tex, sky_hor):
    p = hits.p
    c, c2 = hits.rgb(P.R), hits.rgb(P.R2)
    n = hits.n
    shape = hits.c(P.A0)
    seed = hits.c(P.SEED).long()
    board = hits.c(P.KIND) == P.K_QUADX  # a shop fascia along the facade (shape 3: lettering)
    lx_box = (p[0] - (hits.c(P.X0) + hits.c(P.X1)) * 0.5) / torch.clamp((hits.c(P.X1) - hits.c(P.X0)) * 0.5, min=1e-6)
    lx = torch.where(board, (p[2] - (hits.c(P.Z0) + hits.c(P.Z1)) * 0.5) /
                     torch.clamp((hits.c(P.Z1) - hits.c(P.Z0)) * 0.5, min=1e-6), lx_box)
    ly = (p[1] - (hits.c(P.Y0) + hits.c(P.Y1)) * 0.5) / ((hits.c(P.Y1) - hits.c(P.Y0)) * 0.5)
    r = torch.where(shape == 1, torch.sqrt(lx * lx + ly * ly), torch.maximum(lx.abs(), ly.abs()))
    r = torch.where(shape == 2, torch.maximum(ly.abs(), 2 * lx.abs() + ly), r)
    border = (r > 0.78) & ~board
    symbol = ((seed % 3) == 0) & (ly.abs() < 0.18) & (lx.abs() < 0.55) & ~board
    arrow = ((seed % 3) == 1) & (lx.abs() < 0.12) & (ly.abs() < 0.55) & ~board
    cell = p[2] / 0.3
    glyph = (cell - torch.floor(cell) < 0.7) & (ly.abs() < 0.5) & (lx.abs() < 0.8)
    glyph = glyph & (hash2(torch.floor(cell).long(), torch.floor((ly + 1.0) * 2.5).long(), seed) > 0.35)
    front = (n[2] < -0.5) | board
    col = torch.where((border | symbol | arrow | (board & glyph))[None], c2, c)
    return col.masked_fill(~front[None], 0.45)


def _lamp(hits: _Hits, scenes, tex, sky_hor):
    p = hits.p
    c = hits.rgb(P.R)
    n = hits.n
    lit = hits.c(P.A0)
    ly = (p[1] - hits.c(P.Y0)) / (hits.c(P.Y1) - hits.c(P.Y0))
    lx = (p[0] - (hits.c(P.X0) + hits.c(P.X1)) * 0.5) / ((hits.c(P.X1) - hits.c(P.X0)) * 0.5)
    col = c.clone()
    lamps = torch.tensor([[0.1, 0.9, 0.3], [0.95, 0.65, 0.1], [0.95, 0.1, 0.1]], device=hits.dev)
    for k, cy in enumerate((0.2, 0.5, 0.8)):
        dd = (lx * 0.45) ** 2 + (ly - cy) ** 2
        disc = (dd < 0.02) & (n[2] < -0.5)
        on = lit == k
        col = torch.where((disc & on)[None], lamps[k][:, None].expand_as(col), col)
        col = col.masked_fill((disc & ~on)[None], 0.18)
    return col


_MATERIALS = {P.M_GROUND: _ground, P.M_PAINT: _paint, P.M_FACADE: _facade, P.M_FOLIAGE: _foliage,
              P.M_GLASS: _glass, P.M_SIGN: _sign, P.M_CARBODY: _carbody, P.M_LAMP: _lamp}


def _facade_compiled(hits: _Hits, idx: torch.Tensor, tex: TextureBank, sky_hor: torch.Tensor, base: torch.Tensor):
    kernels.facade(idx.numpy(), hits.p.numpy(), hits.pid.numpy(), hits.sc.numpy(), hits.param_columns.numpy(),
                   sky_hor.numpy(), N._TABLES["white"], N._TABLES["fbm3"], tex.on(base.device).numpy(), len(tex),
                   base.numpy())


# materials with a compiled CPU kernel (`kernels`): they read the hits in place and write base[:, idx]
_COMPILED = {P.M_FACADE: _facade_compiled}

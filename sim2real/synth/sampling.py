"""Sample the randomization parameters of one scene (kept apart from rendering, and recorded).

A scene is a plain JSON-able dict: camera, street layout, lighting, sky, sensor, facade
segments and objects in world metres (x right, y up, z forward; camera at x=0, y=height, z=0).
`render.py` turns it into pixels; the dict is what `samples.jsonl` stores, so a hard sample
can be explained and regenerated alone.

Layout rules (structured randomization): cars drive in lanes or park at the kerbs, pedestrians
walk on pavements (some cross), bicyclists ride near the kerb, poles/signs/trees stand on the
pavement edge, fences line pavements, facades stand behind the pavement in segments.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sim2real.config.synthetic import SyntheticConfig

DOMAINS = ("synthetic", "proxy")

# Base palettes (display RGB in [0, 1]). "synthetic" aims at real street scenes (CamVid-like:
# grey British streets, overcast skies); "proxy" is a clearly different stand-in target domain.
PALETTES: dict[str, dict[str, list[tuple[float, float, float]]]] = {
    "synthetic": {
        "sky_top": [(0.70, 0.74, 0.82), (0.45, 0.60, 0.85), (0.82, 0.84, 0.87), (0.62, 0.68, 0.78)],
        "sky_horizon": [(0.92, 0.93, 0.95), (0.84, 0.88, 0.94), (0.97, 0.97, 0.97), (0.88, 0.89, 0.90)],
        "building": [(0.45, 0.28, 0.22), (0.62, 0.56, 0.46), (0.50, 0.50, 0.50), (0.76, 0.74, 0.70),
                     (0.26, 0.25, 0.24), (0.58, 0.50, 0.38), (0.38, 0.32, 0.28), (0.52, 0.55, 0.58)],
        "window": [(0.10, 0.11, 0.13), (0.22, 0.26, 0.31), (0.34, 0.37, 0.42), (0.07, 0.07, 0.08)],
        "road": [(0.30, 0.30, 0.33), (0.36, 0.35, 0.38), (0.26, 0.26, 0.29), (0.42, 0.41, 0.44)],
        "pavement": [(0.50, 0.49, 0.49), (0.55, 0.52, 0.50), (0.45, 0.45, 0.47), (0.60, 0.58, 0.56)],
        "foliage": [(0.20, 0.28, 0.13), (0.27, 0.35, 0.16), (0.16, 0.22, 0.12), (0.32, 0.35, 0.20)],
        "bare": [(0.34, 0.31, 0.28), (0.40, 0.38, 0.36), (0.28, 0.26, 0.24)],
        "car": [(0.82, 0.82, 0.83), (0.58, 0.59, 0.62), (0.09, 0.09, 0.10), (0.32, 0.33, 0.35),
                (0.14, 0.20, 0.40), (0.55, 0.10, 0.10), (0.14, 0.25, 0.18), (0.68, 0.64, 0.55)],
        "clothes": [(0.09, 0.09, 0.11), (0.16, 0.20, 0.32), (0.32, 0.30, 0.29), (0.50, 0.14, 0.14),
                    (0.65, 0.63, 0.58), (0.18, 0.27, 0.20), (0.42, 0.32, 0.23)],
        "skin": [(0.82, 0.65, 0.54), (0.60, 0.44, 0.33), (0.38, 0.27, 0.19)],
        "pole": [(0.42, 0.43, 0.44), (0.14, 0.18, 0.16), (0.11, 0.11, 0.12), (0.58, 0.58, 0.56)],
        "sign": [(0.10, 0.28, 0.68), (0.80, 0.12, 0.12), (0.92, 0.92, 0.90), (0.90, 0.75, 0.10),
                 (0.10, 0.45, 0.25)],
        "fence": [(0.12, 0.18, 0.14), (0.10, 0.10, 0.11), (0.52, 0.53, 0.55), (0.42, 0.31, 0.21)],
    },
    "proxy": {
        "sky_top": [(0.55, 0.45, 0.65), (0.85, 0.55, 0.40)],
        "sky_horizon": [(0.98, 0.78, 0.55), (0.95, 0.70, 0.62)],
        "building": [(0.85, 0.55, 0.60), (0.35, 0.65, 0.65), (0.90, 0.80, 0.45), (0.55, 0.45, 0.75)],
        "window": [(0.95, 0.85, 0.50), (0.20, 0.10, 0.25)],
        "road": [(0.45, 0.30, 0.28), (0.38, 0.28, 0.30)],
        "pavement": [(0.80, 0.70, 0.50), (0.75, 0.62, 0.58)],
        "foliage": [(0.50, 0.55, 0.15), (0.60, 0.45, 0.12)],
        "bare": [(0.55, 0.40, 0.30)],
        "car": [(0.95, 0.40, 0.10), (0.20, 0.70, 0.85), (0.95, 0.90, 0.20), (0.60, 0.20, 0.55)],
        "clothes": [(0.90, 0.30, 0.50), (0.30, 0.80, 0.40), (0.95, 0.95, 0.30)],
        "skin": [(0.95, 0.75, 0.60), (0.70, 0.50, 0.40)],
        "pole": [(0.80, 0.20, 0.20), (0.95, 0.95, 0.95)],
        "sign": [(0.20, 0.90, 0.40), (0.95, 0.30, 0.85)],
        "fence": [(0.85, 0.60, 0.30), (0.30, 0.30, 0.80)],
    },
}

# The proxy target domain: a different camera, light and sensor (applied on top of the config)
PROXY_OVERRIDES: dict[str, Any] = {
    "camera_height_m": (1.7, 2.2), "camera_pitch_deg": (2.0, 8.0), "camera_hfov_deg": (70.0, 84.0),
    "sunny_p": 0.9, "sun_elevation_deg": (5.0, 18.0), "haze": (0.3, 0.7),
    "texture_strength": (0.1, 0.3), "photo_texture_p": 0.0, "palette_jitter": (0.0, 0.1),
    "exposure": (0.9, 1.4), "white_balance": (0.05, 0.15), "saturation": (1.2, 1.5),
    "vignette": (0.45, 0.7), "noise_std": (0.04, 0.07), "blur_sigma": (0.8, 1.6), "jpeg_quality": (25, 45),
}


def scene_seed(dataset_seed: int, index: int, domain: str = "synthetic") -> int:
    """The seed of sample `index` of a dataset: a pure function of (dataset seed, index, domain)."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; choose one of {list(DOMAINS)}")
    ss = np.random.SeedSequence([int(dataset_seed) & 0xFFFFFFFF, int(index), DOMAINS.index(domain)])
    return int(ss.generate_state(1)[0] & 0x7FFFFFFF)


def domain_config(cfg: SyntheticConfig, domain: str) -> SyntheticConfig:
    """The knobs used for `domain` (the proxy domain overrides camera, light and sensor)."""
    if domain == "synthetic":
        return cfg
    if domain == "proxy":
        return cfg.model_copy(update=PROXY_OVERRIDES)
    raise ValueError(f"unknown domain {domain!r}; choose one of {list(DOMAINS)}")


class _Sampler:
    def __init__(self, seed: int, palette: dict[str, list], jitter: float):
        self.rng = np.random.default_rng(seed)
        self.palette = palette
        self.jitter = jitter

    def u(self, r: tuple[float, float] | list[float]) -> float:
        # numpy's uniform(lo, hi) is lo + (hi - lo) * random(): the same double, without its call overhead
        return float(r[0]) + (float(r[1]) - float(r[0])) * self.rng.random() if r[1] > r[0] else float(r[0])

    def i(self, r: tuple[int, int]) -> int:
        return int(self.rng.integers(r[0], r[1] + 1))

    def p(self, prob: float) -> bool:
        return bool(self.rng.random() < prob)

    def logu(self, lo: float, hi: float) -> float:
        """Log-uniform: as many objects per doubling of distance (more near, like real streets)."""
        lo = max(lo, 0.5)
        hi = max(hi, lo)
        return float(math.exp(self.rng.uniform(math.log(lo), math.log(hi))))

    def seed(self) -> int:
        return int(self.rng.integers(0, 1 << 24))

    def child(self, seed: int) -> _Sampler:
        """A sampler of its own seed with this one's palette and jitter: its draws leave this one's stream as it was."""
        return _Sampler(seed, self.palette, self.jitter)

    def color(self, key: str, spread: float = 0.06) -> list[float]:
        options = self.palette[key]
        r0, r1, r2, r3, r4 = self.rng.random(5).tolist()  # python floats: rounding numpy scalars is slow
        n = len(options)
        b0, b1, b2 = options[min(int(r0 * n), n - 1)]
        amount = spread + self.jitter
        gain = 1.0 + (2 * r1 - 1) * amount
        # unrolled over the three channels, each clamped to 0..1 (scene sampling 1.2x faster than with a loop)
        c0 = b0 * gain + (2 * r2 - 1) * amount * 0.35
        c1 = b1 * gain + (2 * r3 - 1) * amount * 0.35
        c2 = b2 * gain + (2 * r4 - 1) * amount * 0.35
        return [round(0.0 if c0 < 0.0 else 1.0 if c0 > 1.0 else c0, 4),
                round(0.0 if c1 < 0.0 else 1.0 if c1 > 1.0 else c1, 4),
                round(0.0 if c2 < 0.0 else 1.0 if c2 > 1.0 else c2, 4)]


def _r(v: float) -> float:
    return round(float(v), 4)


def sample_scene(cfg: SyntheticConfig, seed: int, domain: str = "synthetic") -> dict[str, Any]:
    """Sample all randomization parameters of one scene.

    Args:
        cfg: the `synthetic:` knobs.
        seed: the scene seed (see `scene_seed`).
        domain: "synthetic" or "proxy" (the embedded stand-in target domain).

    Returns:
        A JSON-able dict fully describing the scene (input of `render.render_scenes`).
    """
    k = domain_config(cfg, domain)
    s = _Sampler(seed, PALETTES[domain], jitter=0.0)
    s.jitter = s.u(k.palette_jitter)
    # the draw order is part of the determinism contract: camera, street, light, sky, sensor, facades, objects
    cam = {"height": _r(s.u(k.camera_height_m)), "pitch": _r(s.u(k.camera_pitch_deg)),
           "roll": _r(s.u(k.camera_roll_deg) * (1 if s.p(0.5) else -1)),
           "yaw": _r(s.u(k.camera_yaw_deg) * (1 if s.p(0.5) else -1)), "hfov": _r(s.u(k.camera_hfov_deg))}
    street, sides = _sample_street(k, s)
    light, sky, sensor = _sample_light(k, s)
    scenery = _sample_scenery(k, s, sides)
    objects = _sample_objects(k, s, street)
    return {"seed": int(seed), "domain": domain, "camera": cam, "street": street, "light": light, "sky": sky,
            "sensor": sensor, **scenery, "objects": objects}


def _sample_street(k: SyntheticConfig, s: _Sampler) -> tuple[dict[str, Any], tuple[tuple[int, float, float], ...]]:
    """Road, kerbs, pavements, markings and their colours and textures; and per side of the street
    (side, road edge, pavement width) unrounded, where the facades stand."""
    road_w = s.u(k.road_width_m)
    offset = s.u(k.road_offset_m)
    # the camera drives on the road: keep it inside the kerbs
    offset = float(np.clip(offset, -road_w / 2 + 0.9, road_w / 2 - 0.9)) if road_w > 1.8 else 0.0
    left_edge, right_edge = offset - road_w / 2, offset + road_w / 2
    pave_l, pave_r = s.u(k.pavement_width_m), s.u(k.pavement_width_m)
    kerb = s.u(k.kerb_width_m)
    sides = ((-1, left_edge, pave_l), (1, right_edge, pave_r))
    return {
        "road_width": _r(road_w), "offset": _r(offset), "left_edge": _r(left_edge), "right_edge": _r(right_edge),
        "pave_left": _r(pave_l), "pave_right": _r(pave_r), "kerb": _r(kerb),
        "markings": int(s.p(k.lane_marking_p)), "marking_style": int(s.rng.integers(3)),
        "dash_period": _r(s.u((6.0, 12.0))), "dash_fraction": _r(s.u((0.3, 0.6))),
        "edge_lines": int(s.p(0.5)), "wear": _r(s.u(k.road_wear)), "puddles": int(s.p(k.puddle_p)),
        "road_color": s.color("road", 0.08), "pave_color": s.color("pavement", 0.08),
        "kerb_color": s.color("pavement", 0.05), "mark_color": [0.88, 0.88, 0.86] if s.p(0.9) else [0.85, 0.72, 0.2],
        "pave_tile": _r(s.u((0.3, 0.9))), "tex_seed": s.seed(), "tex_strength": _r(s.u(k.texture_strength)),
        "photo": int(s.p(k.photo_texture_p)), "photo_id": s.seed(),
        "verge": int(s.p(0.3)),  # grass behind the pavement (CamVid labels it Tree) vs more paving
    }, sides


def _sample_light(k: SyntheticConfig, s: _Sampler) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(light, sky, sensor): sun or overcast, the sky gradient and clouds, the camera's sensor."""
    sunny = s.p(k.sunny_p)
    light = {"sunny": int(sunny), "elev": _r(s.u(k.sun_elevation_deg) if sunny else 75.0),
             "azim": _r(s.u((-180.0, 180.0))),
             "ambient": _r(s.u((0.55, 0.7)) if sunny else s.u((0.85, 1.0))),
             "sun": _r(s.u((0.5, 0.8)) if sunny else s.u((0.05, 0.15))),
             "shadow": _r(s.u((0.35, 0.6)) if sunny else s.u((0.15, 0.3)))}
    sky = {"top": s.color("sky_top", 0.05), "horizon": s.color("sky_horizon", 0.03),
           "clouds": _r(s.u(k.cloud_cover)), "cloud_scale": _r(s.u((0.6, 1.6))), "seed": s.seed(),
           "haze": _r(s.u(k.haze))}
    if not sunny:  # overcast: paler, greyer sky
        sky["top"] = [_r(0.5 * a + 0.5 * b) for a, b in zip(sky["top"], sky["horizon"], strict=False)]
    sensor = {"exposure": _r(s.u(k.exposure)),
              "wb": [_r(1.0 + s.u((-1.0, 1.0)) * s.u(k.white_balance)) for _ in range(3)],
              "saturation": _r(s.u(k.saturation)), "vignette": _r(s.u(k.vignette)),
              "noise": _r(s.u(k.noise_std)), "blur": _r(s.u(k.blur_sigma)),
              "jpeg": s.i(k.jpeg_quality), "seed": s.seed(), "footprint": k.sensor_footprint}
    return light, sky, sensor


def _sample_scenery(k: SyntheticConfig, s: _Sampler, sides: tuple[tuple[int, float, float], ...]
                    ) -> dict[str, Any]:
    """What lines the street: facade segments (buildings, tree rows, gaps), backdrops, far wall, horizon."""
    facades, backdrops = [], []
    far_z = s.u((60.0, 180.0)) if s.p(k.far_wall_p) else None
    end_z = far_z if far_z is not None else 260.0
    for side, edge, pave in sides:
        base_x = edge + side * (pave + s.u(k.facade_setback_m))
        z = -4.0
        while z < end_z:
            length = s.u(k.segment_length_m)
            facades.append(_facade_segment(k, s, side, base_x, z, min(z + length, end_z)))
            z += length
        if s.p(k.backdrop_p):
            kind = "trees" if s.p(0.55) else "building"
            backdrops.append({"side": side, "x": _r(base_x + side * s.u((10.0, 40.0))), "kind": kind,
                              "height": _r(s.u((6.0, 16.0) if kind == "trees" else (6.0, 22.0))),
                              "color": s.color("foliage" if kind == "trees" else "building"), "seed": s.seed()})
    far_wall = None
    if far_z is not None:
        far_wall = {"z": _r(far_z), "height": _r(s.u((8.0, 25.0))), "color": s.color("building"),
                    "window": s.color("window", 0.05), "seed": s.seed(), "kind": "building" if s.p(0.75) else "trees"}
    horizon_band = {"height": _r(s.u((3.0, 14.0))), "seed": s.seed(), "tree_frac": _r(s.u((0.2, 0.8))),
                    "color": s.color("building"), "tree_color": s.color("foliage")} if s.p(0.7) else None
    return {"facades": facades, "backdrops": backdrops, "far_wall": far_wall, "horizon_band": horizon_band}


def _facade_segment(k: SyntheticConfig, s: _Sampler, side: int, base_x: float, z0: float, z1: float
                    ) -> dict[str, Any]:
    """One segment along the street: a building, a row of trees, or a gap (sometimes a wall or fence)."""
    r = s.rng.random()
    kind = "building" if r < k.building_p else ("trees" if r < k.building_p + k.tree_row_p else "gap")
    seg = {"side": side, "z0": _r(z0), "z1": _r(z1), "kind": kind,
           "x": _r(base_x + side * s.u((0.0, 1.5))), "seed": s.seed()}
    if kind == "building":
        seg.update(height=_r(s.u(k.building_height_m)), color=s.color("building"),
                   window=s.color("window", 0.05), floor_h=_r(s.u((2.8, 3.6))),
                   win_spacing=_r(s.u((1.6, 3.6))), win_w=_r(s.u((0.3, 0.7))), win_h=_r(s.u((0.35, 0.65))),
                   shop=int(s.p(0.45)), shop_color=s.color("building", 0.1),
                   tex=_r(s.u(k.texture_strength)), photo=int(s.p(k.photo_texture_p)))
        if seg["shop"] and seg["seed"] % 2 == 0:  # half the shops: a sign projecting on a bracket, 0.45-0.75 m
            seg["sign"] = _r(0.45 + 0.05 * (seg["seed"] // 2 % 7))  # from the seed: the other draws stay
    elif kind == "trees":
        bare = s.p(0.45)  # CamVid is winter: many leafless trees
        seg.update(height=_r(s.u((4.0, 14.0))), color=s.color("bare" if bare else "foliage"),
                   bare=int(bare), tex=_r(s.u(k.texture_strength)))
    else:  # a gap: low wall / fence panels sometimes
        seg.update(height=_r(s.u((1.0, 2.0)) if s.p(0.4) else 0.0), color=s.color("fence"))
    return seg


def _free(placed: list[tuple[float, float, float, float]], x0: float, x1: float, z0: float, z1: float) -> bool:
    for a0, a1, b0, b1 in placed:  # a plain loop: a generator under all() cost 1 ms of a scene's 2.6
        if x1 > a0 and x0 < a1 and z1 > b0 and z0 < b1:
            return False
    return True


class _Placer:
    """Where objects may stand: footprints never overlap; lanes, kerbs and pavements of one street."""

    def __init__(self, k: SyntheticConfig, s: _Sampler, st: dict[str, Any]):
        self.s, self.st = s, st
        self.lo, self.hi = k.object_distance_m
        self.le, self.re, self.kerb = st["left_edge"], st["right_edge"], st["kerb"]
        self.placed: list[tuple[float, float, float, float]] = [(-0.9, 0.9, -3.0, 3.5)]  # our own car
        # poles, pedestrians and cars reach further down the street (CamVid: many small, distant ones)
        self.far = (self.lo * 1.5, self.hi * 1.25)
        self.lanes = [st["offset"] - st["road_width"] / 4, st["offset"] + st["road_width"] / 4]

    def place(self, w: float, length: float, xfn, tries: int = 12, zr: tuple[float, float] | None = None
              ) -> tuple[float, float] | None:
        zr = zr or (self.lo, self.hi)
        for _ in range(tries):
            x, z = xfn(), self.s.logu(*zr)
            if _free(self.placed, x - w / 2, x + w / 2, z - length / 2, z + length / 2):
                self.placed.append((x - w / 2, x + w / 2, z - length / 2, z + length / 2))
                return x, z
        return None

    def pave_x(self, margin: float = 0.3) -> float:
        s, st = self.s, self.st
        side = -1 if s.p(0.5) else 1
        edge, pave = (self.le, st["pave_left"]) if side < 0 else (self.re, st["pave_right"])
        return edge + side * (self.kerb + margin + s.rng.random() * max(pave - self.kerb - 2 * margin, 0.05))

    def kerb_x(self, inset: float) -> float:
        return self.le + inset if self.s.p(0.5) else self.re - inset


def _sample_objects(k: SyntheticConfig, s: _Sampler, st: dict[str, Any]) -> list[dict[str, Any]]:
    """Objects with layout rules, class by class in a fixed draw order; footprints never overlap."""
    at = _Placer(k, s, st)
    return [*_cars(k, s, at), *_people(k, s, at), *_street_furniture(k, s, at), *_fences(k, s, at)]


def _cars(k: SyntheticConfig, s: _Sampler, at: _Placer) -> list[dict[str, Any]]:
    """Cars and vans, driving in a lane or parked at a kerb."""
    objs = []
    for _ in range(s.i(k.num_cars)):
        w, h, length = s.u((1.65, 1.95)), s.u((1.35, 1.65)), s.u((3.8, 4.9))
        if s.p(0.12):  # van
            h, length = s.u((1.9, 2.5)), s.u((4.8, 6.0))
        parked = s.p(0.5)
        xfn = (lambda w=w: at.kerb_x(w / 2 + 0.15)) if parked else \
            (lambda: at.lanes[int(s.rng.integers(2))] + s.u((-0.4, 0.4)))
        pos = at.place(w, length + 0.8, xfn, zr=at.far)
        if pos:
            objs.append({"cls": "Car", "x": _r(pos[0]), "z": _r(pos[1]), "w": _r(w), "h": _r(h), "l": _r(length),
                         "color": s.color("car", 0.05), "cabin": _r(s.u((0.45, 0.6))), "seed": s.seed()})
    return objs


def _people(k: SyntheticConfig, s: _Sampler, at: _Placer) -> list[dict[str, Any]]:
    """Pedestrians on the pavements (some crossing) and bicyclists near the kerb."""
    objs = []
    for _ in range(s.i(k.num_pedestrians)):
        crossing = s.p(0.15)
        xfn = (lambda: s.u((at.le + 0.5, at.re - 0.5))) if crossing else at.pave_x
        pos = at.place(0.5, 0.5, xfn, zr=at.far)
        if pos:
            objs.append({"cls": "Pedestrian", "x": _r(pos[0]), "z": _r(pos[1]), "h": _r(s.u((1.5, 1.92))),
                         "w": _r(s.u((0.4, 0.55))), "stride": _r(s.u((0.0, 0.35))), "top": s.color("clothes"),
                         "legs": s.color("clothes"), "skin": s.color("skin", 0.03), "seed": s.seed()})
    for _ in range(s.i(k.num_bicyclists)):
        pos = at.place(0.7, 1.9, lambda: at.kerb_x(s.u((0.6, 1.4))))
        if pos:
            objs.append({"cls": "Bicyclist", "x": _r(pos[0]), "z": _r(pos[1]), "h": _r(s.u((1.6, 1.85))),
                         "top": s.color("clothes"), "legs": s.color("clothes"), "skin": s.color("skin", 0.03),
                         "bike": s.color("pole"), "seed": s.seed()})
    return objs


def _street_furniture(k: SyntheticConfig, s: _Sampler, at: _Placer) -> list[dict[str, Any]]:
    """Poles and bollards, signs and traffic lights, trees: on the pavement edge."""
    objs = []
    kerb = at.kerb
    for _ in range(s.i(k.num_poles)):
        pos = at.place(0.3, 0.3, lambda: at.pave_x(0.25) if s.p(0.3) else at.kerb_x(-(kerb + s.u((0.2, 0.5)))),
                       zr=at.far)
        if pos:
            bollard = s.p(0.4)  # bollards and short posts: CamVid's poles are mostly small fragments
            objs.append({"cls": "Pole", "x": _r(pos[0]), "z": _r(pos[1]),
                         "h": _r(s.u((0.8, 1.2)) if bollard else s.u((2.5, 7.0))),
                         "r": _r(s.u((0.06, 0.12)) if bollard else s.u((0.03, 0.08))),
                         "arm": int(not bollard and s.p(0.3)), "color": s.color("pole"), "seed": s.seed()})
    for _ in range(s.i(k.num_signs)):
        pos = at.place(0.4, 0.4, lambda: at.kerb_x(-(kerb + s.u((0.2, 0.7)))))
        if pos:
            light = s.p(0.3)
            objs.append({"cls": "SignSymbol", "x": _r(pos[0]), "z": _r(pos[1]), "pole_h": _r(s.u((2.0, 3.6))),
                         "size": _r(s.u((0.8, 1.6))), "shape": int(s.rng.integers(3)), "light": int(light),
                         "color": s.color("sign", 0.03), "color2": s.color("sign", 0.03),
                         "pole_color": s.color("pole"), "seed": s.seed()})
    for _ in range(s.i(k.num_trees)):
        pos = at.place(1.0, 1.0, lambda: at.pave_x(0.5))
        if pos:
            bare = s.p(0.5)
            objs.append({"cls": "Tree", "x": _r(pos[0]), "z": _r(pos[1]), "trunk_h": _r(s.u((2.0, 4.5))),
                         "trunk_r": _r(s.u((0.1, 0.25))), "crown_w": _r(s.u((1.5, 4.5))),
                         "crown_h": _r(s.u((2.0, 5.5))), "bare": int(bare),
                         "color": s.color("bare" if bare else "foliage"), "seed": s.seed()})
    return objs


def _fences(k: SyntheticConfig, s: _Sampler, at: _Placer) -> list[dict[str, Any]]:
    """A fence along each pavement, sometimes."""
    objs = []
    for side in (-1, 1):
        if s.p(k.fence_p):
            edge = at.le if side < 0 else at.re
            z0 = s.u((-4.0, 20.0))
            objs.append({"cls": "Fence", "side": side, "x": _r(edge + side * (at.kerb + s.u((0.2, 0.5)))),
                         "z0": _r(z0), "z1": _r(z0 + s.u((15.0, 80.0))), "h": _r(s.u((1.0, 1.8))),
                         "bar": _r(s.u((0.1, 0.25))), "color": s.color("fence"), "seed": s.seed(),
                         # solid share of each bar period: railings to close-boarded panels (CamVid labels
                         # a railing as one fence region, not as separate bars)
                         "fill": _r(s.u((0.45, 1.0)))})
            objs[-1].update(_fence_setting(s.child(objs[-1]["seed"]), at, side, k.fence_back_p))
    return objs


def _fence_setting(sub: _Sampler, at: _Placer, side: int, back_p: float) -> dict[str, Any]:
    """Where a railing stands and what is behind it: at the kerb, or (with chance `back_p`) at the back of the
    pavement on a low wall with a hedge behind it, as CamVid's are (its railings in front of bushes were
    called Tree).

    `sub` draws from the fence's own seed (`_Sampler.child`), so every other draw of the scene stays as it was.
    """
    if not sub.p(back_p):
        return {}
    pave = at.st["pave_left"] if side < 0 else at.st["pave_right"]
    edge = at.le if side < 0 else at.re
    out: dict[str, Any] = {"x": _r(edge + side * max(pave - 0.15, at.kerb + 0.2))}
    if sub.p(0.5):
        out.update(plinth=_r(sub.u((0.3, 0.7))), plinth_color=sub.color("building"))
    if sub.p(0.75):
        out.update(hedge=_r(sub.u((0.3, 1.8))), hedge_gap=_r(sub.u((0.3, 0.9))), hedge_color=sub.color("foliage"))
    return out

"""Scene dict -> table of 3-D primitives (planes, boxes, ellipsoids, cylinders) with materials.

Each row of the float32 table is one primitive: scene index, kind, material, class, its
axis-aligned bounds in world metres, two colours, a seed and material/alpha parameters.
The renderer ray-casts every primitive inside its projected bounding box, so visibility and
occlusion (painter's order done right: a per-pixel depth test) come out exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim2real.taxonomy import CLASS_ID

# table columns
SCN, KIND, MAT, CLS = 0, 1, 2, 3
X0, Y0, Z0, X1, Y1, Z1 = 4, 5, 6, 7, 8, 9
R, G, B, R2, G2, B2 = 10, 11, 12, 13, 14, 15
SEED = 16
A0 = 17  # material params A0..A7 = columns 17..24
ALPHA, AL0, AL1 = 25, 26, 27
NCOL = 28

# kinds
K_GROUND, K_QUADX, K_QUADZ, K_BOX, K_ELL, K_CYL = 0, 1, 2, 3, 4, 5
# materials
M_GROUND, M_PAINT, M_FACADE, M_FOLIAGE, M_GLASS, M_SIGN, M_CARBODY, M_LAMP = range(8)
# alpha (cut-out) tests that decide visibility
AL_NONE, AL_SILHOUETTE, AL_FOLIAGE, AL_BARS, AL_SIGN, AL_RING, AL_SKYLINE, AL_RAILING = range(8)
# AL_RAILING: bars and rails like AL_BARS, but see-through in the veil layer: what is behind shows between the
# bars and the whole band is labelled Fence, as CamVid labels a railing with the bushes seen through it


class _Table:
    def __init__(self, scene: int):
        self.scene = scene
        self.rows: list[np.ndarray] = []

    def add(self, kind: int, mat: int, cls: str | int, lo: tuple[float, float, float],
            hi: tuple[float, float, float], color: list[float], color2: list[float] | None = None,
            seed: int = 0, params: tuple[float, ...] = (), alpha: int = AL_NONE,
            al: tuple[float, float] = (0.0, 0.0)) -> None:
        # a plain list per row, one array per scene at the end: a numpy row per primitive cost 1 ms a scene
        c2 = color2 if color2 is not None else color
        row = [self.scene, kind, mat, CLASS_ID[cls] if isinstance(cls, str) else cls, *lo, *hi, *color, *c2,
               seed % (1 << 24), *params, *(0.0,) * (ALPHA - A0 - len(params)), alpha, *al]
        if len(row) != NCOL:
            raise ValueError(f"primitive row of {len(row)} values, expected {NCOL}: {row}")
        self.rows.append(row)


def _darker(c: list[float], f: float) -> list[float]:
    return [v * f for v in c]


def build_primitives(scene: dict[str, Any], index: int) -> np.ndarray:
    """All primitives of one scene as a (P, NCOL) float32 table (scene column = `index`)."""
    t = _Table(index)
    st = scene["street"]
    t.add(K_GROUND, M_GROUND, "Road", (-1e4, 0, -1e4), (1e4, 0, 1e4), st["road_color"], st["pave_color"],
          seed=st["tex_seed"])
    for seg in scene["facades"]:
        _facade(t, seg)
    for bd in scene["backdrops"]:
        side, x = bd["side"], bd["x"]
        if bd["kind"] == "trees":
            t.add(K_QUADX, M_FOLIAGE, "Tree", (x, 0, 0), (x, bd["height"], 400), bd["color"], seed=bd["seed"],
                  params=(0.8, 0.0), alpha=AL_SILHOUETTE, al=(bd["height"] * 0.5, 0.15))
        else:
            t.add(K_QUADX, M_FACADE, "Building", (x, 0, 0), (x, bd["height"], 400), bd["color"],
                  _darker(bd["color"], 0.5), seed=bd["seed"], params=(3.2, 3.0, 0.5, 0.5, 0, 0.6, 0),
                  alpha=AL_SKYLINE, al=(12.0, 0.35))
        del side
    fw = scene["far_wall"]
    if fw is not None:
        if fw["kind"] == "building":
            t.add(K_QUADZ, M_FACADE, "Building", (-300, 0, fw["z"]), (300, fw["height"], fw["z"]), fw["color"],
                  fw["window"], seed=fw["seed"], params=(3.2, 3.0, 0.5, 0.5, 0, 0.6, 0), alpha=AL_SKYLINE,
                  al=(10.0, 0.4))
        else:
            t.add(K_QUADZ, M_FOLIAGE, "Tree", (-300, 0, fw["z"]), (300, fw["height"], fw["z"]),
                  scene["horizon_band"]["tree_color"] if scene["horizon_band"] else [0.25, 0.32, 0.18],
                  seed=fw["seed"], params=(0.8, 0.0), alpha=AL_SILHOUETTE, al=(fw["height"] * 0.5, 0.1))
    hb = scene["horizon_band"]
    if hb is not None:
        z = 600.0
        t.add(K_QUADZ, M_FOLIAGE, "Tree", (-2000, 0, z), (2000, hb["height"], z), hb["tree_color"], seed=hb["seed"],
              params=(0.6, 0.0), alpha=AL_SILHOUETTE, al=(hb["height"] * 0.6, 0.05))
        t.add(K_QUADZ, M_FACADE, "Building", (-2000, 0, z - 1), (2000, hb["height"] * 0.9, z - 1), hb["color"],
              _darker(hb["color"], 0.6), seed=hb["seed"] + 1, params=(3.0, 3.0, 0.5, 0.5, 0, 0.6, 0),
              alpha=AL_SKYLINE, al=(25.0, 1.0 - hb["tree_frac"]))
    for obj in scene["objects"]:
        _OBJECTS[obj["cls"]](t, obj)
    return np.array(t.rows, np.float64).astype(np.float32)


def _facade(t: _Table, seg: dict[str, Any]) -> None:
    side, x, z0, z1 = seg["side"], seg["x"], seg["z0"], seg["z1"]
    if z1 - z0 < 0.1:
        return
    if seg["kind"] == "building":
        params = (seg["floor_h"], seg["win_spacing"], seg["win_w"], seg["win_h"], seg["shop"], seg["tex"],
                  1.0 if seg.get("photo") else 0.0)
        t.add(K_QUADX, M_FACADE, "Building", (x, 0, z0), (x, seg["height"], z1), seg["color"], seg["window"],
              seed=seg["seed"], params=params)
        # the side wall facing the camera: hidden by a neighbour in front of it, seen where it protrudes
        x_out = x + side * 8.0
        lo, hi = (min(x, x_out), 0, z0), (max(x, x_out), seg["height"], z0)
        t.add(K_QUADZ, M_FACADE, "Building", lo, hi, seg["color"], seg["window"], seed=seg["seed"] + 7,
              params=params)
        if seg["shop"]:
            # a shop fascia with its name, labelled Building as CamVid's are; CamVid's SignSymbol on a facade
            # is the sign projecting from it on a bracket, drawn on half the shops
            xo = x - side * 0.2
            zl = z0 + 0.3 + (z1 - z0 - 0.6) * 0.15
            t.add(K_QUADX, M_SIGN, "Building", (xo, 2.55, zl), (xo, 3.25, z1 - 0.3 - (z1 - z0 - 0.6) * 0.15),
                  seg["shop_color"], [0.92, 0.9, 0.85], seed=seg["seed"] + 3, params=(3.0, 0.0))
            sd, size = seg["seed"], seg.get("sign", 0.0)
            if size > 0:
                xa, xb = x - side * 0.25, x - side * (0.25 + size)
                t.add(K_BOX, M_SIGN, "SignSymbol", (min(xa, xb), 3.35, zl - 0.03), (max(xa, xb), 3.35 + size, zl + 0.03),
                      seg["shop_color"], [0.92, 0.9, 0.85], seed=sd + 5, params=(0.0, 0.0))
                t.add(K_BOX, M_PAINT, "SignSymbol", (min(x, xb), 3.35 + size, zl - 0.02),
                      (max(x, xb), 3.4 + size, zl + 0.02), [0.1, 0.1, 0.1], seed=sd + 6, params=(0.1, 0.0))
    elif seg["kind"] == "trees":
        t.add(K_QUADX, M_FOLIAGE, "Tree", (x, 0, z0), (x, seg["height"], z1), seg["color"], seed=seg["seed"],
              params=(seg["tex"], float(seg.get("bare", 0))), alpha=AL_SILHOUETTE, al=(seg["height"] * 0.45, 0.35))
    elif seg["height"] > 0:  # a wall or panel fence in the gap
        t.add(K_QUADX, M_PAINT, "Fence", (x, 0, z0), (x, seg["height"], z1), seg["color"], seed=seg["seed"],
              params=(0.5, 3.0), alpha=AL_BARS, al=(0.6, 0.92))


def _car(t: _Table, o: dict[str, Any]) -> None:
    x, z, w, h, length = o["x"], o["z"], o["w"], o["h"], o["l"]
    c, sd = o["color"], o["seed"]
    body_top = 0.25 + (h - 0.25) * (1.0 - o["cabin"])
    z0, z1 = z - length / 2, z + length / 2
    t.add(K_BOX, M_CARBODY, "Car", (x - w / 2, 0.22, z0), (x + w / 2, body_top, z1), c, seed=sd,
          params=(0.15, 0.0))
    # cabin: narrower, set back; its glass is the car's darkest, most recognisable part
    inset = 0.09 * w
    cz0, cz1 = z0 + 0.22 * length, z1 - 0.18 * length
    t.add(K_BOX, M_GLASS, "Car", (x - w / 2 + inset, body_top, cz0), (x + w / 2 - inset, h, cz1), c,
          [0.10, 0.11, 0.13], seed=sd + 1, params=(0.35, 0.0))
    # wheels: round tyres bulging out of the body's sides with a lighter hub, so that a car seen from the
    # side or three-quarters shows its wheels as real ones do (a box wheel tucked under the body showed
    # none, and the only round dark wheels left to learn were the bicycle's)
    r = 0.32
    for wz in (z0 + 0.18 * length, z1 - 0.18 * length):
        for k in (-1.0, 1.0):
            xs = x + k * w / 2  # the body's side plane
            t.add(K_ELL, M_PAINT, "Car", (xs - 0.09, 0.0, wz - r), (xs + 0.09, 2 * r, wz + r), [0.05, 0.05, 0.055],
                  seed=sd + 2, params=(0.1, 0.0))
            hx = xs + k * 0.05
            t.add(K_ELL, M_PAINT, "Car", (hx - 0.05, r - 0.14, wz - 0.14), (hx + 0.05, r + 0.14, wz + 0.14),
                  [0.42, 0.42, 0.44] if sd % 3 else [0.12, 0.12, 0.13], seed=sd + 4, params=(0.15, 0.0))


def _pedestrian(t: _Table, o: dict[str, Any]) -> None:
    """A person on foot: legs apart, arms hanging to the thighs, sometimes a long coat; some seen walking
    across the view (the stride then spreads the legs sideways). The pose comes from the seed, so the
    scene's other draws do not change."""
    x, z, h, w, sd = o["x"], o["z"], o["h"], o["w"], o["seed"]
    leg_h = 0.47 * h
    stride = o["stride"]
    across = sd % 3 == 0  # walking across the view: legs spread along x
    coat = sd % 5 < 2
    for k in (-1, 1):
        if across:
            lx, dz = x + k * (0.03 + stride / 2), 0.0
        else:
            lx, dz = x + k * 0.075 * w / 0.45, k * stride / 2
        t.add(K_BOX, M_PAINT, "Pedestrian", (lx - 0.055, 0.0, z + dz - 0.08), (lx + 0.055, leg_h + 0.05, z + dz + 0.08),
              o["legs"], seed=sd, params=(0.2, 6.0))
    t.add(K_ELL, M_PAINT, "Pedestrian", (x - w / 2, leg_h - 0.05, z - 0.15), (x + w / 2, 0.86 * h, z + 0.15),
          o["top"], seed=sd + 1, params=(0.2, 6.0))
    if coat:  # a coat to the knees: the torso's colour over the thighs
        t.add(K_BOX, M_PAINT, "Pedestrian", (x - 0.4 * w, 0.27 * h, z - 0.13), (x + 0.4 * w, leg_h + 0.02, z + 0.13),
              o["top"], seed=sd + 1, params=(0.2, 6.0))
    for k in (-1, 1):  # arms hang from the shoulders to the thighs
        ax = x + k * (w / 2 - 0.035)
        t.add(K_BOX, M_PAINT, "Pedestrian", (ax - 0.04, 0.42 * h, z - 0.05), (ax + 0.04, 0.8 * h, z + 0.05),
              o["top"], seed=sd + 2, params=(0.2, 6.0))
    t.add(K_BOX, M_PAINT, "Pedestrian", (x - 0.05, 0.84 * h, z - 0.05), (x + 0.05, 0.9 * h, z + 0.05),
          o["skin"], seed=sd + 3, params=(0.1, 6.0))  # neck
    hr = 0.068 * h
    t.add(K_ELL, M_PAINT, "Pedestrian", (x - hr * 0.8, h - 2 * hr, z - hr * 0.9), (x + hr * 0.8, h, z + hr * 0.9),
          o["skin"], seed=sd + 3, params=(0.1, 6.0))


def _bicyclist(t: _Table, o: dict[str, Any]) -> None:
    x, z, _h, sd = o["x"], o["z"], o["h"], o["seed"]
    wr = 0.34
    for wz in (z - 0.52, z + 0.52):
        t.add(K_ELL, M_PAINT, "Bicyclist", (x - 0.03, 0.0, wz - wr), (x + 0.03, 2 * wr, wz + wr), [0.05, 0.05, 0.05],
              seed=sd, params=(0.1, 0.0), alpha=AL_RING, al=(0.78, 0.0))
    t.add(K_BOX, M_PAINT, "Bicyclist", (x - 0.03, wr - 0.03, z - 0.5), (x + 0.03, wr + 0.42, z + 0.5), o["bike"],
          seed=sd + 1, params=(0.1, 0.0))
    seat = wr + 0.5
    t.add(K_BOX, M_PAINT, "Bicyclist", (x - 0.12, 0.15, z - 0.12), (x + 0.12, seat, z + 0.1), o["legs"],
          seed=sd + 2, params=(0.2, 6.0))
    t.add(K_ELL, M_PAINT, "Bicyclist", (x - 0.2, seat - 0.05, z - 0.2), (x + 0.2, seat + 0.62, z + 0.25), o["top"],
          seed=sd + 3, params=(0.2, 6.0))
    hr = 0.11
    t.add(K_ELL, M_PAINT, "Bicyclist", (x - hr, seat + 0.6, z + 0.05), (x + hr, seat + 0.6 + 2 * hr, z + 0.05 + 2 * hr),
          o["skin"], seed=sd + 4, params=(0.1, 6.0))


def _pole(t: _Table, o: dict[str, Any]) -> None:
    x, z, h, r, c, sd = o["x"], o["z"], o["h"], o["r"], o["color"], o["seed"]
    t.add(K_CYL, M_PAINT, "Pole", (x - r, 0.0, z - r), (x + r, h, z + r), c, seed=sd, params=(0.15, 2.0))
    if o["arm"]:
        side = 1.0 if x < 0 else -1.0  # lamp arms reach over the road
        x1 = x + side * 1.2
        t.add(K_BOX, M_PAINT, "Pole", (min(x, x1), h - 0.12, z - 0.05), (max(x, x1), h, z + 0.05), c, seed=sd + 1,
              params=(0.15, 2.0))
        t.add(K_BOX, M_PAINT, "Pole", (x1 - 0.25, h - 0.2, z - 0.12), (x1 + 0.25, h - 0.05, z + 0.12), c,
              seed=sd + 2, params=(0.1, 2.0))


def _sign(t: _Table, o: dict[str, Any]) -> None:
    x, z, ph, s, sd = o["x"], o["z"], o["pole_h"], o["size"], o["seed"]
    t.add(K_CYL, M_PAINT, "Pole", (x - 0.045, 0.0, z - 0.045), (x + 0.045, ph, z + 0.045), o["pole_color"], seed=sd,
          params=(0.1, 2.0))
    if o["light"]:
        t.add(K_BOX, M_LAMP, "SignSymbol", (x - 0.16, ph, z - 0.22), (x + 0.16, ph + 0.85, z - 0.05),
              [0.08, 0.08, 0.08], o["color"], seed=sd + 1, params=(float(sd % 3), 0.0))
    else:
        t.add(K_BOX, M_SIGN, "SignSymbol", (x - s / 2, ph, z - 0.08), (x + s / 2, ph + s, z - 0.05), o["color"],
              o["color2"], seed=sd + 1, params=(float(o["shape"]), 0.0), alpha=AL_SIGN, al=(float(o["shape"]), 0.0))


def _tree(t: _Table, o: dict[str, Any]) -> None:
    x, z, sd = o["x"], o["z"], o["seed"]
    th, tr, cw, ch = o["trunk_h"], o["trunk_r"], o["crown_w"], o["crown_h"]
    trunk_c = [0.28, 0.24, 0.2]
    t.add(K_CYL, M_PAINT, "Tree", (x - tr, 0.0, z - tr), (x + tr, th + ch * 0.5, z + tr), trunk_c, seed=sd,
          params=(0.3, 4.0))
    holes = 0.15 if o["bare"] else 0.3  # bare crowns: solid envelope (twigs drawn over the sky)
    t.add(K_ELL, M_FOLIAGE, "Tree", (x - cw, th, z - cw), (x + cw, th + 2 * ch, z + cw), o["color"], seed=sd + 1,
          params=(0.9, float(o["bare"])), alpha=AL_FOLIAGE, al=(holes, 1.0 + o["bare"]))


def _fence(t: _Table, o: dict[str, Any]) -> None:
    x, z0, z1, sd = o["x"], o["z0"], o["z1"], o["seed"]
    t.add(K_QUADX, M_PAINT, "Fence", (x, 0.0, z0), (x, o["h"], z1), o["color"], seed=sd,
          params=(0.15, 2.0), alpha=AL_RAILING, al=(o["bar"], o.get("fill", 0.3)))
    side = o["side"]
    if o.get("plinth"):  # the low wall the railing stands on, labelled Fence with it
        xp = x - side * 0.02
        t.add(K_QUADX, M_PAINT, "Fence", (xp, 0.0, z0), (xp, o["plinth"], z1), o["plinth_color"], seed=sd + 1,
              params=(0.3, 3.0))
    if o.get("hedge"):  # a hedge behind it: seen through the railing (Fence there), Tree above it
        xh = x + side * o["hedge_gap"]
        top = o["h"] + o["hedge"]
        t.add(K_QUADX, M_FOLIAGE, "Tree", (xh, 0.0, z0), (xh, top, z1), o["hedge_color"], seed=sd + 2,
              params=(0.9, 0.0), alpha=AL_SILHOUETTE, al=(o["hedge"] * 0.6, 0.8))


_OBJECTS = {"Car": _car, "Pedestrian": _pedestrian, "Bicyclist": _bicyclist, "Pole": _pole, "SignSymbol": _sign,
            "Tree": _tree, "Fence": _fence}

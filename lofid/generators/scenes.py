"""The procedural painter's still pictures: one cozy illustration per scene.

`paint(spec, seed, width, height)` draws the parts of a scene that do not move and
says where the moving parts go (windows for rain, lights that flicker, cups that
steam, curtains, the figure, reflections, sky, air for dust). The animation lives
elsewhere and only reads this contract.

How a picture is made:
1. the view outside (sky, skyline, hills) is drawn into its own buffer, in its final
   colours, following time of day and weather;
2. the room is drawn into an RGBA layer in plain surface colours; glass panes are
   holes in that layer;
3. a light map (ambient light of the hour plus pools from lamps and windows) multiplies
   the room, so one lamp warms the desk and the wall around it;
4. the room is laid over the view, then emissive things (bulbs, glows, lit windows)
   are added, and a soft vignette closes the frame.
Composition (where things are, how many) is drawn from generators seeded by the seed
and the scene alone, so the same seed keeps its layout across sizes and weathers.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from lofid.scene import SCENES, TIMES, WEATHERS

from . import canvas as cv
from .canvas import mix, rgb, scale

PAINTER_VERSION = 1

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, x1/y1 exclusive, inside the frame

SCENE_NAMES = SCENES
LIGHT_KINDS = ("lamp", "fairy", "candle", "monitor", "city", "star", "sun")

MIN_SIZE = 32


@dataclass
class Light:
    x: float
    y: float                              # centre, pixels
    radius: float                         # glow radius, pixels
    color: tuple[float, float, float]     # 0..1 RGB
    kind: str                             # one of LIGHT_KINDS


@dataclass
class Figure:
    """A person, not drawn into the background: composited over it each frame."""
    rgba: np.ndarray                      # (h, w, 4) float32, straight alpha, 0..1
    x: int
    y: int                                # top-left in the frame
    hair: np.ndarray                      # (h, w) float32 0..1 mask of hair within rgba
    chest_y: int                          # row within rgba around which breathing scales the torso


@dataclass
class Painting:
    background: np.ndarray                # (H, W, 3) float32 0..1, everything that does not move
    windows: list[Rect]                   # glass panes: rain runs down these; outside is visible
    lights: list[Light]                   # things that glow/flicker
    cups: list[tuple[int, int, float]]    # (x, y, scale): top centre of hot drinks where steam rises
    curtains: list[Rect]                  # curtain regions (in background) that may drift
    figure: Figure | None
    reflections: list[Rect]               # water / glossy areas that shimmer
    sky: Rect | None                      # open sky (stars, snow outside)
    air: Rect                             # interior volume where dust motes float
    palette: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    # (H, W) float32 0..1: how much of each pixel is see-through glass, so rain on the
    # glass stays off a plant or a candle standing in front of the pane.
    glass: np.ndarray | None = None


# ---------------------------------------------------------------- palettes

# Sky from zenith to horizon, per time of day.
_SKY = {
    "morning": [rgb("#9fc3e6"), rgb("#cfe0ee"), rgb("#f8dcc0")],
    "day": [rgb("#6fa6dc"), rgb("#a9cdec"), rgb("#dcebf5")],
    "golden_hour": [rgb("#7d9cc9"), rgb("#e8b27a"), rgb("#ffd590")],
    "sunset": [rgb("#2e2a66"), rgb("#b4507c"), rgb("#f49660")],
    "night": [rgb("#070b22"), rgb("#111a44"), rgb("#2b3470")],
}
# Light that fills a room at that hour (multiplies surface colours).
_AMBIENT = {
    "morning": rgb("#ecd8c0"),
    "day": rgb("#eeeeea"),
    "golden_hour": rgb("#f0c490"),
    "sunset": rgb("#b88a9a"),
    "night": rgb("#363e6c"),
}
# Lamp light, warm at every hour.
_WARM = rgb("#ffb866")
# Far buildings against the sky, per time.
_CITY = {
    "morning": rgb("#9aa6bc"),
    "day": rgb("#8fa0b8"),
    "golden_hour": rgb("#9a7f86"),
    "sunset": rgb("#4c3560"),
    "night": rgb("#141a3a"),
}
_WEATHER_AMBIENT = {
    "clear": (1.0, 1.0, 1.0),
    "rain": (0.72, 0.76, 0.86),
    "snow": (0.95, 0.98, 1.05),
    "fog": (0.88, 0.9, 0.93),
    "storm": (0.5, 0.53, 0.65),
}

# Book spines: muted, harmonious.
_BOOKS = [rgb(h) for h in ("#b5543c", "#d08c4a", "#e3b85c", "#6d8f6a", "#3f6f86",
                           "#8a5a7a", "#c9b79c", "#5a4a6e", "#a3413d", "#7d9b9a",
                           "#e0d2b8", "#2f4f5f")]
_WALLS = [rgb(h) for h in ("#e9dcc6", "#d9c8a9", "#c7d1c0", "#e3c9b3", "#cfd4d8", "#d8c2a0")]
_WOOD = [rgb(h) for h in ("#8a5a3c", "#9c6b45", "#6e4a33", "#a77c55")]
_HAIR = [rgb(h) for h in ("#2a1e1c", "#3b2a22", "#5a3a28", "#1d1b26", "#6b4a3a")]
_SWEATER = [rgb(h) for h in ("#c96f4a", "#d9a05b", "#6f8fa6", "#8f6f9a", "#7c9a6a", "#e0c9a6")]


def _season_leaf(season, k=0):
    if season == "autumn":
        return [rgb("#c8642e"), rgb("#d98c38"), rgb("#a8452a")][k % 3]
    if season == "spring":
        return [rgb("#7fb45a"), rgb("#9ccc6a"), rgb("#5f9a48")][k % 3]
    if season == "winter":
        return [rgb("#4f7a5c"), rgb("#5e8466"), rgb("#466e58")][k % 3]
    if season == "summer":
        return [rgb("#3f9a4a"), rgb("#4fae52"), rgb("#2f8a44")][k % 3]
    return [rgb("#5f8f58"), rgb("#74a060"), rgb("#4c7c4a")][k % 3]


# ---------------------------------------------------------------- context

class _Ctx:
    """Everything one picture is made of while it is being painted."""

    def __init__(self, spec, seed: int, width: int, height: int):
        self.spec = spec
        self.W, self.H = width, height
        self.s = min(width, height) / 720.0          # object scale: 1.0 at 720 p
        self.seed = int(seed) & 0xFFFFFFFFFFFFFFFF
        self.scene_index = SCENE_NAMES.index(spec.scene)
        self.time = spec.time_of_day
        self.weather = spec.weather
        self.season = spec.season
        self.christmas = spec.theme == "christmas"
        self.night = self.time == "night"
        self.layer = np.zeros((height, width, 4), dtype=np.float32)
        self.view = np.zeros((height, width, 3), dtype=np.float32)
        amb = np.array(_AMBIENT[self.time], dtype=np.float32) * np.array(
            _WEATHER_AMBIENT[self.weather], dtype=np.float32)
        self.ambient = tuple(float(x) for x in amb)
        self.lightmap = np.empty((height, width, 3), dtype=np.float32)
        self.lightmap[:] = amb
        self.emissive: list = []                      # callables run after lighting
        self.windows: list[Rect] = []
        self.lights: list[Light] = []
        self.cups: list[tuple[int, int, float]] = []
        self.curtains: list[Rect] = []
        self.reflections: list[Rect] = []
        self.figure: Figure | None = None
        self.sky: Rect | None = None
        self.air: Rect = (0, 0, width, height)
        self.rim = ((0.0, -1.0), (0.8, 0.8, 0.8))     # direction towards the key light, its colour
        self.figure_args = None                        # (centre x, bottom y, height) of a person
        self.figure_cap = False

    def rng(self, tag: str) -> np.random.Generator:
        """A generator for one part of the picture, independent of every other part."""
        return np.random.default_rng([self.seed, self.scene_index, zlib.crc32(tag.encode())])

    def rect(self, x0, y0, x1, y1) -> Rect:
        """Integer rect clipped to the frame."""
        x0 = int(min(max(round(x0), 0), self.W - 1))
        y0 = int(min(max(round(y0), 0), self.H - 1))
        x1 = int(min(max(round(x1), x0 + 1), self.W))
        y1 = int(min(max(round(y1), y0 + 1), self.H))
        return (x0, y0, x1, y1)

    # light -------------------------------------------------------------
    def pool(self, x, y, radius, color, strength):
        """Light falling on surfaces around (x, y)."""
        cv.glow(self.lightmap, x, y, radius, color, strength, mode="sum")

    def add_light(self, x, y, radius, color, kind):
        self.lights.append(Light(float(x), float(y), float(radius), tuple(float(c) for c in color), kind))


# ---------------------------------------------------------------- the view outside

def _sky(ctx: _Ctx, rect, horizon: float):
    """Sky gradient, sun or moon, clouds and stars inside rect (in ctx.view)."""
    x0, y0, x1, y1 = rect
    t = ctx.time
    top, mid, low = _SKY[t]
    if ctx.weather in ("rain", "storm"):
        grey = rgb("#5d6676") if ctx.weather == "rain" else rgb("#33384a")
        if ctx.night:
            grey = scale(grey, 0.35)
        top, mid, low = (mix(c, grey, 0.75) for c in (top, mid, low))
    elif ctx.weather == "snow":
        pale = rgb("#c9d2de") if not ctx.night else rgb("#2a3150")
        top, mid, low = (mix(c, pale, 0.6) for c in (top, mid, low))
    elif ctx.weather == "fog":
        pale = rgb("#c8ccd2") if not ctx.night else rgb("#343a55")
        top, mid, low = (mix(c, pale, 0.55) for c in (top, mid, low))
    sky_top = min(y0, 0)
    cv.fill(ctx.view, x0, y0, x1, y1, cv.vgradient(sky_top, horizon, [(0.0, top), (0.55, mid), (1.0, low)]))
    rng = ctx.rng("sky")
    sun_x = ctx.W * rng.uniform(0.25, 0.75)
    clear = ctx.weather in ("clear", "snow")
    if ctx.night:
        if ctx.weather == "clear":
            n = int(220 * (x1 - x0) * (horizon - y0) / (ctx.W * ctx.H) + 30)
            srng = ctx.rng("stars")
            xs = srng.uniform(x0, x1, n)
            ys = y0 + (horizon - y0) * srng.random(n) ** 1.6
            bs = srng.uniform(0.3, 1.0, n)
            twinkling = 0
            for sx, sy, b in zip(xs, ys, bs):
                r = max(1.0, 1.6 * ctx.s) * (0.6 + b)
                cv.glow(ctx.view, sx, sy, r * 1.6, (0.9, 0.92, 1.0), b)
                if b > 0.85 and twinkling < 24:   # the brightest few may twinkle
                    ctx.add_light(sx, sy, r * 3, (0.9, 0.92, 1.0), "star")
                    twinkling += 1
        moon_y = y0 + (horizon - y0) * 0.25
        if ctx.weather in ("clear", "snow", "fog"):
            mr = 26 * ctx.s
            cv.glow(ctx.view, sun_x, moon_y, mr * 5, rgb("#6c78b8"), 0.35)
            cv.circle(ctx.view, sun_x, moon_y, mr, rgb("#f3ecd2"), soft=1.5)
            cv.circle(ctx.view, sun_x + mr * 0.45, moon_y - mr * 0.2, mr * 0.95, mix(top, mid, 0.5), soft=2)
    elif clear:
        sun_y = {"morning": 0.55, "day": 0.2, "golden_hour": 0.6, "sunset": 0.68}[t]
        sy = y0 + (horizon - y0) * sun_y if t != "day" else min(y0, 0) + (horizon - min(y0, 0)) * 0.2
        sr = {"morning": 34, "day": 30, "golden_hour": 44, "sunset": 56}[t] * ctx.s
        sun_col = {"morning": rgb("#fff2c8"), "day": rgb("#fffbea"),
                   "golden_hour": rgb("#ffd27a"), "sunset": rgb("#ffb070")}[t]
        cv.glow(ctx.view, sun_x, sy, sr * 7, sun_col, 0.45)
        cv.circle(ctx.view, sun_x, sy, sr, mix(sun_col, (1, 1, 1), 0.4), soft=2.5)
        if x0 <= sun_x < x1 and y0 <= sy < y1:
            ctx.add_light(sun_x, sy, sr * 4, sun_col, "sun")
    # clouds: soft value noise, denser in bad weather
    cover = {"clear": 0.55, "snow": 0.35, "fog": 0.2, "rain": 0.25, "storm": 0.15}[ctx.weather]
    w, h = x1 - x0, int(max(min(horizon, y1) - y0, 1))
    if w > 4 and h > 4:
        # soft shapes: worked out at a quarter of the size, then enlarged
        sw, sh = max(w // 4, 2), max(h // 4, 2)
        n = cv.noise(ctx.rng("clouds"), sw, sh, cell=15 * ctx.s, stretch=3.5) * 0.7 + cv.noise(
            ctx.rng("clouds2"), sw, sh, cell=5.5 * ctx.s, stretch=3.0) * 0.3
        # clouds thin out towards the horizon, where they would be seen edge on
        n = n * np.clip(1.15 - 0.5 * (np.arange(sh, dtype=np.float32)[:, None] / sh), 0, 1)
        k = cv.resize(np.clip((n - cover) / 0.25, 0, 1), w, h)[..., None]
        cloud = {"morning": rgb("#fbe8dc"), "day": rgb("#f6f8fa"), "golden_hour": rgb("#ffd9a8"),
                 "sunset": rgb("#f3a08a"), "night": rgb("#262c55")}[t]
        if ctx.weather in ("rain", "storm"):
            cloud = scale(mix(cloud, rgb("#505868"), 0.6), 0.35 if ctx.night else 1.0)
        amount = 0.55 if ctx.weather == "clear" else 0.4
        sub = ctx.view[y0:y0 + h, x0:x1]
        sub += k * amount * (np.array(cloud, dtype=np.float32) - sub)


_FACADES = [rgb(h) for h in ("#c98f6f", "#d8c3a0", "#8f9fb4", "#b7a08c", "#a7b4b8", "#c7a8a0", "#9a8a7e")]


def _skyline(ctx: _Ctx, rect, horizon: float, layers=2, lit=None, tag="city", height=0.8):
    """Rows of buildings standing on `horizon`, far rows paler; lit windows at dusk and night.

    `height` is the tallest near building as a fraction of the sky seen above the horizon."""
    x0, y0, x1, y1 = rect
    s = ctx.s
    rng = ctx.rng(tag)
    if lit is None:
        lit = {"night": 0.45, "sunset": 0.3, "golden_hour": 0.08}.get(ctx.time, 0.0)
        if ctx.weather in ("rain", "storm"):
            lit = max(lit, 0.2)
    base = _CITY[ctx.time]
    amb = _AMBIENT[ctx.time]
    sky_low = _SKY[ctx.time][2]
    snowy = ctx.weather == "snow"
    city_lights = []
    sky_h = max(horizon - y0, 40 * s)
    sun_side = 1 if ctx.rng("sky").uniform(0.25, 0.75) > 0.5 else -1
    for layer in range(layers):
        far = layer < layers - 1
        maxh = min(sky_h * height * (0.75 if far else 1.0), 0.5 * ctx.H)
        k = 0.8 if far else 1.0
        x = -rng.uniform(0, 60) * s
        while x < ctx.W + 40:
            bw = rng.uniform(50, 120) * s * k
            bh = rng.uniform(0.3, 1.0) * maxh
            gap = rng.uniform(-10, 14) * s
            roof = int(rng.integers(0, 4))
            facade = _FACADES[int(rng.integers(len(_FACADES)))]
            table = rng.random(64)
            tint = rng.random()
            top = horizon - bh
            bx0, bx1 = x, x + bw
            x = bx1 + gap
            if bx1 < x0 or bx0 > x1:
                continue
            if ctx.time in ("day", "morning", "golden_hour"):
                col = mix(tuple(f * a for f, a in zip(facade, amb)), base, 0.45)
            else:
                col = mix(base, facade, 0.12)
            col = mix(col, sky_low, 0.5) if far else scale(col, 0.85)
            cv.rect(ctx.view, bx0, top, bx1, horizon + 4, col, soft=1)
            if roof == 1:
                cv.rect(ctx.view, bx0 + bw * 0.3, top - 14 * s, bx0 + bw * 0.55, top + 1, col)
            elif roof == 2:
                cv.line(ctx.view, [(bx0 + bw * 0.5, top), (bx0 + bw * 0.5, top - 30 * s)], 2 * s, col)
            if not far and ctx.time != "night":
                # the side facing the sun is lighter
                sx = bx0 if sun_side < 0 else bx1 - bw * 0.22
                cv.rect(ctx.view, sx, top, sx + bw * 0.22, horizon, mix(col, sky_low, 0.35), soft=1)
            if snowy:
                cv.rect(ctx.view, bx0 - 1, top - 3 * s, bx1 + 1, top + 3 * s,
                        rgb("#e8eef6") if not ctx.night else rgb("#8a94b8"), radius=3 * s)
            # windows: one vectorised pattern per building
            cell_w, cell_h = 14 * s * k, 20 * s * k
            p_lit = lit * (0.7 if far else 1.0)
            wx0, wy0 = bx0 + 6 * s, top + 8 * s
            if p_lit > 0:
                win_col = mix(rgb("#ffcf7a"), rgb("#ffe9b0"), tint)
                alpha = 0.9 if not far else 0.6
            else:  # daylight windows: darker glass
                win_col, p_lit, alpha = scale(col, 0.7), 0.85, 0.7

            def cover(xs, ys, wx0=wx0, wy0=wy0, cw=cell_w, ch=cell_h, table=table, p=p_lit, bx1=bx1, a=alpha):
                u = (xs - wx0) / cw
                v = (ys - wy0) / ch
                inside = ((u % 1.0) < 0.5) & ((v % 1.0) < 0.45) & (u >= 0) & (v >= 0) & (xs < bx1 - 4 * s)
                idx = (np.floor(u).astype(int) * 7 + np.floor(v).astype(int) * 13) % 64
                return (inside & (table[idx] < p)).astype(np.float32) * a

            cv.shade(ctx.view, bx0, wy0, bx1, horizon, cover, win_col)
            if lit > 0.2 and not far and len(city_lights) < 10 and tint < 0.5:
                city_lights.append((bx0 + bw * 0.5, top + bh * 0.3, bw * 0.6, win_col))
    for (lx, ly, lr, lc) in city_lights:
        if x0 <= lx < x1 and y0 <= ly < y1:
            ctx.add_light(lx, ly, lr, lc, "city")


def _hills(ctx: _Ctx, rect, horizon: float):
    """Rolling hills and a few trees (for views out of a house rather than a flat)."""
    x0, y0, x1, y1 = rect
    rng = ctx.rng("hills")
    green = _season_leaf(ctx.season, 0)
    for k in (0.55, 0.8, 1.0):
        col = mix(mix(green, _SKY[ctx.time][2], 0.6 * (1 - k)), _AMBIENT[ctx.time], 0.3)
        col = tuple(c * a for c, a in zip(col, _AMBIENT[ctx.time]))
        if ctx.weather == "snow" or ctx.season == "winter":
            col = mix(col, rgb("#eef2f8") if not ctx.night else rgb("#6a7498"), 0.7 * k)
        ph, amp = rng.uniform(0, 6), rng.uniform(12, 30) * ctx.s
        base = horizon - (1 - k) * 50 * ctx.s
        pts = [(x, base - amp * (0.6 + 0.4 * np.sin(x / (180 * ctx.s) + ph))) for x in
               np.linspace(x0 - 2, x1 + 2, 24)]
        pts += [(x1 + 2, y1 + 2), (x0 - 2, y1 + 2)]
        cv.polygon(ctx.view, pts, col, soft=1.5)
    for _ in range(int(rng.integers(3, 7))):
        tx = rng.uniform(x0, x1)
        th = rng.uniform(30, 60) * ctx.s
        col = scale(mix(green, (0, 0, 0), 0.3), _AMBIENT[ctx.time][1])
        cv.ellipse(ctx.view, tx, horizon - th * 0.6, th * 0.3, th * 0.5, col, soft=1.5)


def _street_trees(ctx: _Ctx, rect, horizon: float):
    """Trees in front of the buildings, so the season shows outside: blossom, green, orange, bare."""
    x0, y0, x1, y1 = rect
    s = ctx.s
    rng = ctx.rng("trees")
    amb = _AMBIENT[ctx.time]
    if ctx.night:
        amb = tuple(a * 0.5 for a in amb)
    crowns = {"spring": [rgb("#f2b8c8"), rgb("#e89ab0"), rgb("#9cc46a")],
              "summer": [rgb("#3f8a44"), rgb("#4f9e4e"), rgb("#2f7a3c")],
              "autumn": [rgb("#d9752e"), rgb("#c8542a"), rgb("#e8a23c")],
              "winter": None}[ctx.season]
    trunk = tuple(c * a for c, a in zip(rgb("#4a3428"), amb))
    x = rng.uniform(-80, 40) * s
    while x < ctx.W + 80 * s:
        th = rng.uniform(60, 110) * s
        r = rng.uniform(30, 50) * s
        offs = rng.uniform(-1, 1, (6, 3))
        pick = rng.integers(0, 3, 6)
        tx, x = x, x + rng.uniform(120, 260) * s
        if tx + r * 2 < x0 or tx - r * 2 > x1:
            continue
        base = horizon + 10 * s
        cv.line(ctx.view, [(tx, base), (tx, base - th)], 6 * s, trunk)
        if crowns is None:   # bare branches, a little snow on them
            for o in offs:
                cv.line(ctx.view, [(tx, base - th * 0.6), (tx + o[0] * r, base - th - o[1] * r * 0.6)], 3 * s, trunk)
            if ctx.weather == "snow":
                cv.ellipse(ctx.view, tx, base - th - r * 0.2, r * 0.6, r * 0.15, rgb("#eef2f8"), alpha=0.7)
            continue
        for o, k in zip(offs, pick):
            col = tuple(c * a for c, a in zip(crowns[k], amb))
            cv.circle(ctx.view, tx + o[0] * r * 0.7, base - th - o[1] * r * 0.5, r * (0.55 + 0.15 * o[2]), col, soft=1.5)


def _weather_over_view(ctx: _Ctx, rect, horizon: float):
    """Haze for fog and rain, whiteness for snow: laid over the finished view."""
    x0, y0, x1, y1 = rect
    sub = ctx.view[y0:y1, x0:x1]
    if ctx.weather == "fog":
        fogc = np.array(rgb("#cfd3d8") if not ctx.night else rgb("#3a4060"), np.float32)
        sub += 0.55 * (fogc - sub)
    elif ctx.weather in ("rain", "storm"):
        haze = np.array(mix(_SKY[ctx.time][2], rgb("#6a7282"), 0.7), np.float32)
        if ctx.night:
            haze = haze * 0.3
        sub += 0.3 * (haze - sub)
    elif ctx.weather == "snow":
        sub += 0.15 * (np.array(rgb("#e6ecf4") if not ctx.night else rgb("#4a5478"), np.float32) - sub)


def _view(ctx: _Ctx, rect, horizon: float, kind="city", blur=0.0, height=0.8):
    rect = ctx.rect(*rect)
    _sky(ctx, rect, horizon)
    if kind == "city":
        _skyline(ctx, rect, horizon, height=height)
    elif kind == "hills":
        _hills(ctx, rect, horizon)
    x0, y0, x1, y1 = rect
    ground = mix(_CITY[ctx.time], rgb("#3a3a44"), 0.4)
    if ctx.weather == "snow":
        ground = rgb("#e4eaf2") if not ctx.night else rgb("#5a6488")
    if kind == "city":
        cv.fill(ctx.view, x0, horizon, x1, y1, scale(ground, 0.8))
        if ctx.season is not None:
            _street_trees(ctx, rect, horizon)
    _weather_over_view(ctx, rect, horizon)
    if blur > 0:
        cv.blur(ctx.view, x0, y0, x1, y1, blur)


# ---------------------------------------------------------------- room parts

def _hole(ctx: _Ctx, x0, y0, x1, y1):
    """Cut a glass pane out of the room layer so the view shows through."""
    reg = ctx.rect(x0, y0, x1, y1)
    ctx.layer[reg[1]:reg[3], reg[0]:reg[2]] = 0.0


def _wall(ctx: _Ctx, color, y0, y1, x0=0, x1=None):
    x1 = ctx.W if x1 is None else x1
    cv.fill(ctx.layer, x0, y0, x1, y1, cv.vgradient(y0, y1, [scale(color, 0.86), color, scale(color, 0.95)]))


def _floor(ctx: _Ctx, y0, color, y1=None):
    y1 = ctx.H if y1 is None else y1
    cv.fill(ctx.layer, 0, y0, ctx.W, y1, cv.vgradient(y0, y1, [scale(color, 0.75), color]))
    # boards
    n = 9
    for i in range(1, n):
        xb = ctx.W * i / n
        cv.line(ctx.layer, [(ctx.W / 2 + (xb - ctx.W / 2) * 0.55, y0), (ctx.W / 2 + (xb - ctx.W / 2) * 1.6, y1)],
                1.2 * ctx.s, scale(color, 0.8), alpha=0.5)


def _window(ctx: _Ctx, x0, y0, x1, y1, cols=2, rows=2, frame=None, sill=True,
            curtains=None, view="city", horizon=None, blur=0.0):
    """A window: view, panes (registered), frame, sill, optional curtains. Returns glass rect."""
    s = ctx.s
    frame = frame or rgb("#f1ebe0")
    fw = 12 * s
    gx0, gy0, gx1, gy1 = x0 + fw, y0 + fw, x1 - fw, y1 - fw
    horizon = gy0 + (gy1 - gy0) * 0.78 if horizon is None else horizon
    _view(ctx, (gx0, gy0, gx1, gy1), horizon, view, blur)
    if ctx.weather == "snow" or ctx.season == "winter":
        # snow piled on the outside ledge, seen at the bottom of the glass
        rng = ctx.rng("sillsnow%d" % len(ctx.windows))
        snow = rgb("#f4f7fb") if not ctx.night else rgb("#9aa4c8")
        pts = [(gx0 - 2, gy1 + 2)]
        for xx in np.linspace(gx0, gx1, 10):
            pts.append((xx, gy1 - (6 + 6 * rng.random()) * s))
        pts.append((gx1 + 2, gy1 + 2))
        cv.polygon(ctx.view, pts, snow, soft=2)
    # frame as a rounded box, then the hole
    cv.rect(ctx.layer, x0, y0, x1, y1, frame, radius=3 * s)
    _hole(ctx, gx0, gy0, gx1, gy1)
    # window light falls into the room
    day = not ctx.night
    sky_low = _SKY[ctx.time][2]
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    strength = {"morning": 0.32, "day": 0.28, "golden_hour": 0.4, "sunset": 0.3, "night": 0.15}[ctx.time]
    if ctx.weather in ("rain", "storm"):
        strength *= 0.6
    ctx.pool(cx, cy, max(x1 - x0, y1 - y0) * 1.3, sky_low if day else rgb("#6070b0"), strength)
    # mullions, drawn over the glass
    bar = 7 * s
    panes_x = np.linspace(gx0, gx1, cols + 1)
    panes_y = np.linspace(gy0, gy1, rows + 1)
    for xm in panes_x[1:-1]:
        cv.rect(ctx.layer, xm - bar / 2, gy0, xm + bar / 2, gy1, frame)
    for ym in panes_y[1:-1]:
        cv.rect(ctx.layer, gx0, ym - bar / 2, gx1, ym + bar / 2, frame)
    for i in range(cols):
        for j in range(rows):
            ax0 = panes_x[i] + (bar / 2 if i else 0)
            ax1 = panes_x[i + 1] - (bar / 2 if i < cols - 1 else 0)
            ay0 = panes_y[j] + (bar / 2 if j else 0)
            ay1 = panes_y[j + 1] - (bar / 2 if j < rows - 1 else 0)
            ctx.windows.append(ctx.rect(ax0, ay0, ax1, ay1))
    # inner shadow at the top of the frame gives it depth
    cv.rect(ctx.layer, gx0, gy0, gx1, gy0 + 5 * s, scale(frame, 0.7), alpha=0.5, soft=3 * s)
    if sill:
        cv.rect(ctx.layer, x0 - 14 * s, y1 - 4 * s, x1 + 14 * s, y1 + 12 * s, scale(frame, 0.95), radius=2 * s)
        cv.rect(ctx.layer, x0 - 14 * s, y1 + 12 * s, x1 + 14 * s, y1 + 18 * s, scale(frame, 0.7), alpha=0.6, soft=4 * s)
    if curtains:
        _curtain(ctx, x0 - 40 * s, y0 - 24 * s, x0 + 26 * s, y1 + 40 * s, curtains, left=True)
        _curtain(ctx, x1 - 26 * s, y0 - 24 * s, x1 + 40 * s, y1 + 40 * s, curtains, left=False)
        cv.rect(ctx.layer, x0 - 56 * s, y0 - 30 * s, x1 + 56 * s, y0 - 24 * s, scale(_WOOD[0], 0.8), radius=3 * s)
    return (gx0, gy0, gx1, gy1)


def _curtain(ctx: _Ctx, x0, y0, x1, y1, color, left=True):
    """Hanging fabric: uneven folds, darker towards the wall, a wavy hem."""
    s = ctx.s
    w = x1 - x0
    rng = ctx.rng("curtain%d" % len(ctx.curtains))
    freqs = rng.uniform(0.8, 1.25, 3) * np.array([1.0, 1.9, 3.1]) * max(w / (40 * s), 1.0)
    phases = rng.uniform(0, 2 * np.pi, 3)
    amps = np.array([0.1, 0.06, 0.035])
    c = np.asarray(color, np.float32)

    def paint(xs, ys):
        u = (xs - x0) / w
        f = 0.88 + sum(a * np.cos(u * fr * 2 * np.pi + ph) for a, fr, ph in zip(amps, freqs, phases))
        side = (1 - u) if left else u          # 1 towards the window, lit; 0 at the wall
        f = f * (0.8 + 0.2 * side)
        v = (ys - y0) / max(y1 - y0, 1)
        f = f * (0.94 + 0.06 * (1 - v))        # a little darker towards the floor
        return f[..., None] * c

    hem = [(x, y1 - 6 * s * (1 + np.cos((x - x0) / w * freqs[0] * 2 * np.pi + phases[0])))
           for x in np.linspace(x1, x0, 12)]
    cv.polygon(ctx.layer, [(x0, y0), (x1, y0)] + hem, paint, soft=1.2)
    cv.rect(ctx.layer, x0, y0, x1, y0 + 8 * s, scale(color, 0.8), radius=2 * s)   # header tape
    ctx.curtains.append(ctx.rect(x0, y0, x1, y1))


def _books(ctx: _Ctx, x0, x1, base, max_h, rng, lean=True, min_h=0.6):
    """A row of book spines standing on `base` between x0 and x1.

    The standing books of a row are drawn in one pass (a shelf holds dozens), the
    odd book lying on its side separately."""
    s = ctx.s
    left, right, tops, cols = [], [], [], []
    lying = []
    x = x0 + rng.uniform(0, 6) * s
    while True:
        bw = rng.uniform(9, 20) * s
        if x + bw > x1:
            break
        bh = max_h * rng.uniform(min_h, 1.0)
        col = _BOOKS[int(rng.integers(len(_BOOKS)))]
        gap = rng.random()
        if lean and gap < 0.06 and x + bh < x1:
            lying.append((x, bw, bh, col))
            x += bh + 3 * s
            continue
        left.append(x)
        right.append(x + bw)
        tops.append(base - bh)
        cols.append(col)
        x += bw + rng.uniform(0, 2) * s
        if gap > 0.93:
            x += rng.uniform(8, 20) * s
    if left:
        L = np.array(left, np.float32)
        R = np.array(right, np.float32)
        T = np.array(tops, np.float32)
        C = np.array(cols, np.float32)
        light_band = np.minimum(C * 1.35, 1.0)

        def spine(xs, ys):
            i = np.clip(np.searchsorted(R, xs[0], side="right"), 0, len(R) - 1)   # book under each column
            u = (xs[0] - L[i]) / (R[i] - L[i])                                    # 0..1 across the spine
            v = (base - ys) / (base - T[i])[None, :]                              # 0 at the shelf, 1 at the top
            col = np.broadcast_to(C[i][None, :, :], v.shape + (3,)).copy()
            band = ((v > 0.8) & (v < 0.85)) | ((v > 0.16) & (v < 0.2))
            col[band] = np.broadcast_to(light_band[i][None, :, :], v.shape + (3,))[band]
            col *= np.where(u > 0.75, 0.8, 1.0)[None, :, None]                    # the shaded edge
            return col

        def cover(xs, ys):
            i = np.clip(np.searchsorted(R, xs[0], side="right"), 0, len(R) - 1)
            cx = np.clip(np.minimum(xs[0] - L[i], R[i] - xs[0]) + 0.5, 0, 1)
            cy = np.clip(ys - T[i][None, :] + 0.5, 0, 1)
            return cx[None, :] * cy

        reg = cv._region(ctx.layer, L[0], T.min(), R[-1], base)
        if reg is not None:
            sl, xs, ys = reg
            cv.put(ctx.layer, sl, cover(xs, ys), spine, xs, ys)
    for (x, bw, bh, col) in lying:
        cv.rect(ctx.layer, x, base - bw, x + bh, base, col, radius=1.5 * s)
        cv.rect(ctx.layer, x + 2 * s, base - bw * 0.55, x + bh - 2 * s, base - bw * 0.45, scale(col, 1.3), alpha=0.7)


def _lamp(ctx: _Ctx, x, base, size, color=None, kind="desk", side=1):
    """Desk lamp (jointed arm, cone shade, beam) or floor lamp (drum shade).

    Registers a lamp light and lights the surfaces around it."""
    s = ctx.s * size
    color = color or rgb("#d9b77a")
    dark = scale(color, 0.5)
    night = ctx.night or ctx.weather in ("rain", "storm")
    if kind == "desk":
        cv.ellipse(ctx.layer, x, base - 5 * s, 38 * s, 9 * s, scale(dark, 0.8))
        cv.ellipse(ctx.layer, x, base - 10 * s, 30 * s, 8 * s, dark)
        elbow = (x - side * 36 * s, base - 120 * s)
        joint = (x + side * 46 * s, base - 190 * s)
        cv.line(ctx.layer, [(x, base - 10 * s), elbow, joint], 6 * s, dark)
        cv.circle(ctx.layer, *elbow, 7 * s, scale(dark, 1.2))
        # the shade points down and forward, away from the arm
        ang = np.deg2rad(28) * side
        d = np.array([np.sin(ang), np.cos(ang)])
        perp = np.array([d[1], -d[0]])
        j = np.array(joint)
        o = j + d * 70 * s
        shade = [j + perp * 13 * s, j - perp * 13 * s, o - perp * 40 * s, o + perp * 40 * s]
        cv.polygon(ctx.layer, [tuple(p) for p in shade],
                   cv.gradient(*(j - perp * 13 * s), *(j + perp * 40 * s), [scale(color, 0.75), color,
                                                                            mix(color, (1, 1, 1), 0.3)]), soft=1.2)
        cv.circle(ctx.layer, *joint, 9 * s, scale(color, 0.8))
        bulb = o - d * 4 * s
        # light cone down to the surface below
        reach = max(base - o[1], 40 * s)
        far = o + d * reach / max(d[1], 0.3)
        cone = [o - perp * 38 * s, o + perp * 38 * s, far + perp * 150 * s, far - perp * 150 * s]
        beam_k = 0.22 if night else 0.08

        def beam(img, cone=cone, o=o, d=d, reach=reach):
            def paint(xs, ys):
                t = np.clip(((xs - o[0]) * d[0] + (ys - o[1]) * d[1]) / (reach * 1.2), 0, 1)
                f = (1 - t) ** 1.5 * beam_k
                return f[..., None] * np.asarray(rgb("#ffd79a"), np.float32)
            cv.polygon(img, [tuple(p) for p in cone], paint, soft=25 * s, mode="add")
            cv.ellipse(img, o[0], o[1], 38 * s, 8 * s, rgb("#fff4d8"), angle=-ang, soft=2 * s)
            cv.glow(img, o[0], o[1] + 6 * s, 90 * s, rgb("#ffcf88"), 0.5 if night else 0.25)

        ctx.emissive.append(beam)
        pool_at = (o[0] + d[0] * reach, min(o[1] + reach, base))
    else:  # floor lamp with a drum shade
        cv.ellipse(ctx.layer, x, base - 4 * s, 40 * s, 9 * s, dark)
        cv.line(ctx.layer, [(x, base), (x, base - 380 * s)], 6 * s, dark)
        sy = base - 430 * s
        cv.polygon(ctx.layer, [(x - 45 * s, sy), (x + 45 * s, sy), (x + 62 * s, sy + 70 * s),
                               (x - 62 * s, sy + 70 * s)], color, soft=1.2)
        bulb = np.array((x, sy + 40 * s))

        def halo(img):
            cv.glow(img, x, sy + 35 * s, 150 * s, rgb("#ffc878"), 0.45 if night else 0.2)
            cv.polygon(img, [(x - 45 * s, sy), (x + 45 * s, sy), (x + 62 * s, sy + 70 * s),
                             (x - 62 * s, sy + 70 * s)], rgb("#ffcf80"), alpha=0.35 if night else 0.15, mode="add")
            cv.ellipse(img, x, sy + 70 * s, 60 * s, 8 * s, rgb("#fff0c8"), soft=2 * s, alpha=0.8)

        ctx.emissive.append(halo)
        pool_at = (x, sy + 100 * s)
    strength = 1.2 if ctx.night else (0.75 if night else 0.35)
    ctx.pool(pool_at[0], pool_at[1], 560 * s, _WARM, strength)
    ctx.pool(pool_at[0], pool_at[1], 200 * s, rgb("#ffd9a0"), strength * 0.7)
    ctx.add_light(bulb[0], bulb[1], 110 * s, _WARM, "lamp")


def _mug(ctx: _Ctx, x, base, size=1.0, color=None, steam=True):
    s = ctx.s * size
    color = color or rgb("#e8dccb")
    w, h = 36 * s, 40 * s
    cv.ellipse(ctx.layer, x + w * 0.55, base - h * 0.5, 11 * s, 12 * s, scale(color, 0.85), soft=1)
    cv.rect(ctx.layer, x - w / 2, base - h, x + w / 2, base, color, radius=6 * s)
    cv.ellipse(ctx.layer, x, base - h, w / 2, 5 * s, scale(color, 0.92))
    cv.ellipse(ctx.layer, x, base - h + 0.5 * s, w / 2 - 3 * s, 3.5 * s, rgb("#5a3522"))
    if steam:
        ctx.cups.append((int(round(x)), int(round(base - h)), float(size)))


def _plant(ctx: _Ctx, x, base, size, rng, kind=None, pot=None):
    """A potted plant: leafy, trailing or spiky, coloured by season."""
    s = ctx.s * size
    kind = kind if kind is not None else int(rng.integers(3))
    pot = pot or [rgb("#c46f4c"), rgb("#e6dccd"), rgb("#7d8f9a"), rgb("#d9a35b")][int(rng.integers(4))]
    pw, ph = 46 * s, 44 * s
    leaves = [_season_leaf(ctx.season, k) for k in range(3)]
    top = base - ph
    if kind == 0:  # leafy: fan of ellipses
        for i in range(9):
            a = -np.pi / 2 + rng.uniform(-1.1, 1.1)
            L = rng.uniform(40, 70) * s
            cx, cy = x + np.cos(a) * L * 0.5, top + np.sin(a) * L * 0.5
            cv.ellipse(ctx.layer, cx, cy, L * 0.5, 10 * s, leaves[i % 3], angle=a, soft=1.2)
    elif kind == 1:  # trailing leaves over the pot edge
        for i in range(14):
            a = rng.uniform(-np.pi, 0)
            r = rng.uniform(5, 30) * s
            cx = x + np.cos(a) * r * 1.4
            cy = top + np.sin(a) * r * 0.7
            if i > 8:
                cy = top + rng.uniform(0, 60) * s
                cx = x + (rng.choice([-1, 1])) * rng.uniform(18, 30) * s
            cv.ellipse(ctx.layer, cx, cy, 9 * s, 6 * s, leaves[i % 3], angle=rng.uniform(0, 3), soft=1.2)
    else:  # spiky: snake plant blades
        for i in range(6):
            dx = (i - 2.5) * 6 * s
            L = rng.uniform(55, 95) * s
            tip = (x + dx * 2.2 + rng.uniform(-6, 6) * s, top - L)
            cv.polygon(ctx.layer, [(x + dx - 6 * s, top + 4 * s), (x + dx + 6 * s, top + 4 * s), tip],
                       leaves[i % 3], soft=1.2)
    if ctx.season == "spring" and kind == 0:
        for i in range(5):
            cv.circle(ctx.layer, x + rng.uniform(-30, 30) * s, top - rng.uniform(10, 50) * s, 4 * s, rgb("#f4b6c8"))
    cv.polygon(ctx.layer, [(x - pw / 2, top), (x + pw / 2, top), (x + pw * 0.38, base), (x - pw * 0.38, base)],
               pot, soft=1.2)
    cv.rect(ctx.layer, x - pw / 2 - 2 * s, top - 2 * s, x + pw / 2 + 2 * s, top + 7 * s, scale(pot, 0.9), radius=2 * s)


def _fairy_lights(ctx: _Ctx, p0, p1, sag, n, rng, colors=None):
    """A string of little bulbs hanging between two points."""
    s = ctx.s
    ts = np.linspace(0, 1, 40)
    xs = p0[0] + (p1[0] - p0[0]) * ts
    ys = p0[1] + (p1[1] - p0[1]) * ts + sag * 4 * ts * (1 - ts)
    cv.line(ctx.layer, list(zip(xs, ys)), 1.6 * s, rgb("#3a3028"))
    colors = colors or [rgb("#ffd27a"), rgb("#ffc060"), rgb("#ffe0a0")]
    bulbs = []
    for i in range(n):
        t = (i + 0.5) / n
        bx = p0[0] + (p1[0] - p0[0]) * t
        by = p0[1] + (p1[1] - p0[1]) * t + sag * 4 * t * (1 - t) + 4 * s
        c = colors[int(rng.integers(len(colors)))]
        bulbs.append((bx, by, c))
        ctx.add_light(bx, by, 22 * s, c, "fairy")
        ctx.pool(bx, by, 90 * s, c, 0.25 if ctx.night else 0.06)

    def draw(img):
        for bx, by, c in bulbs:
            cv.glow(img, bx, by, 26 * s, c, 0.5)
            cv.circle(img, bx, by, 3.2 * s, mix(c, (1, 1, 1), 0.5), soft=1.2)

    ctx.emissive.append(draw)


def _christmas_tree(ctx: _Ctx, x, base, size, rng):
    s = ctx.s * size
    green = rgb("#2f6a48")
    cv.rect(ctx.layer, x - 8 * s, base - 24 * s, x + 8 * s, base, rgb("#6b4a33"))
    cv.rect(ctx.layer, x - 22 * s, base - 26 * s, x + 22 * s, base, rgb("#b5483c"), radius=4 * s)
    for i, (w, y) in enumerate(((70, 30), (56, 80), (40, 125))):
        cv.polygon(ctx.layer, [(x - w * s, base - y * s), (x + w * s, base - y * s), (x, base - (y + 75) * s)],
                   scale(green, 1 + 0.08 * i), soft=1.2)
    bulbs = []
    for i in range(14):
        h = rng.uniform(35, 170)
        w = 70 * (1 - (h - 30) / 190)
        bx = x + rng.uniform(-w, w) * 0.8 * s
        by = base - h * s
        c = [rgb("#ffd27a"), rgb("#ff8a6a"), rgb("#9ad0ff"), rgb("#fff0b0")][i % 4]
        bulbs.append((bx, by, c))
        ctx.add_light(bx, by, 16 * s, c, "fairy")
    ctx.pool(x, base - 90 * s, 200 * s, rgb("#ffc878"), 0.35 if ctx.night else 0.1)

    def draw(img):
        for bx, by, c in bulbs:
            cv.glow(img, bx, by, 16 * s, c, 0.6)
            cv.circle(img, bx, by, 2.6 * s, mix(c, (1, 1, 1), 0.5), soft=1)
        cv.glow(img, x, base - 205 * s, 22 * s, rgb("#ffe08a"), 0.8)
        cv.circle(img, x, base - 205 * s, 6 * s, rgb("#ffe9a0"), soft=1.5)

    ctx.emissive.append(draw)


def _garland(ctx: _Ctx, x0, x1, y, rng):
    s = ctx.s
    for x in np.arange(x0, x1, 9 * s):
        yy = y + 18 * s * np.sin((x - x0) / (x1 - x0) * np.pi * 3) ** 2
        cv.circle(ctx.layer, x, yy, 8 * s, scale(rgb("#2f6a48"), rng.uniform(0.8, 1.1)))
    _fairy_lights(ctx, (x0, y), (x1, y), 0, max(int((x1 - x0) / (40 * s)), 4), rng,
                  [rgb("#ffd27a"), rgb("#ff8a6a"), rgb("#9ad0ff")])


# ---------------------------------------------------------------- the figure

def _make_figure(ctx: _Ctx, cx, base, height, rng, cap=False) -> Figure:
    """A seated person seen from behind: head, hair, shoulders, sweater; lit by the room.

    The sprite's bottom edge is where the body leaves the frame or meets the seat."""
    S = height
    w, h = int(S * 0.95) + 4, int(S) + 2
    rgba = np.zeros((h, w, 4), np.float32)
    hair_layer = np.zeros((h, w, 4), np.float32)
    mid = w / 2
    hair_c = _HAIR[int(rng.integers(len(_HAIR)))]
    sweater = _SWEATER[int(rng.integers(len(_SWEATER)))]
    skin = rgb("#e9b796")
    style = int(rng.integers(4))  # 0 long, 1 bun, 2 bob, 3 ponytail
    if cap and style in (1, 2):   # under a beanie only long hair shows (and sways)
        style = 0
    lean = rng.uniform(-0.03, 0.03) * S  # head a little off the body's axis
    # torso: an outline with round shoulders, widening a little to the bottom
    sh_y = S * 0.47
    outline = []
    for t in np.linspace(0, np.pi / 2, 8):          # left shoulder, from the side up to the top
        outline.append((mid - S * 0.24 - S * 0.08 * np.cos(t), sh_y + S * 0.02 + S * 0.07 * (1 - np.sin(t))))
    outline += [(mid - S * 0.07, sh_y - S * 0.03), (mid + S * 0.07, sh_y - S * 0.03)]
    for t in np.linspace(np.pi / 2, 0, 8):
        outline.append((mid + S * 0.24 + S * 0.08 * np.cos(t), sh_y + S * 0.02 + S * 0.07 * (1 - np.sin(t))))
    elbow = 1 if rng.random() < 0.5 else -1
    outline += [(mid + S * 0.33, sh_y + S * 0.3), (mid + S * (0.36 + (0.04 if elbow > 0 else 0)), h),
                (mid - S * (0.36 + (0.04 if elbow < 0 else 0)), h), (mid - S * 0.33, sh_y + S * 0.3)]
    cv.polygon(rgba, outline, cv.vgradient(sh_y - S * 0.03, h, [mix(sweater, (1, 1, 1), 0.08), sweater,
                                                                scale(sweater, 0.7)]), soft=1.2)
    # arms: a shadow line where each arm meets the back, the resting arm's elbow out to the side
    for sgn in (-1, 1):
        cv.line(rgba, [(mid + sgn * S * 0.22, sh_y + S * 0.14), (mid + sgn * S * 0.245, h)], S * 0.012,
                scale(sweater, 0.72), alpha=0.8)
    cv.ellipse(rgba, mid + elbow * S * 0.35, sh_y + S * 0.42, S * 0.07, S * 0.09, scale(sweater, 0.85), soft=1.2)
    # ribbing at the neck
    cv.ellipse(rgba, mid, sh_y - S * 0.02, S * 0.085, S * 0.025, scale(sweater, 0.85), soft=1.2)
    # neck and head
    cv.rect(rgba, mid - S * 0.055, S * 0.32, mid + S * 0.055, sh_y - S * 0.01, scale(skin, 0.8), radius=S * 0.02)
    hx, head_y = mid + lean, S * 0.25
    for sgn in (-1, 1):
        cv.ellipse(rgba, hx + sgn * S * 0.14, head_y + S * 0.03, S * 0.025, S * 0.04, scale(skin, 0.9))
    cv.ellipse(rgba, hx, head_y, S * 0.14, S * 0.165, skin, soft=1.2)
    # hair in its own layer: the mask that sways
    hc = cv.vgradient(head_y - S * 0.18, head_y + S * 0.5, [mix(hair_c, (1, 1, 1), 0.12), hair_c, scale(hair_c, 0.8)])
    cv.ellipse(hair_layer, hx, head_y - S * 0.01, S * 0.155, S * 0.172, hc, soft=1.2)
    if style == 0:      # long, over the shoulders, soft wavy ends
        ends = [(hx + S * 0.15 * (1 - 2 * t), sh_y + S * (0.17 + 0.03 * np.sin(t * 9))) for t in np.linspace(0, 1, 9)]
        cv.polygon(hair_layer, [(hx - S * 0.155, head_y), (hx + S * 0.155, head_y), (hx + S * 0.165, sh_y)] + ends +
                   [(hx - S * 0.165, sh_y)], hc, soft=1.5)
    elif style == 1:    # bun on top
        cv.circle(hair_layer, hx, head_y - S * 0.17, S * 0.075, hc, soft=1.2)
        cv.polygon(hair_layer, [(hx - S * 0.15, head_y), (hx + S * 0.15, head_y),
                                (hx + S * 0.09, head_y + S * 0.15), (hx - S * 0.09, head_y + S * 0.15)], hc)
    elif style == 2:    # bob to the jaw
        cv.polygon(hair_layer, [(hx - S * 0.16, head_y), (hx + S * 0.16, head_y),
                                (hx + S * 0.15, head_y + S * 0.16), (hx, head_y + S * 0.18),
                                (hx - S * 0.15, head_y + S * 0.16)], hc)
    else:               # ponytail down the back
        cv.polygon(hair_layer, [(hx - S * 0.13, head_y), (hx + S * 0.13, head_y),
                                (hx + S * 0.08, head_y + S * 0.14), (hx - S * 0.08, head_y + S * 0.14)], hc)
        cv.ellipse(hair_layer, hx, head_y + S * 0.3, S * 0.05, S * 0.2, hc, soft=1.5)
        cv.circle(hair_layer, hx, head_y + S * 0.12, S * 0.03, rgb("#c96f4a"))
    # a sheen on the crown
    ts = np.linspace(np.pi * 1.2, np.pi * 1.8, 10)
    cv.line(hair_layer, [(hx + np.cos(t) * S * 0.1, head_y - S * 0.03 + np.sin(t) * S * 0.09) for t in ts],
            S * 0.018, mix(hair_c, (1, 1, 1), 0.3), alpha=0.7)
    hair = hair_layer[..., 3].copy()
    cv.composite(rgba, hair_layer, 0, 0)
    if cap:             # knitted beanie over the hair; it does not sway
        capc = _BOOKS[int(rng.integers(len(_BOOKS)))]
        cv.ellipse(rgba, hx, head_y - S * 0.06, S * 0.165, S * 0.14, capc, soft=1.2)
        cv.rect(rgba, hx - S * 0.17, head_y - S * 0.02, hx + S * 0.17, head_y + S * 0.04, scale(capc, 0.8),
                radius=S * 0.02)
        cv.circle(rgba, hx, head_y - S * 0.2, S * 0.04, mix(capc, (1, 1, 1), 0.3))
        hair[: int(head_y + S * 0.04)] *= 0.0
    elif rng.random() < 0.65:   # headphones
        band = rgb("#3a3a44")
        ts = np.linspace(np.pi * 1.05, np.pi * 1.95, 16)
        cv.line(rgba, [(hx + np.cos(t) * S * 0.165, head_y + np.sin(t) * S * 0.185) for t in ts], S * 0.025, band)
        cupc = [rgb("#d8d0c4"), rgb("#e8a0a0"), rgb("#3a3a44")][int(rng.integers(3))]
        for sgn in (-1, 1):
            cv.ellipse(rgba, hx + sgn * S * 0.16, head_y + S * 0.03, S * 0.038, S * 0.062, cupc, soft=1.2)
    # light: multiply by the room light where the figure sits, plus a rim towards the key light
    x = int(round(cx - w / 2))
    y = int(round(base - h))
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, ctx.W), min(y + h, ctx.H)
    lm = np.ones((h, w, 3), np.float32) * np.array(ctx.ambient, np.float32)
    lm[y0 - y:y1 - y, x0 - x:x1 - x] = ctx.lightmap[y0:y1, x0:x1]
    a = rgba[..., 3]
    rim_dir, rim_col = ctx.rim
    k = max(S * 0.018, 1.0)
    vx, vy = int(round(rim_dir[0] * k)), int(round(rim_dir[1] * k))
    ahead = np.zeros_like(a)  # alpha one step towards the light
    ys0, ys1 = max(-vy, 0), h - max(vy, 0)
    xs0, xs1 = max(-vx, 0), w - max(vx, 0)
    ahead[ys0:ys1, xs0:xs1] = a[ys0 + vy:ys1 + vy, xs0 + vx:xs1 + vx]
    rim = (a * (1 - ahead))[..., None]
    lit = _tonemap(rgba[..., :3] * lm * 0.92)
    rgba[..., :3] = np.minimum(lit + rim * 0.45 * np.asarray(rim_col, np.float32), rgba[..., 3:4])
    # straight alpha, and nothing outside the frame
    rgba = cv.unpremultiply(rgba[y0 - y:y1 - y, x0 - x:x1 - x])
    hair = hair[y0 - y:y1 - y, x0 - x:x1 - x].copy()
    chest = int(round(S * 0.62)) - (y0 - y)
    chest = int(min(max(chest, 0), rgba.shape[0] - 1))
    return Figure(rgba=rgba, x=x0, y=y0, hair=hair, chest_y=chest)


# ---------------------------------------------------------------- scenes

def _picture(ctx: _Ctx, x0, y0, x1, y1, rng, frame=None):
    """A small framed print on the wall: hills under a sun, in the scene's colours."""
    s = ctx.s
    frame = frame or _WOOD[int(rng.integers(len(_WOOD)))]
    cv.rect(ctx.layer, x0 + 4 * s, y0 + 6 * s, x1 + 4 * s, y1 + 6 * s, (0, 0, 0), alpha=0.18, soft=8 * s)
    cv.rect(ctx.layer, x0, y0, x1, y1, frame, radius=2 * s)
    m = 7 * s
    cv.rect(ctx.layer, x0 + m, y0 + m, x1 - m, y1 - m, rgb("#f1e9da"))
    m2 = m + 6 * s
    ix0, iy0, ix1, iy1 = x0 + m2, y0 + m2, x1 - m2, y1 - m2
    palettes = [(rgb("#f2c9a0"), rgb("#d9825b"), rgb("#8a5a6a")), (rgb("#cfe0e8"), rgb("#7fa7a0"), rgb("#4f6f6a")),
                (rgb("#f4d9a8"), rgb("#c9a25b"), rgb("#6d8f6a"))]
    sky, near, far = palettes[int(rng.integers(len(palettes)))]
    cv.fill(ctx.layer, ix0, iy0, ix1, iy1, sky)
    cv.circle(ctx.layer, ix0 + (ix1 - ix0) * rng.uniform(0.3, 0.7), iy0 + (iy1 - iy0) * 0.4,
              (ix1 - ix0) * 0.12, rgb("#fff3dc"))
    for col, hgt in ((far, 0.55), (near, 0.75)):
        ph = rng.uniform(0, 6)
        pts = [(xx, iy0 + (iy1 - iy0) * (hgt - 0.12 * np.sin((xx - ix0) / max(ix1 - ix0, 1) * 5 + ph)))
               for xx in np.linspace(ix0, ix1, 12)] + [(ix1, iy1), (ix0, iy1)]
        cv.polygon(ctx.layer, pts, col, soft=1)


def _desk(ctx: _Ctx, y, depth, wood, x0=0, x1=None):
    """Desk seen from behind the chair: top surface, front edge, dark space underneath."""
    s = ctx.s
    x1 = ctx.W if x1 is None else x1
    top = mix(wood, (1, 1, 1), 0.08)
    cv.fill(ctx.layer, x0, y, x1, y + depth, cv.vgradient(y, y + depth, [scale(top, 0.85), top]))
    cv.rect(ctx.layer, x0, y - 2 * s, x1, y + 3 * s, (0, 0, 0), alpha=0.18, soft=4 * s)   # contact with the wall
    edge = y + depth
    cv.fill(ctx.layer, x0, edge, x1, edge + 16 * s, scale(wood, 0.8))
    cv.fill(ctx.layer, x0, edge, x1, edge + 2 * s, mix(wood, (1, 1, 1), 0.3))
    cv.fill(ctx.layer, x0, edge + 16 * s, x1, ctx.H, cv.vgradient(edge, ctx.H, [scale(wood, 0.35), scale(wood, 0.2)]))


def _study_room(ctx: _Ctx):
    W, H, s = ctx.W, ctx.H, ctx.s
    rng = ctx.rng("layout")
    wall = _WALLS[int(rng.integers(len(_WALLS)))]
    wood = _WOOD[int(rng.integers(len(_WOOD)))]
    desk_y = H * rng.uniform(0.6, 0.66)
    depth = H * 0.08
    _wall(ctx, wall, 0, desk_y + 4)
    # window on one side; its size and place vary
    side = 1 if rng.random() < 0.5 else -1  # -1: window on the left
    ww = W * rng.uniform(0.26, 0.38)
    wh = min(H * rng.uniform(0.36, 0.44), desk_y - H * 0.16)
    margin = W * rng.uniform(0.06, 0.14)
    wx = margin if side < 0 else W - margin - ww
    wy = desk_y - wh - H * rng.uniform(0.08, 0.12)
    curtain = mix(_BOOKS[int(rng.integers(len(_BOOKS)))], (1, 1, 1), 0.35)
    _window(ctx, wx, wy, wx + ww, wy + wh, cols=2, rows=int(rng.integers(1, 3)), curtains=curtain)
    # shelves of books on the other half of the wall
    far0 = wx + ww + 70 * s if side < 0 else 30 * s
    far1 = W - 30 * s if side < 0 else wx - 70 * s
    sw = min(far1 - far0, W * rng.uniform(0.24, 0.32))
    sx0 = far0 + rng.uniform(0.0, 1.0) * max(far1 - far0 - sw, 0)
    sx1 = sx0 + sw
    n_shelves = int(rng.integers(1, 3))
    for k in range(n_shelves):
        sy = wy + wh * (0.3 + 0.5 * k) if n_shelves == 2 else wy + wh * rng.uniform(0.35, 0.7)
        _books(ctx, sx0 + 8 * s, sx1 - 8 * s, sy, 66 * s, ctx.rng("shelf%d" % k))
        cv.rect(ctx.layer, sx0, sy, sx1, sy + 10 * s, scale(wood, 1.1), radius=2 * s)
        cv.rect(ctx.layer, sx0, sy + 10 * s, sx1, sy + 22 * s, (0, 0, 0), alpha=0.15, soft=6 * s)
    if n_shelves == 1:
        py = wy + wh * 0.05
        pw = min(sw * 0.45, 150 * s)
        _picture(ctx, sx0 + sw * 0.25, py - pw * 0.75 + 20 * s, sx0 + sw * 0.25 + pw, py + 20 * s, ctx.rng("pic"))
    _desk(ctx, desk_y, depth, wood)
    near = desk_y + depth * 0.75
    # lamp on the side away from the window, its shade towards the middle
    lamp_x = W * 0.5 - side * W * rng.uniform(0.26, 0.34)
    _lamp(ctx, lamp_x, near, 1.0, side=side)
    # stacks of books, a mug, a pencil cup, a small plant
    stack_x = lamp_x + side * W * rng.uniform(0.09, 0.13)
    by = desk_y + depth * 0.55
    for i in range(int(rng.integers(2, 6))):
        bh = rng.uniform(11, 18) * s
        bw = rng.uniform(80, 120) * s
        off = rng.uniform(-8, 8) * s
        col = _BOOKS[int(rng.integers(len(_BOOKS)))]
        cv.rect(ctx.layer, stack_x - bw / 2 + off, by - bh, stack_x + bw / 2 + off, by, col, radius=2 * s)
        cv.rect(ctx.layer, stack_x - bw / 2 + off + 4 * s, by - bh * 0.7, stack_x + bw / 2 + off - 2 * s,
                by - bh * 0.3, rgb("#f2ead8"), alpha=0.8)
        by -= bh
    mug_x = W * 0.5 + side * W * rng.uniform(0.15, 0.22)
    _mug(ctx, mug_x, near + 4 * s, 1.1, _BOOKS[int(rng.integers(len(_BOOKS)))])
    px = mug_x + side * 70 * s
    cv.rect(ctx.layer, px - 16 * s, desk_y + depth * 0.5 - 44 * s, px + 16 * s, desk_y + depth * 0.5,
            rgb("#7d9b9a"), radius=4 * s)
    for k in range(3):
        cv.line(ctx.layer, [(px - 6 * s + k * 6 * s, desk_y + depth * 0.5 - 40 * s),
                            (px - 10 * s + k * 10 * s, desk_y + depth * 0.5 - 70 * s)], 3 * s,
                [rgb("#e3b85c"), rgb("#b5543c"), rgb("#3f6f86")][k])
    _plant(ctx, wx + ww * rng.uniform(0.15, 0.85), wy + wh + 2 * s, 0.75, ctx.rng("plant"))
    # an open notebook, or a laptop whose screen glows past her shoulders
    cx = W * 0.5
    if rng.random() < 0.5:
        cv.polygon(ctx.layer, [(cx - 110 * s, near + 10 * s), (cx + 110 * s, near + 10 * s),
                               (cx + 95 * s, desk_y + 10 * s), (cx - 95 * s, desk_y + 10 * s)], rgb("#f4efe4"), soft=1.2)
        cv.line(ctx.layer, [(cx, desk_y + 10 * s), (cx, near + 10 * s)], 1.5 * s, rgb("#c9bfae"))
    else:
        top = desk_y - 120 * s
        cv.rect(ctx.layer, cx - 130 * s, top, cx + 130 * s, desk_y + 6 * s, rgb("#3a3a44"), radius=8 * s)
        cv.rect(ctx.layer, cx - 150 * s, desk_y + 4 * s, cx + 150 * s, desk_y + 14 * s, rgb("#8a8a94"), radius=4 * s)
        screen = rgb("#a8c8e8") if not ctx.night else rgb("#8ab0e0")
        ctx.add_light(cx, top + 60 * s, 200 * s, screen, "monitor")
        ctx.pool(cx, top + 40 * s, 320 * s, screen, 0.35 if ctx.night else 0.1)
        ctx.emissive.append(lambda img: cv.glow(img, cx, top + 60 * s, 230 * s, screen, 0.3 if ctx.night else 0.1))
    if ctx.christmas:
        _garland(ctx, 0, W, 24 * s, ctx.rng("garland"))
        _christmas_tree(ctx, lamp_x - side * 90 * s, desk_y + depth * 0.6, 0.45, ctx.rng("tree"))
    # the person at the desk, back to us; the window or the lamp rims her
    if ctx.night:
        ctx.rim = ((-side, -0.6), rgb("#ffc070"))
    else:
        ctx.rim = ((side * 1.0, -0.5), _SKY[ctx.time][2])
    fx = W * 0.5 + rng.uniform(-0.04, 0.04) * W
    ctx.figure_args = (fx, H + 2, min(H * 0.55, W * 0.42))
    ctx.air = ctx.rect(0, 0, W, desk_y)


def _bricks(ctx: _Ctx, x0, y0, x1, y1, color):
    """A brick wall: one pattern for the whole area, with a little variation per brick."""
    s = ctx.s
    bw, bh = 46 * s, 18 * s
    table = ctx.rng("bricks").uniform(0.85, 1.1, 97).astype(np.float32)
    base = np.asarray(color, np.float32)
    mortar = np.asarray(mix(color, (0.85, 0.8, 0.75), 0.6), np.float32)

    def paint(xs, ys):
        row = np.floor((ys - y0) / bh)
        u = (xs - x0) / bw + 0.5 * (row % 2)
        v = (ys - y0) / bh
        line = ((u % 1.0) < 0.05) | ((v % 1.0) < 0.1)
        k = table[((np.floor(u).astype(int) * 31 + row.astype(int) * 17) % 97)]
        col = base * k[..., None]
        return np.where(line[..., None], mortar, col)

    cv.fill(ctx.layer, x0, y0, x1, y1, paint)


def _pendant(ctx: _Ctx, x, y, size=1.0):
    """A hanging lamp: cord, metal shade, warm glowing opening."""
    s = ctx.s * size
    shade_c = [rgb("#2f3a34"), rgb("#b5543c"), rgb("#e3b85c"), rgb("#2f4f5f")][int(ctx.rng("pend%d" % int(x)).integers(4))]
    cv.line(ctx.layer, [(x, 0), (x, y)], 2 * s, rgb("#2a2420"))
    cv.ellipse(ctx.layer, x, y + 4 * s, 10 * s, 8 * s, scale(shade_c, 0.8))
    pts = [(x - 14 * s, y + 4 * s), (x + 14 * s, y + 4 * s), (x + 44 * s, y + 40 * s), (x - 44 * s, y + 40 * s)]
    cv.polygon(ctx.layer, pts, cv.gradient(x - 44 * s, 0, x + 44 * s, 0, [scale(shade_c, 0.7), mix(shade_c, (1, 1, 1), 0.25),
                                                                        scale(shade_c, 0.8)]), soft=1.2)
    bulb = (x, y + 42 * s)
    night = ctx.night or ctx.weather in ("rain", "storm")
    ctx.pool(bulb[0], bulb[1] + 120 * s, 420 * s, _WARM, 0.9 if night else 0.45)
    ctx.add_light(bulb[0], bulb[1], 90 * s, _WARM, "lamp")

    def draw(img):
        cv.glow(img, bulb[0], bulb[1] + 10 * s, 120 * s, rgb("#ffcf88"), 0.45 if night else 0.25)
        cv.ellipse(img, bulb[0], bulb[1] - 2 * s, 42 * s, 7 * s, rgb("#fff0c8"), soft=2 * s)

    ctx.emissive.append(draw)


def _espresso_machine(ctx: _Ctx, x, base):
    s = ctx.s
    chrome = cv.gradient(x - 90 * s, 0, x + 90 * s, 0, [rgb("#8a8682"), rgb("#e8e4de"), rgb("#b9b4ad"),
                                                         rgb("#f4f1ec"), rgb("#8a8682")])
    cv.rect(ctx.layer, x - 90 * s, base - 150 * s, x + 90 * s, base - 10 * s, chrome, radius=12 * s)
    cv.rect(ctx.layer, x - 84 * s, base - 146 * s, x + 84 * s, base - 138 * s, rgb("#b5543c"), radius=3 * s)
    cv.rect(ctx.layer, x - 95 * s, base - 12 * s, x + 95 * s, base, rgb("#3a3430"), radius=3 * s)
    for k in (-1, 1):
        gx = x + k * 42 * s
        cv.rect(ctx.layer, gx - 18 * s, base - 108 * s, gx + 18 * s, base - 96 * s, rgb("#5a5650"), radius=3 * s)
        cv.rect(ctx.layer, gx - 14 * s, base - 96 * s, gx + 14 * s, base - 84 * s, rgb("#3a3632"), radius=3 * s)
        cv.line(ctx.layer, [(gx + k * 12 * s, base - 90 * s), (gx + k * 34 * s, base - 70 * s)], 7 * s, rgb("#2a2420"))
        cv.rect(ctx.layer, gx - 13 * s, base - 36 * s, gx + 13 * s, base - 12 * s, rgb("#f2ece2"), radius=4 * s)
        cv.ellipse(ctx.layer, gx, base - 36 * s, 13 * s, 3 * s, rgb("#6a3a22"))
    # steam wand and gauge
    cv.line(ctx.layer, [(x + 78 * s, base - 100 * s), (x + 100 * s, base - 60 * s), (x + 96 * s, base - 40 * s)],
            5 * s, rgb("#8a8682"))
    cv.circle(ctx.layer, x, base - 128 * s, 11 * s, rgb("#f4f1ec"))
    cv.line(ctx.layer, [(x, base - 128 * s), (x + 6 * s, base - 134 * s)], 2 * s, rgb("#2a2420"))
    ctx.cups.append((int(x - 42 * s), int(base - 38 * s), 0.6))
    for k in range(3):   # cups warming on top
        cv.rect(ctx.layer, x - 50 * s + k * 36 * s, base - 176 * s, x - 24 * s + k * 36 * s, base - 150 * s,
                rgb("#f2ece2"), radius=4 * s)
    ctx.reflections.append(ctx.rect(x - 90 * s, base - 150 * s, x + 90 * s, base - 10 * s))


def _coffee_shop(ctx: _Ctx):
    W, H, s = ctx.W, ctx.H, ctx.s
    rng = ctx.rng("layout")
    ctx.lightmap *= 0.8   # a deep room: the pendants do most of the lighting
    wood = _WOOD[int(rng.integers(len(_WOOD)))]
    counter_y = H * rng.uniform(0.66, 0.72)
    brick = [rgb("#a8563c"), rgb("#9a5a48"), rgb("#b56a4a")][int(rng.integers(3))]
    _bricks(ctx, 0, 0, W, counter_y, brick)
    # big shop window on one side with the street
    side = 1 if rng.random() < 0.5 else -1
    ww = W * rng.uniform(0.44, 0.56)
    wx0 = W * rng.uniform(0.03, 0.08) if side < 0 else W - W * rng.uniform(0.03, 0.08) - ww
    wx1 = wx0 + ww
    wtop = H * rng.uniform(0.1, 0.16)
    _window(ctx, wx0, wtop, wx1, counter_y - 24 * s, cols=int(rng.integers(2, 4)), rows=1,
            frame=rgb("#2f2824"), sill=False, horizon=counter_y - 60 * s)
    # menu board and shelves of jars on the wall beside it
    o0, o1 = (wx1 + 40 * s, W - 30 * s) if side < 0 else (30 * s, wx0 - 40 * s)
    if o1 - o0 > 120 * s:
        mw = min(o1 - o0, 320 * s)
        mx0 = o0 + (o1 - o0 - mw) * rng.uniform(0.2, 0.8)
        my0 = H * 0.08
        cv.rect(ctx.layer, mx0 - 8 * s, my0 - 8 * s, mx0 + mw + 8 * s, my0 + 170 * s, wood, radius=4 * s)
        cv.rect(ctx.layer, mx0, my0, mx0 + mw, my0 + 162 * s, rgb("#2a302c"))
        mrng = ctx.rng("menu")
        for r in range(5):
            ly = my0 + 26 * s + r * 28 * s
            cv.line(ctx.layer, [(mx0 + 18 * s, ly), (mx0 + mw * mrng.uniform(0.4, 0.7), ly)], 4 * s,
                    rgb("#e8e2d6"), alpha=0.75)
            cv.line(ctx.layer, [(mx0 + mw - 50 * s, ly), (mx0 + mw - 18 * s, ly)], 4 * s, rgb("#e3b85c"), alpha=0.8)
        for k in range(2):
            sy = my0 + 230 * s + k * 90 * s
            if sy > counter_y - 40 * s:
                break
            cv.rect(ctx.layer, o0, sy, o1, sy + 9 * s, scale(wood, 1.1), radius=2 * s)
            x = o0 + 12 * s
            jr = ctx.rng("jars%d" % k)
            while x < o1 - 40 * s:
                jw = jr.uniform(22, 34) * s
                jh = jr.uniform(30, 52) * s
                col = [rgb("#c9a27a"), rgb("#8a6a4c"), rgb("#e2d6c2"), rgb("#6d8f6a")][int(jr.integers(4))]
                cv.rect(ctx.layer, x, sy - jh, x + jw, sy, col, radius=5 * s)
                cv.rect(ctx.layer, x - 2 * s, sy - jh - 6 * s, x + jw + 2 * s, sy - jh + 2 * s, scale(col, 0.7),
                        radius=2 * s)
                x += jw + jr.uniform(6, 16) * s
    # counter: marble top, panelled wooden front
    cv.rect(ctx.layer, 0, counter_y, W, counter_y + 18 * s, cv.vgradient(counter_y, counter_y + 18 * s,
            [rgb("#efe8dc"), rgb("#d8cbb8")]), radius=3 * s)
    cv.fill(ctx.layer, 0, counter_y + 18 * s, W, H, cv.vgradient(counter_y, H, [wood, scale(wood, 0.55)]))
    cv.rect(ctx.layer, 0, counter_y + 18 * s, W, counter_y + 30 * s, (0, 0, 0), alpha=0.3, soft=8 * s)
    pw = W / max(int(W / (150 * s)), 1)
    for x in np.arange(0, W, pw):
        cv.rect(ctx.layer, x + 10 * s, counter_y + 40 * s, x + pw - 10 * s, H - 10 * s, scale(wood, 1.08),
                radius=4 * s, alpha=0.6)
    ctx.reflections.append(ctx.rect(0, counter_y, W, counter_y + 18 * s))
    # the espresso machine on the wall side, cups and a plant along the counter
    mx = (o0 + o1) / 2 if o1 - o0 > 200 * s else W * 0.5
    _espresso_machine(ctx, mx, counter_y + 4 * s)
    n = int(rng.integers(2, 4))
    for i in range(n):
        cx = wx0 + ww * (i + rng.uniform(0.25, 0.75)) / n
        if abs(cx - mx) < 140 * s:
            cx = mx + np.sign(cx - mx + 0.1) * 150 * s
        _mug(ctx, cx, counter_y + 8 * s, rng.uniform(0.9, 1.2),
             [rgb("#f2ece2"), rgb("#c96f4a"), rgb("#6f8fa6"), rgb("#e3b85c")][int(rng.integers(4))])
    _plant(ctx, (wx1 - 40 * s) if side < 0 else (wx0 + 40 * s), counter_y + 6 * s, 1.0, ctx.rng("plant"))
    # pendant lamps from the ceiling
    k = int(rng.integers(2, 5))
    for i in range(k):
        px = W * (i + 0.5) / k + rng.uniform(-0.04, 0.04) * W
        _pendant(ctx, px, H * rng.uniform(0.12, 0.24), 1.1)
    if ctx.christmas:
        _garland(ctx, wx0, wx1, wtop, ctx.rng("garland"))
        _christmas_tree(ctx, (wx1 - 120 * s) if side < 0 else (wx0 + 120 * s), counter_y + 6 * s, 0.5, ctx.rng("tree"))
    ctx.air = ctx.rect(0, 0, W, counter_y)


def _bedroom_night(ctx: _Ctx):
    W, H, s = ctx.W, ctx.H, ctx.s
    rng = ctx.rng("layout")
    wall = _WALLS[int(rng.integers(len(_WALLS)))]
    wood = _WOOD[int(rng.integers(len(_WOOD)))]
    floor_y = H * rng.uniform(0.74, 0.8)
    _wall(ctx, wall, 0, floor_y)
    _floor(ctx, floor_y, scale(wood, 0.9))
    cv.rect(ctx.layer, 0, floor_y - 12 * s, W, floor_y, mix(wall, (1, 1, 1), 0.3))   # skirting board
    side = 1 if rng.random() < 0.5 else -1      # window on the right (1) or left
    ww, wh = W * rng.uniform(0.24, 0.32), H * rng.uniform(0.38, 0.46)
    wx = W * rng.uniform(0.6, 0.68) if side > 0 else W * rng.uniform(0.32, 0.4) - ww
    wy = H * rng.uniform(0.12, 0.18)
    curtain = mix(_BOOKS[int(rng.integers(len(_BOOKS)))], (1, 1, 1), 0.3)
    _window(ctx, wx, wy, wx + ww, wy + wh, cols=2, rows=int(rng.integers(1, 3)), curtains=curtain)
    # the bed on the other side: headboard against the wall, duvet towards us
    bw = W * rng.uniform(0.4, 0.48)
    bcx = wx - W * 0.06 - bw / 2 if side > 0 else wx + ww + W * 0.06 + bw / 2
    bcx = min(max(bcx, bw * 0.35), W - bw * 0.35)
    b0, b1 = bcx - bw / 2, bcx + bw / 2
    head_top = floor_y - H * rng.uniform(0.3, 0.36)
    cv.rect(ctx.layer, b0, head_top, b1, floor_y, cv.vgradient(head_top, floor_y, [wood, scale(wood, 0.7)]),
            radius=26 * s)
    cv.rect(ctx.layer, b0 + 16 * s, head_top + 16 * s, b1 - 16 * s, floor_y, scale(wood, 0.85), radius=18 * s)
    mattress = floor_y - H * 0.13
    pillow = rgb("#f4efe6")
    for k in (-1, 1):
        px = bcx + k * bw * 0.22
        cv.rect(ctx.layer, px - bw * 0.2, mattress - 52 * s, px + bw * 0.2, mattress + 14 * s,
                cv.vgradient(mattress - 52 * s, mattress + 14 * s, [pillow, scale(pillow, 0.85)]), radius=26 * s)
    duvet = mix(_BOOKS[int(rng.integers(len(_BOOKS)))], (1, 1, 1), 0.45)
    cv.rect(ctx.layer, b0 - 22 * s, mattress, b1 + 22 * s, H + 40 * s,
            cv.vgradient(mattress, H, [mix(duvet, (1, 1, 1), 0.15), duvet, scale(duvet, 0.75)]), radius=30 * s)
    # a few soft folds and a folded throw at the foot
    frng = ctx.rng("folds")
    for i in range(4):
        fx = b0 + bw * frng.uniform(0.1, 0.9)
        cv.line(ctx.layer, [(fx, mattress + 30 * s), (fx + frng.uniform(-40, 40) * s, H)], 5 * s, scale(duvet, 0.85),
                alpha=0.5, soft=6 * s)
    throw = _BOOKS[int(rng.integers(len(_BOOKS)))]
    ty = mattress + (H - mattress) * 0.55
    cv.rect(ctx.layer, b0 - 24 * s, ty, b1 + 24 * s, ty + 60 * s, throw, radius=14 * s)
    for k in range(3):
        cv.fill(ctx.layer, b0 - 20 * s, ty + (14 + 16 * k) * s, b1 + 20 * s, ty + (18 + 16 * k) * s,
                mix(throw, (1, 1, 1), 0.35))
    # a framed print over the bed
    pw = min(bw * 0.4, 200 * s)
    _picture(ctx, bcx - pw / 2, head_top - pw * 0.9, bcx + pw / 2, head_top - pw * 0.2, ctx.rng("pic"))
    # nightstand with a lamp, between bed and window
    nx = b1 + 70 * s if side > 0 else b0 - 70 * s
    nt = floor_y - H * 0.17
    cv.rect(ctx.layer, nx - 55 * s, nt, nx + 55 * s, floor_y + 6 * s, _WOOD[2], radius=4 * s)
    cv.rect(ctx.layer, nx - 45 * s, nt + 20 * s, nx + 45 * s, nt + 60 * s, scale(_WOOD[2], 1.15), radius=3 * s)
    cv.circle(ctx.layer, nx, nt + 40 * s, 4 * s, rgb("#d9c9a6"))
    cv.ellipse(ctx.layer, nx, nt - 8 * s, 24 * s, 10 * s, rgb("#c9a27a"))
    cv.line(ctx.layer, [(nx, nt - 8 * s), (nx, nt - 60 * s)], 4 * s, rgb("#7a6a58"))
    shade = [(nx - 26 * s, nt - 110 * s), (nx + 26 * s, nt - 110 * s), (nx + 40 * s, nt - 58 * s),
             (nx - 40 * s, nt - 58 * s)]
    cv.polygon(ctx.layer, shade, rgb("#f0d6a8"))
    bulb = (nx, nt - 80 * s)
    ctx.pool(bulb[0], bulb[1] + 30 * s, 480 * s, _WARM, 1.1)
    ctx.add_light(*bulb, 90 * s, _WARM, "lamp")
    ctx.emissive.append(lambda img: (cv.glow(img, bulb[0], bulb[1], 110 * s, rgb("#ffcf88"), 0.5),
                                     cv.polygon(img, shade, rgb("#ffd890"), alpha=0.35, mode="add")))
    _mug(ctx, nx + 30 * s * side, nt, 0.7, rgb("#e8dccb"))
    # a plant in the corner by the window
    _plant(ctx, wx + ww + 90 * s if side > 0 else wx - 90 * s, floor_y + 20 * s, 1.6, ctx.rng("plant"))
    # fairy lights along the wall above the bed and the window
    frng = ctx.rng("fairy")
    y0 = H * frng.uniform(0.05, 0.1)
    _fairy_lights(ctx, (0, y0), (W, y0 + H * frng.uniform(-0.03, 0.03)), H * frng.uniform(0.06, 0.12),
                  int(frng.integers(14, 22)), frng)
    if ctx.christmas:
        _christmas_tree(ctx, wx + ww / 2, floor_y + 14 * s, 0.9, ctx.rng("tree"))
    ctx.air = ctx.rect(0, 0, W, floor_y)


def _rainy_window(ctx: _Ctx):
    W, H, s = ctx.W, ctx.H, ctx.s
    rng = ctx.rng("layout")
    wall = scale(mix(_WALLS[int(rng.integers(len(_WALLS)))], rgb("#c89a78"), 0.3), 0.85)
    wood = _WOOD[int(rng.integers(len(_WOOD)))]
    sill_y = H * rng.uniform(0.76, 0.84)
    _wall(ctx, wall, 0, H)
    m = W * rng.uniform(0.05, 0.12)
    top = H * rng.uniform(0.03, 0.08)
    horizon = top + (sill_y - top) * rng.uniform(0.62, 0.8)
    glass = _window(ctx, m, top, W - m, sill_y, cols=int(rng.integers(1, 3)), rows=1, frame=mix(wood, (1, 1, 1), 0.15),
                    sill=False, blur=16 * ctx.s, horizon=horizon)
    # blurred city lights (bokeh) behind the wet glass
    gx0, gy0, gx1, gy1 = glass
    brng = ctx.rng("bokeh")
    warm = [rgb("#ffc870"), rgb("#ffdca0"), rgb("#ff9a6a"), rgb("#a8d0ff"), rgb("#ffe6b8"), rgb("#ff7a8a")]
    dark = ctx.night or ctx.time == "sunset" or ctx.weather in ("rain", "storm")
    area = (gx1 - gx0) * (gy1 - gy0) / (s * s * 1e4)   # in 100x100 px tiles at 720 p
    n = int(area * (0.45 if dark else 0.2)) + 4
    for i in range(n):
        bx = brng.uniform(gx0, gx1)
        by = gy0 + (gy1 - gy0) * brng.uniform(0.35, 0.98) ** 0.7
        r = brng.uniform(8, 26) * s
        c = warm[int(brng.integers(len(warm)))]
        k = brng.uniform(0.2, 0.5) * (1.0 if ctx.night else 0.6)
        cv.glow(ctx.view, bx, by, r * 2.4, c, k * 0.35, mode="screen")
        cv.circle(ctx.view, bx, by, r, c, soft=3 * s, alpha=k, mode="screen")
        if i < 12:
            ctx.add_light(bx, by, r * 2, c, "city")
    # a sheer curtain gathered on one side
    side = 1 if rng.random() < 0.5 else -1
    cw = W * rng.uniform(0.1, 0.16)
    cx0 = m - 30 * s if side < 0 else W - m - cw + 30 * s
    _curtain(ctx, cx0, 0, cx0 + cw, sill_y - 4 * s, mix(_BOOKS[int(rng.integers(len(_BOOKS)))], (1, 1, 1), 0.6),
             left=side < 0)
    # a deep wooden sill with things on it
    cv.rect(ctx.layer, 0, sill_y - 8 * s, W, sill_y + 30 * s, cv.vgradient(sill_y - 8 * s, sill_y + 30 * s,
            [mix(wood, (1, 1, 1), 0.25), wood]), radius=3 * s)
    cv.fill(ctx.layer, 0, sill_y + 30 * s, W, H, cv.vgradient(sill_y, H, [scale(wall, 0.8), scale(wall, 0.55)]))
    cv.rect(ctx.layer, 0, sill_y + 30 * s, W, sill_y + 44 * s, (0, 0, 0), alpha=0.3, soft=10 * s)
    ctx.reflections.append(ctx.rect(gx0, sill_y - 8 * s, gx1, sill_y + 12 * s))
    slots = rng.permutation(4)  # mug, plant, candle, books: their order along the sill
    xs = [W * (0.16 + 0.22 * k + rng.uniform(-0.04, 0.04)) for k in range(4)]
    _mug(ctx, xs[slots[0]], sill_y + 12 * s, 1.6, _BOOKS[int(rng.integers(len(_BOOKS)))])
    _plant(ctx, xs[slots[1]], sill_y + 10 * s, 1.6, ctx.rng("plant"))
    cx = xs[slots[2]]
    for dx, hh in ((0, 60), (34, 38)):
        cv.rect(ctx.layer, cx + dx * s - 14 * s, sill_y - hh * s, cx + dx * s + 14 * s, sill_y + 10 * s,
                cv.gradient(cx + dx * s - 14 * s, 0, cx + dx * s + 14 * s, 0, [rgb("#f6efe2"), rgb("#e6d8c0")]),
                radius=4 * s)
        flame = (cx + dx * s, sill_y - (hh + 12) * s)
        ctx.pool(flame[0], flame[1], 320 * s, _WARM, 0.9 if dark else 0.35)
        ctx.add_light(*flame, 40 * s, rgb("#ffb45a"), "candle")
        ctx.emissive.append(lambda img, f=flame: (cv.glow(img, f[0], f[1], 60 * s, rgb("#ffb45a"), 0.6),
                                                  cv.ellipse(img, f[0], f[1], 5 * s, 11 * s, rgb("#fff0c0"),
                                                             soft=2 * s)))
    by = sill_y + 10 * s
    bx = xs[slots[3]]
    for i in range(int(rng.integers(2, 5))):
        bh = rng.uniform(14, 22) * s
        col = _BOOKS[int(rng.integers(len(_BOOKS)))]
        off = rng.uniform(-10, 10) * s
        cv.rect(ctx.layer, bx - 65 * s + off, by - bh, bx + 65 * s + off, by, col, radius=2 * s)
        cv.rect(ctx.layer, bx - 60 * s + off, by - bh * 0.7, bx + 63 * s + off, by - bh * 0.3, rgb("#f2ead8"), alpha=0.7)
        by -= bh
    # warm light from the room behind us
    ctx.pool(W * 0.5, H * 1.05, W * 0.85, _WARM, 0.55 if dark else 0.25)
    if rng.random() < 0.6 or ctx.christmas:
        _fairy_lights(ctx, (m, top + 20 * s), (W - m, top + 20 * s), H * 0.06, int(rng.integers(10, 18)),
                      ctx.rng("fairy"))
    ctx.air = ctx.rect(0, 0, W, sill_y)


def _puddle(ctx: _Ctx, x, y, rx, ry, rng):
    """A puddle that mirrors the sky and the lights above it (shimmer is animated elsewhere)."""
    s = ctx.s
    sky = _SKY[ctx.time]
    # the puddle is a hole in the roof through which a mirrored sky shows, unlit by the room
    cv.ellipse(ctx.view, x, y, rx, ry, cv.vgradient(y - ry, y + ry, [mix(sky[2], sky[1], 0.3), sky[0]]), soft=2.5 * s)
    cv.ellipse(ctx.layer, x, y, rx, ry, (0, 0, 0), soft=2.5 * s, alpha=0.85, mode="erase")
    glints = []
    for _ in range(int(rng.integers(5, 10))):
        gx = x + rng.uniform(-0.75, 0.75) * rx
        c = [rgb("#ffcf7a"), rgb("#ffe0a8"), rgb("#ff9a7a"), rgb("#a8c8ff")][int(rng.integers(4))] \
            if ctx.night or ctx.time == "sunset" else rgb("#ffffff")
        glints.append((gx, c, rng.uniform(0.2, 0.5), rng.uniform(2, 5) * s))

    def draw(img):
        for gx, c, k, gw in glints:
            cv.ellipse(img, gx, y - ry * 0.1, gw, ry * 0.7, c, soft=gw, alpha=k, mode="add")

    ctx.emissive.append(draw)
    ctx.reflections.append(ctx.rect(x - rx, y - ry, x + rx, y + ry))


def _balcony_sunset(ctx: _Ctx):
    W, H, s = ctx.W, ctx.H, ctx.s
    rng = ctx.rng("layout")
    rail_y = H * rng.uniform(0.68, 0.74)
    horizon = rail_y + H * 0.12   # the street is below the railing; only roofs rise above it
    _view(ctx, (0, 0, W, H), horizon, "city", height=rng.uniform(0.4, 0.55))
    _hole(ctx, 0, 0, W, H)
    ctx.sky = ctx.rect(0, 0, W, rail_y * 0.6)
    # balcony floor, railing, wall edge on one side
    floor_y = H * 0.9
    metal = rgb("#2c2630")
    tile = rgb("#b88f78")
    cv.fill(ctx.layer, 0, floor_y, W, H, cv.vgradient(floor_y, H, [tile, scale(tile, 0.7)]))
    for x in np.arange(0, W + 80 * s, 80 * s):
        cv.line(ctx.layer, [(W / 2 + (x - W / 2) * 0.8, floor_y), (W / 2 + (x - W / 2) * 1.3, H)], 1.5 * s,
                scale(tile, 0.8), alpha=0.6)
    cv.rect(ctx.layer, 0, rail_y, W, rail_y + 9 * s, metal, radius=4 * s)
    cv.rect(ctx.layer, 0, floor_y - 8 * s, W, floor_y, metal)
    step = rng.uniform(28, 40) * s
    for x in np.arange(10 * s, W, step):
        cv.rect(ctx.layer, x, rail_y, x + 5 * s, floor_y, metal)
    side = 1 if rng.random() < 0.5 else -1
    wall_x = W * rng.uniform(0.08, 0.14)
    wx0, wx1 = (0, wall_x) if side < 0 else (W - wall_x, W)
    brick = rgb("#9a6a58")
    cv.fill(ctx.layer, wx0, 0, wx1, H, cv.gradient(wx0, 0, wx1, 0, [scale(brick, 0.8), brick] if side > 0 else
                                                   [brick, scale(brick, 0.8)]))
    for yb in np.arange(0, H, 22 * s):
        cv.fill(ctx.layer, wx0, yb, wx1, yb + 2 * s, scale(brick, 0.7), alpha=0.6)
    # plants in pots along the railing, big and small
    prng = ctx.rng("plants")
    n = int(prng.integers(3, 6))
    for i in range(n):
        px = W * (i + prng.uniform(0.25, 0.75)) / n
        _plant(ctx, px, H * 0.93 + prng.uniform(0, 0.05) * H, prng.uniform(1.3, 2.0), prng)
    # a hanging basket from the top
    hx = wx0 + (wx1 - wx0) / 2 + (-side) * W * 0.1
    cv.line(ctx.layer, [(hx, 0), (hx, H * 0.16)], 1.5 * s, rgb("#3a3028"))
    _plant(ctx, hx, H * 0.2, 1.0, prng, kind=1)
    # string lights across the top
    _fairy_lights(ctx, (0, H * 0.05), (W, H * 0.08), H * 0.12, int(rng.integers(10, 16)), ctx.rng("fairy"))
    # a small table with a mug on the wall side
    tx = W * 0.5 + side * W * rng.uniform(0.18, 0.28)
    cv.ellipse(ctx.layer, tx, H * 0.83, 80 * s, 14 * s, _WOOD[1])
    cv.rect(ctx.layer, tx - 5 * s, H * 0.84, tx + 5 * s, H, scale(_WOOD[1], 0.6))
    _mug(ctx, tx - 20 * s, H * 0.835, 0.9, rgb("#e8dccb"))
    # the low sun lights everything from the horizon
    ctx.pool(W / 2, horizon, W * 0.9, _SKY[ctx.time][2], 0.45)
    # someone leans on the railing, watching the sky, on the side away from the table
    ctx.rim = ((0.0, -1.0), _SKY[ctx.time][2])
    fx = W * 0.5 - side * W * rng.uniform(0.05, 0.2)
    ctx.figure_args = (fx, H + 2, min(H * 0.5, W * 0.4))
    ctx.figure_cap = rng.random() < 0.25
    if ctx.christmas:
        _christmas_tree(ctx, W * 0.5 - side * W * 0.3, H * 0.95, 0.8, ctx.rng("tree"))
    ctx.air = ctx.rect(0, 0, W, H)


def _library(ctx: _Ctx):
    W, H, s = ctx.W, ctx.H, ctx.s
    rng = ctx.rng("layout")
    ctx.lightmap *= 0.85   # deep shelves: the lamp and the window do the lighting
    wood = scale(_WOOD[int(rng.integers(len(_WOOD)))], 0.85)
    floor_y = H * rng.uniform(0.82, 0.86)
    _wall(ctx, scale(wood, 0.7), 0, floor_y)
    _floor(ctx, floor_y, scale(_WOOD[0], 0.9))
    # a tall window in a gap between the shelves; where it is varies
    ww = W * rng.uniform(0.15, 0.22)
    wx = W * rng.uniform(0.2, 0.8) - ww / 2
    wtop = H * rng.uniform(0.06, 0.12)
    wbot = H * rng.uniform(0.56, 0.64)
    glass = _window(ctx, wx, wtop, wx + ww, wbot, cols=2, rows=int(rng.integers(2, 4)), frame=scale(wood, 1.2), sill=True)
    # shelves everywhere else, full of books; a ladder leans on one of them
    rows = int(rng.integers(4, 6))
    bays = [(0, wx - 30 * s), (wx + ww + 30 * s, W)]
    for bi, (x0, x1) in enumerate(bays):
        if x1 - x0 < 40 * s:
            continue
        cv.rect(ctx.layer, x0, 0, x1, floor_y, scale(wood, 0.55))
        for r in range(rows):
            y = H * 0.04 + (floor_y - H * 0.06) * (r + 1) / rows
            row_rng = ctx.rng("row%d_%d" % (r, bi))
            _books(ctx, x0 + 14 * s, x1 - 14 * s, y, (floor_y - H * 0.08) / rows * 0.82, row_rng)
            cv.rect(ctx.layer, x0, y, x1, y + 10 * s, wood)
            cv.rect(ctx.layer, x0, y + 10 * s, x1, y + 18 * s, (0, 0, 0), alpha=0.25, soft=6 * s)
        n_up = max(int((x1 - x0) / (260 * s)), 1)
        for k in range(n_up + 1):
            xv = x0 + (x1 - x0 - 14 * s) * k / n_up
            cv.rect(ctx.layer, xv, 0, xv + 14 * s, floor_y, scale(wood, 1.1))
        # a small brass reading light over the middle of each bay
        lx0 = (x0 + x1) / 2
        ly0 = H * 0.04 + (floor_y - H * 0.06) * 1 / rows - 12 * s
        cv.rect(ctx.layer, lx0 - 40 * s, ly0 - 10 * s, lx0 + 40 * s, ly0 + 2 * s, rgb("#b8955a"), radius=5 * s)
        cv.line(ctx.layer, [(lx0, ly0 - 10 * s), (lx0, ly0 - 24 * s)], 4 * s, rgb("#8a6a3a"))
        ctx.pool(lx0, ly0 + 160 * s, 420 * s, _WARM, 0.8 if ctx.night else 0.2)
        ctx.add_light(lx0, ly0 + 2 * s, 60 * s, _WARM, "lamp")
        ctx.emissive.append(lambda img, lx0=lx0, ly0=ly0: (
            cv.ellipse(img, lx0, ly0 + 2 * s, 36 * s, 4 * s, rgb("#fff0c8"), soft=2 * s),
            cv.glow(img, lx0, ly0 + 10 * s, 70 * s, rgb("#ffcf88"), 0.35 if ctx.night else 0.15)))
    lb = bays[0] if bays[0][1] - bays[0][0] > bays[1][1] - bays[1][0] else bays[1]
    lx = lb[0] + (lb[1] - lb[0]) * rng.uniform(0.3, 0.7)
    rail = scale(wood, 1.3)
    for dx in (-30 * s, 30 * s):
        cv.line(ctx.layer, [(lx + dx - 30 * s, floor_y + 10 * s), (lx + dx + 20 * s, H * 0.05)], 8 * s, rail)
    for k in range(1, 9):
        t = k / 9
        yy = floor_y + 10 * s + (H * 0.05 - floor_y - 10 * s) * t
        xx = lx - 30 * s + 50 * s * t
        cv.line(ctx.layer, [(xx - 30 * s, yy), (xx + 30 * s, yy)], 6 * s, scale(rail, 0.9))
    # reading nook under the window: rug, armchair, floor lamp, side table with a mug and books
    cx = wx + ww / 2 + rng.uniform(-0.03, 0.03) * W
    rug = [rgb("#9a4a3a"), rgb("#3f5a6e"), rgb("#7a6a3a")][int(rng.integers(3))]
    cv.ellipse(ctx.layer, cx, H * 0.94, W * 0.24, H * 0.05, rug, soft=2)
    cv.ellipse(ctx.layer, cx, H * 0.94, W * 0.2, H * 0.035, mix(rug, (1, 1, 1), 0.25), soft=2, alpha=0.5)
    chair = [rgb("#7a3e34"), rgb("#3f5a4c"), rgb("#5a4a6e"), rgb("#8a6a3a")][int(rng.integers(4))]
    cy0 = H * 0.6
    cv.rect(ctx.layer, cx - 110 * s, cy0, cx + 110 * s, H * 0.92, cv.vgradient(cy0, H * 0.92, [chair, scale(chair, 0.7)]),
            radius=34 * s)
    for k in (-1, 1):
        cv.rect(ctx.layer, cx + k * 105 * s - 28 * s, cy0 + 90 * s, cx + k * 105 * s + 28 * s, H * 0.92,
                scale(chair, 0.85), radius=22 * s)
    cv.rect(ctx.layer, cx - 80 * s, cy0 + 130 * s, cx + 80 * s, cy0 + 170 * s, scale(chair, 1.15), radius=12 * s)
    cush = mix(_BOOKS[int(rng.integers(len(_BOOKS)))], (1, 1, 1), 0.3)
    cv.rect(ctx.layer, cx - 40 * s, cy0 + 70 * s, cx + 40 * s, cy0 + 135 * s, cush, radius=16 * s)
    # an open book left on the seat
    cv.polygon(ctx.layer, [(cx - 60 * s, cy0 + 150 * s), (cx, cy0 + 158 * s), (cx + 60 * s, cy0 + 150 * s),
                           (cx + 58 * s, cy0 + 164 * s), (cx, cy0 + 170 * s), (cx - 58 * s, cy0 + 164 * s)],
               rgb("#f4efe4"))
    lamp_side = 1 if rng.random() < 0.5 else -1
    _lamp(ctx, cx + lamp_side * 200 * s, floor_y + 40 * s, 0.8, kind="floor")
    tx = cx - lamp_side * 190 * s
    cv.rect(ctx.layer, tx - 40 * s, floor_y - 40 * s, tx + 40 * s, floor_y - 30 * s, scale(wood, 1.2), radius=3 * s)
    cv.rect(ctx.layer, tx - 6 * s, floor_y - 32 * s, tx + 6 * s, floor_y + 40 * s, scale(wood, 0.9))
    cv.rect(ctx.layer, tx - 30 * s, floor_y + 34 * s, tx + 30 * s, floor_y + 42 * s, scale(wood, 0.9), radius=3 * s)
    _mug(ctx, tx + 12 * s, floor_y - 40 * s, 0.8, rgb("#e8dccb"))
    cv.rect(ctx.layer, tx - 36 * s, floor_y - 54 * s, tx, floor_y - 40 * s, _BOOKS[int(rng.integers(len(_BOOKS)))],
            radius=2 * s)
    _sunbeams(ctx, glass[0], glass[1], glass[2], glass[3], H * 0.96, rng.choice([-0.6, 0.6]), k=0.12)
    ctx.air = ctx.rect(0, 0, W, floor_y)
    if ctx.christmas:
        _garland(ctx, 0, W, 20 * s, ctx.rng("garland"))
        _christmas_tree(ctx, lx + 160 * s if lx < W / 2 else lx - 160 * s, floor_y + 30 * s, 0.9, ctx.rng("tree"))


def _sunbeams(ctx: _Ctx, x0, y0, x1, y1, floor_y, lean, k=0.18):
    """Shafts of sunlight from a window down to a surface (added after lighting)."""
    if ctx.night or ctx.weather not in ("clear", "snow") or ctx.time == "day":
        return
    col = {"morning": rgb("#fff0c8"), "golden_hour": rgb("#ffd08a"), "sunset": rgb("#ffb080")}[ctx.time]
    s = ctx.s
    drop = floor_y - y1
    pts = [(x0, y0), (x1, y0), (x1 + lean * drop, floor_y), (x0 + lean * drop, floor_y)]
    ys0 = y0

    def draw(img):
        def paint(xs, ys):
            t = np.clip((ys - ys0) / max(floor_y - ys0, 1), 0, 1)
            f = (0.4 + 0.6 * t) * k
            return np.broadcast_to(f[..., None] * np.asarray(col, np.float32), (ys.shape[0], xs.shape[1], 3))
        cv.polygon(img, pts, paint, soft=30 * s, mode="add")

    ctx.emissive.append(draw)


def _kitchen_morning(ctx: _Ctx):
    W, H, s = ctx.W, ctx.H, ctx.s
    rng = ctx.rng("layout")
    wall = mix(_WALLS[int(rng.integers(len(_WALLS)))], rgb("#f0dcc0"), 0.4)
    counter_y = H * rng.uniform(0.66, 0.7)
    _wall(ctx, wall, 0, counter_y)
    # tiles behind the counter
    tile = [rgb("#e8efe9"), rgb("#f1e6d6"), rgb("#dfe7ee"), rgb("#eed9cf")][int(rng.integers(4))]
    ty0 = counter_y - H * 0.11
    cv.fill(ctx.layer, 0, ty0, W, counter_y, tile)
    tw = 34 * s

    def grout(xs, ys):
        row = np.floor((ys - ty0) / (tw * 0.55))
        gx = (((xs + row * tw * 0.5) / tw) % 1.0) < 0.06
        gy = (((ys - ty0) / (tw * 0.55)) % 1.0) < 0.1
        return (gx | gy).astype(np.float32) * 0.6

    cv.shade(ctx.layer, 0, ty0, W, counter_y, grout, scale(tile, 0.82))
    # window over the sink, its place varies
    ww = W * rng.uniform(0.3, 0.4)
    wx = W * rng.uniform(0.12, 0.88) - ww / 2
    wx = min(max(wx, W * 0.04), W * 0.96 - ww)
    wy = H * rng.uniform(0.05, 0.1)
    wh = ty0 - wy - 30 * s
    ctx.pool(wx + ww / 2, wy + wh / 2, ww * 1.2, _SKY[ctx.time][2], 0.15)
    glass = _window(ctx, wx, wy, wx + ww, wy + wh, cols=2, rows=int(rng.integers(1, 3)), view="hills")
    # cafe curtain on rod across the lower half
    cc = mix(_BOOKS[int(rng.integers(len(_BOOKS)))], (1, 1, 1), 0.55)
    cy0 = wy + wh * 0.62
    _curtain(ctx, wx + 4 * s, cy0, wx + ww / 2, wy + wh - 4 * s, cc)
    _curtain(ctx, wx + ww / 2, cy0, wx + ww - 4 * s, wy + wh - 4 * s, cc, left=False)
    cv.rect(ctx.layer, wx - 6 * s, cy0 - 4 * s, wx + ww + 6 * s, cy0 + 2 * s, rgb("#b8955a"), radius=2 * s)
    # herbs on the sill
    prng = ctx.rng("plants")
    n = int(prng.integers(2, 4))
    for i in range(n):
        _plant(ctx, wx + ww * (i + 0.5) / n, wy + wh + 2 * s, prng.uniform(0.55, 0.75), prng)
    # a trailing plant hangs in one corner of the window
    hx = wx + ww * (0.15 if prng.random() < 0.5 else 0.85)
    cv.line(ctx.layer, [(hx, 0), (hx, wy + wh * 0.22)], 1.5 * s, rgb("#3a3028"))
    _plant(ctx, hx, wy + wh * 0.3, 0.9, prng, kind=1)
    # upper cabinets or an open shelf on each side of the window
    cab = mix(_BOOKS[int(rng.integers(len(_BOOKS)))], rgb("#e8e0d2"), 0.55)
    for (x0, x1) in ((0, wx - 50 * s), (wx + ww + 50 * s, W)):
        if x1 - x0 < 90 * s:
            continue
        if rng.random() < 0.6:
            cv.rect(ctx.layer, x0, 0, x1, H * 0.3, cv.vgradient(0, H * 0.3, [scale(cab, 0.9), cab]), radius=4 * s)
            nd = max(int((x1 - x0) / (150 * s)), 1)
            for i in range(nd):
                dx0 = x0 + (x1 - x0) * i / nd + 8 * s
                dx1 = x0 + (x1 - x0) * (i + 1) / nd - 8 * s
                cv.rect(ctx.layer, dx0, 10 * s, dx1, H * 0.3 - 10 * s, scale(cab, 1.05), radius=3 * s)
                hx = dx1 - 18 * s if i % 2 == 0 else dx0 + 18 * s
                cv.rect(ctx.layer, hx - 3 * s, H * 0.3 - 60 * s, hx + 3 * s, H * 0.3 - 24 * s, rgb("#b8955a"), radius=3 * s)
            cv.rect(ctx.layer, x0, H * 0.3, x1, H * 0.3 + 14 * s, (0, 0, 0), alpha=0.18, soft=10 * s)
        else:  # open shelf with jars and plates
            sy = H * rng.uniform(0.3, 0.38)
            jr = ctx.rng("jars%d" % int(x0))
            x = x0 + 20 * s
            while x < x1 - 50 * s:
                if jr.random() < 0.3:
                    cv.circle(ctx.layer, x + 28 * s, sy - 30 * s, 28 * s, rgb("#f1ece4"))
                    cv.circle(ctx.layer, x + 28 * s, sy - 30 * s, 18 * s, rgb("#dcd3c6"))
                    x += 62 * s
                    continue
                jw, jh = jr.uniform(26, 40) * s, jr.uniform(36, 60) * s
                col = [rgb("#c9a27a"), rgb("#8a6a4c"), rgb("#e2d6c2"), rgb("#d9825b")][int(jr.integers(4))]
                cv.rect(ctx.layer, x, sy - jh, x + jw, sy, mix(col, (1, 1, 1), 0.2), radius=6 * s)
                cv.rect(ctx.layer, x - 2 * s, sy - jh - 7 * s, x + jw + 2 * s, sy - jh + 3 * s, rgb("#b8955a"),
                        radius=2 * s)
                x += jw + jr.uniform(8, 18) * s
            cv.rect(ctx.layer, x0, sy, x1, sy + 10 * s, _WOOD[3], radius=2 * s)
    # counter and lower cabinets
    cv.rect(ctx.layer, 0, counter_y, W, counter_y + 16 * s, rgb("#eee6d8"), radius=3 * s)
    cv.fill(ctx.layer, 0, counter_y + 16 * s, W, H, cv.vgradient(counter_y, H, [cab, scale(cab, 0.72)]))
    cv.rect(ctx.layer, 0, counter_y + 16 * s, W, counter_y + 26 * s, (0, 0, 0), alpha=0.2, soft=8 * s)
    nd = 5
    for i in range(nd):
        dx0, dx1 = W * i / nd + 8 * s, W * (i + 1) / nd - 8 * s
        cv.rect(ctx.layer, dx0, counter_y + 34 * s, dx1, H + 10 * s, scale(cab, 1.04), radius=4 * s)
        cv.rect(ctx.layer, (dx0 + dx1) / 2 - 24 * s, counter_y + 50 * s, (dx0 + dx1) / 2 + 24 * s,
                counter_y + 56 * s, rgb("#b8955a"), radius=3 * s)
    ctx.reflections.append(ctx.rect(0, counter_y, W, counter_y + 16 * s))
    # the coffee corner on the side with more room: drip machine with a carafe, kettle, mug
    right = (wx + ww / 2) < W / 2
    base_x = (wx + ww + (W - wx - ww) * 0.5) if right else wx * 0.5
    mx = base_x + rng.uniform(-0.04, 0.04) * W
    body = [rgb("#2f2f36"), rgb("#6a4a3a"), rgb("#4a5a66")][int(rng.integers(3))]
    cv.rect(ctx.layer, mx - 55 * s, counter_y - 170 * s, mx + 55 * s, counter_y - 140 * s, body, radius=10 * s)
    cv.rect(ctx.layer, mx + 20 * s, counter_y - 150 * s, mx + 55 * s, counter_y, body, radius=8 * s)
    cv.rect(ctx.layer, mx - 55 * s, counter_y - 12 * s, mx + 55 * s, counter_y, scale(body, 0.8), radius=4 * s)
    # glass carafe with coffee
    cv.rect(ctx.layer, mx - 48 * s, counter_y - 100 * s, mx + 14 * s, counter_y - 12 * s, rgb("#cfd8dc"), radius=14 * s)
    cv.rect(ctx.layer, mx - 45 * s, counter_y - 62 * s, mx + 11 * s, counter_y - 14 * s, rgb("#4a2a1a"), radius=11 * s)
    cv.rect(ctx.layer, mx - 50 * s, counter_y - 110 * s, mx + 16 * s, counter_y - 98 * s, scale(body, 0.9), radius=3 * s)
    cv.circle(ctx.layer, mx + 38 * s, counter_y - 40 * s, 4 * s, rgb("#ff5a3a"))
    ctx.cups.append((int(mx - 17 * s), int(counter_y - 104 * s), 0.8))
    ctx.reflections.append(ctx.rect(mx - 48 * s, counter_y - 100 * s, mx + 14 * s, counter_y - 12 * s))
    # kettle
    kx = mx + (1 if right else -1) * -170 * s
    kc = [rgb("#c8553d"), rgb("#5f8fa0"), rgb("#e6dccd"), rgb("#e3b85c")][int(rng.integers(4))]
    cv.line(ctx.layer, [(kx + 48 * s, counter_y - 48 * s), (kx + 88 * s, counter_y - 86 * s)], 12 * s, scale(kc, 0.9))
    cv.ellipse(ctx.layer, kx, counter_y - 52 * s, 58 * s, 50 * s, cv.gradient(kx - 58 * s, 0, kx + 58 * s, 0,
               [scale(kc, 0.8), mix(kc, (1, 1, 1), 0.25), kc, scale(kc, 0.75)]), soft=1.2)
    cv.rect(ctx.layer, kx - 56 * s, counter_y - 18 * s, kx + 56 * s, counter_y, scale(kc, 0.8), radius=6 * s)
    ts = np.linspace(np.pi * 1.1, np.pi * 1.9, 12)
    cv.line(ctx.layer, [(kx + np.cos(t) * 42 * s, counter_y - 88 * s + np.sin(t) * 40 * s) for t in ts],
            8 * s, rgb("#2a2420"))
    cv.circle(ctx.layer, kx, counter_y - 100 * s, 8 * s, scale(kc, 0.7))
    ctx.cups.append((int(kx + 90 * s), int(counter_y - 90 * s), 1.2))
    ctx.reflections.append(ctx.rect(kx - 58 * s, counter_y - 100 * s, kx + 58 * s, counter_y))
    _mug(ctx, kx + (1 if right else -1) * -110 * s, counter_y + 4 * s, 1.0,
         [rgb("#f2ece2"), rgb("#e3b85c"), rgb("#7d9b9a")][int(rng.integers(3))])
    # sunlight falls through the window onto the counter
    sun_k = {"morning": 0.25, "golden_hour": 0.25, "day": 0.2, "sunset": 0.15, "night": 0.0}[ctx.time]
    if ctx.weather in ("clear", "snow") and sun_k:
        ctx.pool(wx + ww / 2, counter_y, W * 0.4, rgb("#ffe2a8"), sun_k)
    lean = 0.5 if right else -0.5
    _sunbeams(ctx, glass[0], glass[1], glass[2], glass[3], counter_y + 16 * s, lean, k=0.1)
    if ctx.night or ctx.weather in ("rain", "storm"):
        # after dark (or on a grey day) a pendant over the coffee corner warms the room
        _pendant(ctx, mx + (60 if right else -60) * s, H * 0.1, 1.1)
    if not ctx.night:
        ctx.add_light(wx + ww / 2, wy + wh * 0.4, ww * 0.5, rgb("#ffe2a8"), "sun")
    ctx.air = ctx.rect(0, 0, W, counter_y)
    if ctx.christmas:
        _garland(ctx, wx - 30 * s, wx + ww + 30 * s, wy - 10 * s, ctx.rng("garland"))


def _rooftop_night(ctx: _Ctx):
    W, H, s = ctx.W, ctx.H, ctx.s
    rng = ctx.rng("layout")
    horizon = H * rng.uniform(0.6, 0.66)
    _view(ctx, (0, 0, W, H), horizon, "city", height=rng.uniform(0.45, 0.65))
    _hole(ctx, 0, 0, W, H)
    ctx.sky = ctx.rect(0, 0, W, horizon * 0.6)
    # a ledge across the frame, the roof in front of it
    ledge = H * rng.uniform(0.7, 0.74)
    concrete = rgb("#8a8490")
    cv.fill(ctx.layer, 0, ledge, W, ledge + 18 * s, concrete)
    cv.fill(ctx.layer, 0, ledge, W, ledge + 3 * s, mix(concrete, (1, 1, 1), 0.3))
    cv.fill(ctx.layer, 0, ledge + 18 * s, W, ledge + 60 * s, scale(concrete, 0.75))
    roof = ledge + 60 * s
    cv.fill(ctx.layer, 0, roof, W, H, cv.vgradient(roof, H, [rgb("#6a6670"), rgb("#4a4650")]))
    # stains on the roof, then puddles from the last rain
    prng = ctx.rng("puddles")
    for i in range(6):
        cv.ellipse(ctx.layer, W * prng.uniform(0, 1), roof + (H - roof) * prng.uniform(0.1, 1.0),
                   prng.uniform(60, 200) * s, prng.uniform(8, 24) * s, rgb("#3a3640"), soft=20 * s, alpha=0.3)
    for i in range(int(prng.integers(2, 4))):
        _puddle(ctx, W * prng.uniform(0.1, 0.9), roof + (H - roof) * prng.uniform(0.3, 0.8),
                prng.uniform(90, 170) * s, prng.uniform(14, 26) * s, prng)
    # water tank on legs and an antenna, off to one side
    side = 1 if rng.random() < 0.5 else -1
    tx = W * 0.5 + side * W * rng.uniform(0.3, 0.4)
    tank = rgb("#6a4a3a")
    cv.rect(ctx.layer, tx - 55 * s, ledge - 230 * s, tx + 55 * s, ledge - 70 * s,
            cv.gradient(tx - 55 * s, 0, tx + 55 * s, 0, [scale(tank, 0.8), tank, scale(tank, 0.7)]), radius=8 * s)
    for yb in (ledge - 190 * s, ledge - 120 * s):
        cv.fill(ctx.layer, tx - 55 * s, yb, tx + 55 * s, yb + 4 * s, scale(tank, 0.6))
    cv.polygon(ctx.layer, [(tx - 62 * s, ledge - 228 * s), (tx + 62 * s, ledge - 228 * s), (tx, ledge - 275 * s)],
               scale(tank, 0.7))
    for sgn in (-1, 1):
        cv.line(ctx.layer, [(tx + sgn * 45 * s, ledge - 72 * s), (tx + sgn * 52 * s, ledge + 30 * s)], 5 * s,
                rgb("#2a2420"))
    # the stairwell hut, its door ajar with warm light inside
    hx = tx - side * min(170 * s, W * 0.14)
    hut = rgb("#5a5460")
    cv.rect(ctx.layer, hx - 80 * s, ledge - 150 * s, hx + 80 * s, ledge + 60 * s, hut, radius=3 * s)
    cv.rect(ctx.layer, hx - 90 * s, ledge - 160 * s, hx + 90 * s, ledge - 146 * s, scale(hut, 0.7), radius=3 * s)
    door = (hx - 30 * s, ledge - 100 * s, hx + 30 * s, ledge + 60 * s)
    cv.rect(ctx.layer, *door, rgb("#ffcf8a"))
    cv.rect(ctx.layer, door[0], door[1], door[0] + 22 * s, door[3], rgb("#3a3038"))
    ctx.pool(hx, ledge + 80 * s, 260 * s, _WARM, 0.6)
    ctx.add_light(hx + 8 * s, ledge - 20 * s, 80 * s, _WARM, "lamp")
    ctx.emissive.append(lambda img: cv.glow(img, hx + 8 * s, ledge - 10 * s, 110 * s, rgb("#ffc070"), 0.35))
    # string lights from the tank across
    _fairy_lights(ctx, (0, H * 0.1), (W, H * 0.16), H * 0.12, int(rng.integers(10, 16)), ctx.rng("fairy"))
    # the person sits on the ledge, a mug beside them
    fx = W * 0.5 - side * W * rng.uniform(0.05, 0.18)
    _mug(ctx, fx - side * 140 * s, ledge + 4 * s, 0.9, rgb("#e8dccb"))
    ctx.pool(fx, ledge - 100 * s, 400 * s, rgb("#ffc070"), 0.35)   # the string lights above
    ctx.pool(W / 2, horizon, W * 0.8, rgb("#5a5a9a"), 0.4)         # the city glow
    ctx.rim = ((0.0, -1.0), rgb("#e0a8c0"))
    ctx.figure_args = (fx, ledge + 10 * s, min(H * 0.32, W * 0.3))
    ctx.figure_cap = rng.random() < 0.5
    if ctx.christmas:
        _christmas_tree(ctx, W * 0.5 + side * W * 0.12, ledge + 2 * s, 0.6, ctx.rng("tree"))
    ctx.air = ctx.rect(0, 0, W, H)


_PAINTERS = {  # one per scene of the vocabulary, in its order
    "study_room": _study_room,
    "coffee_shop": _coffee_shop,
    "bedroom_night": _bedroom_night,
    "rainy_window": _rainy_window,
    "balcony_sunset": _balcony_sunset,
    "library": _library,
    "kitchen_morning": _kitchen_morning,
    "rooftop_night": _rooftop_night,
}


# ---------------------------------------------------------------- entry point

def _palette(ctx: _Ctx) -> dict[str, tuple[float, float, float]]:
    snow = rgb("#f4f7fb") if not ctx.night else rgb("#c8d0e8")
    rain = mix(_SKY[ctx.time][2], rgb("#c8d4e4"), 0.6)
    return {
        "warm": _WARM,
        "ambient": ctx.ambient,
        "rain": rain,
        "snow": snow,
        "dust": rgb("#fff0c8") if not ctx.night else rgb("#ffd9a0"),
        "steam": rgb("#f4f1ec") if not ctx.night else rgb("#d8d4d0"),
        "sky": _SKY[ctx.time][1],
        "leaf": _season_leaf(ctx.season, 0) if ctx.season != "autumn" else rgb("#d9752e"),
    }


def _check(spec, seed, width, height):
    for name in ("scene", "weather", "time_of_day", "season", "theme"):
        if not hasattr(spec, name):
            raise ValueError(f"spec {spec!r} has no field {name!r}: expected a SceneSpec")
    if spec.scene not in SCENE_NAMES:
        raise ValueError(f"scene {spec.scene!r} unknown: expected one of {', '.join(SCENE_NAMES)}")
    if spec.time_of_day not in TIMES:
        raise ValueError(f"time_of_day {spec.time_of_day!r} unknown: expected one of {', '.join(TIMES)}")
    if spec.weather not in WEATHERS:
        raise ValueError(f"weather {spec.weather!r} unknown: expected one of {', '.join(WEATHERS)}")
    for name, v in (("width", width), ("height", height)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < MIN_SIZE:
            raise ValueError(f"{name} {v!r} invalid: expected an integer >= {MIN_SIZE}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise ValueError(f"seed {seed!r} invalid: expected an integer")


def paint(spec, seed: int, width: int, height: int) -> Painting:
    """Draw the still picture of `spec` and the anchors of its moving parts."""
    _check(spec, seed, width, height)
    ctx = _Ctx(spec, seed, int(width), int(height))
    _PAINTERS[spec.scene](ctx)
    # light the room and lay it over the view
    # the layer is premultiplied, so lighting it and laying it over the view is
    # room * light + view * (1 - alpha)
    img = ctx.layer[..., :3]
    img *= ctx.lightmap
    _tonemap(img)
    img += ctx.view * (1.0 - ctx.layer[..., 3:4])
    for draw in ctx.emissive:
        draw(img)
    if ctx.figure_args is not None:
        fx, fb, fh = ctx.figure_args
        ctx.figure = _make_figure(ctx, fx, fb, fh, ctx.rng("figure"), cap=ctx.figure_cap)
    _vignette(img)
    _grain(img, ctx.rng("grain"))
    np.clip(img, 0.0, 1.0, out=img)
    # at unusual aspect ratios some things fall outside the frame: they have no anchor
    W, H = ctx.W, ctx.H
    ctx.cups = [c for c in ctx.cups if 0 <= c[0] < W and 0 <= c[1] < H]
    ctx.lights = [li for li in ctx.lights if 0 <= li.x <= W and 0 <= li.y <= H]
    return Painting(background=img, windows=ctx.windows, lights=ctx.lights, cups=ctx.cups,
                    curtains=ctx.curtains, figure=ctx.figure, reflections=ctx.reflections,
                    sky=ctx.sky, air=ctx.air, palette=_palette(ctx), glass=_glass(ctx))


def _glass(ctx: _Ctx) -> np.ndarray:
    """See-through glass: the holes of the room layer, inside the window panes only."""
    glass = np.zeros((ctx.H, ctx.W), np.float32)
    for x0, y0, x1, y1 in ctx.windows:
        glass[y0:y1, x0:x1] = 1.0 - ctx.layer[y0:y1, x0:x1, 3]
    return glass


def _tonemap(x: np.ndarray, knee: float = 0.75) -> np.ndarray:
    """Soft shoulder above `knee` (in place), so bright light pools never clip flat.

    It scales all three channels by the same factor, from the brightest one, so a
    strong warm light stays warm rather than bleaching to yellow-white in the middle
    and leaving a saturated ring around it."""
    m = np.maximum(np.maximum(x[..., 0], x[..., 1]), x[..., 2])   # faster than max(axis=-1)
    over = np.maximum(m - knee, 0.0)
    r = 1.0 - knee
    target = knee + over * r / (over + r)     # rational shoulder: slope 1 at the knee, tends to 1.0
    k = np.divide(target, m, out=np.ones_like(m), where=m > knee)
    x *= k[..., None]
    return x


def _grain(img: np.ndarray, rng: np.random.Generator, amount: float = 0.008) -> None:
    """Faint paper grain; it also dithers smooth gradients so they do not band in 8 bits."""
    h, w = img.shape[:2]
    # one tile of grain repeated: far cheaper than a full frame of normals, and unseen
    t = 256
    tile = rng.standard_normal((min(t, h), min(t, w)), dtype=np.float32) * amount
    reps = (-(-h // tile.shape[0]), -(-w // tile.shape[1]))
    img += np.tile(tile, reps)[:h, :w, None]


def _vignette(img: np.ndarray, strength: float = 0.28) -> None:
    h, w = img.shape[:2]
    ys = (np.arange(h, dtype=np.float32) / h - 0.5)[:, None]
    xs = (np.arange(w, dtype=np.float32) / w - 0.5)[None, :]
    v = 1.0 - strength * np.clip((xs * xs + ys * ys) * 2.2 - 0.12, 0, 1)
    img *= v[..., None]

"""Light sources: desk and floor lamps, pendant lamps, strings of fairy lights and
shafts of sunlight. Each lights the room (a pool in the light map), registers
a light that may flicker, and draws its glow after lighting (ctx.emissive)."""

from __future__ import annotations

import numpy as np

from . import canvas as cv
from .canvas import mix, rgb, scale
from .colours import WARM, pick
from .context import Context


def lamp(ctx: Context, x, base, size, color=None, kind="desk", side=1):
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
    ctx.pool(pool_at[0], pool_at[1], 560 * s, WARM, strength)
    ctx.pool(pool_at[0], pool_at[1], 200 * s, rgb("#ffd9a0"), strength * 0.7)
    ctx.add_light(bulb[0], bulb[1], 110 * s, WARM, "lamp")


def pendant(ctx: Context, x, y, size=1.0):
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
    ctx.pool(bulb[0], bulb[1] + 120 * s, 420 * s, WARM, 0.9 if night else 0.45)
    ctx.add_light(bulb[0], bulb[1], 90 * s, WARM, "lamp")

    def draw(img):
        cv.glow(img, bulb[0], bulb[1] + 10 * s, 120 * s, rgb("#ffcf88"), 0.45 if night else 0.25)
        cv.ellipse(img, bulb[0], bulb[1] - 2 * s, 42 * s, 7 * s, rgb("#fff0c8"), soft=2 * s)

    ctx.emissive.append(draw)


def fairy_lights(ctx: Context, p0, p1, sag, n, rng, colors=None):
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
        c = pick(rng, colors)
        bulbs.append((bx, by, c))
        ctx.add_light(bx, by, 22 * s, c, "fairy")
        ctx.pool(bx, by, 90 * s, c, 0.25 if ctx.night else 0.06)

    def draw(img):
        for bx, by, c in bulbs:
            cv.glow(img, bx, by, 26 * s, c, 0.5)
            cv.circle(img, bx, by, 3.2 * s, mix(c, (1, 1, 1), 0.5), soft=1.2)

    ctx.emissive.append(draw)


def sunbeams(ctx: Context, x0, y0, x1, y1, floor_y, lean, k=0.18):
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

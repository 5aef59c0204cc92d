"""SCENE-02 coffee_shop: a brick wall, a shop window on the street, the counter, an espresso machine, pendant lamps."""

from __future__ import annotations

import numpy as np

from .. import canvas as cv
from .. import christmas, furniture, lamps, windows
from ..canvas import mix, rgb, scale
from ..colours import WOOD, pick
from ..context import Context


def compose(ctx: Context):
    W, H, s = ctx.W, ctx.H, ctx.s
    rng = ctx.rng("layout")
    ctx.lightmap *= 0.8   # a deep room: the pendants do most of the lighting
    wood = pick(rng, WOOD)
    counter_y = H * rng.uniform(0.66, 0.72)
    brick = [rgb("#a8563c"), rgb("#9a5a48"), rgb("#b56a4a")][int(rng.integers(3))]
    _bricks(ctx, 0, 0, W, counter_y, brick)
    # big shop window on one side with the street
    side = 1 if rng.random() < 0.5 else -1
    ww = W * rng.uniform(0.44, 0.56)
    wx0 = W * rng.uniform(0.03, 0.08) if side < 0 else W - W * rng.uniform(0.03, 0.08) - ww
    wx1 = wx0 + ww
    wtop = H * rng.uniform(0.1, 0.16)
    windows.window(ctx, wx0, wtop, wx1, counter_y - 24 * s, cols=int(rng.integers(2, 4)), rows=1,
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
        furniture.mug(ctx, cx, counter_y + 8 * s, rng.uniform(0.9, 1.2),
             [rgb("#f2ece2"), rgb("#c96f4a"), rgb("#6f8fa6"), rgb("#e3b85c")][int(rng.integers(4))])
    furniture.plant(ctx, (wx1 - 40 * s) if side < 0 else (wx0 + 40 * s), counter_y + 6 * s, 1.0, ctx.rng("plant"))
    # pendant lamps from the ceiling
    k = int(rng.integers(2, 5))
    for i in range(k):
        px = W * (i + 0.5) / k + rng.uniform(-0.04, 0.04) * W
        lamps.pendant(ctx, px, H * rng.uniform(0.12, 0.24), 1.1)
    if ctx.christmas:
        christmas.garland(ctx, wx0, wx1, wtop, ctx.rng("garland"))
        christmas.tree(ctx, (wx1 - 120 * s) if side < 0 else (wx0 + 120 * s), counter_y + 6 * s, 0.5, ctx.rng("tree"))
    ctx.air = ctx.rect(0, 0, W, counter_y)


def _bricks(ctx: Context, x0, y0, x1, y1, color):
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


def _espresso_machine(ctx: Context, x, base):
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

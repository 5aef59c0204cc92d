"""SCENE-07 kitchen_morning: a window on the hills over the sink, cabinets, a coffee corner, sunlight."""

from __future__ import annotations

import numpy as np

from .. import canvas as cv
from .. import christmas, furniture, lamps, windows
from ..canvas import mix, rgb, scale
from ..colours import BOOKS, SKY, WALLS, WOOD, pick
from ..context import Context


def compose(ctx: Context):
    W, H, s = ctx.W, ctx.H, ctx.s
    rng = ctx.rng("layout")
    wall = mix(pick(rng, WALLS), rgb("#f0dcc0"), 0.4)
    counter_y = H * rng.uniform(0.66, 0.7)
    furniture.wall(ctx, wall, 0, counter_y)
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
    ctx.pool(wx + ww / 2, wy + wh / 2, ww * 1.2, SKY[ctx.time][2], 0.15)
    glass = windows.window(ctx, wx, wy, wx + ww, wy + wh, cols=2, rows=int(rng.integers(1, 3)), view="hills")
    # cafe curtain on rod across the lower half
    cc = mix(pick(rng, BOOKS), (1, 1, 1), 0.55)
    cy0 = wy + wh * 0.62
    windows.curtain(ctx, wx + 4 * s, cy0, wx + ww / 2, wy + wh - 4 * s, cc)
    windows.curtain(ctx, wx + ww / 2, cy0, wx + ww - 4 * s, wy + wh - 4 * s, cc, left=False)
    cv.rect(ctx.layer, wx - 6 * s, cy0 - 4 * s, wx + ww + 6 * s, cy0 + 2 * s, rgb("#b8955a"), radius=2 * s)
    # herbs on the sill
    prng = ctx.rng("plants")
    n = int(prng.integers(2, 4))
    for i in range(n):
        furniture.plant(ctx, wx + ww * (i + 0.5) / n, wy + wh + 2 * s, prng.uniform(0.55, 0.75), prng)
    # a trailing plant hangs in one corner of the window
    hx = wx + ww * (0.15 if prng.random() < 0.5 else 0.85)
    cv.line(ctx.layer, [(hx, 0), (hx, wy + wh * 0.22)], 1.5 * s, rgb("#3a3028"))
    furniture.plant(ctx, hx, wy + wh * 0.3, 0.9, prng, kind=1)
    # upper cabinets or an open shelf on each side of the window
    cab = mix(pick(rng, BOOKS), rgb("#e8e0d2"), 0.55)
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
            cv.rect(ctx.layer, x0, sy, x1, sy + 10 * s, WOOD[3], radius=2 * s)
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
    furniture.mug(ctx, kx + (1 if right else -1) * -110 * s, counter_y + 4 * s, 1.0,
         [rgb("#f2ece2"), rgb("#e3b85c"), rgb("#7d9b9a")][int(rng.integers(3))])
    # sunlight falls through the window onto the counter
    sun_k = {"morning": 0.25, "golden_hour": 0.25, "day": 0.2, "sunset": 0.15, "night": 0.0}[ctx.time]
    if ctx.weather in ("clear", "snow") and sun_k:
        ctx.pool(wx + ww / 2, counter_y, W * 0.4, rgb("#ffe2a8"), sun_k)
    lean = 0.5 if right else -0.5
    lamps.sunbeams(ctx, glass[0], glass[1], glass[2], glass[3], counter_y + 16 * s, lean, k=0.1)
    if ctx.night or ctx.weather in ("rain", "storm"):
        # after dark (or on a grey day) a pendant over the coffee corner warms the room
        lamps.pendant(ctx, mx + (60 if right else -60) * s, H * 0.1, 1.1)
    if not ctx.night:
        ctx.add_light(wx + ww / 2, wy + wh * 0.4, ww * 0.5, rgb("#ffe2a8"), "sun")
    ctx.air = ctx.rect(0, 0, W, counter_y)
    if ctx.christmas:
        christmas.garland(ctx, wx - 30 * s, wx + ww + 30 * s, wy - 10 * s, ctx.rng("garland"))

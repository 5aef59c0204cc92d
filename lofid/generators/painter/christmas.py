"""The christmas theme: a small decorated tree and a garland with lights."""

from __future__ import annotations

import numpy as np

from . import canvas as cv
from . import lamps
from .canvas import mix, rgb, scale
from .context import Context


def tree(ctx: Context, x, base, size, rng):
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


def garland(ctx: Context, x0, x1, y, rng):
    s = ctx.s
    for x in np.arange(x0, x1, 9 * s):
        yy = y + 18 * s * np.sin((x - x0) / (x1 - x0) * np.pi * 3) ** 2
        cv.circle(ctx.layer, x, yy, 8 * s, scale(rgb("#2f6a48"), rng.uniform(0.8, 1.1)))
    lamps.fairy_lights(ctx, (x0, y), (x1, y), 0, max(int((x1 - x0) / (40 * s)), 4), rng,
                  [rgb("#ffd27a"), rgb("#ff8a6a"), rgb("#9ad0ff")])

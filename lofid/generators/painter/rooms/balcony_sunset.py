"""SCENE-05 balcony_sunset: a city balcony at the railing, plants, string lights, someone watching the sky."""

from __future__ import annotations

import numpy as np

from .. import canvas as cv
from .. import christmas, furniture, lamps, views, windows
from ..canvas import rgb, scale
from ..colours import SKY, WOOD
from ..context import Context


def compose(ctx: Context):
    W, H, s = ctx.W, ctx.H, ctx.s
    rng = ctx.rng("layout")
    rail_y = H * rng.uniform(0.68, 0.74)
    horizon = rail_y + H * 0.12   # the street is below the railing; only roofs rise above it
    views.view_outside(ctx, (0, 0, W, H), horizon, "city", height=rng.uniform(0.4, 0.55))
    windows.hole(ctx, 0, 0, W, H)
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
        furniture.plant(ctx, px, H * 0.93 + prng.uniform(0, 0.05) * H, prng.uniform(1.3, 2.0), prng)
    # a hanging basket from the top
    hx = wx0 + (wx1 - wx0) / 2 + (-side) * W * 0.1
    cv.line(ctx.layer, [(hx, 0), (hx, H * 0.16)], 1.5 * s, rgb("#3a3028"))
    furniture.plant(ctx, hx, H * 0.2, 1.0, prng, kind=1)
    # string lights across the top
    lamps.fairy_lights(ctx, (0, H * 0.05), (W, H * 0.08), H * 0.12, int(rng.integers(10, 16)), ctx.rng("fairy"))
    # a small table with a mug on the wall side
    tx = W * 0.5 + side * W * rng.uniform(0.18, 0.28)
    cv.ellipse(ctx.layer, tx, H * 0.83, 80 * s, 14 * s, WOOD[1])
    cv.rect(ctx.layer, tx - 5 * s, H * 0.84, tx + 5 * s, H, scale(WOOD[1], 0.6))
    furniture.mug(ctx, tx - 20 * s, H * 0.835, 0.9, rgb("#e8dccb"))
    # the low sun lights everything from the horizon
    ctx.pool(W / 2, horizon, W * 0.9, SKY[ctx.time][2], 0.45)
    # someone leans on the railing, watching the sky, on the side away from the table
    ctx.rim = ((0.0, -1.0), SKY[ctx.time][2])
    fx = W * 0.5 - side * W * rng.uniform(0.05, 0.2)
    ctx.figure_args = (fx, H + 2, min(H * 0.5, W * 0.4))
    ctx.figure_cap = rng.random() < 0.25
    if ctx.christmas:
        christmas.tree(ctx, W * 0.5 - side * W * 0.3, H * 0.95, 0.8, ctx.rng("tree"))
    ctx.air = ctx.rect(0, 0, W, H)

"""SCENE-01 study_room: a desk under a window, shelves of books, a lamp, someone at work."""

from __future__ import annotations

from .. import canvas as cv
from .. import christmas, furniture, lamps, windows
from ..canvas import mix, rgb, scale
from ..colours import BOOKS, SKY, WALLS, WOOD, pick
from ..context import Context


def compose(ctx: Context):
    W, H, s = ctx.W, ctx.H, ctx.s
    rng = ctx.rng("layout")
    wall = pick(rng, WALLS)
    wood = pick(rng, WOOD)
    desk_y = H * rng.uniform(0.6, 0.66)
    depth = H * 0.08
    furniture.wall(ctx, wall, 0, desk_y + 4)
    # window on one side; its size and place vary
    side = 1 if rng.random() < 0.5 else -1  # -1: window on the left
    ww = W * rng.uniform(0.26, 0.38)
    wh = min(H * rng.uniform(0.36, 0.44), desk_y - H * 0.16)
    margin = W * rng.uniform(0.06, 0.14)
    wx = margin if side < 0 else W - margin - ww
    wy = desk_y - wh - H * rng.uniform(0.08, 0.12)
    curtain = mix(pick(rng, BOOKS), (1, 1, 1), 0.35)
    windows.window(ctx, wx, wy, wx + ww, wy + wh, cols=2, rows=int(rng.integers(1, 3)), curtains=curtain)
    # shelves of books on the other half of the wall
    far0 = wx + ww + 70 * s if side < 0 else 30 * s
    far1 = W - 30 * s if side < 0 else wx - 70 * s
    sw = min(far1 - far0, W * rng.uniform(0.24, 0.32))
    sx0 = far0 + rng.uniform(0.0, 1.0) * max(far1 - far0 - sw, 0)
    sx1 = sx0 + sw
    n_shelves = int(rng.integers(1, 3))
    for k in range(n_shelves):
        sy = wy + wh * (0.3 + 0.5 * k) if n_shelves == 2 else wy + wh * rng.uniform(0.35, 0.7)
        furniture.books(ctx, sx0 + 8 * s, sx1 - 8 * s, sy, 66 * s, ctx.rng("shelf%d" % k))
        cv.rect(ctx.layer, sx0, sy, sx1, sy + 10 * s, scale(wood, 1.1), radius=2 * s)
        cv.rect(ctx.layer, sx0, sy + 10 * s, sx1, sy + 22 * s, (0, 0, 0), alpha=0.15, soft=6 * s)
    if n_shelves == 1:
        py = wy + wh * 0.05
        pw = min(sw * 0.45, 150 * s)
        furniture.framed_print(ctx, sx0 + sw * 0.25, py - pw * 0.75 + 20 * s, sx0 + sw * 0.25 + pw, py + 20 * s, ctx.rng("pic"))
    _desk(ctx, desk_y, depth, wood)
    near = desk_y + depth * 0.75
    # lamp on the side away from the window, its shade towards the middle
    lamp_x = W * 0.5 - side * W * rng.uniform(0.26, 0.34)
    lamps.lamp(ctx, lamp_x, near, 1.0, side=side)
    # stacks of books, a mug, a pencil cup, a small plant
    stack_x = lamp_x + side * W * rng.uniform(0.09, 0.13)
    by = desk_y + depth * 0.55
    for i in range(int(rng.integers(2, 6))):
        bh = rng.uniform(11, 18) * s
        bw = rng.uniform(80, 120) * s
        off = rng.uniform(-8, 8) * s
        col = pick(rng, BOOKS)
        cv.rect(ctx.layer, stack_x - bw / 2 + off, by - bh, stack_x + bw / 2 + off, by, col, radius=2 * s)
        cv.rect(ctx.layer, stack_x - bw / 2 + off + 4 * s, by - bh * 0.7, stack_x + bw / 2 + off - 2 * s,
                by - bh * 0.3, rgb("#f2ead8"), alpha=0.8)
        by -= bh
    mug_x = W * 0.5 + side * W * rng.uniform(0.15, 0.22)
    furniture.mug(ctx, mug_x, near + 4 * s, 1.1, pick(rng, BOOKS))
    px = mug_x + side * 70 * s
    cv.rect(ctx.layer, px - 16 * s, desk_y + depth * 0.5 - 44 * s, px + 16 * s, desk_y + depth * 0.5,
            rgb("#7d9b9a"), radius=4 * s)
    for k in range(3):
        cv.line(ctx.layer, [(px - 6 * s + k * 6 * s, desk_y + depth * 0.5 - 40 * s),
                            (px - 10 * s + k * 10 * s, desk_y + depth * 0.5 - 70 * s)], 3 * s,
                [rgb("#e3b85c"), rgb("#b5543c"), rgb("#3f6f86")][k])
    furniture.plant(ctx, wx + ww * rng.uniform(0.15, 0.85), wy + wh + 2 * s, 0.75, ctx.rng("plant"))
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
        christmas.garland(ctx, 0, W, 24 * s, ctx.rng("garland"))
        christmas.tree(ctx, lamp_x - side * 90 * s, desk_y + depth * 0.6, 0.45, ctx.rng("tree"))
    # the person at the desk, back to us; the window or the lamp rims her
    if ctx.night:
        ctx.rim = ((-side, -0.6), rgb("#ffc070"))
    else:
        ctx.rim = ((side * 1.0, -0.5), SKY[ctx.time][2])
    fx = W * 0.5 + rng.uniform(-0.04, 0.04) * W
    ctx.figure_args = (fx, H + 2, min(H * 0.55, W * 0.42))
    ctx.air = ctx.rect(0, 0, W, desk_y)


def _desk(ctx: Context, y, depth, wood, x0=0, x1=None):
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

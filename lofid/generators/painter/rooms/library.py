"""SCENE-06 library: walls of shelves, a tall window, a reading nook with an armchair and a floor lamp."""

from __future__ import annotations

from .. import canvas as cv
from .. import christmas, furniture, lamps, windows
from ..canvas import mix, rgb, scale
from ..colours import BOOKS, WARM, WOOD, pick
from ..context import Context


def compose(ctx: Context):
    W, H, s = ctx.W, ctx.H, ctx.s
    rng = ctx.rng("layout")
    ctx.lightmap *= 0.85   # deep shelves: the lamp and the window do the lighting
    wood = scale(pick(rng, WOOD), 0.85)
    floor_y = H * rng.uniform(0.82, 0.86)
    furniture.wall(ctx, scale(wood, 0.7), 0, floor_y)
    furniture.floor(ctx, floor_y, scale(WOOD[0], 0.9))
    # a tall window in a gap between the shelves; where it is varies
    ww = W * rng.uniform(0.15, 0.22)
    wx = W * rng.uniform(0.2, 0.8) - ww / 2
    wtop = H * rng.uniform(0.06, 0.12)
    wbot = H * rng.uniform(0.56, 0.64)
    glass = windows.window(ctx, wx, wtop, wx + ww, wbot, cols=2, rows=int(rng.integers(2, 4)), frame=scale(wood, 1.2), sill=True)
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
            furniture.books(ctx, x0 + 14 * s, x1 - 14 * s, y, (floor_y - H * 0.08) / rows * 0.82, row_rng)
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
        ctx.pool(lx0, ly0 + 160 * s, 420 * s, WARM, 0.8 if ctx.night else 0.2)
        ctx.add_light(lx0, ly0 + 2 * s, 60 * s, WARM, "lamp")
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
    cush = mix(pick(rng, BOOKS), (1, 1, 1), 0.3)
    cv.rect(ctx.layer, cx - 40 * s, cy0 + 70 * s, cx + 40 * s, cy0 + 135 * s, cush, radius=16 * s)
    # an open book left on the seat
    cv.polygon(ctx.layer, [(cx - 60 * s, cy0 + 150 * s), (cx, cy0 + 158 * s), (cx + 60 * s, cy0 + 150 * s),
                           (cx + 58 * s, cy0 + 164 * s), (cx, cy0 + 170 * s), (cx - 58 * s, cy0 + 164 * s)],
               rgb("#f4efe4"))
    lamp_side = 1 if rng.random() < 0.5 else -1
    lamps.lamp(ctx, cx + lamp_side * 200 * s, floor_y + 40 * s, 0.8, kind="floor")
    tx = cx - lamp_side * 190 * s
    cv.rect(ctx.layer, tx - 40 * s, floor_y - 40 * s, tx + 40 * s, floor_y - 30 * s, scale(wood, 1.2), radius=3 * s)
    cv.rect(ctx.layer, tx - 6 * s, floor_y - 32 * s, tx + 6 * s, floor_y + 40 * s, scale(wood, 0.9))
    cv.rect(ctx.layer, tx - 30 * s, floor_y + 34 * s, tx + 30 * s, floor_y + 42 * s, scale(wood, 0.9), radius=3 * s)
    furniture.mug(ctx, tx + 12 * s, floor_y - 40 * s, 0.8, rgb("#e8dccb"))
    cv.rect(ctx.layer, tx - 36 * s, floor_y - 54 * s, tx, floor_y - 40 * s, pick(rng, BOOKS),
            radius=2 * s)
    lamps.sunbeams(ctx, glass[0], glass[1], glass[2], glass[3], H * 0.96, rng.choice([-0.6, 0.6]), k=0.12)
    ctx.air = ctx.rect(0, 0, W, floor_y)
    if ctx.christmas:
        christmas.garland(ctx, 0, W, 20 * s, ctx.rng("garland"))
        christmas.tree(ctx, lx + 160 * s if lx < W / 2 else lx - 160 * s, floor_y + 30 * s, 0.9, ctx.rng("tree"))

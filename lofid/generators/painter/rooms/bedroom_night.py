"""SCENE-03 bedroom_night: a bed, a window with curtains, a bedside lamp, fairy lights."""

from __future__ import annotations

from .. import canvas as cv
from .. import christmas, furniture, lamps, windows
from ..canvas import mix, rgb, scale
from ..colours import BOOKS, WALLS, WARM, WOOD, pick
from ..context import Context


def compose(ctx: Context):
    W, H, s = ctx.W, ctx.H, ctx.s
    rng = ctx.rng("layout")
    wall = pick(rng, WALLS)
    wood = pick(rng, WOOD)
    floor_y = H * rng.uniform(0.74, 0.8)
    furniture.wall(ctx, wall, 0, floor_y)
    furniture.floor(ctx, floor_y, scale(wood, 0.9))
    cv.rect(ctx.layer, 0, floor_y - 12 * s, W, floor_y, mix(wall, (1, 1, 1), 0.3))   # skirting board
    side = 1 if rng.random() < 0.5 else -1      # window on the right (1) or left
    ww, wh = W * rng.uniform(0.24, 0.32), H * rng.uniform(0.38, 0.46)
    wx = W * rng.uniform(0.6, 0.68) if side > 0 else W * rng.uniform(0.32, 0.4) - ww
    wy = H * rng.uniform(0.12, 0.18)
    curtain = mix(pick(rng, BOOKS), (1, 1, 1), 0.3)
    windows.window(ctx, wx, wy, wx + ww, wy + wh, cols=2, rows=int(rng.integers(1, 3)), curtains=curtain)
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
    duvet = mix(pick(rng, BOOKS), (1, 1, 1), 0.45)
    cv.rect(ctx.layer, b0 - 22 * s, mattress, b1 + 22 * s, H + 40 * s,
            cv.vgradient(mattress, H, [mix(duvet, (1, 1, 1), 0.15), duvet, scale(duvet, 0.75)]), radius=30 * s)
    # a few soft folds and a folded throw at the foot
    frng = ctx.rng("folds")
    for i in range(4):
        fx = b0 + bw * frng.uniform(0.1, 0.9)
        cv.line(ctx.layer, [(fx, mattress + 30 * s), (fx + frng.uniform(-40, 40) * s, H)], 5 * s, scale(duvet, 0.85),
                alpha=0.5, soft=6 * s)
    throw = pick(rng, BOOKS)
    ty = mattress + (H - mattress) * 0.55
    cv.rect(ctx.layer, b0 - 24 * s, ty, b1 + 24 * s, ty + 60 * s, throw, radius=14 * s)
    for k in range(3):
        cv.fill(ctx.layer, b0 - 20 * s, ty + (14 + 16 * k) * s, b1 + 20 * s, ty + (18 + 16 * k) * s,
                mix(throw, (1, 1, 1), 0.35))
    # a framed print over the bed
    pw = min(bw * 0.4, 200 * s)
    furniture.framed_print(ctx, bcx - pw / 2, head_top - pw * 0.9, bcx + pw / 2, head_top - pw * 0.2, ctx.rng("pic"))
    # nightstand with a lamp, between bed and window
    nx = b1 + 70 * s if side > 0 else b0 - 70 * s
    nt = floor_y - H * 0.17
    cv.rect(ctx.layer, nx - 55 * s, nt, nx + 55 * s, floor_y + 6 * s, WOOD[2], radius=4 * s)
    cv.rect(ctx.layer, nx - 45 * s, nt + 20 * s, nx + 45 * s, nt + 60 * s, scale(WOOD[2], 1.15), radius=3 * s)
    cv.circle(ctx.layer, nx, nt + 40 * s, 4 * s, rgb("#d9c9a6"))
    cv.ellipse(ctx.layer, nx, nt - 8 * s, 24 * s, 10 * s, rgb("#c9a27a"))
    cv.line(ctx.layer, [(nx, nt - 8 * s), (nx, nt - 60 * s)], 4 * s, rgb("#7a6a58"))
    shade = [(nx - 26 * s, nt - 110 * s), (nx + 26 * s, nt - 110 * s), (nx + 40 * s, nt - 58 * s),
             (nx - 40 * s, nt - 58 * s)]
    cv.polygon(ctx.layer, shade, rgb("#f0d6a8"))
    bulb = (nx, nt - 80 * s)
    ctx.pool(bulb[0], bulb[1] + 30 * s, 480 * s, WARM, 1.1)
    ctx.add_light(*bulb, 90 * s, WARM, "lamp")
    ctx.emissive.append(lambda img: (cv.glow(img, bulb[0], bulb[1], 110 * s, rgb("#ffcf88"), 0.5),
                                     cv.polygon(img, shade, rgb("#ffd890"), alpha=0.35, mode="add")))
    furniture.mug(ctx, nx + 30 * s * side, nt, 0.7, rgb("#e8dccb"))
    # a plant in the corner by the window
    furniture.plant(ctx, wx + ww + 90 * s if side > 0 else wx - 90 * s, floor_y + 20 * s, 1.6, ctx.rng("plant"))
    # fairy lights along the wall above the bed and the window
    frng = ctx.rng("fairy")
    y0 = H * frng.uniform(0.05, 0.1)
    lamps.fairy_lights(ctx, (0, y0), (W, y0 + H * frng.uniform(-0.03, 0.03)), H * frng.uniform(0.06, 0.12),
                  int(frng.integers(14, 22)), frng)
    if ctx.christmas:
        christmas.tree(ctx, wx + ww / 2, floor_y + 14 * s, 0.9, ctx.rng("tree"))
    ctx.air = ctx.rect(0, 0, W, floor_y)

"""SCENE-04 rainy_window: a wide window on a blurred city, a deep sill with a mug, a plant, candles and books."""

from __future__ import annotations

from .. import canvas as cv
from .. import furniture, lamps, windows
from ..canvas import mix, rgb, scale
from ..colours import BOOKS, WALLS, WARM, WOOD, pick
from ..context import Context


def compose(ctx: Context):
    W, H, s = ctx.W, ctx.H, ctx.s
    rng = ctx.rng("layout")
    wall = scale(mix(pick(rng, WALLS), rgb("#c89a78"), 0.3), 0.85)
    wood = pick(rng, WOOD)
    sill_y = H * rng.uniform(0.76, 0.84)
    furniture.wall(ctx, wall, 0, H)
    m = W * rng.uniform(0.05, 0.12)
    top = H * rng.uniform(0.03, 0.08)
    horizon = top + (sill_y - top) * rng.uniform(0.62, 0.8)
    glass = windows.window(ctx, m, top, W - m, sill_y, cols=int(rng.integers(1, 3)), rows=1, frame=mix(wood, (1, 1, 1), 0.15),
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
    windows.curtain(ctx, cx0, 0, cx0 + cw, sill_y - 4 * s, mix(pick(rng, BOOKS), (1, 1, 1), 0.6),
             left=side < 0)
    # a deep wooden sill with things on it
    cv.rect(ctx.layer, 0, sill_y - 8 * s, W, sill_y + 30 * s, cv.vgradient(sill_y - 8 * s, sill_y + 30 * s,
            [mix(wood, (1, 1, 1), 0.25), wood]), radius=3 * s)
    cv.fill(ctx.layer, 0, sill_y + 30 * s, W, H, cv.vgradient(sill_y, H, [scale(wall, 0.8), scale(wall, 0.55)]))
    cv.rect(ctx.layer, 0, sill_y + 30 * s, W, sill_y + 44 * s, (0, 0, 0), alpha=0.3, soft=10 * s)
    ctx.reflections.append(ctx.rect(gx0, sill_y - 8 * s, gx1, sill_y + 12 * s))
    slots = rng.permutation(4)  # mug, plant, candle, books: their order along the sill
    xs = [W * (0.16 + 0.22 * k + rng.uniform(-0.04, 0.04)) for k in range(4)]
    furniture.mug(ctx, xs[slots[0]], sill_y + 12 * s, 1.6, pick(rng, BOOKS))
    furniture.plant(ctx, xs[slots[1]], sill_y + 10 * s, 1.6, ctx.rng("plant"))
    cx = xs[slots[2]]
    for dx, hh in ((0, 60), (34, 38)):
        cv.rect(ctx.layer, cx + dx * s - 14 * s, sill_y - hh * s, cx + dx * s + 14 * s, sill_y + 10 * s,
                cv.gradient(cx + dx * s - 14 * s, 0, cx + dx * s + 14 * s, 0, [rgb("#f6efe2"), rgb("#e6d8c0")]),
                radius=4 * s)
        flame = (cx + dx * s, sill_y - (hh + 12) * s)
        ctx.pool(flame[0], flame[1], 320 * s, WARM, 0.9 if dark else 0.35)
        ctx.add_light(*flame, 40 * s, rgb("#ffb45a"), "candle")
        ctx.emissive.append(lambda img, f=flame: (cv.glow(img, f[0], f[1], 60 * s, rgb("#ffb45a"), 0.6),
                                                  cv.ellipse(img, f[0], f[1], 5 * s, 11 * s, rgb("#fff0c0"),
                                                             soft=2 * s)))
    by = sill_y + 10 * s
    bx = xs[slots[3]]
    for i in range(int(rng.integers(2, 5))):
        bh = rng.uniform(14, 22) * s
        col = pick(rng, BOOKS)
        off = rng.uniform(-10, 10) * s
        cv.rect(ctx.layer, bx - 65 * s + off, by - bh, bx + 65 * s + off, by, col, radius=2 * s)
        cv.rect(ctx.layer, bx - 60 * s + off, by - bh * 0.7, bx + 63 * s + off, by - bh * 0.3, rgb("#f2ead8"), alpha=0.7)
        by -= bh
    # warm light from the room behind us
    ctx.pool(W * 0.5, H * 1.05, W * 0.85, WARM, 0.55 if dark else 0.25)
    if rng.random() < 0.6 or ctx.christmas:
        lamps.fairy_lights(ctx, (m, top + 20 * s), (W - m, top + 20 * s), H * 0.06, int(rng.integers(10, 18)),
                      ctx.rng("fairy"))
    ctx.air = ctx.rect(0, 0, W, sill_y)

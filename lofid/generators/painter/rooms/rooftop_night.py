"""SCENE-08 rooftop_night: a roof above the city, puddles, a water tank, string lights, someone on the ledge."""

from __future__ import annotations

from .. import canvas as cv
from .. import christmas, furniture, lamps, views, windows
from ..canvas import mix, rgb, scale
from ..colours import SKY, WARM
from ..context import Context


def compose(ctx: Context):
    W, H, s = ctx.W, ctx.H, ctx.s
    rng = ctx.rng("layout")
    horizon = H * rng.uniform(0.6, 0.66)
    views.view_outside(ctx, (0, 0, W, H), horizon, "city", height=rng.uniform(0.45, 0.65))
    windows.hole(ctx, 0, 0, W, H)
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
    ctx.pool(hx, ledge + 80 * s, 260 * s, WARM, 0.6)
    ctx.add_light(hx + 8 * s, ledge - 20 * s, 80 * s, WARM, "lamp")
    ctx.emissive.append(lambda img: cv.glow(img, hx + 8 * s, ledge - 10 * s, 110 * s, rgb("#ffc070"), 0.35))
    # string lights from the tank across
    lamps.fairy_lights(ctx, (0, H * 0.1), (W, H * 0.16), H * 0.12, int(rng.integers(10, 16)), ctx.rng("fairy"))
    # the person sits on the ledge, a mug beside them
    fx = W * 0.5 - side * W * rng.uniform(0.05, 0.18)
    furniture.mug(ctx, fx - side * 140 * s, ledge + 4 * s, 0.9, rgb("#e8dccb"))
    ctx.pool(fx, ledge - 100 * s, 400 * s, rgb("#ffc070"), 0.35)   # the string lights above
    ctx.pool(W / 2, horizon, W * 0.8, rgb("#5a5a9a"), 0.4)         # the city glow
    ctx.rim = ((0.0, -1.0), rgb("#e0a8c0"))
    ctx.figure_args = (fx, ledge + 10 * s, min(H * 0.32, W * 0.3))
    ctx.figure_cap = rng.random() < 0.5
    if ctx.christmas:
        christmas.tree(ctx, W * 0.5 + side * W * 0.12, ledge + 2 * s, 0.6, ctx.rng("tree"))
    ctx.air = ctx.rect(0, 0, W, H)


def _puddle(ctx: Context, x, y, rx, ry, rng):
    """A puddle that mirrors the sky and the lights above it (shimmer is animated elsewhere)."""
    s = ctx.s
    sky = SKY[ctx.time]
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

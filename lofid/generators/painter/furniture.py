"""Things in a room, drawn into the room layer in plain surface colours (the light
map lights them later): walls, floors, rows of books, mugs (steam anchors),
potted plants and framed prints."""

from __future__ import annotations

import numpy as np

from . import canvas as cv
from .canvas import rgb, scale
from .colours import BOOKS, WOOD, pick, season_leaf
from .context import Context


def wall(ctx: Context, color, y0, y1, x0=0, x1=None):
    x1 = ctx.W if x1 is None else x1
    cv.fill(ctx.layer, x0, y0, x1, y1, cv.vgradient(y0, y1, [scale(color, 0.86), color, scale(color, 0.95)]))


def floor(ctx: Context, y0, color, y1=None):
    y1 = ctx.H if y1 is None else y1
    cv.fill(ctx.layer, 0, y0, ctx.W, y1, cv.vgradient(y0, y1, [scale(color, 0.75), color]))
    # boards
    n = 9
    for i in range(1, n):
        xb = ctx.W * i / n
        cv.line(ctx.layer, [(ctx.W / 2 + (xb - ctx.W / 2) * 0.55, y0), (ctx.W / 2 + (xb - ctx.W / 2) * 1.6, y1)],
                1.2 * ctx.s, scale(color, 0.8), alpha=0.5)


def books(ctx: Context, x0, x1, base, max_h, rng, lean=True, min_h=0.6):
    """A row of book spines standing on `base` between x0 and x1.

    The standing books of a row are drawn in one pass (a shelf holds dozens), the
    odd book lying on its side separately."""
    s = ctx.s
    left, right, tops, cols = [], [], [], []
    lying = []
    x = x0 + rng.uniform(0, 6) * s
    while True:
        bw = rng.uniform(9, 20) * s
        if x + bw > x1:
            break
        bh = max_h * rng.uniform(min_h, 1.0)
        col = pick(rng, BOOKS)
        gap = rng.random()
        if lean and gap < 0.06 and x + bh < x1:
            lying.append((x, bw, bh, col))
            x += bh + 3 * s
            continue
        left.append(x)
        right.append(x + bw)
        tops.append(base - bh)
        cols.append(col)
        x += bw + rng.uniform(0, 2) * s
        if gap > 0.93:
            x += rng.uniform(8, 20) * s
    if left:
        L = np.array(left, np.float32)
        R = np.array(right, np.float32)
        T = np.array(tops, np.float32)
        C = np.array(cols, np.float32)
        light_band = np.minimum(C * 1.35, 1.0)

        def spine(xs, ys):
            i = np.clip(np.searchsorted(R, xs[0], side="right"), 0, len(R) - 1)   # book under each column
            u = (xs[0] - L[i]) / (R[i] - L[i])                                    # 0..1 across the spine
            v = (base - ys) / (base - T[i])[None, :]                              # 0 at the shelf, 1 at the top
            col = np.broadcast_to(C[i][None, :, :], v.shape + (3,)).copy()
            band = ((v > 0.8) & (v < 0.85)) | ((v > 0.16) & (v < 0.2))
            col[band] = np.broadcast_to(light_band[i][None, :, :], v.shape + (3,))[band]
            col *= np.where(u > 0.75, 0.8, 1.0)[None, :, None]                    # the shaded edge
            return col

        def cover(xs, ys):
            i = np.clip(np.searchsorted(R, xs[0], side="right"), 0, len(R) - 1)
            cx = np.clip(np.minimum(xs[0] - L[i], R[i] - xs[0]) + 0.5, 0, 1)
            cy = np.clip(ys - T[i][None, :] + 0.5, 0, 1)
            return cx[None, :] * cy

        reg = cv.region(ctx.layer, L[0], T.min(), R[-1], base)
        if reg is not None:
            sl, xs, ys = reg
            cv.put(ctx.layer, sl, cover(xs, ys), spine, xs, ys)
    for (x, bw, bh, col) in lying:
        cv.rect(ctx.layer, x, base - bw, x + bh, base, col, radius=1.5 * s)
        cv.rect(ctx.layer, x + 2 * s, base - bw * 0.55, x + bh - 2 * s, base - bw * 0.45, scale(col, 1.3), alpha=0.7)


def mug(ctx: Context, x, base, size=1.0, color=None, steam=True):
    s = ctx.s * size
    color = color or rgb("#e8dccb")
    w, h = 36 * s, 40 * s
    cv.ellipse(ctx.layer, x + w * 0.55, base - h * 0.5, 11 * s, 12 * s, scale(color, 0.85), soft=1)
    cv.rect(ctx.layer, x - w / 2, base - h, x + w / 2, base, color, radius=6 * s)
    cv.ellipse(ctx.layer, x, base - h, w / 2, 5 * s, scale(color, 0.92))
    cv.ellipse(ctx.layer, x, base - h + 0.5 * s, w / 2 - 3 * s, 3.5 * s, rgb("#5a3522"))
    if steam:
        ctx.cups.append((int(round(x)), int(round(base - h)), float(size)))


def plant(ctx: Context, x, base, size, rng, kind=None, pot=None):
    """A potted plant: leafy, trailing or spiky, coloured by season."""
    s = ctx.s * size
    kind = kind if kind is not None else int(rng.integers(3))
    pot = pot or [rgb("#c46f4c"), rgb("#e6dccd"), rgb("#7d8f9a"), rgb("#d9a35b")][int(rng.integers(4))]
    pw, ph = 46 * s, 44 * s
    leaves = [season_leaf(ctx.season, k) for k in range(3)]
    top = base - ph
    if kind == 0:  # leafy: fan of ellipses
        for i in range(9):
            a = -np.pi / 2 + rng.uniform(-1.1, 1.1)
            L = rng.uniform(40, 70) * s
            cx, cy = x + np.cos(a) * L * 0.5, top + np.sin(a) * L * 0.5
            cv.ellipse(ctx.layer, cx, cy, L * 0.5, 10 * s, leaves[i % 3], angle=a, soft=1.2)
    elif kind == 1:  # trailing leaves over the pot edge
        for i in range(14):
            a = rng.uniform(-np.pi, 0)
            r = rng.uniform(5, 30) * s
            cx = x + np.cos(a) * r * 1.4
            cy = top + np.sin(a) * r * 0.7
            if i > 8:
                cy = top + rng.uniform(0, 60) * s
                cx = x + (rng.choice([-1, 1])) * rng.uniform(18, 30) * s
            cv.ellipse(ctx.layer, cx, cy, 9 * s, 6 * s, leaves[i % 3], angle=rng.uniform(0, 3), soft=1.2)
    else:  # spiky: snake plant blades
        for i in range(6):
            dx = (i - 2.5) * 6 * s
            L = rng.uniform(55, 95) * s
            tip = (x + dx * 2.2 + rng.uniform(-6, 6) * s, top - L)
            cv.polygon(ctx.layer, [(x + dx - 6 * s, top + 4 * s), (x + dx + 6 * s, top + 4 * s), tip],
                       leaves[i % 3], soft=1.2)
    if ctx.season == "spring" and kind == 0:
        for i in range(5):
            cv.circle(ctx.layer, x + rng.uniform(-30, 30) * s, top - rng.uniform(10, 50) * s, 4 * s, rgb("#f4b6c8"))
    cv.polygon(ctx.layer, [(x - pw / 2, top), (x + pw / 2, top), (x + pw * 0.38, base), (x - pw * 0.38, base)],
               pot, soft=1.2)
    cv.rect(ctx.layer, x - pw / 2 - 2 * s, top - 2 * s, x + pw / 2 + 2 * s, top + 7 * s, scale(pot, 0.9), radius=2 * s)


def framed_print(ctx: Context, x0, y0, x1, y1, rng, frame=None):
    """A small framed print on the wall: hills under a sun, in the scene's colours."""
    s = ctx.s
    frame = frame or pick(rng, WOOD)
    cv.rect(ctx.layer, x0 + 4 * s, y0 + 6 * s, x1 + 4 * s, y1 + 6 * s, (0, 0, 0), alpha=0.18, soft=8 * s)
    cv.rect(ctx.layer, x0, y0, x1, y1, frame, radius=2 * s)
    m = 7 * s
    cv.rect(ctx.layer, x0 + m, y0 + m, x1 - m, y1 - m, rgb("#f1e9da"))
    m2 = m + 6 * s
    ix0, iy0, ix1, iy1 = x0 + m2, y0 + m2, x1 - m2, y1 - m2
    palettes = [(rgb("#f2c9a0"), rgb("#d9825b"), rgb("#8a5a6a")), (rgb("#cfe0e8"), rgb("#7fa7a0"), rgb("#4f6f6a")),
                (rgb("#f4d9a8"), rgb("#c9a25b"), rgb("#6d8f6a"))]
    sky, near, far = pick(rng, palettes)
    cv.fill(ctx.layer, ix0, iy0, ix1, iy1, sky)
    cv.circle(ctx.layer, ix0 + (ix1 - ix0) * rng.uniform(0.3, 0.7), iy0 + (iy1 - iy0) * 0.4,
              (ix1 - ix0) * 0.12, rgb("#fff3dc"))
    for col, hgt in ((far, 0.55), (near, 0.75)):
        ph = rng.uniform(0, 6)
        pts = [(xx, iy0 + (iy1 - iy0) * (hgt - 0.12 * np.sin((xx - ix0) / max(ix1 - ix0, 1) * 5 + ph)))
               for xx in np.linspace(ix0, ix1, 12)] + [(ix1, iy1), (ix0, iy1)]
        cv.polygon(ctx.layer, pts, col, soft=1)

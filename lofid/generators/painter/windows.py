"""Windows: the view behind the glass, the frame, mullions and sill, the panes
(registered for rain) cut out of the room layer, and hanging curtains."""

from __future__ import annotations

import numpy as np

from . import canvas as cv
from . import views
from .canvas import rgb, scale
from .colours import SKY, WOOD
from .context import Context


def hole(ctx: Context, x0, y0, x1, y1):
    """Cut a glass pane out of the room layer so the view shows through."""
    reg = ctx.rect(x0, y0, x1, y1)
    ctx.layer[reg[1]:reg[3], reg[0]:reg[2]] = 0.0


def window(ctx: Context, x0, y0, x1, y1, cols=2, rows=2, frame=None, sill=True,
            curtains=None, view="city", horizon=None, blur=0.0):
    """A window: view, panes (registered), frame, sill, optional curtains. Returns glass rect."""
    s = ctx.s
    frame = frame or rgb("#f1ebe0")
    fw = 12 * s
    gx0, gy0, gx1, gy1 = x0 + fw, y0 + fw, x1 - fw, y1 - fw
    horizon = gy0 + (gy1 - gy0) * 0.78 if horizon is None else horizon
    views.view_outside(ctx, (gx0, gy0, gx1, gy1), horizon, view, blur)
    if ctx.weather == "snow" or ctx.season == "winter":
        # snow piled on the outside ledge, seen at the bottom of the glass
        rng = ctx.rng("sillsnow%d" % len(ctx.windows))
        snow = rgb("#f4f7fb") if not ctx.night else rgb("#9aa4c8")
        pts = [(gx0 - 2, gy1 + 2)]
        for xx in np.linspace(gx0, gx1, 10):
            pts.append((xx, gy1 - (6 + 6 * rng.random()) * s))
        pts.append((gx1 + 2, gy1 + 2))
        cv.polygon(ctx.view, pts, snow, soft=2)
    # frame as a rounded box, then the hole
    cv.rect(ctx.layer, x0, y0, x1, y1, frame, radius=3 * s)
    hole(ctx, gx0, gy0, gx1, gy1)
    # window light falls into the room
    day = not ctx.night
    sky_low = SKY[ctx.time][2]
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    strength = {"morning": 0.32, "day": 0.28, "golden_hour": 0.4, "sunset": 0.3, "night": 0.15}[ctx.time]
    if ctx.weather in ("rain", "storm"):
        strength *= 0.6
    ctx.pool(cx, cy, max(x1 - x0, y1 - y0) * 1.3, sky_low if day else rgb("#6070b0"), strength)
    # mullions, drawn over the glass
    bar = 7 * s
    panes_x = np.linspace(gx0, gx1, cols + 1)
    panes_y = np.linspace(gy0, gy1, rows + 1)
    for xm in panes_x[1:-1]:
        cv.rect(ctx.layer, xm - bar / 2, gy0, xm + bar / 2, gy1, frame)
    for ym in panes_y[1:-1]:
        cv.rect(ctx.layer, gx0, ym - bar / 2, gx1, ym + bar / 2, frame)
    for i in range(cols):
        for j in range(rows):
            ax0 = panes_x[i] + (bar / 2 if i else 0)
            ax1 = panes_x[i + 1] - (bar / 2 if i < cols - 1 else 0)
            ay0 = panes_y[j] + (bar / 2 if j else 0)
            ay1 = panes_y[j + 1] - (bar / 2 if j < rows - 1 else 0)
            ctx.windows.append(ctx.rect(ax0, ay0, ax1, ay1))
    # inner shadow at the top of the frame gives it depth
    cv.rect(ctx.layer, gx0, gy0, gx1, gy0 + 5 * s, scale(frame, 0.7), alpha=0.5, soft=3 * s)
    if sill:
        cv.rect(ctx.layer, x0 - 14 * s, y1 - 4 * s, x1 + 14 * s, y1 + 12 * s, scale(frame, 0.95), radius=2 * s)
        cv.rect(ctx.layer, x0 - 14 * s, y1 + 12 * s, x1 + 14 * s, y1 + 18 * s, scale(frame, 0.7), alpha=0.6, soft=4 * s)
    if curtains:
        curtain(ctx, x0 - 40 * s, y0 - 24 * s, x0 + 26 * s, y1 + 40 * s, curtains, left=True)
        curtain(ctx, x1 - 26 * s, y0 - 24 * s, x1 + 40 * s, y1 + 40 * s, curtains, left=False)
        cv.rect(ctx.layer, x0 - 56 * s, y0 - 30 * s, x1 + 56 * s, y0 - 24 * s, scale(WOOD[0], 0.8), radius=3 * s)
    return (gx0, gy0, gx1, gy1)


def curtain(ctx: Context, x0, y0, x1, y1, color, left=True):
    """Hanging fabric: uneven folds, darker towards the wall, a wavy hem."""
    s = ctx.s
    w = x1 - x0
    rng = ctx.rng("curtain%d" % len(ctx.curtains))
    freqs = rng.uniform(0.8, 1.25, 3) * np.array([1.0, 1.9, 3.1]) * max(w / (40 * s), 1.0)
    phases = rng.uniform(0, 2 * np.pi, 3)
    amps = np.array([0.1, 0.06, 0.035])
    c = np.asarray(color, np.float32)

    def paint(xs, ys):
        u = (xs - x0) / w
        f = 0.88 + sum(a * np.cos(u * fr * 2 * np.pi + ph) for a, fr, ph in zip(amps, freqs, phases))
        side = (1 - u) if left else u          # 1 towards the window, lit; 0 at the wall
        f = f * (0.8 + 0.2 * side)
        v = (ys - y0) / max(y1 - y0, 1)
        f = f * (0.94 + 0.06 * (1 - v))        # a little darker towards the floor
        return f[..., None] * c

    hem = [(x, y1 - 6 * s * (1 + np.cos((x - x0) / w * freqs[0] * 2 * np.pi + phases[0])))
           for x in np.linspace(x1, x0, 12)]
    cv.polygon(ctx.layer, [(x0, y0), (x1, y0)] + hem, paint, soft=1.2)
    cv.rect(ctx.layer, x0, y0, x1, y0 + 8 * s, scale(color, 0.8), radius=2 * s)   # header tape
    ctx.curtains.append(ctx.rect(x0, y0, x1, y1))

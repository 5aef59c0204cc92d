"""The view outside a window (or all around, outdoors): sky with sun, moon, stars and
clouds, a city skyline or hills, street trees in their season, and the weather's
haze over it. Drawn into ctx.view, in final colours (no room light falls on it)."""

from __future__ import annotations

import numpy as np

from . import canvas as cv
from .canvas import mix, rgb, scale
from .colours import AMBIENT, CITY, FACADES, SKY, pick, season_leaf
from .context import Context


def view_outside(ctx: Context, rect, horizon: float, kind="city", blur=0.0, height=0.8):
    rect = ctx.rect(*rect)
    _sky(ctx, rect, horizon)
    if kind == "city":
        _skyline(ctx, rect, horizon, height=height)
    elif kind == "hills":
        _hills(ctx, rect, horizon)
    x0, y0, x1, y1 = rect
    ground = mix(CITY[ctx.time], rgb("#3a3a44"), 0.4)
    if ctx.weather == "snow":
        ground = rgb("#e4eaf2") if not ctx.night else rgb("#5a6488")
    if kind == "city":
        cv.fill(ctx.view, x0, horizon, x1, y1, scale(ground, 0.8))
        if ctx.season is not None:
            _street_trees(ctx, rect, horizon)
    _weather_over_view(ctx, rect, horizon)
    if blur > 0:
        cv.blur(ctx.view, x0, y0, x1, y1, blur)


def _sky(ctx: Context, rect, horizon: float):
    """Sky gradient, sun or moon, clouds and stars inside rect (in ctx.view)."""
    x0, y0, x1, y1 = rect
    t = ctx.time
    top, mid, low = SKY[t]
    if ctx.weather in ("rain", "storm"):
        grey = rgb("#5d6676") if ctx.weather == "rain" else rgb("#33384a")
        if ctx.night:
            grey = scale(grey, 0.35)
        top, mid, low = (mix(c, grey, 0.75) for c in (top, mid, low))
    elif ctx.weather == "snow":
        pale = rgb("#c9d2de") if not ctx.night else rgb("#2a3150")
        top, mid, low = (mix(c, pale, 0.6) for c in (top, mid, low))
    elif ctx.weather == "fog":
        pale = rgb("#c8ccd2") if not ctx.night else rgb("#343a55")
        top, mid, low = (mix(c, pale, 0.55) for c in (top, mid, low))
    sky_top = min(y0, 0)
    cv.fill(ctx.view, x0, y0, x1, y1, cv.vgradient(sky_top, horizon, [(0.0, top), (0.55, mid), (1.0, low)]))
    rng = ctx.rng("sky")
    sun_x = ctx.W * rng.uniform(0.25, 0.75)
    clear = ctx.weather in ("clear", "snow")
    if ctx.night:
        if ctx.weather == "clear":
            n = int(220 * (x1 - x0) * (horizon - y0) / (ctx.W * ctx.H) + 30)
            srng = ctx.rng("stars")
            xs = srng.uniform(x0, x1, n)
            ys = y0 + (horizon - y0) * srng.random(n) ** 1.6
            bs = srng.uniform(0.3, 1.0, n)
            twinkling = 0
            for sx, sy, b in zip(xs, ys, bs):
                r = max(1.0, 1.6 * ctx.s) * (0.6 + b)
                cv.glow(ctx.view, sx, sy, r * 1.6, (0.9, 0.92, 1.0), b)
                if b > 0.85 and twinkling < 24:   # the brightest few may twinkle
                    ctx.add_light(sx, sy, r * 3, (0.9, 0.92, 1.0), "star")
                    twinkling += 1
        moon_y = y0 + (horizon - y0) * 0.25
        if ctx.weather in ("clear", "snow", "fog"):
            mr = 26 * ctx.s
            cv.glow(ctx.view, sun_x, moon_y, mr * 5, rgb("#6c78b8"), 0.35)
            cv.circle(ctx.view, sun_x, moon_y, mr, rgb("#f3ecd2"), soft=1.5)
            cv.circle(ctx.view, sun_x + mr * 0.45, moon_y - mr * 0.2, mr * 0.95, mix(top, mid, 0.5), soft=2)
    elif clear:
        sun_y = {"morning": 0.55, "day": 0.2, "golden_hour": 0.6, "sunset": 0.68}[t]
        sy = y0 + (horizon - y0) * sun_y if t != "day" else min(y0, 0) + (horizon - min(y0, 0)) * 0.2
        sr = {"morning": 34, "day": 30, "golden_hour": 44, "sunset": 56}[t] * ctx.s
        sun_col = {"morning": rgb("#fff2c8"), "day": rgb("#fffbea"),
                   "golden_hour": rgb("#ffd27a"), "sunset": rgb("#ffb070")}[t]
        cv.glow(ctx.view, sun_x, sy, sr * 7, sun_col, 0.45)
        cv.circle(ctx.view, sun_x, sy, sr, mix(sun_col, (1, 1, 1), 0.4), soft=2.5)
        if x0 <= sun_x < x1 and y0 <= sy < y1:
            ctx.add_light(sun_x, sy, sr * 4, sun_col, "sun")
    # clouds: soft value noise, denser in bad weather
    cover = {"clear": 0.55, "snow": 0.35, "fog": 0.2, "rain": 0.25, "storm": 0.15}[ctx.weather]
    w, h = x1 - x0, int(max(min(horizon, y1) - y0, 1))
    if w > 4 and h > 4:
        # soft shapes: worked out at a quarter of the size, then enlarged
        sw, sh = max(w // 4, 2), max(h // 4, 2)
        n = cv.noise(ctx.rng("clouds"), sw, sh, cell=15 * ctx.s, stretch=3.5) * 0.7 + cv.noise(
            ctx.rng("clouds2"), sw, sh, cell=5.5 * ctx.s, stretch=3.0) * 0.3
        # clouds thin out towards the horizon, where they would be seen edge on
        n = n * np.clip(1.15 - 0.5 * (np.arange(sh, dtype=np.float32)[:, None] / sh), 0, 1)
        k = cv.resize(np.clip((n - cover) / 0.25, 0, 1), w, h)[..., None]
        cloud = {"morning": rgb("#fbe8dc"), "day": rgb("#f6f8fa"), "golden_hour": rgb("#ffd9a8"),
                 "sunset": rgb("#f3a08a"), "night": rgb("#262c55")}[t]
        if ctx.weather in ("rain", "storm"):
            cloud = scale(mix(cloud, rgb("#505868"), 0.6), 0.35 if ctx.night else 1.0)
        amount = 0.55 if ctx.weather == "clear" else 0.4
        sub = ctx.view[y0:y0 + h, x0:x1]
        sub += k * amount * (np.array(cloud, dtype=np.float32) - sub)


def _skyline(ctx: Context, rect, horizon: float, layers=2, lit=None, tag="city", height=0.8):
    """Rows of buildings standing on `horizon`, far rows paler; lit windows at dusk and night.

    `height` is the tallest near building as a fraction of the sky seen above the horizon."""
    x0, y0, x1, y1 = rect
    s = ctx.s
    rng = ctx.rng(tag)
    if lit is None:
        lit = {"night": 0.45, "sunset": 0.3, "golden_hour": 0.08}.get(ctx.time, 0.0)
        if ctx.weather in ("rain", "storm"):
            lit = max(lit, 0.2)
    base = CITY[ctx.time]
    amb = AMBIENT[ctx.time]
    sky_low = SKY[ctx.time][2]
    snowy = ctx.weather == "snow"
    city_lights = []
    sky_h = max(horizon - y0, 40 * s)
    sun_side = 1 if ctx.rng("sky").uniform(0.25, 0.75) > 0.5 else -1
    for layer in range(layers):
        far = layer < layers - 1
        maxh = min(sky_h * height * (0.75 if far else 1.0), 0.5 * ctx.H)
        k = 0.8 if far else 1.0
        x = -rng.uniform(0, 60) * s
        while x < ctx.W + 40:
            bw = rng.uniform(50, 120) * s * k
            bh = rng.uniform(0.3, 1.0) * maxh
            gap = rng.uniform(-10, 14) * s
            roof = int(rng.integers(0, 4))
            facade = pick(rng, FACADES)
            table = rng.random(64)
            tint = rng.random()
            top = horizon - bh
            bx0, bx1 = x, x + bw
            x = bx1 + gap
            if bx1 < x0 or bx0 > x1:
                continue
            if ctx.time in ("day", "morning", "golden_hour"):
                col = mix(tuple(f * a for f, a in zip(facade, amb)), base, 0.45)
            else:
                col = mix(base, facade, 0.12)
            col = mix(col, sky_low, 0.5) if far else scale(col, 0.85)
            cv.rect(ctx.view, bx0, top, bx1, horizon + 4, col, soft=1)
            if roof == 1:
                cv.rect(ctx.view, bx0 + bw * 0.3, top - 14 * s, bx0 + bw * 0.55, top + 1, col)
            elif roof == 2:
                cv.line(ctx.view, [(bx0 + bw * 0.5, top), (bx0 + bw * 0.5, top - 30 * s)], 2 * s, col)
            if not far and ctx.time != "night":
                # the side facing the sun is lighter
                sx = bx0 if sun_side < 0 else bx1 - bw * 0.22
                cv.rect(ctx.view, sx, top, sx + bw * 0.22, horizon, mix(col, sky_low, 0.35), soft=1)
            if snowy:
                cv.rect(ctx.view, bx0 - 1, top - 3 * s, bx1 + 1, top + 3 * s,
                        rgb("#e8eef6") if not ctx.night else rgb("#8a94b8"), radius=3 * s)
            # windows: one vectorised pattern per building
            cell_w, cell_h = 14 * s * k, 20 * s * k
            p_lit = lit * (0.7 if far else 1.0)
            wx0, wy0 = bx0 + 6 * s, top + 8 * s
            if p_lit > 0:
                win_col = mix(rgb("#ffcf7a"), rgb("#ffe9b0"), tint)
                alpha = 0.9 if not far else 0.6
            else:  # daylight windows: darker glass
                win_col, p_lit, alpha = scale(col, 0.7), 0.85, 0.7

            def cover(xs, ys, wx0=wx0, wy0=wy0, cw=cell_w, ch=cell_h, table=table, p=p_lit, bx1=bx1, a=alpha):
                u = (xs - wx0) / cw
                v = (ys - wy0) / ch
                inside = ((u % 1.0) < 0.5) & ((v % 1.0) < 0.45) & (u >= 0) & (v >= 0) & (xs < bx1 - 4 * s)
                idx = (np.floor(u).astype(int) * 7 + np.floor(v).astype(int) * 13) % 64
                return (inside & (table[idx] < p)).astype(np.float32) * a

            cv.shade(ctx.view, bx0, wy0, bx1, horizon, cover, win_col)
            if lit > 0.2 and not far and len(city_lights) < 10 and tint < 0.5:
                city_lights.append((bx0 + bw * 0.5, top + bh * 0.3, bw * 0.6, win_col))
    for (lx, ly, lr, lc) in city_lights:
        if x0 <= lx < x1 and y0 <= ly < y1:
            ctx.add_light(lx, ly, lr, lc, "city")


def _hills(ctx: Context, rect, horizon: float):
    """Rolling hills and a few trees (for views out of a house rather than a flat)."""
    x0, y0, x1, y1 = rect
    rng = ctx.rng("hills")
    green = season_leaf(ctx.season, 0)
    for k in (0.55, 0.8, 1.0):
        col = mix(mix(green, SKY[ctx.time][2], 0.6 * (1 - k)), AMBIENT[ctx.time], 0.3)
        col = tuple(c * a for c, a in zip(col, AMBIENT[ctx.time]))
        if ctx.weather == "snow" or ctx.season == "winter":
            col = mix(col, rgb("#eef2f8") if not ctx.night else rgb("#6a7498"), 0.7 * k)
        ph, amp = rng.uniform(0, 6), rng.uniform(12, 30) * ctx.s
        base = horizon - (1 - k) * 50 * ctx.s
        pts = [(x, base - amp * (0.6 + 0.4 * np.sin(x / (180 * ctx.s) + ph))) for x in
               np.linspace(x0 - 2, x1 + 2, 24)]
        pts += [(x1 + 2, y1 + 2), (x0 - 2, y1 + 2)]
        cv.polygon(ctx.view, pts, col, soft=1.5)
    for _ in range(int(rng.integers(3, 7))):
        tx = rng.uniform(x0, x1)
        th = rng.uniform(30, 60) * ctx.s
        col = scale(mix(green, (0, 0, 0), 0.3), AMBIENT[ctx.time][1])
        cv.ellipse(ctx.view, tx, horizon - th * 0.6, th * 0.3, th * 0.5, col, soft=1.5)


def _street_trees(ctx: Context, rect, horizon: float):
    """Trees in front of the buildings, so the season shows outside: blossom, green, orange, bare."""
    x0, y0, x1, y1 = rect
    s = ctx.s
    rng = ctx.rng("trees")
    amb = AMBIENT[ctx.time]
    if ctx.night:
        amb = tuple(a * 0.5 for a in amb)
    crowns = {"spring": [rgb("#f2b8c8"), rgb("#e89ab0"), rgb("#9cc46a")],
              "summer": [rgb("#3f8a44"), rgb("#4f9e4e"), rgb("#2f7a3c")],
              "autumn": [rgb("#d9752e"), rgb("#c8542a"), rgb("#e8a23c")],
              "winter": None}[ctx.season]
    trunk = tuple(c * a for c, a in zip(rgb("#4a3428"), amb))
    x = rng.uniform(-80, 40) * s
    while x < ctx.W + 80 * s:
        th = rng.uniform(60, 110) * s
        r = rng.uniform(30, 50) * s
        offs = rng.uniform(-1, 1, (6, 3))
        pick = rng.integers(0, 3, 6)
        tx, x = x, x + rng.uniform(120, 260) * s
        if tx + r * 2 < x0 or tx - r * 2 > x1:
            continue
        base = horizon + 10 * s
        cv.line(ctx.view, [(tx, base), (tx, base - th)], 6 * s, trunk)
        if crowns is None:   # bare branches, a little snow on them
            for o in offs:
                cv.line(ctx.view, [(tx, base - th * 0.6), (tx + o[0] * r, base - th - o[1] * r * 0.6)], 3 * s, trunk)
            if ctx.weather == "snow":
                cv.ellipse(ctx.view, tx, base - th - r * 0.2, r * 0.6, r * 0.15, rgb("#eef2f8"), alpha=0.7)
            continue
        for o, k in zip(offs, pick):
            col = tuple(c * a for c, a in zip(crowns[k], amb))
            cv.circle(ctx.view, tx + o[0] * r * 0.7, base - th - o[1] * r * 0.5, r * (0.55 + 0.15 * o[2]), col, soft=1.5)


def _weather_over_view(ctx: Context, rect, horizon: float):
    """Haze for fog and rain, whiteness for snow: laid over the finished view."""
    x0, y0, x1, y1 = rect
    sub = ctx.view[y0:y1, x0:x1]
    if ctx.weather == "fog":
        fogc = np.array(rgb("#cfd3d8") if not ctx.night else rgb("#3a4060"), np.float32)
        sub += 0.55 * (fogc - sub)
    elif ctx.weather in ("rain", "storm"):
        haze = np.array(mix(SKY[ctx.time][2], rgb("#6a7282"), 0.7), np.float32)
        if ctx.night:
            haze = haze * 0.3
        sub += 0.3 * (haze - sub)
    elif ctx.weather == "snow":
        sub += 0.15 * (np.array(rgb("#e6ecf4") if not ctx.night else rgb("#4a5478"), np.float32) - sub)

"""MOTION rain: streaks behind the glass, drops sliding down the panes, rings on
the puddles outside."""

from __future__ import annotations

import math

import numpy as np

from .common import Motion, TAU, clip_rect, cycles, motion_rng, palette_color, smoothstep
from .frame import stamp
from .regions import is_outdoors, panes, weather_glass, weather_regions


class Rain(Motion):
    """Rain: thin streaks falling behind the glass (two depths of a scrolling texture,
    periodic top to bottom, that advances by whole periods per loop), drops sliding
    down each pane (slide, pause, slide: a monotone path that advances by whole pane
    heights per loop) and, outside, rings widening on the puddles."""

    def __init__(self, p, spec, seed, n, fps, static):
        h, w = static.shape[:2]
        self.n = n
        storm = spec.weather == "storm"
        rain = palette_color(p, "rain", (0.75, 0.8, 0.88))
        unit = h / 720.0
        dur = n / fps
        self.layers = []        # (rect, tiled texture, period, k, height)
        regions = weather_regions(p, w, h)
        # streaks behind the glass
        for ri, (x0, y0, x1, y1) in enumerate(regions):
            rw, rh = x1 - x0, y1 - y0
            for depth, (speed, length, dens, stren) in enumerate(
                    ((0.9, 0.085, 1.0, 0.26), (0.55, 0.05, 1.6, 0.13))):
                rng = motion_rng(seed, "rain", 0, ri, depth)
                if storm:
                    dens *= 2.2
                    stren *= 1.3
                # the texture is periodic over `period` rows and advances k periods per
                # loop; a period of up to two panes keeps the pattern from visibly repeating
                travel = speed * h * dur
                k = max(1, int(math.ceil(travel / (2 * rh))))
                period = max(8, int(round(travel / k)))
                tex = self._streaks(rng, rw, period, length * h, 0.12 if not storm else 0.25,
                                    dens * rw * period / (2200.0 * unit * unit), unit)
                col = (0.55 + 0.45 * rain) * 255.0 * stren
                tex3 = (tex[..., None] * col).astype(np.float32)
                reps = int(math.ceil((rh + period) / period))
                self.layers.append(((x0, y0, x1, y1), np.tile(tex3, (reps, 1, 1)), period, k, rh))
        # drops on the glass: only on window panes
        glass = weather_glass(p, w, h)
        self.drops = []         # per pane: arrays
        self.sprites = {}
        for pi, r in enumerate(panes(p, w, h)):
            x0, y0, x1, y1 = r
            rw, rh = x1 - x0, y1 - y0
            rng = motion_rng(seed, "rain", 1, pi)
            count = int(rw * rh / (9000.0 * unit * unit) * (1.8 if storm else 1.0)) + 2
            count = min(count, 60)
            radius = rng.uniform(2.2, 5.0, count) * max(unit, 0.4)
            k = np.maximum(1, np.round(rng.uniform(0.05, 0.12, count) * h * dur / rh)).astype(int)
            m = rng.integers(1, 4, count) * max(1, cycles(n, fps, 5.0))
            amp = rng.uniform(0.6, 0.95, count)
            self.drops.append(dict(
                rect=r, x=rng.uniform(x0 + 3, x1 - 3, count), y0=rng.uniform(0, rh, count),
                k=k, m=m, amp=amp, phase=rng.uniform(0, TAU, count),
                size=np.clip(np.round(radius * 2) / 2, 1.0, None)))
            # still beads of water on the glass: part of the picture, drawn once
            beads = int(rw * rh / (1500.0 * unit * unit)) + 3
            bx = rng.uniform(x0, x1, beads)
            by = rng.uniform(y0, y1, beads)
            br = rng.uniform(0.5, 1.0, beads) ** 3 * 3.0 * max(unit, 0.4)
            for xx, yy, rr in zip(bx, by, br):
                self._bead(static, xx, yy, rr, r, glass)
        for d in self.drops:
            for s in np.unique(d["size"]):
                if float(s) not in self.sprites:
                    self.sprites[float(s)] = self._drop_sprite(float(s), h)
        # drops landing on puddles outside: rings that widen and fade, each starting
        # again a whole number of times per loop
        self.ripples = []
        if is_outdoors(p):
            light = (0.5 + 0.5 * palette_color(p, "rain", (0.75, 0.8, 0.88))) * 255.0 * 0.8
            for ri, rect in enumerate(p.reflections):
                r = clip_rect(rect, w, h)
                if r is None:
                    continue
                x0, y0, x1, y1 = r
                rng = motion_rng(seed, "rain", 2, ri)
                count = int(min(40, (x1 - x0) * (y1 - y0) / (1500.0 * unit * unit))) + 2
                # puddles are round: keep the rings inside the ellipse in the rect
                ang, rad = rng.uniform(0, TAU, count), 0.8 * np.sqrt(rng.uniform(0, 1, count))
                self.ripples.append(dict(
                    rect=r, x=(x0 + x1) / 2 + rad * np.cos(ang) * (x1 - x0) / 2,
                    y=(y0 + y1) / 2 + rad * np.sin(ang) * (y1 - y0) / 2,
                    k=np.array([cycles(n, fps, v) for v in rng.uniform(0.6, 1.4, count)]),
                    off=rng.uniform(0, 1, count), rmax=rng.uniform(6, 12, count) * unit,
                    color=light))

    @staticmethod
    def _streaks(rng, rw, rh, length, slant, count, unit) -> np.ndarray:
        """(rh, rw) texture of slanted streaks, periodic top to bottom."""
        tex = np.zeros((rh, rw), np.float32)
        count = int(min(count, 4000))
        if count < 1:
            return tex
        lengths = rng.uniform(0.5, 1.3, count) * max(length, 3.0)
        n_pts = int(np.ceil(lengths.max())) + 1
        s = np.arange(n_pts, dtype=np.float32)[None, :]
        x0 = rng.uniform(0, rw, count)[:, None]
        y0 = rng.uniform(0, rh, count)[:, None]
        bright = rng.uniform(0.35, 1.0, count)[:, None]
        ys = y0 + s
        xs = x0 - slant * s
        valid = s < lengths[:, None]
        # brighter at the falling head, fading toward the tail
        val = bright * np.clip(s / lengths[:, None], 0, 1) ** 1.5 * valid
        yi = np.floor(ys).astype(int) % rh
        xf = np.floor(xs)
        fx = xs - xf
        xi = xf.astype(int) % rw
        np.add.at(tex, (yi, xi), (val * (1 - fx)).astype(np.float32))
        np.add.at(tex, (yi, (xi + 1) % rw), (val * fx).astype(np.float32))
        if unit > 1.3:      # wider streaks at large sizes
            tex = 0.5 * tex + 0.25 * (np.roll(tex, 1, axis=1) + np.roll(tex, -1, axis=1))
        return np.clip(tex, 0, 1)

    @staticmethod
    def _bead(img, cx, cy, r, clip, glass=None):
        x0, y0, x1, y1 = clip
        size = int(np.ceil(r * 2 + 3))
        ix, iy = int(cx) - size // 2, int(cy) - size // 2
        g = np.arange(size, dtype=np.float32)
        d = np.hypot(g[None, :] - (cx - ix), g[:, None] - (cy - iy))
        a = np.clip(r + 0.5 - d, 0, 1)
        hi = np.exp(-((g[None, :] - (cx - ix) + 0.35 * r) ** 2
                      + (g[:, None] - (cy - iy) + 0.35 * r) ** 2) / max(0.3 * r * r, 0.2))
        ax0, ay0, ax1, ay1 = max(ix, x0), max(iy, y0), min(ix + size, x1), min(iy + size, y1)
        if ax0 >= ax1 or ay0 >= ay1:
            return
        reg = img[ay0:ay1, ax0:ax1]
        sa = a[ay0 - iy:ay1 - iy, ax0 - ix:ax1 - ix, None]
        if glass is not None:
            sa = sa * glass[ay0:ay1, ax0:ax1, None]
        sh = hi[ay0 - iy:ay1 - iy, ax0 - ix:ax1 - ix, None]
        reg *= 1 - 0.25 * sa
        reg += 0.6 * 255.0 * sh * sa

    @staticmethod
    def _drop_sprite(r: float, h: int):
        """A drop on glass and its wet trail above: (darken, lighten) maps, and the
        offset of the drop's centre within them. Like a small lens: a dark rim, a
        bright crescent at the bottom (the light above, upside down), a glint."""
        trail = int(max(8, r * 12))
        size = int(np.ceil(2 * r + 4))
        sh, sw = trail + size, size
        gy = np.arange(sh, dtype=np.float32)[:, None]
        gx = np.arange(sw, dtype=np.float32)[None, :]
        cx, cy = (sw - 1) / 2.0, trail + (size - 1) / 2.0
        # slightly elongated upward, round at the bottom
        d = np.hypot((gx - cx) / r, (gy - cy) / (r * np.where(gy < cy, 1.3, 1.0)))
        body = np.clip((1.0 - d) * r + 0.5, 0, 1)
        rim = body * np.clip(d * 1.6 - 0.6, 0, 1)
        below = np.clip((gy - cy) / r + 0.2, 0, 1)
        crescent = body * below * np.clip(1.2 - d, 0, 1)
        glint = np.exp(-(((gx - cx + 0.35 * r) ** 2 + (gy - cy + 0.45 * r) ** 2)
                         / max(0.06 * r * r, 0.2)))
        # trail: a thin wet line narrowing upward, fading with age
        u = np.clip((cy - gy) / trail, 0, 1)
        tw = 0.4 * r * (1 - u) + 0.4
        trail_a = np.clip(tw - np.abs(gx - cx) + 0.5, 0, 1) * (gy < cy) * (1 - u) ** 1.5
        edge = np.clip(tw + 1.0 - np.abs(gx - cx), 0, 1) * (gy < cy) * (1 - u) ** 1.5 - trail_a
        darken = (0.55 * rim + 0.18 * np.clip(edge, 0, 1)).astype(np.float32)
        lighten = (0.10 * body + 0.45 * crescent + 0.9 * glint * body
                   + 0.12 * trail_a).astype(np.float32)
        return darken, lighten, cx, cy

    def draw(self, fb, t):
        s = (t % self.n) / self.n
        for rp in self.ripples:
            age = (rp["k"] * s + rp["off"]) % 1.0
            for x, y, a, rmax in zip(rp["x"], rp["y"], age, rp["rmax"]):
                r = max(rmax * a, 0.5)
                hw, hh = int(np.ceil(r + 1.5)), int(np.ceil(0.4 * r + 1.5))
                gx = np.arange(-hw, hw + 1, dtype=np.float32)[None, :] + (int(x) - x)
                gy = (np.arange(-hh, hh + 1, dtype=np.float32)[:, None] + (int(y) - y)) / 0.4
                ring = np.clip(1.0 - np.abs(np.sqrt(gx * gx + gy * gy) - r) / 0.9, 0, 1)
                stamp(fb, int(x) - hw, int(y) - hh, ring * (1.0 - a) ** 2, rp["color"],
                       clip=rp["rect"], add=True)
        for (x0, y0, x1, y1), tex, period, k, rh in self.layers:
            off = int(round(k * period * s)) % period
            reg = fb.region(x0, y0, x1, y1)
            reg += tex[period - off:period - off + rh]
        for d in self.drops:
            x0, y0, x1, y1 = d["rect"]
            rh = y1 - y0
            ph = TAU * d["m"] * s + d["phase"]
            y = (d["y0"] + rh * d["k"] * (s - d["amp"] * np.sin(ph) / (TAU * d["m"]))) % rh
            # fade in at the top, out at the bottom, so the wrap is not seen
            fade = smoothstep(0, 0.08 * rh, y) * smoothstep(0, 0.08 * rh, rh - y)
            for xx, yy, sz, fa in zip(d["x"], y, d["size"], fade):
                if fa <= 0.01:
                    continue
                dark, light, cx, cy = self.sprites[float(sz)]
                ix, iy = int(round(xx - cx)), int(round(y0 + yy - cy))
                hh, ww = dark.shape
                ax0, ay0 = max(ix, x0), max(iy, y0)
                ax1, ay1 = min(ix + ww, x1), min(iy + hh, y1)
                if ax0 >= ax1 or ay0 >= ay1:
                    continue
                reg = fb.region(ax0, ay0, ax1, ay1)
                sl = (slice(ay0 - iy, ay1 - iy), slice(ax0 - ix, ax1 - ix))
                reg *= 1.0 - fa * dark[sl][..., None]
                reg += (fa * 255.0) * light[sl][..., None]

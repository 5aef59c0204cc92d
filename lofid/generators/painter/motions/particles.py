"""MOTION particles: dust in the room's air; behind the glass (or over the whole
view outdoors) snow, autumn leaves or drifting fog."""

from __future__ import annotations

import math

import numpy as np

from ..canvas import blur_array, noise, resize
from .common import Motion, TAU, clip_rect, cycles, motion_rng, palette_color, smoothstep
from .frame import stamp
from .regions import is_outdoors, weather_regions


def _soft_dots(fx: np.ndarray, fy: np.ndarray, r: float, size: int) -> np.ndarray:
    """(P, size, size) soft round dots of radius r centred at fractional offsets (fx, fy)."""
    g = np.arange(size, dtype=np.float32)
    c = (size - 1) / 2.0
    dx = g[None, :] - (c + fx[:, None])
    dy = g[None, :] - (c + fy[:, None])
    s = max(r, 0.5)
    gx = np.exp(-(dx / s) ** 2)
    gy = np.exp(-(dy / s) ** 2)
    return gy[:, :, None] * gx[:, None, :]


class _Cloud:
    """Soft dots moving on closed paths inside a region (snow, dust)."""

    def __init__(self, rect, x_of, y_of, radius, alpha_of, color255, add):
        self.rect, self.x_of, self.y_of = rect, x_of, y_of
        self.alpha_of, self.color, self.add = alpha_of, color255, add
        self.radius = radius
        self.groups = {}
        for i, r in enumerate(radius):
            size = int(np.ceil(r * 2.5)) * 2 + 1
            self.groups.setdefault(size, []).append(i)
        self.groups = {k: np.array(v) for k, v in self.groups.items()}

    def draw(self, fb, s):
        xs, ys, al = self.x_of(s), self.y_of(s), self.alpha_of(s)
        for size, idx in self.groups.items():
            x, y = xs[idx], ys[idx]
            ix, iy = np.round(x).astype(int), np.round(y).astype(int)
            dots = _soft_dots((x - ix).astype(np.float32), (y - iy).astype(np.float32),
                              float(np.mean(self.radius[idx])), size)
            dots *= al[idx, None, None].astype(np.float32)
            half = size // 2
            for j in range(len(idx)):
                if al[idx[j]] > 0.01:
                    stamp(fb, ix[j] - half, iy[j] - half, dots[j], self.color,
                           clip=self.rect, add=self.add)


class Particles(Motion):
    """Floating particles: dust motes drifting on slow closed paths in the air; behind
    the glass (or over the whole view outside) snow falling by whole region heights per
    loop when it snows, leaves in autumn, drifting mist in fog."""

    def __init__(self, p, spec, seed, n, fps, static):
        h, w = static.shape[:2]
        self.n = n
        self.clouds = []
        self.leaves = []
        unit = h / 720.0
        dur = n / fps
        if spec.weather == "snow" or spec.theme == "christmas" and spec.season == "winter":
            for ri, r in enumerate(weather_regions(p, w, h)):
                self._snow(p, seed, ri, r, n, fps, unit)
        elif spec.season == "autumn":
            for ri, r in enumerate(weather_regions(p, w, h)):
                self._leaves(p, seed, ri, r, n, fps, unit)
        self.mists = []
        if spec.weather == "fog":
            for ri, (x0, y0, x1, y1) in enumerate(weather_regions(p, w, h)):
                if is_outdoors(p):
                    # outside, fog lies in banks over the lower part of the view
                    y0 = y0 + int(0.3 * (y1 - y0))
                self._mist(p, seed, ri, (x0, y0, x1, y1), n, fps, h)
        air = clip_rect(p.air, w, h) if p.air is not None else None
        if air is not None and not (is_outdoors(p) and spec.weather == "snow"):
            self._dust(p, seed, air, n, fps, unit, dur)

    def _mist(self, p, seed, ri, rect, n, fps, h):
        """Fog: two soft noise layers swaying slowly sideways in opposite directions
        and crossfading into each other, once or more per loop."""
        x0, y0, x1, y1 = rect
        rw, rh = x1 - x0, y1 - y0
        rng = motion_rng(seed, "particles", 4, ri)
        sway = max(2, int(0.04 * h))
        v = np.linspace(0, 1, rh, dtype=np.float32)[:, None]
        # denser low down, where fog settles; outside, a bank fading in from nothing
        prof = np.sqrt(v) if is_outdoors(p) else 0.3 + 0.7 * v
        layers = []
        # made at quarter size and blurred: soft banks of fog, no grid of noise cells
        qw, qh = max(2, (rw + 2 * sway) // 4), max(2, rh // 4)
        for _ in range(2):
            q = (0.65 * noise(rng, qw, qh, max(2.0, 0.06 * h))
                 + 0.35 * noise(rng, qw, qh, max(1.5, 0.02 * h)))
            tex = resize(blur_array(q, max(1.0, 0.006 * h)), rw + 2 * sway, rh)
            layers.append((smoothstep(0.25, 0.85, tex) * prof).astype(np.float32))
        col = np.clip(0.35 + 0.65 * palette_color(p, "rain", (0.8, 0.82, 0.86)), 0, 1) * 255.0
        self.mists.append(dict(rect=rect, layers=layers, sway=sway, color=col, strength=0.38,
                               k=cycles(n, fps, 12.0), phase=rng.uniform(0, TAU),
                               buffers=(np.empty((rh, rw), np.float32),
                                        np.empty((rh, rw), np.float32),
                                        np.empty((rh, rw, 3), np.float32))))

    def _snow(self, p, seed, ri, rect, n, fps, unit):
        x0, y0, x1, y1 = rect
        rw, rh = x1 - x0, y1 - y0
        dur = n / fps
        rng = motion_rng(seed, "particles", 1, ri)
        count = int(min(400, rw * rh / (2600.0 * unit * unit))) + 3
        depth = rng.uniform(0, 1, count)                     # 1 = near
        radius = (1.0 + 2.2 * depth ** 2) * max(unit, 0.6)
        speed = (0.03 + 0.06 * depth) * 720 * unit            # px per second
        k = np.maximum(1, np.round(speed * dur / rh)).astype(int)
        sx = np.array([cycles(n, fps, v) for v in rng.uniform(2.5, 6.0, count)])
        sa = rng.uniform(3, 10, count) * unit * (0.5 + depth)
        sa = np.minimum(sa, 0.02 * 720 * unit * dur / (TAU * sx) * 3)
        bx, by = rng.uniform(x0, x1, count), rng.uniform(0, rh, count)
        ph = rng.uniform(0, TAU, count)
        alpha = (0.45 + 0.5 * depth).astype(np.float32)
        col = palette_color(p, "snow", (0.96, 0.97, 1.0)) * 255.0
        self.clouds.append(_Cloud(
            rect, lambda s: bx + sa * np.sin(TAU * sx * s + ph),
            lambda s: y0 + (by + rh * k * s) % rh, radius, lambda s: alpha, col, add=False))

    def _dust(self, p, seed, rect, n, fps, unit, dur):
        x0, y0, x1, y1 = rect
        rw, rh = x1 - x0, y1 - y0
        rng = motion_rng(seed, "particles", 2)
        count = int(min(200, rw * rh / (6000.0 * unit * unit))) + 4
        bx, by = rng.uniform(x0, x1, count), rng.uniform(y0, y1, count)
        # a third gather where light comes in: in front of windows and around lamps
        sources = [((a + c) / 2, (b + d) / 2, max(c - a, d - b) * 0.6)
                   for a, b, c, d in p.windows]
        sources += [(L.x, L.y, L.radius * 1.5) for L in p.lights
                    if L.kind in ("lamp", "sun", "candle")]
        if sources:
            near = np.arange(count) % 3 == 0
            pick = rng.integers(0, len(sources), count)
            sx, sy, sr = (np.array([sources[i][j] for i in pick]) for j in range(3))
            bx = np.where(near, np.clip(sx + rng.normal(0, 1, count) * sr, x0, x1 - 1), bx)
            by = np.where(near, np.clip(sy + rng.normal(0, 1, count) * sr, y0, y1 - 1), by)
        radius = rng.uniform(0.8, 2.0, count) * max(unit, 0.55)
        kx = np.array([cycles(n, fps, v) for v in rng.uniform(6, 14, count)])
        ky = np.array([cycles(n, fps, v) for v in rng.uniform(5, 12, count)])
        vmax = 0.025 * 720 * unit      # px per second
        ax = np.minimum(rng.uniform(0.02, 0.06, count) * rh, vmax * dur / (TAU * kx))
        ay = np.minimum(rng.uniform(0.02, 0.05, count) * rh, vmax * dur / (TAU * ky))
        px, py = rng.uniform(0, TAU, count), rng.uniform(0, TAU, count)
        # motes catch light: brighter near lamps, sun and windows
        lit = np.full(count, 0.3)
        for L in p.lights:
            if L.kind in ("lamp", "sun", "candle", "monitor"):
                d2 = ((bx - L.x) ** 2 + (by - L.y) ** 2) / max(L.radius * 2.5, 1.0) ** 2
                lit += 0.9 * np.exp(-d2)
        for wx0, wy0, wx1, wy1 in p.windows:
            cx, cy = (wx0 + wx1) / 2, (wy0 + wy1) / 2
            d2 = ((bx - cx) ** 2 + (by - cy) ** 2) / max(wx1 - wx0, wy1 - wy0, 1) ** 2
            lit += 0.5 * np.exp(-2 * d2)
        lit = np.clip(lit, 0, 1.1)
        kt = np.array([cycles(n, fps, v) for v in rng.uniform(2.0, 5.0, count)])
        pt = rng.uniform(0, TAU, count)
        col = palette_color(p, "dust", (1.0, 0.92, 0.75)) * 255.0 * 0.7
        self.clouds.append(_Cloud(
            rect, lambda s: bx + ax * np.sin(TAU * kx * s + px),
            lambda s: by + ay * np.sin(TAU * ky * s + py), radius,
            lambda s: lit * (0.55 + 0.45 * np.sin(TAU * kt * s + pt)), col, add=True))

    def _leaves(self, p, seed, ri, rect, n, fps, unit):
        x0, y0, x1, y1 = rect
        rw, rh = x1 - x0, y1 - y0
        dur = n / fps
        rng = motion_rng(seed, "particles", 3, ri)
        count = int(min(18, rw * rh / (50000.0 * unit * unit))) + 2
        size = max(5, int(round(19 * unit))) | 1
        g = np.arange(size, dtype=np.float32) - size // 2
        sprites = []
        rr = size / 2 - 0.5
        for a in np.linspace(0, math.pi, 12, endpoint=False):
            u = (g[None, :] * math.cos(a) + g[:, None] * math.sin(a)) / rr
            v = (-g[None, :] * math.sin(a) + g[:, None] * math.cos(a)) / rr
            # a pointed leaf: half-width 0.38 (1 - u^2), a short stem past one tip
            half = 0.38 * np.clip(1 - u * u, 0, 1)
            blade = np.clip((half - np.abs(v)) * rr + 0.5, 0, 1) * (np.abs(u) <= 1)
            stem = np.clip(0.6 - np.abs(v) * rr, 0, 1) * (u > 0.85) * (u < 1.15)
            sprites.append((0.92 * np.maximum(blade, stem)).astype(np.float32))
        palette = np.array([(0.85, 0.42, 0.14), (0.75, 0.25, 0.12), (0.9, 0.62, 0.2),
                            (0.62, 0.35, 0.15)], np.float32) * 255.0
        speed = rng.uniform(0.04, 0.08, count) * 720 * unit
        self.leaves.append(dict(
            rect=rect, x=rng.uniform(x0, x1, count), y=rng.uniform(0, rh, count), rh=rh,
            k=np.maximum(1, np.round(speed * dur / rh)).astype(int),
            sk=np.array([cycles(n, fps, v) for v in rng.uniform(2.0, 4.0, count)]),
            sa=rng.uniform(0.02, 0.05, count) * rh, ph=rng.uniform(0, TAU, count),
            spin=rng.integers(1, 3, count) * rng.choice([-1, 1], count) * cycles(n, fps, 3.0),
            spin_ph=rng.integers(0, 12, count),
            col=palette[rng.integers(0, len(palette), count)], sprites=sprites, size=size))

    def draw_behind(self, fb, t):
        """Mist, snow and leaves: outside, behind the glass."""
        s = (t % self.n) / self.n
        for m in self.mists:
            q = TAU * m["k"] * s + m["phase"]
            sw = m["sway"]
            o1 = sw + int(round(sw * math.sin(q)))
            o2 = sw - int(round(sw * math.sin(q + 1.3)))
            w1 = 0.5 + 0.5 * math.cos(q)
            x0, y0, x1, y1 = m["rect"]
            rw = x1 - x0
            a, a2, d = m["buffers"]
            if m.get("toward") is None:
                # mist is the first layer drawn, over the finished still picture
                m["toward"] = (m["color"] - fb.bg[y0:y1, x0:x1]).astype(np.float32)
            np.multiply(m["layers"][0][:, o1:o1 + rw], w1 * m["strength"], out=a)
            np.multiply(m["layers"][1][:, o2:o2 + rw], (1.0 - w1) * m["strength"], out=a2)
            a += a2
            reg = fb.region(x0, y0, x1, y1)
            np.multiply(m["toward"], a[..., None], out=d)
            reg += d
        for c in self.clouds:
            if not c.add:
                c.draw(fb, s)
        for lv in self.leaves:
            x = lv["x"] + lv["sa"] * np.sin(TAU * lv["sk"] * s + lv["ph"])
            y = lv["rect"][1] + (lv["y"] + lv["rh"] * lv["k"] * s) % lv["rh"]
            # 12 sprites cover half a turn; a whole number of half turns per loop
            a = (lv["spin_ph"] + np.floor(lv["spin"] * s * 12)).astype(int) % 12
            half = lv["size"] // 2
            for j in range(len(x)):
                stamp(fb, int(round(x[j])) - half, int(round(y[j])) - half,
                       lv["sprites"][a[j]], lv["col"][j], clip=lv["rect"])

    def draw_front(self, fb, t):
        """Dust: in the room's air, in front of everything."""
        s = (t % self.n) / self.n
        for c in self.clouds:
            if c.add:
                c.draw(fb, s)

    def draw(self, fb, t):
        self.draw_behind(fb, t)
        self.draw_front(fb, t)

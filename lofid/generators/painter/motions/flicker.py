"""MOTION flicker: lamps, candles, fairy lights, stars and city windows breathing."""

from __future__ import annotations

import math

import numpy as np

from .common import Motion, TAU, cycles, motion_rng


# how each kind of light breathes: (relative amplitude, slowest and fastest period in s)
_FLICKER = {
    "candle": (0.22, 0.6, 1.6),
    "fairy": (0.55, 1.5, 5.0),
    "lamp": (0.07, 1.5, 6.0),
    "monitor": (0.06, 1.0, 4.0),
    "city": (0.12, 3.0, 9.0),
    "star": (0.5, 1.2, 4.0),
    "sun": (0.03, 4.0, 10.0),
}


class Flicker(Motion):
    """Flicker: each light's glow is scaled per frame by a sum of a few harmonics of
    2*pi*t/N with random phases (smooth, never strobing); fairy lights and stars
    twinkle independently."""

    def __init__(self, p, spec, seed, n, fps, static):
        h, w = static.shape[:2]
        self.n = n
        self.lights = []
        rng = motion_rng(seed, "flicker", 0)
        for li, L in enumerate(p.lights):
            amp, pmin, pmax = _FLICKER.get(L.kind, (0.08, 1.5, 5.0))
            if L.kind == "city" and rng.random() > 0.35:
                continue        # most city windows stay steady
            r = float(min(max(L.radius, 1.5), 0.35 * h))
            size = int(2 * np.ceil(r * 1.3) + 1)
            g = np.arange(size, dtype=np.float32) - (size - 1) / 2.0
            fx, fy = L.x - round(L.x), L.y - round(L.y)
            d2 = ((g[None, :] - fx) ** 2 + (g[:, None] - fy) ** 2) / (r * r)
            # falls to exactly zero at the edge of its box: no faint square pulsing
            edge = math.exp(-2.2 * 1.3 ** 2)
            glow = np.clip((np.exp(-2.2 * d2) - edge) / (1.0 - edge), 0.0, None)
            sprite = (glow + 0.6 * np.exp(-12 * d2)).astype(np.float32)
            color = np.asarray(L.color, np.float32) * 255.0
            harm = []
            n_h = 3 if L.kind in ("candle", "fairy", "star") else 2
            for _ in range(n_h):
                k = cycles(n, fps, rng.uniform(pmin, pmax))
                harm.append((k, rng.uniform(0, TAU), rng.uniform(0.5, 1.0)))
            norm = sum(a for _, _, a in harm)
            self.lights.append(dict(
                x=int(round(L.x)) - (size - 1) // 2, y=int(round(L.y)) - (size - 1) // 2,
                sprite=sprite, amp=amp, color=color * amp,
                harm=[(k, ph, a / norm) for k, ph, a in harm]))

    def gain(self, light, t) -> float:
        s = (t % self.n) / self.n
        return sum(a * math.sin(TAU * k * s + ph) for k, ph, a in light["harm"])

    def draw(self, fb, t):
        for L in self.lights:
            g = self.gain(L, t)
            spr = L["sprite"]
            sh, sw = spr.shape
            x0, y0 = L["x"], L["y"]
            ax0, ay0 = max(x0, 0), max(y0, 0)
            ax1, ay1 = min(x0 + sw, fb.w), min(y0 + sh, fb.h)
            if ax0 >= ax1 or ay0 >= ay1:
                continue
            reg = fb.region(ax0, ay0, ax1, ay1)
            a = spr[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0, None]
            # scale the painted light (dimming never leaves a dark halo), and add a
            # little coloured glow when it swells
            reg *= 1.0 + (L["amp"] * g) * a
            if g > 0:
                reg += (0.35 * g) * a * L["color"]

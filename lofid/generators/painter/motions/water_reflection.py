"""MOTION water_reflection: reflections shimmering and sparkling."""

from __future__ import annotations

import numpy as np

from .common import Motion, TAU, cycles, regions
from .frame import shift_rows, stamp


def _fade_window(size: int) -> np.ndarray:
    """(size, size) weights, 1 in the middle falling smoothly to 0 at the border: a
    sprite multiplied by it leaves no visible edge of its box."""
    c = (size - 1) / 2.0
    u = np.abs(np.arange(size, dtype=np.float32) - c) / max(c, 1.0)
    w = (1.0 - np.clip(u, 0, 1) ** 2) ** 2
    return np.outer(w, w).astype(np.float32)


class WaterReflection(Motion):
    """Shimmering reflections: rows displaced sideways by small travelling waves, a
    gentle ripple of brightness and highlights that sparkle on and off."""

    def __init__(self, p, spec, seed, n, fps, static):
        h, w = static.shape[:2]
        self.n = n
        self.items = []
        hl = np.asarray(p.palette.get("warm", (1.0, 0.9, 0.7)), np.float32)
        hl = (0.5 + 0.5 * hl) * 255.0
        for ri, r, rng in regions(p.reflections, w, h, seed, "water_reflection"):
            x0, y0, x1, y1 = r
            rh, rw = y1 - y0, x1 - x0
            ys = np.arange(rh, dtype=np.float32)[:, None]
            amp = max(0.5, 0.0028 * h)
            waves = []
            for _ in range(3):
                waves.append((rng.uniform(0.04, 0.12) * h, cycles(n, fps, rng.uniform(1.5, 4.0))
                              * rng.choice([-1, 1]), rng.uniform(0, TAU), rng.uniform(0.5, 1.0)))
            count = int(min(60, max(3, rw * rh / (1800.0 * (h / 720.0) ** 2))))
            periods = rng.uniform(1.0, 3.0, count)
            sparks = dict(x=rng.integers(x0, x1, count), y=rng.integers(y0, y1, count),
                          k=np.array([cycles(n, fps, v) for v in periods]),
                          ph=rng.uniform(0, TAU, count))
            size = int(max(3, round(0.006 * h))) | 1
            g = np.arange(size, dtype=np.float32) - size // 2
            sr = max(0.6, size / 4)
            spr = (np.exp(-(g[None, :] ** 2) / (sr * sr * 2.5))
                   * np.exp(-(g[:, None] ** 2) / (sr * sr * 0.5)))
            spr = np.maximum(spr, spr.T) * _fade_window(size)   # a little cross of light
            spr = spr.astype(np.float32)
            self.items.append(dict(rect=r, ys=ys, amp=amp, waves=waves, sparks=sparks,
                                   spr=spr, color=hl * 0.8))

    def draw(self, fb, t):
        s = (t % self.n) / self.n
        for it in self.items:
            ys = it["ys"]
            dx = np.zeros_like(ys)
            bright = np.ones_like(ys)
            for lam, k, ph, a in it["waves"]:
                arg = TAU * (ys / lam - k * s) + ph
                dx += (it["amp"] / 1.5) * a * np.sin(arg)
                bright += 0.035 * a * np.cos(arg)
            reg = fb.region(*it["rect"])
            out = shift_rows(reg.copy(), dx)
            out *= bright[..., None]
            reg[...] = out
            sp = it["sparks"]
            level = np.maximum(0.0, np.sin(TAU * sp["k"] * s + sp["ph"])) ** 3
            half = it["spr"].shape[0] // 2
            for x, y, lv in zip(sp["x"], sp["y"], level):
                if lv > 0.02:
                    stamp(fb, int(x) - half, int(y) - half, it["spr"] * lv, it["color"],
                           clip=it["rect"], add=True)

"""MOTION curtain: fabric drifting in a draught."""

from __future__ import annotations

import math

import numpy as np

from ..canvas import blur_array
from .common import Motion, TAU, cycles, regions
from .frame import shift_rows


class Curtain(Motion):
    """Curtain drift: columns displaced by a sine wave travelling along the fabric,
    amplitude growing toward the hem, folds catching the light as they pass."""

    def __init__(self, p, spec, seed, n, fps, static):
        h, w = static.shape[:2]
        self.n = n
        self.items = []
        for ci, r, rng in regions(p.curtains, w, h, seed, "curtain"):
            x0, y0, x1, y1 = r
            amp = max(1.0, 0.006 * h)
            m = int(np.ceil(amp)) + 2
            ex0, ex1 = max(0, x0 - m), min(w, x1 + m)
            xs = np.arange(ex0, ex1, dtype=np.float32)[None, :]
            ys = np.arange(y0, y1, dtype=np.float32)[:, None]
            v = (ys - y0) / max(y1 - y0, 1)
            # displacement fades out over the margin beside the curtain
            edge = np.clip(np.minimum(xs - ex0, ex1 - 1 - xs) / max(m, 1), 0, 1)
            A = (amp * (0.15 + 0.85 * v ** 1.5) * edge * self._fabric(static, r, ex0, ex1)
                 ).astype(np.float32)
            lam = rng.uniform(0.6, 1.0) * max(x1 - x0, 8)
            P = TAU * (xs / lam + v * rng.uniform(0.2, 0.5)) + rng.uniform(0, TAU)
            k = cycles(n, fps, rng.uniform(3.0, 5.0))
            sk = cycles(n, fps, rng.uniform(5.0, 8.0))
            self.items.append(dict(
                rect=(ex0, y0, ex1, y1), k=k, sk=sk, sphase=rng.uniform(0, TAU),
                As=(A * np.sin(P)).astype(np.float32), Ac=(A * np.cos(P)).astype(np.float32),
                sway=(0.5 * A).astype(np.float32),
                shade=0.08 / amp))     # folds brighten and darken by up to 8%

    @staticmethod
    def _fabric(static, rect, ex0, ex1) -> np.ndarray:
        """Where the rect shows the curtain itself, 0..1: a pixel close to the typical
        colour of its column (folds run down the fabric). A lamp or a plant standing
        in front of the curtain differs from it and stays still."""
        x0, y0, x1, y1 = rect
        reg = static[y0:y1, ex0:ex1] / 255.0
        rh = y1 - y0
        # typical colour of each column near each row: a running median over a
        # quarter of the curtain either side (light from a lamp varies down the fabric)
        half = max(4, rh // 4)
        centres = np.linspace(0, rh - 1, max(2, min(rh, 12))).astype(int)
        prof = np.stack([np.median(static[y0 + max(0, c - half):y0 + min(rh, c + half + 1),
                                          x0:x1] / 255.0, axis=0) for c in centres])
        idx = np.interp(np.arange(rh), centres, np.arange(len(centres)))
        i0 = np.floor(idx).astype(int)
        i1 = np.minimum(i0 + 1, len(centres) - 1)
        f = (idx - i0)[:, None, None]
        col = prof[i0] * (1 - f) + prof[i1] * f
        col = np.concatenate([np.repeat(col[:, :1], x0 - ex0, 1), col,
                              np.repeat(col[:, -1:], ex1 - x1, 1)], axis=1)
        dist = np.abs(reg - col).sum(axis=2)
        mask = np.clip(1.0 - (dist - 0.08) / 0.12, 0.0, 1.0)
        # soft, and a little shrunk, so the edge of an object in front does not wobble
        soft = blur_array(mask, max(2.0, 0.004 * static.shape[0]))
        return np.clip(2.0 * soft - 1.0, 0.0, 1.0)

    def draw(self, fb, t):
        s = (t % self.n) / self.n
        for it in self.items:
            q = TAU * it["k"] * s
            cq, sq = math.cos(q), math.sin(q)
            # A sin(P - q) and its slope along x (for shading)
            dx = it["As"] * cq - it["Ac"] * sq
            slope = it["Ac"] * cq + it["As"] * sq
            dx += it["sway"] * math.sin(TAU * it["sk"] * s + it["sphase"])
            reg = fb.region(*it["rect"])
            src = reg.copy()
            out = shift_rows(src, dx)
            out *= (1.0 + it["shade"] * slope)[..., None]
            reg[...] = out

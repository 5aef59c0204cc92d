"""MOTIONS breathing and hair_sway: the person, warped every frame."""

from __future__ import annotations

import math

import numpy as np

from ..canvas import blur_array
from .common import Motion, TAU, cycles, motion_rng


class FigureMotion(Motion):
    """The person: composited every frame, the torso scaled gently around the chest
    (breathing: shoulders and head rise, the chest widens) and the hair displaced
    sideways, most at the tips (hair sway).

    The warp is split for speed: a per-row vertical resample (breathing), then a
    horizontal resample only of the rows that move sideways (chest band, hair)."""

    def __init__(self, p, spec, seed, n, fps, static, breathing: bool, hair: bool):
        self.n = n
        f = p.figure
        rng = motion_rng(seed, "figure")
        fh, fw = f.rgba.shape[:2]
        m = int(max(3, np.ceil(0.03 * fh)))
        rgba = np.zeros((fh + 2 * m + 1, fw + 2 * m + 1, 4), np.float32)
        rgba[m:m + fh, m:m + fw] = f.rgba
        rgba[..., :3] *= rgba[..., 3:4]          # premultiplied: clean edges when resampled
        rgba[..., :3] *= 255.0
        self.x, self.y = int(f.x) - m, int(f.y) - m
        H, W = rgba.shape[0] - 1, rgba.shape[1] - 1   # the extra row/column stays empty
        # only the rows and columns inside the frame are ever drawn
        fhgt, fwid = static.shape[:2]
        self.r0, self.r1 = max(0, -self.y), min(H, fhgt - self.y)
        self.c0, self.c1 = max(0, -self.x), min(W, fwid - self.x)
        ys = np.arange(H, dtype=np.float32)
        chest = float(f.chest_y) + m
        bottom = float(m + fh - 1)
        alpha_cols = np.where(f.rgba[..., 3].max(axis=0) > 0.05)[0]
        self.cx = m + (alpha_cols.mean() if alpha_cols.size else fw / 2)
        self.xs = np.arange(W, dtype=np.float32)
        # breathing: above the chest rises by d, fading to 0 at the seat
        self.b_on = breathing
        self.b_k = cycles(n, fps, 4.0)
        self.b_ph = rng.uniform(0, TAU)
        self.b_amp = max(0.8, 0.008 * fh)
        below = np.clip((bottom - ys) / max(bottom - chest, 1), 0, 1)
        self.rise = np.where(ys < chest, 1.0, below).astype(np.float32)
        self.widen = (0.008 * np.exp(-((ys - chest) / max(0.1 * fh, 2)) ** 2)).astype(np.float32)
        # hair sway: displacement follows a softened hair mask, growing toward the tips
        self.h_on = hair
        hm = np.zeros((H, W), np.float32)
        hm[m:m + fh, m:m + fw] = f.hair
        rows = np.where(hm.max(axis=1) > 0.05)[0]
        self.hfield = None
        if rows.size:
            top, tip = int(rows.min()), int(rows.max())
            grow = np.clip((ys - top) / max(tip - top, 1), 0, 1)[:, None] ** 1.3
            soft = blur_array(hm, max(1.5, 0.01 * fh))
            self.hfield = (soft * (0.25 + 0.75 * grow)).astype(np.float32)
            self.h_top, self.h_len = float(top), float(max(tip - top, 1))
        else:
            self.h_on = False
        self.h_amp = max(1.0, 0.012 * fh)
        self.h_k = cycles(n, fps, 3.5)
        self.h_ph = rng.uniform(0, TAU)
        # rows that move sideways
        band = np.zeros(H, bool)
        if self.b_on:
            band |= self.widen > 2e-4
        if self.h_on:
            band |= self.hfield.max(axis=1) > 1e-3
        band[:self.r0] = False
        band[self.r1:] = False
        idx = np.where(band)[0]
        self.band = (int(idx.min()), int(idx.max()) + 1) if idx.size else None
        # what the warp reads: visible columns (+1 for interpolation), all rows
        c0, c1 = self.c0, self.c1
        self.src = np.ascontiguousarray(rgba[:, c0:c1 + 1])
        if self.band is not None:
            b0, b1 = self.band
            xs = self.xs[c0:c1] - c0
            self.band_x = np.ascontiguousarray(np.broadcast_to(xs, (b1 - b0, c1 - c0)))
            self.band_widen = ((self.xs[c0:c1] - self.cx)[None, :]
                               * self.widen[b0:b1, None]).astype(np.float32)
            if self.h_on:
                self.band_hair = (self.h_amp * self.hfield[b0:b1, c0:c1]).astype(np.float32)
            self.band_rows = (np.arange(b1 - b0, dtype=np.int32) * (c1 - c0 + 1))[:, None]
        if not (self.b_on or self.h_on):
            self._composite(static, rgba[:H, :W])

    def _composite(self, img, prem):
        H, W = prem.shape[:2]
        x0, y0 = max(self.x, 0), max(self.y, 0)
        x1, y1 = min(self.x + W, img.shape[1]), min(self.y + H, img.shape[0])
        if x0 >= x1 or y0 >= y1:
            return
        src = prem[y0 - self.y:y1 - self.y, x0 - self.x:x1 - self.x]
        dst = img[y0:y1, x0:x1]
        dst *= 1.0 - src[..., 3:4]
        dst += src[..., :3]

    def sprite(self, t) -> tuple[np.ndarray, np.ndarray]:
        """The figure at frame t, rows r0..r1 and columns c0..c1: premultiplied colour
        (h, w, 3) and alpha (h, w, 1), each contiguous (fast to composite)."""
        s = (t % self.n) / self.n
        r0, r1, c0, c1 = self.r0, self.r1, self.c0, self.c1
        src = self.src          # (H + 1, c1 - c0 + 1, 4), premultiplied
        b = math.sin(TAU * self.b_k * s + self.b_ph) if self.b_on else 0.0
        if self.b_on:
            sy = np.arange(r0, r1, dtype=np.float32) + (self.b_amp * b) * self.rise[r0:r1]
            np.clip(sy, 0, src.shape[0] - 2, out=sy)
            yi = sy.astype(np.int32)
            fy = (sy - yi)[:, None, None]
            v = src[yi]
            v += (src[yi + 1] - v) * fy
        else:
            v = src[r0:r1].copy()
        if self.band is not None:
            b0, b1 = self.band
            xs = self.band_x.copy()
            if self.b_on:
                # x -> cx + (x - cx) / (1 + b w), to first order
                xs -= b * self.band_widen
            if self.h_on:
                ys = np.arange(b0, b1, dtype=np.float32)
                wave = np.sin(TAU * self.h_k * s + self.h_ph
                              - 1.2 * (ys - self.h_top) / self.h_len).astype(np.float32)
                xs -= self.band_hair * wave[:, None]
            np.clip(xs, 0, c1 - c0 - 1e-3, out=xs)
            xi = xs.astype(np.int32)
            fx = (xs - xi)[..., None]
            xi += self.band_rows
            flat = v[b0 - r0:b1 - r0].reshape(-1, 4)
            a = flat.take(xi, axis=0)
            a += (flat.take(xi + 1, axis=0) - a) * fx
            v[b0 - r0:b1 - r0, :c1 - c0] = a
        v = v[:, :c1 - c0]
        return np.ascontiguousarray(v[..., :3]), np.ascontiguousarray(v[..., 3:])

    def draw(self, fb, t):
        rgb, alpha = self.sprite(t)
        reg = fb.region(self.x + self.c0, self.y + self.r0, self.x + self.c1, self.y + self.r1)
        if reg is None:
            return
        np.subtract(1.0, alpha, out=alpha)
        reg *= alpha
        reg += rgb

"""The frame the motions draw into, and the ways they draw.

Speed: a painting's background is kept as float32 (0..255 units) and, per frame, each
motion touches only its own small regions (sprites, panes, plumes); those regions are
converted to uint8 over a precomputed uint8 copy of the background, then restored."""

from __future__ import annotations

import numpy as np


class FrameBuffer:
    """A float32 working frame equal to the background except where this frame drew.

    Motions ask for regions with `region()`, which records them; `finish()` converts
    just those regions into the uint8 output and restores them from the background."""

    def __init__(self, background255: np.ndarray):
        self.bg = background255
        self.work = background255.copy()
        self.h, self.w = background255.shape[:2]
        self._touched: list[tuple[int, int, int, int]] = []
        self._conv = np.empty_like(background255)

    def region(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray | None:
        x0, y0 = max(int(x0), 0), max(int(y0), 0)
        x1, y1 = min(int(x1), self.w), min(int(y1), self.h)
        if x0 >= x1 or y0 >= y1:
            return None
        self._touched.append((x0, y0, x1, y1))
        return self.work[y0:y1, x0:x1]

    def regions(self) -> list[tuple[int, int, int, int]]:
        """The regions drawn into so far this frame, less those inside one of the
        largest (they are handled with it)."""
        rects = sorted(set(self._touched), key=lambda r: (r[2] - r[0]) * (r[3] - r[1]),
                       reverse=True)
        big = rects[:4]
        return [r for i, r in enumerate(rects)
                if not any(b[0] <= r[0] and b[1] <= r[1] and b[2] >= r[2] and b[3] >= r[3]
                           for b in big[:min(i, 4)])]

    def finish(self, out: np.ndarray) -> None:
        keep = self.regions()
        buf = self._conv
        for x0, y0, x1, y1 in keep:
            t = buf[:y1 - y0, :x1 - x0]
            # the background carries +0.5, so truncating here rounds
            np.clip(self.work[y0:y1, x0:x1], 0.0, 255.0, out=t)
            out[y0:y1, x0:x1] = t
        # only once every region is out: regions overlap
        for x0, y0, x1, y1 in keep:
            self.work[y0:y1, x0:x1] = self.bg[y0:y1, x0:x1]
        self._touched.clear()


def stamp(fb: FrameBuffer, x0: int, y0: int, alpha: np.ndarray, color255,
           clip=None, add: bool = False) -> None:
    """Lay an alpha sprite with top-left (x0, y0): blend toward color, or add color*alpha."""
    h, w = alpha.shape
    cx0, cy0, cx1, cy1 = clip if clip is not None else (0, 0, fb.w, fb.h)
    ax0, ay0 = max(x0, cx0), max(y0, cy0)
    ax1, ay1 = min(x0 + w, cx1), min(y0 + h, cy1)
    if ax0 >= ax1 or ay0 >= ay1:
        return
    reg = fb.region(ax0, ay0, ax1, ay1)
    a = alpha[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0, None]
    if add:
        reg += a * color255
    else:
        reg += a * (color255 - reg)


def shift_rows(src: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """src (h, w, 3) resampled at x - dx with linear interpolation; dx is (h, 1) or (h, w)."""
    h, w = src.shape[:2]
    xs = np.arange(w, dtype=np.float32)[None, :] - dx
    np.clip(xs, 0.0, w - 1.001, out=xs)
    xi = xs.astype(np.int32)
    f = (xs - xi)[..., None]
    idx = xi + (np.arange(h, dtype=np.int32) * w)[:, None]
    flat = src.reshape(-1, 3)
    a = flat[idx]
    b = flat[idx + 1]
    return a + (b - a) * f

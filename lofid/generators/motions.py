"""The painter's motions: what moves in a procedural loop, and how it loops.

Every motion here is a function of the loop phase t/N only, built from whole numbers
of cycles per loop (positions that advance by whole multiples of their region, sines
with integer frequencies), so frame N equals frame 0 and the loop is seamless by
construction. Motions are made of many elements with random phases, so the motion is
about as strong at every step of the loop, the wrap step included.

Speed: a painting's background is kept as float32 (0..255 units) and, per frame, each
motion touches only its own small regions (sprites, panes, plumes); those regions are
converted to uint8 over a precomputed uint8 copy of the background, then restored.

`Animator(painting, spec, seed, n_frames, fps)` builds the motions the spec asks for;
`render_frame(t)` draws frame t (any integer; periodic in N), `render()` all N.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

# Stable numbers that separate the random streams of the motions (never hash()).
_STREAM = {"rain": 1, "steam": 2, "flicker": 3, "curtain": 4, "particles": 5,
           "water_reflection": 6, "figure": 7}

_TAU = 2.0 * math.pi


def _rng(seed: int, stream: str, *more: int) -> np.random.Generator:
    # SeedSequence takes any non-negative integer; fold negative seeds into that range
    return np.random.default_rng(np.random.SeedSequence([int(seed) % (1 << 64),
                                                         _STREAM[stream], *more]))


def _cycles(n: int, fps: float, period_s: float) -> int:
    """Whole cycles per loop closest to one cycle every `period_s` seconds (at least 1)."""
    return max(1, int(round(n / fps / period_s)))


def _smoothstep(e0, e1, x):
    u = np.clip((np.asarray(x, dtype=np.float32) - e0) / (e1 - e0), 0.0, 1.0)
    return u * u * (3 - 2 * u)


def _fade_window(size: int) -> np.ndarray:
    """(size, size) weights, 1 in the middle falling smoothly to 0 at the border: a
    sprite multiplied by it leaves no visible edge of its box."""
    c = (size - 1) / 2.0
    u = np.abs(np.arange(size, dtype=np.float32) - c) / max(c, 1.0)
    w = (1.0 - np.clip(u, 0, 1) ** 2) ** 2
    return np.outer(w, w).astype(np.float32)


def _clip_rect(rect, w: int, h: int):
    x0, y0, x1, y1 = (int(v) for v in rect)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return x0, y0, x1, y1


# --------------------------------------------------------------------------- the frame

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


def _stamp(fb: FrameBuffer, x0: int, y0: int, alpha: np.ndarray, color255,
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


def _shift_rows(src: np.ndarray, dx: np.ndarray) -> np.ndarray:
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


# --------------------------------------------------------------------------- motions

class Motion:
    """One animated layer. __init__ precomputes (and may add still things to the
    background); draw(fb, t) draws frame t into the frame buffer."""

    def draw(self, fb: FrameBuffer, t: int) -> None:  # pragma: no cover - interface
        raise NotImplementedError


def _is_outdoors(p) -> bool:
    """Open sky that is not seen through a window: the scene is outside."""
    if p.sky is None:
        return False
    sx0, sy0, sx1, sy1 = p.sky
    for wx0, wy0, wx1, wy1 in p.windows:
        if sx0 >= wx0 - 2 and sy0 >= wy0 - 2 and sx1 <= wx1 + 2 and sy1 <= wy1 + 2:
            return False
    return True


def _panes(p, w: int, h: int) -> list[tuple[int, int, int, int]]:
    """The window panes inside the frame, less what a curtain hangs over: rain and
    snow show on the glass, never on the fabric."""
    out = []
    for rect in p.windows:
        r = _clip_rect(rect, w, h)
        if r is None:
            continue
        x0, y0, x1, y1 = r
        for cx0, cy0, cx1, cy1 in p.curtains:
            if cx1 <= x0 or cx0 >= x1 or cy1 <= y0 or cy0 >= y1:
                continue
            if cy0 <= y0 + 2 and cy1 >= y1 - 2:        # hangs over the full height
                if cx0 <= x0:
                    x0 = max(x0, cx1)
                elif cx1 >= x1:
                    x1 = min(x1, cx0)
            elif cx0 <= x0 + 2 and cx1 >= x1 - 2:      # covers the full width
                if cy0 <= y0:
                    y0 = max(y0, cy1)
                elif cy1 >= y1:
                    y1 = min(y1, cy0)
        if x1 - x0 >= 6 and y1 - y0 >= 6:
            out.append((x0, y0, x1, y1))
    return out


def _weather_regions(p, w: int, h: int) -> list[tuple[int, int, int, int]]:
    """Where falling weather is seen: the whole frame outdoors, else the window panes."""
    if _is_outdoors(p):
        return [(0, 0, w, h)]
    return _panes(p, w, h)


def _glass(p, w: int, h: int) -> np.ndarray | None:
    """The see-through part of the windows, (h, w) 0..1, when the painting tells it
    (an optional `glass` mask): what stands in front of a pane (a plant on the sill,
    a candle) then stays dry. Outside there is no glass."""
    glass = getattr(p, "glass", None)
    if glass is None or _is_outdoors(p):
        return None
    glass = np.asarray(glass, np.float32)
    if glass.shape != (h, w):
        raise ValueError(f"painting glass mask must be ({h}, {w}), got {glass.shape}")
    return glass


def _palette(p, key: str, default) -> np.ndarray:
    return np.asarray(p.palette.get(key, default), dtype=np.float32)


class Rain(Motion):
    """Rain: thin streaks falling behind the glass (two depths of a scrolling texture,
    periodic top to bottom, that advances by whole periods per loop), drops sliding
    down each pane (slide, pause, slide: a monotone path that advances by whole pane
    heights per loop) and, outside, rings widening on the puddles."""

    def __init__(self, p, spec, seed, n, fps, static):
        h, w = static.shape[:2]
        self.n = n
        storm = spec.weather == "storm"
        rain = _palette(p, "rain", (0.75, 0.8, 0.88))
        unit = h / 720.0
        dur = n / fps
        self.layers = []        # (rect, tiled texture, period, k, height)
        regions = _weather_regions(p, w, h)
        # streaks behind the glass
        for ri, (x0, y0, x1, y1) in enumerate(regions):
            rw, rh = x1 - x0, y1 - y0
            for depth, (speed, length, dens, stren) in enumerate(
                    ((0.9, 0.085, 1.0, 0.26), (0.55, 0.05, 1.6, 0.13))):
                rng = _rng(seed, "rain", 0, ri, depth)
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
        glass = _glass(p, w, h)
        self.drops = []         # per pane: arrays
        self.sprites = {}
        for pi, r in enumerate(_panes(p, w, h)):
            x0, y0, x1, y1 = r
            rw, rh = x1 - x0, y1 - y0
            rng = _rng(seed, "rain", 1, pi)
            count = int(rw * rh / (9000.0 * unit * unit) * (1.8 if storm else 1.0)) + 2
            count = min(count, 60)
            radius = rng.uniform(2.2, 5.0, count) * max(unit, 0.4)
            k = np.maximum(1, np.round(rng.uniform(0.05, 0.12, count) * h * dur / rh)).astype(int)
            m = rng.integers(1, 4, count) * max(1, _cycles(n, fps, 5.0))
            amp = rng.uniform(0.6, 0.95, count)
            self.drops.append(dict(
                rect=r, x=rng.uniform(x0 + 3, x1 - 3, count), y0=rng.uniform(0, rh, count),
                k=k, m=m, amp=amp, phase=rng.uniform(0, _TAU, count),
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
        if _is_outdoors(p):
            light = (0.5 + 0.5 * _palette(p, "rain", (0.75, 0.8, 0.88))) * 255.0 * 0.8
            for ri, rect in enumerate(p.reflections):
                r = _clip_rect(rect, w, h)
                if r is None:
                    continue
                x0, y0, x1, y1 = r
                rng = _rng(seed, "rain", 2, ri)
                count = int(min(40, (x1 - x0) * (y1 - y0) / (1500.0 * unit * unit))) + 2
                # puddles are round: keep the rings inside the ellipse in the rect
                ang, rad = rng.uniform(0, _TAU, count), 0.8 * np.sqrt(rng.uniform(0, 1, count))
                self.ripples.append(dict(
                    rect=r, x=(x0 + x1) / 2 + rad * np.cos(ang) * (x1 - x0) / 2,
                    y=(y0 + y1) / 2 + rad * np.sin(ang) * (y1 - y0) / 2,
                    k=np.array([_cycles(n, fps, v) for v in rng.uniform(0.6, 1.4, count)]),
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
                _stamp(fb, int(x) - hw, int(y) - hh, ring * (1.0 - a) ** 2, rp["color"],
                       clip=rp["rect"], add=True)
        for (x0, y0, x1, y1), tex, period, k, rh in self.layers:
            off = int(round(k * period * s)) % period
            reg = fb.region(x0, y0, x1, y1)
            reg += tex[period - off:period - off + rh]
        for d in self.drops:
            x0, y0, x1, y1 = d["rect"]
            rh = y1 - y0
            ph = _TAU * d["m"] * s + d["phase"]
            y = (d["y0"] + rh * d["k"] * (s - d["amp"] * np.sin(ph) / (_TAU * d["m"]))) % rh
            # fade in at the top, out at the bottom, so the wrap is not seen
            fade = _smoothstep(0, 0.08 * rh, y) * _smoothstep(0, 0.08 * rh, rh - y)
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


class Steam(Motion):
    """Steam: soft wisps rising from each cup. Wisp centres are travelling sine waves
    (whole cycles per loop) swaying sideways, under a plume that tapers and fades."""

    def __init__(self, p, spec, seed, n, fps, static):
        h, w = static.shape[:2]
        self.n = n
        self.color = _palette(p, "steam", (0.92, 0.92, 0.9)) * 255.0
        self.plumes = []
        for ci, (cx, cy, scale) in enumerate(p.cups):
            rng = _rng(seed, "steam", ci)
            sc = float(scale) if scale and scale > 0 else 1.0
            ph = max(8, int(0.22 * h * sc))
            pw = max(8, int(0.09 * h * sc))
            x0 = int(round(cx - pw / 2))
            y1 = int(round(cy))
            y0 = y1 - ph
            xs = np.arange(x0, x0 + pw, dtype=np.float32)[None, :]
            u = (y1 - np.arange(y0, y1, dtype=np.float32))[:, None] / ph   # 0 at cup, 1 at top
            wisps = []
            for j in range(3):
                wisps.append(dict(
                    f=rng.uniform(0.9, 1.8),                       # curls along the plume
                    k=_cycles(n, fps, rng.uniform(2.0, 3.5)),      # rising speed
                    phase=rng.uniform(0, _TAU),
                    off=rng.uniform(-0.12, 0.12) * pw,
                    amp=rng.uniform(0.08, 0.16) * pw,
                    w=rng.uniform(0.7, 1.0)))
            self.plumes.append(dict(
                rect=(x0, y0, x0 + pw, y1), xs=xs - cx, u=u, pw=pw, wisps=wisps,
                env=(_smoothstep(0.0, 0.15, u) * (1 - u) ** 1.6).astype(np.float32),
                sigma=(pw * (0.035 + 0.09 * u)).astype(np.float32),
                sway_k=_cycles(n, fps, rng.uniform(3.0, 5.0)),
                sway_phase=rng.uniform(0, _TAU),
                puff_k=_cycles(n, fps, rng.uniform(1.5, 2.5)),
                puff_phase=rng.uniform(0, _TAU),
                strength=0.6 * min(1.0, 0.6 + 0.4 * sc)))

    def draw(self, fb, t):
        s = (t % self.n) / self.n
        for pl in self.plumes:
            u, pw = pl["u"], pl["pw"]
            sway = 0.22 * pw * u ** 1.5 * np.sin(_TAU * (pl["sway_k"] * s - 0.6 * u)
                                                  + pl["sway_phase"])
            a = np.zeros((u.shape[0], pl["xs"].shape[1]), np.float32)
            for wi in pl["wisps"]:
                c = (wi["off"] * (1 - u) + sway + wi["amp"] * (0.3 + u)
                     * np.sin(_TAU * (wi["f"] * u - wi["k"] * s) + wi["phase"]))
                a += wi["w"] * np.exp(-((pl["xs"] - c) / pl["sigma"]) ** 2)
            puffs = 0.6 + 0.4 * np.sin(_TAU * (2.2 * u - pl["puff_k"] * s) + pl["puff_phase"])
            a *= pl["env"] * puffs * pl["strength"]
            np.clip(a, 0, 0.8, out=a)
            reg = fb.region(*pl["rect"])
            if reg is None:
                continue
            x0, y0, x1, y1 = pl["rect"]
            ox, oy = max(0, -x0), max(0, -y0)
            aa = a[oy:oy + reg.shape[0], ox:ox + reg.shape[1], None]
            reg += aa * (self.color - reg)


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
        rng = _rng(seed, "flicker", 0)
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
                k = _cycles(n, fps, rng.uniform(pmin, pmax))
                harm.append((k, rng.uniform(0, _TAU), rng.uniform(0.5, 1.0)))
            norm = sum(a for _, _, a in harm)
            self.lights.append(dict(
                x=int(round(L.x)) - (size - 1) // 2, y=int(round(L.y)) - (size - 1) // 2,
                sprite=sprite, amp=amp, color=color * amp,
                harm=[(k, ph, a / norm) for k, ph, a in harm]))

    def gain(self, light, t) -> float:
        s = (t % self.n) / self.n
        return sum(a * math.sin(_TAU * k * s + ph) for k, ph, a in light["harm"])

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


class Curtain(Motion):
    """Curtain drift: columns displaced by a sine wave travelling along the fabric,
    amplitude growing toward the hem, folds catching the light as they pass."""

    def __init__(self, p, spec, seed, n, fps, static):
        h, w = static.shape[:2]
        self.n = n
        self.items = []
        for ci, rect in enumerate(p.curtains):
            r = _clip_rect(rect, w, h)
            if r is None:
                continue
            rng = _rng(seed, "curtain", ci)
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
            P = _TAU * (xs / lam + v * rng.uniform(0.2, 0.5)) + rng.uniform(0, _TAU)
            k = _cycles(n, fps, rng.uniform(3.0, 5.0))
            sk = _cycles(n, fps, rng.uniform(5.0, 8.0))
            self.items.append(dict(
                rect=(ex0, y0, ex1, y1), k=k, sk=sk, sphase=rng.uniform(0, _TAU),
                As=(A * np.sin(P)).astype(np.float32), Ac=(A * np.cos(P)).astype(np.float32),
                sway=(0.5 * A).astype(np.float32),
                shade=0.08 / amp))     # folds brighten and darken by up to 8%

    @staticmethod
    def _fabric(static, rect, ex0, ex1) -> np.ndarray:
        """Where the rect shows the curtain itself, 0..1: a pixel close to the typical
        colour of its column (folds run down the fabric). A lamp or a plant standing
        in front of the curtain differs from it and stays still."""
        from lofid.generators.canvas import blur_array
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
            q = _TAU * it["k"] * s
            cq, sq = math.cos(q), math.sin(q)
            # A sin(P - q) and its slope along x (for shading)
            dx = it["As"] * cq - it["Ac"] * sq
            slope = it["Ac"] * cq + it["As"] * sq
            dx += it["sway"] * math.sin(_TAU * it["sk"] * s + it["sphase"])
            reg = fb.region(*it["rect"])
            src = reg.copy()
            out = _shift_rows(src, dx)
            out *= (1.0 + it["shade"] * slope)[..., None]
            reg[...] = out


class WaterReflection(Motion):
    """Shimmering reflections: rows displaced sideways by small travelling waves, a
    gentle ripple of brightness and highlights that sparkle on and off."""

    def __init__(self, p, spec, seed, n, fps, static):
        h, w = static.shape[:2]
        self.n = n
        self.items = []
        hl = np.asarray(p.palette.get("warm", (1.0, 0.9, 0.7)), np.float32)
        hl = (0.5 + 0.5 * hl) * 255.0
        for ri, rect in enumerate(p.reflections):
            r = _clip_rect(rect, w, h)
            if r is None:
                continue
            rng = _rng(seed, "water_reflection", ri)
            x0, y0, x1, y1 = r
            rh, rw = y1 - y0, x1 - x0
            ys = np.arange(rh, dtype=np.float32)[:, None]
            amp = max(0.5, 0.0028 * h)
            waves = []
            for _ in range(3):
                waves.append((rng.uniform(0.04, 0.12) * h, _cycles(n, fps, rng.uniform(1.5, 4.0))
                              * rng.choice([-1, 1]), rng.uniform(0, _TAU), rng.uniform(0.5, 1.0)))
            count = int(min(60, max(3, rw * rh / (1800.0 * (h / 720.0) ** 2))))
            periods = rng.uniform(1.0, 3.0, count)
            sparks = dict(x=rng.integers(x0, x1, count), y=rng.integers(y0, y1, count),
                          k=np.array([_cycles(n, fps, v) for v in periods]),
                          ph=rng.uniform(0, _TAU, count))
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
                arg = _TAU * (ys / lam - k * s) + ph
                dx += (it["amp"] / 1.5) * a * np.sin(arg)
                bright += 0.035 * a * np.cos(arg)
            reg = fb.region(*it["rect"])
            out = _shift_rows(reg.copy(), dx)
            out *= bright[..., None]
            reg[...] = out
            sp = it["sparks"]
            level = np.maximum(0.0, np.sin(_TAU * sp["k"] * s + sp["ph"])) ** 3
            half = it["spr"].shape[0] // 2
            for x, y, lv in zip(sp["x"], sp["y"], level):
                if lv > 0.02:
                    _stamp(fb, int(x) - half, int(y) - half, it["spr"] * lv, it["color"],
                           clip=it["rect"], add=True)


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
                    _stamp(fb, ix[j] - half, iy[j] - half, dots[j], self.color,
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
            for ri, r in enumerate(_weather_regions(p, w, h)):
                self._snow(p, seed, ri, r, n, fps, unit)
        elif spec.season == "autumn":
            for ri, r in enumerate(_weather_regions(p, w, h)):
                self._leaves(p, seed, ri, r, n, fps, unit)
        self.mists = []
        if spec.weather == "fog":
            for ri, (x0, y0, x1, y1) in enumerate(_weather_regions(p, w, h)):
                if _is_outdoors(p):
                    # outside, fog lies in banks over the lower part of the view
                    y0 = y0 + int(0.3 * (y1 - y0))
                self._mist(p, seed, ri, (x0, y0, x1, y1), n, fps, h)
        air = _clip_rect(p.air, w, h) if p.air is not None else None
        if air is not None and not (_is_outdoors(p) and spec.weather == "snow"):
            self._dust(p, seed, air, n, fps, unit, dur)

    def _mist(self, p, seed, ri, rect, n, fps, h):
        """Fog: two soft noise layers swaying slowly sideways in opposite directions
        and crossfading into each other, once or more per loop."""
        from lofid.generators.canvas import blur_array, noise, resize
        x0, y0, x1, y1 = rect
        rw, rh = x1 - x0, y1 - y0
        rng = _rng(seed, "particles", 4, ri)
        sway = max(2, int(0.04 * h))
        v = np.linspace(0, 1, rh, dtype=np.float32)[:, None]
        # denser low down, where fog settles; outside, a bank fading in from nothing
        prof = np.sqrt(v) if _is_outdoors(p) else 0.3 + 0.7 * v
        layers = []
        # made at quarter size and blurred: soft banks of fog, no grid of noise cells
        qw, qh = max(2, (rw + 2 * sway) // 4), max(2, rh // 4)
        for _ in range(2):
            q = (0.65 * noise(rng, qw, qh, max(2.0, 0.06 * h))
                 + 0.35 * noise(rng, qw, qh, max(1.5, 0.02 * h)))
            tex = resize(blur_array(q, max(1.0, 0.006 * h)), rw + 2 * sway, rh)
            layers.append((_smoothstep(0.25, 0.85, tex) * prof).astype(np.float32))
        col = np.clip(0.35 + 0.65 * _palette(p, "rain", (0.8, 0.82, 0.86)), 0, 1) * 255.0
        self.mists.append(dict(rect=rect, layers=layers, sway=sway, color=col, strength=0.38,
                               k=_cycles(n, fps, 12.0), phase=rng.uniform(0, _TAU),
                               buffers=(np.empty((rh, rw), np.float32),
                                        np.empty((rh, rw), np.float32),
                                        np.empty((rh, rw, 3), np.float32))))

    def _snow(self, p, seed, ri, rect, n, fps, unit):
        x0, y0, x1, y1 = rect
        rw, rh = x1 - x0, y1 - y0
        dur = n / fps
        rng = _rng(seed, "particles", 1, ri)
        count = int(min(400, rw * rh / (2600.0 * unit * unit))) + 3
        depth = rng.uniform(0, 1, count)                     # 1 = near
        radius = (1.0 + 2.2 * depth ** 2) * max(unit, 0.6)
        speed = (0.03 + 0.06 * depth) * 720 * unit            # px per second
        k = np.maximum(1, np.round(speed * dur / rh)).astype(int)
        sx = np.array([_cycles(n, fps, v) for v in rng.uniform(2.5, 6.0, count)])
        sa = rng.uniform(3, 10, count) * unit * (0.5 + depth)
        sa = np.minimum(sa, 0.02 * 720 * unit * dur / (_TAU * sx) * 3)
        bx, by = rng.uniform(x0, x1, count), rng.uniform(0, rh, count)
        ph = rng.uniform(0, _TAU, count)
        alpha = (0.45 + 0.5 * depth).astype(np.float32)
        col = _palette(p, "snow", (0.96, 0.97, 1.0)) * 255.0
        self.clouds.append(_Cloud(
            rect, lambda s: bx + sa * np.sin(_TAU * sx * s + ph),
            lambda s: y0 + (by + rh * k * s) % rh, radius, lambda s: alpha, col, add=False))

    def _dust(self, p, seed, rect, n, fps, unit, dur):
        x0, y0, x1, y1 = rect
        rw, rh = x1 - x0, y1 - y0
        rng = _rng(seed, "particles", 2)
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
        kx = np.array([_cycles(n, fps, v) for v in rng.uniform(6, 14, count)])
        ky = np.array([_cycles(n, fps, v) for v in rng.uniform(5, 12, count)])
        vmax = 0.025 * 720 * unit      # px per second
        ax = np.minimum(rng.uniform(0.02, 0.06, count) * rh, vmax * dur / (_TAU * kx))
        ay = np.minimum(rng.uniform(0.02, 0.05, count) * rh, vmax * dur / (_TAU * ky))
        px, py = rng.uniform(0, _TAU, count), rng.uniform(0, _TAU, count)
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
        kt = np.array([_cycles(n, fps, v) for v in rng.uniform(2.0, 5.0, count)])
        pt = rng.uniform(0, _TAU, count)
        col = _palette(p, "dust", (1.0, 0.92, 0.75)) * 255.0 * 0.7
        self.clouds.append(_Cloud(
            rect, lambda s: bx + ax * np.sin(_TAU * kx * s + px),
            lambda s: by + ay * np.sin(_TAU * ky * s + py), radius,
            lambda s: lit * (0.55 + 0.45 * np.sin(_TAU * kt * s + pt)), col, add=True))

    def _leaves(self, p, seed, ri, rect, n, fps, unit):
        x0, y0, x1, y1 = rect
        rw, rh = x1 - x0, y1 - y0
        dur = n / fps
        rng = _rng(seed, "particles", 3, ri)
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
            sk=np.array([_cycles(n, fps, v) for v in rng.uniform(2.0, 4.0, count)]),
            sa=rng.uniform(0.02, 0.05, count) * rh, ph=rng.uniform(0, _TAU, count),
            spin=rng.integers(1, 3, count) * rng.choice([-1, 1], count) * _cycles(n, fps, 3.0),
            spin_ph=rng.integers(0, 12, count),
            col=palette[rng.integers(0, len(palette), count)], sprites=sprites, size=size))

    def draw_behind(self, fb, t):
        """Mist, snow and leaves: outside, behind the glass."""
        s = (t % self.n) / self.n
        for m in self.mists:
            q = _TAU * m["k"] * s + m["phase"]
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
            x = lv["x"] + lv["sa"] * np.sin(_TAU * lv["sk"] * s + lv["ph"])
            y = lv["rect"][1] + (lv["y"] + lv["rh"] * lv["k"] * s) % lv["rh"]
            # 12 sprites cover half a turn; a whole number of half turns per loop
            a = (lv["spin_ph"] + np.floor(lv["spin"] * s * 12)).astype(int) % 12
            half = lv["size"] // 2
            for j in range(len(x)):
                _stamp(fb, int(round(x[j])) - half, int(round(y[j])) - half,
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


class Figure(Motion):
    """The person: composited every frame, the torso scaled gently around the chest
    (breathing: shoulders and head rise, the chest widens) and the hair displaced
    sideways, most at the tips (hair sway).

    The warp is split for speed: a per-row vertical resample (breathing), then a
    horizontal resample only of the rows that move sideways (chest band, hair)."""

    def __init__(self, p, spec, seed, n, fps, static, breathing: bool, hair: bool):
        self.n = n
        f = p.figure
        rng = _rng(seed, "figure")
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
        self.b_k = _cycles(n, fps, 4.0)
        self.b_ph = rng.uniform(0, _TAU)
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
            from lofid.generators.canvas import blur_array
            soft = blur_array(hm, max(1.5, 0.01 * fh))
            self.hfield = (soft * (0.25 + 0.75 * grow)).astype(np.float32)
            self.h_top, self.h_len = float(top), float(max(tip - top, 1))
        else:
            self.h_on = False
        self.h_amp = max(1.0, 0.012 * fh)
        self.h_k = _cycles(n, fps, 3.5)
        self.h_ph = rng.uniform(0, _TAU)
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
        b = math.sin(_TAU * self.b_k * s + self.b_ph) if self.b_on else 0.0
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
                wave = np.sin(_TAU * self.h_k * s + self.h_ph
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


# --------------------------------------------------------------------------- animator

class _BehindGlass:
    """Keeps what was drawn so far (weather seen through the windows) to the glass:
    each drawn region goes back toward the still picture where the mask is 0."""

    def __init__(self, glass: np.ndarray):
        self.glass = glass[..., None]

    def draw(self, fb, t):
        for x0, y0, x1, y1 in fb.regions():
            reg = fb.work[y0:y1, x0:x1]
            bg = fb.bg[y0:y1, x0:x1]
            reg -= bg
            reg *= self.glass[y0:y1, x0:x1]
            reg += bg


class Animator:
    """Frames of one loop: a painting with the spec's motions over it.

    render_frame(t) is periodic in n_frames for every t (render_frame(n) equals
    render_frame(0)); `start` rotates the loop so that its wrap falls on a calm step."""

    def __init__(self, painting, spec, seed: int, n_frames: int, fps: float):
        if int(n_frames) != n_frames or n_frames < 2:
            raise ValueError(f"frames must be an integer >= 2, got {n_frames!r}")
        if not fps or fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps!r}")
        self.n = int(n_frames)
        self.fps = float(fps)
        static = np.asarray(painting.background, np.float32) * 255.0
        self.h, self.w = static.shape[:2]
        motions = set(spec.motions)
        # back to front: outside and the glass, the room, the air
        make = []
        parts = None
        if "particles" in motions:
            parts = Particles(painting, spec, seed, self.n, self.fps, static)
            make.append(parts.draw_behind)
        if "rain" in motions:
            make.append(Rain(painting, spec, seed, self.n, self.fps, static).draw)
        glass = _glass(painting, self.w, self.h)
        if glass is not None and make:
            make.append(_BehindGlass(glass).draw)
        if "curtain" in motions and painting.curtains:
            make.append(Curtain(painting, spec, seed, self.n, self.fps, static).draw)
        if "water_reflection" in motions and painting.reflections:
            make.append(WaterReflection(painting, spec, seed, self.n, self.fps, static).draw)
        if painting.figure is not None:
            # composited into the still picture unless it breathes or its hair sways
            fig = Figure(painting, spec, seed, self.n, self.fps, static,
                         breathing="breathing" in motions, hair="hair_sway" in motions)
            if fig.b_on or fig.h_on:
                make.append(fig.draw)
        if "steam" in motions and painting.cups:
            make.append(Steam(painting, spec, seed, self.n, self.fps, static).draw)
        if "flicker" in motions and painting.lights:
            make.append(Flicker(painting, spec, seed, self.n, self.fps, static).draw)
        if parts is not None:
            make.append(parts.draw_front)
        self.layers: list[Callable] = make
        # +0.5 once here, so that every conversion to uint8 can truncate (= round)
        static += 0.5
        self.background = static
        self.base = np.clip(static, 0, 255).astype(np.uint8)
        self.fb = FrameBuffer(static)
        self.start = 0

    def _raw(self, t: int, out: np.ndarray) -> np.ndarray:
        out[...] = self.base
        t = t % self.n
        for layer in self.layers:
            layer(self.fb, t)
        self.fb.finish(out)
        return out

    def render_frame(self, t: int, out: np.ndarray | None = None) -> np.ndarray:
        """Frame t of the loop (uint8 (H, W, 3)); periodic: t and t + n give the same."""
        if out is None:
            out = np.empty((self.h, self.w, 3), np.uint8)
        return self._raw(t + self.start, out)

    def render(self, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """All n frames, rotated so the step from the last frame to the first is the
        calmest step of the loop (any rotation of a periodic loop is the same loop)."""
        frames = np.empty((self.n, self.h, self.w, 3), np.uint8)
        for t in range(self.n):
            self._raw(t, frames[t])
            if progress is not None:
                progress(t + 1, self.n)
        if not self.layers:
            return frames
        steps = _steps(frames)
        # steps[i] is frame i -> i+1 (cyclic); start after the calmest one
        calm = int(np.argmin(steps))
        self.start = (calm + 1) % self.n
        _rotate(frames, self.start)
        return frames


def _rotate(frames: np.ndarray, r: int) -> None:
    """In place: frames[i] becomes frames[(i + r) % n] (one frame of extra memory)."""
    n = len(frames)
    r %= n
    if r == 0:
        return
    tmp = np.empty_like(frames[0])
    for start in range(math.gcd(n, r)):
        tmp[...] = frames[start]
        i = start
        while True:
            j = (i + r) % n
            if j == start:
                break
            frames[i] = frames[j]
            i = j
        frames[i] = tmp


def _steps(frames: np.ndarray) -> np.ndarray:
    """Mean abs difference of each frame to the next (the last to the first), on a
    subsampled grid (enough to find the calmest step)."""
    n, h, w = frames.shape[:3]
    sy, sx = max(1, h // 120), max(1, w // 160)
    sub = frames[:, ::sy, ::sx].astype(np.int16)
    nxt = np.roll(sub, -1, axis=0)
    return np.abs(nxt - sub).mean(axis=(1, 2, 3))

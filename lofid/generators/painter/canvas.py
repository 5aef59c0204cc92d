"""Drawing primitives for the procedural painter.

Images are float32 arrays (H, W, 3) with values 0..1, or (H, W, 4) layers with
premultiplied alpha (so laying a shape over a layer is one blend, no division;
`unpremultiply` gives straight alpha). Every shape is drawn from a signed distance (negative inside)
evaluated only inside the shape's bounding box, so a small shape costs a small
amount of work whatever the size of the picture. The edge ramp is `soft` pixels
wide: 1 gives a crisp anti-aliased edge, larger values a feathered one.

A colour argument is either an RGB triple, or a "paint": a callable
paint(xs, ys) -> (h, w, 3) evaluated at pixel centres (xs a row, ys a column),
which is how gradients fill shapes.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

Color = Sequence[float]
Paint = Callable[[np.ndarray, np.ndarray], np.ndarray]


# ---------------------------------------------------------------- colours

def rgb(hexstr: str) -> tuple[float, float, float]:
    """'#rrggbb' -> (r, g, b) in 0..1."""
    h = hexstr.lstrip("#")
    if len(h) != 6:
        raise ValueError(f"colour {hexstr!r} is not of the form '#rrggbb'")
    return tuple(int(h[i:i + 2], 16) / 255.0 for i in (0, 2, 4))


def mix(a: Color, b: Color, t: float) -> tuple[float, float, float]:
    """Linear blend of two colours, t=0 -> a, t=1 -> b."""
    return tuple(float(x + (y - x) * t) for x, y in zip(a, b))


def scale(c: Color, k: float) -> tuple[float, float, float]:
    return tuple(float(min(max(x * k, 0.0), 1.0)) for x in c)


def saturate(c: Color, k: float) -> tuple[float, float, float]:
    """Scale the saturation of a colour by k (0 -> grey)."""
    g = 0.3 * c[0] + 0.59 * c[1] + 0.11 * c[2]
    return tuple(float(min(max(g + (x - g) * k, 0.0), 1.0)) for x in c)


# ---------------------------------------------------------------- regions

def region(img: np.ndarray, x0: float, y0: float, x1: float, y1: float):
    """Pixel slices and pixel-centre coordinates of a box, clipped to the image.

    Returns None when the box lies outside the picture."""
    h, w = img.shape[:2]
    ix0 = max(int(np.floor(x0)), 0)
    iy0 = max(int(np.floor(y0)), 0)
    ix1 = min(int(np.ceil(x1)), w)
    iy1 = min(int(np.ceil(y1)), h)
    if ix0 >= ix1 or iy0 >= iy1:
        return None
    xs = np.arange(ix0, ix1, dtype=np.float32)[None, :] + 0.5
    ys = np.arange(iy0, iy1, dtype=np.float32)[:, None] + 0.5
    return (slice(iy0, iy1), slice(ix0, ix1)), xs, ys


def _color_array(color, xs, ys) -> np.ndarray:
    if callable(color):
        return np.asarray(color(xs, ys), dtype=np.float32)
    c = np.asarray(color, dtype=np.float32)
    if c.shape != (3,):
        raise ValueError(f"colour {color!r} is neither an RGB triple nor a paint")
    return c


def put(img: np.ndarray, sl, cov: np.ndarray, color, xs, ys, mode: str = "over") -> None:
    """Lay `color` over img[sl] with coverage `cov` (h, w) in 0..1."""
    cov = cov.astype(np.float32, copy=False)
    c = _color_array(color, xs, ys)
    dst = img[sl]
    if mode == "add":
        dst[..., :3] += cov[..., None] * c
        np.minimum(dst[..., :3], 1.0, out=dst[..., :3])
        return
    if mode == "sum":  # add without clamping: for light maps, which may exceed 1
        dst[..., :3] += cov[..., None] * c
        return
    if mode == "screen":
        dst[..., :3] = 1.0 - (1.0 - dst[..., :3]) * (1.0 - cov[..., None] * c)
        return
    if mode == "multiply":
        dst[..., :3] *= 1.0 - cov[..., None] * (1.0 - c)
        return
    if mode == "erase":  # cut a hole in a layer
        if img.shape[2] == 4:
            dst *= (1.0 - cov)[..., None]
        return
    if mode != "over":
        raise ValueError(f"blend mode {mode!r} unknown: expected over, add, sum, screen, multiply or erase")
    if img.shape[2] == 3:
        dst += cov[..., None] * (c - dst)
        return
    # premultiplied "over" for layers: the source is (c, 1), so one lerp on all channels
    dst[..., :3] += cov[..., None] * (c - dst[..., :3])
    dst[..., 3] += cov * (1.0 - dst[..., 3])


def _cover(d: np.ndarray, soft: float) -> np.ndarray:
    return np.clip(0.5 - d / max(soft, 1e-3), 0.0, 1.0)


# ---------------------------------------------------------------- shapes

def rect(img, x0, y0, x1, y1, color, radius: float = 0.0, soft: float = 1.0,
         alpha: float = 1.0, mode: str = "over") -> None:
    """Filled (rounded) rectangle."""
    if x1 <= x0 or y1 <= y0:
        return
    pad = soft
    reg = region(img, x0 - pad, y0 - pad, x1 + pad, y1 + pad)
    if reg is None:
        return
    sl, xs, ys = reg
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    hx, hy = (x1 - x0) / 2, (y1 - y0) / 2
    r = min(radius, hx, hy)
    qx = np.abs(xs - cx) - (hx - r)
    qy = np.abs(ys - cy) - (hy - r)
    ox = np.maximum(qx, 0.0)
    oy = np.maximum(qy, 0.0)
    d = np.sqrt(ox * ox + oy * oy) + np.minimum(np.maximum(qx, qy), 0.0) - r
    put(img, sl, _cover(d, soft) * alpha, color, xs, ys, mode)


def ellipse(img, cx, cy, rx, ry, color, angle: float = 0.0, soft: float = 1.0,
            alpha: float = 1.0, mode: str = "over") -> None:
    """Filled ellipse, optionally rotated by `angle` radians."""
    if rx <= 0 or ry <= 0:
        return
    ext = max(rx, ry) + soft
    reg = region(img, cx - ext, cy - ext, cx + ext, cy + ext)
    if reg is None:
        return
    sl, xs, ys = reg
    dx, dy = xs - cx, ys - cy
    if angle:
        ca, sa = np.cos(angle), np.sin(angle)
        dx, dy = dx * ca + dy * sa, -dx * sa + dy * ca
    # first-order distance to an ellipse: (k - 1) k / |grad|
    px, py = dx / rx, dy / ry
    k = np.sqrt(px * px + py * py)
    gx, gy = dx / (rx * rx), dy / (ry * ry)
    g = np.sqrt(gx * gx + gy * gy) + 1e-6
    d = (k - 1.0) * k / g
    put(img, sl, _cover(d, soft) * alpha, color, xs, ys, mode)


def circle(img, cx, cy, r, color, soft: float = 1.0, alpha: float = 1.0, mode: str = "over") -> None:
    ellipse(img, cx, cy, r, r, color, soft=soft, alpha=alpha, mode=mode)


def _segments_distance(xs, ys, pts: np.ndarray) -> np.ndarray:
    d2 = None
    for (ax, ay), (bx, by) in zip(pts[:-1], pts[1:]):
        ex, ey = bx - ax, by - ay
        ll = ex * ex + ey * ey
        wx, wy = xs - ax, ys - ay
        t = np.clip((wx * ex + wy * ey) / ll, 0.0, 1.0) if ll > 0 else 0.0
        qx, qy = wx - ex * t, wy - ey * t
        dd = qx * qx + qy * qy
        d2 = dd if d2 is None else np.minimum(d2, dd)
    return np.sqrt(d2)


def polygon(img, pts, color, soft: float = 1.0, alpha: float = 1.0, mode: str = "over") -> None:
    """Filled polygon (even-odd rule); pts is a sequence of (x, y)."""
    p = np.asarray(pts, dtype=np.float32)
    if p.ndim != 2 or p.shape[0] < 3 or p.shape[1] != 2:
        raise ValueError(f"polygon needs at least 3 (x, y) points, got shape {p.shape}")
    reg = region(img, p[:, 0].min() - soft, p[:, 1].min() - soft,
                  p[:, 0].max() + soft, p[:, 1].max() + soft)
    if reg is None:
        return
    sl, xs, ys = reg
    closed = np.vstack([p, p[:1]])
    dist = _segments_distance(xs, ys, closed)
    inside = np.zeros(dist.shape, dtype=bool)
    for (ax, ay), (bx, by) in zip(closed[:-1], closed[1:]):
        if ay == by:
            continue
        crosses = (ys >= min(ay, by)) & (ys < max(ay, by))
        xint = ax + (ys - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (xs < xint)
    d = np.where(inside, -dist, dist)
    put(img, sl, _cover(d, soft) * alpha, color, xs, ys, mode)


def line(img, pts, width: float, color, soft: float = 1.0, alpha: float = 1.0,
         mode: str = "over") -> None:
    """Stroked polyline with round caps and joins; pts is a sequence of (x, y)."""
    p = np.asarray(pts, dtype=np.float32)
    if p.ndim != 2 or p.shape[0] < 2:
        raise ValueError(f"line needs at least 2 (x, y) points, got shape {p.shape}")
    ext = width / 2 + soft
    reg = region(img, p[:, 0].min() - ext, p[:, 1].min() - ext,
                  p[:, 0].max() + ext, p[:, 1].max() + ext)
    if reg is None:
        return
    sl, xs, ys = reg
    d = _segments_distance(xs, ys, p) - width / 2
    put(img, sl, _cover(d, soft) * alpha, color, xs, ys, mode)


def glow(img, cx, cy, radius, color, strength: float = 1.0, mode: str = "add") -> None:
    """Soft round light: (1 - r^2/R^2)^3 falloff, zero at `radius` (no hard rim)."""
    if radius <= 0 or strength <= 0:
        return
    reg = region(img, cx - radius, cy - radius, cx + radius, cy + radius)
    if reg is None:
        return
    sl, xs, ys = reg
    q = ((xs - cx) ** 2 + (ys - cy) ** 2) / (radius * radius)
    f = np.clip(1.0 - q, 0.0, 1.0) ** 3 * strength
    put(img, sl, f, color, xs, ys, mode)


def fill(img, x0, y0, x1, y1, color, alpha: float = 1.0, mode: str = "over") -> None:
    """Axis-aligned box without edge smoothing (for backgrounds, bands)."""
    reg = region(img, x0, y0, x1, y1)
    if reg is None:
        return
    sl, xs, ys = reg
    if mode == "over" and alpha >= 1.0:   # opaque: plain assignment
        dst = img[sl]
        dst[..., :3] = _color_array(color, xs, ys)
        if img.shape[2] == 4:
            dst[..., 3] = 1.0
        return
    cov = np.full((ys.shape[0], xs.shape[1]), alpha, dtype=np.float32)
    put(img, sl, cov, color, xs, ys, mode)


def shade(img, x0, y0, x1, y1, coverage: Callable[[np.ndarray, np.ndarray], np.ndarray],
          color, mode: str = "over") -> None:
    """Lay `color` over a box with a coverage computed from pixel centres."""
    reg = region(img, x0, y0, x1, y1)
    if reg is None:
        return
    sl, xs, ys = reg
    cov = np.clip(np.broadcast_to(coverage(xs, ys), (ys.shape[0], xs.shape[1])), 0.0, 1.0)
    put(img, sl, cov, color, xs, ys, mode)


# ---------------------------------------------------------------- paints

def gradient(x0, y0, x1, y1, stops) -> Paint:
    """Linear gradient from (x0, y0) (t=0) to (x1, y1) (t=1).

    `stops` is a list of (t, colour) with t increasing, or a list of colours spread
    evenly."""
    if len(stops[0]) == 3:  # bare colours, spread evenly
        n = len(stops)
        stops = [(i / max(n - 1, 1), c) for i, c in enumerate(stops)]
    ts = np.array([s[0] for s in stops], dtype=np.float32)
    cs = np.array([s[1] for s in stops], dtype=np.float32)
    ex, ey = x1 - x0, y1 - y0
    ll = max(ex * ex + ey * ey, 1e-6)

    def paint(xs, ys):
        t = ((xs - x0) * ex + (ys - y0) * ey) / ll
        t = np.broadcast_to(t, (ys.shape[0], xs.shape[1]))
        out = np.empty(t.shape + (3,), dtype=np.float32)
        for ch in range(3):
            out[..., ch] = np.interp(t, ts, cs[:, ch])
        return out

    return paint


def vgradient(y0, y1, stops) -> Paint:
    """Vertical gradient, evaluated per row (cheap), top colour at y0."""
    grad = gradient(0, y0, 0, y1, stops)

    def paint(xs, ys):
        col = grad(xs[:, :1], ys)  # (h, 1, 3)
        return np.broadcast_to(col, (ys.shape[0], xs.shape[1], 3))

    return paint


def radial(cx, cy, r, stops) -> Paint:
    """Radial gradient: stops from the centre (t=0) to radius r (t=1)."""
    if len(stops[0]) == 3:  # bare colours, spread evenly
        n = len(stops)
        stops = [(i / max(n - 1, 1), c) for i, c in enumerate(stops)]
    ts = np.array([s[0] for s in stops], dtype=np.float32)
    cs = np.array([s[1] for s in stops], dtype=np.float32)

    def paint(xs, ys):
        t = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2) / max(r, 1e-6)
        out = np.empty(t.shape + (3,), dtype=np.float32)
        for ch in range(3):
            out[..., ch] = np.interp(t, ts, cs[:, ch])
        return out

    return paint


# ---------------------------------------------------------------- filters

def _box_blur_axis(a: np.ndarray, r: int, axis: int) -> np.ndarray:
    """Mean over a window of 2r+1 along `axis`, edges clamped (cumsum, O(n))."""
    n = a.shape[axis]
    pad = [(0, 0)] * a.ndim
    pad[axis] = (r + 1, r)
    p = np.pad(a, pad, mode="edge")
    c = np.cumsum(p, axis=axis, dtype=np.float32)
    hi = np.take(c, np.arange(2 * r + 1, 2 * r + 1 + n), axis=axis)
    lo = np.take(c, np.arange(0, n), axis=axis)
    return (hi - lo) / (2 * r + 1)


def blur_array(a: np.ndarray, radius: float, passes: int = 3) -> np.ndarray:
    """Gaussian-like blur of a whole (small) array: repeated box filters."""
    r = int(round(radius / np.sqrt(passes)))
    if r < 1:
        return a.copy()
    out = a.astype(np.float32, copy=True)
    for _ in range(passes):
        out = _box_blur_axis(out, r, 0)
        out = _box_blur_axis(out, r, 1)
    return out


def blur(img, x0, y0, x1, y1, radius: float, passes: int = 3) -> None:
    """Blur a box of the image in place. Large radii are done at reduced resolution."""
    reg = region(img, x0, y0, x1, y1)
    if reg is None or radius <= 0:
        return
    sl, _, _ = reg
    sub = img[sl]
    h, w = sub.shape[:2]
    k = int(max(1, radius // 6))
    if k > 1 and h >= 4 * k and w >= 4 * k:
        small = resize(sub, max(w // k, 2), max(h // k, 2))
        small = blur_array(small, radius / k, passes)
        img[sl] = resize(small, w, h)
    else:
        img[sl] = blur_array(sub, radius, passes)


def resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
    """Bilinear resize of an (h, w, c) or (h, w) array to (h, w); area-averages when shrinking much."""
    ih, iw = a.shape[:2]
    if (ih, iw) == (h, w):
        return a.astype(np.float32, copy=True)
    # shrink by an integer factor first so bilinear sampling does not alias
    fy, fx = ih // h, iw // w
    if fy >= 2 or fx >= 2:
        fy, fx = max(fy, 1), max(fx, 1)
        ch, cw = (ih // fy) * fy, (iw // fx) * fx
        a = a[:ch, :cw].reshape((ch // fy, fy, cw // fx, fx) + a.shape[2:]).mean(axis=(1, 3))
        ih, iw = a.shape[:2]
    ys = (np.arange(h, dtype=np.float32) + 0.5) * ih / h - 0.5
    xs = (np.arange(w, dtype=np.float32) + 0.5) * iw / w - 0.5
    y0 = np.clip(np.floor(ys).astype(int), 0, ih - 1)
    x0 = np.clip(np.floor(xs).astype(int), 0, iw - 1)
    y1 = np.minimum(y0 + 1, ih - 1)
    x1 = np.minimum(x0 + 1, iw - 1)
    ty = np.clip(ys - y0, 0.0, 1.0).astype(np.float32)
    tx = np.clip(xs - x0, 0.0, 1.0).astype(np.float32)
    a = a.astype(np.float32, copy=False)
    extra = (None,) * (a.ndim - 2)
    ty = ty[(slice(None), None) + extra]
    tx = tx[(None, slice(None)) + extra]
    # separable: rows first (on the narrow input), then columns
    rows = a[y0] * (1 - ty) + a[y1] * ty
    return rows[:, x0] * (1 - tx) + rows[:, x1] * tx


def noise(rng: np.random.Generator, w: int, h: int, cell: float, stretch: float = 1.0) -> np.ndarray:
    """Smooth value noise (h, w) in 0..1 with features about `cell` pixels tall and
    `cell * stretch` wide."""
    cw, ch = max(cell * stretch, 1.0), max(cell, 1.0)
    gw = max(int(w / cw) + 3, 2)
    gh = max(int(h / ch) + 3, 2)
    grid = rng.random((gh, gw), dtype=np.float32)
    big = resize(grid, int(gw * cw), int(gh * ch))
    n = big[int(ch):int(ch) + h, int(cw):int(cw) + w]
    # smoothstep removes the bilinear creases
    return n * n * (3 - 2 * n)


def composite(img: np.ndarray, layer: np.ndarray, x: int, y: int, alpha: float = 1.0,
              premultiplied: bool = True) -> None:
    """Lay an RGBA layer over img (RGB, or RGBA premultiplied) with its top-left at (x, y)."""
    h, w = layer.shape[:2]
    H, W = img.shape[:2]
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, W), min(y + h, H)
    if x0 >= x1 or y0 >= y1:
        return
    src = layer[y0 - y:y1 - y, x0 - x:x1 - x]
    a = src[..., 3:4] * alpha
    rgb_ = src[..., :3] * alpha if premultiplied else src[..., :3] * a
    dst = img[y0:y1, x0:x1]
    if img.shape[2] == 4:
        dst[..., :3] = rgb_ + dst[..., :3] * (1.0 - a)
        dst[..., 3:4] = a + dst[..., 3:4] * (1.0 - a)
    else:
        dst[...] = rgb_ + dst * (1.0 - a)


def unpremultiply(layer: np.ndarray) -> np.ndarray:
    """Premultiplied RGBA -> straight-alpha RGBA (colour kept where alpha is 0)."""
    out = layer.copy()
    a = layer[..., 3:4]
    np.divide(layer[..., :3], a, out=out[..., :3], where=a > 1e-4)
    np.clip(out, 0.0, 1.0, out=out)
    return out

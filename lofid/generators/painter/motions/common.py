"""What every motion shares: its own random stream, whole cycles per loop, the
Motion interface and small helpers.

Every motion is a function of the loop phase t/N only, built from whole numbers of
cycles per loop (positions that advance by whole multiples of their region, sines
with integer frequencies), so frame N equals frame 0 and the loop is seamless by
construction. Motions are made of many elements with random phases, so the motion is
about as strong at every step of the loop, the wrap step included."""

from __future__ import annotations

import math

import numpy as np

from .frame import FrameBuffer


# Stable numbers that separate the random streams of the motions (never hash()).
_STREAM = {"rain": 1, "steam": 2, "flicker": 3, "curtain": 4, "particles": 5,
           "water_reflection": 6, "figure": 7}

TAU = 2.0 * math.pi


def motion_rng(seed: int, stream: str, *more: int) -> np.random.Generator:
    # SeedSequence takes any non-negative integer; fold negative seeds into that range
    return np.random.default_rng(np.random.SeedSequence([int(seed) % (1 << 64),
                                                         _STREAM[stream], *more]))


def cycles(n: int, fps: float, period_s: float) -> int:
    """Whole cycles per loop closest to one cycle every `period_s` seconds (at least 1)."""
    return max(1, int(round(n / fps / period_s)))


def smoothstep(e0, e1, x):
    """0 below e0, 1 above e1, a smooth cubic between (float32)."""
    u = np.clip((np.asarray(x, dtype=np.float32) - e0) / (e1 - e0), 0.0, 1.0)
    return u * u * (3 - 2 * u)


def clip_rect(rect, w: int, h: int):
    """`rect` as integers inside a (w, h) frame; None when less than 2 pixels remain."""
    x0, y0, x1, y1 = (int(v) for v in rect)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return x0, y0, x1, y1


def regions(rects, w: int, h: int, seed: int, stream: str):
    """(index, clipped rect, its own rng) for each of `rects` that shows in the frame;
    the rng is the index's, so a region keeps its look when another one is off-frame."""
    for i, rect in enumerate(rects):
        r = clip_rect(rect, w, h)
        if r is not None:
            yield i, r, motion_rng(seed, stream, i)


def palette_color(p, key: str, default) -> np.ndarray:
    """The painting's colour for `key` (its palette: what rain, snow, dust... look
    like in this picture's light), 0..1 float32; `default` when it has none."""
    return np.asarray(p.palette.get(key, default), dtype=np.float32)


class Motion:
    """One animated layer. __init__ precomputes (and may add still things to the
    background); draw(fb, t) draws frame t into the frame buffer."""

    def draw(self, fb: FrameBuffer, t: int) -> None:  # pragma: no cover - interface
        raise NotImplementedError

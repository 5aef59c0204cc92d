"""The animator: a painting with the spec's motions over it, frame by frame.

`Animator(painting, spec, seed, n_frames, fps)` builds the motions the spec asks for;
`render_frame(t)` draws frame t (any integer; periodic in N), `render()` all N."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .motions.curtain import Curtain
from .motions.figure import FigureMotion
from .motions.flicker import Flicker
from .motions.frame import FrameBuffer
from .motions.particles import Particles
from .motions.rain import Rain
from .motions.regions import weather_glass
from .motions.steam import Steam
from .motions.water_reflection import WaterReflection

from lofid.errors import BadArgument


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
            raise BadArgument(f"frames must be an integer >= 2, got {n_frames!r}")
        if not fps or fps <= 0:
            raise BadArgument(f"fps must be > 0, got {fps!r}")
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
        glass = weather_glass(painting, self.w, self.h)
        if glass is not None and make:
            make.append(_BehindGlass(glass).draw)
        if "curtain" in motions and painting.curtains:
            make.append(Curtain(painting, spec, seed, self.n, self.fps, static).draw)
        if "water_reflection" in motions and painting.reflections:
            make.append(WaterReflection(painting, spec, seed, self.n, self.fps, static).draw)
        if painting.figure is not None:
            # composited into the still picture unless it breathes or its hair sways
            fig = FigureMotion(painting, spec, seed, self.n, self.fps, static,
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

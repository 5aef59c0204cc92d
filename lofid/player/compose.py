"""The player's pictures: pure functions on arrays, no threads, no clock.

Fitting a source frame to the output size ("crop" or "blur"), converting a loop's
own fps to the output's (repeat or blend), and mixing two loops in a crossfade.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Callable

import numpy as np

from lofid.encode import YuvConverter, scaled_yuv
from lofid.overlays.board import draw_on_rgb, draw_on_yuv

# Blend weights are integers out of 256, so blending stays in uint16 arithmetic.
ONE = 256

# The blurred backdrop is made from a copy this many times smaller than the output,
# softened and scaled back up: a wide blur for almost no work.
_BACKDROP_SHRINK = 24
_BACKDROP_BRIGHTNESS = 0.55


def scale(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`image` resized to width x height with swscale."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    import av

    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    interpolation = "AREA" if width * height < w * h else "BICUBIC"
    # swscale writes planar RGB about twice as fast as packed RGB; to_ndarray
    # interleaves the planes back into (H, W, 3).
    out = frame.reformat(width=width, height=height, format="gbrp",
                         interpolation=interpolation).to_ndarray()
    return out if out.flags.writeable else out.copy()


def blend(a: np.ndarray, b: np.ndarray, weight: int) -> np.ndarray:
    """(1 - weight/256) * a + weight/256 * b, rounded, in uint16 (no float copies)."""
    out = a.astype(np.uint16)
    out *= ONE - weight
    out += b.astype(np.uint16) * np.uint16(weight)
    out += ONE // 2
    out >>= 8
    return out.astype(np.uint8)


def _soften(image: np.ndarray, passes: int = 3) -> np.ndarray:
    """A small image blurred with a 1-4-6-4-1 kernel, `passes` times, as float32."""
    out = image.astype(np.float32)
    kernel = np.array([1, 4, 6, 4, 1], np.float32) / 16
    for _ in range(passes):
        for axis in (0, 1):
            padded = np.pad(out, [(2, 2) if a == axis else (0, 0) for a in range(3)],
                            mode="edge")
            n = out.shape[axis]
            out = sum(kernel[i] * padded.take(range(i, i + n), axis=axis) for i in range(5))
    return out


def _cover_box(w: int, h: int, width: int, height: int) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the largest centred part of a w x h picture with the output's shape."""
    if w * height > width * h:                 # the source is wider: cut its sides
        cw, ch = max(1, min(w, round(h * width / height))), h
    else:                                      # taller: cut top and bottom
        cw, ch = w, max(1, min(h, round(w * height / width)))
    return (w - cw) // 2, (h - ch) // 2, cw, ch


class Fit:
    """Fits source frames to the output size: "crop" covers the output and cuts what
    sticks out; "blur" shows the whole frame, centred over a blurred, darkened copy
    of itself that covers the output."""

    def __init__(self, mode: str, src_w: int, src_h: int, width: int, height: int):
        self.mode = mode
        self.width, self.height = width, height
        self.box = _cover_box(src_w, src_h, width, height)
        ratio = min(width / src_w, height / src_h)
        self.inner = (min(width, max(1, round(src_w * ratio))),
                      min(height, max(1, round(src_h * ratio))))
        self.at = ((width - self.inner[0]) // 2, (height - self.inner[1]) // 2)
        self.tiny = (max(4, width // _BACKDROP_SHRINK), max(4, height // _BACKDROP_SHRINK))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        x, y, w, h = self.box
        covered = image[y:y + h, x:x + w]
        if self.mode == "crop" or self.inner == (self.width, self.height):
            return scale(covered, self.width, self.height)
        tiny = _soften(scale(covered, *self.tiny)) * _BACKDROP_BRIGHTNESS
        backdrop = scale(np.clip(tiny + 0.5, 0, 255).astype(np.uint8), self.width, self.height)
        (ix, iy), (iw, ih) = self.at, self.inner
        backdrop[iy:iy + ih, ix:ix + iw] = scale(image, iw, ih)
        return backdrop

    def yuv(self, image: np.ndarray, convert: YuvConverter):
        """The fitted picture as the encoder takes it: for "crop", cut, scaled and
        converted to yuv420p in one pass; a blurred backdrop is composed in RGB first."""
        if self.mode == "crop" or self.inner == (self.width, self.height):
            x, y, w, h = self.box
            return scaled_yuv(image[y:y + h, x:x + w], self.width, self.height)
        return convert(self(image))


def frame_map(n_src: int, src_fps: Fraction, fps: Fraction) -> list[tuple[int, int, int]]:
    """For each output frame of one repetition: (source frame, next source frame, weight
    of the next out of 256).

    A repetition lasts the nearest whole number of output frames. Where that is a
    whole multiple of the source frames (10 -> 30 fps) each source frame is shown
    that many times; otherwise the output frame falls between two source frames and
    is a blend of them by where it falls (12 -> 30 fps)."""
    count = max(1, math.floor(Fraction(n_src) * fps / src_fps + Fraction(1, 2)))
    if count % n_src == 0:
        per = count // n_src
        return [(j // per, j // per, 0) for j in range(count)]
    out = []
    for j in range(count):
        t = Fraction(j * n_src, count)
        i = math.floor(t)
        w = round((t - i) * ONE)
        if w == ONE:
            i, w = i + 1, 0
        out.append((i % n_src, (i + 1) % n_src, w))
    return out


def _smoothstep(x: float) -> float:
    return x * x * (3 - 2 * x)


class Pictures:
    """The frames of one repetition of a loop, made on demand: `mixed` at the loop's
    own size (after fps conversion), called at the output size, `yuv` for the
    encoder. Each remembers its last frame, so a source frame shown three times in a
    row is fitted once. One per thread: they are not shared.

    `repetition` is anything with `source` (the loop's frames), `frame_map`, `fit`
    and `wait` (None, or a function that blocks until source frame i is there)."""

    def __init__(self, repetition: Any, convert: YuvConverter | None = None):
        self.repetition = repetition
        self.convert = convert
        self._mixed_key = self._fitted_key = self._yuv_key = None
        self._mixed = self._fitted = self._yuv = None

    def mixed(self, offset: int) -> np.ndarray:
        r = self.repetition
        key = r.frame_map[offset % len(r.frame_map)]
        if key != self._mixed_key:
            i, k, w = key
            wait: Callable[[int], None] | None = r.wait
            if wait is not None:
                wait(i if w == 0 else max(i, k))
            self._mixed = r.source[i] if w == 0 else blend(r.source[i], r.source[k], w)
            self._mixed_key = key
        return self._mixed

    def __call__(self, offset: int) -> np.ndarray:
        r = self.repetition
        key = r.frame_map[offset % len(r.frame_map)]
        if key != self._fitted_key:
            self._fitted, self._fitted_key = _with_text_rgb(r.fit(self.mixed(offset)),
                                                            None, _look(r)), key
        return self._fitted

    def yuv(self, offset: int):
        """The frame at `offset` fitted as a yuv420p av.VideoFrame, for the encoder; a
        repeated frame is the same object, which the encoder takes as is."""
        r = self.repetition
        key = r.frame_map[offset % len(r.frame_map)]
        if key != self._yuv_key:
            frame = r.fit.yuv(self.mixed(offset), self.convert)
            draw_on_yuv(frame, None, _look(r))
            self._yuv, self._yuv_key = frame, key
        return self._yuv


def _look(repetition):
    """The overlays a repetition's frames are drawn with (lofid.overlays Look), or None."""
    return getattr(repetition, "look", None)


def _with_text_rgb(picture: np.ndarray, old, new, weight: int = ONE) -> np.ndarray:
    """`picture` with the overlays drawn on a copy (the fitted picture may be the
    loop's own frame, which is never drawn on)."""
    if not old and not new:
        return picture
    picture = np.array(picture)
    draw_on_rgb(picture, old, new, weight)
    return picture


def crossfade_picture(outgoing: Pictures, out_offset: int, incoming: Pictures,
                      in_offset: int, k: int, length: int, convert: YuvConverter | None = None,
                      cadence: int = 1, phase: int = 0, fade: int = 0):
    """Frame k of a `length`-frame crossfade: outgoing from `out_offset` of its
    repetition, incoming from `in_offset` of its own. RGB at the output size, or, given
    `convert`, a yuv420p frame for the encoder. With a `cadence` above 1 the mix
    moves on only every `cadence` frames, in step with the loops' own frames, which
    change where k + `phase` is a multiple of it. Given `fade`, the mix is complete
    after that many frames and holds (a change of overlay text, whose segment runs on
    to a keyframe)."""
    span = fade if 0 < fade < length else length
    step, steps = (k + phase) // cadence, -(-(span + phase) // cadence)
    weight = ONE if step >= steps else round(_smoothstep((step + 1) / (steps + 1)) * ONE)
    a, b = outgoing.repetition, incoming.repetition
    if a.source.shape[1:] == b.source.shape[1:]:
        # Same size, same fit: fitting is linear, so blend the smaller source frames
        # and fit once instead of fitting both. The overlays go on top, their text
        # fading from the outgoing loop's to the incoming one's with the same weight.
        if a.source is b.source and out_offset == in_offset:
            # The same loop at the same place: only the overlay text changes.
            mixed = incoming.mixed(in_offset + k)
        else:
            mixed = blend(outgoing.mixed(out_offset + k), incoming.mixed(in_offset + k), weight)
        if convert:
            frame = b.fit.yuv(mixed, convert)
            draw_on_yuv(frame, _look(a), _look(b), weight)
            return frame
        return _with_text_rgb(b.fit(mixed), _look(a), _look(b), weight)
    # Each side fitted with its own overlays drawn: the blend fades the text too.
    picture = blend(outgoing(out_offset + k), incoming(in_offset + k), weight)
    return convert(picture) if convert else picture

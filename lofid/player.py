"""The player: one output clock, the current loop repeated, crossfades to the next.

The clock is an integer frame counter that is never reset. Every timestamp on the
output derives from it (video pts = n in 1/fps, audio pts = n * 48000 / fps samples),
so nothing of a source loop's own timing reaches the outputs.

Work that is the same on every repetition is done once per loop. When a loop is
prepared, its frames are fitted to the output size and converted to the output fps
one at a time, straight into the encoder, and that one repetition is kept as a
closed-GOP H.264 segment. Every later repetition re-sends those packets with shifted
timestamps: no scaling, no encoding. A crossfade is a closed-GOP segment of its own,
from a keyframe of the outgoing repetition to the start of the incoming one (the
incoming loop enters that many frames before its end), so the cached packets join it
on both sides. In real time the next loop and its crossfade are prepared in a worker
thread while the current loop keeps playing, and the crossfade starts at the first
planned keyframe after that is done: the clock never waits on an encoder. Unpaced
(files, benchmarks) the clock waits instead and crosses where the loop arrived.

A loop the source marks urgent (a scene asked for over the control socket or by
the music) cannot wait for that: the player starts a live crossfade at the very next
output frame. A live segment begins with a keyframe (closed GOP, so it joins onto
whatever was sent before) and is encoded a frame at a time as it comes due, by a
thread a few frames ahead of the clock: the outgoing picture goes on from where it
was, the incoming loop enters at its first frame (its frames may still be decoding
from the library; each is waited for). Meanwhile the incoming repetition is encoded
in the background, at a lower priority; once it is ready and the crossfade is over,
the clock goes back to re-sending cached packets at the next keyframe of that
repetition. A rotation being prepared when an urgent loop comes is dropped.

Outputs that encode for themselves (wants == "frames") get the composed picture of
every output frame, made again from the source loop, and raw audio.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Protocol

import numpy as np

from lofid.control import events
from lofid.encode import (AudioEncoder, SegmentEncoder, VideoSettings, YuvConverter,
                          encode_segment, scaled_yuv, video_stream_info)
from lofid.outputs.base import AUDIO_CHANNELS, AUDIO_RATE, AudioChunk, Output, Packet, VideoFrame

log = logging.getLogger("lofid.player")

FITS = ("crop", "blur")

# Blend weights are integers out of 256, so blending stays in uint16 arithmetic.
_ONE = 256

# The blurred backdrop is made from a copy this many times smaller than the output,
# softened and scaled back up: a wide blur for almost no work.
_BACKDROP_SHRINK = 24
_BACKDROP_BRIGHTNESS = 0.55

# A crossfade is encoded before it starts; in real time its start is planned this
# much later than the encode is expected to take.
_PLAN_MARGIN_S = 0.3
_PLAN_SAFETY = 1.25


# A live segment is encoded this many frames ahead of the clock (more when the
# encoder holds frames back for its threads): enough to absorb a slow frame, few
# enough that a new request is not kept waiting behind pictures already made.
_LIVE_AHEAD = 6
# How often the paced clock, waiting for a frame's time, asks for an urgent loop.
_URGENT_POLL_S = 0.005
# How long the clock waits for a live frame before it counts the segment as failed.
_LIVE_TIMEOUT_S = 20.0
# How often an unpaced clock, waiting for a loop the source says is coming, asks again.
_COMING_POLL_S = 0.02


class LoopSource(Protocol):
    def first(self) -> Any: ...            # blocks until a first loop exists
    def next_ready(self) -> Any | None: ...  # a loop to crossfade to, or None; never blocks
    # Optional: urgent() -> a loop to cross to at once, or None; polled every frame
    # while no crossfade is on the air, so it must be cheap and never block.
    # Optional: coming() -> True while a next loop is being made that an unpaced
    # player may wait for (it polls next_ready meanwhile); cheap, never blocks.


# --------------------------------------------------------------------------- settings

def _as_fps(value) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction, np.number)):
        raise ValueError(f"player fps must be a number from 1 to 240, got {value!r}")
    fps = Fraction(value)
    if isinstance(value, (float, np.floating)):
        fps = fps.limit_denominator(1001)      # 29.97 means 30000/1001
    if not 1 <= fps <= 240:
        raise ValueError(f"player fps must be a number from 1 to 240, got {value!r}")
    return fps


@dataclass
class PlayerSettings:
    fps: Fraction = Fraction(30)
    size: tuple[int, int] = (1920, 1080)
    crossfade: float = 3.0                 # seconds; 0 cuts on a keyframe
    fit: str = "crop"                      # "crop" | "blur" (the loop over a blurred backdrop)
    realtime: bool = False
    bitrate: int = 4_500_000
    start_frame: int = 0
    duration: float | None = None          # seconds of output, None = forever

    def __post_init__(self) -> None:
        self.fps = _as_fps(self.fps)
        size = self.size
        if (not isinstance(size, (tuple, list)) or len(size) != 2
                or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in size)):
            raise ValueError(f"player size must be (width, height) in pixels, got {size!r}")
        w, h = int(size[0]), int(size[1])
        if not (16 <= w <= 8192 and 16 <= h <= 8192) or w % 2 or h % 2:
            raise ValueError(f"player size must be even numbers from 16 to 8192, got {w}x{h}")
        self.size = (w, h)
        cf = self.crossfade
        if isinstance(cf, bool) or not isinstance(cf, (int, float)) or not 0 <= cf <= 60:
            raise ValueError(f"crossfade must be a number of seconds from 0 to 60, got {cf!r}")
        self.crossfade = float(cf)
        if self.fit not in FITS:
            raise ValueError(f"fit must be one of {', '.join(FITS)}, got {self.fit!r}")
        if not isinstance(self.realtime, bool):
            raise ValueError(f"realtime must be True or False, got {self.realtime!r}")
        sf = self.start_frame
        if isinstance(sf, bool) or not isinstance(sf, (int, np.integer)) or not 0 <= sf < 2**62:
            raise ValueError(f"start_frame must be an integer from 0 to 2**62, got {sf!r}")
        self.start_frame = int(sf)
        d = self.duration
        if d is not None and (isinstance(d, bool) or not isinstance(d, (int, float))
                              or not math.isfinite(d) or d <= 0):
            raise ValueError(f"duration must be a number of seconds > 0 or None, got {d!r}")
        self.video_settings()                   # the encoder's own checks (bitrate)

    def video_settings(self) -> VideoSettings:
        return VideoSettings(width=self.size[0], height=self.size[1], fps=self.fps,
                             bitrate=self.bitrate)


# --------------------------------------------------------------------------- pictures

def _scale(image: np.ndarray, width: int, height: int) -> np.ndarray:
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


def _blend(a: np.ndarray, b: np.ndarray, weight: int) -> np.ndarray:
    """(1 - weight/256) * a + weight/256 * b, rounded, in uint16 (no float copies)."""
    out = a.astype(np.uint16)
    out *= _ONE - weight
    out += b.astype(np.uint16) * np.uint16(weight)
    out += _ONE // 2
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


class _Fit:
    """Fits source frames to the output size: "crop" covers the output and cuts what
    sticks out; "blur" shows the whole frame, centred over a blurred, darkened copy
    of itself that covers the output."""

    def __init__(self, mode: str, src_w: int, src_h: int, width: int, height: int):
        self.mode = mode
        self.width, self.height = width, height
        self.box = _cover_box(src_w, src_h, width, height)
        scale = min(width / src_w, height / src_h)
        self.inner = (min(width, max(1, round(src_w * scale))),
                      min(height, max(1, round(src_h * scale))))
        self.at = ((width - self.inner[0]) // 2, (height - self.inner[1]) // 2)
        self.tiny = (max(4, width // _BACKDROP_SHRINK), max(4, height // _BACKDROP_SHRINK))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        x, y, w, h = self.box
        covered = image[y:y + h, x:x + w]
        if self.mode == "crop" or self.inner == (self.width, self.height):
            return _scale(covered, self.width, self.height)
        tiny = _soften(_scale(covered, *self.tiny)) * _BACKDROP_BRIGHTNESS
        backdrop = _scale(np.clip(tiny + 0.5, 0, 255).astype(np.uint8), self.width, self.height)
        (ix, iy), (iw, ih) = self.at, self.inner
        backdrop[iy:iy + ih, ix:ix + iw] = _scale(image, iw, ih)
        return backdrop

    def yuv(self, image: np.ndarray, convert: YuvConverter):
        """The fitted picture as the encoder takes it: for "crop", cut, scaled and
        converted to yuv420p in one pass; a blurred backdrop is composed in RGB first."""
        if self.mode == "crop" or self.inner == (self.width, self.height):
            x, y, w, h = self.box
            return scaled_yuv(image[y:y + h, x:x + w], self.width, self.height)
        return convert(self(image))


def _frame_map(n_src: int, src_fps: Fraction, fps: Fraction) -> list[tuple[int, int, int]]:
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
        w = round((t - i) * _ONE)
        if w == _ONE:
            i, w = i + 1, 0
        out.append((i % n_src, (i + 1) % n_src, w))
    return out


def _smoothstep(x: float) -> float:
    return x * x * (3 - 2 * x)


@dataclass
class _Prepared:
    """A loop made ready to play: how to make each output frame of one repetition,
    and (when any output takes packets) that repetition encoded once."""
    loop: Any
    id: str
    label: str
    source: np.ndarray                          # the loop's own frames, not copied
    frame_map: list[tuple[int, int, int]]
    fit: _Fit
    keyframes: frozenset[int] = frozenset()     # repetition offsets where a GOP starts
    packets: list[Packet] | None = None         # pts/dts 0..length-1
    wall_s: float = 0.0                         # how long preparing took
    # For a loop still decoding from the library: blocks until its frame i is there.
    wait: Callable[[int], None] | None = None

    @property
    def length(self) -> int:
        return len(self.frame_map)

    @property
    def cadence(self) -> int:
        """Output frames per source frame when each is shown a whole number of times
        (10 fps at 30: 3), else 1 (frames are blends)."""
        return self.length // len(self.source) if self.frame_map[-1][2] == 0 and \
            self.length % len(self.source) == 0 else 1

    def is_keyframe(self, offset: int) -> bool:
        return offset in self.keyframes


class _Pictures:
    """The frames of a prepared loop, made on demand: `mixed` at the loop's own size
    (after fps conversion), called at the output size. Each remembers its last frame,
    so a source frame shown three times in a row is fitted once. One per thread: the
    worker and the clock each have their own."""

    def __init__(self, prepared: _Prepared, convert: YuvConverter | None = None):
        self.prepared = prepared
        self.convert = convert
        self._mixed_key = self._fitted_key = self._yuv_key = None
        self._mixed = self._fitted = self._yuv = None

    def mixed(self, offset: int) -> np.ndarray:
        p = self.prepared
        key = p.frame_map[offset % p.length]
        if key != self._mixed_key:
            i, k, w = key
            if p.wait is not None:
                p.wait(i if w == 0 else max(i, k))
            self._mixed = p.source[i] if w == 0 else _blend(p.source[i], p.source[k], w)
            self._mixed_key = key
        return self._mixed

    def __call__(self, offset: int) -> np.ndarray:
        p = self.prepared
        key = p.frame_map[offset % p.length]
        if key != self._fitted_key:
            self._fitted, self._fitted_key = p.fit(self.mixed(offset)), key
        return self._fitted

    def yuv(self, offset: int):
        """The frame at `offset` fitted as a yuv420p av.VideoFrame, for the encoder; a
        repeated frame is the same object, which the encoder takes as is."""
        p = self.prepared
        key = p.frame_map[offset % p.length]
        if key != self._yuv_key:
            self._yuv, self._yuv_key = p.fit.yuv(self.mixed(offset), self.convert), key
        return self._yuv


def _crossfade_picture(outgoing: _Pictures, out_offset: int, incoming: _Pictures,
                       in_offset: int, k: int, length: int, convert: YuvConverter | None = None,
                       cadence: int = 1, phase: int = 0):
    """Frame k of a `length`-frame crossfade: outgoing from `out_offset` of its
    repetition, incoming from `in_offset` of its own. RGB at the output size, or, given
    `convert`, a yuv420p frame for the encoder. With a `cadence` above 1 the mix
    moves on only every `cadence` frames, in step with the loops' own frames, which
    change where k + `phase` is a multiple of it."""
    step, steps = (k + phase) // cadence, -(-(length + phase) // cadence)
    weight = round(_smoothstep((step + 1) / (steps + 1)) * _ONE)
    a, b = outgoing.prepared, incoming.prepared
    if a.source.shape[1:] == b.source.shape[1:]:
        # Same size, same fit: fitting is linear, so blend the smaller source frames
        # and fit once instead of fitting both.
        mixed = _blend(outgoing.mixed(out_offset + k), incoming.mixed(in_offset + k), weight)
        return b.fit.yuv(mixed, convert) if convert else b.fit(mixed)
    picture = _blend(outgoing(out_offset + k), incoming(in_offset + k), weight)
    return convert(picture) if convert else picture


def _loop_id(loop) -> str:
    key = getattr(loop, "key", None) or (getattr(loop, "params", None) or {}).get("key")
    if key:
        return str(key)
    return f"{loop.spec.id}-{loop.generator}-{loop.seed}"


def _loop_label(loop) -> str:
    label = getattr(loop.spec, "label", None)
    return label() if callable(label) else str(loop.spec.id)


class _Cancelled(Exception):
    """The player stopped while a loop was being prepared."""


@dataclass
class _NextLoop:
    """A loop on its way in: prepared (and its crossfade encoded) by the worker."""
    loop: Any
    asked_at: int                               # clock when the source handed it over
    start: int | None = None                    # outgoing repetition offset the crossfade starts at
    entry: int = 0                              # incoming repetition offset it starts at
    incoming: _Prepared | None = None
    length: int = 0                             # crossfade frames; 0 cuts
    packets: list[Packet] | None = None
    ready_at: int | None = None                 # clock when all of that was done
    handed_wall: float = 0.0                    # wall clock when the source handed it over
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.done = threading.Event()
        self.cancel = threading.Event()         # an urgent loop came first: drop this one


@dataclass
class _Crossfade:
    """A crossfade on the air."""
    job: _NextLoop
    start: int                                  # clock of its first frame
    out_pictures: _Pictures | None = None       # for frame outputs
    in_pictures: _Pictures | None = None


@dataclass
class _LivePlan:
    """What a live segment shows from its `start` frame: a `length`-frame crossfade
    from `outgoing` (at `out_offset` of its repetition) into `incoming`, which enters
    at offset `in_offset` and then repeats on."""
    start: int
    outgoing: _Prepared
    out_offset: int
    incoming: _Prepared
    in_offset: int
    length: int
    cadence: int = 1
    phase: int = 0

    @classmethod
    def make(cls, start: int, outgoing: _Prepared, out_offset: int, incoming: _Prepared,
             length: int) -> "_LivePlan":
        # The incoming loop enters at its first frame, shown for as many clock ticks as
        # the outgoing one has left of its current frame: both then change frames on
        # the same ticks, and each crossfade picture is made once per loop frame.
        cadence = outgoing.cadence
        if incoming.cadence != cadence:
            cadence = 1
        phase = out_offset % cadence
        return cls(start=start, outgoing=outgoing, out_offset=out_offset, incoming=incoming,
                   in_offset=phase, length=length, cadence=cadence, phase=phase)

    @property
    def anchor(self) -> int:
        """The clock at which the incoming loop's offset 0 falls."""
        return self.start - self.in_offset

    def crossfading(self, n: int) -> bool:
        return n < self.start + self.length

    def picture(self, n: int, out_pictures: _Pictures, in_pictures: _Pictures,
                convert: YuvConverter | None = None):
        """Frame n: RGB, or with `convert` (the pictures' own), a yuv420p frame."""
        k = n - self.start
        if k < self.length:
            return _crossfade_picture(out_pictures, self.out_offset, in_pictures,
                                      self.in_offset, k, self.length, convert,
                                      self.cadence, self.phase)
        offset = self.in_offset + k
        return in_pictures.yuv(offset) if convert else in_pictures(offset)


class _LiveSegment:
    """A live plan encoded as one closed-GOP segment, a frame at a time, by a thread
    that keeps a few frames ahead of the clock; packets carry the clock's pts."""

    def __init__(self, plan: _LivePlan, video: VideoSettings, stop: threading.Event,
                 encoder: SegmentEncoder | None = None):
        self.plan = plan
        self.video = video
        self.error: BaseException | None = None
        self.frames = 0                         # encoded so far
        self.first_out = threading.Event()      # the first packet is made (or it failed)
        self._encoder = encoder
        self._player_stop = stop
        self._packets: dict[int, Packet] = {}
        self._clock = plan.start                # the frame the clock waits for
        self._stopped = False
        self._ended = False                     # the thread is over: no more packets
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="player live", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def packet(self, n: int, timeout: float = _LIVE_TIMEOUT_S) -> Packet:
        """The packet of clock frame n, waiting for it if need be."""
        with self._cond:
            self._clock = n
            self._cond.notify_all()
            # The thread ends when the player stops, with frames perhaps still in the
            # encoder's hands: then nothing more comes, and waiting on would only
            # hold the stop up for the whole timeout.
            got = self._cond.wait_for(lambda: n in self._packets or self.error is not None
                                      or self._stopped or self._ended, timeout=timeout)
            if n in self._packets:
                return self._packets.pop(n)
        if self.error is not None:
            raise self.error
        raise TimeoutError(f"the live encoder gave no frame {n} in {timeout:g} s" if not got
                           else "the live encoder was stopped")

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        plan = self.plan
        convert = YuvConverter(self.video)
        out_pictures, in_pictures = _Pictures(plan.outgoing, convert), _Pictures(plan.incoming,
                                                                                  convert)
        try:
            encoder = self._encoder or SegmentEncoder(self.video)
            self._encoder = None
            n = plan.start
            while True:
                with self._cond:
                    # Ahead of the clock, but never holding back the packet it waits
                    # for (an encoder with many threads keeps several frames in hand).
                    self._cond.wait_for(lambda: self._stopped or self._player_stop.is_set()
                                        or n <= self._clock + _LIVE_AHEAD
                                        or self._clock not in self._packets)
                    if self._stopped or self._player_stop.is_set():
                        return
                image = plan.picture(n, out_pictures, in_pictures, convert)
                packets = encoder.encode(image)
                self.frames += 1
                with self._cond:
                    for p in packets:
                        at = plan.start + p.pts
                        self._packets[at] = dataclasses.replace(p, pts=at, dts=at)
                    self._cond.notify_all()
                if packets:
                    self.first_out.set()
                n += 1
        except BaseException as e:
            with self._cond:
                self.error = e
                self._cond.notify_all()
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()
            self.first_out.set()


# --------------------------------------------------------------------------- the player

class Player:
    """Plays loops from `source` to `outputs` on one clock until `duration` or stop()."""

    def __init__(self, source: LoopSource, outputs: list[Output], audio, settings: PlayerSettings,
                 on_event: Callable[[str, dict], None] | None = None):
        if not isinstance(settings, PlayerSettings):
            raise ValueError(f"settings must be PlayerSettings, got {type(settings).__name__}")
        for name in ("first", "next_ready"):
            if not callable(getattr(source, name, None)):
                raise ValueError(f"source must have {name}() (a LoopSource), "
                                 f"got {type(source).__name__}")
        if audio is not None and not callable(getattr(audio, "read", None)):
            raise ValueError(f"audio must be an AudioTrack or None, got {type(audio).__name__}")
        self.source = source
        self.outputs = list(outputs)
        self.audio = audio
        self.settings = settings
        self._on_event = on_event
        self._video = settings.video_settings()
        self._fps = settings.fps
        self._packet_outputs = [o for o in self.outputs if o.wants == "packets"]
        self._frame_outputs = [o for o in self.outputs if o.wants == "frames"]
        # Without a packet output nothing needs H.264: skip the encoder entirely.
        self._encoding = bool(self._packet_outputs)
        self._prepare_wall_s = 0.0                  # how long the last switch took to prepare
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._current: _Prepared | None = None
        self._anchor = 0                        # clock at which the current loop's offset 0 fell
        self._pictures: _Pictures | None = None  # the current loop's, for frame outputs
        self._job: _NextLoop | None = None
        self._crossfade: _Crossfade | None = None
        # Live: an urgent loop crossing (and then playing) before its packets are ready.
        self._plan: _LivePlan | None = None
        self._live: _LiveSegment | None = None       # its encoder, when outputs take packets
        self._out_pictures: _Pictures | None = None  # the outgoing loop's, for frame outputs
        self._background: list[threading.Thread] = []
        # An encoder opened ahead for the next live segment: opening one at 1080p
        # takes milliseconds a request should not wait for.
        self._spare_encoder: SegmentEncoder | None = None
        self._audio_encoder: AudioEncoder | None = None
        # Outputs added and removed while playing (add_output, remove_output): queued
        # under the lock, applied by the clock thread between two frames.
        self._output_lock = threading.Lock()
        self._output_changes: list[tuple[str, Any]] = []
        self._closing: list[threading.Thread] = []   # removed outputs being finalised
        self._info = None                           # the stream description outputs start with
        self.frame: int = settings.start_frame   # the clock: the next frame to make
        # cpu_encode and cpu_crossfade count the process's time (the encoder's threads
        # are not Python's), so they overlap when a crossfade is encoded beside a
        # repetition; cpu_total is the process's own.
        self.stats: dict = {
            "frames": 0, "repetitions": 0, "crossfades": 0,
            "loops_prepared": 0, "loops_failed": 0, "encodes": 0,
            "cpu_prepare": 0.0, "cpu_encode": 0.0, "cpu_crossfade": 0.0, "cpu_audio": 0.0,
            "cpu_total": 0.0,
            "ready_to_crossfade_frames": None, "asked_to_crossfade_frames": None,
            "late_max_s": 0.0, "dropped": {},
            "live_crossfades": 0, "live_frames": 0, "live_failures": 0,
        }

    # --- public ---------------------------------------------------------------------

    @property
    def seconds(self) -> float:
        """Seconds of output made so far (what a director's rotation should count)."""
        return float((self.frame - self.settings.start_frame) / self._fps)

    def stop(self) -> None:
        """Ask run() to finish the current frame, close the outputs and return."""
        self._stop.set()

    def run(self) -> None:
        cpu = time.process_time()
        try:
            self._startup()
            self._play()
        finally:
            self._shutdown()
            self.stats["cpu_total"] += time.process_time() - cpu

    # --- outputs added and removed while playing ---------------------------------------
    # The clock thread alone changes the output lists (between two frames); others
    # only queue a change. The lists are replaced, never changed in place, so a thread
    # that holds one (status, a worker) never sees it change under it.

    def add_output(self, out: Output) -> None:
        """Start `out` between two frames. A packet output's picture starts at the
        next keyframe (which carries the stream's headers), a frame output's at once."""
        with self._output_lock:
            self._output_changes.append(("add", out))

    def remove_output(self, name: str) -> Output | None:
        """Stop sending to the output called `name` from the next frame on; it is then
        flushed and finalised on a thread of its own. Returns it, or None if no output
        has that name."""
        with self._output_lock:
            for what, out in self._output_changes:
                if what == "add" and out.name == name:   # not started yet: just forget it
                    self._output_changes.remove((what, out))
                    return out
            out = next((o for o in self.outputs if o.name == name), None)
            if out is not None:
                self._output_changes.append(("remove", out))
            return out

    def _apply_output_changes(self) -> None:
        with self._output_lock:
            changes, self._output_changes = self._output_changes, []
        outputs, later = list(self.outputs), []
        for what, out in changes:
            if what == "remove":
                if out in outputs:
                    outputs.remove(out)
                    closer = threading.Thread(target=self._close_output, args=(out,),
                                              daemon=True, name=f"close {out.name}")
                    closer.start()
                    self._closing.append(closer)
            elif out.wants == "frames" and self._crossfade is not None:
                later.append((what, out))    # its pictures start after the crossfade
            else:
                try:
                    out._waiting_for_keyframe = out.wants == "packets"
                    out.start(self._info)
                except Exception as e:       # one output failing never stops the others
                    self._error("output", e, output=getattr(out, "name", None))
                    continue
                outputs.append(out)
        if later:
            with self._output_lock:
                self._output_changes[:0] = later
        self.outputs = outputs
        self._packet_outputs = [o for o in outputs if o.wants == "packets"]
        self._frame_outputs = [o for o in outputs if o.wants == "frames"]
        if self._frame_outputs and self._pictures is None and self._current is not None:
            self._pictures = _Pictures(self._current)
        if self._packet_outputs and not self._encoding:
            # Until now only frame outputs played, so the loop on the air has no
            # packets: encode it aside; the new output starts at its next keyframe.
            self._encoding = True
            job = self._job
            pending = [self._current] + ([job.incoming] if job and job.done.is_set()
                                         and job.incoming is not None else [])
            threading.Thread(target=self._encode_aside, args=(pending,), daemon=True,
                             name="player encode for a new output").start()

    def _encode_aside(self, prepared: list[_Prepared]) -> None:
        for p in prepared:
            try:
                if p.packets is None:
                    self._encode_repetition(p)
            except Exception as e:
                if not self._stop.is_set():
                    self._error("prepare", e, loop=p.id)

    # --- the three steps of run() ---------------------------------------------------

    def _startup(self) -> None:
        self._audio_encoder = AudioEncoder()
        info = self._info = video_stream_info(self._video, self._audio_encoder)
        for out in self.outputs:
            try:
                out.start(info)
            except Exception as e:   # one output failing never stops the others
                self._error("output", e, output=getattr(out, "name", None))
        loop = self.source.first()
        self._current = self._prepare(loop)
        # The first measure of how long a switch takes to prepare (less its crossfade,
        # which is encoded beside the repetition).
        self._prepare_wall_s = self._current.wall_s
        self._anchor = self.frame
        if self._frame_outputs:
            self._pictures = _Pictures(self._current)
        if self._encoding and callable(getattr(self.source, "urgent", None)):
            self._spare_encoder = SegmentEncoder(self._video)
        self._event(events.LOOP_STARTED, self._loop_payload(self._current, self.frame))

    def _play(self) -> None:
        n0 = self.frame
        end = None
        if self.settings.duration is not None:
            end = n0 + math.floor(Fraction(self.settings.duration) * self._fps + Fraction(1, 2))
        t0 = time.monotonic()
        while not self._stop.is_set() and (end is None or self.frame < end):
            n = self.frame
            if self._output_changes:             # outputs added or removed while playing
                self._apply_output_changes()
            if self.settings.realtime and not self._pace(n - n0, t0, n):
                break
            self._maybe_go_live(n)
            if self._plan is not None:
                self._live_frame(n)
            else:
                if self._crossfade is None:
                    self._at_keyframe_maybe_switch(n)
                if self._crossfade is not None:
                    self._crossfade_frame(n)
                else:
                    self._repetition_frame(n)
            self._audio_frame(n)
            self.frame = n + 1
            self.stats["frames"] += 1

    def _shutdown(self) -> None:
        self._stop.set()                        # also cancels a preparation under way
        if self._worker is not None:
            self._worker.join(timeout=30)
        if self._live is not None:
            self._live.stop()
            self._live.join(timeout=30)
        for t in self._background:
            t.join(timeout=30)
        if self._audio_encoder is not None:
            try:
                for p in self._audio_encoder.flush():
                    self._send_all(self._packet_outputs, p)
            except Exception as e:
                self._error("audio", e)
        closers = [threading.Thread(target=self._close_output, args=(out,), daemon=True,
                                    name=f"close {getattr(out, 'name', out)}")
                   for out in self.outputs]
        for t in closers:
            t.start()
        for t in closers + self._closing:       # removed outputs still finalising too
            t.join(timeout=15)
        self._count_dropped()

    def _close_output(self, out: Output) -> None:
        try:
            out.close(timeout=10.0)
        except Exception as e:
            self._error("output", e, output=getattr(out, "name", None))

    # --- the clock ------------------------------------------------------------------

    def _pace(self, frames_since_start: int, t0: float, n: int) -> bool:
        """Wait until this frame is due on the wall clock; False when stopped meanwhile.
        Running late never skips a frame: the clock just catches up.

        While it waits it keeps asking for an urgent loop: one that comes starts its
        live segment (at frame n) there and then, so the encoder works while the
        clock would only have slept."""
        due = t0 + float(frames_since_start / self._fps)
        delay = due - time.monotonic()
        if delay <= 0:
            self.stats["late_max_s"] = max(self.stats["late_max_s"], -delay)
            return True
        while delay > 0:
            if self._stop.wait(min(delay, _URGENT_POLL_S)):
                return False
            self._maybe_go_live(n)
            delay = due - time.monotonic()
        return True

    def _maybe_go_live(self, n: int) -> None:
        """Start crossing to an urgent loop at frame n, if one is there and no
        crossfade is on the air."""
        if self._crossfade is None and (self._plan is None or not self._plan.crossfading(n)):
            loop = self._urgent_from_source()
            if loop is not None:
                self._go_live(loop, n)

    def _at_keyframe_maybe_switch(self, n: int) -> None:
        """At a keyframe of the current repetition: ask for a next loop, or start the
        crossfade to one that is ready."""
        cur = self._current
        offset = (n - self._anchor) % cur.length
        if not cur.is_keyframe(offset):
            return
        self._count_dropped()
        job = self._job
        if job is None:
            loop = self._next_from_source()
            if loop is None and not self.settings.realtime:
                loop = self._wait_for_coming()
            if loop is None:
                return
            job = self._job = _NextLoop(loop=loop, asked_at=n, handed_wall=time.perf_counter())
            if self.settings.realtime:
                self._worker = threading.Thread(target=self._prepare_next, args=(job,),
                                                name="player prepare", daemon=True)
                self._worker.start()
            else:
                # Not paced, the clock can wait: prepare in place and cross at this
                # very keyframe, rather than race ahead of the preparation.
                job.start = offset
                self._prepare_next(job)
        if not job.done.is_set():
            return
        if job.error is not None:
            self._job = None
            if not isinstance(job.error, _Cancelled):
                self.stats["loops_failed"] += 1
                self._error("prepare", job.error, loop=_safe_id(job.loop))
            return
        if job.start != offset:
            return                              # planned for a later keyframe
        self._job = None
        self._begin_crossfade(job, n)

    def _begin_crossfade(self, job: _NextLoop, n: int) -> None:
        outgoing, incoming = self._current, job.incoming
        self.stats["crossfades"] += 1
        self.stats["ready_to_crossfade_frames"] = n - job.ready_at
        self.stats["asked_to_crossfade_frames"] = n - job.asked_at
        self._event(events.CROSSFADE, {"from": outgoing.id, "to": incoming.id, "frame": n,
                                  "frames": job.length,
                                  "seconds": float(job.length / self._fps),
                                  "live": False, "wall": time.time()})
        self._event(events.LOOP_STARTED, self._loop_payload(incoming, n))
        if job.length == 0:                     # no crossfade: a cut on a keyframe
            self._current, self._anchor = incoming, n
            if self._frame_outputs:
                self._pictures = _Pictures(incoming)
            return
        xf = _Crossfade(job=job, start=n)
        if self._frame_outputs:
            xf.out_pictures, xf.in_pictures = self._pictures, _Pictures(incoming)
        self._crossfade = xf

    def _crossfade_frame(self, n: int) -> None:
        xf = self._crossfade
        job = xf.job
        k = n - xf.start
        if job.packets is not None:
            self._send_all(self._packet_outputs, job.packets[k], xf.start)
        if self._frame_outputs:
            image = _crossfade_picture(xf.out_pictures, job.start, xf.in_pictures, job.entry,
                                       k, job.length)
            self._send_all(self._frame_outputs, VideoFrame(index=n, image=image))
        if k == job.length - 1:
            # The frame after this one is the incoming loop's offset 0, a keyframe:
            # its cached packets go on from there.
            self._current, self._anchor = job.incoming, xf.start - job.entry
            self._pictures = xf.in_pictures
            self._crossfade = None

    def _repetition_frame(self, n: int) -> None:
        cur = self._current
        offset = (n - self._anchor) % cur.length
        if offset == 0:
            self.stats["repetitions"] += 1
        if cur.packets is not None:
            self._send_all(self._packet_outputs, cur.packets[offset], n - offset)
        if self._frame_outputs:
            self._send_all(self._frame_outputs, VideoFrame(index=n, image=self._pictures(offset)))

    # --- urgent loops: live crossfades -------------------------------------------------

    def _urgent_from_source(self):
        urgent = getattr(self.source, "urgent", None)
        if urgent is None:
            return None
        try:
            return urgent()
        except Exception as e:                  # a director hiccup never stops the picture
            self._error("source", e)
            return None

    def _go_live(self, loop, n: int) -> None:
        """Start crossing to `loop` at frame n, encoding as the frames come due."""
        try:
            incoming = self._prepare(loop, encode=False)
        except Exception as e:
            self.stats["loops_failed"] += 1
            self._error("prepare", e, loop=_safe_id(loop))
            return
        incoming.wait = getattr(loop, "wait_frame", None)
        if self._job is not None:               # a rotation on its way gives way
            self._job.cancel.set()
            self._job = None
        outgoing, out_offset = self._current, (n - self._anchor) % self._current.length
        length = math.floor(Fraction(self.settings.crossfade) * self._fps + Fraction(1, 2))
        self._begin_live(_LivePlan.make(n, outgoing, out_offset, incoming, length))
        self.stats["live_crossfades"] += 1
        self._event(events.LOOP_STARTED, self._loop_payload(incoming, n))

    def _begin_live(self, plan: _LivePlan) -> None:
        if self._live is not None:
            self._live.stop()
        self._live = None
        if self._encoding:
            encoder, self._spare_encoder = self._spare_encoder, None
            self._live = _LiveSegment(plan, self._video, self._stop, encoder)
            self._live.start()
            cancel = threading.Event()
            worker = threading.Thread(target=self._encode_in_background,
                                      args=(plan.incoming, cancel, self._live.first_out),
                                      daemon=True, name="player repetition")
            worker.cancel = cancel
            for t in self._background:          # an earlier incoming is no longer wanted
                t.cancel.set()
            self._background = [t for t in self._background if t.is_alive()] + [worker]
            worker.start()
        if self._frame_outputs:
            self._out_pictures = _Pictures(plan.outgoing)
            self._pictures = _Pictures(plan.incoming)
        self._plan = plan
        self._current, self._anchor = plan.incoming, plan.anchor

    def _encode_in_background(self, prepared: _Prepared, cancel: threading.Event,
                              after: threading.Event) -> None:
        # Below the clock and the live encoder: on a busy machine the cached
        # repetition comes later, the live frames do not. It starts once the first
        # live frame is out, which it would otherwise slow down.
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):
            pass
        after.wait(_LIVE_TIMEOUT_S)
        if prepared.packets is not None:        # back to a loop encoded before
            return
        try:
            if self._spare_encoder is None:
                self._spare_encoder = SegmentEncoder(self._video)
            self._encode_repetition(prepared, cancel)
        except _Cancelled:
            pass
        except Exception as e:
            self.stats["loops_failed"] += 1
            self._error("prepare", e, loop=prepared.id)

    def _live_frame(self, n: int) -> None:
        plan, cur = self._plan, self._current
        offset = (n - self._anchor) % cur.length
        if not plan.crossfading(n) and cur.is_keyframe(offset) and cur.packets is None \
                and self._encoding and not self.settings.realtime and self._background:
            # Not paced, the clock can wait for the cached repetition instead.
            self._background[-1].join()
        if not plan.crossfading(n) and (cur.packets is not None or not self._encoding) \
                and cur.is_keyframe(offset):
            # The cached repetition is ready: back to re-sending its packets, from a
            # keyframe of it, so the stream joins there.
            if self._live is not None:
                self._live.stop()
            self._live, self._plan, self._out_pictures = None, None, None
            self._repetition_frame(n)
            return
        if self._live is not None:
            try:
                packet = self._live.packet(n)
            except Exception as e:
                if self._stop.is_set():
                    return                      # stopping: not a failure of the loop
                self._live_failed(n, e)
                return
            self._send_all(self._packet_outputs, packet)
            self.stats["live_frames"] += 1
        if self._frame_outputs:
            if self._out_pictures is None or self._pictures is None:   # an output added since
                self._out_pictures = _Pictures(plan.outgoing)
                self._pictures = _Pictures(plan.incoming)
            try:
                image = plan.picture(n, self._out_pictures, self._pictures)
            except Exception as e:
                self._live_failed(n, e, packets_sent=self._live is not None)
                return
            self._send_all(self._frame_outputs, VideoFrame(index=n, image=image))
        if n == plan.start and plan.outgoing is not plan.incoming:
            self._event(events.CROSSFADE, {"from": plan.outgoing.id, "to": plan.incoming.id,
                                      "frame": n, "frames": plan.length,
                                      "seconds": float(plan.length / self._fps),
                                      "live": True, "wall": time.time()})

    def _live_failed(self, n: int, error: BaseException, packets_sent: bool = False) -> None:
        """The incoming loop could not be shown (its frames did not decode, say): cut
        back to the loop that was playing, live again, from this frame (from the next
        one for packet outputs when frame n's packet went out already)."""
        self.stats["live_failures"] += 1
        self._error("live", error, loop=self._plan.incoming.id)
        outgoing = self._plan.outgoing
        if outgoing is self._plan.incoming or self.stats["live_failures"] > 3:
            raise error
        back = _LivePlan.make(n, outgoing, (n - self._plan.start + self._plan.out_offset)
                              % outgoing.length, outgoing, 0)
        back.in_offset = back.out_offset
        if packets_sent:
            # Frame n's packet went out: the new segment starts at n + 1, and frame
            # outputs get frame n of the loop that plays on.
            back.start, back.in_offset = n + 1, (back.out_offset + 1) % outgoing.length
            self._begin_live(back)
            self._send_all(self._frame_outputs,
                           VideoFrame(index=n, image=self._pictures(back.in_offset - 1)))
            return
        self._begin_live(back)
        self._live_frame(n)

    def _samples_before(self, n: int) -> int:
        """Audio samples before frame n: n * 48000 / fps, exactly, rounded down."""
        f = self._fps
        return n * AUDIO_RATE * f.denominator // f.numerator

    def _audio_frame(self, n: int) -> None:
        cpu = time.thread_time()
        start = self._samples_before(n)
        count = self._samples_before(n + 1) - start
        samples = None
        if self.audio is not None:
            try:
                samples = np.asarray(self.audio.read(count), dtype=np.float32)
                if samples.shape != (count, AUDIO_CHANNELS):
                    raise ValueError(f"the audio track gave {samples.shape} samples, "
                                     f"expected ({count}, {AUDIO_CHANNELS})")
            except Exception as e:              # music failing never stops the picture
                self._error("audio", e)
                samples = None
        if samples is None:
            samples = np.zeros((count, AUDIO_CHANNELS), np.float32)
        packets = self._audio_encoder.encode(samples, start) if self._encoding else []
        self.stats["cpu_audio"] += time.thread_time() - cpu
        if self._frame_outputs:
            self._send_all(self._frame_outputs, AudioChunk(start=start, samples=samples))
        for p in packets:
            self._send_all(self._packet_outputs, p)

    # --- sending --------------------------------------------------------------------

    def _send_all(self, outputs: list[Output], item, shift: int = 0) -> None:
        if shift:
            item = dataclasses.replace(item, pts=item.pts + shift, dts=item.dts + shift)
        # Each output decides what a full queue means: a recording waits for room
        # (every frame matters), a stream drops (the clock matters).
        for out in outputs:
            out.send(item)

    def _count_dropped(self) -> None:
        self.stats["dropped"] = {o.name: o.stats.dropped for o in self.outputs}

    # --- preparing loops --------------------------------------------------------------

    def _next_from_source(self):
        try:
            return self.source.next_ready()
        except Exception as e:                  # a director hiccup never stops the picture
            self._error("source", e)
            return None

    def _wait_for_coming(self):
        """Unpaced, the clock may wait for a loop the source is making (files would
        otherwise outrun the generator): the source says for how long, by coming(),
        and the wait ends at once on stop(). None: the current loop plays on."""
        coming = getattr(self.source, "coming", None)
        while callable(coming) and not self._stop.is_set():
            try:
                if not coming():
                    return None
            except Exception as e:              # a director hiccup never stops the picture
                self._error("source", e)
                return None
            if self._stop.wait(_COMING_POLL_S):
                return None
            loop = self._next_from_source()
            if loop is not None:
                return loop
        return None

    def _prepare(self, loop, encode: bool = True) -> _Prepared:
        """Fit, fps-convert and (when an output takes packets) encode one repetition."""
        wall = time.perf_counter()
        frames = getattr(loop, "frames", None)
        if (not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4
                or frames.shape[-1] != 3 or len(frames) < 1):
            got = (f"{frames.shape} {frames.dtype}" if isinstance(frames, np.ndarray)
                   else type(frames).__name__)
            raise ValueError(f"loop frames must be an (N, H, W, 3) uint8 array, got {got}")
        fps = getattr(loop, "fps", None)
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps < 1000:
            raise ValueError(f"loop fps must be a number of frames per second > 0, got {fps!r}")
        _, h, w, _ = frames.shape
        width, height = self.settings.size
        prepared = _Prepared(
            loop=loop, id=_loop_id(loop), label=_loop_label(loop), source=frames,
            frame_map=_frame_map(len(frames), Fraction(fps).limit_denominator(1001), self._fps),
            fit=_Fit(self.settings.fit, w, h, width, height))
        # Where the GOPs of the repetition start: the encoder puts a keyframe on every
        # gop-th frame and nowhere else (checked once the packets exist).
        prepared.keyframes = frozenset(range(0, prepared.length, self._video.gop))
        if encode:
            self._encode_repetition(prepared)
        prepared.wall_s = time.perf_counter() - wall
        self.stats["loops_prepared"] += 1
        return prepared

    def _encode_repetition(self, prepared: _Prepared,
                           cancel: threading.Event | None = None) -> None:
        """Encode one repetition of a prepared loop, once, when any output takes packets."""
        if not self._encoding:
            return
        wall = time.perf_counter()
        pictures = _Pictures(prepared, YuvConverter(self._video))
        cpu_pictures = 0.0
        cpu = time.process_time()

        def images():
            nonlocal cpu_pictures
            for offset in range(prepared.length):
                if self._stop.is_set() or (cancel is not None and cancel.is_set()):
                    raise _Cancelled()
                t = time.thread_time()
                image = pictures.yuv(offset)
                cpu_pictures += time.thread_time() - t
                yield image

        packets = encode_segment(images(), self._video)
        # The encoder's own threads count too: process time, less the pictures.
        self.stats["cpu_encode"] += time.process_time() - cpu - cpu_pictures
        self.stats["cpu_prepare"] += cpu_pictures
        self.stats["encodes"] += 1
        _check_segment(packets, prepared.length)
        keyframes = frozenset(i for i, p in enumerate(packets) if p.keyframe)
        if keyframes != prepared.keyframes:
            raise RuntimeError(f"the encoder put keyframes at {sorted(keyframes)[:6]}..., "
                               f"expected every {self._video.gop} frames")
        prepared.packets = packets
        prepared.wall_s += time.perf_counter() - wall

    def _prepare_next(self, job: _NextLoop) -> None:
        """Prepare the next loop and encode its crossfade (worker thread in real time).

        The crossfade needs only the two loops' pictures, not the incoming loop's
        packets, so it is encoded beside the incoming repetition, in a thread of its
        own: the switch comes sooner on a machine with more than one core."""
        try:
            incoming = self._prepare(job.loop, encode=False)
            outgoing, anchor = self._current, self._anchor   # unchanged until this is done
            length = math.floor(Fraction(self.settings.crossfade) * self._fps + Fraction(1, 2))
            # A loop has no first frame to the eye: the incoming one enters where its
            # repetition, and so a keyframe of its cached packets, follows the crossfade.
            entry = -length % incoming.length
            if job.start is None:
                job.start = self._plan_start(outgoing, anchor, incoming)
            crossfade: dict = {}
            if length and self._encoding:
                def encode_crossfade():
                    try:
                        crossfade["packets"] = self._encode_crossfade(
                            outgoing, job.start, incoming, entry, length, job.cancel)
                    except BaseException as e:
                        crossfade["error"] = e
                worker = threading.Thread(target=encode_crossfade, name="player crossfade",
                                          daemon=True)
                worker.start()
                self._encode_repetition(incoming, job.cancel)
                worker.join()
                if "error" in crossfade:
                    raise crossfade["error"]
                job.packets = crossfade["packets"]
            else:
                self._encode_repetition(incoming, job.cancel)
            self._prepare_wall_s = time.perf_counter() - job.handed_wall
            job.incoming, job.entry, job.length = incoming, entry, length
            job.ready_at = self.frame
        except Exception as e:
            job.error = _Cancelled() if self._stop.is_set() or job.cancel.is_set() else e
        finally:
            job.done.set()

    def _plan_start(self, outgoing: _Prepared, anchor: int, incoming: _Prepared) -> int:
        """The keyframe of the outgoing repetition at which the crossfade starts: the
        first one after the incoming repetition and the crossfade are expected to be
        encoded, judged by how long that took last time (or by its size, the first)."""
        seconds = self._prepare_wall_s * _PLAN_SAFETY + _PLAN_MARGIN_S
        target = (self.frame - anchor) % outgoing.length + math.ceil(seconds * self._fps)
        target %= outgoing.length
        later = [k for k in outgoing.keyframes if k >= target]
        return min(later) if later else 0

    def _encode_crossfade(self, outgoing: _Prepared, out_offset: int, incoming: _Prepared,
                          in_offset: int, length: int,
                          cancel: threading.Event | None = None) -> list[Packet]:
        cpu = time.process_time()
        out_pictures, in_pictures = _Pictures(outgoing), _Pictures(incoming)
        convert = YuvConverter(self._video)
        # Loops shown at a whole number of output frames per frame (10 fps at 30) change
        # only every `cadence` frames; when both are in step, so does the mix, and each
        # crossfade picture is made once and handed to the encoder `cadence` times.
        cadence = outgoing.cadence
        if (incoming.cadence != cadence or out_offset % cadence or in_offset % cadence):
            cadence = 1

        def images():
            picture = None
            for k in range(length):
                if self._stop.is_set() or (cancel is not None and cancel.is_set()):
                    raise _Cancelled()
                if k % cadence == 0:
                    picture = _crossfade_picture(out_pictures, out_offset, in_pictures,
                                                 in_offset, k, length, convert, cadence)
                yield picture

        packets = encode_segment(images(), self._video)
        self.stats["cpu_crossfade"] += time.process_time() - cpu
        _check_segment(packets, length)
        return packets

    # --- events ---------------------------------------------------------------------

    def _loop_payload(self, prepared: _Prepared, n: int) -> dict:
        loop = prepared.loop
        return {"label": prepared.label, "loop": prepared.id, "spec": str(loop.spec.id),
                "seed": loop.seed, "frame": n, "fps": float(loop.fps),
                "frames": prepared.length}

    def _error(self, where: str, error: BaseException, **extra) -> None:
        message = f"{type(error).__name__}: {error}"
        log.error("player %s error: %s", where, message)
        self._event(events.PLAYER_ERROR, {"where": where, "error": message, "frame": self.frame,
                                     **extra})

    def _event(self, name: str, payload: dict) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(name, payload)
        except Exception:                       # a listener failing never stops the picture
            log.exception("player event listener failed on %s", name)


def _safe_id(loop) -> str | None:
    try:
        return _loop_id(loop)
    except Exception:
        return None


def _check_segment(packets: list[Packet], length: int) -> None:
    if len(packets) != length or any(p.dts != i for i, p in enumerate(packets)):
        raise RuntimeError(f"the encoder gave {len(packets)} packets for a {length}-frame "
                           f"segment, expected one per frame in order")
    if not packets[0].keyframe:
        raise RuntimeError("the encoded segment does not start with a keyframe")

"""Segments: the encoded pieces the player re-sends or makes as they come due.

A loop is prepared once: its frames fitted to the output size and converted to the
output fps, and (when any output takes packets) one repetition encoded as a
closed-GOP H.264 segment whose packets every later repetition re-sends. A crossfade
is a closed-GOP segment of its own, encoded before it starts (in real time in a
worker, while the current loop plays on). A live segment is encoded a frame at a
time, a few frames ahead of the clock, by a thread of its own: the crossfade to an
urgent loop that cannot wait for the above.

Every background thread of the player starts in one place (Workers.start), named.
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable

import numpy as np

from lofid.encode import SegmentEncoder, VideoSettings, YuvConverter, encode_segment
from lofid.media import Packet
from lofid.player.compose import Fit, Pictures, crossfade_picture, frame_map
from lofid.player.settings import PlayerSettings


# A crossfade is encoded before it starts; in real time its start is planned this
# much later than the encode is expected to take.
_PLAN_MARGIN_S = 0.3
_PLAN_SAFETY = 1.25

# A live segment is encoded this many frames ahead of the clock (more when the
# encoder holds frames back for its threads): enough to absorb a slow frame, few
# enough that a new request is not kept waiting behind pictures already made.
_LIVE_AHEAD = 6
# How long the clock waits for a live frame before it counts the segment as failed.
LIVE_TIMEOUT_S = 20.0


class Cancelled(Exception):
    """The player stopped (or no longer wants the loop) while it was being prepared."""


def loop_id(loop) -> str:
    if loop.key:
        return str(loop.key)
    return f"{loop.spec.id}-{loop.generator}-{loop.seed}"


def safe_id(loop) -> str | None:
    try:
        return loop_id(loop)
    except Exception:
        return None


def _loop_label(loop) -> str:
    label = getattr(loop.spec, "label", None)
    return label() if callable(label) else str(loop.spec.id)


def _check_segment(packets: list[Packet], length: int) -> None:
    if len(packets) != length or any(p.dts != i for i, p in enumerate(packets)):
        raise RuntimeError(f"the encoder gave {len(packets)} packets for a {length}-frame "
                           f"segment, expected one per frame in order")
    if not packets[0].keyframe:
        raise RuntimeError("the encoded segment does not start with a keyframe")


class Workers:
    """The player's background threads: each starts here, named, and all are joined
    when the player ends."""

    def __init__(self):
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self, name: str, target: Callable, *args) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=f"player {name}", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return thread

    def join(self, timeout: float) -> None:
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            if t is not threading.current_thread():
                t.join(timeout)


# --------------------------------------------------------------------------- repetitions

@dataclass
class Prepared:
    """A loop made ready to play: how to make each output frame of one repetition,
    and (when any output takes packets) that repetition encoded once."""
    loop: Any
    id: str
    label: str
    source: np.ndarray                          # the loop's own frames, not copied
    frame_map: list[tuple[int, int, int]]
    fit: Fit
    keyframes: frozenset[int] = frozenset()     # repetition offsets where a GOP starts
    packets: list[Packet] | None = None         # pts/dts 0..length-1
    wall_s: float = 0.0                         # how long preparing took
    # For a loop still decoding from the library: blocks until its frame i is there.
    wait: Callable[[int], None] | None = None
    # The overlays its frames (and packets) are drawn with: a lofid.overlays Look, or None.
    look: Any = None

    def relooked(self, look) -> "Prepared":
        """The same loop with other overlay text: its repetition to encode again."""
        return dataclasses.replace(self, look=look, packets=None, wall_s=0.0)

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

    def payload(self, n: int) -> dict:
        """What a loop_started event says of it, starting at clock frame n."""
        loop = self.loop
        return {"label": self.label, "loop": self.id, "spec": str(loop.spec.id),
                "seed": loop.seed, "frame": n, "fps": float(loop.fps), "frames": self.length}


@dataclass
class NextLoop:
    """A loop on its way in: prepared (and its crossfade encoded) by the worker, to
    follow `outgoing`, whose repetition offset 0 fell on clock frame `anchor`."""
    loop: Any
    asked_at: int                               # clock when the source handed it over
    outgoing: Prepared
    anchor: int
    start: int | None = None                    # outgoing repetition offset the crossfade starts at
    entry: int = 0                              # incoming repetition offset it starts at
    incoming: Prepared | None = None
    length: int = 0                             # crossfade frames; 0 cuts
    packets: list[Packet] | None = None
    ready_at: int | None = None                 # clock when all of that was done
    handed_wall: float = 0.0                    # wall clock when the source handed it over
    error: BaseException | None = None
    # Set for a change of overlay text only: `loop` is the outgoing one, shown on with
    # this Look, its text fading in over the frames up to a keyframe.
    look: Any = None
    fade: int = 0                               # frames the text fades over (<= length)

    def __post_init__(self) -> None:
        self.done = threading.Event()
        self.cancel = threading.Event()         # an urgent loop came first: drop this one


# --------------------------------------------------------------------------- live segments

@dataclass
class LivePlan:
    """What a live segment shows from its `start` frame: a `length`-frame crossfade
    from `outgoing` (at `out_offset` of its repetition) into `incoming`, which enters
    at offset `in_offset` and then repeats on."""
    start: int
    outgoing: Prepared
    out_offset: int
    incoming: Prepared
    in_offset: int
    length: int
    cadence: int = 1
    phase: int = 0
    text_only: bool = False                     # the same loop, its overlay text changing

    @classmethod
    def retext(cls, start: int, loop: Prepared, offset: int, relooked: Prepared,
               length: int) -> "LivePlan":
        """`loop` on from `offset` at clock `start`, its overlay text fading over
        `length` frames into `relooked`'s (the same loop, another Look)."""
        cadence = loop.cadence
        return cls(start=start, outgoing=loop, out_offset=offset, incoming=relooked,
                   in_offset=offset, length=length, cadence=cadence, phase=offset % cadence,
                   text_only=True)

    @classmethod
    def make(cls, start: int, outgoing: Prepared, out_offset: int, incoming: Prepared,
             length: int) -> "LivePlan":
        # The incoming loop enters at its first frame, shown for as many clock ticks as
        # the outgoing one has left of its current frame: both then change frames on
        # the same ticks, and each crossfade picture is made once per loop frame.
        cadence = outgoing.cadence
        if incoming.cadence != cadence:
            cadence = 1
        phase = out_offset % cadence
        return cls(start=start, outgoing=outgoing, out_offset=out_offset, incoming=incoming,
                   in_offset=phase, length=length, cadence=cadence, phase=phase)

    @classmethod
    def back_to(cls, start: int, loop: Prepared, offset: int) -> "LivePlan":
        """Just `loop` again from `offset` of its repetition at clock `start`: no crossfade."""
        return cls(start=start, outgoing=loop, out_offset=offset, incoming=loop,
                   in_offset=offset, length=0)

    @property
    def anchor(self) -> int:
        """The clock at which the incoming loop's offset 0 falls."""
        return self.start - self.in_offset

    def crossfading(self, n: int) -> bool:
        return n < self.start + self.length

    def picture(self, n: int, out_pictures: Pictures, in_pictures: Pictures,
                convert: YuvConverter | None = None):
        """Frame n: RGB, or with `convert` (the pictures' own), a yuv420p frame."""
        k = n - self.start
        if k < self.length:
            return crossfade_picture(out_pictures, self.out_offset, in_pictures,
                                     self.in_offset, k, self.length, convert,
                                     self.cadence, self.phase)
        offset = self.in_offset + k
        return in_pictures.yuv(offset) if convert else in_pictures(offset)


class LiveSegment:
    """A live plan encoded as one closed-GOP segment, a frame at a time, by a thread
    that keeps a few frames ahead of the clock; packets carry the clock's pts."""

    def __init__(self, plan: LivePlan, video: VideoSettings, stop: threading.Event,
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

    def start(self, workers: Workers) -> None:
        workers.start("live", self._run)

    def packet(self, n: int, timeout: float = LIVE_TIMEOUT_S) -> Packet:
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

    def _run(self) -> None:
        plan = self.plan
        convert = YuvConverter(self.video)
        out_pictures, in_pictures = Pictures(plan.outgoing, convert), Pictures(plan.incoming,
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


# --------------------------------------------------------------------------- the maker

class Segments:
    """Prepares loops and encodes their segments for one player.

    `clock()` is the player's frame counter (for planning a crossfade's start);
    `on_error(where, error, **extra)` reports what failed. `encoding` is whether any
    output takes packets: without one nothing is encoded at all."""

    def __init__(self, settings: PlayerSettings, stats: dict, stop: threading.Event,
                 clock: Callable[[], int], on_error: Callable[..., None]):
        self.settings = settings
        self.video = settings.video_settings()
        self.stats = stats
        self.stop = stop
        self.clock = clock
        self.on_error = on_error
        self.workers = Workers()
        self.encoding = False
        # An encoder opened ahead for the next live segment: opening one at 1080p
        # takes milliseconds a request should not wait for. Only kept by a player
        # whose source can ask for urgent loops.
        self.keeps_spare = False
        self.spare_encoder: SegmentEncoder | None = None
        self.prepare_wall_s = 0.0               # how long the last switch took to prepare
        self.overlays = None                    # lofid.overlays Overlays, or None
        self._aside: list[tuple[threading.Thread, threading.Event]] = []

    # --- one repetition -------------------------------------------------------------

    def prepare(self, loop, encode: bool = True) -> Prepared:
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
        prepared = Prepared(
            loop=loop, id=loop_id(loop), label=_loop_label(loop), source=frames,
            frame_map=frame_map(len(frames), Fraction(fps).limit_denominator(1001),
                                self.settings.fps),
            fit=Fit(self.settings.fit, w, h, width, height))
        # Where the GOPs of the repetition start: the encoder puts a keyframe on every
        # gop-th frame and nowhere else (checked once the packets exist).
        prepared.keyframes = frozenset(range(0, prepared.length, self.video.gop))
        # A loop whose frames are still decoding (opened from the library, or just back
        # from a Ray worker): each frame is waited for before it is read.
        if getattr(loop, "loader", None) is not None:
            prepared.wait = loop.wait_frame
        prepared.look = self.look_for(loop)
        if encode:
            self.encode_repetition(prepared)
        prepared.wall_s = time.perf_counter() - wall
        self.stats["loops_prepared"] += 1
        return prepared

    def encode_repetition(self, prepared: Prepared,
                          cancel: threading.Event | None = None) -> None:
        """Encode one repetition of a prepared loop, once, when any output takes packets."""
        if not self.encoding:
            return
        wall = time.perf_counter()
        pictures = Pictures(prepared, YuvConverter(self.video))
        cpu_pictures = 0.0
        cpu = time.process_time()

        def images():
            nonlocal cpu_pictures
            for offset in range(prepared.length):
                self._check_cancel(cancel)
                t = time.thread_time()
                image = pictures.yuv(offset)
                cpu_pictures += time.thread_time() - t
                yield image

        packets = encode_segment(images(), self.video)
        # The encoder's own threads count too: process time, less the pictures.
        self.stats["cpu_encode"] += time.process_time() - cpu - cpu_pictures
        self.stats["cpu_prepare"] += cpu_pictures
        self.stats["encodes"] += 1
        _check_segment(packets, prepared.length)
        keyframes = frozenset(i for i, p in enumerate(packets) if p.keyframe)
        if keyframes != prepared.keyframes:
            raise RuntimeError(f"the encoder put keyframes at {sorted(keyframes)[:6]}..., "
                               f"expected every {self.video.gop} frames")
        prepared.packets = packets
        prepared.wall_s += time.perf_counter() - wall

    def look_for(self, loop, ahead: float = 0.0):
        """The overlays over `loop` `ahead` seconds from now; None without overlays.
        An overlay that fails is reported and left out: the picture goes on."""
        if self.overlays is None:
            return None
        try:
            return self.overlays.look(loop, ahead)
        except Exception as e:
            self.on_error("overlay", e)
            return None

    def lead_s(self) -> float:
        """How far ahead of now a change prepared now is expected on the air."""
        if not self.settings.realtime:
            return 0.0
        return self.prepare_wall_s * _PLAN_SAFETY + _PLAN_MARGIN_S

    def text_fade_frames(self, outgoing: Prepared, start: int, look) -> int:
        """Frames from keyframe `start` of `outgoing`'s repetition over which its text
        fades into `look`'s: the fade's length, up to the next keyframe, so the new
        repetition's packets follow on a keyframe. 0: a cut at `start`."""
        fade = self.settings.frames(look.fade_from(outgoing.look)) if look is not None else 0
        if fade <= 0:
            return 0
        length = fade
        while (start + length) % outgoing.length not in outgoing.keyframes:
            length += 1
        return length

    def _check_cancel(self, cancel: threading.Event | None) -> None:
        if self.stop.is_set() or (cancel is not None and cancel.is_set()):
            raise Cancelled()

    def encode_aside(self, prepared: list[Prepared], after: threading.Event | None = None,
                     name: str = "repetition") -> None:
        """Encode the repetitions not encoded yet on a worker below the clock (and the
        live encoder): on a busy machine the cached packets come later, the frames on
        the air do not. Given `after`, it starts once that is set (the first live
        frame is out, which it would otherwise slow down). An earlier one still
        under way is no longer wanted: it is cancelled."""
        cancel = threading.Event()
        for _, earlier in self._aside:
            earlier.set()
        thread = self.workers.start(name, self._encode_aside, prepared, cancel, after)
        self._aside = [(t, c) for t, c in self._aside if t.is_alive()] + [(thread, cancel)]

    def wait_aside(self) -> None:
        """Wait for the latest repetitions encoded aside (an unpaced clock can)."""
        if self._aside:
            self._aside[-1][0].join()

    def _encode_aside(self, prepared: list[Prepared], cancel: threading.Event,
                      after: threading.Event | None) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):
            pass
        if after is not None:
            after.wait(LIVE_TIMEOUT_S)
        for p in prepared:
            if p.packets is not None:           # back to a loop encoded before
                continue
            try:
                if self.keeps_spare and self.spare_encoder is None:
                    self.spare_encoder = SegmentEncoder(self.video)
                self.encode_repetition(p, cancel)
            except Cancelled:
                return
            except Exception as e:
                if self.stop.is_set():
                    return
                self.stats["loops_failed"] += 1
                self.on_error("prepare", e, loop=p.id)

    # --- the next loop and its crossfade ---------------------------------------------

    def crossfade_frames(self) -> int:
        # Read when a crossfade is planned: a reloaded config changes it live.
        return self.settings.frames(self.settings.crossfade)

    def prepare_next(self, job: NextLoop) -> None:
        """Prepare the next loop and encode its crossfade (on a worker in real time).

        The crossfade needs only the two loops' pictures, not the incoming loop's
        packets, so it is encoded beside the incoming repetition, on a worker of its
        own: the switch comes sooner on a machine with more than one core."""
        try:
            outgoing = job.outgoing
            if job.look is not None:
                # New overlay text on the same loop: from a keyframe, at the same place
                # in its repetition, the text fading in up to a later keyframe.
                incoming = outgoing.relooked(job.look)
                if job.start is None:
                    job.start = self._plan_start(outgoing, job.anchor)
                length = self.text_fade_frames(outgoing, job.start, job.look)
                job.fade = min(length, self.settings.frames(job.look.fade_from(outgoing.look)))
                entry = job.start
            else:
                incoming = self.prepare(job.loop, encode=False)
                # Its overlays as they will read when it comes on the air (a clock).
                incoming.look = self.look_for(job.loop, self.lead_s())
                length = self.crossfade_frames()
                # A loop has no first frame to the eye: the incoming one enters where its
                # repetition, and so a keyframe of its cached packets, follows the crossfade.
                entry = -length % incoming.length
                if job.start is None:
                    job.start = self._plan_start(outgoing, job.anchor)
            if length and self.encoding:
                crossfade: dict = {}

                def encode_crossfade():
                    try:
                        crossfade["packets"] = self._encode_crossfade(
                            outgoing, job.start, incoming, entry, length, job.cancel, job.fade)
                    except BaseException as e:
                        crossfade["error"] = e
                worker = self.workers.start("crossfade", encode_crossfade)
                self.encode_repetition(incoming, job.cancel)
                worker.join()
                if "error" in crossfade:
                    raise crossfade["error"]
                job.packets = crossfade["packets"]
            else:
                self.encode_repetition(incoming, job.cancel)
            self.prepare_wall_s = time.perf_counter() - job.handed_wall
            job.incoming, job.entry, job.length = incoming, entry, length
            job.ready_at = self.clock()
        except Exception as e:
            job.error = Cancelled() if self.stop.is_set() or job.cancel.is_set() else e
        finally:
            job.done.set()

    def prepare_next_aside(self, job: NextLoop) -> None:
        self.workers.start("prepare", self.prepare_next, job)

    def _plan_start(self, outgoing: Prepared, anchor: int) -> int:
        """The keyframe of the outgoing repetition at which the crossfade starts: the
        first one after the incoming repetition and the crossfade are expected to be
        encoded, judged by how long that took last time (or by its size, the first)."""
        seconds = self.prepare_wall_s * _PLAN_SAFETY + _PLAN_MARGIN_S
        target = (self.clock() - anchor) % outgoing.length \
            + math.ceil(seconds * self.settings.fps)
        target %= outgoing.length
        later = [k for k in outgoing.keyframes if k >= target]
        return min(later) if later else 0

    def _encode_crossfade(self, outgoing: Prepared, out_offset: int, incoming: Prepared,
                          in_offset: int, length: int,
                          cancel: threading.Event | None = None, fade: int = 0) -> list[Packet]:
        cpu = time.process_time()
        out_pictures, in_pictures = Pictures(outgoing), Pictures(incoming)
        convert = YuvConverter(self.video)
        # Loops shown at a whole number of output frames per frame (10 fps at 30) change
        # only every `cadence` frames; when both are in step, so does the mix, and each
        # crossfade picture is made once and handed to the encoder `cadence` times.
        cadence = outgoing.cadence
        if (incoming.cadence != cadence or out_offset % cadence or in_offset % cadence):
            cadence = 1

        def images():
            picture = None
            for k in range(length):
                self._check_cancel(cancel)
                if k % cadence == 0:
                    picture = crossfade_picture(out_pictures, out_offset, in_pictures,
                                                in_offset, k, length, convert, cadence,
                                                fade=fade)
                yield picture

        packets = encode_segment(images(), self.video)
        self.stats["cpu_crossfade"] += time.process_time() - cpu
        _check_segment(packets, length)
        return packets

    # --- live ---------------------------------------------------------------------------

    def open_spare(self) -> None:
        if self.encoding and self.keeps_spare and self.spare_encoder is None:
            self.spare_encoder = SegmentEncoder(self.video)

    def start_live(self, plan: LivePlan) -> LiveSegment:
        """The live segment for `plan`, encoding from now on; the incoming repetition
        is encoded aside once its first packet is out."""
        encoder, self.spare_encoder = self.spare_encoder, None
        live = LiveSegment(plan, self.video, self.stop, encoder)
        live.start(self.workers)
        self.encode_aside([plan.incoming], after=live.first_out)
        return live

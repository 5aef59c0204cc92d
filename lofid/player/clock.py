"""The clock: one frame counter, never reset, and what it is playing (its mode).

Every timestamp on the output derives from the counter (video pts = n in 1/fps,
audio pts = n * 48000 / fps samples), so nothing of a source loop's own timing
reaches the outputs. The clock is in one of three modes:

- REPEATING: the current loop plays, its cached packets re-sent with shifted
  timestamps. At each keyframe of its repetition the source is asked for a next
  loop; that is prepared (and its crossfade encoded) aside, and the crossfade starts
  at the first planned keyframe after it is done: the clock never waits on an
  encoder. Unpaced (files, benchmarks) the clock waits instead and crosses where
  the loop arrived.
- CROSSFADING: a crossfade encoded beforehand is on the air; at its end the incoming
  loop's cached packets follow at a keyframe.
- LIVE: the source marked a loop urgent (a scene asked for over the control socket
  or by the music), and it crosses in at the very next frame, on a segment encoded
  as the frames come due (lofid.player.segments.LiveSegment). Once the crossfade is
  over and the incoming loop's repetition is encoded, the clock goes back to
  REPEATING at the next keyframe of that repetition. A rotation being prepared when
  an urgent loop comes is dropped.

Outputs that encode for themselves (wants == "frames") get the composed picture of
every output frame, made again from the source loop, and raw audio.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np

from lofid.encode import AudioEncoder, video_stream_info
from lofid.media import AUDIO_CHANNELS, AUDIO_RATE, AudioChunk, VideoFrame
from lofid.player.compose import Pictures, crossfade_picture
from lofid.player.router import Router
from lofid.player.segments import (Cancelled, LivePlan, LiveSegment, NextLoop, Prepared,
                                   Segments, safe_id)
from lofid.player.settings import PlayerSettings

log = logging.getLogger("lofid.player")

# How often the paced clock, waiting for a frame's time, asks for an urgent loop.
_URGENT_POLL_S = 0.005
# How often (in frames) a paced clock looks whether the overlays' text has changed.
_TEXT_POLL_FRAMES = 10
# How often an unpaced clock, waiting for a loop the source says is coming, asks again.
_COMING_POLL_S = 0.02


class LoopSource(Protocol):
    def first(self) -> Any: ...            # blocks until a first loop exists
    def next_ready(self) -> Any | None: ...  # a loop to crossfade to, or None; never blocks
    # Optional: urgent() -> a loop to cross to at once, or None; polled every frame
    # while no crossfade is on the air, so it must be cheap and never block.
    # Optional: coming() -> True while a next loop is being made that an unpaced
    # player may wait for (it polls next_ready meanwhile); cheap, never blocks.


class Mode(enum.Enum):
    REPEATING = "repeating"        # the current loop's cached repetition
    CROSSFADING = "crossfading"    # a crossfade encoded beforehand
    LIVE = "live"                  # a live segment: crossing to an urgent loop, then it


@dataclass
class _Crossfade:
    """A crossfade on the air (CROSSFADING)."""
    job: NextLoop
    start: int                                  # clock of its first frame
    out_pictures: Pictures
    in_pictures: Pictures


class Player:
    """Plays loops from `source` to `outputs` (a list, or a Router) on one clock until
    `duration` or stop()."""

    def __init__(self, source: LoopSource, outputs, audio, settings: PlayerSettings,
                 on_event: Callable[[str, dict], None] | None = None, overlays=None):
        if not isinstance(settings, PlayerSettings):
            raise ValueError(f"settings must be PlayerSettings, got {type(settings).__name__}")
        for name in ("first", "next_ready"):
            if not callable(getattr(source, name, None)):
                raise ValueError(f"source must have {name}() (a LoopSource), "
                                 f"got {type(source).__name__}")
        if audio is not None and not callable(getattr(audio, "read", None)):
            raise ValueError(f"audio must be an AudioTrack or None, got {type(audio).__name__}")
        self.source = source
        self.audio = audio
        self.settings = settings
        # The one registry of outputs; a Router given a player (router.player = ...)
        # takes this one's place.
        self.router: Router = outputs if isinstance(outputs, Router) else Router.of(outputs)
        self._on_event = on_event
        self._fps = settings.fps
        self._stop = threading.Event()
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
            "overlay_changes": 0, "overlay_live": 0, "overlay_frame": None,
        }
        self._segments = Segments(settings, self.stats, self._stop, lambda: self.frame,
                                  self._error)
        # Text drawn over the picture (lofid.overlays.Overlays): a change of its text
        # encodes the repetition again, like a next loop of the same picture.
        self.overlays = overlays
        self._segments.overlays = overlays
        self._audio_encoder: AudioEncoder | None = None
        self.frame: int = settings.start_frame   # the clock: the next frame to make
        self.mode = Mode.REPEATING
        self._current: Prepared | None = None
        self._anchor = 0                        # clock at which the current loop's offset 0 fell
        self._pictures: Pictures | None = None  # the current loop's, for frame outputs
        self._job: NextLoop | None = None       # a next loop being prepared (REPEATING)
        self._crossfade: _Crossfade | None = None        # CROSSFADING
        self._plan: LivePlan | None = None               # LIVE: what it shows
        self._live: LiveSegment | None = None            # LIVE: its encoder, for packet outputs
        self._out_pictures: Pictures | None = None       # LIVE: the outgoing loop's

    # --- public ---------------------------------------------------------------------

    @property
    def outputs(self) -> list:
        """The outputs playing."""
        return self.router.outputs

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
        except Cancelled:
            # A stop that came while a repetition was being encoded in this thread
            # (the first loop's, or an unpaced clock's) ends the run like any stop.
            if not self._stop.is_set():
                raise
        finally:
            self._shutdown()
            self.stats["cpu_total"] += time.process_time() - cpu

    # --- the three steps of run() ---------------------------------------------------

    def _startup(self) -> None:
        self._audio_encoder = AudioEncoder()
        info = video_stream_info(self._segments.video, self._audio_encoder)
        self.router.start(info, lambda e, name: self._error("output", e, output=name))
        # Without a packet output nothing needs H.264: skip the encoder entirely.
        self._segments.encoding = bool(self.router.packet_outputs)
        current = self._segments.prepare(self.source.first())
        # The first measure of how long a switch takes to prepare (less its crossfade,
        # which is encoded beside the repetition).
        self._segments.prepare_wall_s = current.wall_s
        self._set_current(current, self.frame)
        self._segments.keeps_spare = callable(getattr(self.source, "urgent", None))
        self._segments.open_spare()
        self._event("loop_started", current.payload(self.frame))

    def _play(self) -> None:
        n0 = self.frame
        end = None
        if self.settings.duration is not None:
            end = n0 + self.settings.frames(self.settings.duration)
        t0 = time.monotonic()
        while not self._stop.is_set() and (end is None or self.frame < end):
            n = self.frame
            if self.router.changes_pending:     # outputs added or removed while playing
                self._apply_output_changes()
            if self.settings.realtime and not self._pace(n - n0, t0, n):
                break
            self._maybe_go_live(n)
            if self.mode is Mode.REPEATING:
                self._at_keyframe_maybe_switch(n)
            if self.mode is Mode.LIVE:
                self._live_frame(n)
            elif self.mode is Mode.CROSSFADING:
                self._crossfade_frame(n)
            else:
                self._repetition_frame(n)
            self._audio_frame(n)
            self.frame = n + 1
            self.stats["frames"] += 1

    def _shutdown(self) -> None:
        self._stop.set()                        # also cancels a preparation under way
        if self._live is not None:
            self._live.stop()
        self._segments.workers.join(timeout=30)
        if self._audio_encoder is not None:
            try:
                for p in self._audio_encoder.flush():
                    self.router.send_packet(p)
            except Exception as e:
                self._error("audio", e)
        self.router.close()
        self._count_dropped()

    def _apply_output_changes(self) -> None:
        self.router.apply_changes(hold_frame_outputs=self.mode is Mode.CROSSFADING)
        if self.router.packet_outputs and not self._segments.encoding:
            # Until now only frame outputs played, so the loop on the air has no
            # packets: encode it aside; the new output starts at its next keyframe.
            self._segments.encoding = True
            job = self._job
            pending = [self._current] + ([job.incoming] if job and job.done.is_set()
                                         and job.incoming is not None else [])
            self._segments.encode_aside(pending, name="encode for a new output")

    def _set_current(self, prepared: Prepared, anchor: int,
                     pictures: Pictures | None = None) -> None:
        """`prepared` is the loop on the air; its repetition's offset 0 fell at `anchor`."""
        self._current, self._anchor = prepared, anchor
        self._pictures = pictures or Pictures(prepared)

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
        if self.mode is Mode.CROSSFADING or (self.mode is Mode.LIVE
                                             and self._plan.crossfading(n)):
            return
        loop = self._ask_source("urgent")
        if loop is not None:
            self._go_live(loop, n)
        elif self.overlays is not None and self.overlays.take_urgent():
            self._go_live_text(n)

    # --- REPEATING and CROSSFADING ------------------------------------------------------

    def _at_keyframe_maybe_switch(self, n: int) -> None:
        """At a keyframe of the current repetition: ask for a next loop, or start the
        crossfade to one that is ready."""
        cur = self._current
        offset = (n - self._anchor) % cur.length
        if not cur.is_keyframe(offset):
            if self.settings.realtime and self._job is None and n % _TEXT_POLL_FRAMES == 0:
                # New overlay text is prepared from when it is seen, not from the next
                # keyframe: on the air one keyframe after it is encoded.
                look = self._new_look(cur)
                if look is not None:
                    self._job = NextLoop(loop=cur.loop, asked_at=n, outgoing=cur,
                                         anchor=self._anchor, handed_wall=time.perf_counter(),
                                         look=look)
                    self._segments.prepare_next_aside(self._job)
            return
        self._count_dropped()
        job = self._job
        if job is None:
            loop = self._ask_source("next_ready")
            look = self._new_look(cur) if loop is None else None
            if loop is None and look is None and not self.settings.realtime:
                loop = self._wait_for_coming()
            if loop is None and look is None:
                return
            job = self._job = NextLoop(loop=loop if look is None else cur.loop, asked_at=n,
                                       outgoing=cur, anchor=self._anchor,
                                       handed_wall=time.perf_counter(), look=look)
            if self.settings.realtime:
                self._segments.prepare_next_aside(job)
            else:
                # Not paced, the clock can wait: prepare in place and cross at this
                # very keyframe, rather than race ahead of the preparation.
                job.start = offset
                self._segments.prepare_next(job)
        if not job.done.is_set():
            return
        if job.error is not None:
            self._job = None
            if not isinstance(job.error, Cancelled):
                self.stats["loops_failed"] += 1
                self._error("prepare", job.error, loop=safe_id(job.loop))
            return
        if job.start != offset:
            return                              # planned for a later keyframe
        self._job = None
        self._begin_crossfade(job, n)

    def _new_look(self, cur: Prepared):
        """The overlays' Look when its text differs from the one the repetition on the
        air was encoded with (as it will read once a change is on the air), else None."""
        if self.overlays is None:
            return None
        look = self._segments.look_for(cur.loop, self._segments.lead_s())
        if look is None or look.same(cur.look):
            return None
        return look

    def _begin_crossfade(self, job: NextLoop, n: int) -> None:
        outgoing, incoming = self._current, job.incoming
        if job.look is not None:                # the same loop, new overlay text
            self.stats["overlay_changes"] += 1
            self.stats["overlay_frame"] = n
            if job.length == 0:
                self._set_current(incoming, n - job.entry)
                return
            self._crossfade = _Crossfade(job=job, start=n, out_pictures=self._pictures,
                                         in_pictures=Pictures(incoming))
            self.mode = Mode.CROSSFADING
            return
        self.stats["crossfades"] += 1
        self.stats["ready_to_crossfade_frames"] = n - job.ready_at
        self.stats["asked_to_crossfade_frames"] = n - job.asked_at
        self._event("crossfade", {"from": outgoing.id, "to": incoming.id, "frame": n,
                                  "frames": job.length,
                                  "seconds": float(job.length / self._fps),
                                  "live": False, "wall": time.time()})
        self._event("loop_started", incoming.payload(n))
        if job.length == 0:                     # no crossfade: a cut on a keyframe
            self._set_current(incoming, n)
            return
        self._crossfade = _Crossfade(job=job, start=n, out_pictures=self._pictures,
                                     in_pictures=Pictures(incoming))
        self.mode = Mode.CROSSFADING

    def _crossfade_frame(self, n: int) -> None:
        xf = self._crossfade
        job = xf.job
        k = n - xf.start
        if job.packets is not None:
            self.router.send_packet(job.packets[k], xf.start)
        if self.router.frame_outputs:
            image = crossfade_picture(xf.out_pictures, job.start, xf.in_pictures, job.entry,
                                      k, job.length, fade=job.fade)
            self.router.send_frame(VideoFrame(index=n, image=image))
        if k == job.length - 1:
            # The frame after this one is the incoming loop's offset 0, a keyframe:
            # its cached packets go on from there.
            self._set_current(job.incoming, xf.start - job.entry, xf.in_pictures)
            self._crossfade = None
            self.mode = Mode.REPEATING

    def _repetition_frame(self, n: int) -> None:
        cur = self._current
        offset = (n - self._anchor) % cur.length
        if offset == 0:
            self.stats["repetitions"] += 1
        if cur.packets is not None:
            self.router.send_packet(cur.packets[offset], n - offset)
        if self.router.frame_outputs:
            self.router.send_frame(VideoFrame(index=n, image=self._pictures(offset)))

    # --- LIVE: urgent loops -------------------------------------------------------------

    def _go_live(self, loop, n: int) -> None:
        """Start crossing to `loop` at frame n, encoding as the frames come due."""
        try:
            incoming = self._segments.prepare(loop, encode=False)
        except Exception as e:
            self.stats["loops_failed"] += 1
            self._error("prepare", e, loop=safe_id(loop))
            return
        if self._job is not None:               # a rotation on its way gives way
            self._job.cancel.set()
            self._job = None
        outgoing, out_offset = self._current, (n - self._anchor) % self._current.length
        length = self._segments.crossfade_frames()
        self._begin_live(LivePlan.make(n, outgoing, out_offset, incoming, length))
        self.stats["live_crossfades"] += 1
        self._event("loop_started", incoming.payload(n))

    def _go_live_text(self, n: int) -> None:
        """Show the overlays' new text from frame n, fading in on a live segment, like a
        requested scene; the loop plays on where it was."""
        cur = self._current
        look = self._segments.look_for(cur.loop)
        if look is None or look.same(cur.look):
            return
        if self._job is not None and self._job.look is not None:
            # A text change on its way gives way. A next loop being prepared does not
            # (the source counts it as handed over): it crosses in as planned, with the
            # text it was prepared with, and its repetition is encoded again after.
            self._job.cancel.set()
            self._job = None
        offset = (n - self._anchor) % cur.length
        length = self.settings.frames(look.fade_from(cur.look))
        self._begin_live(LivePlan.retext(n, cur, offset, cur.relooked(look), length))
        self.stats["overlay_changes"] += 1
        self.stats["overlay_live"] += 1
        self.stats["overlay_frame"] = n

    def _begin_live(self, plan: LivePlan) -> None:
        if self._live is not None:
            self._live.stop()
        self._live = self._segments.start_live(plan) if self._segments.encoding else None
        self._out_pictures = Pictures(plan.outgoing)
        self._plan = plan
        self._set_current(plan.incoming, plan.anchor)
        self.mode = Mode.LIVE

    def _live_frame(self, n: int) -> None:
        plan, cur = self._plan, self._current
        offset = (n - self._anchor) % cur.length
        at_keyframe = not plan.crossfading(n) and cur.is_keyframe(offset)
        if at_keyframe and cur.packets is None and self._segments.encoding \
                and not self.settings.realtime:
            # Not paced, the clock can wait for the cached repetition instead.
            self._segments.wait_aside()
        if at_keyframe and (cur.packets is not None or not self._segments.encoding):
            # The cached repetition is ready: back to re-sending its packets, from a
            # keyframe of it, so the stream joins there.
            if self._live is not None:
                self._live.stop()
            self._live, self._plan, self._out_pictures = None, None, None
            self.mode = Mode.REPEATING
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
            self.router.send_packet(packet)
            self.stats["live_frames"] += 1
        if self.router.frame_outputs:
            try:
                image = plan.picture(n, self._out_pictures, self._pictures)
            except Exception as e:
                self._live_failed(n, e, packets_sent=self._live is not None)
                return
            self.router.send_frame(VideoFrame(index=n, image=image))
        if n == plan.start and plan.outgoing is not plan.incoming and not plan.text_only:
            self._event("crossfade", {"from": plan.outgoing.id, "to": plan.incoming.id,
                                      "frame": n, "frames": plan.length,
                                      "seconds": float(plan.length / self._fps),
                                      "live": True, "wall": time.time()})

    def _live_failed(self, n: int, error: BaseException, packets_sent: bool = False) -> None:
        """The incoming loop could not be shown (its frames did not decode, say): cut
        back to the loop that was playing, live again, from this frame (from the next
        one for packet outputs when frame n's packet went out already)."""
        plan = self._plan
        self.stats["live_failures"] += 1
        self._error("live", error, loop=plan.incoming.id)
        outgoing = plan.outgoing
        if outgoing is plan.incoming or self.stats["live_failures"] > 3:
            raise error
        offset = (n - plan.start + plan.out_offset) % outgoing.length
        if packets_sent:
            # Frame n's packet went out: the new segment starts at n + 1, and frame
            # outputs get frame n of the loop that plays on.
            self._begin_live(LivePlan.back_to(n + 1, outgoing, (offset + 1) % outgoing.length))
            self.router.send_frame(VideoFrame(index=n, image=self._pictures(offset)))
            return
        self._begin_live(LivePlan.back_to(n, outgoing, offset))
        self._live_frame(n)

    # --- audio ------------------------------------------------------------------------

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
        packets = self._audio_encoder.encode(samples, start) if self._segments.encoding else []
        self.stats["cpu_audio"] += time.thread_time() - cpu
        if self.router.frame_outputs:
            self.router.send_frame(AudioChunk(start=start, samples=samples))
        for p in packets:
            self.router.send_packet(p)

    def _count_dropped(self) -> None:
        self.stats["dropped"] = self.router.dropped()

    # --- the source ---------------------------------------------------------------------

    def _ask_source(self, what: str):
        """source.next_ready() or source.urgent() (when it has one); a director hiccup
        is reported and never stops the picture."""
        ask = getattr(self.source, what, None)
        if ask is None:
            return None
        try:
            return ask()
        except Exception as e:
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
            loop = self._ask_source("next_ready")
            if loop is not None:
                return loop
        return None

    # --- events ---------------------------------------------------------------------

    def _error(self, where: str, error: BaseException, **extra) -> None:
        message = f"{type(error).__name__}: {error}"
        log.error("player %s error: %s", where, message)
        self._event("player_error", {"where": where, "error": message, "frame": self.frame,
                                     **extra})

    def _event(self, name: str, payload: dict) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(name, payload)
        except Exception:                       # a listener failing never stops the picture
            log.exception("player event listener failed on %s", name)

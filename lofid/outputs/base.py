"""What every output shares: a bounded queue and a worker (the packets and the stream
description it takes are lofid.media's).

An output never stalls the player's clock, nor the other outputs: the player hands
it items with `send()`; a worker thread of the output's own takes them from a
bounded queue and writes them. When the queue is full the output is behind (or its
writer is stuck: a FIFO nobody reads, a hung network file system) and the item is
dropped and counted for that output alone, whose state becomes "stalled" until its
worker catches up. Video is dropped in whole GOPs -- after a drop the output waits
for the next keyframe -- so what it does write stays decodable.

The one exception is `lossless` (files in a run that is not paced to the wall
clock; see lofid.outputs.file.RecordingOutput): send() then waits for room, so a
slow muxer or encoder slows the run down instead of losing frames -- but only while
the worker makes progress. A writer that has written nothing for `stall_timeout`
seconds is stuck, not slow: the output turns "stalled" and drops like any other, so
one frozen file cannot hold up the run forever.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable

from lofid.errors import Failure
from lofid.media import Packet, StreamInfo

log = logging.getLogger("lofid.outputs")


class OutputError(Failure):
    """An output cannot be opened or has failed; the message names the output."""


@dataclass
class OutputStats:
    sent: int = 0
    written: int = 0
    dropped: int = 0
    errors: int = 0
    last_error: str | None = None


class Output:
    """Base class: a bounded queue and a worker thread.

    Subclasses set `wants` ("packets" or "frames"), and implement `_open(info)`,
    `_write(item)` and `_close()`; they run on the worker thread, so they may block
    without stalling anyone else. An exception in them marks the output failed
    (reported through `on_state`), never propagates to the player.
    """

    wants = "packets"
    queue_size = 512                  # items; about 8 s of 1080p30 video + audio packets
    lossless = False                  # wait for room instead of dropping (see above)
    stall_timeout = 10.0              # s without a write that make a lossless output stalled

    def __init__(self, name: str, on_state: Callable[[str, str, str | None], None] | None = None):
        self.name = name
        # new, starting, running, stalled, reconnecting, failed, closed
        self.state = "new"
        self.stats = OutputStats()
        self._on_state = on_state
        self._queue: queue.Queue = queue.Queue(self.queue_size)
        self._thread: threading.Thread | None = None
        self._waiting_for_keyframe = False
        self._progress = time.monotonic()     # when the worker last wrote (or opened)
        self._stall_lock = threading.Lock()   # stalled <-> running, from two threads

    # --- the player's side: never blocks -----------------------------------------

    def start(self, info: StreamInfo) -> None:
        self.info = info
        self._set_state("starting")
        self._thread = threading.Thread(target=self._run, name=f"output {self.name}", daemon=True)
        self._thread.start()

    def send(self, item) -> bool:
        """Queue an item; False when it was dropped because the output is behind."""
        if self.state in ("failed", "closed"):
            return False
        self.stats.sent += 1
        if isinstance(item, Packet) and item.kind == "video" and self._waiting_for_keyframe:
            if not item.keyframe:
                self.stats.dropped += 1
                return False
            self._waiting_for_keyframe = False
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            pass
        if self.lossless and self.state != "stalled" and self._wait_for_room(item):
            return True
        if self.state in ("failed", "closed"):
            return False
        self.stats.dropped += 1
        self._waiting_for_keyframe = True
        self._mark_stalled()
        return False

    def _wait_for_room(self, item) -> bool:
        """Waits while the worker makes progress; False once it has made none for
        stall_timeout seconds (or has ended)."""
        while True:
            try:
                self._queue.put(item, timeout=0.25)
                return True
            except queue.Full:
                if self.state in ("failed", "closed") or self._thread is None \
                        or not self._thread.is_alive() \
                        or time.monotonic() - self._progress > self.stall_timeout:
                    return False

    def _mark_stalled(self) -> None:
        with self._stall_lock:
            if self.state in ("stalled", "failed", "closed"):
                return
            self._state_before_stall = self.state
            detail = (f"its queue of {self.queue_size} is full: dropping until it catches up; "
                      f"{self.stats.dropped} dropped")
            self._set_state("stalled", detail)

    def _mark_caught_up(self) -> None:
        """On the worker, after a write: a stalled output whose queue has drained to
        half is running again."""
        if self.state != "stalled" or self._queue.qsize() > self.queue_size // 2:
            return
        with self._stall_lock:
            if self.state == "stalled":
                self._set_state(getattr(self, "_state_before_stall", "running"),
                                f"caught up; {self.stats.dropped} dropped in all")

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is queued, finalise, and stop the worker (at most `timeout` s)."""
        if self._thread is None:
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._queue.put(_STOP, timeout=0.1)
                break
            except queue.Full:
                if time.monotonic() > deadline or not self._thread.is_alive():
                    break
        self._thread.join(max(0.0, deadline - time.monotonic()))

    # --- the worker's side ---------------------------------------------------------

    def _run(self) -> None:
        try:
            self._open(self.info)
            self._progress = time.monotonic()
            with self._stall_lock:
                if self.state == "stalled":   # opening took long: the state says so
                    self._state_before_stall = "running"
                else:
                    self._set_state("running")
            while True:
                item = self._queue.get()
                if item is _STOP:
                    break
                self._write(item)
                self.stats.written += 1
                self._progress = time.monotonic()
                self._mark_caught_up()
        except Exception as e:  # an output failing must never take the player down
            self.stats.errors += 1
            self.stats.last_error = f"{type(e).__name__}: {e}"
            self._set_state("failed", self.stats.last_error)
            self._drain()
            return
        try:
            self._close()
        except Exception as e:
            self.stats.last_error = f"{type(e).__name__}: {e}"
            log.error("output %s did not close cleanly: %s", self.name, self.stats.last_error)
        self._set_state("closed")

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def _set_state(self, state: str, detail: str | None = None) -> None:
        """Every state change goes to on_state, whose owner says it where it wants;
        with no one listening, failures and reconnections go to the log."""
        self.state = state
        if self._on_state is not None:
            try:
                self._on_state(self.name, state, detail)
            except Exception:
                log.exception("output state callback failed")
        elif state in ("failed", "reconnecting"):
            log.log(logging.ERROR if state == "failed" else logging.WARNING,
                    "output %s: %s%s", self.name, state, f" ({detail})" if detail else "")

    # --- for subclasses ------------------------------------------------------------

    def _open(self, info: StreamInfo) -> None:
        pass

    def _write(self, item) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        pass


_STOP = object()

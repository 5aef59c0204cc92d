"""Stopping on SIGINT and SIGTERM in bounded time, whatever the process is doing.

The first signal starts a clean stop: `stop()` is called (the player ends its frame,
closes its outputs, and its run() returns). That must be over within `timeout`
seconds. If half of that passes and it is not (the main thread waits on an output
that never drains, say), the outputs are finished from here instead -- each on a
thread of its own, so one stuck output does not keep the others from finishing --
and when the time is up the process exits with 1, naming what could not be
finished. A second signal forces: what the outputs can flush in half a second they
flush, then the process exits with 130 (within a second).

Why not a plain signal handler: Python runs it in the main thread, between two
bytecodes. A main thread blocked in a long wait gets there late (and two signals
meanwhile make one call), and a thread stuck in C code that holds the GIL
(libavformat opening a FIFO that no one reads) stops every Python thread, handlers
and all. So:

- Python's C-level handler writes each signal's number to a wakeup fd
  (signal.set_wakeup_fd), which needs no GIL. A small watchdog process reads it.
- The watchdog relays each signal to a thread here, which acts on it at once,
  whatever the main thread is doing.
- The watchdog keeps time too: it kills this process (SIGKILL) when it is still
  there `timeout` + 2 s after the first signal or 0.9 s after the second one,
  the one thing that works when no Python thread can run. It ends when this
  process does (its end of the pipe closes).

Without a watchdog (it could not start) the handler does its work in the main
thread, as best it can.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Callable, Iterable

STOP_TIMEOUT_S = 10.0   # the first signal: over within this (systemd allows lofid 20 s)
FORCE_S = 0.9           # the second signal: gone within this (a second)
_FLUSH_S = 0.3          # forced, outputs get this long to flush
_KILL_GRACE_S = 2.0     # the watchdog's kill comes this long after our own deadline
FORCED_EXIT = 130
TIMED_OUT_EXIT = 1
SIGNALS = (signal.SIGINT, signal.SIGTERM)

# The watchdog: argv = parent pid, fd to read signals from, fd to relay them to,
# seconds after the first signal, seconds after the second. Standard library only
# (it runs with -I -S: no site, no PYTHONPATH).
_WATCHDOG = r"""
import os, select, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)       # Ctrl-C is for the daemon
parent, signals, relay = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
first_s, second_s = float(sys.argv[4]), float(sys.argv[5])
os.set_blocking(relay, False)
seen, deadline = 0, None
while True:
    wait = None if deadline is None else max(0.0, deadline - time.monotonic())
    if not select.select([signals], [], [], wait)[0]:
        os.write(2, b"lofid: the stop is stuck; killing the process\n")
        try:
            os.kill(parent, signal.SIGKILL)
        except OSError:
            pass
        break
    data = os.read(signals, 64)
    if not data:
        break                                       # the daemon is gone
    for number in data:
        if number not in (signal.SIGINT, signal.SIGTERM):
            continue
        seen += 1
        try:
            os.write(relay, bytes([number]))
        except OSError:
            pass
        limit = time.monotonic() + (first_s if seen == 1 else second_s)
        deadline = limit if deadline is None else min(deadline, limit)
"""


def _say(message: str) -> None:
    # Straight to fd 2: sys.stderr's lock may be held by a thread that is stuck.
    try:
        os.write(2, f"lofid: {message}\n".encode())
    except OSError:
        pass


def _flush_stdio(timeout: float) -> None:
    """Flush Python's stdout and stderr, unless that blocks (a full pipe)."""
    def flush():
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
    t = threading.Thread(target=flush, daemon=True, name="flush")
    t.start()
    t.join(timeout)


def finish(outputs: Iterable, deadline: float) -> tuple[list[str], list[str]]:
    """Close every output at once, each on a thread of its own, until `deadline`
    (monotonic): (names of those closed, names of the rest)."""
    outputs = list(outputs)

    def close(out):
        try:
            out.close(timeout=max(0.0, deadline - time.monotonic()))
        except Exception:
            pass
    closers = [threading.Thread(target=close, args=(o,), daemon=True,
                                name=f"finish {getattr(o, 'name', o)}") for o in outputs]
    for t in closers:
        t.start()
    for t in closers:
        t.join(max(0.0, deadline - time.monotonic()))
    done = [o for o in outputs if getattr(o, "state", None) == "closed"]
    return ([getattr(o, "name", str(o)) for o in done],
            [getattr(o, "name", str(o)) for o in outputs if o not in done])


class SignalStop:
    """SIGINT/SIGTERM handling for a running daemon: start() in the main thread
    before playing, done() once everything is finished, close() at the end.

    `stop` asks for a clean stop and must not block; `outputs` returns the outputs
    to finish (objects with name, state and close(timeout))."""

    def __init__(self, stop: Callable[[], None], outputs: Callable[[], Iterable],
                 timeout: float = STOP_TIMEOUT_S):
        self._stop = stop
        self._outputs = outputs
        self.timeout = timeout
        self.signals = 0                          # how many came
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._previous: dict = {}
        self._previous_fd: int | None = None
        self._wakeup: int | None = None           # our end of the watchdog's pipe
        self._relay: int | None = None
        self._relayed = False                     # the watchdog relays (the handler need not)
        self._child: subprocess.Popen | None = None

    def start(self) -> None:
        self._previous = {sig: signal.signal(sig, self._handler) for sig in SIGNALS}
        try:
            self._start_watchdog()
        except (OSError, ValueError, subprocess.SubprocessError) as e:
            _say(f"warning: no stop watchdog ({e}); a stuck stop may need SIGKILL")

    def _start_watchdog(self) -> None:
        if not sys.executable:
            raise OSError("no Python executable to run it")
        read_signals, self._wakeup = os.pipe()
        self._relay, relay_to = os.pipe()
        try:
            os.set_blocking(self._wakeup, False)    # set_wakeup_fd wants it so
            self._child = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _WATCHDOG, str(os.getpid()),
                 str(read_signals), str(relay_to), str(self.timeout + _KILL_GRACE_S),
                 str(FORCE_S)],
                pass_fds=(read_signals, relay_to), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, start_new_session=True)
        except BaseException:
            for fd in (self._wakeup, self._relay):
                os.close(fd)
            self._wakeup = self._relay = None
            raise
        finally:
            os.close(read_signals)
            os.close(relay_to)
        self._relayed = True
        self._previous_fd = signal.set_wakeup_fd(self._wakeup, warn_on_full_buffer=False)
        threading.Thread(target=self._watch, daemon=True, name="signals").start()

    def done(self) -> None:
        """The clean stop (or the run) is over: nothing more to force."""
        self._done.set()

    def close(self) -> None:
        """Put the signal handlers back. After a signal the watchdog stays, keeping
        time until the process ends."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self._wakeup is None:
            return
        signal.set_wakeup_fd(self._previous_fd if self._previous_fd is not None else -1)
        if self.signals == 0:
            os.close(self._wakeup)                  # the watchdog sees the end and goes
            self._wakeup = None
            try:
                self._child.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._child.kill()

    # --- signals ------------------------------------------------------------------

    def _handler(self, signum, frame) -> None:
        # The watchdog relays every signal to _watch; only without it is this the way.
        if not self._relayed:
            self._signal(signum)

    def _watch(self) -> None:
        while True:
            try:
                data = os.read(self._relay, 64)
            except OSError:
                data = b""
            if not data:                            # the watchdog is gone
                self._relayed = False
                return
            for number in data:
                self._signal(number)

    def _signal(self, signum: int) -> None:
        with self._lock:
            self.signals += 1
            first = self.signals == 1
        if first:
            _say("stopping (again to force)")
            threading.Thread(target=self._first, daemon=True, name="stopping").start()
        else:
            self._force()

    def _first(self) -> None:
        start = time.monotonic()
        try:
            self._stop()
        except Exception as e:
            _say(f"stopping failed: {type(e).__name__}: {e}")
        if self._done.wait(self.timeout / 2):
            return
        # The main thread has not got through: finish the outputs from here.
        finished, stuck = finish(self._outputs(), start + self.timeout - 0.5)
        if self._done.is_set():
            return
        _say(f"the stop could not end within {self.timeout:g} s: "
             + (f"finished {', '.join(finished)}" if finished else "nothing finished")
             + (f"; could not finish {', '.join(stuck)}" if stuck else ""))
        _flush_stdio(0.2)
        os._exit(TIMED_OUT_EXIT)

    def _force(self) -> None:
        _say("forced stop")
        finish(self._outputs(), time.monotonic() + _FLUSH_S)
        _flush_stdio(0.1)
        os._exit(FORCED_EXIT)

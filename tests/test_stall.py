"""A run never stalls: stand-in loops rotate, the player never waits on the director
for a loop that is not coming, and SIGINT/SIGTERM stop a run whatever it is doing."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from fractions import Fraction

import av
import pytest

from lofid.director import Director, DirectorSettings
from lofid.generators import get
from lofid.library import Library
from lofid.outputs.null import NullOutput
from lofid.player import Player, PlayerSettings
from lofid.scene import parse
from helpers import LOFID, Clock, holds_for, lofid as _lofid, reap, turns, wait_for

paint = get("procedural")
SMALL = dict(loop_size=(64, 36), frames=6, fps=12.0)


class CountingLibrary(Library):
    """The real library, counting the loops it decodes."""

    def __init__(self, root):
        super().__init__(root)
        self.gets = 0

    def get(self, key):
        self.gets += 1
        return super().get(key)


def _stand_ins(lib, seeds=(1, 2)):
    """Loops of the library scene in autumn: none matches a plain "library" exactly."""
    return [lib.put(paint(parse("library, autumn"), seed, (64, 36), 6, 12.0)) for seed in seeds]


def test_stand_in_loops_take_turns_like_exact_ones(tmp_path):
    lib = Library(tmp_path)
    keys = _stand_ins(lib)
    d = Director(lib, parse("library"), DirectorSettings(generate=False, rotate=1.0, **SMALL))
    try:
        seen = turns(d, 4)
        assert set(seen) == set(keys)
        assert all(a != b for a, b in zip(seen, seen[1:]))   # they alternate
    finally:
        d.stop()


def test_the_worker_rests_when_every_stand_in_is_queued(tmp_path):
    lib = CountingLibrary(tmp_path)
    _stand_ins(lib)
    d = Director(lib, parse("library"), DirectorSettings(generate=False, rotate=600.0, **SMALL))
    d.attach_clock(Clock())
    try:
        d.first()
        wait_for(lambda: lib.gets >= 2)          # the first loop, and the other one queued
        # Then nothing: no decoding the same loop again and again.
        assert holds_for(lambda: lib.gets == 2, 1.5), f"{lib.gets} loops decoded"
    finally:
        d.stop()


def test_coming_is_true_only_while_a_loop_is_made_and_for_a_bounded_time(tmp_path):
    release = threading.Event()
    calls = []

    def slow(spec, seed, size, frames, fps, progress=None):
        calls.append(seed)
        if len(calls) > 1:                       # the first loop at once, the next one held
            release.wait(30)
        return paint(spec, seed, size, frames, fps)

    d = Director(Library(tmp_path), parse("kitchen"),
                 DirectorSettings(rotate=1.0, wait_for_next=3.0, **SMALL), generate=slow)
    clock = Clock()
    d.attach_clock(clock)
    try:
        d.first()
        wait_for(lambda: len(calls) >= 2)        # the worker is making the next loop
        assert d.next_ready() is None and not d.coming()   # not due yet: nothing to wait for
        clock.now = 1.0
        assert d.next_ready() is None            # due, not made yet: never blocks ...
        assert d.coming()                        # ... but it is coming,
        d.hold(True)
        assert not d.coming()                    # (not while held: no rotation then)
        d.hold(False)
        assert d.coming()
        wait_for(lambda: not d.coming(), timeout=10)   # for wait_for_next seconds at most
        release.set()
        assert wait_for(d.next_ready, timeout=20) is not None
    finally:
        release.set()
        d.stop()


def test_nothing_is_coming_when_the_library_has_no_other_loop(tmp_path):
    lib = Library(tmp_path)
    _stand_ins(lib, seeds=(1,))
    d = Director(lib, parse("library"),
                 DirectorSettings(generate=False, rotate=1.0, wait_for_next=300.0, **SMALL))
    clock = Clock()
    d.attach_clock(clock)
    try:
        d.first()
        clock.now = 5.0
        assert d.next_ready() is None
        wait_for(lambda: not d.coming(), timeout=10)   # the unpaced player plays on
    finally:
        d.stop()


class _AlwaysComing:
    """A source whose next loop is always on its way and never arrives."""

    def __init__(self):
        self.asked = threading.Event()

    def first(self):
        return paint(parse("kitchen"), 1, (64, 36), 6, 12.0)

    def next_ready(self):
        return None

    def coming(self):
        self.asked.set()
        return True


def test_an_unpaced_player_waiting_for_a_coming_loop_stops_at_once():
    source = _AlwaysComing()
    player = Player(source, [NullOutput()], None,
                    PlayerSettings(fps=Fraction(30), size=(64, 36), crossfade=0))
    t = threading.Thread(target=player.run, daemon=True)
    t.start()
    assert source.asked.wait(30)
    stopped = time.monotonic()
    player.stop()
    t.join(10)
    assert not t.is_alive() and time.monotonic() - stopped < 5


# --------------------------------------------------------------------------- lofid run

def _frames(path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for p in c.demux(c.streams.video[0]) for _ in p.decode())


@pytest.mark.slow
def test_the_readme_no_generate_example_plays_stand_ins_to_the_end(tmp_path):
    lib = str(tmp_path / "lib")
    for seed in (1, 2):
        r = _lofid("--library", lib, "generate", "library, autumn", "-o",
                   str(tmp_path / f"l{seed}.mp4"), "--size", "320x180", "--frames", "24",
                   "--seed", str(seed), "--generator", "procedural", timeout=120)
        assert r.returncode == 0, r.stderr
    out = tmp_path / "x.mp4"
    r = _lofid("--library", lib, "run", "--no-generate", "--scene", "library", "-o", str(out),
               "--duration", "6", "--rotate", "1", "--size", "320x180", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "crossfade" in r.stderr
    assert _frames(out) == 6 * 30


# --------------------------------------------------------------------------- signals

# The stalled runs stop within this (--stop-timeout; 10 s by default): what is under test
# is that the deadline holds, whatever its length.
STOP_S = 3


class _StalledRun:
    """`lofid run` unpaced to an .mp4 and to an .mkv that is a FIFO: opened by a reader
    that never reads (the muxer's write blocks, then the player's send to it), or
    never opened at all (libavformat blocks opening it, holding the GIL: no Python
    thread runs)."""

    def __init__(self, tmp_path, reader_opens: bool):
        lib = str(tmp_path / "lib")
        _stand_ins(Library(lib))
        self.mp4, self.fifo = tmp_path / "beside.mp4", tmp_path / "stalled.mkv"
        os.mkfifo(self.fifo)
        self.reader = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK) if reader_opens else None
        self.err_path = tmp_path / "stderr.txt"
        with open(self.err_path, "w") as err:
            self.p = subprocess.Popen(
                [*LOFID, "--library", lib, "run", "--no-generate",
                 "--scene", "library", "-o", str(self.mp4), "-o", str(self.fifo),
                 "--duration", "3600", "--size", "320x180", "--stop-timeout", str(STOP_S)],
                stdout=subprocess.DEVNULL, stderr=err)

    def err(self) -> str:
        return self.err_path.read_text()

    def wait_until_stalled(self) -> None:
        if self.reader is not None:
            # The mp4 grows until the FIFO's queue is full, then stops.
            wait_for(lambda: self.mp4.exists() and self.mp4.stat().st_size > 0, timeout=60)
            size = [-1]

            def still():
                now = self.mp4.stat().st_size
                same, size[0] = now == size[0], now
                return same
            wait_for(lambda: holds_for(still, 1.5), timeout=60)
        else:
            wait_for(lambda: "stalled.mkv: running" in self.err(), timeout=60)
            wait_for(lambda: holds_for(lambda: self.p.poll() is None, 1.0), timeout=10)
        assert self.p.poll() is None, self.err()

    def signal_and_time(self, sig=signal.SIGTERM, timeout: float = 30.0) -> float:
        """Seconds from the signal to the end of the process (inf: still running)."""
        sent = time.monotonic()
        self.p.send_signal(sig)
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            return float("inf")
        return time.monotonic() - sent

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.kill()       # stalled: SIGTERM is what is under test, not a way out
        reap(self.p)
        if self.reader is not None:
            os.close(self.reader)


def _ffprobe_frames(path) -> int:
    r = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                        "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return int(r.stdout.strip() or 0)


def _sigterm_stalled(tmp_path, reader_opens: bool):
    """A stalled run sent one SIGTERM: the run, ended, and the seconds it took to end."""
    run = _StalledRun(tmp_path, reader_opens=reader_opens)
    try:
        run.wait_until_stalled()
        took = run.signal_and_time(timeout=STOP_S + 20)
    finally:
        run.close()
    return run, took


@pytest.mark.slow
def test_sigterm_finishes_the_files_it_can_within_the_stop_timeout(tmp_path):
    run, took = _sigterm_stalled(tmp_path, reader_opens=True)
    err = run.err()
    # Within the stop timeout (and a margin for a busy machine), saying what is left.
    assert took < STOP_S + 3, err
    assert run.p.returncode == 1 and "could not finish" in err and "stalled.mkv" in err, err
    # The mp4 beside it is finished: it plays, and ends with its index (mfro box).
    assert _ffprobe_frames(run.mp4) > 0
    assert run.mp4.read_bytes()[-12:-8] == b"mfro"


@pytest.mark.slow
@pytest.mark.parametrize("reader_opens", [True, False], ids=["fifo-not-read", "fifo-not-opened"])
def test_a_second_sigterm_ends_a_stalled_run_within_a_second(tmp_path, reader_opens):
    run = _StalledRun(tmp_path, reader_opens=reader_opens)
    try:
        run.wait_until_stalled()
        run.p.send_signal(signal.SIGTERM)
        # The first stop is under way (or cannot even start: no Python thread runs).
        assert holds_for(lambda: run.p.poll() is None, 1.0), run.err()
        took = run.signal_and_time(timeout=20)
    finally:
        run.close()
    # A second, and a little for a busy machine.
    assert took < 1.5, f"{took:.2f} s; {run.err()}"
    assert run.p.returncode != 0
    if reader_opens:                            # Python could run: it said so and exited
        assert run.p.returncode == 130 and "forced stop" in run.err()


@pytest.mark.slow
def test_a_single_sigterm_ends_a_run_where_no_python_thread_can_run(tmp_path):
    run, took = _sigterm_stalled(tmp_path, reader_opens=False)
    assert took < STOP_S + 4, run.err()  # the watchdog's kill, 2 s after the timeout
    assert run.p.returncode != 0 and "stuck" in run.err()

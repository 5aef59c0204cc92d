"""A run never stalls: stand-in loops rotate, the player never waits on the director
for a loop that is not coming, and SIGINT/SIGTERM stop a run whatever it is doing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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
from waiting import holds_for, wait_for

paint = get("procedural")
SMALL = dict(loop_size=(64, 36), frames=6, fps=12.0)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


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
    clock = Clock()
    d.attach_clock(clock)
    try:
        d.first()
        seen = [d.current_key]
        for i in range(1, 5):
            clock.now = float(i)
            assert wait_for(d.next_ready, timeout=10) is not None
            seen.append(d.current_key)
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
                 DirectorSettings(rotate=1.0, wait_for_next=1.0, **SMALL), generate=slow)
    clock = Clock()
    d.attach_clock(clock)
    try:
        d.first()
        wait_for(lambda: len(calls) >= 2)        # the worker is making the next loop
        assert d.next_ready() is None and not d.coming()   # not due yet: nothing to wait for
        clock.now = 1.0
        assert d.next_ready() is None            # due, not made yet: never blocks ...
        assert d.coming()                        # ... but it is coming,
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

def _lofid(*args, **kw):
    return subprocess.run([sys.executable, "-m", "lofid.cli", *args], capture_output=True,
                          text=True, **kw)


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

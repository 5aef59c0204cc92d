"""The director: first loop, rotation, prefetch, library reuse, failures."""

from __future__ import annotations

import threading

import pytest

from lofid.director import Director, DirectorSettings, NothingToPlay
from lofid.generators import get
from lofid.library import Library
from lofid.scene import parse
from waiting import wait_for

paint = get("procedural")
SMALL = dict(loop_size=(64, 36), frames=6, fps=12.0)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def make(library, text="coffee shop", rotate=10.0, generate=paint, events=None, **kw):
    d = Director(library, parse(text), DirectorSettings(rotate=rotate, **{**SMALL, **kw}),
                 generate=generate, on_event=(lambda n, p: events.append((n, p))) if events is not None else None)
    clock = Clock()
    d.attach_clock(clock)
    return d, clock


def test_first_loop_is_generated_and_kept(tmp_path):
    lib = Library(tmp_path)
    d, _ = make(lib)
    try:
        loop = d.first()
        assert loop.spec == parse("coffee shop") and loop.frames.shape == (6, 36, 64, 3)
        assert d.current_key in lib
    finally:
        d.stop()


def test_rotation_offers_another_loop_only_after_its_time(tmp_path):
    d, clock = make(Library(tmp_path), rotate=10.0)
    try:
        first = d.first()
        first_key = d.current_key
        # Prefetch fills the queue while the first loop plays...
        wait_for(lambda: len(d._ready) >= 1)
        clock.now = 9.9
        assert d.next_ready() is None            # ...but nothing is offered before its time
        clock.now = 10.0
        nxt = d.next_ready()
        assert nxt is not None and nxt.seed != first.seed and d.current_key != first_key
        clock.now = 15.0
        assert d.next_ready() is None            # the new loop gets its own 10 s
    finally:
        d.stop()


def test_no_generate_plays_the_library_and_names_an_empty_scene(tmp_path):
    lib = Library(tmp_path)
    d = Director(lib, parse("rooftop night"), DirectorSettings(generate=False, **SMALL))
    with pytest.raises(NothingToPlay, match="rooftop night"):
        d.first()
    # A loop of the same scene with other weather stands in when none matches exactly.
    stored = paint(parse("rooftop night, snow"), 1, (64, 36), 6, 12.0)
    key = lib.put(stored)
    d = Director(lib, parse("rooftop night"), DirectorSettings(generate=False, **SMALL))
    try:
        assert d.first().seed == 1 and d.current_key == key
    finally:
        d.stop()


def test_library_loops_take_turns_without_generating(tmp_path):
    lib = Library(tmp_path)
    keys = {lib.put(paint(parse("library"), seed, (64, 36), 6, 12.0)) for seed in (1, 2, 3)}
    d = Director(lib, parse("library"), DirectorSettings(generate=False, rotate=1.0, **SMALL))
    clock = Clock()
    d.attach_clock(clock)
    try:
        d.first()
        seen = [d.current_key]
        for i in range(1, 6):
            clock.now = float(i)
            wait_for(lambda: d._ready)
            assert d.next_ready() is not None
            seen.append(d.current_key)
        assert set(seen) == keys
        assert all(a != b for a, b in zip(seen, seen[1:]))   # never the same loop twice running
    finally:
        d.stop()


def test_a_failing_generator_is_reported_and_the_picture_goes_on(tmp_path):
    lib = Library(tmp_path)
    calls = []
    failed = threading.Event()

    def flaky(spec, seed, size, frames, fps, progress=None):
        calls.append(seed)
        if len(calls) > 1:
            failed.set()
            raise RuntimeError("out of memory")
        return paint(spec, seed, size, frames, fps, progress=progress)

    events = []
    d, clock = make(lib, generate=flaky, events=events)
    try:
        d.first()
        assert failed.wait(10)
        wait_for(lambda: any(n == "generation_failed" for n, _ in events))
        clock.now = 100.0
        assert d.next_ready() is None      # nothing new: the player keeps the current loop
        assert d.failures >= 1
        assert "out of memory" in [p for n, p in events if n == "generation_failed"][0]["error"]
    finally:
        d.stop()


def test_a_new_scene_is_offered_at_once(tmp_path):
    d, clock = make(Library(tmp_path), rotate=1000.0)
    try:
        d.first()
        d.set_scene(parse("rainy window"))
        loop = wait_for(d.next_ready)
        assert loop.spec.scene == "rainy_window"
    finally:
        d.stop()


def test_a_loop_with_a_visible_seam_is_made_again(tmp_path):
    import numpy as np

    from lofid.loop import Loop
    made = []

    def seamy(spec, seed, size, frames, fps, progress=None):
        loop = paint(spec, seed, size, frames, fps, progress=progress)
        if len(made) < 2:
            # A clip that does not loop: a ramp that jumps back at the seam.
            ramp = np.linspace(0, 200, frames)[:, None, None, None]
            loop = Loop(frames=(loop.frames * 0 + ramp).astype(np.uint8), fps=fps, spec=spec,
                        seed=seed, generator="test", params={})
        made.append(loop.metrics["seam_ratio"])
        return loop

    events = []
    d, _ = make(Library(tmp_path), generate=seamy, events=events)
    try:
        loop = d.first()
        assert made[0] > 1.5 and made[1] > 1.5 and made[2] <= 1.05
        assert loop.metrics["seam_ratio"] == made[2]
        assert [n for n, _ in events].count("loop_rejected") == 2
        assert any(n == "generation_progress" for n, _ in events)
    finally:
        d.stop()

"""The director: first loop, rotation, prefetch, library reuse, failures."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from lofid.director import Director, DirectorSettings, NothingToPlay
from lofid.generators import get
from lofid.library import Library
from lofid.scene import parse
from helpers import Clock, holds_for, turns, wait_for

paint = get("procedural")
SMALL = dict(loop_size=(64, 36), frames=6, fps=12.0)


def make(library, text="coffee shop", rotate=10.0, generate=paint, events=None,
         generating=True, **kw):
    d = Director(library, parse(text),
                 DirectorSettings(rotate=rotate, generate=generating, **{**SMALL, **kw}),
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
        wait_for(lambda: len(d.ready_keys()) >= 1)
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
    try:
        seen = turns(d, 5)
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


@pytest.mark.parametrize("live", [True, False])
def test_a_new_scene_is_made_and_offered_at_once(tmp_path, live):
    events = []
    d, clock = make(Library(tmp_path), rotate=1000.0, live=live, events=events)
    try:
        d.first()
        assert d.set_scene(parse("rainy window"))["action"] == "switch"
        # Live, the player takes it through urgent(); otherwise as the next loop.
        loop = wait_for(d.urgent if live else d.next_ready)
        assert loop.spec.scene == "rainy_window"
        assert (d.next_ready if live else d.urgent)() is None
        changed = [p for n, p in events if n == "scene_changed"]
        assert [p["reason"] for p in changed] == ["start", "request"]
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


# --------------------------------------------------------------------------- director v2

def two_scene_library(tmp_path):
    lib = Library(tmp_path)
    keys = {text: lib.put(paint(parse(text), 1, (64, 36), 6, 12.0))
            for text in ("coffee shop", "rainy window")}
    return lib, keys


def test_a_stored_scene_is_answered_at_once_from_memory(tmp_path):
    lib, keys = two_scene_library(tmp_path)
    events = []
    d, _ = make(lib, generating=False, events=events)
    try:
        d.first()
        # The worker keeps the first frames of each scene's loop in memory.
        wait_for(lambda: keys["rainy window"] in d.standby_keys())
        answer = d.request(parse("rainy window, jazz"), "audio")   # mood words aside
        assert answer == {"action": "switch", "due_in": 0.0}
        loop = wait_for(d.urgent, timeout=10)
        assert d.current_key == keys["rainy window"] and loop.key == keys["rainy window"]
        # Its frames decode behind it, and are the stored ones (lossless storage: exact).
        loop.wait_frame(5)
        assert np.array_equal(loop.frames, lib.get(keys["rainy window"]).frames)
        assert [(p["scene"], p["reason"]) for n, p in events if n == "scene_changed"] == [
            ("coffee shop, day", "start"), ("rainy window, rain, day", "audio")]
    finally:
        d.stop()


def test_a_request_for_the_scene_showing_does_nothing(tmp_path):
    lib, keys = two_scene_library(tmp_path)
    events = []
    d, _ = make(lib, generating=False, events=events)
    try:
        d.first()
        assert d.request(parse("coffee shop"), "request")["action"] == "showing"
        assert d.request(parse("coffee shop, chill"), "audio")["action"] == "showing"
        assert d.urgent() is None and d.pending() is None
        assert [n for n, _ in events].count("scene_changed") == 1
    finally:
        d.stop()


def test_prompts_close_together_do_not_bounce(tmp_path):
    lib, keys = two_scene_library(tmp_path)
    events = []
    d, _ = make(lib, generating=False, events=events, min_scene=1.5)
    try:
        d.first()
        assert d.request(parse("rainy window"), "audio")["action"] == "switch"
        assert wait_for(d.urgent).spec.scene == "rainy_window"
        # A second prompt a moment later waits for the scene's minimum time ...
        answer = d.request(parse("coffee shop"), "audio")
        assert answer["action"] == "scheduled" and 1.0 < answer["due_in"] <= 1.5
        assert d.urgent() is None
        # ... and a third, for the scene showing, drops it: no crossfade back and forth.
        assert d.request(parse("rainy window"), "audio")["action"] == "showing"
        # Past the scene's minimum time, nothing comes of the dropped prompt.
        assert holds_for(lambda: d.urgent() is None, 1.6)
        assert d.next_ready() is None
        # Once the time is up a new prompt moves the picture at once.
        assert d.request(parse("coffee shop"), "audio")["action"] == "switch"
        assert wait_for(d.urgent).spec.scene == "coffee_shop"
        # A request by hand is never held back.
        assert d.request(parse("rainy window"), "request")["action"] == "switch"
        assert wait_for(d.urgent).spec.scene == "rainy_window"
        reasons = [p["reason"] for n, p in events if n == "scene_changed"]
        assert reasons == ["start", "audio", "audio", "request"]
        assert [h[3] for h in d.history] == reasons
    finally:
        d.stop()


def test_a_prompt_is_timed_to_its_track_and_held_while_it_plays(tmp_path):
    import time
    lib, keys = two_scene_library(tmp_path)
    d, _ = make(lib, generating=False, min_scene=0.0)
    try:
        d.first()
        start = time.monotonic() + 1.0
        answer = d.request(parse("rainy window"), "audio", start_at=start, hold=2.0)
        assert answer["action"] == "scheduled" and 0.5 < answer["due_in"] <= 1.0
        wait_for(lambda: d.pending()["loaded"])
        assert d.urgent() is None                        # loaded, but not yet due
        loop = wait_for(d.urgent, timeout=10, every=0.01)
        assert time.monotonic() >= start and loop.spec.scene == "rainy_window"
        # The next prompt, with no start of its own, waits for the track to end.
        answer = d.request(parse("coffee shop"), "audio")
        assert answer["action"] == "scheduled" and 1.5 < answer["due_in"] <= 2.0
        assert d.urgent() is None
        assert wait_for(d.urgent, timeout=10).spec.scene == "coffee_shop"
    finally:
        d.stop()


def test_requests_go_before_rotation(tmp_path):
    made = threading.Event()
    go_on = threading.Event()

    def slow(spec, seed, size, frames, fps, progress=None):
        if spec.scene == "library":
            made.set()
            go_on.wait(20)                      # the requested loop is still being made
        return paint(spec, seed, size, frames, fps, progress=progress)

    d, clock = make(Library(tmp_path), generate=slow, rotate=1.0)
    try:
        d.first()
        wait_for(lambda: len(d.ready_keys()) >= 1)
        d.request(parse("library"), "request")
        assert made.wait(20)
        clock.now = 50.0                         # rotation is long due, a loop is ready ...
        assert d.next_ready() is None            # ... but the request goes first
        go_on.set()
        assert wait_for(d.urgent).spec.scene == "library"
    finally:
        go_on.set()
        d.stop()


def test_rotation_prefers_loops_not_played_lately(tmp_path):
    lib = Library(tmp_path)
    keys = {lib.put(paint(parse("library"), seed, (64, 36), 6, 12.0)) for seed in range(1, 5)}
    d = Director(lib, parse("library"), DirectorSettings(generate=False, rotate=1.0, **SMALL))
    clock = Clock()
    d.attach_clock(clock)
    try:
        d.first()
        seen = [d.current_key]
        for i in range(1, 4):
            clock.now = float(i)
            wait_for(lambda: d.ready_keys())
            assert d.next_ready() is not None
            seen.append(d.current_key)
        assert set(seen) == keys                  # four rotations, four different loops
    finally:
        d.stop()


def test_bad_request_arguments_are_refused_by_name(tmp_path):
    d, _ = make(Library(tmp_path))
    with pytest.raises(ValueError, match="reason"):
        d.request(parse("library"), "whim")
    with pytest.raises(ValueError, match="hold"):
        d.request(parse("library"), "audio", hold=-1)

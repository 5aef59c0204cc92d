"""A running `lofid run --socket`: audio.prompt for a scene in the library crosses live.

The daemon runs as a subprocess with a file output; pynvim's msgpack-RPC client talks
to it. The 200 ms figure is bench/prompt_latency.py's job; here only what a user sees:
the answer, the events, the file.
"""

from __future__ import annotations

import subprocess
import time

import av
import pytest

from lofid.generators import get
from lofid.library import Library
from lofid.scene import parse
from helpers import next_event, running, wait_for

# The test here runs lofid as a process.
pytestmark = pytest.mark.slow


@pytest.fixture
def daemon(tmp_path):
    library = Library(tmp_path / "lib")
    paint = get("procedural")
    for text in ("study room", "rainy window, night"):
        library.put(paint(parse(text), 1, (160, 90), 12, 10.0))
    video = tmp_path / "out.mkv"
    with running(tmp_path, "-o", video, "--realtime", "--size", "160x90",
                 "--scene", "study room", "--no-generate", "--crossfade", "1") as d:
        yield d.proc, d.sock, video


def test_a_prompt_for_a_stored_scene_crosses_live_and_does_not_bounce(daemon):
    from pynvim.msgpack_rpc import socket_session
    proc, sock, video = daemon
    session = socket_session(str(sock))
    try:
        session.request("subscribe", ["scene_changed", "crossfade"])
        wait_for(lambda: session.request("status")["clock"]["frame"] > 10)
        # lofi.nvim's generation_start payload, as the plugin forwards it.
        sent = time.time()
        answer = session.request("audio.prompt", "rainy window at night, lofi",
                                 {"track_id": "t1", "prompt": "rainy window at night, lofi",
                                  "duration_sec": 30, "seed": 3})
        assert answer["action"] == "switch" and "rainy window" in answer["scene"]
        events = {}
        while "crossfade" not in events or "scene_changed" not in events:
            name, payload = next_event(session, ["scene_changed", "crossfade"])
            if payload.get("reason") != "start":        # the first loop, at start-up
                events[name] = payload
        assert events["scene_changed"]["reason"] == "audio"
        assert "rainy window" in events["scene_changed"]["scene"]
        fade = events["crossfade"]
        assert fade["live"] is True and fade["frames"] == 30
        assert sent < fade["wall"] < sent + 10          # generous: the bench measures it
        assert session.request("status")["scene"]["scene"] == "rainy_window"

        # The next prompt a moment later waits (no bouncing), and one for the scene
        # showing then drops it.
        again = session.request("audio.prompt", "study room", {"duration_sec": 30})
        assert again["action"] == "scheduled" and again["due_in"] > 5
        assert session.request("audio.prompt", "rainy window, night")["action"] == "showing"
        # Bad options get an error naming them; the daemon goes on.
        with pytest.raises(Exception, match="starts_in"):
            session.request("audio.prompt", "library", {"starts_in": "soon"})
        with pytest.raises(Exception, match="not both"):
            session.request("audio.prompt", "library", {"starts_in": 1, "start_at": 2e9})
        frame = fade["frame"]
        wait_for(lambda: session.request("status")["clock"]["frame"] > frame + 60)
        session.request("shutdown")
    finally:
        session.close()
    assert proc.wait(timeout=60) == 0

    # The file: one stream, a keyframe where the live crossfade starts, no errors.
    with av.open(str(video)) as c:
        packets = [p for p in c.demux(video=0) if p.pts is not None]
    pts = [p.pts for p in packets]
    assert pts == sorted(pts) and len(set(pts)) == len(pts)
    starts = [round(float(p.pts * p.time_base) * 30) for p in packets if p.is_keyframe]
    assert frame in starts
    errors = subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-f", "null", "-"],
                            capture_output=True, text=True, timeout=60).stderr
    assert errors.strip() == ""

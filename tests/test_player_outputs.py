"""The player's one output registry (lofid.player.router.OutputSet) with a real player, in
this process: outputs added and removed while playing, as a client of the control
socket or a reloaded config does it. Real outputs, files read back with PyAV."""

from __future__ import annotations

import threading
from fractions import Fraction

import av
import numpy as np
import pytest

from lofid.player.router import OutputSet
from lofid.loop import Loop
from lofid.player import Player, PlayerSettings
from lofid.scene import SceneSpec
from helpers import wait_for

SIZE = (160, 90)
RED, BLUE = (230, 20, 20), (20, 20, 230)


def solid_loop(rgb, frames=12, fps=10.0, seed=1) -> Loop:
    video = np.empty((frames, SIZE[1], SIZE[0], 3), np.uint8)
    video[:] = rgb
    return Loop(frames=video, fps=fps, spec=SceneSpec(), seed=seed, generator="test")


class OneLoop:
    """A source that plays one loop for ever: 20 frames at 10 fps, 60 output frames a
    repetition, so its one keyframe (every 2 s) falls on the repetition's first frame."""

    def __init__(self):
        from lofid.generators import get
        from lofid.scene import parse
        self.loop = get("procedural")(parse("rainy window"), 3, SIZE, 20, 10.0)

    def first(self):
        return self.loop

    def next_ready(self):
        return None


def read_video(path):
    """(RGB frames, whether each packet is a keyframe), read back with PyAV."""
    with av.open(str(path)) as c:
        keys = [p.is_keyframe for p in c.demux(video=0) if p.pts is not None]
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return frames, keys


def start(player: Player) -> threading.Thread:
    runner = threading.Thread(target=player.run)
    runner.start()
    return runner


def test_an_output_added_mid_gop_reports_no_drops(tmp_path):
    """Added between two keyframes, a stream's output starts at the next one; the
    frames before it were never its own, and `output.list` must not call them dropped
    (it read 20 to 50 "dropped" for a healthy output)."""
    mkv = tmp_path / "late.mkv"
    outputs = OutputSet()
    player = Player(OneLoop(), outputs.open(["null"]), None,
                    PlayerSettings(fps=Fraction(30), size=SIZE, realtime=True))
    outputs.player = player
    runner = start(player)
    try:
        # Well inside a GOP (keyframes at multiples of 60), so the add is not on one.
        wait_for(lambda: player.frame > 60 and 10 <= player.frame % 60 <= 35)
        added = outputs.add(str(mkv))
        assert wait_for(lambda: added.state == "running")
        n = player.frame
        wait_for(lambda: player.frame > n + 90)          # past its first keyframe
        (shown,) = [o for o in outputs.describe() if o["name"] == str(mkv)]
        assert shown["state"] == "running" and shown["dropped"] == 0
    finally:
        player.stop()
        runner.join(60)
    frames, keys = read_video(mkv)
    assert keys[0] and len(frames) >= 30


def test_an_output_removed_before_it_started_can_be_added_again(tmp_path):
    """Added and removed before the clock started it, an output never opened its file:
    adding the same target again works (it said "still being finalised" for ever)."""
    mkv = tmp_path / "again.mkv"
    outputs = OutputSet()
    player = Player(OneLoop(), outputs.open(["null"]), None,
                    PlayerSettings(fps=Fraction(30), size=SIZE, realtime=True))
    outputs.player = player
    # Before the clock runs (a control socket is up before the picture starts).
    first = outputs.add(str(mkv))
    assert outputs.remove(str(mkv)) is first
    again = outputs.add(str(mkv))
    assert [o["name"] for o in outputs.describe()] == ["null", str(mkv)]
    runner = start(player)
    try:
        assert wait_for(lambda: again.state == "running")
        n = player.frame
        wait_for(lambda: player.frame > n + 30)
    finally:
        player.stop()
        runner.join(60)
    assert first.state == "new"                          # never started, nothing to finish
    frames, keys = read_video(mkv)
    assert keys[0] and len(frames) >= 30


class CutSource:
    """Red first; at the clock's keyframes (where the player asks for a next loop) it
    removes the frame output, offers blue (a cut: crossfade 0), then adds a new frame
    output."""

    def __init__(self, outputs, before, after):
        self.outputs, self.before, self.after = outputs, before, after
        self.asked = 0

    def first(self):
        return solid_loop(RED)

    def next_ready(self):
        self.asked += 1
        if self.asked == 1:                              # frame 0
            self.outputs.remove(str(self.before))
        elif self.asked == 2:                            # frame 36: cut to blue
            return solid_loop(BLUE, seed=2)
        elif self.asked == 3:                            # frame 72: blue is on the air
            self.outputs.add(str(self.after))
        return None


def test_a_frame_output_added_after_a_cut_shows_the_loop_on_the_air(tmp_path):
    """A loop cut to while no output took frames, then a WebM added: it shows the
    loop playing (blue), not the one before the cut (red)."""
    before, after = tmp_path / "before.webm", tmp_path / "after.webm"
    outputs = OutputSet(realtime=False)
    source = CutSource(outputs, before, after)
    player = Player(source, outputs.open([str(before)]), None,
                    PlayerSettings(fps=Fraction(30), size=SIZE, crossfade=0, duration=5.0))
    outputs.player = player
    player.run()
    assert source.asked >= 3 and player.stats["crossfades"] == 1
    frames, _ = read_video(after)
    assert len(frames) > 30
    means = [f.reshape(-1, 3).mean(axis=0) for f in frames]
    # VP9 is lossy: a clear margin, not exact values.
    assert all(m[2] > 180 and m[0] < 60 for m in means), means[0]


@pytest.mark.parametrize("given, rate", [(29.97, Fraction(30000, 1001)),
                                         (59.94, Fraction(60000, 1001)),
                                         (23.976, Fraction(24000, 1001)),
                                         (12.5, Fraction(25, 2))])
def test_an_ntsc_rate_given_as_a_float_is_read_as_the_encoder_reads_it(given, rate):
    # 29.97 means 30000/1001, as lofid.encode reads it; not 2997/100.
    settings = PlayerSettings(fps=given)
    assert settings.fps == rate == settings.video_settings().fps

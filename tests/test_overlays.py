"""Text overlays: drawn into the stream where configured, changed at a keyframe or at
once (now = true), over repetitions and crossfades, at one encode per change; bad
layers refused with a message, over the config, the CLI and the socket.

The pictures are read back from real H.264 files with PyAV and compared with the
text drawn (lofid.overlays) over the same frame of a run without overlays.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from helpers import running
from lofid.loop import Loop
from lofid.outputs.file import FileOutput
from lofid.overlays import OverlayError, parse_layer
from lofid.overlays.board import Overlays, draw_on_rgb
from lofid.player import Player, PlayerSettings
from lofid.scene import SceneSpec, parse

SIZE = (320, 180)
FPS = 30
# 2023-11-14 22:13:01 UTC: one second past a minute.
T0 = 1_699_999_981.0


def textured_loop(frames: int, seed: int, spec=None) -> Loop:
    """A slowly moving pattern in lofi colours: texture for the encoder to code, so a
    change outside the text would show."""
    w, h = SIZE
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(seed)
    base = rng.uniform(60, 160, 3)
    video = np.empty((frames, h, w, 3), np.uint8)
    for i in range(frames):
        phase = 2 * np.pi * i / frames
        wave = np.sin(x / 23 + phase) * np.cos(y / 17 - phase)
        for c in range(3):
            video[i, ..., c] = np.clip(base[c] + 40 * wave + 30 * (c - 1) * y / h, 0, 255)
    return Loop(frames=video, fps=10.0, spec=spec or SceneSpec(), seed=seed, generator="test")


class Source:
    """Loops like the director's: the first at once, `upcoming` once the clock has run
    its seconds; `hooks` run (once each) when the clock reaches their second."""

    def __init__(self, first, upcoming=(), hooks=()):
        self._first = first
        self.upcoming = list(upcoming)
        self.hooks = sorted(hooks, key=lambda h: h[0])
        self.player: Player | None = None

    def first(self):
        return self._first

    def _run_hooks(self):
        while self.hooks and self.player.seconds >= self.hooks[0][0]:
            self.hooks.pop(0)[1]()

    def urgent(self):                  # polled every frame: the hooks' clock
        self._run_hooks()
        return None

    def next_ready(self):
        self._run_hooks()
        if self.upcoming and self.player.seconds >= self.upcoming[0][0]:
            return self.upcoming.pop(0)[1]
        return None


def play(path: Path, first, upcoming=(), overlays=None, hooks=(), seconds=8.0) -> Player:
    source = Source(first, upcoming, hooks)
    player = Player(source, [FileOutput(str(path))], None,
                    PlayerSettings(size=SIZE, fps=FPS, crossfade=1.0, duration=seconds),
                    overlays=overlays)
    source.player = player
    player.run()
    return player


def frames_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def save_png(image: np.ndarray, name: str, tmp_path: Path) -> None:
    for folder in (tmp_path, os.environ.get("LOFID_PNG_DIR")):
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(Path(folder) / name)


def layers():
    return [parse_layer({"kind": "text", "name": "note", "text": "lofi beats to relax to"}),
            parse_layer({"kind": "clock", "position": "top-right", "timezone": "UTC"})]


def board(note: str | None = None, now=lambda: T0) -> Overlays:
    o = Overlays(layers(), SIZE, now=now)
    if note is not None:
        o.set({"name": "note", "text": note})
    return o


def expected(background: np.ndarray, look) -> np.ndarray:
    out = background.copy()
    draw_on_rgb(out, None, look)
    return out


def region_diff(a: np.ndarray, b: np.ndarray, box) -> float:
    x0, y0, x1, y1 = box
    return float(np.abs(a[y0:y1, x0:x1].astype(np.int16) - b[y0:y1, x0:x1]).mean())


# H.264 at 4.5 Mb/s codes a 320x180 picture almost losslessly, but not exactly: the
# same picture differs by about a level on average between two encodes, more along
# the letters' sharp edges (the text was blended in yuv420p, whose colour is at half
# resolution, while the expectation is drawn in RGB over the decoded plain frame).
# Measured over the note's region: the right text is 1.0-1.6 levels from its
# expectation, another text or none 7-13. So within 4 counts as showing the text,
# and 6 or more away as not showing it (both asserted, so the check can fail).
SAME_TEXT = 4.0
OTHER_TEXT = 6.0


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same 8 s (two loops, a crossfade at 6 s) without and with overlays, the
    note changed at once (now) at 1 s and at the next keyframe after 3.5 s."""
    tmp = tmp_path_factory.mktemp("overlays")
    first, second = textured_loop(40, 1), textured_loop(40, 2)   # 120-frame repetitions
    plain = play(tmp / "plain.mp4", first, [(5.5, second)])
    overlays = board()
    hooks = [(1.0, lambda: overlays.set({"name": "note", "text": "rain on the window"},
                                        now=True)),
             (3.5, lambda: overlays.set({"name": "note", "text": "back in five"}))]
    shown = play(tmp / "overlays.mp4", first, [(5.5, second)], overlays, hooks)
    return {"plain": frames_of(tmp / "plain.mp4"), "shown": frames_of(tmp / "overlays.mp4"),
            "player": shown, "plain_player": plain, "tmp": tmp, "loop": first}


def test_the_text_shows_where_configured_and_changes(runs, tmp_path):
    plain, shown, player = runs["plain"], runs["shown"], runs["player"]
    assert len(plain) == len(shown) == 240
    loop = runs["loop"]
    looks = {text: board(text).look(loop) for text in
             ("lofi beats to relax to", "rain on the window", "back in five")}
    note = {text: look.tiles()["note"].box for text, look in looks.items()}
    clock = looks["back in five"].tiles()["clock"].box
    # The note sits bottom left, the clock top right, as configured.
    assert note["back in five"][0] < 40 and note["back in five"][3] > SIZE[1] - 40
    assert clock[2] > SIZE[0] - 40 and clock[1] < 40

    # frame -> the note it must show (after each change's 0.6-s fade is over): the
    # first text; the change asked with now = true at 1 s, live, before the keyframe
    # at 2 s; the plain change at 3.5 s only from the keyframe at 4 s; and over the
    # crossfade to the second loop (frames 180-209) and after it.
    timeline = {20: "lofi beats to relax to", 55: "rain on the window",
                115: "rain on the window", 145: "back in five", 195: "back in five",
                230: "back in five"}
    # The note's region, big enough for any of its texts.
    area = (min(b[0] for b in note.values()), min(b[1] for b in note.values()),
            max(b[2] for b in note.values()), max(b[3] for b in note.values()))
    for n, text in timeline.items():
        want = expected(plain[n], looks[text])
        assert region_diff(shown[n], want, area) < SAME_TEXT, (n, text)
        for other in looks:
            if other != text:
                assert region_diff(shown[n], expected(plain[n], looks[other]), area) \
                    > OTHER_TEXT, (n, other)
        assert region_diff(shown[n], plain[n], area) > OTHER_TEXT
        assert region_diff(shown[n], want, clock) < SAME_TEXT, n
        if n in (20, 55, 195):
            save_png(np.hstack([shown[n], want]), f"overlay_{n}.png", tmp_path)
    # A live segment made the first change; the second waited for a keyframe.
    assert player.stats["overlay_live"] == 1
    assert player.stats["overlay_changes"] == 2
    assert player.stats["crossfades"] == 1


def test_outside_the_text_the_picture_is_the_stream_without_overlays(runs):
    plain, shown, loop = runs["plain"], runs["shown"], runs["loop"]
    look = board("lofi beats to relax to").look(loop)
    mask = np.ones(plain[0].shape[:2], bool)
    for text in ("lofi beats to relax to", "rain on the window", "back in five"):
        for tile in board(text).look(loop).tiles().values():
            x0, y0, x1, y1 = tile.box
            # H.264 codes 16x16 blocks: a block the text touches may differ a little
            # as a whole, so a block's width around each tile is left out.
            mask[max(0, y0 - 16):y1 + 16, max(0, x0 - 16):x1 + 16] = False
    assert 0.5 < mask.mean() < 0.95
    for n in (10, 50, 100, 150, 195, 235):
        d = np.abs(shown[n].astype(np.int16) - plain[n])[mask]
        # Two encodes of the same picture: about a level apart, nowhere far.
        assert d.mean() < 1.5 and np.percentile(d, 99.9) < 24, (n, d.mean(), d.max())
    assert look


def test_a_minute_clock_encodes_once_a_minute_not_every_frame(tmp_path):
    """A fake clock running 30 times faster than the stream: a new minute every 2 s of
    stream, so each 60-frame repetition comes with a new minute."""
    holder: dict = {}
    clock = Overlays([parse_layer({"kind": "clock", "timezone": "UTC", "fade": 0,
                                   "position": "top-left", "size": 24})], SIZE,
                     now=lambda: T0 + holder["player"].seconds * 30 if "player" in holder else T0)
    loop = textured_loop(20, 3)                     # 60-frame repetitions
    source = Source(loop)
    player = Player(source, [FileOutput(str(tmp_path / "clock.mp4"))], None,
                    PlayerSettings(size=SIZE, fps=FPS, duration=10.0), overlays=clock)
    source.player = holder["player"] = player
    player.run()
    frames = frames_of(tmp_path / "clock.mp4")
    assert len(frames) == 300
    # Five minutes shown: the first repetition and four changes, each one encode.
    assert player.stats["overlay_changes"] == 4
    assert player.stats["encodes"] == 5, player.stats
    # Each 2-s stretch shows its minute (22:13, 22:14, ...).
    shown = []
    for i in range(5):
        n = 60 * i + 30
        best = min(range(13, 19), key=lambda m: region_diff(
            frames[n], _clock_drawn(frames[n], loop, T0 + (m - 13) * 60), (0, 0, 120, 60)))
        shown.append(best)
    assert shown == [13, 14, 15, 16, 17]
    save_png(frames[150], "overlay_clock.png", tmp_path)


def _clock_drawn(frame, loop, at):
    o = Overlays([parse_layer({"kind": "clock", "timezone": "UTC", "fade": 0,
                               "position": "top-left", "size": 24})], SIZE, now=lambda: at)
    return expected(frame, o.look(loop))


@pytest.mark.parametrize("table, named", [
    ({"kind": "marquee"}, "marquee"),
    ({"kind": "text"}, "text"),
    ({"kind": "text", "text": "hi", "font": "/no/such/font.ttf"}, "font.ttf"),
    ({"kind": "clock", "format": "%H:%Q"}, "%Q"),
    ({"kind": "clock", "format": "no directive"}, "format"),
    ({"kind": "clock", "timezone": "Mars/Olympus"}, "Mars/Olympus"),
    ({"kind": "text", "text": "hi", "position": "somewhere"}, "position"),
    ({"kind": "text", "text": "hi", "opacity": 2}, "opacity"),
    ({"kind": "text", "text": "hi", "colour": "sunset-ish"}, "colour"),
    ({"kind": "text", "text": "hi", "blink": True}, "blink"),
])
def test_a_bad_layer_is_refused_by_name(table, named):
    with pytest.raises(OverlayError) as e:
        parse_layer(table)
    assert named in str(e.value) and "\n" not in str(e.value)


def test_text_too_wide_for_the_picture_is_refused_and_a_long_title_cut_short():
    with pytest.raises(OverlayError, match="px wide"):
        Overlays([parse_layer({"kind": "text", "text": "a line far too long for this small "
                                                        "picture to hold, however small the "
                                                        "letters are"})], SIZE)

    class Track:
        def now_playing(self):
            return {"path": "/music/a_very_long_file_name_of_a_track_that_goes_on_and_on.mp3",
                    "prompt": "rainy night, soft piano, vinyl crackle, far away traffic"}
    from lofid.overlays.drawing import fitted, text_width
    o = Overlays([parse_layer({"kind": "now_playing", "text": "♪ ", "size": 16})], SIZE,
                 audio=Track())
    (layer, text), = o.look().items
    # No tags (the file is not there), so the prompt lofi.nvim made the track from.
    assert text == "♪ rainy night, soft piano, vinyl crackle, far away traffic"
    shown = fitted(layer, text, *SIZE)
    assert shown.startswith("♪ rainy night") and shown.endswith("…")
    assert text_width(layer, shown, SIZE[1]) <= SIZE[0] - 2 * round(layer.margin * SIZE[1])
    tile = o.look().tiles()["now_playing"]
    assert 0 <= tile.box[0] and tile.box[2] <= SIZE[0]


@pytest.mark.slow
def test_overlays_over_the_socket_and_the_cli(tmp_path):
    """A daemon with an overlay from its config: bad layers over the socket get an
    error reply naming what is wrong and the daemon plays on; good ones are listed,
    changed and cleared; `lofid ctl overlay` says the same on one line, exit 2."""
    from lofid.control.client import ControlError
    config = tmp_path / "config.toml"
    config.write_text('[[overlay]]\nkind = "clock"\nposition = "top-right"\n')
    with running(tmp_path, "-o", "null", "--size", "320x180", "--config", config) as d:
        assert [l["kind"] for l in d.call("overlay.list")] == ["clock"]
        for layer, named in [({"kind": "marquee"}, "marquee"),
                             ({"kind": "text", "text": "hi", "font": str(tmp_path / "x.ttf")},
                              "x.ttf"),
                             ({"kind": "clock", "name": "c2", "format": "%Q"}, "%Q"),
                             ({"kind": "text", "text": "words " * 30}, "px wide"),
                             ({"kind": "text", "text": "hi", "now": "yes"}, "now")]:
            with pytest.raises(ControlError) as e:
                d.call("overlay.set", layer)
            assert named in str(e.value), e.value
        assert d.status()["clock"]["frame"] >= 0              # alive
        assert d.call("overlay.set", {"kind": "text", "name": "note", "text": "hello",
                                      "now": True}) == {"name": "note", "kind": "text",
                                                        "now": True}
        r = d.ctl("overlay", "set", "name=note", "text=good night", "position=top-left")
        assert r.returncode == 0, r.stderr
        r = d.ctl("overlay", "set", "kind=text", "name=wide", "text=" + "words " * 30)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "px wide" in r.stderr
        r = d.ctl("--json", "overlay", "list")
        listed = json.loads(r.stdout)
        assert [(l["name"], l["text"], l["position"]) for l in listed] == [
            ("clock", "", "top-right"), ("note", "good night", "top-left")]
        r = d.ctl("overlay", "clear", "nothing-here")
        assert r.returncode == 2 and "nothing-here" in r.stderr
        assert d.ctl("overlay", "clear", "note", "now").returncode == 0
        assert [l["name"] for l in d.call("overlay.list")] == ["clock"]
        assert d.status()["clock"]["frame"] > 0


def test_outputs_that_take_frames_get_the_text_too(tmp_path):
    """A WebM file encodes the player's RGB frames itself: the text is drawn on those
    (the loop's own frames are never drawn on), and a change made with now = true shows."""
    loop = textured_loop(40, 4)
    overlays = board()
    hooks = [(1.0, lambda: overlays.set({"name": "note", "text": "back in five"}, now=True))]
    play(tmp_path / "frames.webm", loop, (), overlays, hooks, seconds=3.0)
    frames = frames_of(tmp_path / "frames.webm")
    assert len(frames) == 90
    untouched = textured_loop(40, 4).frames
    # Exact: the same numpy code made both in this process; drawing must not have
    # written into the loop's own frames.
    assert np.array_equal(loop.frames, untouched)
    note = {t: board(t).look(loop) for t in ("lofi beats to relax to", "back in five")}
    x0, y0, x1, y1 = note["lofi beats to relax to"].tiles()["note"].box
    area = (x0, y0, x1, y1)
    for n, text in ((15, "lofi beats to relax to"), (75, "back in five")):
        source = untouched[(n // 3) % 40]           # 10 fps shown three times at 30
        want = expected(source, note[text])
        other = expected(source, note[[t for t in note if t != text][0]])
        # VP9 codes the picture a little less exactly than H.264 here; the same
        # margins hold (measured: 2.1-2.6 levels from the right text, 12-14 from
        # the other).
        assert region_diff(frames[n], want, area) < SAME_TEXT, n
        assert region_diff(frames[n], other, area) > OTHER_TEXT, n

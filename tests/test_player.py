"""The player: one clock, repetitions from cached packets, crossfades, fps, fit, pacing.

Everything runs on the real encoders and outputs (libx264 + AAC through lofid.encode,
MP4/MKV through FileOutput, NullOutput), at 320x180, and reads files back with PyAV.
Set LOFID_PNG_DIR to keep PNGs of the pictures the tests look at.
"""

from __future__ import annotations

import os
import threading
import wave
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

import lofid.player.segments as segments  # the encoders the player calls
from lofid.audio import AudioTrack
from lofid.generators import get as get_generator
from lofid.loop import Loop
from lofid.media import AudioChunk, VideoFrame
from lofid.outputs.base import Output
from lofid.outputs.file import FileOutput
from lofid.outputs.null import NullOutput
from lofid.player import Player, PlayerSettings
from lofid.scene import SceneSpec, parse

SIZE = (320, 180)
RED, BLUE = (230, 20, 20), (20, 20, 230)


# --------------------------------------------------------------------------- helpers

class Recorder(Output):
    """A real Output (queue + worker thread) that keeps every item it is sent and
    when it was sent."""

    queue_size = 1_000_000          # never drops: the tests look at everything

    def __init__(self, wants: str = "packets", name: str = "recorder"):
        super().__init__(name)
        self.wants = wants
        self.items: list = []
        self.sent_at: list[float] = []

    def send(self, item) -> bool:
        self.sent_at.append(time.monotonic())
        return super().send(item)

    def _write(self, item) -> None:
        self.items.append(item)

    def video(self):
        return [i for i in self.items if getattr(i, "kind", None) == "video"]

    def audio(self):
        return [i for i in self.items if getattr(i, "kind", None) == "audio"]

    def images(self):
        return [i for i in self.items if isinstance(i, VideoFrame)]


class Source:
    """A loop source like the director's: `first()` at once, then each upcoming loop
    once the player's clock has run `at` seconds (an entry may also raise)."""

    def __init__(self, first, upcoming=()):
        self._first = first
        self.upcoming = list(upcoming)          # [(seconds, loop or exception)]
        self.player: Player | None = None

    def first(self):
        return self._first

    def next_ready(self):
        if self.upcoming and self.player.seconds >= self.upcoming[0][0]:
            _, item = self.upcoming.pop(0)
            if isinstance(item, Exception):
                raise item
            return item
        return None


def solid_loop(rgb, frames=12, fps=10.0, size=SIZE, seed=1) -> Loop:
    video = np.empty((frames, size[1], size[0], 3), np.uint8)
    video[:] = rgb
    return Loop(frames=video, fps=fps, spec=SceneSpec(), seed=seed, generator="test")


def grey_ramp_loop(frames, fps, size=SIZE) -> tuple[Loop, list[int]]:
    """Frame i is one flat grey, distinct and increasing with i."""
    greys = [10 + 20 * i for i in range(frames)]
    video = np.empty((frames, size[1], size[0], 3), np.uint8)
    for i, g in enumerate(greys):
        video[i] = g
    return Loop(frames=video, fps=fps, spec=SceneSpec(), seed=2, generator="test"), greys


def play(first, upcoming=(), outputs=(), audio=None, **settings):
    events: list[tuple[str, dict]] = []
    source = Source(first, upcoming)
    player = Player(source, list(outputs), audio, PlayerSettings(size=SIZE, **settings),
                    on_event=lambda name, payload: events.append((name, payload)))
    source.player = player
    player.run()
    return player, events


def decode(path: Path):
    """(frames as RGB arrays, video keyframe times in seconds, audio stream or None)."""
    with av.open(str(path)) as c:
        keyframes = [float(p.pts * p.time_base) for p in c.demux(video=0)
                     if p.pts is not None and p.is_keyframe]
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        audio = c.streams.audio[0] if c.streams.audio else None
        audio = None if audio is None else (audio.codec_context.name, audio.rate,
                                             audio.channels)
    return frames, keyframes, audio


def save_png(image: np.ndarray, name: str, tmp_path: Path) -> None:
    for folder in (tmp_path, os.environ.get("LOFID_PNG_DIR")):
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(Path(folder) / name)


def mean_rgb(image: np.ndarray) -> np.ndarray:
    return image.reshape(-1, 3).mean(axis=0)


# --------------------------------------------------------------------------- the clock

def test_clock_runs_on_across_repetitions_and_crossfades(monkeypatch):
    calls = []
    real_encode = segments.encode_segment

    def counting_encode(frames, settings):
        packets = real_encode(frames, settings)
        calls.append(len(packets))
        return packets

    monkeypatch.setattr(segments, "encode_segment", counting_encode)
    painted = get_generator("procedural")(parse("coffee shop rain"), 3, (160, 90), 12, 12.0)
    red = solid_loop(RED, frames=12, fps=10.0)               # 36 output frames a repetition
    blue = solid_loop(BLUE, frames=24, fps=12.0, seed=2)     # 60 output frames
    start = 123_456
    recorder, null = Recorder(), NullOutput()
    player, events = play(painted, [(2.0, red), (5.0, blue)], [recorder, null],
                          crossfade=1.0, duration=9.0, start_frame=start)

    n = 9 * 30
    video = recorder.video()
    assert [p.pts for p in video] == list(range(start, start + n))
    assert all(p.dts == p.pts and p.duration == 1 for p in video)
    keyframes = [p.pts for p in video if p.keyframe]
    assert keyframes[0] == start
    assert max(np.diff(keyframes + [start + n])) <= 60      # never more than 2 s apart

    audio = recorder.audio()
    assert audio[0].pts == start * 1600                      # n * 48000 / 30, exactly
    assert set(np.diff([p.pts for p in audio])) == {1024}
    assert audio[-1].pts + 1024 >= (start + n) * 1600
    assert null.packets["video"] == n and null.out_of_order == 0

    # Three loops, each encoded once, plus two crossfades; nothing else was encoded.
    assert player.stats["encodes"] == 3 and player.stats["crossfades"] == 2
    assert sorted(calls) == [30, 30, 30, 36, 60]
    assert player.frame == start + n and player.stats["frames"] == n
    # Later repetitions re-send the first one's packets, byte for byte.
    assert [p.data for p in video[30:60]] == [p.data for p in video[0:30]]
    # The painted loop plays twice (0..59); the red one is offered at 60, a keyframe,
    # and fades in over 30 frames, entering 6 frames into its repetition so that its
    # cached repetition (a keyframe) follows at 90; it repeats from 90 and 126; blue,
    # offered at 150, waits for red's keyframe at 162 and repeats from 192 and 252.
    crossfades = [e for name, e in events if name == "crossfade"]
    assert [(e["frame"], e["frames"]) for e in crossfades] == [(start + 60, 30),
                                                               (start + 162, 30)]
    assert player.stats["repetitions"] == 2 + 2 + 2
    assert [p.pts for p in video if p.keyframe][:6] == [
        start + k for k in (0, 30, 60, 90, 126, 162)]
    started = [e for name, e in events if name == "loop_started"]
    assert [e["frame"] for e in started] == [start, start + 60, start + 162]
    assert started[1]["fps"] == 10.0 and started[2]["frames"] == 60


def test_a_file_shows_the_crossfade_from_red_to_blue(tmp_path):
    path = tmp_path / "crossfade.mp4"
    frames_seen = Recorder("frames")
    player, events = play(solid_loop(RED), [(1.0, solid_loop(BLUE, fps=12.0, seed=2))],
                          [FileOutput(path), frames_seen], crossfade=1.0, duration=4.0)

    frames, keyframes, audio = decode(path)
    assert len(frames) == 120
    assert frames[0].shape == (180, 320, 3)
    assert keyframes[0] == 0 and max(np.diff(keyframes + [4.0])) <= 2.0
    assert audio == ("aac", 48000, 2)

    (fade,) = [e for name, e in events if name == "crossfade"]
    c, curve = fade["frame"], round(fade["seconds"] * 30)
    assert c == 36                       # the first keyframe after the blue loop came (30)
    for k in (-1, 0, curve // 4, curve // 2, 3 * curve // 4, curve - 1, fade["frames"]):
        save_png(frames[c + k], f"crossfade_{k + 1:02d}.png", tmp_path)
    before, middle, after = (mean_rgb(frames[i]) for i in (c - 1, c + curve // 2, c + curve))
    assert before[0] > 200 and before[2] < 40
    assert after[2] > 200 and after[0] < 40
    assert 70 < middle[0] < 180 and 70 < middle[2] < 180     # in between, not a cut
    blues = [mean_rgb(frames[c + k])[2] for k in range(curve)]
    assert all(b2 >= b1 - 3 for b1, b2 in zip(blues, blues[1:]))   # one smooth way
    assert blues[1] - blues[0] < blues[curve // 2 + 1] - blues[curve // 2]   # eases in

    # Frame outputs get the same pictures (up to H.264's loss), one per clock tick.
    images = frames_seen.images()
    assert [f.index for f in images] == list(range(120))
    assert abs(mean_rgb(images[c + curve // 2].image) - middle).max() < 6
    chunks = [i for i in frames_seen.items if isinstance(i, AudioChunk)]
    assert [ch.start for ch in chunks] == [1600 * i for i in range(120)]


def test_music_from_the_audio_track_plays_in_step_with_the_clock(tmp_path):
    tone = tmp_path / "tone.wav"
    t = np.arange(48000) / 48000
    samples = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    with wave.open(str(tone), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(np.repeat(samples, 2).tobytes())
    path = tmp_path / "music.mp4"
    # Unpaced, the file is made faster than real time: let reads wait for the decoder.
    track = AudioTrack([tone], crossfade=0, max_wait=2.0)
    try:
        play(solid_loop(RED), outputs=[FileOutput(path)], audio=track, duration=3.0)
        assert track.position == 90 * 1600               # exactly 1600 samples a frame
    finally:
        track.close()
    with av.open(str(path)) as c:
        audio = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)
    assert 90 * 1600 <= audio.shape[1] <= 90 * 1600 + 1024
    middle = audio[:, 48000:96000]
    assert 0.3 < np.sqrt((middle ** 2).mean()) < 0.4        # the tone, at 0.5 peak


# --------------------------------------------------------------------------- fps and fit

def test_10_fps_loop_shows_each_frame_three_times_at_30():
    loop, greys = grey_ramp_loop(12, 10.0)
    frames_seen = Recorder("frames")
    play(loop, outputs=[frames_seen], duration=72 / 30)
    images = [f.image for f in frames_seen.images()]
    assert len(images) == 72
    for j, image in enumerate(images):
        assert np.array_equal(image, loop.frames[(j // 3) % 12]), j   # repeated, not blended


def test_12_fps_loop_blends_neighbouring_frames_at_30():
    loop, greys = grey_ramp_loop(12, 12.0)
    frames_seen = Recorder("frames")
    play(loop, outputs=[frames_seen], duration=1.0)
    images = [f.image for f in frames_seen.images()]
    assert len(images) == 30                              # 12 frames at 12 fps = 1 s
    blended = 0
    for j, image in enumerate(images):
        t = j * 12 / 30
        i, f = int(t), t - int(t)
        expected = (1 - f) * greys[i] + f * greys[(i + 1) % 12]
        assert abs(float(image.mean()) - expected) <= 1, (j, image.mean(), expected)
        blended += f > 0 and not any(abs(image.mean() - g) < 2 for g in greys)
    assert blended == 24                                  # all but every fifth frame


def square_pattern(side=180) -> np.ndarray:
    """Green left half with a thin cyan stripe, magenta right half, a white band on top
    and a yellow one below."""
    image = np.zeros((side, side, 3), np.uint8)
    image[:, : side // 2] = (0, 200, 0)
    image[:, 10:16] = (0, 255, 255)
    image[:, side // 2:] = (200, 0, 200)
    image[:20] = (255, 255, 255)
    image[-20:] = (255, 255, 0)
    return image


def test_a_square_loop_is_cropped_or_shown_whole_over_a_blurred_backdrop(tmp_path):
    video = np.stack([square_pattern()] * 4)
    loop = Loop(frames=video, fps=10.0, spec=SceneSpec(), seed=4, generator="test")
    pictures = {}
    for fit in ("crop", "blur"):
        frames_seen = Recorder("frames")
        play(loop, outputs=[frames_seen], duration=0.1, fit=fit)
        pictures[fit] = frames_seen.images()[0].image
        save_png(pictures[fit], f"fit_{fit}.png", tmp_path)

    crop = pictures["crop"].astype(int)
    assert crop.shape == (180, 320, 3)
    # Cover: the loop fills the width, so its bands above and below are cut off.
    assert not ((crop > 240).all(axis=2)).any()
    assert (crop[:, :150, 1] > 190).all() and (crop[:, 170:, 0] > 190).all()
    assert (crop[:, 18:28, 2] > 230).any(axis=1).all()       # the stripe, sharp

    blur = pictures["blur"].astype(int)
    # The whole square in the middle, bands and all ...
    assert (blur[5, 80:240] > 240).all() and (blur[175, 80:240, :2] > 240).all()
    assert (blur[90, 75:155, 1] > 190).all() and (blur[90, 165:245, 0] > 190).all()
    # ... over a darker copy of itself at the sides, soft rather than sharp.
    left, right = blur[:, :60], blur[:, 260:]
    assert 40 < left[..., 1].mean() < 150 and left[..., 0].max() < 60
    assert 40 < right[..., 0].mean() < 150 and right[..., 1].max() < 60
    stripe = left[90, :, 2]                                  # the cyan stripe, blurred
    assert 15 < stripe.max() < 120 and (stripe > stripe.max() / 2).sum() > 12
    assert np.abs(np.diff(stripe)).max() < 10


# --------------------------------------------------------------------------- failures

def test_a_loop_that_fails_to_prepare_is_skipped_and_the_picture_goes_on():
    class BrokenLoop:
        frames = np.zeros((3, 10, 10), np.uint8)     # not (N, H, W, 3)
        fps, seed, generator, spec = 10.0, 9, "test", SceneSpec()

    recorder = Recorder()
    blue = solid_loop(BLUE, seed=2)
    player, events = play(solid_loop(RED), [(0.5, BrokenLoop()),
                                            (1.0, RuntimeError("director hiccup")),
                                            (1.5, blue)],
                          [recorder], duration=4.0, crossfade=0.5)
    errors = [e for name, e in events if name == "player_error"]
    assert [e["where"] for e in errors] == ["prepare", "source"]
    assert "(N, H, W, 3)" in errors[0]["error"] and "hiccup" in errors[1]["error"]
    assert player.stats["loops_failed"] == 1 and player.stats["crossfades"] == 1
    assert [p.pts for p in recorder.video()] == list(range(120))
    (fade,) = [e for name, e in events if name == "crossfade"]
    # The red loop's keyframes fall every 36 frames; the source is asked once at each:
    # the broken loop at 36, the hiccup at 72, the blue loop at 108.
    assert fade["frame"] == 108


def test_a_cut_when_crossfade_is_zero_encodes_nothing_extra(monkeypatch):
    calls = []
    real_encode = segments.encode_segment
    monkeypatch.setattr(segments, "encode_segment",
                        lambda f, s: calls.append(1) or real_encode(f, s))
    recorder = Recorder()
    player, events = play(solid_loop(RED), [(0.2, solid_loop(BLUE, seed=2))], [recorder],
                          duration=3.0, crossfade=0)
    assert len(calls) == 2 and player.stats["crossfades"] == 1
    video = recorder.video()
    assert [p.pts for p in video] == list(range(90)) and video[36].keyframe
    # Blue's own cached repetition from its first frame, then again.
    assert [p.data for p in video[36:54]] == [p.data for p in video[72:90]]
    assert video[36].data != video[0].data


# --------------------------------------------------------------------------- long clocks

@pytest.mark.parametrize("wrap", [
    pytest.param(2**33 * 30 // 90000, id="mpegts-33-bit-90kHz"),
    pytest.param(2**24 * 30 // 1000, id="rtmp-24-bit-ms"),
])
def test_a_clock_starting_near_a_timestamp_wrap(tmp_path, wrap):
    start = wrap - 45
    recorder = Recorder()
    path = tmp_path / "late.mkv"
    play(solid_loop(RED), [(1.0, solid_loop(BLUE, seed=2))], [recorder, FileOutput(path)],
         duration=3.0, crossfade=0.5, start_frame=start)
    assert [p.pts for p in recorder.video()] == list(range(start, start + 90))
    audio = [p.pts for p in recorder.audio()]
    assert audio[0] == start * 1600 and set(np.diff(audio)) == {1024}
    frames, keyframes, _ = decode(path)
    assert len(frames) == 90 and keyframes[0] == 0


# --------------------------------------------------------------------------- duration, pacing, stop

def test_duration_is_honoured_to_the_frame_and_audio_to_the_sample():
    frames_seen, recorder = Recorder("frames"), Recorder()
    player, _ = play(solid_loop(RED), outputs=[frames_seen, recorder], duration=2.0,
                     fps=Fraction(30000, 1001))
    assert player.stats["frames"] == 60                        # 59.94, rounded
    assert len(recorder.video()) == 60 and recorder.state == "closed"
    chunks = [i for i in frames_seen.items if isinstance(i, AudioChunk)]
    starts = [c.start for c in chunks]
    assert starts == [n * 48000 * 1001 // 30000 for n in range(60)]
    assert sum(len(c.samples) for c in chunks) == 60 * 48000 * 1001 // 30000


def test_realtime_keeps_to_the_wall_clock_and_prepares_in_the_background():
    recorder = Recorder()
    red = solid_loop(RED, frames=12, fps=10.0)            # 36 frames a repetition
    t = time.monotonic()
    player, events = play(red, [(0.0, solid_loop(BLUE, seed=2))], [recorder],
                          duration=2.0, crossfade=0.5, realtime=True)
    wall = time.monotonic() - t
    assert 1.9 < wall < 4.0
    video = recorder.video()
    assert [p.pts for p in video] == list(range(60))
    sent = [at for at, item in zip(recorder.sent_at, recorder.items) if item.kind == "video"]
    late = [at - sent[0] - k / 30 for k, at in enumerate(sent)]
    assert min(late) > -0.02 and max(late) < 0.5          # a loaded 2-core machine
    # From the next loop being ready to its crossfade: at most one repetition.
    assert player.stats["crossfades"] == 1
    assert 0 <= player.stats["ready_to_crossfade_frames"] <= 36


def test_stop_from_another_thread_leaves_a_playable_file(tmp_path):
    path = tmp_path / "stopped.mp4"
    source = Source(solid_loop(RED))
    player = Player(source, [FileOutput(path)], None,
                    PlayerSettings(size=SIZE, realtime=True))
    source.player = player
    runner = threading.Thread(target=player.run)
    runner.start()
    deadline = time.monotonic() + 30
    while player.stats["frames"] < 15 and time.monotonic() < deadline:
        time.sleep(0.02)     # until the picture is flowing
    player.stop()
    runner.join(timeout=15)
    assert not runner.is_alive()
    frames, _, audio = decode(path)
    assert len(frames) == player.stats["frames"] > 5
    assert audio is not None


# --------------------------------------------------------------------------- settings

@pytest.mark.parametrize("kwargs, words", [
    ({"fit": "stretch"}, "fit"),
    ({"size": (1921, 1080)}, "size"),
    ({"size": "1920x1080"}, "size"),
    ({"fps": 0}, "fps"),
    ({"crossfade": -1}, "crossfade"),
    ({"duration": 0}, "duration"),
    ({"start_frame": -5}, "start_frame"),
    ({"bitrate": 10}, "bitrate"),
])
def test_bad_settings_are_refused_by_name(kwargs, words):
    with pytest.raises(ValueError, match=words):
        PlayerSettings(**kwargs)


# --------------------------------------------------------------------------- urgent loops: live crossfades

class UrgentSource(Source):
    """A source whose loop `urgent_loop` becomes urgent once the clock has run `at` s."""

    def __init__(self, first, urgent_at, urgent_loop, upcoming=()):
        super().__init__(first, upcoming)
        self.urgent_at, self.urgent_loop = urgent_at, urgent_loop

    def urgent(self):
        if self.urgent_loop is not None and self.player.seconds >= self.urgent_at:
            loop, self.urgent_loop = self.urgent_loop, None
            return loop
        return None


def colour_ramp_loop(channel, frames=12, fps=10.0, size=(160, 90), seed=5) -> Loop:
    """Frame i: grey 40 with `channel` at 60 + 15 i, so each frame is told apart."""
    video = np.full((frames, size[1], size[0], 3), 40, np.uint8)
    for i in range(frames):
        video[i, ..., channel] = 60 + 15 * i
    return Loop(frames=video, fps=fps, spec=SceneSpec(), seed=seed, generator="test")


def ffmpeg_errors(path: Path) -> str:
    import subprocess
    r = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
                       capture_output=True, text=True, timeout=60)
    return r.stderr.strip()


@pytest.mark.slow
def test_an_urgent_loop_crosses_live_at_the_next_frame_and_joins_its_cached_packets(tmp_path):
    from lofid.library import Library
    library = Library(tmp_path / "library")
    red = colour_ramp_loop(0)                        # 36 output frames a repetition
    key = library.put(colour_ramp_loop(2, seed=6))
    blue = library.open(key)                         # frames still decoding as it starts
    path = tmp_path / "urgent.mp4"
    recorder = Recorder()
    events = []
    source = UrgentSource(red, 50 / 30, blue)
    player = Player(source, [recorder, FileOutput(path)], None,
                    PlayerSettings(size=SIZE, crossfade=0.5, duration=8.0),
                    on_event=lambda name, payload: events.append((name, payload)))
    source.player = player
    player.run()

    (fade,) = [e for name, e in events if name == "crossfade"]
    c, length = fade["frame"], fade["frames"]
    assert fade["live"] is True and c == 50 and length == 15   # the very next frame
    assert player.stats["live_crossfades"] == 1 and player.stats["live_failures"] == 0

    # One stream: every frame once, in order, a keyframe where the crossfade starts.
    video = recorder.video()
    assert [p.pts for p in video] == list(range(240))
    assert video[c].keyframe and not video[c - 1].keyframe
    frames, keyframes, _ = decode(path)
    assert len(frames) == 240 and ffmpeg_errors(path) == ""
    assert c / 30 in keyframes

    # Before: the red loop's repetition, to the frame (offset 50 % 36 = 14, frame 4).
    reds = [mean_rgb(frames[n]) for n in range(c)]
    assert all(abs(reds[n][0] - (60 + 15 * ((n % 36) // 3))) < 4 for n in range(c))
    # The crossfade blends, red out and blue in, one smooth way.
    mix = [mean_rgb(frames[c + k]) for k in range(length)]
    assert all(b2[2] >= b1[2] - 3 and r2[0] <= r1[0] + 3 for b1, b2, r1, r2 in
               zip(mix, mix[1:], mix, mix[1:]))
    assert 50 < mix[length // 2][2] and 50 < mix[length // 2][0]
    # After: the blue loop from its first frame, entering in step with red's frames
    # (red was 2 ticks into its frame at 50, so blue's frame 0 shows for 1 tick).
    anchor = c - (c % 36) % 3
    for n in range(c + length, 240):
        expected = 60 + 15 * (((n - anchor) % 36) // 3)
        assert abs(mean_rgb(frames[n])[2] - expected) < 4, n
        assert mean_rgb(frames[n])[0] < 48
    # Back to cached packets at a keyframe of blue's repetition: from there on each
    # repetition is the same bytes.
    cut = next(n for n in range(c + length, 240 - 36)
               if (n - anchor) % 36 == 0 and video[n].data == video[n + 36].data)
    assert video[cut].keyframe
    assert all(video[n].data == video[n + 36].data for n in range(cut, 240 - 36))
    assert player.stats["live_frames"] == cut - c


def test_an_urgent_loop_reaches_frame_outputs_too():
    red, blue = colour_ramp_loop(0), colour_ramp_loop(2, seed=6)
    frames_seen = Recorder("frames")
    source = UrgentSource(red, 1.0, blue)
    events = []
    player = Player(source, [frames_seen], None,
                    PlayerSettings(size=SIZE, crossfade=0.5, duration=3.0),
                    on_event=lambda name, payload: events.append((name, payload)))
    source.player = player
    player.run()
    (fade,) = [e for name, e in events if name == "crossfade"]
    images = frames_seen.images()
    assert [f.index for f in images] == list(range(90)) and fade["frame"] == 30
    assert mean_rgb(images[29].image)[0] > 100 and mean_rgb(images[29].image)[2] < 45
    assert mean_rgb(images[89].image)[2] > 55 and mean_rgb(images[89].image)[0] < 45


def test_rotation_still_crosses_on_cached_packets_after_a_live_crossfade():
    red, blue = colour_ramp_loop(0), colour_ramp_loop(2, seed=6)
    green = colour_ramp_loop(1, seed=7)
    recorder = Recorder()
    events = []
    source = UrgentSource(red, 0.5, blue, upcoming=[(4.0, green)])
    player = Player(source, [recorder], None,
                    PlayerSettings(size=SIZE, crossfade=0.5, duration=8.0),
                    on_event=lambda name, payload: events.append((name, payload)))
    source.player = player
    player.run()
    fades = [e for name, e in events if name == "crossfade"]
    assert [e["live"] for e in fades] == [True, False]
    assert player.stats["crossfades"] == 1 and player.stats["live_crossfades"] == 1
    assert [p.pts for p in recorder.video()] == list(range(240))


@pytest.mark.slow
def test_an_urgent_loop_that_cannot_be_read_never_stops_the_picture(tmp_path):
    from lofid.library import Library
    library = Library(tmp_path / "library")
    key = library.put(colour_ramp_loop(2, seed=6))
    frames_file = tmp_path / "library" / f"{key}.mkv"
    frames_file.write_bytes(b"not a video" * (frames_file.stat().st_size // 11))
    broken = library.open(key)                       # its metadata is fine; its frames not
    path = tmp_path / "broken.mp4"
    recorder = Recorder()
    events = []
    source = UrgentSource(colour_ramp_loop(0), 1.0, broken)
    player = Player(source, [recorder, FileOutput(path)], None,
                    PlayerSettings(size=SIZE, crossfade=0.5, duration=4.0),
                    on_event=lambda name, payload: events.append((name, payload)))
    source.player = player
    player.run()
    errors = [e for name, e in events if name == "player_error"]
    # The live crossfade and the background encode of its repetition both find the
    # damage; which says so first depends on the threads.
    assert errors and all("damaged" in e["error"] for e in errors)
    assert "live" in {e["where"] for e in errors}
    assert [p.pts for p in recorder.video()] == list(range(120))
    frames, _, _ = decode(path)
    assert len(frames) == 120 and ffmpeg_errors(path) == ""
    # The red loop plays on, to the frame.
    assert all(abs(mean_rgb(frames[n])[0] - (60 + 15 * ((n % 36) // 3))) < 4
               for n in range(120))


def test_a_stop_during_a_live_crossfade_ends_the_run_at_once(tmp_path, monkeypatch):
    """A frame-threaded encoder keeps frames in hand: the clock can be waiting for a
    packet the live encoder will only give later. A stop that comes then ends the
    run at once instead of waiting out the encoder's 20 s timeout."""
    stopped = []

    class Holding(segments.SegmentEncoder):
        # Gives its first packets, then holds every frame (as x264 with frame threads
        # does for a while), and asks the player to stop while the clock waits.
        calls = 0

        def encode(self, image):
            Holding.calls += 1
            packets = super().encode(image)
            if Holding.calls <= 4:
                return packets
            if not stopped:
                stopped.append(time.monotonic())
                player.stop()
            return []
    monkeypatch.setattr(segments, "SegmentEncoder", Holding)
    blue = colour_ramp_loop(2, seed=6)
    source = UrgentSource(colour_ramp_loop(0), 10 / 30, blue)
    player = Player(source, [FileOutput(tmp_path / "live.mkv")], None,
                    PlayerSettings(size=SIZE, crossfade=5.0, duration=60.0))
    source.player = player
    player.run()
    assert stopped and player.stats["live_crossfades"] == 1
    # The frame in hand and the file's end; generous for a loaded 2-core machine,
    # far under the encoder's own 20 s timeout.
    assert time.monotonic() - stopped[0] < 8.0
    # A stop is not a failure of the incoming loop.
    assert player.stats["live_failures"] == 0


def test_the_clock_says_what_it_plays():
    """player.mode, as each video packet goes out: the loop repeated, crossed to live
    when urgent, repeated again once its packets are cached, and a rotation's
    crossfade, encoded beforehand, for its 15 frames."""
    import itertools
    from lofid.player import Mode
    modes = []

    class Watching(Recorder):
        def send(self, item):
            if getattr(item, "kind", None) == "video":
                modes.append(player.mode)
            return super().send(item)

    red, blue = colour_ramp_loop(0), colour_ramp_loop(2, seed=6)
    source = UrgentSource(red, 0.5, blue, upcoming=[(4.0, colour_ramp_loop(1, seed=7))])
    player = Player(source, [Watching()], None,
                    PlayerSettings(size=SIZE, crossfade=0.5, duration=8.0))
    source.player = player
    player.run()
    runs = [(mode, len(list(group))) for mode, group in itertools.groupby(modes)]
    assert [mode for mode, _ in runs] == [Mode.REPEATING, Mode.LIVE, Mode.REPEATING,
                                          Mode.CROSSFADING, Mode.REPEATING]
    assert runs[0][1] == 15 and runs[1][1] == player.stats["live_frames"]
    assert runs[3][1] == 15 and sum(n for _, n in runs) == 240


def test_a_stop_while_the_first_loop_is_encoded_ends_the_run_cleanly(tmp_path):
    """The daemon's socket answers before the first loop is encoded: a `shutdown`
    then must stop the run as any stop does, not end it in an exception."""
    class StopAtFirst(Source):
        def first(self):
            loop = super().first()
            player.stop()                  # as a client's shutdown would, meanwhile
            return loop
    player = Player(StopAtFirst(colour_ramp_loop(0)), [FileOutput(tmp_path / "x.mkv")], None,
                    PlayerSettings(size=SIZE, duration=60.0))
    player.run()                           # returns, raises nothing
    assert player.frame == 0

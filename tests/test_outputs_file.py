"""File outputs read back as a user would: PyAV, ffprobe, Pillow. Plus open_output and null."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from lofid.encode import AudioEncoder, VideoSettings, encode_segment, video_stream_info
from lofid.outputs import open_output
from lofid.media import AudioChunk, Packet, VideoFrame
from lofid.outputs.base import OutputError
from lofid.outputs.file import FileOutput
from lofid.outputs.null import NullOutput

W, H = 320, 180
FPS = 30
START = 10**7            # the clock was started long before the file
SETTINGS = VideoSettings(width=W, height=H, fps=FPS, bitrate=400_000, keyframe_seconds=1)
GOP = SETTINGS.gop       # 30


def picture(i: int, colour=(210, 120, 50)) -> np.ndarray:
    f = np.empty((H, W, 3), np.uint8)
    f[...] = colour
    x0 = (i * 4) % (W - 24)
    f[70:94, x0:x0 + 24] = 255
    return f


@pytest.fixture(scope="module")
def segments():
    """Two repetitions' worth of encoded loops, lengths whole GOPs (60 and 30 frames)."""
    warm = encode_segment([picture(i) for i in range(60)], SETTINGS)
    cool = encode_segment([picture(i, (40, 90, 200)) for i in range(30)], SETTINGS)
    return warm, cool


def stream(segments, order, start=START):
    """The player's packets for segments played in `order`, with AAC audio."""
    audio = AudioEncoder()
    frame = start
    per_frame = 48000 // FPS
    for k in order:
        for p in segments[k]:
            yield Packet("video", p.pts + frame, p.dts + frame, 1, p.keyframe, p.data)
            s = (p.pts + frame) * per_frame
            tone = 0.2 * np.sin((s + np.arange(per_frame)) % 48000 * 2 * np.pi * 330 / 48000)
            yield from audio.encode(np.stack([tone, tone], axis=1).astype(np.float32), s)
        frame += len(segments[k])


def ffprobe(path: Path, *args: str) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *args, str(path)],
                         capture_output=True, text=True, check=True, timeout=30)
    return json.loads(out.stdout)


def record(path: Path, items, info) -> FileOutput:
    out = open_output(str(path))
    out.start(info)
    for item in items:
        assert out.send(item)
    out.close()
    assert out.state == "closed", out.stats.last_error
    assert out.stats.dropped == 0
    return out


# --- MP4 and MKV: the shared packets ------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_packet_file_reads_back_complete_from_zero(tmp_path, segments, ext):
    path = tmp_path / f"stream{ext}"
    order = [0, 1, 0, 0, 1]                        # 240 frames, 8 s
    out = record(path, stream(segments, order), video_stream_info(SETTINGS))
    assert out.wants == "packets"

    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert (v.codec_context.name, v.width, v.height) == ("h264", W, H)
        assert v.average_rate == FPS
        assert (a.codec_context.name, a.sample_rate, a.codec_context.channels) \
            == ("aac", 48000, 2)
        frames = list(c.decode(v))
    assert len(frames) == 240
    times = [f.time for f in frames]
    assert times[0] == 0                            # the file starts at 0, not at 10^7/30 s
    assert np.allclose(np.diff(times), 1 / FPS, atol=2e-3)
    keys = [f.time for f in frames if f.key_frame]
    assert np.allclose(np.diff(keys), GOP / FPS, atol=2e-3)        # exactly every GOP
    assert max(np.diff(keys)) <= 2.0
    blue = [f.to_ndarray(format="rgb24")[10, 10, 2] > 150 for f in frames]
    assert blue == [False] * 60 + [True] * 30 + [False] * 120 + [True] * 30

    with av.open(str(path)) as c:
        audio = list(c.decode(c.streams.audio[0]))
    # MKV readers skip the AAC decoder delay (21 ms) at the start; the stream is not
    # flushed here, so the last frame or two stay in the encoder
    assert audio[0].time < 0.025
    assert abs(audio[-1].time + audio[-1].samples / 48000 - 8.0) < 0.05
    audio_times = [f.time for f in audio]
    assert all(b > a for a, b in zip(audio_times, audio_times[1:]))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe is not installed")
@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_packet_file_passes_ffprobe(tmp_path, segments, ext):
    path = tmp_path / f"probe{ext}"
    record(path, stream(segments, [0, 0, 1, 0]), video_stream_info(SETTINGS))
    streams = ffprobe(path, "-show_streams")["streams"]
    video = next(s for s in streams if s["codec_type"] == "video")
    audio = next(s for s in streams if s["codec_type"] == "audio")
    assert (video["codec_name"], video["profile"], video["pix_fmt"]) == ("h264", "Main", "yuv420p")
    assert video["r_frame_rate"] == "30/1" and video["color_space"] == "bt709"
    assert (audio["codec_name"], audio["profile"], audio["sample_rate"], audio["channels"]) \
        == ("aac", "LC", "48000", 2)
    packets = ffprobe(path, "-select_streams", "v:0", "-show_entries",
                      "packet=pts_time,dts_time,flags")["packets"]
    assert len(packets) == 210
    pts = [float(p["pts_time"]) for p in packets]
    assert pts[0] == 0 and all(b > a for a, b in zip(pts, pts[1:]))
    keys = [float(p["pts_time"]) for p in packets if "K" in p["flags"]]
    assert np.allclose(keys, np.arange(0, 7, 1.0), atol=2e-3)


def write_without_closing(path: Path, seconds: float) -> None:
    """Record `seconds` in a child process that dies without closing the file."""
    script = textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_outputs_file import SETTINGS, picture, stream
        from lofid.encode import encode_segment, video_stream_info
        from lofid.outputs import open_output
        seg = encode_segment([picture(i) for i in range(30)], SETTINGS)
        out = open_output({str(path)!r})
        out.start(video_stream_info(SETTINGS))
        for item in stream([seg], [0] * {int(seconds)}):
            out.send(item)
        deadline = time.monotonic() + 20
        while out.stats.written < out.stats.sent and time.monotonic() < deadline:
            time.sleep(0.01)
        os._exit(0)          # a crash: no close(), no trailer
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_packet_file_plays_after_a_crash(tmp_path, ext):
    path = tmp_path / f"crash{ext}"
    write_without_closing(path, 6)
    assert path.exists()                           # under its final name
    decoded = 0
    try:
        with av.open(str(path)) as c:
            for _ in c.decode(video=0):
                decoded += 1
    except av.FFmpegError:
        pass                                       # the torn end
    # everything but the last unfinished GOP (1 s) is there
    assert decoded >= 150, decoded


# --- WebM and GIF: raw frames -------------------------------------------------------

def raw_items(n: int, start: int = START, audio: bool = True):
    per_frame = 48000 // FPS
    for i in range(n):
        yield VideoFrame(start + i, picture(i, (200, 60 + i, 90)))
        if audio:
            s = (start + i) * per_frame
            tone = 0.2 * np.sin(np.arange(s, s + per_frame) % 48000 * 2 * np.pi * 440 / 48000)
            yield AudioChunk(s, np.stack([tone, tone], axis=1).astype(np.float32))


@pytest.mark.slow
def test_webm_is_vp9_and_opus_from_zero(tmp_path):
    path = tmp_path / "stream.webm"
    out = record(path, raw_items(90), video_stream_info(SETTINGS))
    assert out.wants == "frames"
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert (v.codec_context.name, v.width, v.height) == ("vp9", W, H)
        assert (a.codec_context.name, a.sample_rate, a.codec_context.channels) \
            == ("opus", 48000, 2)
        frames = list(c.decode(v))
    assert len(frames) == 90
    assert frames[0].time == 0 and abs(frames[-1].time - 89 / FPS) < 0.002
    rgb = frames[45].to_ndarray(format="rgb24", src_colorspace="ITU709", src_color_range="MPEG")
    assert np.abs(rgb[10, 10].astype(int) - (200, 105, 90)).max() < 10
    with av.open(str(path)) as c:
        audio = list(c.decode(audio=0))
    assert abs(sum(f.samples for f in audio) / 48000 - 3.0) < 0.05


@pytest.mark.slow
def test_webm_audio_before_the_first_frame_and_gaps_are_placed_on_the_clock(tmp_path):
    path = tmp_path / "gaps.webm"
    items = list(raw_items(60))
    # audio for frame 0 arrives first; the audio for frames 20..29 never arrives
    items[0], items[1] = items[1], items[0]
    items = [it for it in items
             if not (isinstance(it, AudioChunk) and 20 <= it.start // 1600 - START < 30)]
    record(path, items, video_stream_info(SETTINGS))
    with av.open(str(path)) as c:
        audio = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
    assert abs(len(audio) / 48000 - 2.0) < 0.05    # the gap was filled, not closed up
    loudness = [np.abs(audio[i * 1600:(i + 1) * 1600]).max() for i in range(60)]
    assert max(loudness[22:28]) < 0.02 < min(loudness[5:15])


@pytest.mark.slow
def test_gif_loops_forever_at_the_right_speed(tmp_path):
    path = tmp_path / "stream.gif"
    out = record(path, raw_items(45), video_stream_info(SETTINGS))
    assert out.wants == "frames"
    with Image.open(path) as im:
        assert im.size == (W, H) and im.info.get("loop") == 0
        durations = []
        for k in range(im.n_frames):
            im.seek(k)
            durations.append(im.info["duration"])
    # 30 fps as whole centiseconds: 3, 3, 4 ...; 45 frames last 1.5 s
    assert set(durations) <= {30, 40} and abs(sum(durations) - 1500) <= 10
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    assert len(frames) == len(durations) >= 40     # identical frames may be merged
    rgb = frames[5].to_ndarray(format="rgb24")
    assert np.abs(rgb[10, 10].astype(int) - (200, 65, 90)).max() < 16


@pytest.mark.slow
def test_gif_at_60_fps_keeps_every_other_frame(tmp_path):
    path = tmp_path / "fast.gif"
    settings = VideoSettings(width=W, height=H, fps=60, bitrate=400_000)
    record(path, (VideoFrame(i, picture(i)) for i in range(60)), video_stream_info(settings))
    with Image.open(path) as im:
        durations = []
        for k in range(im.n_frames):
            im.seek(k)
            durations.append(im.info["duration"])
    assert min(durations) >= 20 and abs(sum(durations) - 1000) <= 20


# --- open_output ------------------------------------------------------------------

def test_open_output_picks_the_output(tmp_path):
    for name in ("a.mp4", "b.MKV", "c.webm", "d.gif"):
        out = open_output(str(tmp_path / name))
        assert isinstance(out, FileOutput)
    assert isinstance(open_output(f"file://{tmp_path}/e.mp4"), FileOutput)
    assert isinstance(open_output(tmp_path / "f.mkv"), FileOutput)
    assert isinstance(open_output("null"), NullOutput)


@pytest.mark.parametrize("target, words", [
    ("ftp://example.com/x", ["'ftp://'", "unknown scheme", "udp://host:port"]),
    ("out.avi", ["out.avi", ".avi", "expected one of .mp4, .mkv, .webm, .gif"]),
    ("stream", ["without extension", ".mp4"]),
    ("/no/such/folder/out.mp4", ["/no/such/folder/out.mp4", "does not exist"]),
    ("udp://127.0.0.1", ["udp://127.0.0.1", "no port", "udp://host:port"]),
    ("udp://:5000", ["no host"]),
    ("udp://127.0.0.1:99999", ["port must be a number"]),
    ("tcp://127.0.0.1:5000", ["tcp://127.0.0.1:5000", "?listen"]),
    ("rtmp://live.example.com", ["no application or stream key", "rtmp://host"]),
    ("", ["empty output target"]),
])
def test_open_output_refuses_with_a_clear_message(target, words):
    with pytest.raises(OutputError) as e:
        open_output(target)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_open_output_refuses_a_folder_and_an_unwritable_one(tmp_path, monkeypatch):
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        open_output(str(tmp_path / "dir.mp4"))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.geteuid() == 0:
        # root writes anywhere; make the check see what a user would
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, m: False if Path(p) == locked else real(p, m))
    with pytest.raises(OutputError, match="not writable"):
        open_output(str(locked / "out.mp4"))


# --- behaviour of the outputs -------------------------------------------------------

def test_file_output_waits_instead_of_dropping(tmp_path, segments):
    class Tiny(FileOutput):
        queue_size = 4
    out = Tiny(tmp_path / "tiny.mkv")
    out.start(video_stream_info(SETTINGS))
    items = list(stream(segments, [0, 1, 0]))
    t = time.monotonic()
    assert all(out.send(item) for item in items)
    out.close()
    assert time.monotonic() - t < 20
    assert out.stats.dropped == 0 and out.stats.written == len(items)
    with av.open(str(tmp_path / "tiny.mkv")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 150


def test_a_failing_file_reports_and_keeps_what_it_wrote(tmp_path, segments):
    states = []
    out = open_output(str(tmp_path / "bad.mkv"), on_state=lambda n, s, d: states.append(s))
    out.start(video_stream_info(SETTINGS))
    for item in stream(segments, [0]):
        out.send(item)
    out.send(Packet("subtitle", 0, 0, 1, True, b""))       # not something a file can take
    out.close()
    assert states[-1] == "failed" and "subtitle" in out.stats.last_error
    with av.open(str(tmp_path / "bad.mkv")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 60


def test_null_output_counts(segments):
    out = open_output("null")
    out.start(video_stream_info(SETTINGS))
    items = list(stream(segments, [0, 1]))
    for item in items:
        assert out.send(item)
    out.send(items[0])                                       # a step back in time
    out.close()
    video = [p for p in items if p.kind == "video"]
    audio = [p for p in items if p.kind == "audio"]
    assert out.packets == {"video": len(video) + 1, "audio": len(audio)}
    assert out.bytes["audio"] == sum(len(p.data) for p in audio)
    assert out.keyframes == 4
    assert out.last_pts["audio"] == audio[-1].pts
    assert out.out_of_order == 1
    assert out.state == "closed" and not out.send(items[1])

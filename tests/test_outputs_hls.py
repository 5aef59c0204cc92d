"""The HLS output read back with a demuxer: a rolling playlist of MPEG-TS segments,
each starting on a keyframe, timestamps running on across segments, old segments
deleted. Fed as the player feeds outputs: one encoded GOP re-sent with shifted
timestamps, its audio encoded as it goes."""

from __future__ import annotations

import functools
import re
from fractions import Fraction

import av
import numpy as np
import pytest
from helpers import wait_for

from lofid.encode import AudioEncoder, VideoSettings, encode_segment, video_stream_info
from lofid.media import Packet
from lofid.outputs import open_output
from lofid.outputs.base import OutputError
from lofid.outputs.hls import SEGMENTS

FPS = Fraction(30)
GOP = 60                       # the player's keyframe every 2 s
REPEATS = 12                   # 24 s of stream: twice the playlist's window
START = 10**6 + 15             # the daemon's clock is far from 0 when an output starts


@functools.cache
def stream():
    """(info, packets): encoded once, shared by the tests that read streams back."""
    s = VideoSettings(width=160, height=96, fps=FPS, bitrate=300_000, keyframe_seconds=2)
    frames = []
    for i in range(GOP):
        f = np.full((96, 160, 3), (40, 90, 160), np.uint8)
        f[30:60, (i * 2) % 130:(i * 2) % 130 + 30] = 240
        frames.append(f)
    gop = encode_segment(frames, s)
    audio = AudioEncoder(bitrate=64_000)
    info = video_stream_info(s, audio)
    packets = []
    for r in range(REPEATS):
        for p in gop:
            n = START + r * GOP + p.pts
            packets.append(Packet("video", n, START + r * GOP + p.dts, 1, p.keyframe, p.data))
            a, b = n * 1600, (n + 1) * 1600       # 48000 / 30 samples a frame
            tone = (0.2 * np.sin(np.arange(a, b) * 2 * np.pi * 330 / 48000)).astype(np.float32)
            packets += audio.encode(np.stack([tone, tone], axis=1), a)
    return info, packets


def playlist(path):
    text = path.read_text()
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    target = int(re.search(r"#EXT-X-TARGETDURATION:(\d+)", text).group(1))
    sequence = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text).group(1))
    durations = [float(m) for m in re.findall(r"#EXTINF:([\d.]+),", text)]
    names = [line for line in lines if line and not line.startswith("#")]
    assert len(names) == len(durations)
    assert all(d <= target + 0.5 for d in durations)       # the spec's rounding rule
    return text, sequence, durations, names


def read_segment(path):
    """[(kind, pts in seconds, keyframe)] in demux order."""
    out = []
    with av.open(str(path)) as c:
        for p in c.demux():
            if p.size and p.pts is not None:
                out.append((p.stream.type, p.pts * p.stream.time_base, p.is_keyframe))
    return out


def test_hls_rolls_its_playlist_and_segments_start_on_keyframes(tmp_path):
    info, packets = stream()
    path = tmp_path / "stream.m3u8"
    out = open_output(str(path))
    out.lossless = True                  # this test wants every packet, not the clock
    out.start(info)
    for p in packets:
        assert out.send(p)
    wait_for(lambda: out.stats.written == out.stats.sent, timeout=30)
    assert out.state == "running", out.stats.last_error

    # While it plays: the last SEGMENTS segments, the older ones gone from disk.
    text, sequence, durations, names = playlist(path)
    assert "#EXT-X-ENDLIST" not in text
    assert len(names) == SEGMENTS and sequence > 1
    assert names[0] == f"stream-{sequence:05d}.ts"
    assert not (tmp_path / "stream-00001.ts").exists()
    on_disk = sorted(p.name for p in tmp_path.glob("*.ts"))
    assert set(names) <= set(on_disk) and len(on_disk) <= SEGMENTS + 2
    assert all(abs(d - 2.0) < 0.01 for d in durations)

    out.close()
    assert out.state == "closed", out.stats.last_error
    text, sequence, durations, names = playlist(path)
    assert text.rstrip().endswith("#EXT-X-ENDLIST")

    last = {"video": None, "audio": None}
    for name in names:
        got = read_segment(tmp_path / name)
        video = [g for g in got if g[0] == "video"]
        audio = [g for g in got if g[0] == "audio"]
        assert audio, name
        assert video[0][2], f"{name} does not start on a keyframe"
        assert len(video) == GOP and sum(v[2] for v in video) == 1
        # Continuous across segments: each one goes on a frame (an AAC frame) after the
        # last. MPEG-TS counts 90 kHz ticks, so a tick of rounding is allowed.
        for kind, step, seq in (("video", Fraction(1, 30), video),
                                ("audio", Fraction(1024, 48000), audio)):
            if last[kind] is not None:
                assert abs(seq[0][1] - last[kind] - step) <= Fraction(1, 90000), (name, kind)
            stamps = [s[1] for s in seq]
            assert all(abs(b - a - step) <= Fraction(1, 90000)
                       for a, b in zip(sorted(stamps), sorted(stamps)[1:])), (name, kind)
            last[kind] = max(stamps)


def test_hls_target_errors_name_the_target(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        open_output(str(tmp_path / "missing" / "stream.m3u8"))
    assert type(open_output(str(tmp_path / "live.M3U8"))).__name__ == "HlsOutput"

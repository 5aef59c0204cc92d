"""One muxer: the same packets read back with the same timestamps from every output.

The player's real packets (lofid.encode) go to an MP4 file, to the network child
(MPEG-TS over tcp://...?listen, read by a client socket) and to the window (its
MPEG-TS, as a real mpv reads it from the pipe and dumps it with --stream-dump).
Each is read back with PyAV and its timestamps, relative to its first picture, are
compared: they must be identical, and no stream's dts may stand still or go back.

Timestamps are compared in 90 kHz ticks, MPEG-TS's clock: exact for the TS
outputs; the MP4's (video in 1/30000 s, audio in samples) are exact fractions,
rounded to the nearest tick as libavformat rounds when it writes TS (halves up).
One audio sample is 1.875 ticks, so a one-sample difference always shows.
"""

from __future__ import annotations

import math
import shutil
import socket
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import States, wait_for

from lofid.encode import AudioEncoder, VideoSettings, encode_segment, video_stream_info
from lofid.outputs import open_output
from lofid.media import Packet

W, H = 160, 96
NTSC = Fraction(30000, 1001)        # 1601.6 samples a frame: the audio origin is no whole sample
START = 10**7 + 7                   # the daemon's clock, far from 0 when the outputs start

needs_mpv = pytest.mark.skipif(shutil.which("mpv") is None, reason="mpv is not installed")


def picture(i: int, colour) -> np.ndarray:
    f = np.empty((H, W, 3), np.uint8)
    f[...] = colour
    x0 = (i * 4) % (W - 24)
    f[30:60, x0:x0 + 24] = 255
    return f


def settings(fps) -> VideoSettings:
    return VideoSettings(width=W, height=H, fps=fps, bitrate=300_000, keyframe_seconds=1)


def player_packets(segments, order, start: int, fps: Fraction, skip: int = 0):
    """What the player sends: the segments in `order` from frame `start` (a segment
    join at each change), each frame's video packet and then the AAC packets its
    audio completes, audio sample n * 48000 / fps rounded down beginning frame n (as
    lofid.player does). The first `skip` frames are made but not sent: the outputs
    start in the middle of a GOP."""
    audio = AudioEncoder(bitrate=64_000)
    frame = start
    for k in order:
        for p in segments[k]:
            n = frame + p.pts
            a, b = n * 48000 * fps.denominator // fps.numerator, \
                (n + 1) * 48000 * fps.denominator // fps.numerator
            tone = 0.2 * np.sin(np.arange(a, b) % 48000 * 2 * np.pi * 330 / 48000)
            made = audio.encode(np.stack([tone, tone], axis=1).astype(np.float32), a)
            if n - start >= skip:
                yield Packet("video", n, frame + p.dts, 1, p.keyframe, p.data)
                yield from made
        frame += len(segments[k])


def send_all(out, packets) -> None:
    for p in packets:
        assert out.send(p), f"{out.name} dropped a packet: {out.state}"


# --- reading back ----------------------------------------------------------------------

def ticks(value: Fraction) -> int:
    """Seconds as 90 kHz ticks, to the nearest, halves up (libavformat's rounding)."""
    return math.floor(value * 90000 + Fraction(1, 2))


def read_back(path: Path, fmt: str | None = None) -> dict[str, list[tuple[int, int]]]:
    """Each stream's (pts, dts) in 90 kHz ticks, relative to the first video packet's
    pts, in the order the demuxer gives them."""
    out: dict[str, list[tuple[Fraction, Fraction]]] = {"video": [], "audio": []}
    with av.open(str(path), format=fmt) as c:
        for packet in c.demux():
            if packet.size == 0 or packet.pts is None or packet.stream.type not in out:
                continue
            tb = packet.stream.time_base
            dts = packet.dts if packet.dts is not None else packet.pts
            out[packet.stream.type].append((packet.pts * tb, dts * tb))
    zero = out["video"][0][0]
    return {kind: [(ticks(p - zero), ticks(d - zero)) for p, d in seq]
            for kind, seq in out.items()}


def before(stamps, cut: int):
    """The packets whose pts lie before `cut` ticks."""
    return {kind: [s for s in seq if s[0] < cut] for kind, seq in stamps.items()}


# --- the three outputs -------------------------------------------------------------------

def to_file(path: Path, info, packets) -> dict:
    out = open_output(str(path))
    out.start(info)
    send_all(out, packets)
    out.close()
    assert out.state == "closed", out.stats.last_error
    return read_back(path)


def to_network(info, packets) -> tuple[dict, States]:
    """The network child, serving MPEG-TS on tcp://...?listen to a client that keeps
    every byte."""
    from lofid.outputs.network import NetworkOutput

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    states = States()
    out = NetworkOutput(f"tcp://127.0.0.1:{port}?listen", on_state=states,
                        stall_timeout=60, close_timeout=60)
    out.start(info)
    received = bytearray()
    clients: list[socket.socket] = []

    def read():
        while chunk := clients[0].recv(65536):
            received.extend(chunk)

    def connect() -> bool:
        client = socket.socket()
        try:
            client.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            client.close()
            return False
        clients.append(client)
        return True
    try:
        assert wait_for(connect, 30), "the network child never listened"
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert states.wait_for("running", timeout=30), states.seen
        send_all(out, packets)
    finally:
        out.close(timeout=60)
    reader.join(60)
    clients[0].close()
    assert not reader.is_alive(), "the stream never ended"
    return received, states


def to_window(tmp_path: Path, info, packets, monkeypatch) -> tuple[Path, object]:
    """The window's MPEG-TS as mpv reads it: mpv dumps the stream it reads from the
    pipe to a file (and shows nothing: no display is needed)."""
    from lofid.outputs.window import WindowOutput

    monkeypatch.setenv("DISPLAY", ":lofid-test-no-display")   # mpv opens no window here
    dump = tmp_path / "window.ts"
    out = WindowOutput(mpv_options=["--force-window=no", "--vo=null", "--ao=null",
                                    f"--stream-dump={dump}"])
    out.write_timeout = 60.0         # a loaded machine must not make it skip ahead
    out.start(info)
    assert wait_for(lambda: dump.exists() or out.state == "failed", 30), out.state
    send_all(out, packets)
    return dump, out


def run_all(tmp_path, monkeypatch, info, packets, cut: int):
    """The three outputs' read-back stamps, each cut to the packets before `cut` ticks.

    mpv is stopped when the window closes, perhaps before it has dumped the last
    bytes; so the packets end with a second of padding, and the window is closed only
    once its dump holds everything before the padding."""
    packets = list(packets)
    file_stamps = before(to_file(tmp_path / "out.mp4", info, packets), cut)
    received, net_states = to_network(info, packets)
    (tmp_path / "network.ts").write_bytes(received)
    net_stamps = before(read_back(tmp_path / "network.ts", "mpegts"), cut)
    dump, window = to_window(tmp_path, info, packets, monkeypatch)
    want = {kind: len(seq) for kind, seq in file_stamps.items()}

    def dumped():
        try:
            got = before(read_back(dump, "mpegts"), cut)
        except (av.error.FFmpegError, IndexError):
            return False
        return all(len(got[k]) >= n for k, n in want.items())
    try:
        wait_for(dumped, 60, every=0.25)
    finally:
        window.close()
    window_stamps = before(read_back(dump, "mpegts"), cut)
    return {"file": file_stamps, "network": net_stamps, "window": window_stamps}, \
        net_states, window


def assert_same_everywhere(got: dict, frames: int, fps: Fraction) -> None:
    for name, stamps in got.items():
        for kind, seq in stamps.items():
            dts = [d for _, d in seq]
            assert all(b > a for a, b in zip(dts, dts[1:])), f"{name} {kind} dts goes back"
        video = [p for p, _ in stamps["video"]]
        # every frame there, one frame apart (1001/30000 s is 3003 ticks, exactly)
        assert video == [ticks(Fraction(i) / fps) for i in range(frames)], name
        assert len(stamps["audio"]) > frames * 1601 // 1024 - 3, name
    file = got["file"]
    for name in ("network", "window"):
        for kind in ("video", "audio"):
            assert got[name][kind] == file[kind], (name, kind, got[name][kind][:3],
                                                   file[kind][:3])


# --- the tests ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ntsc_segments():
    s = settings(NTSC)
    warm = encode_segment([picture(i, (210, 120, 50)) for i in range(45)], s)
    cool = encode_segment([picture(i, (40, 90, 200)) for i in range(30)], s)
    return [warm, cool], video_stream_info(s, AudioEncoder(bitrate=64_000))


@pytest.mark.slow
@needs_mpv
def test_file_network_and_window_read_back_the_same_timestamps(tmp_path, monkeypatch,
                                                               ntsc_segments):
    # 29.97 fps, the clock at 10^7 frames: the first keyframe's instant is a fraction
    # of a sample (…259.2), where the outputs used to round three ways. The outputs
    # start mid-GOP (their first keyframe is frame 30 of the first segment), and the
    # segments join twice.
    segments, info = ntsc_segments
    order = [0, 1, 0, 1]                             # 45 + 30 + 45 + 30 frames
    skip = 10
    shown = 45 + 30 + 45 - 30                        # from the first keyframe to the padding
    got, net_states, window = run_all(
        tmp_path, monkeypatch, info, player_packets(segments, order, START, NTSC, skip),
        cut=ticks(Fraction(shown) / NTSC))
    assert {"failed", "reconnecting"}.isdisjoint(net_states.states()), net_states.seen
    assert window.state == "closed" and window.stalls == 0
    assert_same_everywhere(got, shown, NTSC)
    # audio starts with the first picture, within one AAC frame
    first_audio = got["file"]["audio"][0][0]
    assert 0 <= first_audio < ticks(Fraction(1024, 48000))


@pytest.mark.slow
@needs_mpv
def test_a_repeated_packet_is_left_out_everywhere_and_the_stream_goes_on(
        tmp_path, monkeypatch, ntsc_segments):
    # A packet whose dts does not advance (sent twice) makes libavformat's MPEG-TS
    # muxer fail with EINVAL; the network child took that for a target that can never
    # work and the output failed for good. Every output leaves such a packet out.
    segments, info = ntsc_segments
    made = list(player_packets(segments, [0, 1, 1], START, NTSC))
    video = [p for p in made if p.kind == "video"]
    audio = [p for p in made if p.kind == "audio"]
    again = {id(p) for p in (video[50], audio[40], audio[41])}   # a frame, two audio packets
    packets = []
    for p in made:
        packets.append(p)
        if id(p) in again:
            packets.append(p)
        if p is audio[60]:
            packets.append(audio[20])                            # an old audio packet, late
    shown = 45 + 30
    got, net_states, window = run_all(tmp_path, monkeypatch, info, packets,
                                      cut=ticks(Fraction(shown) / NTSC))
    assert {"failed", "reconnecting"}.isdisjoint(net_states.states()), net_states.seen
    assert window.state == "closed"
    assert_same_everywhere(got, shown, NTSC)


# --- the timeline and the muxer in themselves -------------------------------------------

def test_audio_is_placed_on_the_nearest_sample_of_the_first_picture():
    from lofid.outputs.mux import Timeline, audio_sample_at

    # 1601.6 samples a frame: frame 1 begins at sample 1601.6, frame 3 at 4804.8
    assert audio_sample_at(1, NTSC, 48000) == 1602
    assert audio_sample_at(3, NTSC, 48000) == 4805
    assert audio_sample_at(5, NTSC, 48000) == 8008                  # exact
    assert audio_sample_at(START, NTSC, 48000) \
        == math.floor(Fraction(START) * 48000 / NTSC + Fraction(1, 2))
    # halves go up, whatever their parity (256/3 fps: 562.5 samples a frame)
    assert [audio_sample_at(n, Fraction(256, 3), 48000) for n in (1, 3)] == [563, 1688]

    t = Timeline(NTSC, 48000, rebase=True)
    t.start(START)
    origin = audio_sample_at(START, NTSC, 48000)
    assert t.video(START + 5, START + 5) == (5, 5)
    assert t.audio(origin, origin) == (0, 0)
    assert t.audio(origin - 1, origin - 1) is None                 # before the first picture
    t = Timeline(NTSC, 48000, rebase=False)
    t.start(START)
    assert t.video(START, START) == (START, START)
    assert t.audio(origin, origin) == (origin, origin)
    assert t.audio(origin - 1, origin - 1) is None


def test_audio_that_comes_just_ahead_of_the_first_keyframe_is_kept(tmp_path, ntsc_segments):
    # An output may get the audio for the first picture's time before the keyframe
    # itself; it is held and placed, not lost (nor muxed before the header knows the
    # video's start).
    from lofid.outputs.mux import PacketMuxer, audio_sample_at

    segments, info = ntsc_segments
    packets = list(player_packets(segments, [0], START, NTSC))
    keyframe = next(i for i, p in enumerate(packets) if p.kind == "video" and p.keyframe)
    origin = audio_sample_at(START, NTSC, 48000)
    later_audio = [p for p in packets if p.kind == "audio" and p.pts >= origin]
    reordered = [packets[keyframe], *packets[keyframe + 1:]]
    # the first two audio packets at or after the first picture come ahead of it
    for p in later_audio[:2]:
        reordered.remove(p)
    reordered = later_audio[:2] + reordered
    path = tmp_path / "early.ts"
    container = av.open(str(path), "w", format="mpegts")
    muxer = PacketMuxer(container, info)
    results = [muxer.write(p) for p in reordered]
    muxer.close()
    assert all(results)
    stamps = read_back(path, "mpegts")
    expected = [ticks(Fraction(p.pts - origin, 48000)) for p in later_audio]
    assert [p for p, _ in stamps["audio"]] == expected

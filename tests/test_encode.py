"""The player's encoder: joinable H.264 segments, continuous AAC, BT.709 colour, CBR."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest

from lofid.encode import (AudioEncoder, VideoSettings, YuvConverter, encode_segment,
                          video_stream_info)
from lofid.media import Packet
from lofid.outputs.file import PacketWriter

W, H = 320, 180


def small(**kw) -> VideoSettings:
    kw.setdefault("bitrate", 400_000)
    return VideoSettings(width=W, height=H, **kw)


def moving(n: int, colour=(200, 120, 60), seed: int = 0) -> list[np.ndarray]:
    """n frames: a coloured gradient with a bright square moving across it."""
    y, x = np.mgrid[0:H, 0:W]
    base = np.empty((H, W, 3), np.uint8)
    for c in range(3):
        base[..., c] = (colour[c] * (0.5 + 0.5 * x / W)).astype(np.uint8)
    frames = []
    for i in range(n):
        f = base.copy()
        x0 = (seed * 37 + i * 5) % (W - 20)
        f[60:80, x0:x0 + 20] = 255
        frames.append(f)
    return frames


def nal_types(data: bytes) -> list[int]:
    """Types of the Annex B NAL units in a packet or extradata."""
    types = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        types.append(data[i + 3] & 0x1F)
        i = data.find(b"\x00\x00\x01", i + 3)
    return types


def decode(packets: list[Packet], extradata: bytes | None = None) -> list[av.VideoFrame]:
    cc = av.CodecContext.create("h264", "r")
    if extradata:
        cc.extradata = extradata
    out = []
    for p in packets:
        pkt = av.Packet(p.data)
        pkt.pts = p.pts
        out += cc.decode(pkt)
    return out + cc.decode(None)


# --- settings ---------------------------------------------------------------------

def test_settings_gop_and_fps():
    assert VideoSettings().gop == 60
    assert VideoSettings(fps=24).gop == 48
    assert VideoSettings(fps=60, keyframe_seconds=1).gop == 60
    assert VideoSettings(fps=29.97).fps == Fraction(30000, 1001)
    assert VideoSettings(fps=Fraction(30000, 1001)).gop == 60


@pytest.mark.parametrize("kw, words", [
    ({"width": 321}, "width must be even"),
    ({"height": 0}, "height must be an integer"),
    ({"fps": 0}, "fps must be a number from 1 to 240"),
    ({"fps": "fast"}, "fps must be a number from 1 to 240"),
    ({"bitrate": 10}, "bitrate must be an integer"),
    ({"keyframe_seconds": 30}, "keyframe_seconds"),
    ({"preset": "placebo-ish"}, "preset must be one of"),
])
def test_settings_refuse_bad_values(kw, words):
    with pytest.raises(ValueError, match=words):
        VideoSettings(**kw)


# --- segments ---------------------------------------------------------------------

def test_segment_timestamps_and_keyframes():
    settings = small(keyframe_seconds=0.5)          # gop 15
    packets = encode_segment(moving(50), settings)
    assert [p.pts for p in packets] == list(range(50))
    assert all(p.dts == p.pts and p.duration == 1 and p.kind == "video" for p in packets)
    assert [p.pts for p in packets if p.keyframe] == [0, 15, 30, 45]
    for p in packets:
        types = nal_types(p.data)
        if p.keyframe:
            # IDR with SPS and PPS in front of it on every keyframe
            assert {5, 7, 8} <= set(types), types
        else:
            assert 5 not in types and 7 not in types


def test_segment_has_keyframes_only_on_the_gop_even_on_scene_cuts():
    # A hard cut every 7 frames would make x264 insert keyframes if it were let.
    frames = [moving(1, colour=(255 * (i // 7 % 2), 40, 255 * (i // 7 % 3 == 0)))[0]
              for i in range(64)]
    packets = encode_segment(frames, small())
    assert [p.pts for p in packets if p.keyframe] == [0, 60]


def test_segment_decodes_to_every_frame_with_the_picture_in_order():
    frames = moving(40)
    packets = encode_segment(frames, small())
    decoded = decode(packets)
    assert len(decoded) == 40
    assert (decoded[0].width, decoded[0].height) == (W, H)
    for i in (0, 13, 39):
        got = decoded[i].to_ndarray(format="rgb24")
        x0 = (i * 5) % (W - 20)
        # the square is where frame i put it
        assert got[62:78, x0 + 2:x0 + 18].mean() > 220
        assert np.abs(got.astype(int) - frames[i]).mean() < 6


def test_segment_refuses_bad_frames():
    with pytest.raises(ValueError, match="expected the output size 320x180"):
        encode_segment([np.zeros((100, 100, 3), np.uint8)], small())
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        encode_segment([np.zeros((H, W, 3), np.float32)], small())
    with pytest.raises(ValueError, match="at least one frame"):
        encode_segment([], small())


def test_a_repeated_frame_object_is_shown_again_exactly_for_a_few_bytes():
    # The player hands the same array for a repeated frame (a 10 fps loop at 30 fps):
    # x264 gets each picture once and the repeats show it again, pixel for pixel.
    src = moving(4)
    same = [src[i // 3] for i in range(12)]
    copies = [f.copy() for f in same]
    packets = encode_segment(same, small())
    a = decode(packets)
    b = decode(encode_segment(copies, small()))
    assert len(a) == len(b) == 12
    for i, (fa, fb) in enumerate(zip(a, b)):
        got = fa.to_ndarray()
        assert np.array_equal(got, a[i - i % 3].to_ndarray())
        # Equal copies go through x264 as before; both look like the picture (within
        # the codec's loss, so a tolerance).
        assert np.abs(got.astype(int) - fb.to_ndarray()).mean() < 3
    repeats = [len(packets[i].data) for i in range(12) if i % 3]
    assert max(repeats) < 100 < min(len(packets[i].data) for i in range(0, 12, 3))


def test_changed_in_place_frame_is_converted_again():
    frame = moving(1)[0]

    def frames():
        for v in (0, 255):
            frame[...] = v
            yield frame
    decoded = decode(encode_segment(frames(), small()))
    means = [f.to_ndarray(format="rgb24").mean() for f in decoded]
    assert means[0] < 20 and means[1] > 235


def test_colours_come_back_close_in_bt709():
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (128, 128, 128), (224, 172, 105),
               (20, 30, 60), (250, 240, 200)]
    frames = [np.full((H, W, 3), c, np.uint8) for c in colours]
    decoded = decode(encode_segment(frames, small(bitrate=2_000_000)))
    for frame, colour in zip(decoded, colours):
        assert frame.colorspace == 1 and frame.color_range == 1    # tagged BT.709, limited
        rgb = frame.to_ndarray(format="rgb24", src_colorspace="ITU709",
                               src_color_range="MPEG")
        centre = rgb[40:140, 80:240].reshape(-1, 3).mean(axis=0)
        assert np.abs(centre - colour).max() < 6, (colour, centre)


def test_extradata_is_the_same_for_every_encoder_and_matches_the_keyframes():
    a = video_stream_info(small())
    b = video_stream_info(small())
    assert a.video_extradata == b.video_extradata
    assert nal_types(a.video_extradata) == [7, 8]
    packets = encode_segment(moving(3), small())
    # the SPS/PPS every keyframe carries are the extradata's
    sps_pps = a.video_extradata.split(b"\x00\x00\x00\x01")[1:]
    for unit in sps_pps:
        assert unit in packets[0].data
    assert video_stream_info(small(bitrate=800_000)).video_extradata != a.video_extradata


def test_stream_info_describes_the_stream():
    audio = AudioEncoder(bitrate=128_000)
    info = video_stream_info(small(fps=24), audio)
    assert (info.width, info.height, info.fps) == (W, H, 24)
    assert info.video_codec == "h264" and info.video_bitrate == 400_000
    assert info.audio_codec == "aac" and info.audio_bitrate == 128_000
    assert info.audio_extradata == audio.extradata and info.audio_extradata
    assert (info.audio_rate, info.audio_channels) == (48000, 2)


def test_cbr_holds_the_bitrate_over_a_segment():
    rng = np.random.default_rng(1)
    for frames, what in ((moving(300), "easy"),
                         ([rng.integers(0, 256, (H, W, 3), np.uint8) for _ in range(300)],
                          "noise")):
        packets = encode_segment(frames, small(bitrate=400_000))
        bits = [8 * len(p.data) for p in packets]
        assert sum(bits) / 10 == pytest.approx(400_000, rel=0.06), what
        per_second = [sum(bits[i:i + 30]) for i in range(0, 300, 30)]
        # The first second may fall short by up to half the 1-s buffer (each segment
        # starts with it half full); after that every second carries the bitrate.
        assert per_second[0] > 0.45 * 400_000, (what, per_second)
        assert all(abs(b - 400_000) < 0.1 * 400_000 for b in per_second[1:]), \
            (what, per_second)


# --- segments joined into one stream ------------------------------------------------

def joined_stream(segments: list[list[Packet]], start: int, fps: int = 30):
    """The segments' packets one after another from frame `start`, with audio."""
    audio = AudioEncoder()
    per_frame = 48000 // fps
    frame = start
    for packets in segments:
        for p in packets:
            yield Packet("video", p.pts + frame, p.dts + frame, 1, p.keyframe, p.data)
            s = (p.pts + frame) * per_frame
            tone = np.sin((s + np.arange(per_frame)) % 48000 * 2 * np.pi * 440 / 48000)
            yield from audio.encode(np.stack([0.2 * tone, 0.1 * tone], axis=1), s)
        frame += len(packets)
    yield from audio.flush()


@pytest.mark.parametrize("fmt", ["mp4", "matroska", "mpegts"])
def test_segments_join_into_one_valid_stream(fmt):
    settings = small(keyframe_seconds=1)               # gop 30
    # Red holds each picture for three frames (a 10 fps loop at 30), so most of its
    # frames are repeats: they join like any other frame.
    red = encode_segment([f for f in moving(15, colour=(220, 40, 40)) for _ in range(3)],
                         settings)
    blue = encode_segment(moving(30, colour=(40, 40, 220), seed=3), settings)
    order = [red, blue, red, red, blue]                # 195 frames, 6.5 s
    info = video_stream_info(settings)
    buf = io.BytesIO()
    writer = PacketWriter(buf, fmt, info)
    start = 10**7 + 7                                  # the clock started long ago
    for packet in joined_stream(order, start):
        writer.write(packet)
    writer.close()

    buf.seek(0)
    with av.open(buf, format=fmt) as c:
        v = c.streams.video[0]
        v.codec_context.options = {"err_detect": "explode"}   # a broken slice fails
        frames = list(c.decode(v))
    assert len(frames) == 195
    assert {(f.width, f.height) for f in frames} == {(W, H)}
    times = [f.time for f in frames]
    assert all(b > a for a, b in zip(times, times[1:]))
    steps = np.diff(times)
    assert np.allclose(steps, 1 / 30, atol=2e-3)
    # keyframes: each segment's start and every 30 frames inside it
    key_at = [round((f.time - times[0]) * 30) for f in frames if f.key_frame]
    assert key_at == [0, 30, 45, 75, 105, 120, 150, 165]
    # the picture follows the order of the segments
    reds = [f.to_ndarray(format="rgb24")[150:, :, 0].mean() > 100 for f in frames]
    assert reds == [True] * 45 + [False] * 30 + [True] * 90 + [False] * 30
    if fmt != "mpegts":
        assert times[0] == 0                           # rebased: the file starts at 0

    buf.seek(0)
    with av.open(buf, format=fmt) as c:
        a = c.streams.audio[0]
        assert (a.codec_context.name, a.codec_context.sample_rate, a.codec_context.channels) \
            == ("aac", 48000, 2)
        audio = list(c.decode(a))
    samples = sum(f.samples for f in audio)
    assert abs(samples - 195 * 1600) <= 2048


# --- audio ------------------------------------------------------------------------

def test_audio_packets_follow_the_timeline_for_any_chunk_sizes():
    enc = AudioEncoder()
    start = 10**7 * 1600                                 # frame 10^7 at 30 fps
    rng = np.random.default_rng(2)
    packets, pos = [], start
    for size in rng.integers(1, 3000, 60):
        packets += enc.encode(np.zeros((size, 2), np.float32), pos)
        pos += size
    packets += enc.flush()
    total = pos - start
    assert [p.pts for p in packets] == [start + 1024 * k for k in range(len(packets))]
    assert all(p.kind == "audio" and p.keyframe and p.duration == 1024 for p in packets)
    assert len(packets) * 1024 >= total
    assert len(packets) <= total // 1024 + 3


def test_audio_decodes_to_the_same_sound_left_and_right():
    enc = AudioEncoder()
    t = np.arange(48000 * 2) / 48000
    left = 0.3 * np.sin(2 * np.pi * 440 * t)
    right = 0.3 * np.sin(2 * np.pi * 1000 * t)
    samples = np.stack([left, right], axis=1).astype(np.float32)
    packets = []
    for i in range(0, len(samples), 1600):
        packets += enc.encode(samples[i:i + 1600], i)
    packets += enc.flush()
    dec = av.CodecContext.create("aac", "r")
    dec.extradata = enc.extradata
    out = []
    for p in packets:
        out += dec.decode(av.Packet(p.data))
    pcm = np.concatenate([f.to_ndarray() for f in out], axis=1)
    assert out[0].sample_rate == 48000 and pcm.shape[0] == 2
    assert abs(pcm.shape[1] - len(samples)) <= 1024
    for channel, hz in ((0, 440), (1, 1000)):
        spectrum = np.abs(np.fft.rfft(pcm[channel, 4800:4800 + 48000]))
        assert abs(np.argmax(spectrum) - hz) <= 1          # 1 Hz bins
    assert 0.25 < np.abs(pcm[0, 4800:]).max() < 0.35


def test_audio_refuses_gaps_and_bad_arrays():
    enc = AudioEncoder()
    enc.encode(np.zeros((1500, 2), np.float32), 100)
    with pytest.raises(ValueError, match="got start 1700, expected 1600"):
        enc.encode(np.zeros((10, 2), np.float32), 1700)
    with pytest.raises(ValueError, match=r"\(k, 2\) float32"):
        enc.encode(np.zeros((10, 1), np.float32), 1600)
    with pytest.raises(ValueError, match=r"\(k, 2\) float32"):
        enc.encode(np.zeros((10, 2), np.int16), 1600)
    with pytest.raises(ValueError, match="audio bitrate"):
        AudioEncoder(bitrate=5)


def test_audio_extradata_is_stable_aac_lc():
    a, b = AudioEncoder(), AudioEncoder(bitrate=96_000)
    assert a.extradata == b.extradata
    # AudioSpecificConfig: object type 2 (LC), rate index 3 (48 kHz), 2 channels
    bits = int.from_bytes(a.extradata[:2], "big")
    assert (bits >> 11, (bits >> 7) & 0xF, (bits >> 3) & 0xF) == (2, 3, 2)


def test_segment_takes_yuv_frames_too():
    rgb = moving(20)
    convert = YuvConverter(small())
    yuv = [convert(f) for f in rgb]
    a = decode(encode_segment(yuv, small()))
    b = decode(encode_segment(rgb, small()))
    assert len(a) == len(b) == 20
    # x264's frame threads under CBR are not bit-for-bit repeatable: compare pictures.
    diff = np.abs(a[7].to_ndarray().astype(int) - b[7].to_ndarray().astype(int)).mean()
    assert diff < 1.0
    with pytest.raises(ValueError, match="yuv420p at the output size 320x180"):
        encode_segment([av.VideoFrame(64, 64, "yuv420p")], small())

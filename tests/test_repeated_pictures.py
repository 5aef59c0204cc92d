"""Repeated frames as skipped-macroblock frames: the stream stays valid H.264 that any
decoder plays, every repeat is the frame before it exactly, and x264's frames keep
their pictures once renumbered into place."""

from __future__ import annotations

import subprocess

import av
import numpy as np
from av.video.frame import PictureType
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from lofid.encode import SegmentEncoder, VideoSettings, encode_segment, video_stream_info
from lofid.repeated_pictures import (NAL_IDR, NAL_SEI, NAL_SLICE, BitReader, Repeats,
                                     Unsupported, escape, parse_headers, split_nals,
                                     unescape)


def pictures(n: int, w: int, h: int, seed: int = 0) -> list[np.ndarray]:
    """n different pictures: a gradient with a square moving across it, and noise
    so the encoder has work everywhere."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    out = []
    for i in range(n):
        f = np.stack([(x * 200 // w), (y * 180 // h), np.full_like(x, 90)], -1)
        f = (f + rng.integers(0, 24, f.shape)).astype(np.uint8)
        x0 = (i * 7) % (w - 24)
        f[h // 3:h // 3 + 24, x0:x0 + 24] = 250
        out.append(f)
    return out


def held(frames: list[np.ndarray], pattern: list[int]) -> list[np.ndarray]:
    """Each picture handed `pattern[i % len]` times in a row, as the same object."""
    out = []
    for i, f in enumerate(frames):
        out += [f] * pattern[i % len(pattern)]
    return out


def decode(packets, extradata=b"") -> list[np.ndarray]:
    cc = av.CodecContext.create("h264", "r")
    if extradata:
        cc.extradata = extradata
    cc.options = {"err_detect": "explode"}
    out = []
    for p in packets:
        out += cc.decode(av.Packet(p.data))
    out += cc.decode(None)
    return [f.to_ndarray(format="yuv420p") for f in out]


def sources(frames: list[np.ndarray]) -> list[int]:
    """For each frame, the place of the first of its run of the same object."""
    first, out = 0, []
    for i, f in enumerate(frames):
        if i and f is not frames[i - 1]:
            first = i
        out.append(first)
    return out


@pytest.mark.parametrize("size", [(640, 360), (1920, 1080)])
def test_every_repeat_is_the_frame_before_exactly_and_the_rest_look_right(size, tmp_path):
    w, h = size
    settings = VideoSettings(width=w, height=h, bitrate=2_000_000 if w < 1000 else 4_500_000)
    frames = held(pictures(30, w, h), [3])                    # 90 frames, gop 60
    encoder = SegmentEncoder(settings)
    packets = []
    for f in frames:
        packets += encoder.encode(f)
    packets += encoder.flush()
    assert [p.pts for p in packets] == list(range(90))
    # x264 gets each held picture once (the keyframe at 60 begins a new one).
    assert encoder.repeated == 90 - 30
    assert [p.pts for p in packets if p.keyframe] == [0, 60]
    decoded = decode(packets)
    assert len(decoded) == 90
    ref = [av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p")
           .to_ndarray() for f in frames]
    first = sources(frames)
    for i in range(90):
        if i % 3:
            assert np.array_equal(decoded[i], decoded[i - 1]), i
        # x264's frames decode to the picture (lossy, so a tolerance), with their
        # references found where x264 left them: renumbered wrong, they would not.
        assert np.abs(decoded[i].astype(int) - ref[first[i]]).mean() < 6, i
    # The same bytes as a raw H.264 file through the ffmpeg program, strictly.
    path = tmp_path / "spliced.h264"
    path.write_bytes(b"".join(p.data for p in packets))
    r = subprocess.run(["ffmpeg", "-v", "error", "-err_detect", "explode", "-i", str(path),
                        "-f", "null", "-"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v",
                            "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0",
                            str(path)], capture_output=True, text=True)
    assert probe.stdout.strip() == "90"
    # Repeats are small: under 1 % of the stream's bytes.
    repeats = sum(len(p.data) for i, p in enumerate(packets) if i % 3)
    assert repeats < 0.01 * sum(len(p.data) for p in packets)


def test_every_frame_carries_its_place_in_frame_num_and_picture_timing():
    settings = VideoSettings(width=320, height=180, bitrate=600_000, keyframe_seconds=1.0)
    frames = held(pictures(40, 320, 180), [2, 3])             # 100 frames, gop 30
    packets = encode_segment(frames, settings)
    h = parse_headers(video_stream_info(settings).video_extradata)
    ticks = int(h.clock / settings.fps)
    assert h.hrd and ticks == 2                       # x264: 60 ticks/s at 30 fps
    for place, p in enumerate(packets):
        since_key = place % settings.gop
        slices = [n for n in split_nals(p.data) if n[0] & 0x1F in (NAL_SLICE, NAL_IDR)]
        timing = [n for n in split_nals(p.data) if n[0] & 0x1F == NAL_SEI
                  and unescape(n)[1] == 1]
        assert slices and len(timing) == 1, place
        for n in slices:
            assert n[0] >> 5 != 0, place                # every frame a reference frame
            r = BitReader(unescape(n), 8)
            r.ue(), r.ue(), r.ue()
            assert r.u(h.log2_max_frame_num) == since_key % (1 << h.log2_max_frame_num)
        r = BitReader(unescape(timing[0]), 24)
        cpb, dpb = r.u(h.cpb_delay_bits), r.u(h.dpb_delay_bits)
        if since_key:                                   # a keyframe's counts from the last
            assert cpb == ticks * since_key, place
        assert dpb == 0
    decoded = decode(packets)
    first = sources(frames)
    assert len(decoded) == 100
    for i in range(100):
        if first[i] != i and i % settings.gop:
            assert np.array_equal(decoded[i], decoded[i - 1]), i


def test_a_picture_held_across_a_keyframe_is_encoded_again_there():
    settings = VideoSettings(width=320, height=180, bitrate=600_000,
                             keyframe_seconds=4 / 30)                   # gop 4
    frames = held(pictures(8, 320, 180), [3])                # runs of 3 over gops of 4
    encoder = SegmentEncoder(settings)
    packets = [p for f in frames for p in encoder.encode(f)] + encoder.flush()
    assert [p.pts for p in packets if p.keyframe] == list(range(0, 24, 4))
    repeats = [i for i in range(24) if i % 3 and i % 4]      # 1, 2, 5, 7, 10, 11, ...
    assert encoder.repeated == len(repeats)
    decoded = decode(packets)
    assert len(decoded) == 24
    for i in repeats:
        assert np.array_equal(decoded[i], decoded[i - 1]), i


def test_a_still_picture_keeps_the_stream_at_its_bitrate():
    # Held for a second, a picture goes to x264 every third frame (MAX_HOLD), so
    # each x264 frame's bits cover the frames until the next, as under CBR before.
    settings = VideoSettings(width=640, height=360, bitrate=1_000_000)
    encoder = SegmentEncoder(settings)
    still = pictures(1, 640, 360)[0]
    packets = [p for _ in range(90) for p in encoder.encode(still)] + encoder.flush()
    assert encoder.repeated == 60
    size = sum(len(p.data) for p in packets)
    # Within x264's own CBR tolerance over a short segment (its buffer starts half full).
    assert 0.8 < size / (settings.bitrate * 3 / 8) < 1.2


def test_a_frame_object_changed_in_place_is_not_taken_for_a_repeat():
    settings = VideoSettings(width=320, height=180, bitrate=600_000)
    frame = av.VideoFrame.from_ndarray(pictures(1, 320, 180)[0], format="rgb24") \
        .reformat(format="yuv420p")
    encoder = SegmentEncoder(settings)
    packets = encoder.encode(frame)
    np.frombuffer(frame.planes[0], np.uint8)[:] = 235    # the same object, now white
    packets += encoder.encode(frame) + encoder.flush()
    assert encoder.repeated == 0
    decoded = decode(packets)
    assert decoded[0][:180].mean() < 200 and decoded[1][:180].mean() > 225


@pytest.mark.parametrize("preset", ["faster", "medium"])
def test_presets_with_several_reference_frames_encode_every_frame(preset):
    # A repeat stands in for the frame before: with more than one reference x264
    # could point past it, so these presets give x264 every frame as before.
    settings = VideoSettings(width=320, height=180, bitrate=600_000, preset=preset)
    frames = held(pictures(10, 320, 180), [3])
    encoder = SegmentEncoder(settings)
    packets = [p for f in frames for p in encoder.encode(f)] + encoder.flush()
    assert encoder.repeated == 0 and len(decode(packets)) == 30


def test_headers_it_cannot_extend_are_refused_by_name():
    settings = VideoSettings(width=320, height=180, bitrate=600_000, preset="medium")
    extradata = bytes(SegmentEncoder(settings)._cc.extradata)
    with pytest.raises(Unsupported, match="reference frames"):
        Repeats(extradata, settings.fps)
    with pytest.raises(Unsupported, match="one each"):
        parse_headers(b"")


@hsettings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.integers(1, 255), st.integers(0, 3))
def test_escaping_round_trips_and_leaves_no_start_code(body, last, zero_words):
    # An RBSP: a header byte, anything, a last byte holding the stop bit, and
    # perhaps cabac_zero_words after it.
    rbsp = b"\x01" + body + bytes([last]) + b"\x00\x00" * zero_words
    nal = escape(rbsp)
    assert unescape(nal) == rbsp
    for bad in (b"\x00\x00\x00", b"\x00\x00\x01", b"\x00\x00\x02"):
        assert bad not in nal
    assert not nal.endswith(b"\x00")
    assert split_nals(b"\x00\x00\x00\x01" + nal + b"\x00\x00\x01\x09\xf0") == [nal, b"\x09\xf0"]


def x264(settings: VideoSettings, cabac: bool):
    """An x264 encoder as lofid.encode makes it, with CABAC on or off (CAVLC: off)."""
    from lofid.media import tag_bt709
    cc = av.CodecContext.create("libx264", "w")
    cc.width, cc.height, cc.pix_fmt = settings.width, settings.height, "yuv420p"
    cc.time_base, cc.framerate = settings.time_base, settings.fps
    cc.bit_rate, cc.gop_size, cc.max_b_frames = settings.bitrate, settings.gop, 0
    cc.flags |= av.codec.context.Flags.global_header | av.codec.context.Flags.closed_gop
    tag_bt709(cc)
    rate = str(settings.bitrate)
    cc.options = {"preset": "ultrafast", "maxrate": rate, "minrate": rate, "bufsize": rate,
                  "keyint_min": str(settings.gop), "sc_threshold": "0",
                  "x264-params": f"nal-hrd=cbr:repeat-headers=1:cabac={int(cabac)}"}
    cc.open()
    return cc


@pytest.mark.parametrize("cabac", [True, False], ids=["cabac", "cavlc"])
def test_spliced_frames_decode_exactly_as_the_encoders_own_stream(cabac):
    # x264 alone, fed every third frame, against the same packets renumbered with two
    # repeats after each: every frame is bit-exact the x264 picture it stands for
    # (its references hold the same pixels), for both entropy coders.
    settings = VideoSettings(width=480, height=272, bitrate=800_000)
    from lofid.media import TO_BT709
    cc = x264(settings, cabac)
    extradata = bytes(cc.extradata)
    assert parse_headers(extradata).cabac is cabac
    repeats = Repeats(extradata, settings.fps)
    own = {}
    for k, rgb in enumerate(pictures(40, 480, 272)):           # 120 frames, two gops
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
            format="yuv420p", **TO_BT709)
        frame.pts, frame.time_base = 3 * k, settings.time_base
        # Keyframes where the segment has them, as SegmentEncoder forces them.
        frame.pict_type = PictureType.I if 3 * k % settings.gop == 0 else PictureType.NONE
        own.update((int(p.pts), bytes(p)) for p in cc.encode(frame))
    own.update((int(p.pts), bytes(p)) for p in cc.encode(None))
    assert sorted(own) == list(range(0, 120, 3))

    class P:
        def __init__(self, data):
            self.data = data
    alone = decode([P(own[t]) for t in sorted(own)], extradata)
    spliced = [P(repeats.renumber(own[t], t % settings.gop) if t in own
                 else repeats.repeat(t % settings.gop)) for t in range(120)]
    got = decode(spliced, extradata)
    assert len(got) == 120
    for t in range(120):
        assert np.array_equal(got[t], alone[t // 3]), t

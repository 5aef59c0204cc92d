"""Export: real MP4 / WebM / GIF files, read back with PyAV."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from lofid.export import EXPORT_FORMATS, ExportError, export
from lofid.loop import Loop

N, H, W, FPS = 24, 48, 64, 12


class Spec:
    """Stands in for a SceneSpec: Loop only needs .to_dict() and .id."""

    id = "test-spec"

    def to_dict(self):
        return {"scene": "study_room"}


def soft_clip(n=N, h=H, w=W):
    """A lofi-like picture: a dusk sky gradient with a warm lamp glow drifting
    around one full circle over the loop. Smooth, so codecs keep it well."""
    t = np.arange(n)[:, None, None] * (2 * np.pi / n)
    y = np.arange(h)[None, :, None] / h
    x = np.arange(w)[None, None, :] / w
    sky = np.stack(np.broadcast_arrays(40 + 120 * y + 0 * x + 0 * t, 30 + 60 * y + 30 * x + 0 * t,
                                       110 - 40 * y + 0 * x + 0 * t), -1)
    glow = np.exp(-((x - 0.5 - 0.2 * np.cos(t)) ** 2 + (y - 0.5 - 0.2 * np.sin(t)) ** 2) / 0.02)
    picture = sky + glow[..., None] * np.array([150, 90, 20])
    return picture.clip(0, 255).round().astype(np.uint8)


def make_loop(frames=None, fps=FPS):
    return Loop(frames=soft_clip() if frames is None else frames, fps=fps, spec=Spec(),
                seed=1, generator="procedural")


def decode(path):
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def packets(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [p for p in container.demux(stream) if p.size], stream.time_base


def blur(frames, k=4):
    """Means over k x k blocks: what dithering keeps even where single pixels differ."""
    n, h, w, c = frames.shape
    return frames[:, :h - h % k, :w - w % k].reshape(n, h // k, k, w // k, k, c).mean(axis=(2, 4))


# --------------------------------------------------------------------------- MP4

def test_mp4_is_h264_yuv420p_with_every_frame_at_the_loop_rate(tmp_path):
    loop = make_loop()
    path = export(loop, tmp_path / "loop.mp4", repeat=2)
    assert path == tmp_path / "loop.mp4"
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.width, stream.height) == (W, H)
        assert stream.average_rate == FPS
        assert stream.frames == N * 2
        # the stream lasts exactly 2 passes of the loop: no short or long last frame
        assert stream.duration * stream.time_base == Fraction(2 * N, FPS)

    pkts, time_base = packets(path)
    one_frame = Fraction(1, FPS) / time_base
    assert len(pkts) == 2 * N
    # no B-frames: decode order is display order, the first frame is at 0, and every
    # frame (the last one too) lasts 1/fps, so `mpv --loop` repeats it seamlessly
    assert [p.pts for p in pkts] == [p.dts for p in pkts] == [i * one_frame for i in range(2 * N)]
    assert {p.duration for p in pkts} == {one_frame}
    assert pkts[0].is_keyframe


def test_mp4_frames_are_close_to_the_loop(tmp_path):
    loop = make_loop()
    decoded = decode(export(loop, tmp_path / "loop.mp4", repeat=2))
    assert decoded.shape == (2 * N, H, W, 3)
    # CRF 18 is visually lossless; what is left on smooth content is 8-bit BT.709
    # rounding and yuv420p's halved colour at the glow's edge: a couple of levels.
    for copy in (decoded[:N], decoded[N:]):
        error = np.abs(copy.astype(int) - loop.frames).mean()
        assert error < 3.0
        mse = ((copy.astype(float) - loop.frames) ** 2).mean()
        assert 10 * np.log10(255 ** 2 / mse) > 35


def test_mp4_keeps_colours(tmp_path):
    # Flat saturated colours are stored as BT.709 limited-range Y'CbCr, the matrix
    # the stream is tagged with (and players assume for HD), so no player shifts them.
    colours = np.array([[200, 40, 40], [40, 180, 60], [50, 60, 210], [230, 200, 90]])
    frames = np.repeat(colours, 6, axis=0)[:, None, None, :] * np.ones((1, 32, 32, 1))
    path = export(make_loop(frames.astype(np.uint8)), tmp_path / "flat.mp4")
    with av.open(str(path)) as container:
        cc = container.streams.video[0].codec_context
        assert (cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range) == (1, 1, 1, 1)
        # yuv420p as one array: 32 rows of Y, then U and V packed into 8 rows each
        planes = np.array([[a[:32].mean(), a[32:40].mean(), a[40:48].mean()]
                           for a in (f.to_ndarray() for f in container.decode(video=0))])
    r, g, b = colours.repeat(6, axis=0).T / 255
    luma = 0.2126 * r + 0.7152 * g + 0.0722 * b
    expected = np.stack([16 + 219 * luma, 128 + 224 * (b - luma) / 1.8556,
                         128 + 224 * (r - luma) / 1.5748], axis=1)
    assert np.abs(planes - expected).max() < 1.5


def test_mp4_fractional_fps(tmp_path):
    path = export(make_loop(fps=12.5), tmp_path / "loop.mp4")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == Fraction(25, 2)
        assert stream.duration * stream.time_base == Fraction(N) / Fraction(25, 2)


def test_odd_sizes_are_padded_by_one_edge_pixel_for_video(tmp_path):
    frames = soft_clip(h=47, w=63)
    decoded = decode(export(make_loop(frames), tmp_path / "odd.mp4"))
    assert decoded.shape == (N, 48, 64, 3)
    assert np.abs(decoded[:, :47, :63].astype(int) - frames).mean() < 3.0
    # the extra row and column repeat the edge rather than adding a border
    assert np.abs(decoded[:, 47, :63].astype(int) - frames[:, 46]).mean() < 4.0
    assert np.abs(decoded[:, :47, 63].astype(int) - frames[:, :, 62]).mean() < 4.0


# --------------------------------------------------------------------------- WebM

def test_webm_is_vp9_and_close_to_the_loop(tmp_path):
    loop = make_loop()
    path = export(loop, tmp_path / "loop.webm", repeat=2)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "vp9"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.width, stream.height) == (W, H)
        assert stream.average_rate == FPS
        # WebM counts in milliseconds: 2 passes of 2 s
        assert container.duration == pytest.approx(4_000_000, abs=1000)
    decoded = decode(path)
    assert decoded.shape == (2 * N, H, W, 3)
    assert np.abs(decoded[:N].astype(int) - loop.frames).mean() < 4.0
    assert np.abs(decoded[N:].astype(int) - loop.frames).mean() < 4.0


def test_webm_odd_size(tmp_path):
    decoded = decode(export(make_loop(soft_clip(h=33, w=45)), tmp_path / "odd.webm"))
    assert decoded.shape == (N, 34, 46, 3)


# --------------------------------------------------------------------------- GIF

def test_gif_loops_forever_at_the_loop_rate(tmp_path):
    loop = make_loop()
    path = export(loop, tmp_path / "loop.gif", repeat=2)
    data = path.read_bytes()
    # NETSCAPE2.0 application extension, sub-block 1, loop count 0 = forever
    assert b"NETSCAPE2.0\x03\x01\x00\x00" in data
    assert Image.open(path).info["loop"] == 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "gif"
        assert (stream.width, stream.height) == (W, H)
    pkts, time_base = packets(path)
    assert len(pkts) == 2 * N
    durations = [p.duration * time_base for p in pkts]
    # GIF delays are whole centiseconds: 1/12 s alternates 8 and 9 cs, and the loop
    # as a whole lasts exactly its N / fps
    assert all(abs(d - Fraction(1, FPS)) < Fraction(1, 100) for d in durations)
    assert sum(durations[:N]) == sum(durations[N:]) == Fraction(N, FPS)
    assert len(pkts) / sum(durations) == FPS


def test_gif_colours_are_close_and_still_parts_stay_still(tmp_path):
    loop = make_loop()
    decoded = decode(export(loop, tmp_path / "loop.gif"))
    assert decoded.shape == (N, H, W, 3)
    # 256 colours with dithering: single pixels may be off by a palette step, but
    # local averages, what the eye sees, stay within a couple of levels
    assert np.abs(decoded.astype(int) - loop.frames).mean() < 6.0
    assert np.abs(blur(decoded.astype(float)) - blur(loop.frames.astype(float))).mean() < 2.0
    # pixels the loop never changes never change in the GIF either (no dither crawl)
    still = (loop.frames == loop.frames[0]).all(axis=(0, 3))
    assert still.mean() > 0.1
    assert (decoded[:, still] == decoded[0, still]).all()


def test_gif_seam_shows_nothing_where_the_loop_does_not_change(tmp_path):
    # a glow that moves away and comes back: where the last frame equals the first,
    # the GIF's jump back to the start must not change a pixel either
    loop = make_loop()
    decoded = decode(export(loop, tmp_path / "loop.gif", repeat=2))
    same = (loop.frames[-1] == loop.frames[0]).all(axis=-1)
    changed_between = (loop.frames != loop.frames[0]).any(axis=(0, 3))
    assert (same & changed_between).sum() > 20
    for last, first in ((N - 1, N), (2 * N - 1, 0)):
        assert (decoded[last][same] == decoded[first][same]).all()


def test_gif_keeps_odd_sizes(tmp_path):
    decoded = decode(export(make_loop(soft_clip(h=33, w=45)), tmp_path / "odd.gif"))
    assert decoded.shape == (N, 33, 45, 3)


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("name", ["loop.avi", "loop", "loop.mp4.txt"])
def test_unsupported_extension_names_it_and_the_supported_ones(tmp_path, name):
    with pytest.raises(ExportError, match=r"supported formats are \.mp4, \.webm, \.gif") as info:
        export(make_loop(), tmp_path / name)
    assert (tmp_path / name).suffix in str(info.value) or "without extension" in str(info.value)
    assert isinstance(info.value, ValueError)
    assert not list(tmp_path.iterdir())


def test_export_formats_constant():
    assert EXPORT_FORMATS == (".mp4", ".webm", ".gif")


@pytest.mark.parametrize("repeat", [0, -1, 1.5])
def test_bad_repeat_is_refused(tmp_path, repeat):
    with pytest.raises(ExportError, match=f"repeat must be a whole number >= 1, got {repeat}"):
        export(make_loop(), tmp_path / "loop.mp4", repeat=repeat)


def test_missing_folder_is_refused(tmp_path):
    with pytest.raises(ExportError, match="does not exist"):
        export(make_loop(), tmp_path / "nowhere" / "loop.mp4")


# --------------------------------------------------------------------------- progress, atomicity

@pytest.mark.parametrize("ext", EXPORT_FORMATS)
def test_progress_counts_every_frame(tmp_path, ext):
    calls = []
    export(make_loop(), tmp_path / f"loop{ext}", repeat=2,
           progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 2 * N) for i in range(1, 2 * N + 1)]


class Stop(Exception):
    pass


@pytest.mark.parametrize("ext", EXPORT_FORMATS)
def test_failed_export_leaves_no_file(tmp_path, ext):
    def stop_midway(done, total):
        if done == total // 2:
            raise Stop

    with pytest.raises(Stop):
        export(make_loop(), tmp_path / f"loop{ext}", repeat=2, progress=stop_midway)
    # neither the final name nor a leftover temporary file
    assert not list(tmp_path.iterdir())


def test_failed_export_keeps_the_previous_file(tmp_path):
    path = export(make_loop(), tmp_path / "loop.mp4")
    before = path.read_bytes()

    def stop(done, total):
        if done == 5:
            raise Stop

    with pytest.raises(Stop):
        export(make_loop(soft_clip()[::-1].copy()), path, progress=stop)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["loop.mp4"]

"""The audio track, on real files the tests encode with PyAV: formats, resampling,
gapless crossfades at exact sample offsets, looping, silence, broken files, run-time
additions and exact sample counts."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from lofid.audio import AudioTrack
from helpers import wait_for

RATE = 48000
AMP = 0.5
STEADY_RMS = AMP / np.sqrt(2)


def _encoder(name: str) -> bool:
    try:
        av.Codec(name, "w")
        return True
    except Exception:
        return False


OGG_CODEC = "libopus" if _encoder("libopus") else ("libvorbis" if _encoder("libvorbis") else None)


def write_tone(path: Path, freq: float, seconds: float, *, rate: int = RATE, channels: int = 2,
               codec: str = "pcm_s16le") -> np.ndarray:
    """Write a sine tone file; returns its samples as the decoder should give them back
    (exactly so for 16-bit codecs), (n, 2) float32."""
    if not _encoder(codec):
        pytest.skip(f"PyAV's FFmpeg has no {codec} encoder")
    n = round(seconds * rate)
    x = AMP * np.sin(2 * np.pi * freq * np.arange(n) / rate)
    quantised = np.round(x * 32767).astype(np.int16)
    formats = [f.name for f in av.Codec(codec, "w").audio_formats]
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        for i in range(0, n, 1024):
            if "s16" in formats:
                block = np.repeat(quantised[i:i + 1024, None], channels, axis=1).reshape(1, -1)
                fmt = "s16"
            else:
                block = np.repeat(x[None, i:i + 1024], channels, axis=0).astype(np.float32)
                fmt = "fltp"
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format=fmt, layout=layout)
            frame.sample_rate = rate
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    # int16 times 2**-15, as FFmpeg's s16-to-float conversion does: a power-of-two scale of
    # integers, exact on any CPU, so tests compare 16-bit files' samples exactly.
    ref = (quantised / 32768).astype(np.float32)
    return np.repeat(ref[:, None], 2, axis=1)


def read_all(track: AudioTrack, samples: int, chunk: int = 1600) -> np.ndarray:
    parts = []
    while samples > 0:
        parts.append(track.read(min(chunk, samples)))
        samples -= len(parts[-1])
    return np.concatenate(parts)


def magnitude(x: np.ndarray, freq: float) -> float:
    """How strongly `freq` sounds in x (left channel), Hann-windowed."""
    w = np.hanning(len(x))
    t = np.arange(len(x)) / RATE
    return float(abs(np.sum(x[:, 0] * w * np.exp(-2j * np.pi * freq * t))))


def dominant(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x[:, 0] * np.hanning(len(x))))
    return float(np.argmax(spectrum) * RATE / len(x))


def window_rms(x: np.ndarray, size: int = 480) -> np.ndarray:
    n = len(x) // size * size
    return np.sqrt((x[:n, 0].reshape(-1, size) ** 2).mean(axis=1))


def sounding(x: np.ndarray) -> np.ndarray:
    return np.nonzero(np.abs(x).max(axis=1) > 1e-3)[0]


def span(x: np.ndarray) -> int:
    """Samples from the first sound to the last (a sine has zeros inside it)."""
    on = sounding(x)
    return int(on[-1] - on[0] + 1)


@pytest.fixture
def track_factory():
    made = []

    def make(*args, **kwargs):
        kwargs.setdefault("max_wait", 2.0)    # tests want every sample, never padding
        t = AudioTrack(*args, **kwargs)
        made.append(t)
        return t
    yield make
    for t in made:
        t.close()


# --- formats and resampling ----------------------------------------------------------

@pytest.mark.parametrize("name, codec, rate, freq", [
    ("tone.wav", "pcm_s16le", 48000, 440),
    ("tone.flac", "flac", 44100, 660),
    ("tone.mp3", "libmp3lame", 44100, 550),
    ("tone.ogg", OGG_CODEC or "libopus", 48000, 880),
])
def test_each_format_plays_at_its_pitch_as_48k_stereo(tmp_path, track_factory, name, codec, rate, freq):
    path = tmp_path / name
    write_tone(path, freq, 1.5, rate=rate, codec=codec)
    track = track_factory([path], crossfade=0, loop=False)
    x = read_all(track, 2 * RATE)
    assert x.shape == (2 * RATE, 2) and x.dtype == np.float32
    on = sounding(x)
    # 1.5 s of sound at 48 kHz, give or take what a lossy codec pads or trims.
    assert abs(span(x) - 1.5 * RATE) < 0.02 * RATE, span(x)
    assert np.all(x[on[-1] + 1:] == 0)                       # then silence: no loop
    middle = x[RATE // 4: RATE // 4 + 9600]
    assert abs(dominant(middle) - freq) <= 5
    assert np.sqrt((middle[:, 0] ** 2).mean()) == pytest.approx(STEADY_RMS, rel=0.1)
    np.testing.assert_allclose(x[:, 0], x[:, 1], atol=2e-3)   # lossy joint stereo differs a hair


def test_mono_44k1_is_resampled_to_48k_stereo_at_full_level(tmp_path, track_factory):
    path = tmp_path / "mono.wav"
    write_tone(path, 1000, 1.0, rate=44100, channels=1)
    track = track_factory([path], crossfade=0, loop=False)
    x = read_all(track, RATE + 4800)
    assert abs(span(x) - RATE) <= 4                           # 1 s is 48000 samples now
    # Played at 44.1 kHz as if it were 48 kHz, the tone would come out at 1088 Hz.
    assert abs(dominant(x[4800:4800 + 38400]) - 1000) <= 2
    np.testing.assert_array_equal(x[:, 0], x[:, 1])          # both speakers
    assert np.abs(x).max() == pytest.approx(AMP, rel=0.02)   # not 3 dB down in the centre


# --- gapless, crossfade, looping ------------------------------------------------------

def test_crossfade_lands_at_the_exact_samples(tmp_path, track_factory):
    a = write_tone(tmp_path / "a.wav", 440, 2.0)
    b = write_tone(tmp_path / "b.wav", 880, 2.0)
    fade = RATE // 2
    track = track_factory([tmp_path / "a.wav", tmp_path / "b.wav"], crossfade=0.5, loop=False)
    x = read_all(track, 4 * RATE)

    start, end = 2 * RATE - fade, 2 * RATE                   # the last half second of a
    np.testing.assert_array_equal(x[:start], a[:start])
    np.testing.assert_array_equal(x[end:end + 2 * RATE - fade], b[fade:])
    assert np.all(x[end + 2 * RATE - fade:] == 0)
    angle = (np.arange(fade) + 0.5) * np.pi / 2 / fade
    mixed = a[start:] * np.cos(angle)[:, None] + b[:fade] * np.sin(angle)[:, None]
    np.testing.assert_allclose(x[start:end], mixed, atol=1e-6)

    # The dominant pitch switches inside the crossfade, at its middle.
    windows = range(0, 3 * RATE, 1200)
    louder_b = [magnitude(x[i:i + 2400], 880) > magnitude(x[i:i + 2400], 440) for i in windows]
    switch = list(windows)[louder_b.index(True)] + 1200
    assert start < switch < end
    assert abs(switch - (start + end) / 2) <= 2400
    assert not any(louder_b[:start // 1200 - 1]) and all(louder_b[end // 1200:])


def test_crossfade_is_equal_power_and_has_no_gap(tmp_path, track_factory):
    write_tone(tmp_path / "a.wav", 440, 2.0)
    write_tone(tmp_path / "b.wav", 700, 2.0)
    track = track_factory([tmp_path / "a.wav", tmp_path / "b.wav"], crossfade=0.5, loop=False)
    x = read_all(track, 7 * RATE // 2)
    rms = window_rms(x[: 7 * RATE // 2])
    # A linear fade would dip to 71 % in its middle; equal power stays level.
    middle = x[2 * RATE - RATE // 4 - 2400: 2 * RATE - RATE // 4 + 2400, 0]
    assert np.sqrt((middle ** 2).mean()) == pytest.approx(STEADY_RMS, rel=0.06)
    assert rms.min() > 0.8 * STEADY_RMS


def test_gapless_across_formats_and_rates_without_crossfade(tmp_path, track_factory):
    a = write_tone(tmp_path / "1.wav", 440, 1.0)
    write_tone(tmp_path / "2.flac", 660, 1.0, rate=44100, codec="flac")
    c = write_tone(tmp_path / "3.wav", 880, 1.0)
    track = track_factory([tmp_path], crossfade=0, loop=False)
    x = read_all(track, 3 * RATE + 4800)
    np.testing.assert_array_equal(x[:RATE], a)               # then the flac follows at once
    end = sounding(x)[-1] + 1
    assert end == pytest.approx(3 * RATE, abs=4)
    rms = window_rms(x[:3 * RATE - 480], size=240)
    assert rms.min() > 0.5 * STEADY_RMS                       # no silence at either boundary
    assert abs(dominant(x[RATE + 4800: RATE + 43200]) - 660) <= 2
    np.testing.assert_array_equal(x[end - RATE:end], c)


def test_the_playlist_loops(tmp_path, track_factory):
    write_tone(tmp_path / "a.wav", 440, 0.5)
    write_tone(tmp_path / "b.wav", 880, 0.5)
    track = track_factory([tmp_path / "a.wav", tmp_path / "b.wav"], crossfade=0.05)
    x = read_all(track, 3 * RATE)
    step = RATE // 2 - 2400                                  # each track is shortened by one fade
    pitches = [dominant(x[i * step + 4800: i * step + 16800]) for i in range(5)]
    assert [round(p) for p in pitches] == [440, 880, 440, 880, 440]
    assert window_rms(x).min() > 0.8 * STEADY_RMS
    assert track.stats["tracks"] >= 6 and track.stats["underruns"] == 0


def test_one_track_loops_into_itself(tmp_path, track_factory):
    write_tone(tmp_path / "a.wav", 440, 0.4)
    track = track_factory([tmp_path / "a.wav"], crossfade=0.1)
    x = read_all(track, 2 * RATE)
    assert window_rms(x).min() > 0.5 * STEADY_RMS
    assert track.now_playing()["path"] == str(tmp_path / "a.wav")


# --- silence, broken files ------------------------------------------------------------

def test_silence_when_there_is_no_music(tmp_path, track_factory):
    track = track_factory([], max_wait=0.02)
    t0 = time.monotonic()
    chunks = [track.read(1600) for _ in range(30)]
    assert time.monotonic() - t0 < 0.5
    assert all(c.shape == (1600, 2) and c.dtype == np.float32 and not c.any() for c in chunks)
    assert track.position == 48000 and track.now_playing() is None
    assert track.stats["underruns"] == 0 and track.stats["silent_samples"] == 48000
    assert track.read(0).shape == (0, 2)


def test_a_file_that_does_not_decode_is_skipped_with_a_warning(tmp_path, track_factory, caplog):
    (tmp_path / "garbage.wav").write_bytes(np.random.default_rng(1).bytes(20000))
    (tmp_path / "notes.mp3").write_text("these are not the notes you are looking for\n" * 50)
    good = write_tone(tmp_path / "good.wav", 440, 1.0)
    sources = [tmp_path / "garbage.wav", tmp_path / "notes.mp3", tmp_path / "missing.flac",
               tmp_path / "good.wav"]
    with caplog.at_level(logging.WARNING, logger="lofid.audio"):
        track = track_factory(sources, crossfade=0.1, loop=False)
        x = read_all(track, RATE + 9600)
    np.testing.assert_array_equal(x[:RATE], good)            # the good one plays from sample 0
    assert not x[RATE:].any()
    skipped = [Path(s["path"]).name for s in track.skipped]
    assert skipped == ["garbage.wav", "notes.mp3", "missing.flac"]
    for name in skipped:
        assert any(name in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert [p.name for p in track.playlist] == ["good.wav"]  # not retried every time round


def test_a_broken_file_inside_a_looping_playlist(tmp_path, track_factory, caplog):
    write_tone(tmp_path / "a.wav", 440, 0.5)
    (tmp_path / "b.ogg").write_bytes(b"OggS" + bytes(5000))
    write_tone(tmp_path / "c.wav", 880, 0.5)
    with caplog.at_level(logging.WARNING, logger="lofid.audio"):
        track = track_factory([tmp_path], crossfade=0.05)
        x = read_all(track, 2 * RATE)
    step = RATE // 2 - 2400
    assert [round(dominant(x[i * step + 4800: i * step + 16800])) for i in range(4)] == [440, 880, 440, 880]
    assert window_rms(x).min() > 0.8 * STEADY_RMS
    assert len(track.skipped) == 1 and "b.ogg" in track.skipped[0]["path"]


# --- run-time additions ---------------------------------------------------------------

def test_add_while_silent_starts_the_music(tmp_path, track_factory):
    write_tone(tmp_path / "a.wav", 440, 1.0)
    track = track_factory([], loop=False)
    assert not track.read(1600).any()
    track.add(tmp_path / "a.wav")
    x = read_all(track, 9600)
    assert abs(dominant(x) - 440) <= 5 and sounding(x)[0] <= 2
    assert track.now_playing()["path"] == str(tmp_path / "a.wav")


def test_add_next_plays_right_after_the_current_track(tmp_path, track_factory):
    for name, freq in (("a.wav", 440), ("b.wav", 660), ("c.wav", 880), ("d.wav", 330)):
        write_tone(tmp_path / name, freq, 1.0)
    track = track_factory([tmp_path / "a.wav", tmp_path / "b.wav"], crossfade=0.1, loop=False)
    first = read_all(track, RATE // 4)
    # By now a is decoded to its end and b has been decoded ahead of it.
    # (so the swap below is exercised)
    wait_for(lambda: track.up_next() == tmp_path / "b.wav", 5)
    track.add(tmp_path / "c.wav", next=True)
    track.add(tmp_path / "d.wav")
    assert [p.name for p in track.playlist] == ["a.wav", "c.wav", "b.wav", "d.wav"]
    x = np.concatenate([first, read_all(track, 4 * RATE)])
    step = RATE - 4800
    pitches = [round(dominant(x[i * step + 9600: i * step + 33600])) for i in range(4)]
    assert pitches == [440, 880, 660, 330]
    assert window_rms(x[:4 * step]).min() > 0.8 * STEADY_RMS


def test_now_playing_follows_the_music(tmp_path, track_factory):
    write_tone(tmp_path / "a.wav", 440, 2.0)
    track = track_factory([tmp_path / "a.wav"], crossfade=0.2, loop=False)
    read_all(track, RATE // 2)
    now = track.now_playing()
    assert now["path"] == str(tmp_path / "a.wav")
    assert now["position_s"] == pytest.approx(0.5)
    assert now["duration_s"] == pytest.approx(2.0)


def test_add_from_another_thread_while_reading(tmp_path, track_factory):
    write_tone(tmp_path / "a.wav", 440, 0.3)
    write_tone(tmp_path / "b.wav", 880, 0.3)
    track = track_factory([tmp_path / "a.wav"], crossfade=0.05)

    def adder():
        for i in range(40):
            track.add(tmp_path / ("b.wav" if i % 2 else "a.wav"), next=bool(i % 3))
            time.sleep(0.002)
    thread = threading.Thread(target=adder)
    thread.start()
    chunks = [track.read(1600) for _ in range(150)]
    thread.join()
    assert all(c.shape == (1600, 2) for c in chunks)
    assert len(track.playlist) == 41 and track.position == 150 * 1600
    assert window_rms(np.concatenate(chunks)).min() > 0.5 * STEADY_RMS


# --- timing ---------------------------------------------------------------------------

def test_exact_sample_counts_over_ten_thousand_reads(tmp_path, track_factory):
    write_tone(tmp_path / "a.wav", 440, 3.0)
    write_tone(tmp_path / "b.flac", 880, 3.0, rate=44100, codec="flac")
    track = track_factory([tmp_path / "a.wav", tmp_path / "b.flac"], crossfade=0.2)
    total = 0
    quiet = 0
    for _ in range(10_000):
        chunk = track.read(1600)
        assert chunk.shape == (1600, 2)
        total += len(chunk)
        quiet += np.abs(chunk[:, 0]).max() < 0.1
    assert total == 16_000_000 and track.position == 16_000_000
    assert quiet == 0 and track.stats["underruns"] == 0


def test_read_never_waits_long_on_a_stalled_file(tmp_path, track_factory):
    # A named pipe stalls the decoder in open() until something writes to it.
    write_tone(tmp_path / "src.wav", 440, 1.0)
    fifo = tmp_path / "stalled.wav"
    os.mkfifo(fifo)
    track = track_factory([fifo], crossfade=0, loop=False, max_wait=0.02)
    t0 = time.monotonic()
    chunks = [track.read(1600) for _ in range(10)]
    assert time.monotonic() - t0 < 1.0
    assert not any(c.any() for c in chunks)
    assert track.stats["underruns"] == 10 and track.stats["padded_samples"] == 16000

    writer = threading.Thread(target=lambda: fifo.write_bytes((tmp_path / "src.wav").read_bytes()))
    writer.start()
    deadline = time.monotonic() + 5
    heard = False
    while not heard and time.monotonic() < deadline:
        heard = track.read(1600).any()
    writer.join()
    assert heard
    assert track.position % 1600 == 0


# --- bad input ------------------------------------------------------------------------

def test_bad_input_is_refused_with_a_clear_message(tmp_path):
    with pytest.raises(ValueError, match="crossfade.*-1"):
        AudioTrack([], crossfade=-1)
    with pytest.raises(ValueError, match="crossfade.*nan"):
        AudioTrack([], crossfade=float("nan"))
    with AudioTrack([]) as track:
        with pytest.raises(ValueError, match="count.*-5"):
            track.read(-5)
        with pytest.raises(ValueError, match="count.*1.5"):
            track.read(1.5)


# --- generated tracks (lofi.nvim's float WAVs) -----------------------------------------

def _clicks(x: np.ndarray, freq: float, amp: float) -> np.ndarray:
    """Where one sample jumps from the last by more than twice the most a tone of
    `freq` at `amp` moves between two 48 kHz samples: a step, heard as a click."""
    limit = 2 * amp * 2 * np.pi * freq / RATE
    return np.nonzero(np.abs(np.diff(x[:, 0])) > limit)[0]


def test_a_float_32k_track_starts_and_ends_without_a_click(tmp_path, track_factory):
    from media import write_float_wav
    # A cosine: the track starts at full level and ends away from zero, as generated
    # music does (a sine cut at zero crossings would hide the steps).
    t = np.arange(64000) / 32000
    write_float_wav(tmp_path / "gen.wav", 0.5 * np.cos(2 * np.pi * 220 * t + 0.3), 32000)
    track = track_factory([], crossfade=1.0, loop=False)
    silent = read_all(track, 4800)
    track.add(tmp_path / "gen.wav")
    x = np.concatenate([silent, read_all(track, 3 * RATE)])
    assert not _clicks(x, 220, 0.5).size
    on = sounding(x)
    # All of it, at 48 kHz; the 10 ms fades leave a few samples at each end under the
    # 1e-3 that `sounding` counts as sound.
    assert abs((on[-1] - on[0]) - 2 * RATE) <= 64
    assert abs(dominant(x[on[0] + 4800: on[0] + 43200]) - 220) <= 2


def test_float_tracks_join_each_other_and_themselves_without_a_click(tmp_path, track_factory):
    from media import write_float_wav
    t = np.arange(3 * 32000) / 32000
    write_float_wav(tmp_path / "a.wav", 0.5 * np.cos(2 * np.pi * 220 * t + 1.0), 32000)
    t48 = np.arange(2 * 48000) / 48000
    write_float_wav(tmp_path / "b.wav", 0.5 * np.cos(2 * np.pi * 165 * t48 + 2.0), 48000)
    track = track_factory([tmp_path / "a.wav", tmp_path / "b.wav"], crossfade=1.0)
    x = read_all(track, 9 * RATE)                             # a, b, a again
    assert not _clicks(x, 220, 0.5).size
    assert window_rms(x[480:]).min() > 0.6 * STEADY_RMS      # after the first fade-in


def test_files_that_are_not_audio_are_skipped_whatever_their_name(tmp_path, track_factory, caplog):
    (tmp_path / "notes.txt").write_text("not music\n" * 100)
    good = write_tone(tmp_path / "good.wav", 440, 1.0)
    with av.open(str(tmp_path / "clip.mp4"), "w") as c:     # an MP4, cut short
        s = c.add_stream("aac", rate=48000, layout="stereo")
        frame = av.AudioFrame.from_ndarray(np.zeros((2, 48000), np.float32), format="fltp",
                                           layout="stereo")
        frame.sample_rate = 48000
        for p in [*s.encode(frame), *s.encode(None)]:
            c.mux(p)
    data = (tmp_path / "clip.mp4").read_bytes()
    (tmp_path / "clip.mp4").write_bytes(data[:len(data) // 3])
    (tmp_path / "text.wav").write_text("RIFF, or so it says\n")
    sources = [tmp_path / "notes.txt", tmp_path / "clip.mp4", tmp_path / "text.wav",
               tmp_path / "good.wav"]
    with caplog.at_level(logging.WARNING, logger="lofid.audio"):
        track = track_factory(sources, crossfade=0.1, loop=False)
        x = read_all(track, RATE + 4800)
    np.testing.assert_array_equal(x[:RATE], good)
    assert sorted(Path(s["path"]).name for s in track.skipped) == ["clip.mp4", "notes.txt",
                                                                    "text.wav"]
    assert all(any(Path(s["path"]).name in r.getMessage() for r in caplog.records)
               for s in track.skipped)


def test_probe_says_why_a_file_is_not_playable(tmp_path):
    from lofid.audio import probe
    from media import write_float_wav
    write_float_wav(tmp_path / "gen.wav", np.zeros(32000), 32000)
    assert probe(tmp_path / "gen.wav") == pytest.approx(1.0, abs=0.01)
    (tmp_path / "text.wav").write_text("hello\n")
    with pytest.raises(ValueError, match="text.wav.*not audio"):
        probe(tmp_path / "text.wav")
    with pytest.raises(ValueError, match="is not a file"):
        probe(tmp_path / "missing.wav")


def test_a_track_with_info_is_announced_when_it_begins_to_sound(tmp_path, track_factory):
    write_tone(tmp_path / "a.wav", 440, 1.0)
    write_tone(tmp_path / "b.wav", 880, 1.0)
    heard = []
    track = track_factory([tmp_path / "a.wav"], crossfade=0.5, loop=False)
    track.on_sound = lambda info: heard.append((info, track.position))
    track.add(tmp_path / "b.wav", next=True, info={"prompt": "rain", "track_id": "t1"})
    assert track.find("track_id", "t1") == tmp_path / "b.wav"
    read_all(track, RATE // 4)
    assert heard == []                                        # a plays; b only waits
    read_all(track, RATE, chunk=1600)
    # b begins to sound where the crossfade begins (0.5 s), announced by that read.
    assert [h[0] for h in heard] == [{"prompt": "rain", "track_id": "t1"}]
    assert RATE // 2 <= heard[0][1] <= RATE // 2 + 1600
    assert track.now_playing()["track_id"] == "t1"

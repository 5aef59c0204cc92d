"""Tracks as lofi.nvim makes them, sent to a running `lofid run --socket`: a 32-bit
float WAV at 32 kHz joins the stream without clicks, the picture moves to the track's
scene when the track begins to sound (not when it is queued), a track is queued once,
and bad tracks, bad times and bad audio files are refused or skipped, never fatal."""

from __future__ import annotations

import av
import numpy as np
import pytest

from lofid.generators import get
from lofid.library import Library
from lofid.scene import parse
from media import write_float_wav, write_tone_wav
from helpers import lofid, next_event, running, wait_for

pytestmark = pytest.mark.slow


def generated_track(path, seconds=6.0, rate=32000, freq=220.0):
    """A stand-in for a MusicGen track: starts at full level and ends away from zero."""
    t = np.arange(round(seconds * rate)) / rate
    return write_float_wav(path, 0.5 * np.cos(2 * np.pi * freq * t + 0.3), rate)


def start_daemon(tmp_path, intro: bool):
    library = Library(tmp_path / "lib")
    paint = get("procedural")
    for text in ("study room", "coffee shop, rain, night"):
        library.put(paint(parse(text), 1, (160, 90), 12, 10.0))
    config = tmp_path / "lofid.toml"
    config.write_text("min_scene = 0\n")       # the track's time, not the last change's
    audio = ["--audio", str(write_tone_wav(tmp_path / "intro.wav", 440, 4.0))] if intro else []
    video = tmp_path / "out.mkv"
    return running(tmp_path, "--config", config, "-o", video, "--realtime", "--size", "160x90",
                   "--scene", "study room", "--no-generate", "--crossfade", "1",
                   "--rotate", "600", *audio), video


@pytest.fixture
def daemon(tmp_path):
    """A daemon playing an intro track, as with `--audio`."""
    run, video = start_daemon(tmp_path, intro=True)
    with run as d:
        yield d.proc, d.sock, video


@pytest.fixture
def silent_daemon(tmp_path):
    """A daemon with no music of its own, as the plugin starts one."""
    run, video = start_daemon(tmp_path, intro=False)
    with run as d:
        yield d, d.sock, video


def decoded_audio(video) -> tuple[np.ndarray, float]:
    """The left channel of the file's audio at 48 kHz, and the stream time of its
    first sample."""
    with av.open(str(video)) as c:
        stream = c.streams.audio[0]
        frames = list(c.decode(stream))
    start = float(frames[0].pts * stream.time_base)
    x = np.concatenate([f.to_ndarray()[0] for f in frames])   # fltp: planes
    return x, start


def test_the_picture_moves_when_the_track_sounds_and_the_joins_do_not_click(daemon, tmp_path):
    from pynvim.msgpack_rpc import socket_session
    proc, sock, video = daemon
    track = generated_track(tmp_path / "0f3a9c2e7d1b4a56.wav")
    session = socket_session(str(sock))
    try:
        session.request("subscribe", ["scene_changed", "crossfade"])
        wait_for(lambda: session.request("status")["clock"]["seconds"] > 0.5)
        opts = {"prompt": "rainy night coffee shop jazz", "track_id": "0f3a9c2e7d1b4a56",
                "duration_sec": 6.0}
        answer = session.request("audio.track", str(track), opts)
        assert answer["queued"] == str(track) and answer["scene"] == "coffee shop, rain, night"
        # Queued behind the intro, not sounding yet: the picture stays.
        status = session.request("status")
        assert status["scene"]["scene"] == "study_room"
        assert status["audio"]["now_playing"]["path"].endswith("intro.wav")
        # The same track again (lofi.nvim's cache answers a repeated request with it):
        # not queued twice.
        again = session.request("audio.track", str(track), opts)
        assert again["already_queued"] is True
        assert session.request("status")["audio"]["playlist"].count(str(track)) == 1

        name, changed = next_event(session, ["scene_changed"])
        if changed["reason"] == "start":
            # The daemon's own first scene: on a loaded machine its event can still be
            # on its way out when the subscription lands.
            name, changed = next_event(session, ["scene_changed"])
        assert changed["reason"] == "audio" and "coffee shop" in changed["scene"]
        _, fade = next_event(session, ["crossfade"])
        # Once the intro has faded out, status names the track that plays.
        assert wait_for(lambda: (session.request("status")["audio"]["now_playing"] or {})
                        .get("track_id") == "0f3a9c2e7d1b4a56")
        playing = session.request("status")["audio"]["now_playing"]
        assert playing["prompt"] == "rainy night coffee shop jazz"
        fps = session.request("status")["clock"]["fps"]
        frame = fade["frame"]
        # Past the whole track, into the intro again (the playlist loops), then stop.
        wait_for(lambda: session.request("status")["clock"]["frame"] > frame + 9 * fps,
                 timeout=60)
        session.request("shutdown")
    finally:
        session.close()
    assert proc.wait(timeout=60) == 0

    x, start = decoded_audio(video)
    rate = 48000

    def level(freq, at):
        w = x[round((at - start) * rate):][:2400]
        t = np.arange(len(w)) / rate
        return abs(np.sum(w * np.hanning(len(w)) * np.exp(-2j * np.pi * freq * t)))

    # Where the generated track begins to sound: the first 10 ms with its pitch in it.
    times = np.arange(start, start + 8, 0.01)
    onset = next(t for t in times if level(220, t) > 20)
    picture = frame / fps
    # Not before the music, and with it (a stored loop crosses at the next frame;
    # 0.3 s for the socket and the loop to open on a busy machine).
    assert onset - 0.1 <= picture <= onset + 0.3 + 1.0, (onset, picture)
    # No step anywhere: from one sample to the next the music moves at most as much
    # as a 440 Hz tone at half level does (0.029); AAC's coding noise adds a little.
    # (The recording's own end, where the stream was stopped, is left out.)
    steps = np.abs(np.diff(x[:-2400]))
    assert steps.max() < 0.06, (steps.argmax() / rate + start, len(x) / rate + start)
    assert level(220, onset + 3) > 10 * level(440, onset + 3)


def test_a_track_into_silence_starts_and_loops_without_a_click(silent_daemon, tmp_path):
    from pynvim.msgpack_rpc import socket_session
    d, sock, video = silent_daemon
    track = generated_track(tmp_path / "gen.wav", seconds=3.0)
    session = socket_session(str(sock))
    try:
        wait_for(lambda: session.request("status")["clock"]["seconds"] > 0.5)
        session.request("audio.track", str(track), {"prompt": "coffee shop", "track_id": "t"})
        t = session.request("status")["clock"]["seconds"]
        # The track, then itself again (the playlist loops), then stop.
        wait_for(lambda: session.request("status")["clock"]["seconds"] > t + 6, timeout=60)
        session.request("shutdown")
    finally:
        session.close()
    assert d.wait(timeout=60) == 0, d.stderr()[-2000:]
    x, start = decoded_audio(video)
    on = np.nonzero(np.abs(x) > 0.01)[0]
    assert len(on) and on[0] > 0.3 * 48000                    # silence first, then the music
    steps = np.abs(np.diff(x[:-2400]))
    # A 220 Hz tone at half level moves at most 0.014 a sample; a step from silence to
    # the track's first sample (0.48) is what a click is.
    assert steps.max() < 0.05, (steps.argmax() / 48000 + start)


def test_bad_tracks_and_times_are_refused_and_the_daemon_goes_on(daemon, tmp_path):
    from pynvim.msgpack_rpc import socket_session
    _, sock, _ = daemon
    text = tmp_path / "notes.wav"
    text.write_text("not a track\n")
    session = socket_session(str(sock))
    try:
        with pytest.raises(Exception, match="notes.wav.*not audio"):
            session.request("audio.track", str(text), {"prompt": "library"})
        assert str(text) not in session.request("status")["audio"]["playlist"]
        with pytest.raises(Exception, match="track_id must be a text"):
            session.request("audio.track", str(text), {"track_id": 12})
        with pytest.raises(Exception, match="start_at must be a unix time within a day"):
            session.request("audio.prompt", "coffee shop", {"start_at": 1e308})
        with pytest.raises(Exception, match="duration_sec must be a number of seconds"):
            session.request("audio.prompt", "coffee shop", {"duration_sec": 1e308})
        with pytest.raises(Exception, match="starts_in must be a number of seconds"):
            session.request("audio.prompt", "coffee shop", {"starts_in": 1e308})
        # Nothing was left waiting: a later prompt for that scene comes soon.
        later = session.request("audio.prompt", "coffee shop, rain, night")
        assert later["due_in"] < 30
        assert session.request("status")["clock"]["seconds"] >= 0
    finally:
        session.close()


def test_audio_that_does_not_decode_is_skipped_with_a_warning(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("these are not the notes\n" * 20)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(2000))    # an MP4 cut short
    out = tmp_path / "x.mp4"
    r = lofid("--library", tmp_path / "lib", "run", "-o", out, "--duration", "1",
              "--size", "160x90", "--audio", notes, "--audio", clip, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    for name in ("notes.txt", "clip.mp4"):
        assert any("skipping audio file" in line and name in line
                   for line in r.stderr.splitlines()), r.stderr
    with av.open(str(out)) as c:
        assert c.streams.audio and c.duration / av.time_base == pytest.approx(1.0, abs=0.2)

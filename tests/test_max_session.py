"""Streams that outlive a platform's session limit: `lofid run` with `max_session` of
a few seconds against the real nginx-rtmp server, a file output beside it."""

from __future__ import annotations

import wave

import av
import numpy as np
import pytest

from lofid.outputs.network import NetworkOutput, NetworkTargetError, session_end
from lofid.settings import ConfigError, seconds_of
from helpers import lofid
from test_outputs_network import Nginx, needs_nginx

FPS = 24
LIMIT = 4.0            # seconds: the platform's limit, as a test can afford it
DURATION = 8.5


def test_durations_are_read_with_their_units():
    assert seconds_of("47h", "max_session") == 47 * 3600
    assert seconds_of("1h30m", "max_session") == 5400
    assert seconds_of("90s", "max_session") == seconds_of(90, "max_session") == 90
    assert seconds_of("2d", "max_session") == 2 * 86400
    for bad in ("soon", "", "-3h", "0", 0, True, "47 hours", float("inf")):
        with pytest.raises(ConfigError, match="max_session"):
            seconds_of(bad, "max_session")
    # A session ends at the first keyframe within 5 s of the limit (10% of a short one):
    # with a keyframe at least every 2 s, 47 h always ends before 47 h.
    assert session_end(47 * 3600) == 47 * 3600 - 5
    assert session_end(4.0) == pytest.approx(3.6)


def test_max_session_is_checked_on_rtmp_and_left_to_rtmp():
    with pytest.raises(NetworkTargetError, match="max_session"):
        NetworkOutput("rtmp://127.0.0.1:1935/live/key", max_session=0.5)
    with pytest.raises(NetworkTargetError, match="max_session"):
        NetworkOutput("rtmp://127.0.0.1:1935/live/key", max_session="47h")
    # Every output gets the run's options: MPEG-TS for OBS has no session limit.
    assert NetworkOutput("udp://127.0.0.1:5000", max_session=4.0).max_session is None
    assert NetworkOutput("rtmp://127.0.0.1:1935/live/key", max_session=4.0).max_session == 4.0


def _tone(path, seconds: float = 3.0) -> None:
    t = np.arange(int(seconds * 48000)) / 48000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(np.repeat(tone[:, None], 2, axis=1).tobytes())


def _read(path) -> dict:
    """Video timestamps and keyframes, audio timestamps and loudness, of a recording."""
    out = {"pts": [], "keyframes": [], "audio_pts": [], "audio_rms": []}
    with av.open(str(path)) as c:
        assert c.streams.video and c.streams.audio, f"{path.name}: not video and audio"
        for packet in c.demux():
            if packet.pts is None:
                continue
            seconds = float(packet.pts * packet.time_base)
            if packet.stream.type == "video":
                out["pts"].append(seconds)
                if packet.is_keyframe:
                    out["keyframes"].append(seconds)
            elif packet.stream.type == "audio":
                out["audio_pts"].append(seconds)
                for frame in packet.decode():
                    out["audio_rms"].append(float(np.sqrt(np.mean(frame.to_ndarray() ** 2))))
    return out


@pytest.mark.slow
@needs_nginx
def test_a_stream_starts_a_new_session_before_the_limit_and_the_file_beside_it_goes_on(tmp_path):
    (tmp_path / "nginx").mkdir()
    server = Nginx(tmp_path / "nginx")
    server.start()
    try:
        _tone(tmp_path / "tone.wav")
        config = tmp_path / "lofid.toml"
        config.write_text(f'loop_frames = 12\nmax_session = "{LIMIT:g}s"\n')
        r = lofid("--library", tmp_path / "lib", "run", "--config", config,
                  "-o", server.url("lofi"), "-o", tmp_path / "beside.mkv",
                  "--size", "320x180", "--fps", FPS, "--duration", DURATION,
                  "--audio", tmp_path / "tone.wav", timeout=120)
        assert r.returncode == 0, r.stderr
    finally:
        server.stop()

    sessions = [_read(p) for p in server.recordings()]
    assert len(sessions) >= 2, f"{len(sessions)} recorded session(s)"
    first, second = sessions[:2]
    for i, s in enumerate((first, second)):
        # Each session starts on a keyframe at time zero and runs on one frame apart.
        assert s["keyframes"] and s["keyframes"][0] == s["pts"][0], f"session {i + 1}"
        assert s["pts"][0] < 0.1, f"session {i + 1} starts at {s['pts'][0]:.3f} s"
        assert np.diff(s["pts"]).max() < 1.5 / FPS, f"session {i + 1} has a gap"
        # The music is in both: AAC that decodes to the tone, not silence.
        assert len(s["audio_pts"]) > 20 and np.median(s["audio_rms"]) > 0.05, f"session {i + 1}"
    # The first ended before the limit, at its last keyframe within 10% of it.
    length = first["pts"][-1] + 1 / FPS
    assert session_end(LIMIT) - 1 / FPS <= length <= LIMIT + 0.01, length

    # The file beside it noticed nothing: every frame, one apart, audio throughout.
    beside = _read(tmp_path / "beside.mkv")
    assert len(beside["pts"]) == pytest.approx(DURATION * FPS, abs=1)
    assert np.diff(beside["pts"]).max() < 1.5 / FPS
    assert np.diff(beside["audio_pts"]).max() < 0.05
    assert beside["audio_pts"][-1] > DURATION - 0.2

"""A running `lofid run --socket`, driven by `lofid ctl` and by pynvim's client."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from waiting import wait_for
from media import write_tone_wav


def lofid(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "lofid.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def daemon(tmp_path):
    sock = tmp_path / "run" / "lofid.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lofid.cli", "--library", str(tmp_path / "lib"), "run",
         "-o", "null", "--realtime", "--size", "160x90", "--socket", str(sock),
         "--scene", "study room"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: sock.exists() or proc.poll() is not None)
        assert proc.poll() is None, proc.stderr.read()
        yield proc, sock
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def status(sock):
    r = lofid("ctl", "--socket", str(sock), "--json", "status")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_ctl_drives_the_daemon_and_subscribers_hear_it(daemon):
    from pynvim.msgpack_rpc import socket_session
    proc, sock = daemon
    s = status(sock)
    assert s["scene"]["scene"] == "study_room" and s["outputs"][0]["state"] == "running"
    human = lofid("ctl", "--socket", str(sock), "status")
    assert "study room" in human.stdout and "output null: running" in human.stdout

    # pynvim as an independent client, subscribed to scene changes.
    session = socket_session(str(sock))
    try:
        assert session.request("subscribe", ["scene_changed", "crossfade"]) == \
            ["crossfade", "scene_changed"]
        r = lofid("ctl", "--socket", str(sock), "scene", "rainy", "window,", "night")
        assert r.returncode == 0 and "rainy window" in r.stdout
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "crossfade" not in [m[1] for m in seen]:
            message = session.next_message()
            if message is not None:
                seen.append(message)
        names = [m[1] for m in seen]
        assert "scene_changed" in names and "crossfade" in names
        changed = [m for m in seen if m[1] == "scene_changed"][0]
        assert "rainy window" in changed[2][0]["scene"]
    finally:
        session.close()
    assert wait_for(lambda: status(sock)["scene"]["scene"] == "rainy_window")

    assert lofid("ctl", "--socket", str(sock), "pause").returncode == 0
    assert status(sock)["paused"] is True
    assert lofid("ctl", "--socket", str(sock), "resume").returncode == 0
    assert status(sock)["paused"] is False

    bad = lofid("ctl", "--socket", str(sock), "scene")
    assert bad.returncode == 2 and "needs a text" in bad.stderr

    assert lofid("ctl", "--socket", str(sock), "stop").returncode == 0
    assert proc.wait(timeout=30) == 0
    assert not sock.exists()


def test_a_second_daemon_on_the_same_socket_is_refused(daemon):
    _, sock = daemon
    r = lofid("run", "-o", "null", "--duration", "1", "--socket", str(sock))
    assert r.returncode == 2 and "already running" in r.stderr


def test_ctl_without_a_daemon_says_so(tmp_path):
    r = lofid("ctl", "--socket", str(tmp_path / "none.sock"), "status")
    assert r.returncode == 1 and "no lofid answers" in r.stderr


def test_the_music_moves_the_picture_and_joins_the_stream(daemon, tmp_path):
    from pynvim.msgpack_rpc import socket_session
    _, sock = daemon
    wav = write_tone_wav(tmp_path / "track.wav", 440)
    session = socket_session(str(sock))
    try:
        # lofi.nvim's generation_start: the prompt of the coming track.
        assert session.request("audio.prompt", "rainy night, coffee shop, jazz lofi",
                               {"duration_sec": 30})["scene"] == "coffee shop, rain, night"
        assert wait_for(lambda: status(sock)["scene"]["scene"] == "coffee_shop")
        # generation_complete: the finished WAV joins the stream's audio.
        r = session.request("audio.track", str(wav), {"prompt": "snowy bedroom", "duration_sec": 1})
        assert r["queued"] == str(wav) and "bedroom" in r["scene"]
        assert str(wav) in status(sock)["audio"]["playlist"]
        with pytest.raises(Exception, match="is not a file"):
            session.request("audio.track", str(tmp_path / "missing.wav"))
    finally:
        session.close()


def test_the_config_file_is_watched_and_a_bad_one_never_kills_the_daemon(tmp_path):
    import signal
    cfg = tmp_path / "lofid.toml"
    cfg.write_text('scene = "library"\nrotate = 600\n')
    sock = tmp_path / "run" / "lofid.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lofid.cli", "--library", str(tmp_path / "lib"), "run",
         "-o", "null", "--realtime", "--size", "160x90", "--socket", str(sock),
         "--config", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: sock.exists() or proc.poll() is not None)
        assert status(sock)["scene"]["scene"] == "library"
        # An edit is picked up by itself.
        cfg.write_text('scene = "rooftop night"\nrotate = 600\ncrossfade = 1\n')
        assert wait_for(lambda: status(sock)["scene"]["scene"] == "rooftop_night")
        # A broken edit keeps the old config, and says why in status and to ctl.
        cfg.write_text('scene = "kitchen"\nrotate = -5\n')
        assert wait_for(lambda: (status(sock)["config"]["error"] or "").find("rotate") >= 0)
        assert status(sock)["scene"]["scene"] == "rooftop_night"
        r = lofid("ctl", "--socket", str(sock), "reload")
        assert r.returncode == 2 and "rotate" in r.stderr
        # SIGHUP reloads too; a key that needs a restart is said to.
        cfg.write_text('scene = "kitchen"\nrotate = 600\nfps = 24\n')
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: status(sock)["scene"]["scene"] == "kitchen_morning")
        assert status(sock)["config"]["error"] is None
        r = lofid("ctl", "--socket", str(sock), "reload")
        assert r.returncode == 0 and "no change" in r.stdout
        assert proc.poll() is None                      # alive through all of it
        lofid("ctl", "--socket", str(sock), "stop")
        _, err = proc.communicate(timeout=30)
        assert "needs_restart ['fps']" in err           # said, not silently ignored
    finally:
        lofid("ctl", "--socket", str(sock), "stop")
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()


def test_generate_on_request_fills_the_library_without_changing_the_picture(daemon):
    from pynvim.msgpack_rpc import socket_session
    _, sock = daemon
    session = socket_session(str(sock))
    try:
        session.request("subscribe", ["loop_ready"])
        assert session.request("generate", "balcony sunset", {"seed": 7})["scene"].startswith(
            "balcony")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            message = session.next_message()
            if message is not None and message[1] == "loop_ready" and \
                    message[2][0]["seed"] == 7:
                break
        else:
            raise AssertionError("no loop_ready for the requested loop")
        key = message[2][0]["loop"]
        listed = session.request("library.list", "balcony_sunset")
        assert [e["key"] for e in listed] == [key]
        assert status(sock)["scene"]["scene"] == "study_room"   # the picture did not move
        with pytest.raises(Exception, match="seed must be"):
            session.request("generate", "x", {"seed": -1})
    finally:
        session.close()

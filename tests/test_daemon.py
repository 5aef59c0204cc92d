"""A running `lofid run --socket`, driven by `lofid ctl` and by pynvim's client; the
daemon's outputs with a real player."""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import threading
import time

import numpy as np
import pytest
from helpers import LOFID, holds_for, lofid, reap, running, wait_for
from media import write_tone_wav


@pytest.fixture
def daemon(tmp_path):
    with running(tmp_path, "-o", "null", "--realtime", "--size", "160x90",
                 "--scene", "study room") as d:
        yield d.proc, d.sock


def status(sock):
    r = lofid("ctl", "--socket", str(sock), "--json", "status")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.slow
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


@pytest.mark.slow
def test_ctl_events_waits_through_quiet_times(daemon):
    proc, sock = daemon
    watcher = subprocess.Popen([*LOFID, "ctl", "--socket", str(sock), "--json", "events",
                                "scene_changed"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Longer than a request's timeout, with nothing to report: still listening.
        assert holds_for(lambda: watcher.poll() is None, 6.5), watcher.stderr.read()
        assert lofid("ctl", "--socket", str(sock), "scene", "coffee shop").returncode == 0
        # On a busy machine the daemon's own first scene may only now be on the air:
        # its event comes first, then the one asked for.
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(ln) for ln in watcher.stdout],
                         daemon=True).start()
        deadline = time.monotonic() + 60
        while True:
            line = json.loads(lines.get(timeout=max(0.1, deadline - time.monotonic())))
            assert line["event"] == "scene_changed"
            if "coffee shop" in line["scene"]:
                break
            assert "study room" in line["scene"], line
    finally:
        reap(watcher)


@pytest.mark.slow
def test_a_second_daemon_on_the_same_socket_is_refused(daemon):
    _, sock = daemon
    r = lofid("run", "-o", "null", "--duration", "1", "--socket", str(sock))
    assert r.returncode == 2 and "already running" in r.stderr


@pytest.mark.slow
def test_ctl_without_a_daemon_says_so(tmp_path):
    r = lofid("ctl", "--socket", str(tmp_path / "none.sock"), "status")
    assert r.returncode == 1 and "no lofid answers" in r.stderr


@pytest.mark.slow
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


@pytest.mark.slow
def test_the_config_file_is_watched_and_a_bad_one_never_kills_the_daemon(tmp_path):
    import signal
    cfg = tmp_path / "lofid.toml"
    cfg.write_text('scene = "library"\nrotate = 600\n')
    with running(tmp_path, "-o", "null", "--realtime", "--size", "160x90",
                 "--config", cfg) as d:
        proc, sock = d.proc, d.sock
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
        assert d.stop() == 0
        assert "needs_restart ['fps']" in d.stderr()    # said, not silently ignored


@pytest.mark.slow
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


# --- outputs added and removed while playing ----------------------------------------

def read_video(path):
    """Decoded frames, pts (in frames) and which packets are keyframes, read back with PyAV."""
    import av
    import numpy as np
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        fps = v.average_rate or v.guessed_rate
        frames, pts, keys = [], [], []
        for packet in c.demux(v):
            if packet.pts is None:
                continue
            keys.append(packet.is_keyframe)
            for f in packet.decode():
                frames.append(f.to_ndarray(format="rgb24"))
                pts.append(round(f.pts * v.time_base * fps))
        return np.stack(frames), pts, keys


def events_until(session, predicate, timeout=60):
    """Notifications from `session` until one satisfies `predicate`; all of them."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = session.next_message()
        if message is not None:
            seen.append(message)
            if predicate(message):
                return seen
    raise AssertionError(f"no such event within {timeout} s; seen {seen}")


def start_run(tmp_path, *args):
    return running(tmp_path, "--realtime", "--size", "160x90", "--scene", "study room", *args)


@pytest.mark.slow
def test_an_output_added_and_removed_live_leaves_the_others_untouched(tmp_path):
    from pynvim.msgpack_rpc import socket_session
    import numpy as np
    first, second = tmp_path / "first.mp4", tmp_path / "second.mkv"
    with start_run(tmp_path, "-o", first, "--duration", "10") as d:
        sock = d.sock
        session = socket_session(str(sock))
        try:
            _add_and_remove(session, sock, tmp_path, first, second)
        finally:
            session.close()
        assert d.wait() == 0

    whole, pts, keys = read_video(first)
    assert len(whole) == 10 * 30 and pts == list(range(10 * 30))   # no gap, no repeat
    part, part_pts, part_keys = read_video(second)
    assert part_keys[0] and len(part) >= 60
    assert part_pts == list(range(len(part)))                       # its own zero
    # The very same pictures as the first file's, from one of its keyframes on. Exact: both
    # files hold the same encoded packets (one encoder feeds every .mp4/.mkv output), and
    # H.264 decoding is bit-exact by its standard.
    starts = [i for i in range(0, len(whole) - len(part) + 1, 60)
              if np.array_equal(whole[i], part[0])]
    assert starts and np.array_equal(whole[starts[0]:starts[0] + len(part)], part)


def _add_and_remove(session, sock, tmp_path, first, second):
    """Adds `second` beside `first` over `session`, checks what is refused, then
    removes it after its first keyframe."""
    session.request("subscribe", ["output_changed"])
    added = session.request("output.add", str(second))
    assert added["name"] == str(second)
    events_until(session, lambda m: m[2][0] == {"output": str(second), "state": "running",
                                                "detail": None})
    names = [o["name"] for o in session.request("output.list")]
    assert names == [str(first), str(second)]
    # Bad targets are refused with their name; the outputs playing go on.
    for target, says in ((str(second), "already playing"), ("ftp://example.org/x", "ftp://"),
                         (str(tmp_path / "no" / "such" / "x.mp4"), "no/such"),
                         ("null", "fullscreen")):
        with pytest.raises(Exception, match=says):
            session.request("output.add", target, *([{"fullscreen": "yes"}]
                                                    if target == "null" else []))
    with pytest.raises(Exception, match="no output called 'nothing'"):
        session.request("output.remove", "nothing")
    # Long enough for the first keyframe (one every 2 s) and 2.5 s more to reach it.
    t = status(sock)["clock"]["seconds"]
    wait_for(lambda: status(sock)["clock"]["seconds"] > t + 4.5)
    assert session.request("output.remove", str(second))["state"] == "closing"
    # "closing" at once (it has left the list), then "closed" once finalised.
    events_until(session, lambda m: m[2][0] == {"output": str(second), "state": "closing",
                                                "detail": None})
    assert [o["name"] for o in status(sock)["outputs"]] == [str(first)]
    events_until(session, lambda m: m[2][0]["output"] == str(second)
                 and m[2][0]["state"] == "closed")
    assert [o["name"] for o in status(sock)["outputs"]] == [str(first)]


@pytest.mark.slow
def test_a_reloaded_config_adds_and_removes_outputs(tmp_path):
    first, second = tmp_path / "first.mkv", tmp_path / "second.mkv"
    cfg = tmp_path / "lofid.toml"
    cfg.write_text(f'outputs = ["{first}"]\n')
    with start_run(tmp_path, "--config", cfg, "--duration", "30") as d:
        sock = d.sock
        cfg.write_text(f'outputs = ["{first}", "{second}", "ftp://example.org/x"]\n')
        # (The file watcher may have reloaded it first: then this one says "no change".)
        r = lofid("ctl", "--socket", str(sock), "reload")
        assert r.returncode == 0 and "needs a restart" not in r.stdout
        assert wait_for(lambda: [(o["name"], o["state"]) for o in status(sock)["outputs"]]
                        == [(str(first), "running"), (str(second), "running")])
        t = status(sock)["clock"]["seconds"]
        wait_for(lambda: status(sock)["clock"]["seconds"] > t + 4.5)
        cfg.write_text(f'outputs = ["{first}"]\n')
        assert lofid("ctl", "--socket", str(sock), "reload").returncode == 0
        assert wait_for(lambda: [o["name"] for o in status(sock)["outputs"]] == [str(first)])
        assert lofid("ctl", "--socket", str(sock), "stop").returncode == 0
        assert d.wait() == 0
        err = d.stderr()
        assert "ftp://example.org/x" in err
        assert "changed ['outputs'], needs_restart []" in err
    whole, pts, _ = read_video(first)
    assert pts == list(range(len(whole)))
    part, _, keys = read_video(second)
    assert keys[0] and len(part) >= 60


@pytest.mark.slow
def test_ctl_output_add_list_remove(daemon, tmp_path):
    _, sock = daemon
    out = tmp_path / "extra.mkv"
    ctl = ("ctl", "--socket", str(sock), "output")
    r = lofid(*ctl, "add", str(out))
    assert r.returncode == 0 and f"added output {out}" in r.stdout
    assert wait_for(lambda: f"output {out}: running" in lofid(*ctl, "list").stdout)
    bad = lofid(*ctl, "add", "ftp://example.org/x")
    assert bad.returncode == 2 and "ftp://example.org/x" in bad.stderr
    assert lofid(*ctl, "frobnicate").returncode == 2
    r = lofid(*ctl, "remove", str(out))
    assert r.returncode == 0 and "removing output" in r.stdout
    assert wait_for(lambda: str(out) not in lofid(*ctl, "list").stdout)
    # A window or a stream needs a paced run: this one is (a null output, --realtime).
    r = lofid("ctl", "--socket", str(sock), "prompt", "snowy", "balcony")
    assert r.returncode == 0 and "balcony" in r.stdout


@pytest.mark.slow
def test_an_unpaced_run_refuses_a_live_output(tmp_path):
    from pynvim.msgpack_rpc import socket_session
    with running(tmp_path, "-o", tmp_path / "fast.mkv", "--size", "160x90",
                 "--duration", "600") as d:
        session = socket_session(str(d.sock))
        try:
            with pytest.raises(Exception, match="udp://127.0.0.1:5999.*--realtime"):
                session.request("output.add", "udp://127.0.0.1:5999")
        finally:
            session.close()
        assert d.stop() == 0


# --- control over TCP: only when configured, only with a token -------------------------

def tcp_listeners(pid) -> list[int]:
    """Ports process `pid` listens on over TCP (from /proc)."""
    import os
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = []
    for table in ("tcp", "tcp6"):
        for line in open(f"/proc/net/{table}").read().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:
                ports.append(int(f[1].split(":")[1], 16))
    return ports


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_no_tcp_listener_by_default(daemon):
    proc, _ = daemon
    assert tcp_listeners(proc.pid) == []


@pytest.mark.slow
def test_control_over_tcp_takes_the_token(tmp_path):
    import os
    token = tmp_path / "token"
    token.write_text("tok-" + os.urandom(12).hex() + "\n")
    token.chmod(0o600)
    port = free_port()
    cfg = tmp_path / "lofid.toml"
    cfg.write_text(f'control_tcp = "127.0.0.1:{port}"\ncontrol_token_file = "{token}"\n')
    # TCP only: no Unix socket.
    tcp = ("ctl", "--tcp", f"127.0.0.1:{port}")
    with running(tmp_path, "-o", "null", "--realtime", "--size", "160x90", "--config", cfg,
                 sock=False, ready=lambda d: port in tcp_listeners(d.proc.pid)) as d:
        proc = d.proc
        r = lofid(*tcp, "--token-file", str(token), "--json", "status")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["scene"]["scene"] == "study_room"
        assert tcp_listeners(proc.pid) == [port]
        # The token from the environment, as a script would give it.
        env_run = lofid(*tcp, "scene", "library",
                        env={**os.environ, "LOFID_TOKEN": token.read_text()})
        assert env_run.returncode == 0 and "library" in env_run.stdout
        wrong = tmp_path / "wrong"
        wrong.write_text("not-the-token-0123456789")
        wrong.chmod(0o600)
        r = lofid(*tcp, "--token-file", str(wrong), "status")
        assert r.returncode == 2 and "wrong token" in r.stderr
        r = lofid(*tcp, "status",
                  env={k: v for k, v in os.environ.items() if k != "LOFID_TOKEN"})
        assert r.returncode == 2 and "--token-file" in r.stderr
        assert lofid(*tcp, "--token-file", str(token), "stop").returncode == 0
        assert proc.wait(timeout=60) == 0


@pytest.mark.slow
@pytest.mark.parametrize("config, mode, says", [
    ('control_tcp = "127.0.0.1:7601"\n', 0o600, "control_tcp = '127.0.0.1:7601' needs "
                                                "control_token_file"),
    ('control_tcp = "127.0.0.1:7601"\ncontrol_token_file = "TOKEN"\n', 0o644,
     "is readable by others"),
    ('control_tcp = "localhost"\ncontrol_token_file = "TOKEN"\n', 0o600, "expected HOST:PORT"),
])
def test_a_tcp_listener_without_a_safe_token_is_refused(tmp_path, config, mode, says):
    token = tmp_path / "token"
    token.write_text("tok-0123456789abcdef0123")
    token.chmod(mode)
    cfg = tmp_path / "lofid.toml"
    cfg.write_text(config.replace("TOKEN", str(token)))
    r = lofid("--library", str(tmp_path / "lib"), "run", "-o", "null", "--duration", "1",
              "--config", str(cfg))
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_relative_paths_are_the_clients(daemon, tmp_path):
    from pynvim.msgpack_rpc import socket_session
    _, sock = daemon
    session = socket_session(str(sock))
    try:
        with pytest.raises(Exception, match="'rel.mkv' is a relative path"):
            session.request("output.add", "rel.mkv")
    finally:
        session.close()
    # ctl makes it absolute from where it runs.
    r = lofid("ctl", "--socket", sock, "output", "add", "rel.mkv", cwd=tmp_path)
    assert r.returncode == 0 and f"added output {tmp_path / 'rel.mkv'}" in r.stdout
    assert wait_for(lambda: [o["state"] for o in status(sock)["outputs"]] == ["running"] * 2)


# --- OutputSet with a real player, in this process --------------------------------------

class OneLoop:
    """A loop source that plays one painted loop for ever."""

    def __init__(self):
        from lofid.generators import get
        from lofid.scene import parse
        self.loop = get("procedural")(parse("rainy window"), 3, (160, 90), 20, 10.0)

    def first(self):
        return self.loop

    def next_ready(self):
        return None


@contextlib.contextmanager
def playing(targets):
    """A real-time player of OneLoop to `targets`, on its own thread, with the OutputSet
    that adds and removes its outputs; stopped on leaving."""
    from fractions import Fraction
    from lofid.player.router import OutputSet
    from lofid.player import Player, PlayerSettings
    outputs = OutputSet()
    player = Player(OneLoop(), outputs.open(targets), None,
                    PlayerSettings(fps=Fraction(30), size=(160, 90), realtime=True))
    outputs.player = player
    runner = threading.Thread(target=player.run)
    runner.start()
    try:
        yield outputs, player
    finally:
        player.stop()
        runner.join(60)


def test_outputs_join_a_player_that_makes_no_packets_yet(tmp_path):
    """A player with only a WebM file (frames, no H.264) gets an MKV (packets) added:
    the loop on the air is encoded aside, and the MKV starts at its next keyframe."""
    from lofid.outputs.base import OutputError
    webm, mkv = tmp_path / "frames.webm", tmp_path / "packets.mkv"
    with playing([str(webm)]) as (outputs, player):
        wait_for(lambda: player.frame > 10)
        added = outputs.add(str(mkv))
        assert wait_for(lambda: added.state == "running")
        # The first keyframe (one every 2 s) and then some.
        n = player.frame
        wait_for(lambda: player.frame > n + 4 * 30)
        outputs.remove(str(mkv))
        # Removed, not yet finalised: the same file is not opened by a second writer.
        with pytest.raises(OutputError, match="still being finalised"):
            outputs.add(str(mkv))
        assert wait_for(lambda: added.state == "closed")
        assert [o["name"] for o in outputs.describe()] == [str(webm)]
    frames, pts, keys = read_video(mkv)
    assert keys[0] and len(frames) >= 30 and pts == list(range(len(frames)))
    whole, whole_pts, _ = read_video(webm)
    assert whole_pts == list(range(len(whole))) and len(whole) == player.frame


def test_a_frame_output_joins_a_player_that_made_only_packets(tmp_path):
    webm = tmp_path / "late.webm"
    with playing(["null"]) as (outputs, player):
        wait_for(lambda: player.frame > 10)
        added = outputs.add(str(webm))
        assert wait_for(lambda: added.state == "running")
        n = player.frame
        wait_for(lambda: player.frame > n + 30)
        outputs.remove(str(webm))
        assert wait_for(lambda: added.state == "closed")
    frames, pts, _ = read_video(webm)
    assert len(frames) >= 30 and pts == list(range(len(frames)))
    # The painted loop, not a blank: the picture moves.
    assert np.abs(frames[0].astype(int) - frames[15].astype(int)).mean() > 0.5

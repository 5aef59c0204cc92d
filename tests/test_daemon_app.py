"""The Daemon in-process: started, asked over its socket, stopped; and a start that
fails closes what it had opened."""

from __future__ import annotations

import json
import subprocess
import threading

import pytest

from lofid import generators
from lofid.settings.run import load
from lofid.control.client import Client
from lofid.daemon.app import Daemon, LoopMaker
from lofid.errors import UserError
from helpers import wait_for

SIZE = "96x64"


def _config(tmp_path, **over):
    return load(None, {"library": str(tmp_path / "lib"), "size": SIZE, "fps": 24, **over})


def _maker():
    return LoopMaker("procedural", generators.get("procedural"), (96, 64), 24)


def _ffprobe(path) -> dict:
    r = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-show_streams",
                        "-show_format", "-of", "json", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.slow
def test_a_daemon_starts_answers_on_its_socket_and_stops_in_process(tmp_path):
    out, sock = tmp_path / "out.mp4", tmp_path / "run" / "lofid.sock"
    cfg = _config(tmp_path, outputs=[str(out)], socket=str(sock), realtime=True)
    daemon = Daemon(cfg, _maker())
    result = {}
    runner = threading.Thread(target=lambda: result.update(rc=daemon.run(handle_signals=False)),
                              name="test daemon")
    runner.start()
    try:
        wait_for(lambda: sock.exists() or not runner.is_alive(), timeout=60)
        assert runner.is_alive(), "the daemon ended before its socket opened"
        client = Client(sock)
        try:
            status = wait_for(lambda: (s := client.call("status"))["clock"]["frame"] > 24 and s,
                              timeout=60)
        finally:
            client.sock.close()
        assert status["outputs"][0]["name"] == str(out)
        assert status["outputs"][0]["state"] == "running"
        assert status["clock"]["fps"] == 24.0
    finally:
        daemon.stop()
        runner.join(timeout=60)
    assert not runner.is_alive()
    assert result["rc"] == 0
    assert daemon.should_exit.is_set()
    assert not sock.exists()                       # the socket is gone with it
    # The file is finished: readable to its end, every frame the clock made is in it.
    info = _ffprobe(out)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    assert (video["width"], video["height"]) == (96, 64)
    assert int(video["nb_read_packets"]) == daemon.player.frame
    assert float(info["format"]["duration"]) > 1.0


def _lofid_threads():
    return {t for t in threading.enumerate() if t is not threading.main_thread()}


def test_a_start_that_fails_closes_what_it_had_opened(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cfg = _config(tmp_path, outputs=["null"], socket=str(blocker / "lofid.sock"))
    before = _lofid_threads()
    daemon = Daemon(cfg, _maker())
    with pytest.raises(UserError, match="not a folder"):
        daemon.startup()
    # The audio decoder, the output, the director: nothing keeps running.
    assert daemon.audio is not None and daemon.outputs is not None
    wait_for(lambda: _lofid_threads() <= before, timeout=10)
    opened = daemon.outputs.describe()
    assert opened and all(o["state"] == "closed" for o in opened)


def test_lofid_run_that_cannot_open_its_socket_leaves_no_thread_running(tmp_path):
    # The same through the command line, in this process (no subprocess hides a
    # thread left running).
    from lofid.cli import main
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    config = tmp_path / "lofid.toml"      # a config file: its watcher is started too
    config.write_text('scene = "rainy window"\n')
    before = _lofid_threads()
    rc = main(["--library", str(tmp_path / "lib"), "run", "--config", str(config),
               "-o", "null", "--size", SIZE, "--socket", str(blocker / "lofid.sock")])
    assert rc == 2
    try:
        wait_for(lambda: _lofid_threads() <= before, timeout=10)
    except AssertionError:
        left = sorted(t.name for t in _lofid_threads() - before)
        raise AssertionError(f"threads left running after the failed start: {left}") from None

"""A stuck output holds up nobody: `lofid run` with a file written into a FIFO whose
reader never reads, beside a UDP stream and a normal MP4. Real process, real FIFO,
real socket, the control socket's status as a user reads it."""

from __future__ import annotations

import fcntl
import os
import socket
import threading

import av
import pytest

from lofid.control.client import Client
from helpers import lofid, start_daemon, wait_for

# Every test here runs lofid as a process.
pytestmark = pytest.mark.slow

SMALL = ["--size", "320x180", "--scene", "rainy night, coffee shop"]
_F_SETPIPE_SZ = 1031


class UdpCounter(threading.Thread):
    """Counts the datagrams lofid sends, with the time of the last one."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.datagrams = 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                self.sock.recv(65536)
            except (socket.timeout, OSError):
                continue
            self.datagrams += 1

    def stop(self):
        self.halt.set()
        self.join(5)
        self.sock.close()


def _outputs(client) -> dict:
    return {o["name"]: o for o in client.call("status")["outputs"]}


def test_a_file_stuck_on_a_frozen_fifo_drops_for_itself_while_the_others_play_on(tmp_path):
    fifo = tmp_path / "stuck.mkv"
    os.mkfifo(fifo)
    # The reader: opened, never read. A small pipe fills at once.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        fcntl.fcntl(reader, _F_SETPIPE_SZ, 4096)
    except OSError:
        pass
    mp4 = tmp_path / "ok.mp4"
    udp = UdpCounter()
    udp.start()
    duration = 120          # an upper bound: the test stops it once it has seen enough
    d = None
    client = None
    try:
        d = start_daemon(tmp_path, "-o", fifo, "-o", f"udp://127.0.0.1:{udp.port}", "-o", mp4,
                         "--duration", duration, *SMALL, timeout=90)
        sock = d.sock
        client = Client(str(sock), timeout=10)
        # The FIFO's queue fills within seconds of stream: it says so, and counts.
        stuck = wait_for(lambda: (o := _outputs(client)[str(fifo)])["state"] == "stalled"
                         and o["dropped"] > 0 and o, 60)
        at_stall = client.call("status")["clock"]["seconds"]
        datagrams = udp.datagrams
        # Meanwhile the clock moves on, the stream gets its packets, and the other
        # outputs neither drop nor stall.
        wait_for(lambda: client.call("status")["clock"]["seconds"] >= at_stall + 3, 30)
        assert udp.datagrams > datagrams + 50
        outputs = _outputs(client)
        assert outputs[str(mp4)]["state"] == "running" and outputs[str(mp4)]["dropped"] == 0
        udp_out = next(o for n, o in outputs.items() if n.startswith("udp://"))
        # Not stalled with the fifo. On a machine busy with other work (three test
        # processes on two cores) the UDP queue may overflow for moments too, a few
        # dozen packets; what must not happen is its being stuck, dropping all the
        # fifo drops (every packet since its stall) and more.
        assert udp_out["state"] == "running"
        assert udp_out["dropped"] < outputs[str(fifo)]["dropped"] / 2
        assert outputs[str(fifo)]["dropped"] >= stuck["dropped"]
        # What a user reads from `lofid ctl status`.
        shown = d.ctl("status", timeout=60)
        assert shown.returncode == 0, shown.stderr
        line = next(ln for ln in shown.stdout.splitlines() if str(fifo) in ln)
        assert "stalled" in line and "dropped" in line, shown.stdout
        client.close()
        client = None
        returncode = d.stop(timeout=90)
        err = d.stderr()
    finally:
        if client is not None:
            client.close()
        if d is not None:
            d.close()
        udp.stop()
        os.close(reader)
    assert returncode == 0, err
    assert f"output {fifo}: stalled" in err
    # The MP4 beside it is whole: every frame of the run, one after the other, past the
    # moment the FIFO stalled.
    with av.open(str(mp4)) as c:
        v = c.streams.video[0]
        frames = sorted(round(pk.pts * v.time_base * 30) for pk in c.demux(v)
                        if pk.pts is not None)
    assert frames == list(range(len(frames)))
    assert len(frames) >= (at_stall + 3) * 30


def test_an_unpaced_run_waits_for_a_slow_file_and_loses_nothing(tmp_path):
    # Without a stream or --realtime a file gets every frame, however fast the player
    # runs: the run waits for the muxer. Two files, nothing dropped, all frames there.
    a, b = tmp_path / "a.mkv", tmp_path / "b.webm"
    r = lofid("--library", tmp_path / "lib", "run", "-o", a, "-o", b, "--duration", "6", *SMALL,
              timeout=400)
    assert r.returncode == 0, r.stderr
    assert "stalled" not in r.stderr
    for path in (a, b):
        with av.open(str(path)) as c:
            frames = sum(1 for _ in c.decode(video=0))
        assert frames == 6 * 30, path

"""Outputs that cannot work, as a user meets them with `lofid run`: a bad host is named
at once, and a run whose every output failed (disk full) says so and exits non-zero."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid

import av
import pytest
from helpers import lofid as _lofid, running, wait_for

# Every test here runs lofid as a process.
pytestmark = pytest.mark.slow

SMALL = ["--size", "320x180", "--scene", "rainy night, coffee shop"]


def lofid(tmp_path, *args, timeout=180):
    return _lofid("--library", tmp_path / "lib", *args, timeout=timeout)


def _no_such_name() -> str:
    """A name the resolver here says does not exist (.invalid never does, RFC 2606);
    skips where the resolver gives no answer at all (that is a failure for now,
    which lofid retries)."""
    name = f"lofid-{uuid.uuid4().hex[:8]}.invalid"
    try:
        socket.getaddrinfo(name, None)
    except socket.gaierror as e:
        if e.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            return name
        pytest.skip(f"the resolver here does not answer for {name}: {e}")
    pytest.skip(f"the resolver here claims {name} exists")


@pytest.mark.parametrize("host", ["256.256.256.256", "999.1.1.1", "bad_host!", "NXDOMAIN"])
def test_a_bad_host_is_named_and_a_run_with_no_other_output_exits_2(tmp_path, host):
    host = _no_such_name() if host == "NXDOMAIN" else host
    target = f"udp://{host}:5000"
    r = lofid(tmp_path, "run", "-o", target, "--duration", "3", *SMALL, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    line = next(ln for ln in r.stderr.splitlines() if host in ln)
    assert target in line and ("not a valid" in line or "cannot resolve" in line), r.stderr
    assert "no output can run" in r.stderr


def test_a_bad_host_beside_a_file_leaves_the_file_playing(tmp_path):
    out = tmp_path / "ok.mkv"
    r = lofid(tmp_path, "run", "-o", "udp://256.256.256.256:5000", "-o", str(out),
              "--duration", "2", *SMALL)
    assert r.returncode == 0, r.stderr
    assert "'256.256.256.256' is not a valid IPv4 address" in r.stderr
    assert "retrying" not in r.stderr
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.demux(video=0)) >= 2 * 30


@pytest.fixture(params=["tmpfs", "/dev/full"])
def full_disk(request, tmp_path):
    """A folder whose disk is full: a 64 KiB tmpfs (root only), or a name for /dev/full."""
    if request.param == "/dev/full":
        (tmp_path / "full.mp4").symlink_to("/dev/full")
        yield tmp_path / "full.mp4"
        return
    folder = tmp_path / "tiny"
    folder.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.strip()}")
    try:
        yield folder / "out.mp4"
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)


def test_a_run_whose_only_output_fills_the_disk_exits_1_saying_so(tmp_path, full_disk):
    r = lofid(tmp_path, "run", "-o", str(full_disk), "--duration", "20", *SMALL)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    line = next(ln for ln in r.stderr.splitlines() if "every output failed" in ln)
    assert str(full_disk) in line and "No space left on device" in line
    # It stopped when the last output failed, not at the end of its 20 s.
    played = next(ln for ln in r.stdout.splitlines() if ln.startswith("played"))
    assert float(played.split()[1]) < 20, played


def test_a_full_disk_beside_a_working_output_plays_on_and_exits_0(tmp_path, full_disk):
    ok = tmp_path / "ok.mkv"
    r = lofid(tmp_path, "run", "-o", str(full_disk), "-o", str(ok), "--duration", "3", *SMALL)
    assert r.returncode == 0, r.stderr
    assert f"output {full_disk}: failed" in r.stderr and "No space left" in r.stderr
    with av.open(str(ok)) as c:
        assert sum(1 for _ in c.demux(video=0)) >= 3 * 30
    assert os.path.getsize(ok) > 0


def test_with_a_control_socket_the_daemon_outlives_its_last_output(tmp_path):
    """A daemon with a control socket stays up when its only output dies: a client
    can still ask it what happened and give it a new output."""
    full = tmp_path / "full.mp4"
    full.symlink_to("/dev/full")
    ok = tmp_path / "ok.mkv"
    with running(tmp_path, "-o", full, "--realtime", *SMALL, sock=tmp_path / "s.sock") as d:
        wait_for(lambda: "failed" in d.ctl("output", "list").stdout, timeout=60)
        assert d.proc.poll() is None, d.stderr()
        assert d.ctl("output", "add", str(ok)).returncode == 0
        wait_for(lambda: ok.exists() and ok.stat().st_size > 10_000, timeout=60)
        assert d.ctl("stop").returncode == 0
        d.wait(timeout=30)
    with av.open(str(ok)) as c:
        assert sum(1 for _ in c.demux(video=0)) > 0

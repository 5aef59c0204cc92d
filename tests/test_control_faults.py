"""Faults around the control socket, with a real `lofid run --socket`: a shared folder
for the socket, more clients than file descriptors, config files that cannot be read,
and more `generate` requests than lofid makes at once."""

from __future__ import annotations

import errno
import json
import os
import resource
import socket
import stat
import threading
import time

import msgpack
import pytest
from helpers import lofid, start_daemon, wait_for

from lofid.control.client import Client, ControlError
from lofid.control.server import Server, SocketError, prepare_socket_path


def start(tmp_path, *args, preexec_fn=None):
    """`lofid run --socket` playing to null, once its socket answers."""
    d = start_daemon(tmp_path, "-o", "null", "--realtime", "--size", "160x90", *args,
                     preexec_fn=preexec_fn, timeout=60)
    return d, d.proc, d.sock


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and len(lines) == 1, stderr
    return lines[0]


def one_error_line(stderr: str) -> str:
    """The one line that says what was wrong (lofid run says what it started too)."""
    lines = [line for line in stderr.splitlines() if "error" in line]
    assert "Traceback" not in stderr and len(lines) == 1, stderr
    return lines[0]


# --- the socket's folder ---------------------------------------------------------------

def shared_folder(tmp_path):
    """A folder like /tmp: ours, sticky, everyone may write to it."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    return shared


@pytest.mark.slow
def test_a_shared_folder_is_refused_and_left_as_it_is(tmp_path):
    shared = shared_folder(tmp_path)
    r = lofid("run", "-o", "null", "--duration", "1", "--socket", str(shared / "lofid.sock"))
    assert r.returncode == 2
    line = one_error_line(r.stderr)
    assert str(shared) in line and "writable by others" in line and "lofid-" in line
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777      # sticky bit and all
    assert not (shared / "lofid.sock").exists()


def test_the_folder_the_refusal_suggests_works_and_the_shared_one_is_untouched(tmp_path):
    shared = shared_folder(tmp_path)
    with pytest.raises(SocketError) as refused:
        prepare_socket_path(shared / "lofid.sock")
    words = str(refused.value).split()
    suggested = words[words.index("--socket") + 1]
    assert suggested.startswith(str(shared) + "/")
    server = Server(suggested, {"status": lambda params: "ok"})
    server.start()
    try:
        client = Client(suggested)
        assert client.call("status") == "ok"
        client.close()
        # The folder lofid made for itself is private; the shared one is as it was.
        assert stat.S_IMODE(os.stat(os.path.dirname(suggested)).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(suggested).st_mode) == 0o600
        assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    finally:
        server.stop()


def test_an_existing_folder_only_we_can_write_to_is_used_unchanged(tmp_path):
    mine = tmp_path / "home"
    mine.mkdir()
    os.chmod(mine, 0o755)          # as many home folders are: others may look, not write
    server = Server(mine / "lofid.sock", {"status": lambda params: "ok"})
    server.start()
    try:
        assert Client(mine / "lofid.sock").call("status") == "ok"
        assert stat.S_IMODE((mine / "lofid.sock").stat().st_mode) == 0o600
        assert stat.S_IMODE(mine.stat().st_mode) == 0o755
    finally:
        server.stop()


# --- more clients than file descriptors -----------------------------------------------

def connect(sock) -> socket.socket:
    """A raw connection; while the daemon's backlog is full, connecting is tried again
    (a Unix socket with a timeout answers EAGAIN at once instead of waiting)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(10)
    wait_for(lambda: conn.connect_ex(str(sock)) in (0, errno.EISCONN), timeout=30)
    return conn


def read_message(conn, timeout=10.0):
    conn.settimeout(timeout)
    unpacker = msgpack.Unpacker(raw=False)
    while True:
        for message in unpacker:
            return message
        data = conn.recv(65536)
        if not data:
            return None
        unpacker.feed(data)


@pytest.mark.slow
def test_idle_connections_past_the_fd_limit_are_refused_and_lofid_serves_on(tmp_path):
    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    d, proc, sock = start(tmp_path, "--rotate", "2", preexec_fn=low_limit)
    idle: list[socket.socket] = []
    try:
        keeper = Client(sock, timeout=10)      # a client from before the crowd
        for _ in range(300):
            idle.append(connect(sock))
        # The newest was told why it is not served, and closed.
        message = read_message(idle[-1])
        assert message is not None and message[:2] == [2, "error"], message
        assert "control connections" in message[2][0] and "256" in message[2][0]
        assert read_message(idle[-1]) is None

        # The clients lofid took are served, and it still has descriptors for its work.
        t0 = time.monotonic()
        assert keeper.call("status")["outputs"][0]["state"] == "running"
        assert time.monotonic() - t0 < 5
        video = tmp_path / "while-crowded.mkv"
        assert keeper.call("output.add", str(video))["name"]
        wait_for(lambda: any(o["target"] == str(video) and o["state"] == "running"
                             for o in keeper.call("output.list")), timeout=30)
        wait_for(lambda: video.exists() and video.stat().st_size > 0, timeout=30)
        keeper.call("output.remove", str(video))
        wait_for(lambda: all(o["target"] != str(video) for o in keeper.call("output.list")))
        keeper.call("generate", "balcony sunset", {"seed": 5})
        wait_for(lambda: keeper.call("library.list", "balcony_sunset"), timeout=60)

        # A new client, as a user runs it: one line saying why, no traceback.
        r = lofid("ctl", "--socket", str(sock), "status")
        assert r.returncode == 2
        assert "control connections" in one_line(r.stderr)
        # Once the crowd leaves, new clients are taken again.
        for conn in idle:
            conn.close()
        wait_for(lambda: lofid("ctl", "--socket", str(sock), "status").returncode == 0)
        keeper.close()
    finally:
        for conn in idle:
            conn.close()
        d.close()
    assert proc.returncode == 0
    text = d.stderr()
    assert video.stat().st_size > 0
    assert "Traceback" not in text
    assert len(text) < 20_000, f"{len(text)} bytes of log"
    # Said once, not for each of the 170 refused (again with a count after a minute).
    assert 1 <= text.count("refused a control connection") <= 2


@pytest.mark.slow
def test_running_out_of_descriptors_is_logged_once_not_in_a_loop(tmp_path):
    d, proc, sock = start(tmp_path, "--rotate", "600")
    idle: list[socket.socket] = []
    try:
        keeper = Client(sock, timeout=10)
        # Once the next loop is ready lofid needs no new descriptors for a while.
        wait_for(lambda: keeper.call("status")["generator"]["ready"] >= 1, timeout=60)
        # The limit drops below what the cap (set from the limit at start) allows:
        # accepting fails with EMFILE while clients wait.
        in_use = len(os.listdir(f"/proc/{proc.pid}/fd"))
        resource.prlimit(proc.pid, resource.RLIMIT_NOFILE, (in_use + 8, in_use + 8))
        for _ in range(40):
            idle.append(connect(sock))
        # The daemon is out of descriptors, with clients waiting: some seconds of it.
        wait_for(lambda: len(os.listdir(f"/proc/{proc.pid}/fd")) >= in_use + 8, timeout=30)
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            assert keeper.call("output.list")[0]["state"] == "running"
        for conn in idle:
            conn.close()
        keeper.close()
    finally:
        for conn in idle:
            conn.close()
        d.close()
    text = d.stderr()
    assert "Traceback" not in text and len(text) < 20_000, text[-2000:]
    said = [line for line in text.splitlines() if "Too many open files" in line]
    assert len([line for line in said if "control connection" in line]) == 1, said
    assert len(said) <= 10, said    # the library's own writes may fail too, but not in a loop


# --- config files that cannot be read ----------------------------------------------------

def deeply_nested() -> str:
    return "scene = " + "[" * 2000 + '"x"' + "]" * 2000 + "\n"


BAD_CONFIGS = {
    "binary": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\xfd",
    "nested": deeply_nested().encode(),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(BAD_CONFIGS))
def test_an_unreadable_config_is_one_line_and_exit_2(tmp_path, kind):
    cfg = tmp_path / "lofid.toml"
    cfg.write_bytes(BAD_CONFIGS[kind])
    r = lofid("run", "--config", str(cfg), "-o", "null", "--duration", "1")
    assert r.returncode == 2
    line = one_error_line(r.stderr)
    assert str(cfg) in line and ("not text" in line if kind == "binary" else "nests" in line)


@pytest.mark.slow
def test_an_unreadable_config_on_reload_keeps_the_old_one_and_says_why(tmp_path):
    cfg = tmp_path / "lofid.toml"
    cfg.write_text('scene = "rooftop night"\nrotate = 600\n')
    d, proc, sock = start(tmp_path, "--config", str(cfg))
    listener = Client(sock, timeout=30)
    try:
        listener.call("subscribe", ["config_reloaded"])
        for kind, says in (("binary", "not text"), ("nested", "nests")):
            cfg.write_bytes(BAD_CONFIGS[kind])
            r = lofid("ctl", "--socket", str(sock), "reload")
            assert r.returncode == 2 and says in one_line(r.stderr)
            # The reload (the file watcher's, then ctl's) is reported with its reason.
            while True:
                event = listener.receive()
                assert event[:2] == [2, "config_reloaded"]
                if event[2][0]["ok"] is False and says in event[2][0]["error"]:
                    break
            s = json.loads(lofid("ctl", "--socket", str(sock), "--json", "status").stdout)
            assert says in s["config"]["error"]
            assert s["scene"]["scene"] == "rooftop_night"       # the old config stays
        # A good file again: taken, and the error is gone.
        cfg.write_text('scene = "kitchen"\nrotate = 600\n')
        r = lofid("ctl", "--socket", str(sock), "reload")
        assert r.returncode == 0, r.stderr
        # The new scene comes with its loop's crossfade, a moment after the reply.
        s = wait_for(lambda: (lambda s: s if s["scene"]["scene"].startswith("kitchen") else None)(
            json.loads(lofid("ctl", "--socket", str(sock), "--json", "status").stdout)), 60)
        assert s["config"]["error"] is None
        assert proc.poll() is None
    finally:
        listener.close()
        d.close()
    err = d.stderr()
    assert "Traceback" not in err, err[-3000:]


# --- more generate requests than lofid makes at once --------------------------------------

def threads_of(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return 0


class PeakThreads:
    """The most threads a process had while sampled (every few ms, in a thread)."""

    def __init__(self, pid: int):
        self.pid, self.peak = pid, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self):
        while not self._done.is_set():
            self.peak = max(self.peak, threads_of(self.pid))
            time.sleep(0.003)

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return self.peak


def ready_events(listener, seeds: set[int], timeout=300) -> set[int]:
    """The seeds of `seeds` whose loop_ready came, waiting until all have."""
    done: set[int] = set()
    deadline = time.monotonic() + timeout
    while done != seeds and time.monotonic() < deadline:
        _, name, payload = listener.receive()
        assert name != "generation_failed" or "balcony" not in payload[0]["scene"], payload
        if name == "loop_ready" and payload[0]["seed"] in seeds:
            done.add(payload[0]["seed"])
    return done


@pytest.mark.slow
def test_generate_requests_queue_with_a_bound(tmp_path):
    d, proc, sock = start(tmp_path, "--rotate", "600")
    try:
        listener = Client(sock, timeout=120)
        listener.call("subscribe", ["loop_ready", "generation_failed"])
        # The director's own loops made (two ahead): from here it makes none for a while.
        wait_for(lambda: listener.call("status")["generator"]["ready"] >= 2, timeout=120)

        # One request, for reference: the threads one generation takes (the encoder
        # that writes a loop into the library runs several, as many as there are cores).
        sampler = PeakThreads(proc.pid)
        listener.call("generate", "balcony sunset", {"seed": 999})
        assert ready_events(listener, {999}) == {999}
        one = sampler.stop()

        n = 30
        sampler = PeakThreads(proc.pid)
        gate = threading.Barrier(n)
        answers: dict[int, object] = {}

        def ask(seed):
            client = Client(sock, timeout=30)
            try:
                gate.wait()
                answers[seed] = client.call("generate", "balcony sunset", {"seed": seed})
            except ControlError as e:
                answers[seed] = e
            finally:
                client.close()
        askers = [threading.Thread(target=ask, args=(1000 + i,)) for i in range(n)]
        for t in askers:
            t.start()
        for t in askers:
            t.join(timeout=60)
        accepted = {seed for seed, a in answers.items() if isinstance(a, dict)}
        refused = [a for a in answers.values() if isinstance(a, ControlError)]
        assert len(answers) == n
        # The rest were told the limit; the queue's worth at least was taken.
        assert refused and all("requests are already waiting" in str(e) for e in refused)
        limit = int(str(refused[0]).split("generate: ")[1].split()[0])
        assert limit <= len(accepted) < n

        # Every accepted request ends in the library, one after another: never more
        # threads than for one (a couple more for the director's own work).
        assert ready_events(listener, accepted) == accepted
        many = sampler.stop()
        assert many <= one + 2, (one, many)
        listed = listener.call("library.list", "balcony_sunset")
        assert {e["seed"] for e in listed} == accepted | {999}
        listener.close()
    finally:
        d.close()


def test_strangers_on_tcp_cannot_take_every_place(tmp_path):
    token = "s3cret-token-0123456789abcdef"
    server = Server(tmp_path / "run" / "lofid.sock", {"status": lambda params: "ok"},
                    tcp=("127.0.0.1", 0), token=token)
    server.max_clients = 8            # as with a limit of 16 open files: 2 for strangers
    server.start()
    strangers = []
    try:
        for _ in range(2):
            strangers.append(socket.create_connection(server.tcp_address, timeout=10))
        wait_for(lambda: len(server.connections) == 2)
        late = socket.create_connection(server.tcp_address, timeout=10)
        strangers.append(late)
        message = read_message(late)
        assert message[:2] == [2, "error"] and "authenticate" in message[2][0]
        # The user's own clients still get in by the Unix socket.
        assert Client(server.path).call("status") == "ok"
    finally:
        for conn in strangers:
            conn.close()
        server.stop()

"""The control socket: real Unix sockets, raw msgpack clients and pynvim's client."""

from __future__ import annotations

import os
import socket
import stat
import time

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lofid.control.protocol import E_AUTH, E_FAILED, E_INVALID, E_NO_METHOD, MAX_MESSAGE, RpcError
from lofid.control.server import AlreadyRunning, Server, SocketError, prepare_socket_path


def handlers():
    def scene_set(params):
        if len(params) != 1 or not isinstance(params[0], str):
            raise RpcError("scene.set takes one text")
        return {"scene": params[0]}

    def boom(params):
        raise ZeroDivisionError("division by zero")

    return {"status": lambda params: {"ok": True, "n": len(params)}, "scene.set": scene_set,
            "boom": boom}


@pytest.fixture
def server(tmp_path):
    # Unix socket paths are short (108 bytes): keep the folder near the root.
    folder = tmp_path / "run"
    s = Server(folder / "lofid.sock", handlers())
    s.start()
    yield s
    s.stop()


class Client:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(str(path))
        self.unpacker = msgpack.Unpacker(raw=False)
        self.next_id = 1

    @classmethod
    def tcp(cls, address):
        c = cls.__new__(cls)
        c.sock = socket.create_connection(address, timeout=5)
        c.unpacker = msgpack.Unpacker(raw=False)
        c.next_id = 1
        return c

    def send(self, message):
        self.sock.sendall(msgpack.packb(message, use_bin_type=True))

    def receive(self):
        while True:
            for message in self.unpacker:
                return message
            data = self.sock.recv(65536)
            if not data:
                return None       # the server closed the connection
            self.unpacker.feed(data)

    def request(self, method, *params):
        msgid, self.next_id = self.next_id, self.next_id + 1
        self.send([0, msgid, method, list(params)])
        reply = self.receive()
        assert reply[0] == 1 and reply[1] == msgid
        return reply[2], reply[3]

    def close(self):
        self.sock.close()


def test_requests_are_answered_by_id(server):
    c = Client(server.path)
    assert c.request("status") == (None, {"ok": True, "n": 0})
    assert c.request("scene.set", "rainy night") == (None, {"scene": "rainy night"})
    # Pipelined requests come back matched to their ids.
    c.send([0, 10, "status", [1]])
    c.send([0, 11, "status", [1, 2]])
    assert [c.receive()[1:] for _ in range(2)] == [[10, None, {"ok": True, "n": 1}],
                                                  [11, None, {"ok": True, "n": 2}]]
    c.close()


def test_errors_name_what_was_wrong(server):
    c = Client(server.path)
    err, _ = c.request("nope")
    assert err[0] == E_NO_METHOD and "nope" in err[1] and "status" in err[1]
    err, _ = c.request("scene.set", 42)
    assert err == [E_INVALID, "scene.set takes one text"]
    err, _ = c.request("boom")
    assert err[0] == E_FAILED and "ZeroDivisionError" in err[1]
    c.send([0, 5, "status"])                 # three elements: not a request
    assert c.receive()[1:3] == [5, [E_INVALID, "a request is [0, id, method, params]"]]
    c.send([0, 6, "status", "not a list"])
    reply = c.receive()
    assert reply[1] == 6 and "array" in reply[2][1]
    # After all that the connection still works.
    assert c.request("status")[0] is None
    c.close()


def test_pynvim_is_a_client_too(server):
    from pynvim.msgpack_rpc import socket_session
    session = socket_session(str(server.path))
    try:
        assert session.request("status", 1, 2) == {"ok": True, "n": 2}
        with pytest.raises(Exception, match="unknown method 'nope'"):
            session.request("nope")
    finally:
        session.close()


def test_subscribers_get_events_others_do_not(server):
    a, b = Client(server.path), Client(server.path)
    assert a.request("subscribe", ["scene_changed"]) == (None, ["scene_changed"])
    assert b.request("status")[0] is None
    server.notify("scene_changed", {"scene": "coffee shop"})
    server.notify("loop_ready", {"loop": "x"})        # a is not subscribed to this one
    assert a.receive() == [2, "scene_changed", [{"scene": "coffee shop"}]]
    b.sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        b.receive()
    assert a.request("unsubscribe", "scene_changed") == (None, [])
    assert a.request("subscribe", ["*"]) == (None, ["*"])
    server.notify("loop_ready", {"loop": "y"})
    assert a.receive() == [2, "loop_ready", [{"loop": "y"}]]


@pytest.mark.parametrize("garbage", [
    b"\xc1",                                  # never valid msgpack
    msgpack.packb({"not": "a list"}),
    msgpack.packb([1, 2, None, None]),        # a response from a client
    msgpack.packb([7, "x", []]),
    msgpack.packb("just a string"),
])
def test_a_bad_message_closes_only_that_connection(server, garbage):
    bad, good = Client(server.path), Client(server.path)
    bad.sock.sendall(garbage)
    assert bad.receive() is None              # closed: nothing to answer by id
    assert good.request("status")[0] is None


def test_a_message_over_the_limit_closes_the_connection(server):
    big, good = Client(server.path), Client(server.path)
    try:
        big.send([0, 1, "status", ["x" * (MAX_MESSAGE + 10)]])
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert big.receive() is None
    assert good.request("status")[0] is None


def test_a_client_that_never_reads_is_dropped(server):
    slow, good = Client(server.path), Client(server.path)
    slow.request("subscribe", ["*"])
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    for i in range(3000):
        server.notify("generation_progress", {"i": i, "pad": "x" * 2000})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(server.connections) > 1:
        time.sleep(0.05)
    assert len(server.connections) == 1       # the slow one is gone...
    assert good.request("status")[0] is None  # ...and the others never waited


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300) | st.builds(
    lambda x: msgpack.packb(x, use_bin_type=True),
    st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.text(max_size=20),
                 lambda inner: st.lists(inner, max_size=5), max_leaves=12)))
def test_fuzz_the_server_survives_anything(server, data):
    c = Client(server.path)
    try:
        c.sock.sendall(data)
        c.sock.shutdown(socket.SHUT_WR)
        c.sock.settimeout(2)
        while c.sock.recv(65536):
            pass
    except OSError:
        pass
    finally:
        c.close()
    probe = Client(server.path)
    assert probe.request("status")[0] is None
    probe.close()


def test_socket_and_folder_permissions(server):
    assert stat.S_IMODE(server.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(server.path.parent.stat().st_mode) == 0o700


def test_a_live_daemon_is_not_replaced_a_dead_one_is(tmp_path, server):
    with pytest.raises(AlreadyRunning, match="already running"):
        Server(server.path, handlers()).start()
    # A socket file left by a daemon that died: nobody answers, so it is replaced.
    stale = tmp_path / "stale" / "lofid.sock"
    stale.parent.mkdir(mode=0o700)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()
    fresh = Server(stale, handlers())
    fresh.start()
    try:
        assert Client(stale).request("status")[0] is None
    finally:
        fresh.stop()
    assert not stale.exists()                 # removed on stop


def test_unsafe_places_are_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(SocketError, match="symlink"):
        prepare_socket_path(link / "lofid.sock")
    (real / "lofid.sock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SocketError, match="symlink"):
        prepare_socket_path(real / "lofid.sock")
    if os.getuid() == 0:
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o700)
        os.chown(theirs, 12345, 12345)
        with pytest.raises(SocketError, match="belongs to uid 12345"):
            prepare_socket_path(theirs / "lofid.sock")


# --- TCP: only when configured, and only with a token ---------------------------------

TOKEN = "s3cret-token-0123456789abcdef"


@pytest.fixture
def tcp_server(tmp_path):
    s = Server(tmp_path / "run" / "lofid.sock", handlers(), tcp=("127.0.0.1", 0), token=TOKEN)
    s.start()
    yield s
    s.stop()


def test_no_tcp_listener_unless_asked(server):
    assert server.tcp_address is None
    listening = open("/proc/net/tcp").read() + open("/proc/net/tcp6").read()
    pid_inodes = {os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                  if os.path.exists(f"/proc/self/fd/{fd}")}
    sockets = {i.split("[")[1].rstrip("]") for i in pid_inodes if i.startswith("socket:")}
    # No listening TCP socket (state 0A) belongs to this process.
    for line in listening.splitlines()[1:]:
        fields = line.split()
        assert not (fields[3] == "0A" and fields[9] in sockets)


def test_a_tcp_listener_needs_a_token_to_start():
    with pytest.raises(SocketError, match="without a token"):
        Server(None, handlers(), tcp=("127.0.0.1", 0))


def test_tcp_wants_the_right_token_first(tcp_server):
    address = tcp_server.tcp_address
    # Anything before auth: an error reply, then the connection is closed.
    c = Client.tcp(address)
    err, _ = c.request("status")
    assert err == [E_AUTH, "the first request on a TCP connection must be auth(token)"]
    assert c.receive() is None
    # A wrong token (or none): the same.
    for wrong in ([TOKEN[:-1] + "x"], [], [b"bytes-not-the-token"], [None]):
        c = Client.tcp(address)
        err, _ = c.request("auth", *wrong)
        assert err[0] == E_AUTH and c.receive() is None
    # A notification first: nothing to answer, closed.
    c = Client.tcp(address)
    c.send([2, "status", []])
    assert c.receive() is None
    # The right token: then everything as on the Unix socket, events too.
    c = Client.tcp(address)
    assert c.request("auth", TOKEN) == (None, True)
    assert c.request("status") == (None, {"ok": True, "n": 0})
    assert c.request("subscribe", ["scene_changed"]) == (None, ["scene_changed"])
    tcp_server.notify("scene_changed", {"scene": "library"})
    assert c.receive() == [2, "scene_changed", [{"scene": "library"}]]
    c.close()
    # The Unix socket takes no token, and auth there is accepted.
    u = Client(tcp_server.path)
    assert u.request("status")[0] is None and u.request("auth", "anything") == (None, True)
    u.close()


def test_a_tcp_client_that_never_authenticates_is_dropped(tcp_server):
    tcp_server.auth_timeout = 0.3
    good = Client.tcp(tcp_server.tcp_address)
    assert good.request("auth", TOKEN) == (None, True)
    silent = Client.tcp(tcp_server.tcp_address)
    silent.sock.settimeout(10)
    assert silent.receive() is None           # closed by the server, not by a timeout here
    # The one that authenticated, connected earlier, is past its limit too and stays.
    assert good.request("status")[0] is None

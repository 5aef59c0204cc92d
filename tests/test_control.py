"""lofid/control/: the client keeps events that come during a call, every method's
params are checked from one description, and the event names are the same everywhere
(the emitting modules, the Neovim plugin)."""

from __future__ import annotations

import json
import re
import select
import subprocess
from pathlib import Path

import pytest

from lofid.control import events
from lofid.control.api import METHODS, Control
from lofid.control.client import Client, ControlError
from lofid.control.protocol import E_INVALID, NOTIFY, RESPONSE, request, unpacker
from lofid.control.server import Server

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path / "run" / "lofid.sock", {"status": lambda params: {"ok": True}})
    s.start()
    yield s
    s.stop()


# --- the client --------------------------------------------------------------------------

def test_events_that_come_while_a_call_waits_are_kept(server):
    client = Client(server.path)
    try:
        assert client.call("subscribe", [events.LOOP_READY, events.SCENE_CHANGED]) \
            == [events.LOOP_READY, events.SCENE_CHANGED]
        server.notify(events.LOOP_READY, {"loop": "a"})
        server.notify(events.SCENE_CHANGED, {"scene": "library"})
        # Both are on their way before the call: the call reads them first.
        assert select.select([client.sock], [], [], 10)[0]
        assert client.call("status") == {"ok": True}
        assert client.receive() == [NOTIFY, events.LOOP_READY, [{"loop": "a"}]]
        assert client.receive() == [NOTIFY, events.SCENE_CHANGED, [{"scene": "library"}]]
        # And what comes after is read from the socket as before.
        server.notify(events.LOOP_READY, {"loop": "b"})
        assert client.receive() == [NOTIFY, events.LOOP_READY, [{"loop": "b"}]]
    finally:
        client.close()


# --- the methods' params -----------------------------------------------------------------

# (method, params, what the error must name): none of these reaches the daemon's parts.
BAD = [
    ("status", ["extra"], "no params"),
    ("next", [1], "no params"),
    ("scene.set", [], "scene"),
    ("scene.set", [3], "scene"),
    ("scene.set", ["a", "b"], "scene"),
    ("audio.prompt", [5], "prompt"),
    ("audio.prompt", ["rain", "soon"], "options"),
    ("audio.prompt", ["rain", {"starts_in": -1}], "starts_in"),
    ("audio.prompt", ["rain", {"starts_in": True}], "starts_in"),
    ("audio.prompt", ["rain", {"duration_sec": 1e9}], "duration_sec"),
    ("audio.prompt", ["rain", {"start_at": "now"}], "start_at"),
    ("audio.track", [None], "path"),
    ("audio.track", ["/a.wav", {"track_id": 7}], "track_id"),
    ("audio.track", ["/a.wav", {"prompt": ["rain"]}], "prompt"),
    ("generate", ["rain", 5], "options"),
    ("generate", ["rain", {"seed": -1}], "seed"),
    ("generate", ["rain", {"seed": 1.5}], "seed"),
    ("library.list", [3], "scene"),
    ("output.add", [], "target"),
    ("output.add", ["/x.mkv", "fullscreen"], "options"),
    ("output.remove", [{}], "name"),
]


@pytest.mark.parametrize("method, params, names", BAD)
def test_bad_params_get_an_error_naming_the_param(tmp_path, method, params, names):
    # No director, player, library or outputs: a request whose params are wrong is
    # answered before any of them would be used.
    control = Control(None, None, None, None)
    server = Server(tmp_path / "run" / "lofid.sock", control.handlers())
    server.start()
    client = Client(server.path)
    try:
        with pytest.raises(ControlError) as refused:
            client.call(method, *params)
        message = str(refused.value)
        assert message.startswith(method) and names in message, message
        assert "failed" not in message        # a checked refusal, not a method that broke
        assert client.call("subscribe", ["*"]) == ["*"]    # the connection goes on
    finally:
        client.close()
        server.stop()


def test_the_error_code_of_bad_params_is_invalid(tmp_path):
    import socket
    server = Server(tmp_path / "run" / "lofid.sock", Control(None, None, None, None).handlers())
    server.start()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    try:
        sock.connect(str(server.path))
        sock.sendall(request(7, "generate", ["rain", {"seed": -1}]))
        reader = unpacker()
        while True:
            reader.feed(sock.recv(65536))
            replies = list(reader)
            if replies:
                break
        assert replies == [[RESPONSE, 7, [E_INVALID, "generate: seed must be a whole number "
                                                     ">= 0, got -1"], None]]
    finally:
        sock.close()
        server.stop()


def test_every_method_described_is_served_and_documented():
    handlers = Control(None, None, None, None).handlers()
    assert set(handlers) == set(METHODS)
    readme = (REPO / "README.md").read_text()
    table = {name for line in readme.splitlines() if line.startswith("| `")
             for name in re.findall(r"`([a-z.]+)`", line.split("|")[1])}
    assert set(METHODS) <= table, set(METHODS) - table


# --- event names -------------------------------------------------------------------------

def test_every_event_lofid_emits_is_named_in_events():
    # Calls that emit an event with its name written out: on_event("x", ...),
    # self._event("x", ...), server.notify("x", ...).
    emit = re.compile(r'(?:\bon_event|\._event|\.notify)\(\s*"([a-z_]+)"')
    named = re.compile(r'(?:\bon_event|\._event|\.notify)\(\s*events\.([A-Z_]+)\b')
    seen: set[str] = set()
    for path in (REPO / "lofid").rglob("*.py"):
        text = path.read_text()
        seen |= set(emit.findall(text))
        seen |= {getattr(events, constant) for constant in named.findall(text)}
    assert seen, "no event emitted anywhere: the patterns above are out of date"
    assert seen <= set(events.ALL), seen - set(events.ALL)


def nvim_lua(code: str) -> str:
    from test_nvim_plugin import NVIM
    if NVIM is None:
        pytest.skip("no Neovim")
    r = subprocess.run([NVIM, "--headless", "--clean", "--cmd", f"set rtp^={REPO}",
                        "-c", f"lua {code}", "-c", "qa!"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout + r.stderr


@pytest.mark.slow
def test_the_plugin_knows_the_same_events():
    out = nvim_lua("io.stdout:write(vim.json.encode(require('lofi_vision').events))")
    lua = json.loads(out)
    assert len(lua) == len(set(lua))
    assert set(lua) == set(events.ALL)


@pytest.mark.slow
def test_the_plugin_refuses_an_event_lofid_never_sends():
    out = nvim_lua("local ok, err = pcall(require('lofi_vision').on, 'scene_chnaged', "
                   "function() end); io.stdout:write(tostring(ok) .. ' ' .. tostring(err))")
    assert out.startswith("false") and "unknown event \"scene_chnaged\"" in out
    assert "scene_changed" in out        # the message lists the right names

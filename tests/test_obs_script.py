"""The OBS script's own parts, outside OBS: its msgpack codec against the msgpack
package, and its client against a real running lofid (Unix socket and TCP with the
token), with its own codec and with the package's. OBS itself: test_obs_studio.py."""

from __future__ import annotations

import importlib.util
import math
import queue
import socket
import time
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings, strategies as st

from helpers import holds_for, start_daemon, wait_for
from lofid.control import protocol

SCRIPT = Path(__file__).resolve().parent.parent / "plugins" / "obs" / "lofid_obs.py"


def load_script():
    """The script as OBS loads it: a file, not a package (obspython is missing here)."""
    spec = importlib.util.spec_from_file_location("lofid_obs_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


script = load_script()


# --------------------------------------------------------------------------- the codec

# Every value msgpack can carry that the script may meet: ints over the whole 64-bit
# range (each width's boundaries), floats, text, bytes, nested arrays and maps.
values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1)
    | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=20)
    | st.dictionaries(st.text(max_size=10) | st.integers(-2**40, 2**40), inner, max_size=20),
    max_leaves=60)


@settings(max_examples=60, deadline=None)
@given(values)
def test_the_codec_packs_as_msgpack_does_and_reads_back_what_it_packs(value):
    ours = script.packb_own(value)
    # msgpack picks the smallest form of each value, and so does the codec: the same
    # bytes, not merely the same value.
    assert ours == msgpack.packb(value, use_bin_type=True)
    assert msgpack.unpackb(ours, raw=False, strict_map_key=False) == value
    assert script.unpackb(ours) == value


@settings(max_examples=60, deadline=None)
@given(values)
def test_the_codec_reads_what_msgpack_packs(value):
    assert script.unpackb(msgpack.packb(value, use_bin_type=True)) == value


@pytest.mark.parametrize("number", [
    0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1,
    -1, -32, -33, -128, -129, -32768, -32769, -2**31, -2**31 - 1, -2**63])
def test_each_integer_width_at_its_boundaries(number):
    packed = msgpack.packb(number)
    assert script.packb_own(number) == packed
    assert script.unpackb(packed) == number
    assert type(script.unpackb(packed)) is int


def test_the_number_types_lofid_sends_come_out_as_lofid_meant_them():
    # A status reply as the daemon packs it (lofid.control.protocol): whole numbers
    # (frames, bytes, a seed up to 2**32), fractions (seconds, fps), bools, nil.
    status = {"uptime_s": 12.345, "clock": {"frame": 2**31 + 7, "seconds": 1e9 + 0.25,
                                           "fps": 30.0},
              "paused": False, "loop": None, "library": {"loops": 3, "bytes": 5 * 2**30},
              "seed": 2**32 - 1, "outputs": [{"name": "udp://127.0.0.1:5000", "dropped": 0}]}
    message = protocol.response(7, None, status)
    kind, msgid, error, result = script.unpackb(message)
    assert (kind, msgid, error) == (protocol.RESPONSE, 7, None)
    assert result == status
    assert type(result["clock"]["fps"]) is float and type(result["clock"]["frame"]) is int
    assert type(result["paused"]) is bool
    # float32, which lofid does not send but another msgpack writer might.
    assert script.unpackb(msgpack.packb(1.5, use_single_float=True)) == 1.5
    nan = script.unpackb(msgpack.packb(float("nan")))
    assert math.isnan(nan)
    # What the script sends is what lofid's server reads.
    request = script.packb_own([0, 3, "scene.set", ["rainy night, coffee shop"]])
    unpacker = protocol.unpacker()
    unpacker.feed(request)
    assert protocol.classify(next(unpacker)) == protocol.Request(3, "scene.set",
                                                                 ["rainy night, coffee shop"])


def test_an_extension_value_goes_both_ways():
    ext = msgpack.ExtType(5, b"\x00\x01\x02")
    assert script.unpackb(msgpack.packb(ext)) == ext
    assert script.packb_own(script.ExtType(5, b"\x00\x01\x02")) == msgpack.packb(ext)


def test_the_stream_unpacker_hands_out_whole_messages_however_the_bytes_arrive():
    messages = [[2, "scene_changed", [{"scene": "coffee shop, rain, night", "seed": 2**33}]],
                [1, 1, None, {"text": "x" * 70000}], [1, 2, [3, "no such method"], None]]
    data = b"".join(msgpack.packb(m, use_bin_type=True) for m in messages)
    stream = script.StreamUnpacker()
    seen = []
    for i in range(0, len(data), 997):       # pieces that split values in two
        stream.feed(data[i:i + 997])
        seen.extend(stream)
    assert seen == messages
    assert not stream.buf


def test_bytes_that_are_not_msgpack_and_oversized_messages_are_refused():
    with pytest.raises(ValueError, match="0xc1"):
        script.unpackb(b"\xc1")
    with pytest.raises(ValueError, match="extra bytes"):
        script.unpackb(b"\x01\x02")
    stream = script.StreamUnpacker(max_buffer_size=100)
    with pytest.raises(ValueError, match="over 100 bytes"):
        stream.feed(b"\xdb\xff\xff\xff\xff" + b"x" * 100)
    for number in (2**64, -2**63 - 1):
        with pytest.raises(OverflowError):
            script.packb_own(number)
    with pytest.raises(TypeError, match="set"):
        script.packb_own({1, 2})


def test_network_outputs_map_to_the_address_a_media_source_opens():
    assert script.media_address("udp://127.0.0.1:5000") == "udp://127.0.0.1:5000"
    assert script.media_address("tcp://127.0.0.1:5000?listen") == "tcp://127.0.0.1:5000"
    assert script.media_address("tcp://0.0.0.0:5001?listen") == "tcp://127.0.0.1:5001"
    outputs = [{"target": "null"}, {"target": "rtmp://a.example/live/KEY"},
               {"target": "udp://127.0.0.1:5000"}, {"target": "tcp://127.0.0.1:5001?listen"}]
    assert script.pick_output(outputs)["target"] == "udp://127.0.0.1:5000"
    assert script.pick_output(outputs, "tcp://127.0.0.1:5001")["target"] == \
        "tcp://127.0.0.1:5001?listen"
    assert script.pick_output([{"target": "null"}]) is None


def test_the_text_format_fills_in_fields_and_survives_a_bad_format():
    fields = {"scene": "coffee shop, rain, night", "track": "warm piano", "loop": "k", "paused": ""}
    assert script.render("{scene}\n{track}", fields) == "coffee shop, rain, night\nwarm piano"
    assert script.render("{scene}\n{track}", {**fields, "track": ""}) == "coffee shop, rain, night"
    assert script.render("{scene} {nosuch}", fields) == "coffee shop, rain, night"
    assert script.render("{scene", fields) == "{scene"
    assert script.track_name({"path": "/music/late night.wav"}) == "late night"
    assert script.track_name({"path": "/x.wav", "prompt": "lofi piano"}) == "lofi piano"
    assert script.track_name(None) == ""


# --------------------------------------------------------------------------- the client

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """One lofid for the module, with its Unix socket and a TCP listener with a token."""
    tmp = tmp_path_factory.mktemp("obs-script")
    token = tmp / "token"
    token.write_text("a-token-of-more-than-16-characters\n")
    token.chmod(0o600)
    tcp = f"127.0.0.1:{free_port()}"
    config = tmp / "config.toml"
    config.write_text(f'control_tcp = "{tcp}"\ncontrol_token_file = "{token}"\n')
    d = start_daemon(tmp, "--config", config, "-o", "null", "--realtime", "--size", "160x90")
    d.tcp, d.token = tcp, token
    try:
        yield d
    finally:
        d.close()


@pytest.fixture(params=["own codec", "msgpack"])
def client(request, monkeypatch):
    """The script, speaking with its own codec (as in OBS) or with the msgpack package."""
    if request.param == "own codec":
        monkeypatch.setattr(script, "_msgpack", None)
    return script


@pytest.mark.slow
def test_the_client_calls_lofid_and_hears_its_events(daemon, client):
    heard = queue.Queue()
    conn = client.Connection.open(str(daemon.sock), on_event=lambda n, p: heard.put((n, p)))
    try:
        status = conn.call("status")
        assert status["version"] and status["clock"]["fps"] == 30.0
        assert conn.call("subscribe", "scene_changed") == ["scene_changed"]
        # A scene other than the one showing (the daemon is shared), so that it changes.
        scenes = ["snowy winter evening, bedroom", "rainy night, coffee shop"]
        wanted = scenes[1] if "bedroom" in status["scene"]["label"] else scenes[0]
        answer = conn.call("scene.set", wanted)
        # (The first loop's own scene_changed may come first.)
        deadline = time.monotonic() + 60
        while True:
            name, payload = heard.get(timeout=max(0.1, deadline - time.monotonic()))
            assert name == "scene_changed"
            if payload["scene"] == answer["scene"]:
                break
        with pytest.raises(client.LofidError, match="no such method|unknown method|nosuch"):
            conn.call("nosuch")
        with pytest.raises(client.LofidError, match="scene.set"):
            conn.call("scene.set", 5)
        assert conn.call("status")["scene"]["label"] == answer["scene"]  # still usable
    finally:
        conn.close()
        conn.join()
    assert conn.closed.is_set() and not conn._reader.is_alive()


@pytest.mark.slow
def test_the_client_falls_back_to_tcp_with_the_token(daemon, client, tmp_path):
    conn = client.Connection.open(str(tmp_path / "no-such.sock"), daemon.tcp, str(daemon.token))
    try:
        assert conn.where == daemon.tcp
        assert conn.call("status")["version"]
    finally:
        conn.close()
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token-at-all-but-long")
    with pytest.raises(client.Unreachable, match="refused the token"):
        client.Connection.open("", daemon.tcp, str(wrong))
    with pytest.raises(client.Unreachable, match=r"no-such\.sock.*lofid run --socket"):
        client.Connection.open(str(tmp_path / "no-such.sock"))
    with pytest.raises(client.Unreachable, match="token file"):
        client.Connection.open("", daemon.tcp, str(tmp_path / "missing-token"))


@pytest.mark.slow
def test_a_call_on_a_connection_lofid_closed_fails_at_once(daemon, client):
    conn = client.Connection.open(str(daemon.sock))
    conn.close()
    with pytest.raises(client.Unreachable, match="closed"):
        conn.call("status")


@pytest.mark.slow
def test_the_link_adds_a_network_output_when_lofid_has_none(daemon, monkeypatch):
    """What "Add lofid source" does on the network side, without OBS: lofid gets the
    configured output, and OBS's side is told the address to read."""
    monkeypatch.setattr(script, "_msgpack", None)
    port = free_port()
    target = f"tcp://127.0.0.1:{port}?listen"
    assert not [o for o in daemon.call("output.list") if o["target"] == target]
    link = script.Link({"socket": str(daemon.sock), "output": target}).start()
    try:
        posts = []

        def seen(kind):
            while True:
                try:
                    posts.append(link.posts.get_nowait())
                except queue.Empty:
                    break
            return [p for p in posts if p[0] == kind]

        connected = wait_for(lambda: seen("connected"), 30)
        assert connected[0][2] is False          # the first connection: not "returned"
        link.request("add_source")
        source = wait_for(lambda: seen("source"), 30)
        assert source == [("source", f"tcp://127.0.0.1:{port}")]
        assert [o for o in daemon.call("output.list") if o["target"] == target]
        # Pressed again, the same output is used, not a second one added.
        link.request("add_source")
        wait_for(lambda: len(seen("source")) == 2, 30)
        assert len([o for o in daemon.call("output.list") if o["target"] == target]) == 1
        link.request("pause_toggle")
        wait_for(lambda: daemon.status()["paused"], 30)
        link.request("pause_toggle")
        wait_for(lambda: not daemon.status()["paused"], 30)
    finally:
        started = time.monotonic()
        link.stop()
        assert time.monotonic() - started < 3 and not link._thread.is_alive()
        daemon.call("output.remove", target)


def test_the_link_says_once_that_lofid_is_not_running(tmp_path):
    link = script.Link({"socket": str(tmp_path / "none.sock")}).start()
    try:
        first = link.posts.get(timeout=10)
        assert first[0] == "log" and "none.sock" in first[2]
        link.request("next")
        refused = link.posts.get(timeout=10)
        assert refused[0] == "log" and "not running, cannot next" in refused[2]
        # Retries every RETRY_S, which say nothing new.
        assert holds_for(link.posts.empty, script.RETRY_S * 1.25)
    finally:
        link.stop()

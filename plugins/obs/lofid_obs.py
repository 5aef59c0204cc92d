"""lofid for OBS Studio: a script for Tools -> Scripts.

It talks to a running `lofid run` over its control socket (msgpack-RPC, see lofid's
README), adds a Media Source already set up to show lofid's stream, keeps that source
playing when lofid restarts, shows the scene and track in a Text source, and gives
OBS hotkeys and buttons for the next loop, pause/resume and the scene.

Only the Python standard library: OBS's Python has no msgpack, and nobody can be asked
to install into it. The `msgpack` package is used when it imports; otherwise a small
codec below does the same job.

Threads: the socket's blocking reads run in a reader thread, and requests (buttons,
hotkeys, status polls) in a link thread; neither touches OBS. What they learn goes into
a queue that a timer (obs.timer_add) drains on OBS's side, where every OBS object is
made, changed and released.
"""

from __future__ import annotations

import collections
import os
import queue
import socket
import struct
import sys
import threading
import time

try:                      # inside OBS; the codec and the client below work without it
    import obspython as obs
except ImportError:       # pragma: no cover - imported by tests and tools outside OBS
    obs = None

try:
    import msgpack as _msgpack
except ImportError:
    _msgpack = None

MAX_MESSAGE = 4 * 1024 * 1024     # lofid's cap on one message, bytes
EVENTS = ("scene_changed", "loop_started", "output_changed")
POLL_S = 5.0                      # status is read this often, for the track now playing
RETRY_S = 2.0                     # between tries to reach lofid
TICK_MS = 100                     # the timer that applies changes to OBS
RESTART_GAP_S = 2.0               # a media source is restarted at most this often
GAVE_UP_S = 3.0                   # a source ended this long, lofid up: it gave up


# --------------------------------------------------------------------------- msgpack

class ExtType(collections.namedtuple("ExtType", "code data")):
    """A msgpack extension value (lofid sends none; kept so nothing is lost)."""


class _Incomplete(Exception):
    """The buffer ends inside a message: wait for more bytes."""


def _pack_length(out: bytearray, n: int, heads, fix: int | None = None, fix_below: int = 0) -> None:
    """A msgpack length: in the type byte itself (`fix` | n) below `fix_below`, else
    the smallest of the 8-, 16- and 32-bit forms `heads` names (None: no such form)."""
    if fix is not None and n < fix_below:
        out.append(fix | n)
        return
    for head, fmt, top in zip(heads, (">B", ">H", ">I"), (0xFF, 0xFFFF, 0xFFFFFFFF)):
        if head is not None and n <= top:
            out.append(head)
            out += struct.pack(fmt, n)
            return
    raise OverflowError(f"msgpack: a length of {n} does not fit in 32 bits")


def _pack(obj, out: bytearray, depth: int = 0) -> None:
    if depth > 64:
        raise ValueError("msgpack: nested too deeply")
    if obj is None:
        out.append(0xC0)
    elif obj is True:
        out.append(0xC3)
    elif obj is False:
        out.append(0xC2)
    elif isinstance(obj, int):
        if 0 <= obj < 0x80:
            out.append(obj)
        elif -32 <= obj < 0:
            out.append(obj & 0xFF)
        elif obj > 0:
            for head, fmt, top in ((0xCC, ">B", 0xFF), (0xCD, ">H", 0xFFFF),
                                   (0xCE, ">I", 0xFFFFFFFF), (0xCF, ">Q", 2**64 - 1)):
                if obj <= top:
                    out.append(head)
                    out += struct.pack(fmt, obj)
                    break
            else:
                raise OverflowError(f"msgpack: {obj} does not fit in 64 bits")
        else:
            for head, fmt, bottom in ((0xD0, ">b", -0x80), (0xD1, ">h", -0x8000),
                                      (0xD2, ">i", -0x80000000), (0xD3, ">q", -2**63)):
                if obj >= bottom:
                    out.append(head)
                    out += struct.pack(fmt, obj)
                    break
            else:
                raise OverflowError(f"msgpack: {obj} does not fit in 64 bits")
    elif isinstance(obj, float):
        out += b"\xcb" + struct.pack(">d", obj)
    elif isinstance(obj, str):
        data = obj.encode("utf-8")
        _pack_length(out, len(data), (0xD9, 0xDA, 0xDB), fix=0xA0, fix_below=32)
        out += data
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        data = bytes(obj)
        _pack_length(out, len(data), (0xC4, 0xC5, 0xC6))
        out += data
    elif isinstance(obj, tuple) and hasattr(obj, "code") and hasattr(obj, "data"):   # an ExtType, ours or msgpack's
        n = len(obj.data)
        head = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}.get(n)
        if head is not None:
            out.append(head)
        else:
            _pack_length(out, n, (0xC7, 0xC8, 0xC9))
        out += struct.pack(">b", obj.code) + bytes(obj.data)
    elif isinstance(obj, (list, tuple)):
        _pack_length(out, len(obj), (None, 0xDC, 0xDD), fix=0x90, fix_below=16)
        for item in obj:
            _pack(item, out, depth + 1)
    elif isinstance(obj, dict):
        _pack_length(out, len(obj), (None, 0xDE, 0xDF), fix=0x80, fix_below=16)
        for key, value in obj.items():
            _pack(key, out, depth + 1)
            _pack(value, out, depth + 1)
    else:
        raise TypeError(f"msgpack: cannot pack {type(obj).__name__}")


def _take(buf, pos: int, n: int):
    end = pos + n
    if end > len(buf):
        raise _Incomplete
    return bytes(buf[pos:end]), end


# Fixed-size heads: byte -> (struct format, size)
_NUMBERS = {0xCA: (">f", 4), 0xCB: (">d", 8), 0xCC: (">B", 1), 0xCD: (">H", 2),
            0xCE: (">I", 4), 0xCF: (">Q", 8), 0xD0: (">b", 1), 0xD1: (">h", 2),
            0xD2: (">i", 4), 0xD3: (">q", 8)}
_LENGTHS = {1: ">B", 2: ">H", 4: ">I"}


def _length(buf, pos: int, size: int):
    raw, pos = _take(buf, pos, size)
    return struct.unpack(_LENGTHS[size], raw)[0], pos


def _unpack(buf, pos: int, depth: int = 0):
    """(the value that starts at buf[pos], the position after it)."""
    if depth > 64:
        raise ValueError("msgpack: nested too deeply")
    if pos >= len(buf):
        raise _Incomplete
    b = buf[pos]
    pos += 1
    if b < 0x80:
        return b, pos
    if b >= 0xE0:
        return b - 0x100, pos
    if 0xA0 <= b <= 0xBF:
        return _string(buf, pos, b & 0x1F)
    if 0x90 <= b <= 0x9F:
        return _array(buf, pos, b & 0x0F, depth)
    if 0x80 <= b <= 0x8F:
        return _map(buf, pos, b & 0x0F, depth)
    if b == 0xC0:
        return None, pos
    if b == 0xC2:
        return False, pos
    if b == 0xC3:
        return True, pos
    if b in _NUMBERS:
        fmt, size = _NUMBERS[b]
        raw, pos = _take(buf, pos, size)
        return struct.unpack(fmt, raw)[0], pos
    if b in (0xD9, 0xDA, 0xDB):
        n, pos = _length(buf, pos, 1 << (b - 0xD9))
        return _string(buf, pos, n)
    if b in (0xC4, 0xC5, 0xC6):
        n, pos = _length(buf, pos, 1 << (b - 0xC4))
        return _take(buf, pos, n)
    if b in (0xDC, 0xDD):
        n, pos = _length(buf, pos, 2 if b == 0xDC else 4)
        return _array(buf, pos, n, depth)
    if b in (0xDE, 0xDF):
        n, pos = _length(buf, pos, 2 if b == 0xDE else 4)
        return _map(buf, pos, n, depth)
    if 0xD4 <= b <= 0xD8:
        return _ext(buf, pos, 1 << (b - 0xD4))
    if b in (0xC7, 0xC8, 0xC9):
        n, pos = _length(buf, pos, 1 << (b - 0xC7))
        return _ext(buf, pos, n)
    raise ValueError(f"msgpack: 0x{b:02x} starts no value")


def _string(buf, pos, n):
    raw, pos = _take(buf, pos, n)
    return raw.decode("utf-8"), pos


def _array(buf, pos, n, depth):
    items = []
    for _ in range(n):
        item, pos = _unpack(buf, pos, depth + 1)
        items.append(item)
    return items, pos


def _map(buf, pos, n, depth):
    result = {}
    for _ in range(n):
        key, pos = _unpack(buf, pos, depth + 1)
        value, pos = _unpack(buf, pos, depth + 1)
        try:
            result[key] = value
        except TypeError:
            raise ValueError(f"msgpack: a map key cannot be {type(key).__name__}") from None
    return result, pos


def _ext(buf, pos, n):
    code, pos = _take(buf, pos, 1)
    data, pos = _take(buf, pos, n)
    return ExtType(struct.unpack(">b", code)[0], data), pos


def packb(obj) -> bytes:
    """`obj` as msgpack bytes (str as str, bytes as bin, as lofid packs them)."""
    if _msgpack is not None:
        return _msgpack.packb(obj, use_bin_type=True)
    return packb_own(obj)


def packb_own(obj) -> bytes:
    """packb by the codec here, msgpack package or not."""
    out = bytearray()
    _pack(obj, out)
    return bytes(out)


class StreamUnpacker:
    """The codec's own streaming unpacker: feed() bytes, iterate whole messages.
    ValueError for bytes that are not msgpack or a message over `max_buffer_size`."""

    def __init__(self, max_buffer_size: int = MAX_MESSAGE):
        self.max = max_buffer_size
        self.buf = bytearray()

    def feed(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > self.max:
            raise ValueError(f"msgpack: a message over {self.max} bytes")

    def __iter__(self):
        return self

    def __next__(self):
        try:
            value, end = _unpack(self.buf, 0)
        except _Incomplete:
            raise StopIteration from None
        del self.buf[:end]
        return value


def unpacker(max_buffer_size: int = MAX_MESSAGE):
    """A streaming unpacker: the msgpack package's when it imports, else ours."""
    if _msgpack is not None:
        return _msgpack.Unpacker(raw=False, strict_map_key=False,
                                 max_buffer_size=max_buffer_size)
    return StreamUnpacker(max_buffer_size)


def unpackb(data: bytes):
    """One msgpack value from `data` (all of it)."""
    value, end = _unpack(data, 0)
    if end != len(data):
        raise ValueError("msgpack: extra bytes after the value")
    return value


# --------------------------------------------------------------------------- the client

class Unreachable(Exception):
    """No lofid answers; the message says where it looked and what to do."""


class LofidError(Exception):
    """lofid answered a request with an error; the message is lofid's."""


def default_socket() -> str:
    """Where `lofid run --socket` listens by default (as lofid.paths says)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if not (runtime and os.path.isabs(runtime)):
        runtime = f"/tmp/lofid-{os.getuid()}"
    return os.path.join(runtime, "lofid", "lofid.sock")


def default_token_file() -> str:
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(config, "lofid", "token")


class Connection:
    """One msgpack-RPC connection to lofid. A reader thread does every blocking read:
    answers go to the call waiting for them, events to `on_event(name, payload)` (on
    the reader thread), and the end of the connection to `on_close()`. call() may be
    used from any thread."""

    def __init__(self, sock: socket.socket, where: str, on_event=None, on_close=None,
                 timeout: float = 10.0):
        self.sock, self.where, self.timeout = sock, where, timeout
        self.on_event = on_event or (lambda name, payload: None)
        self.on_close = on_close or (lambda: None)
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._next_id = 0
        self._waiting: dict[int, list] = {}     # msgid -> [Event, error, result]
        sock.settimeout(None)                   # the reader blocks; calls time out
        self._reader = threading.Thread(target=self._read, name="lofid reader", daemon=True)
        self._reader.start()

    @classmethod
    def open(cls, path: str = "", tcp: str = "", token_file: str = "", timeout: float = 5.0,
             **kw) -> "Connection":
        """The Unix socket at `path` when it answers, else TCP `tcp` (HOST:PORT) with the
        token in `token_file`. Unreachable, saying what was tried, when neither does."""
        tried = []
        if path:
            path = os.path.expanduser(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(path)
            except OSError as e:
                sock.close()
                tried.append(f"no lofid on {path} ({e.strerror or e})")
            else:
                return cls(sock, path, timeout=timeout, **kw)
        if tcp:
            host, _, port = tcp.strip().rpartition(":")
            host = host.strip("[]") or "127.0.0.1"
            try:
                port = int(port)
                token = _read_token(token_file)
                sock = socket.create_connection((host, port), timeout=timeout)
            except (ValueError, OSError) as e:
                tried.append(f"TCP {tcp}: {getattr(e, 'strerror', None) or e}")
            else:
                conn = cls(sock, tcp, timeout=timeout, **kw)
                try:
                    conn.call("auth", token)
                except (LofidError, Unreachable) as e:
                    conn.close()
                    raise Unreachable(f"lofid on TCP {tcp} refused the token in "
                                      f"{token_file}: {e}") from None
                return conn
        if not tried:
            raise Unreachable("neither a socket path nor a TCP address is set")
        raise Unreachable("; ".join(tried) + "; is `lofid run --socket` running?")

    def call(self, method: str, *params, timeout: float | None = None):
        if self.closed.is_set():
            raise Unreachable(f"lofid closed the connection on {self.where}")
        with self._lock:
            self._next_id += 1
            msgid = self._next_id
            slot = [threading.Event(), None, None, False]   # done, error, result, answered
            self._waiting[msgid] = slot
            try:
                self.sock.sendall(packb([0, msgid, method, list(params)]))
            except OSError as e:
                self._waiting.pop(msgid, None)
                self.close()
                raise Unreachable(f"lofid closed the connection on {self.where} "
                                  f"({e.strerror or e})") from None
        if not slot[0].wait(self.timeout if timeout is None else timeout):
            self._waiting.pop(msgid, None)
            raise Unreachable(f"lofid on {self.where} did not answer {method} in time")
        if not slot[3]:
            raise Unreachable(f"lofid closed the connection on {self.where}")
        if slot[1] is not None:
            raise LofidError(_error_text(slot[1]))
        return slot[2]

    def _read(self) -> None:
        stream = unpacker(2 * MAX_MESSAGE)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                stream.feed(data)
                for message in stream:
                    self._dispatch(message)
        except Exception:   # a reset, or bytes that are not msgpack: the stream is lost
            pass
        finally:
            self.close()

    def _dispatch(self, message) -> None:
        if not isinstance(message, list) or not message:
            return
        if message[0] == 1 and len(message) == 4:
            slot = self._waiting.pop(message[1], None)
            if slot is not None:
                slot[1], slot[2], slot[3] = message[2], message[3], True
                slot[0].set()
        elif message[0] == 2 and len(message) == 3:
            params = message[2]
            payload = params[0] if isinstance(params, list) and params else None
            try:
                self.on_event(message[1], payload)
            except Exception:   # a listener's fault must not end the connection
                pass

    def close(self) -> None:
        """Ends the connection; a reader blocked in recv wakes (shutdown does that,
        close alone does not), and calls waiting fail."""
        first = not self.closed.is_set()
        self.closed.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for slot in list(self._waiting.values()):
            slot[0].set()           # with no result and no error: see call()
        if first:
            self.on_close()

    def join(self, timeout: float = 2.0) -> None:
        if self._reader is not threading.current_thread():
            self._reader.join(timeout)


def _read_token(path: str) -> str:
    path = os.path.expanduser(path or default_token_file())
    try:
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
    except OSError as e:
        raise ValueError(f"cannot read the token file {path} ({e.strerror})") from None
    if not token:
        raise ValueError(f"the token file {path} is empty")
    return token


def _error_text(error) -> str:
    return str(error[1]) if isinstance(error, list) and len(error) > 1 else str(error)


# --------------------------------------------------------------------------- lofid's outputs

def is_network(target: str) -> bool:
    """An output OBS's Media Source can read: MPEG-TS over udp:// or tcp://...?listen."""
    t = (target or "").strip().lower()
    return t.startswith("udp://") or (t.startswith("tcp://") and "listen" in t)


def media_address(target: str) -> str:
    """The address a Media Source opens to read lofid's network output `target`:
    udp://HOST:PORT as it is, tcp://HOST:PORT?listen without ?listen; a wildcard host
    (lofid listening on every address) becomes the loopback."""
    scheme, _, rest = target.strip().partition("://")
    hostport = rest.split("?", 1)[0].split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if host in ("", "0.0.0.0", "*"):
        host = "127.0.0.1"
    elif host in ("[::]", "::"):
        host = "[::1]"
    return f"{scheme.lower()}://{host}:{port}"


def pick_output(outputs: list, wanted: str = "") -> dict | None:
    """lofid's network output to show: the one whose address is `wanted` (the Media
    Source's input) when there is one, else the first."""
    network = [o for o in outputs or [] if isinstance(o, dict) and is_network(o.get("target", ""))]
    for o in network:
        if wanted and media_address(o["target"]) == wanted:
            return o
    return network[0] if network else None


def track_name(now_playing) -> str:
    """The track now sounding, in words: its prompt, else its file's name."""
    if not isinstance(now_playing, dict):
        return ""
    if now_playing.get("prompt"):
        return str(now_playing["prompt"])
    path = str(now_playing.get("path") or "")
    return os.path.splitext(os.path.basename(path))[0]


class _Blank(dict):
    def __missing__(self, key):
        return ""


def render(fmt: str, fields: dict) -> str:
    """`fmt` with {scene}, {track}, {loop}, {paused} filled in; an unknown field is
    left empty, and a format that is not valid is shown as it is."""
    try:
        return fmt.format_map(_Blank(fields)).strip()
    except (ValueError, IndexError, AttributeError, KeyError):
        return fmt


# --------------------------------------------------------------------------- the link

class Link:
    """Keeps a connection to lofid: connects (and reconnects every RETRY_S while lofid
    is away), subscribes to its events, polls its status, and runs the requests the
    buttons and hotkeys queue. It never touches OBS: what OBS should do is put on
    `posts` as tuples for OBS's timer:

        ("connected", status, returned)   returned: lofid came back after being away
        ("disconnected", why)
        ("status", status)
        ("event", name, payload)
        ("source", address)               make or update the Media Source
        ("log", level, text)              level: "info" | "warning"
    """

    def __init__(self, config: dict):
        self.config = dict(config)
        self.posts: queue.Queue = queue.Queue()
        self.requests: queue.Queue = queue.Queue()
        self.stopping = threading.Event()
        self.conn: Connection | None = None
        self.want_output = False       # a Media Source is set up: keep an output for it
        self.media_input = ""          # that source's address
        self._away = False             # lofid was seen away (or not yet seen) since load
        self._said = ""
        self._thread = threading.Thread(target=self._run, name="lofid link", daemon=True)

    # from OBS's side ------------------------------------------------------------

    def start(self) -> "Link":
        self._thread.start()
        return self

    def stop(self, timeout: float = 3.0) -> None:
        self.stopping.set()
        self.requests.put(None)
        conn = self.conn
        if conn is not None:
            conn.close()
            conn.join(timeout)
        self._thread.join(timeout)

    def request(self, *what) -> None:
        """("add_source",), ("next",), ("pause_toggle",), ("scene", text)."""
        self.requests.put(what)

    # the link's own thread --------------------------------------------------------

    def _post(self, *what) -> None:
        self.posts.put(what)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                conn = Connection.open(self.config.get("socket", ""), self.config.get("tcp", ""),
                                       self.config.get("token_file", ""),
                                       on_event=lambda n, p: self._post("event", n, p))
            except Unreachable as e:
                self._away = True
                if str(e) != self._said:       # say it once, not every RETRY_S
                    self._said = str(e)
                    self._post("log", "warning", f"lofid: {e}")
                self._serve_offline()
                continue
            self.conn, self._said = conn, ""
            try:
                self._serve(conn)
            except Unreachable:
                pass                           # lofid went away: the loop tries again
            except Exception as e:             # never the end of the link
                self._post("log", "warning", f"lofid: {type(e).__name__}: {e}")
                self._serve_offline()
            finally:
                conn.close()
                self.conn = None
                self._away = True
                if not self.stopping.is_set():
                    self._post("disconnected", f"lofid went away from {conn.where}")

    def _serve_offline(self) -> None:
        """Until it is time to try again: requests are answered with why not."""
        deadline = time.monotonic() + RETRY_S
        while not self.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                what = self.requests.get(timeout=left)
            except queue.Empty:
                return
            if what is not None:
                self._post("log", "warning", f"lofid: not running, cannot {what[0]}: "
                                             f"{self._said or 'no connection'}")

    def _serve(self, conn: Connection) -> None:
        conn.call("subscribe", *EVENTS)
        status = conn.call("status")
        # lofid came (back) after OBS saw it away: the Media Source may have given up,
        # or hold the end of the old stream. (Not when it answered at once on load.)
        self._post("connected", status, self._away)
        self._away = False
        if self.want_output:
            try:
                self._ensure_output(conn, status)
            except LofidError as e:
                self._post("log", "warning", f"lofid: cannot add the output: {e}")
        polled = time.monotonic()
        while not self.stopping.is_set() and not conn.closed.is_set():
            try:
                what = self.requests.get(timeout=0.25)
            except queue.Empty:
                what = None
            if what is not None:
                try:
                    self._do(conn, what)
                except LofidError as e:
                    self._post("log", "warning", f"lofid: {what[0]}: {e}")
            if time.monotonic() - polled >= POLL_S and not conn.closed.is_set():
                polled = time.monotonic()
                self._post("status", conn.call("status"))

    def _do(self, conn: Connection, what: tuple) -> None:
        kind = what[0]
        if kind == "add_source":
            self.want_output = True
            self._ensure_output(conn, conn.call("status"), make_source=True)
        elif kind == "next":
            conn.call("next")
        elif kind == "pause_toggle":
            paused = bool(conn.call("status").get("paused"))
            conn.call("resume" if paused else "pause")
            self._post("log", "info", "lofid: resumed" if paused else "lofid: paused")
        elif kind == "scene":
            answer = conn.call("scene.set", what[1])
            self._post("log", "info", f"lofid: scene {answer.get('scene')} "
                                      f"({answer.get('action')})")

    def _ensure_output(self, conn: Connection, status: dict, make_source: bool = False) -> None:
        """lofid's network output for the Media Source, added (output.add) when lofid
        has none; with make_source, the source is then made or updated to read it."""
        out = pick_output(status.get("outputs"), self.media_input)
        if out is None:
            target = self.config.get("output") or "tcp://127.0.0.1:5000?listen"
            out = conn.call("output.add", target)
            self._post("log", "info", f"lofid: added the output {target}")
        address = media_address(out["target"])
        if make_source or address != self.media_input:
            self.media_input = address
            self._post("source", address)


# --------------------------------------------------------------------------- OBS

SETTINGS = ("socket", "tcp", "token_file", "output", "source", "show_text", "text_source",
            "text_format")

_link: Link | None = None
_config: dict = {}
_hotkeys: dict[str, int] = {}         # name -> OBS hotkey id
_shown = {"scene": "", "track": "", "loop": "", "paused": ""}
_text_now = None
_last_restart = 0.0
_online = False                       # connected to lofid now
_stuck_since = None                   # since when the Media Source seems to wait in vain
_output_state = None                  # the state of lofid's output it reads, when known
_ticks = 0


def script_description():
    return (
        "<b>lofid</b>: shows lofid's endless lofi picture in OBS and keeps it playing."
        "<p>Start lofid with its control socket (<code>lofid run --socket</code>), then "
        "press <b>Add lofid source</b>: a Media Source reading lofid's stream appears in "
        "the current scene (lofid gets a network output if it has none), with a Text "
        "source naming the scene and track. When lofid restarts or its output comes "
        "back, the source is restarted. Hotkeys (Settings &rarr; Hotkeys): next loop, "
        "pause/resume, add the source."
        "<p><b>Flatpak OBS</b> cannot see lofid's socket in "
        "<code>$XDG_RUNTIME_DIR/lofid</code>. Either let it, once: "
        "<code>flatpak override --user --filesystem=xdg-run/lofid "
        "com.obsproject.Studio</code>, or use TCP: set <code>control_tcp</code> and "
        "<code>control_token_file</code> in lofid's config and the same address and "
        "token file here.")


def script_defaults(settings):
    obs.obs_data_set_default_string(settings, "socket", default_socket())
    obs.obs_data_set_default_string(settings, "tcp", "")
    obs.obs_data_set_default_string(settings, "token_file", default_token_file())
    obs.obs_data_set_default_string(settings, "output", "tcp://127.0.0.1:5000?listen")
    obs.obs_data_set_default_string(settings, "source", "lofid")
    obs.obs_data_set_default_bool(settings, "show_text", True)
    obs.obs_data_set_default_string(settings, "text_source", "lofid scene")
    obs.obs_data_set_default_string(settings, "text_format", "{scene}\n{track}")


def script_properties():
    props = obs.obs_properties_create()
    obs.obs_properties_add_button(props, "add_source", "Add lofid source", _add_pressed)
    obs.obs_properties_add_text(props, "scene", "Scene", obs.OBS_TEXT_DEFAULT)
    obs.obs_properties_add_button(props, "set_scene", "Set scene", _scene_pressed)
    obs.obs_properties_add_button(props, "next", "Next loop", _next_pressed)
    obs.obs_properties_add_button(props, "pause", "Pause / resume", _pause_pressed)
    obs.obs_properties_add_text(props, "source", "Media Source name", obs.OBS_TEXT_DEFAULT)
    obs.obs_properties_add_bool(props, "show_text", "Show the scene and track in a Text source")
    obs.obs_properties_add_text(props, "text_source", "Text source name", obs.OBS_TEXT_DEFAULT)
    obs.obs_properties_add_text(props, "text_format",
                                "Text ({scene}, {track}, {loop}, {paused})",
                                obs.OBS_TEXT_MULTILINE)
    obs.obs_properties_add_text(props, "output", "Output lofid adds when it has none",
                                obs.OBS_TEXT_DEFAULT)
    obs.obs_properties_add_path(props, "socket", "lofid socket", obs.OBS_PATH_FILE, "", None)
    obs.obs_properties_add_text(props, "tcp", "or TCP HOST:PORT (control_tcp)",
                                obs.OBS_TEXT_DEFAULT)
    obs.obs_properties_add_path(props, "token_file", "TCP token file", obs.OBS_PATH_FILE,
                                "", None)
    return props


def script_update(settings):
    global _config
    new = {key: (obs.obs_data_get_bool(settings, key) if key == "show_text"
                 else obs.obs_data_get_string(settings, key)) for key in SETTINGS}
    new["scene"] = obs.obs_data_get_string(settings, "scene")
    where = ("socket", "tcp", "token_file", "output")
    restart = _link is None or any(new[k] != _config.get(k) for k in where)
    _config = new
    if restart:
        _restart_link()
    else:
        _link.config.update(new)
    _show_text()


def script_load(settings):
    for name, words, callback in (("lofid_add_source", "lofid: add the lofid source", _add_hotkey),
                                  ("lofid_next", "lofid: next loop", _next_hotkey),
                                  ("lofid_pause", "lofid: pause / resume", _pause_hotkey)):
        hotkey = obs.obs_hotkey_register_frontend(name, words, callback)
        _hotkeys[name] = hotkey
        saved = obs.obs_data_get_array(settings, name)
        obs.obs_hotkey_load(hotkey, saved)
        obs.obs_data_array_release(saved)
    obs.timer_add(_tick, TICK_MS)


def script_save(settings):
    for name, hotkey in _hotkeys.items():
        saved = obs.obs_hotkey_save(hotkey)
        obs.obs_data_set_array(settings, name, saved)
        obs.obs_data_array_release(saved)


def script_unload():
    global _link
    obs.timer_remove(_tick)
    for callback in (_add_hotkey, _next_hotkey, _pause_hotkey):
        obs.obs_hotkey_unregister(callback)
    _hotkeys.clear()
    if _link is not None:
        _link.stop()
        _link = None


def _restart_link():
    global _link
    if _link is not None:
        _link.stop()
    _link = Link(_config).start()
    source = obs.obs_get_source_by_name(_config.get("source", ""))
    if source is not None:
        # A source made earlier (saved with the scene collection): keep lofid's output
        # for it when lofid starts without one.
        settings = obs.obs_source_get_settings(source)
        address = obs.obs_data_get_string(settings, "input")
        obs.obs_data_release(settings)
        obs.obs_source_release(source)
        if address:
            _link.want_output = True
            _link.media_input = address


# buttons and hotkeys: they only queue work for the link (the network is its job)

def _ask(*what):
    if _link is not None:
        _link.request(*what)


def _add_pressed(props, prop):
    _ask("add_source")
    return False


def _scene_pressed(props, prop):
    text = (_config.get("scene") or "").strip()
    if text:
        _ask("scene", text)
    else:
        obs.script_log(obs.LOG_WARNING, "lofid: type a scene first, e.g. rainy night, coffee shop")
    return False


def _next_pressed(props, prop):
    _ask("next")
    return False


def _pause_pressed(props, prop):
    _ask("pause_toggle")
    return False


def _add_hotkey(pressed):
    if pressed:
        _ask("add_source")


def _next_hotkey(pressed):
    if pressed:
        _ask("next")


def _pause_hotkey(pressed):
    if pressed:
        _ask("pause_toggle")


# the timer: everything the link learned, applied to OBS

def _tick():
    global _ticks
    if _link is None:
        return
    _ticks += 1
    if _ticks % 10 == 0:
        _watch_media()
    while True:
        try:
            post = _link.posts.get_nowait()
        except queue.Empty:
            break
        try:
            _apply(post)
        except Exception as e:   # one bad post must not stop the timer
            obs.script_log(obs.LOG_WARNING, f"lofid: {post[0]}: {type(e).__name__}: {e}")


def _apply(post):
    global _online, _stuck_since
    kind = post[0]
    if kind == "log":
        obs.script_log(obs.LOG_WARNING if post[1] == "warning" else obs.LOG_INFO, post[2])
    elif kind == "connected":
        status, returned = post[1], post[2]
        obs.script_log(obs.LOG_INFO, f"lofid: connected, playing {status['scene']['label']}")
        _online, _stuck_since = True, None
        _follow_status(status)
        if returned:
            _restart_media("lofid is back")
    elif kind == "disconnected":
        _online = False
        obs.script_log(obs.LOG_WARNING, f"lofid: {post[1]}; trying again every {RETRY_S:g} s")
    elif kind == "status":
        _follow_status(post[1])
    elif kind == "source":
        _make_sources(post[1])
    elif kind == "event":
        _follow_event(post[1], post[2] if isinstance(post[2], dict) else {})


def _follow_status(status: dict):
    global _output_state
    ours = pick_output(status.get("outputs"), _link.media_input)
    _output_state = ours.get("state") if ours and \
        media_address(ours["target"]) == _link.media_input else None
    scene = status.get("scene") or {}
    audio = status.get("audio") or {}
    _shown.update(scene=scene.get("label", ""), loop=status.get("loop") or "",
                  paused="paused" if status.get("paused") else "",
                  track=track_name(audio.get("now_playing")))
    _show_text()


def _follow_event(name: str, payload: dict):
    global _output_state
    if name in ("scene_changed", "loop_started"):
        if payload.get("scene"):
            _shown["scene"] = str(payload["scene"])
        if payload.get("loop"):
            _shown["loop"] = str(payload["loop"])
        _show_text()
    elif name == "output_changed":
        output = str(payload.get("output") or "")
        if not (is_network(output) and media_address(output) == _link.media_input):
            return
        _output_state = payload.get("state")
        # A udp output that runs again sends to a source that stopped waiting for it.
        # (For tcp listen, "running" means OBS itself just connected: nothing to do.)
        if _output_state == "running" and output.lower().startswith("udp://"):
            _restart_media(f"lofid's output {output} is back")


def _watch_media():
    """Reopen the Media Source when it stopped trying while lofid is up: it ended and
    did not reopen, or lofid's tcp output still waits for it to connect. OBS reopens a
    network input that ends after its reconnect delay, but not one whose open failed
    at once: OBS 29's media thread can fail and end before the source counts its media
    as open, and then neither its reconnecting nor a restart (which plays the dead
    media again) revives it; an update of its settings makes it open anew."""
    global _stuck_since
    if not (_online and _link.media_input):
        _stuck_since = None
        return
    source = obs.obs_get_source_by_name(_config.get("source", ""))
    if source is None:
        return
    state = obs.obs_source_media_get_state(source)
    obs.obs_source_release(source)
    stuck = state in (obs.OBS_MEDIA_STATE_ENDED, obs.OBS_MEDIA_STATE_ERROR,
                      obs.OBS_MEDIA_STATE_STOPPED, obs.OBS_MEDIA_STATE_NONE) or \
        (_link.media_input.startswith("tcp://") and _output_state not in (None, "running"))
    now = time.monotonic()
    if not stuck:
        _stuck_since = None
    elif _stuck_since is None:
        _stuck_since = now
    elif now - _stuck_since > GAVE_UP_S:
        _stuck_since = now                     # and again later, should it stay so
        _reopen_media()


def _show_text():
    global _text_now
    if not _config.get("show_text"):
        return
    text = render(_config.get("text_format", ""), _shown)
    if text == _text_now:
        return
    source = obs.obs_get_source_by_name(_config.get("text_source", ""))
    if source is None:
        return
    settings = obs.obs_data_create()
    obs.obs_data_set_string(settings, "text", text)
    obs.obs_source_update(source, settings)
    obs.obs_data_release(settings)
    obs.obs_source_release(source)
    _text_now = text


def _restart_media(why: str):
    global _last_restart
    now = time.monotonic()
    if now - _last_restart < RESTART_GAP_S:
        return
    source = obs.obs_get_source_by_name(_config.get("source", ""))
    if source is None:
        return
    _last_restart = now
    obs.obs_source_media_restart(source)
    obs.obs_source_release(source)
    obs.script_log(obs.LOG_INFO, f"lofid: {why}; restarted the media source")


def _reopen_media():
    source = obs.obs_get_source_by_name(_config.get("source", ""))
    if source is None:
        return
    nothing = obs.obs_data_create()      # no change: an update alone reopens the input
    obs.obs_source_update(source, nothing)
    obs.obs_data_release(nothing)
    obs.obs_source_release(source)
    obs.script_log(obs.LOG_INFO, "lofid: the media source stopped trying to reach lofid; "
                                 "reopened it")


def _media_settings(address: str):
    """The Media Source's settings, as the README says to set them by hand."""
    settings = obs.obs_data_create()
    obs.obs_data_set_bool(settings, "is_local_file", False)
    obs.obs_data_set_string(settings, "input", address)
    obs.obs_data_set_string(settings, "input_format", "mpegts")
    obs.obs_data_set_int(settings, "buffering_mb", 0)
    obs.obs_data_set_int(settings, "reconnect_delay_sec", 1)
    obs.obs_data_set_bool(settings, "restart_on_activate", True)
    obs.obs_data_set_bool(settings, "close_when_inactive", False)
    return settings


def _make_sources(address: str):
    """The Media Source reading `address` (made, or its settings updated) and, when
    asked for, the Text source, both in the current scene."""
    global _text_now
    name = _config.get("source") or "lofid"
    settings = _media_settings(address)
    source = obs.obs_get_source_by_name(name)
    if source is None:
        source = obs.obs_source_create("ffmpeg_source", name, settings, None)
        obs.script_log(obs.LOG_INFO, f"lofid: made the media source {name!r} reading {address}")
    else:
        obs.obs_source_update(source, settings)
        obs.obs_source_media_restart(source)
        obs.script_log(obs.LOG_INFO, f"lofid: set the media source {name!r} to read {address}")
    obs.obs_data_release(settings)
    current = obs.obs_frontend_get_current_scene()
    if current is None:
        obs.obs_source_release(source)
        obs.script_log(obs.LOG_WARNING, "lofid: no current scene to add the source to")
        return
    scene = obs.obs_scene_from_source(current)
    width, height = _canvas()
    if obs.obs_scene_find_source(scene, name) is None:
        item = obs.obs_scene_add(scene, source)
        # Fill the canvas, whatever size lofid streams at.
        bounds = obs.vec2()
        bounds.x, bounds.y = width, height
        obs.obs_sceneitem_set_bounds_type(item, obs.OBS_BOUNDS_SCALE_INNER)
        obs.obs_sceneitem_set_bounds(item, bounds)
    obs.obs_source_release(source)
    if _config.get("show_text"):
        text_name = _config.get("text_source") or "lofid scene"
        text = obs.obs_get_source_by_name(text_name)
        if text is None:
            kind = _text_kind()
            if kind:
                settings = obs.obs_data_create()
                font = obs.obs_data_create()
                obs.obs_data_set_string(font, "face", "Sans Serif")
                obs.obs_data_set_int(font, "size", max(16, height // 24))
                obs.obs_data_set_obj(settings, "font", font)
                obs.obs_data_set_string(settings, "text", render(_config.get("text_format", ""), _shown))
                text = obs.obs_source_create(kind, text_name, settings, None)
                obs.obs_data_release(font)
                obs.obs_data_release(settings)
        if text is not None:
            if obs.obs_scene_find_source(scene, text_name) is None:
                item = obs.obs_scene_add(scene, text)
                pos = obs.vec2()
                pos.x, pos.y = height / 30, height * 0.82
                obs.obs_sceneitem_set_pos(item, pos)
            obs.obs_source_release(text)
            _text_now = None
    obs.obs_source_release(current)
    _link.media_input = address
    _show_text()


def _canvas():
    video = obs.obs_video_info()
    obs.obs_get_video_info(video)
    return video.base_width, video.base_height


def _text_kind() -> str:
    """The newest Text source kind of this OBS: GDI+ on Windows, FreeType 2 elsewhere.
    (Asking OBS about a kind it does not have fails an assertion: ask for one only.)"""
    return obs.obs_get_latest_input_type_id(
        "text_gdiplus" if sys.platform == "win32" else "text_ft2_source") or ""

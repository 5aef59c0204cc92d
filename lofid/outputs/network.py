"""Network outputs: MPEG-TS over udp:// or tcp://...?listen (OBS), FLV over rtmp(s)://.

The muxing and the network writes happen in a child process
(`lofid.outputs.network_child`), fed over a pipe: a libavformat write to a server
that stopped answering can block for minutes, and the daemon must not. This side is
an Output like any other; its worker frames packets onto the child's stdin without
ever blocking, and a supervisor thread watches the child:

- the child acknowledges what it has muxed; packets that stay unacknowledged for
  `stall_timeout` seconds mean it is stuck (server stalled), so it is killed;
- a child that exits, or does not connect within `connect_timeout`, is restarted
  with exponential backoff (0.5 s doubling to 30 s, back to 0.5 s after a
  connection that held for a minute);
- while no child is connected, packets are dropped and counted, and after a
  (re)connection the stream starts again at the next keyframe.

A platform that ends a stream after so long (Twitch: 48 hours) gets a new one first:
with `max_session` (RTMP only), at the last keyframe before that limit the child
finishes its stream and closes the connection cleanly, and a new child, started
meanwhile, connects at once and goes on from that keyframe, its timestamps from 0
again. The packets that come while it connects wait for it in memory; the daemon and
the other outputs see nothing of it.

States reported through on_state(name, state, detail): "starting", "running"
(connected; for tcp listen, a client is connected), "reconnecting" (with the reason
and the retry delay), "failed" (the target can never work, e.g. port in use),
"closed".
"""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgpack

from lofid.media import Packet, StreamInfo

from .base import Output, OutputError

log = logging.getLogger("lofid.outputs.network")

SCHEMES = ("udp", "tcp", "rtmp", "rtmps")

BACKOFF_MIN = 0.5
BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0              # a connection this long resets the backoff
MAX_BACKLOG = 8 * 1024 * 1024    # bytes framed for the child but not yet in the pipe
PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031             # Linux fcntl; a bigger pipe absorbs short hiccups


# How long before `max_session` a session ends: at the first keyframe this close to the
# limit. The player makes a keyframe at least every 2 s, so 5 s always finds one; a
# short limit (a test's) ends at the first keyframe after 90% of it.
SESSION_MARGIN = 5.0


def session_end(max_session: float) -> float:
    """Seconds into a session after which its next keyframe begins a new one."""
    return max_session - min(SESSION_MARGIN, 0.1 * max_session)


class NetworkTargetError(OutputError, ValueError):
    """A network target or option that cannot work as given."""


@dataclass(frozen=True)
class Target:
    url: str          # what the child opens (udp gets pkt_size=1316 added)
    name: str         # the target with any stream key hidden, for logs and states
    format: str       # "flv" | "mpegts"
    listen: bool


def parse_target(target: str) -> Target:
    """Checks a network target and says how to open it; NetworkTargetError if it cannot work."""
    if not isinstance(target, str):
        raise NetworkTargetError(f"network output target must be a string, got {target!r}")
    try:
        parts = urlsplit(target)
        parts.hostname
    except ValueError as e:          # e.g. an unclosed or malformed [IPv6] address
        raise NetworkTargetError(f"network output {target!r}: {e}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise NetworkTargetError(
            f"network output {target!r}: unknown scheme {parts.scheme!r}; "
            f"expected one of {', '.join(s + '://' for s in SCHEMES)}")
    if not parts.hostname:
        raise NetworkTargetError(f"network output {target!r}: no host; expected {scheme}://HOST:PORT...")
    problem = _bad_host(parts.hostname)
    if problem:
        raise NetworkTargetError(f"network output {mask(target)!r}: {problem}")
    try:
        port = parts.port
    except ValueError:
        raise NetworkTargetError(f"network output {target!r}: the port is not a number in 1..65535") from None
    query = parse_qsl(parts.query, keep_blank_values=True)
    keys = {k for k, _ in query}
    if scheme in ("rtmp", "rtmps"):
        path = parts.path.strip("/").split("/")
        if len(path) < 2 or not all(path):
            raise NetworkTargetError(
                f"network output {mask(target)!r}: expected {scheme}://HOST[:PORT]/APP/STREAM_KEY")
        return Target(target, mask(target), "flv", False)
    if port is None or port == 0:
        raise NetworkTargetError(f"network output {target!r}: no port; expected {scheme}://HOST:PORT")
    if scheme == "udp":
        if "pkt_size" not in keys:
            # 7 TS packets per datagram: what OBS and every MPEG-TS receiver expect
            query.append(("pkt_size", "1316"))
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
        return Target(url, target, "mpegts", False)
    if "listen" not in keys:
        raise NetworkTargetError(
            f"network output {target!r}: a tcp output listens for OBS to connect; "
            f"expected tcp://HOST:PORT?listen")
    return Target(target, target, "mpegts", True)


_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")


def _bad_host(host: str) -> str | None:
    """What is wrong with `host` as written (None if nothing): a number that is no
    IPv4 address (256.256.256.256), or a name no resolver could look up."""
    if ":" in host:                  # urlsplit has taken the brackets off an IPv6 address
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
            return None
        except ValueError:
            return f"host {host!r} is not a valid IPv6 address"
    labels = host.rstrip(".").split(".")
    if all(label.isdigit() for label in labels):
        try:
            ipaddress.IPv4Address(host)
            return None
        except ValueError:
            return (f"host {host!r} is not a valid IPv4 address (four numbers from 0 to "
                    f"255, e.g. 127.0.0.1)")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        return f"host {host!r} is not a valid host name"
    return None


def check_resolves(host: str, target: str, timeout: float = 5.0) -> None:
    """NetworkTargetError when the resolver says `host` does not exist. A resolver
    that does not answer in time, or fails for now, says nothing about the host:
    the output starts and its connections are retried like any other failure."""
    try:
        ipaddress.ip_address(host)
        return                       # an address: nothing to look up
    except ValueError:
        pass
    result: list = []

    def look_up():
        try:
            socket.getaddrinfo(host, None)
            result.append(None)
        except socket.gaierror as e:
            result.append(e)
        except Exception:  # noqa: BLE001 - anything else says nothing about the host
            result.append(None)
    worker = threading.Thread(target=look_up, name=f"resolve {host}", daemon=True)
    worker.start()
    worker.join(timeout)
    error = result[0] if result else None
    if isinstance(error, socket.gaierror) and error.errno in _NO_SUCH_HOST:
        raise NetworkTargetError(f"network output {target!r}: cannot resolve host {host!r} "
                                 f"({error.strerror or error}); check the name")


# getaddrinfo's answers that mean "no such name" (NXDOMAIN, no address), as opposed
# to EAI_AGAIN (no answer for now), which a later try may get past
_NO_SUCH_HOST = {getattr(socket, name) for name in ("EAI_NONAME", "EAI_NODATA")
                 if hasattr(socket, name)}


def mask(target: str) -> str:
    """The target with its stream key (the last path part) and password hidden."""
    parts = urlsplit(target)
    if parts.scheme.lower() not in ("rtmp", "rtmps"):
        return target
    netloc = parts.netloc
    if parts.password:
        netloc = netloc.replace(f":{parts.password}@", ":****@")
    path = parts.path
    head, sep, key = path.rstrip("/").rpartition("/")
    if sep and key and head.strip("/"):
        path = f"{head}/****"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def _check_port_free(host: str, port: int, target: str) -> None:
    """Fails at once, naming the target, when a tcp listen port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # the same option libavformat sets, so a port in TIME_WAIT does not count as taken
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise NetworkTargetError(f"network output {target!r}: cannot listen on {host}:{port}: "
                                     f"{e.strerror or e}") from None


class _Child:
    """One child process and what the daemon knows about it."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.stdin = proc.stdin.fileno()
        self.readers = {proc.stdout.fileno(): "events", proc.stderr.fileno(): "log"}
        self.outgoing = bytearray()
        self.events = msgpack.Unpacker(raw=False)
        self.log_tail: deque[str] = deque(maxlen=5)
        self.log_partial = b""
        self.spawned = time.monotonic()
        self.listening = False
        self.connected = False
        self.connected_at = 0.0
        self.forwarded = 0            # packets framed for the child
        self.acked = 0                # packets the child says it has handled
        self.last_progress = self.spawned
        self.stdin_closed = False
        self.error: tuple[str, bool] | None = None   # (reason, fatal) from the child
        self.end_reason: str | None = None            # why the daemon ended it
        self.closing_since: float | None = None
        self.session_start: int | None = None  # pts of the session's first keyframe
        self.last_pts: int | None = None       # of the last video packet it was given
        self.retiring = False                  # its session is over: finish, then a new one
        self.carried = False                   # begins with packets a session handed on

    def alive(self) -> bool:
        return self.proc.poll() is None


class NetworkOutput(Output):
    """Streams the player's packets to udp://, tcp://...?listen, rtmp:// or rtmps://.

    Options: stall_timeout (s, default 10), connect_timeout (s, default 15; not for
    tcp listen, which waits for a client as long as it takes), close_timeout (s,
    default 5), rebase (default True: each connection's timestamps start at 0;
    False sends the daemon clock's timestamps as they are), max_session (s, RTMP:
    a new session before a session is this long; None: never). Other options are
    ignored: open_output passes every output the same ones."""

    wants = "packets"

    _DEFAULTS = {"stall_timeout": 10.0, "connect_timeout": 15.0, "close_timeout": 5.0,
                 "rebase": True, "max_session": None}

    def __init__(self, target: str, on_state=None, **options):
        self.target = parse_target(target)
        # open_output hands every output the same options; the ones for other
        # outputs (window: fullscreen ...) are not ours to judge
        opts = {**self._DEFAULTS, **{k: v for k, v in options.items() if k in self._DEFAULTS}}
        for key in ("stall_timeout", "connect_timeout", "close_timeout"):
            value = opts[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise NetworkTargetError(
                    f"network output {self.target.name!r}: {key} must be a number of seconds > 0, "
                    f"got {value!r}")
        if not isinstance(opts["rebase"], bool):
            raise NetworkTargetError(
                f"network output {self.target.name!r}: rebase must be True or False, got {opts['rebase']!r}")
        max_session = opts["max_session"]
        if self.target.format != "flv":
            max_session = None       # a limit of streaming platforms, which speak RTMP
        elif max_session is not None and (isinstance(max_session, bool)
                                          or not isinstance(max_session, (int, float))
                                          or not 1.0 <= max_session < float("inf")):
            raise NetworkTargetError(
                f"network output {self.target.name!r}: max_session must be a number of "
                f"seconds >= 1 (or None), got {max_session!r}")
        parts = urlsplit(self.target.url)
        if self.target.listen:
            _check_port_free(parts.hostname, parts.port, self.target.name)
        else:
            check_resolves(parts.hostname, self.target.name)
        super().__init__(self.target.name, on_state)
        self.stall_timeout = float(opts["stall_timeout"])
        self.connect_timeout = float(opts["connect_timeout"])
        self.close_timeout = float(opts["close_timeout"])
        self.rebase = opts["rebase"]
        self.max_session = None if max_session is None else float(max_session)
        self.sessions = 0             # sessions ended for max_session, each followed by a new one
        self._fps = None
        self._next_session: bytearray | None = None   # packets for the next session's child
        self._next_start: int | None = None
        self._next_count = 0
        self._spare: _Child | None = None             # started ahead, waiting for its header
        self.connections = 0          # times a child got connected
        self.restarts = 0             # children started after the first
        self.stalls = 0               # children killed for not making progress
        self._lock = threading.Lock()           # guards the child's pipe and counters
        self._state_lock = threading.Lock()
        self._child: _Child | None = None
        self._need_keyframe = True
        self._closing = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._header = b""

    @property
    def child_pid(self) -> int | None:
        """The process id of the current network child, None between children."""
        child = self._child
        return child.proc.pid if child is not None else None

    # --- Output hooks (the worker thread) --------------------------------------------

    def _open(self, info: StreamInfo) -> None:
        self._header = msgpack.packb(self._header_map(info), use_bin_type=True)
        self._fps = info.fps
        self._supervisor = threading.Thread(target=self._supervise, name=f"supervisor {self.name}",
                                            daemon=True)
        self._supervisor.start()

    def _write(self, item) -> None:
        if not isinstance(item, Packet):
            self._drop()   # raw frames are for outputs that encode for themselves
            return
        with self._lock:
            if self._next_session is not None:
                # between two sessions: kept for the next one, which starts at a keyframe
                if len(self._next_session) > MAX_BACKLOG:
                    self._next_session, self._next_start = None, None
                    self._need_keyframe = True
                    self._drop()
                    return
                self._next_session += self._pack(item)
                self._next_count += 1
                return
            child = self._child
            if child is None or not (child.connected or child.carried) or child.stdin_closed:
                self._need_keyframe = True
                self._drop()
                return
            if item.kind == "video" and self._need_keyframe:
                if not item.keyframe:
                    self._drop()
                    return
                self._need_keyframe = False
            if len(child.outgoing) > MAX_BACKLOG:
                self._need_keyframe = True
                self._drop()
                return
            if item.kind == "video" and item.keyframe:
                if child.session_start is None:
                    child.session_start = item.pts
                elif self._session_over(child, item.pts):
                    # This keyframe opens the next session; the child finishes this one.
                    child.retiring = True
                    self._next_session, self._next_start = bytearray(self._pack(item)), item.pts
                    self._next_count = 1
                    return
            child.outgoing += self._pack(item)
            if item.kind == "video":
                child.last_pts = item.pts
            if child.forwarded == child.acked:
                child.last_progress = time.monotonic()   # the stall clock starts now
            child.forwarded += 1
            self._flush(child)

    @staticmethod
    def _pack(item: Packet) -> bytes:
        return msgpack.packb(
            {"kind": item.kind, "pts": item.pts, "dts": item.dts, "duration": item.duration,
             "keyframe": bool(item.keyframe), "data": bytes(item.data)},
            use_bin_type=True)

    def _session_over(self, child: _Child, pts: int) -> bool:
        """Whether a keyframe at `pts` comes too near the end of the child's session."""
        if self.max_session is None or child.retiring or self._fps is None:
            return False
        return (pts - child.session_start) / self._fps >= session_end(self.max_session)

    def _session_ending(self, child: _Child) -> bool:
        """Whether the child's session ends within SESSION_MARGIN seconds or so."""
        start, last = child.session_start, child.last_pts
        if self.max_session is None or start is None or last is None or self._fps is None:
            return False
        return (last - start) / self._fps >= session_end(self.max_session) - SESSION_MARGIN

    def _close(self) -> None:
        self._closing.set()
        if self._supervisor is not None:
            self._supervisor.join(self.close_timeout + 2.0)

    def _set_state(self, state: str, detail: str | None = None) -> None:
        # The base marks an output running once its worker is up; for a network
        # output "running" means connected, which only the child can tell. (The
        # base's "running" after "stalled" is the state before the stall again.)
        if state == "running" and self.state != "stalled":
            return
        self._report(state, detail)

    def _report(self, state: str, detail: str | None) -> None:
        with self._state_lock:
            if self.state == "closed":
                return
            Output._set_state(self, state, detail)

    def _drop(self) -> None:
        # the base counts every item _write returns from as written; this one was not
        self.stats.dropped += 1
        self.stats.written -= 1

    # --- the supervisor thread ---------------------------------------------------------

    def _header_map(self, info: StreamInfo) -> dict:
        fps = info.fps
        return {
            "version": 1, "target": self.target.url, "name": self.target.name,
            "format": self.target.format, "listen": self.target.listen, "rebase": self.rebase,
            # flv over rtmp cannot seek back to patch duration/filesize at the end
            "options": {"flvflags": "no_duration_filesize"} if self.target.format == "flv" else {},
            "width": info.width, "height": info.height, "fps": [fps.numerator, fps.denominator],
            "video_codec": info.video_codec, "video_extradata": bytes(info.video_extradata),
            "video_bitrate": info.video_bitrate,
            "audio_codec": info.audio_codec, "audio_extradata": bytes(info.audio_extradata),
            "audio_rate": info.audio_rate, "audio_channels": info.audio_channels,
            "audio_bitrate": info.audio_bitrate,
        }

    def _supervise(self) -> None:
        delay = BACKOFF_MIN
        next_start = time.monotonic()
        started_once = False
        try:
            while True:
                if self._child is None:
                    if self._closing.is_set():
                        return
                    if self._closing.wait(max(0.0, next_start - time.monotonic())):
                        return
                    self._spawn(restart=started_once)
                    started_once = True
                    continue
                child = self._child
                if not self._service(child):
                    continue
                # the child is gone: say why and decide when to try again
                reason, fatal = self._end(child)
                if self._closing.is_set():
                    return
                if child.retiring and child.error is None and child.end_reason is None:
                    self._renew()          # its session ended cleanly: the next one, now
                    continue
                if fatal:
                    self._report("failed", reason)
                    return
                if child.connected and time.monotonic() - child.connected_at >= STABLE_AFTER:
                    delay = BACKOFF_MIN
                if self.target.listen and child.connected:
                    wait = BACKOFF_MIN   # a client leaving is normal; listen again at once
                else:
                    wait, delay = delay, min(delay * 2, BACKOFF_MAX)
                next_start = time.monotonic() + wait
                detail = f"{reason}; retrying in {wait:g} s"
                self._report("reconnecting", detail)
        except Exception as e:  # the supervisor must not die silently
            log.exception("output %s: supervisor failed", self.name)
            if self._child is not None:
                self._kill(self._child)
            self._report("failed", f"supervisor error: {type(e).__name__}: {e}")
        finally:
            spare, self._spare = self._spare, None
            if spare is not None:
                self._kill(spare)
                self._discard(spare)

    def _spawn(self, restart: bool) -> None:
        child, self._spare = self._spare, None
        if child is None or not child.alive():
            child = self._start_child()
        child.outgoing += self._header
        with self._lock:
            self._child = child
            self._flush(child)
        if restart:
            self.restarts += 1

    def _renew(self) -> None:
        """The next session: the child started ahead (or a new one) gets the header and
        the packets kept since the keyframe that opens it."""
        child, self._spare = self._spare, None
        if child is None or not child.alive():
            if child is not None:
                self._kill(child)
                self._discard(child)
            child = self._start_child()
        child.carried = True
        child.spawned = time.monotonic()        # its connect_timeout starts now
        with self._lock:
            child.outgoing += self._header
            if self._next_session is not None:
                child.outgoing += self._next_session
                child.session_start = self._next_start
                child.forwarded = self._next_count   # the child acks them like any other
            else:
                self._need_keyframe = True
            self._next_session, self._next_start = None, None
            self._child = child
            self._flush(child)
        self.sessions += 1

    def _start_child(self) -> _Child:
        """A network child, waiting for its header on stdin."""
        env = dict(os.environ)
        # the child imports lofid from wherever this process found it
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        proc = subprocess.Popen(
            [sys.executable, "-m", "lofid.outputs.network_child"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            bufsize=0, env=env,
            # its own session: a Ctrl-C meant for the daemon must not cut the stream
            # short before the daemon closes it cleanly
            start_new_session=True)
        child = _Child(proc)
        for fd in (child.stdin, *child.readers):
            os.set_blocking(fd, False)
        try:
            fcntl.fcntl(child.stdin, _F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass  # the default pipe size works, with less slack
        return child

    def _service(self, child: _Child) -> bool:
        """One round of watching a child; True when it has ended (and is reaped)."""
        with self._lock:
            want_write = bool(child.outgoing) and not child.stdin_closed
        readers = list(child.readers)
        try:
            readable, writable, _ = select.select(readers, [child.stdin] if want_write else [], [], 0.1)
        except (OSError, ValueError):
            readable, writable = readers, []
        for fd in readable:
            self._read(child, fd)
        if writable:
            with self._lock:
                self._flush(child)
        now = time.monotonic()
        if not child.alive():
            for fd in list(child.readers):
                self._read(child, fd)    # the last words: its error event
            return True
        if self._closing.is_set():
            self._shut(child, now)
        elif child.retiring:
            if self._spare is None:
                self._spare = self._start_child()
            self._shut(child, now)
        elif child.connected:
            if self._spare is None and self._session_ending(child):
                # The next session's child starts up (Python, libavformat) ahead, so it
                # connects the moment this one has closed.
                self._spare = self._start_child()
            with self._lock:
                stalled = child.forwarded > child.acked and now - child.last_progress > self.stall_timeout
            if stalled:
                self.stalls += 1
                child.end_reason = (f"the stream stalled: nothing got through for "
                                    f"{self.stall_timeout:g} s")
                self._kill(child)
        elif not child.listening and now - child.spawned > self.connect_timeout:
            child.end_reason = f"no connection within {self.connect_timeout:g} s"
            self._kill(child)
        return False

    def _read(self, child: _Child, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            child.readers.pop(fd, None)
            return
        if child.readers[fd] == "log":
            lines = (child.log_partial + data).split(b"\n")
            child.log_partial = lines.pop()[-4096:]
            for line in lines:
                text = self._hide_key(line.decode("utf-8", "replace").strip())
                if text:
                    child.log_tail.append(text)
                    log.debug("output %s child: %s", self.name, text)
            return
        child.events.feed(data)
        for event in child.events:
            self._on_event(child, event)

    def _on_event(self, child: _Child, event: dict) -> None:
        kind = event.get("event") if isinstance(event, dict) else None
        if kind == "ack":
            with self._lock:
                child.acked = int(event.get("count", 0))
                child.last_progress = time.monotonic()
        elif kind == "connected":
            with self._lock:
                child.connected = True
                child.connected_at = time.monotonic()
                if not child.carried:       # a new session's packets are already queued
                    self._need_keyframe = True
            self.connections += 1
            detail = self._hide_key(str(event.get("detail") or ""))
            self._report("running", detail)
        elif kind == "listening":
            child.listening = True
            detail = self._hide_key(str(event.get("detail") or ""))
            self._report("starting" if self.connections == 0 else "reconnecting", detail)
        elif kind == "error":
            child.error = (self._hide_key(str(event.get("reason") or "")), bool(event.get("fatal")))
        else:
            log.debug("output %s: unknown event from the child: %r", self.name, event)

    def _flush(self, child: _Child) -> None:
        """Writes what the pipe takes now; never waits (caller holds the lock)."""
        while child.outgoing and not child.stdin_closed:
            try:
                n = os.write(child.stdin, child.outgoing)
            except BlockingIOError:
                return
            except OSError:
                # the child is gone; its exit is noticed and handled by the supervisor
                child.outgoing.clear()
                return
            del child.outgoing[:n]

    def _shut(self, child: _Child, now: float) -> None:
        """Closing: let a connected child finish its stream, within close_timeout."""
        if child.closing_since is None:
            child.closing_since = now
        if not child.connected:
            self._kill(child)    # nothing was streamed: nothing to finish
            return
        with self._lock:
            if not child.outgoing and not child.stdin_closed:
                child.stdin_closed = True
                child.proc.stdin.close()   # end of input: the child flushes and exits
        if now - child.closing_since > self.close_timeout:
            log.warning("output %s: the stream did not finish within %g s; killing it",
                        self.name, self.close_timeout)
            self._kill(child)

    def _kill(self, child: _Child) -> None:
        if child.alive():
            child.proc.kill()
        try:
            child.proc.wait(2.0)
        except subprocess.TimeoutExpired:
            log.error("output %s: child %d did not die", self.name, child.proc.pid)

    def _end(self, child: _Child) -> tuple[str, bool]:
        """Reaps a child that has exited; returns (reason, fatal)."""
        code = child.proc.wait()
        with self._lock:
            self._child = None
            child.stdin_closed = True
            if not child.retiring or child.error is not None or child.end_reason is not None:
                # a session that did not end cleanly hands nothing on
                self._next_session, self._next_start = None, None
        self._discard(child)
        if child.end_reason:
            return child.end_reason, False
        if child.error:
            return child.error
        if code == 0:
            return "the stream ended", False
        tail = "; ".join(child.log_tail)
        return f"the network process exited with status {code}" + (f": {tail}" if tail else ""), code == 2

    @staticmethod
    def _discard(child: _Child) -> None:
        for stream in (child.proc.stdin, child.proc.stdout, child.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass

    def _hide_key(self, text: str) -> str:
        # libavformat's messages quote the URL, stream key and all
        return text.replace(self.target.url, self.target.name)

"""The control socket: msgpack-RPC, the protocol Neovim speaks, on a Unix socket.

    request       [0, id, method, params]  ->  response [1, id, error, result]
    notification  [2, method, params]          (either way; no reply)

An error is [code, message], as Neovim sends them, so pynvim and vim.rpcrequest
raise it with the message. Three layers, each knowing nothing of the one above:
framing (a streaming msgpack Unpacker on each connection), the session (match a
message to a handler, answer by id, route notifications), and the handlers, which
the daemon supplies as a dict of method name -> callable(params) -> result.

A bad message never takes the server down: it gets an error response where a
request id is known; otherwise (bytes that are not msgpack, a message over 4 MiB)
the connection is closed. A client that does not read its notifications has its
send buffer bounded and is then dropped. The socket is 0600 inside a 0700 folder of
the user's; a symlink or someone else's folder is refused, a live daemon's socket is
never taken over, and a dead one's is replaced.

A TCP listener is opened only when asked for, and only with a token: the first
request on a TCP connection must be `auth(token)`; anything else, or a wrong token,
gets an error reply and the connection is closed. After that it is the same as the
Unix socket. (`auth` on the Unix socket, whose file permissions already decide who
may connect, is accepted and does nothing.) TCP carries the token and everything
after it in clear text: on anything but the loopback, tunnel it (ssh -L).
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import logging
import os
import socket
import stat
import threading
from pathlib import Path
from typing import Any, Callable

import msgpack

from lofid import paths

log = logging.getLogger("lofid.rpc")

REQUEST, RESPONSE, NOTIFICATION = 0, 1, 2
MAX_MESSAGE = 4 * 1024 * 1024       # bytes a single message may take
MAX_SEND_BUFFER = 1024 * 1024       # bytes queued for one client before it is dropped
AUTH_TIMEOUT = 10.0                 # seconds a TCP client has to send auth(token)

# error codes (the first element of an error)
E_INVALID = 1       # not a valid message, or wrong params
E_NO_METHOD = 2
E_FAILED = 3        # the handler raised
E_AUTH = 4          # TCP: no auth(token) first, or a wrong token


class RpcError(Exception):
    """Raised by a handler to answer with a clear message (and a code)."""

    def __init__(self, message: str, code: int = E_INVALID):
        super().__init__(message)
        self.code = code


class SocketError(Exception):
    """The socket cannot be made safely; the message says why."""


class AlreadyRunning(SocketError):
    pass


def default_socket_path() -> Path:
    return paths.socket_path()


def prepare_socket_path(path: str | Path) -> Path:
    """Make the socket's folder safe (0700, ours, not a symlink) and clear a stale
    socket; raise AlreadyRunning when a live daemon answers on it."""
    path = Path(path)
    folder = path.parent
    if folder.is_symlink():
        raise SocketError(f"refusing {folder}: it is a symlink")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = folder.lstat()
    if st.st_uid != os.getuid():
        raise SocketError(f"refusing {folder}: it belongs to uid {st.st_uid}, not to you "
                          f"(uid {os.getuid()})")
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(folder, 0o700)   # ours, but too open: close it before the socket goes in
    if path.is_symlink():
        raise SocketError(f"refusing {path}: it is a symlink")
    if path.exists():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise SocketError(f"refusing {path}: it exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError as e:
            if e.errno not in (errno.ECONNREFUSED, errno.ENOENT):
                raise SocketError(f"cannot tell whether {path} is in use: {e}") from e
            path.unlink()         # stale: its daemon is gone
        else:
            raise AlreadyRunning(f"lofid is already running (socket {path})")
        finally:
            probe.close()
    return path


class _Connection(asyncio.Protocol):
    """One client: framing in, responses and notifications out."""

    def __init__(self, server: "Server", needs_auth: bool = False):
        self.server = server
        self.needs_auth = needs_auth      # TCP: until a right auth(token)
        self.unpacker = msgpack.Unpacker(raw=False, max_buffer_size=MAX_MESSAGE,
                                         strict_map_key=False)
        self.transport: asyncio.Transport | None = None
        self.events: set[str] = set()

    # --- asyncio ----------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.server.connections.add(self)
        if self.needs_auth:
            # A TCP client that never says who it is must not hold a connection open.
            asyncio.get_running_loop().call_later(self.server.auth_timeout, self._auth_late)

    def _auth_late(self) -> None:
        if self.needs_auth and self.transport is not None and not self.transport.is_closing():
            log.warning("closing a TCP control connection: no auth(token) within %g s",
                        self.server.auth_timeout)
            self.transport.abort()

    def connection_lost(self, exc) -> None:
        self.server.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.unpacker.feed(data)
            for message in self.unpacker:
                self._handle(message)
                if self.transport is None or self.transport.is_closing():
                    return
        except msgpack.BufferFull:
            self._close(f"a message over {MAX_MESSAGE} bytes")
        except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError) as e:
            self._close(f"not msgpack ({type(e).__name__})")

    # --- the session ------------------------------------------------------------------

    def _handle(self, message: Any) -> None:
        kind = message[0] if isinstance(message, list) and message else None
        has_id = len(message) >= 2 and _is_int(message[1]) if kind is not None else False
        if self.needs_auth:
            self._authenticate(message, kind, has_id)
        elif _is_int(kind) and kind == REQUEST and len(message) == 4 and has_id:
            _, msgid, method, params = message
            error, result = self.server.call(self, method, params)
            self.reply(msgid, error, result)
        elif _is_int(kind) and kind == NOTIFICATION and len(message) == 3:
            _, method, params = message
            error, _ = self.server.call(self, method, params)
            if error is not None:
                log.warning("notification %r failed: %s", method, error[1])
        elif _is_int(kind) and kind == REQUEST and has_id:
            self.reply(message[1], [E_INVALID, "a request is [0, id, method, params]"], None)
        else:
            # Nothing to answer by id: a response from a client, or not a message at all.
            self._close("a message that is neither [0, id, method, params] "
                        "nor [2, method, params]")

    def _authenticate(self, message, kind, has_id: bool) -> None:
        """The first message on a TCP connection: [0, id, "auth", [token]], or the
        connection is answered with an error (where it has an id) and closed."""
        is_request = _is_int(kind) and kind == REQUEST and len(message) == 4 and has_id
        if is_request and message[2] == "auth" and isinstance(message[3], list) \
                and len(message[3]) == 1 and self.server.token_matches(message[3][0]):
            self.needs_auth = False
            self.reply(message[1], None, True)
            return
        why = ("wrong token" if is_request and message[2] == "auth"
               else "the first request on a TCP connection must be auth(token)")
        if has_id:
            self.reply(message[1], [E_AUTH, why], None)
        log.warning("closing a TCP control connection: %s", why)
        if self.transport is not None:
            self.transport.close()        # after the reply has gone out

    def reply(self, msgid: int, error, result) -> None:
        self.send([RESPONSE, msgid, error, result])

    def send(self, message) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        try:
            data = msgpack.packb(message, use_bin_type=True)
        except (TypeError, ValueError) as e:
            data = msgpack.packb([RESPONSE, message[1], [E_FAILED, f"result not sendable: {e}"], None]
                                 if message[0] == RESPONSE else [NOTIFICATION, "error", [str(e)]])
        if transport.get_write_buffer_size() + len(data) > MAX_SEND_BUFFER:
            # A client that does not read must not make the daemon hold its backlog.
            self._close("it does not read what is sent to it")
            return
        transport.write(data)

    def _close(self, why: str) -> None:
        log.warning("closing a control connection: %s", why)
        if self.transport is not None:
            self.transport.abort()


def _is_int(value) -> bool:
    return type(value) is int   # msgpack's true/false are not ids


# Handlers run on the socket's event loop thread: they must return quickly (hand
# slow work to the director or a worker) so that every client is answered at once.
Handler = Callable[[list], Any]


class Server:
    """The msgpack-RPC server. `handlers` maps method names to callables taking the
    params list; `subscribe`, `unsubscribe` and `auth` are built in. Runs its own
    event loop in a thread, so the daemon's other threads never wait on a client.

    `path` is the Unix socket (None: none). `tcp` = (host, port) opens a TCP
    listener too, which needs `token`: the secret each TCP client sends first."""

    def __init__(self, path: str | Path | None, handlers: dict[str, Handler],
                 tcp: tuple[str, int] | None = None, token: str | None = None):
        if path is None and tcp is None:
            raise ValueError("a control server needs a socket path, a TCP address or both")
        if tcp is not None and not token:
            raise SocketError("refusing a TCP control listener without a token: anyone who "
                              "can reach the port could drive lofid (set control_token_file)")
        self.path = None if path is None else Path(path)
        self.tcp = tcp
        self._token = None if token is None else token.encode()
        self.handlers = dict(handlers)
        self.handlers.setdefault("subscribe", None)
        self.handlers.setdefault("unsubscribe", None)
        self.handlers.setdefault("auth", lambda params: True)   # the Unix socket needs none
        self.connections: set[_Connection] = set()
        self.tcp_address: tuple[str, int] | None = None   # where TCP listens (port 0: the one picked)
        self.auth_timeout = AUTH_TIMEOUT
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._tcp_server = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        if self.path is not None:
            prepare_socket_path(self.path)
        self._thread = threading.Thread(target=self._run, name="control socket", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            where = self.path if self._tcp_server is not None or self.tcp is None \
                else f"{self.tcp[0]}:{self.tcp[1]}"
            raise SocketError(f"cannot listen on {where}: {self._error}") from self._error

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            if self.tcp is not None:
                host, port = self.tcp
                self._tcp_server = loop.run_until_complete(loop.create_server(
                    lambda: _Connection(self, needs_auth=True), host, port))
                self.tcp_address = self._tcp_server.sockets[0].getsockname()[:2]
            if self.path is not None:
                self._server = loop.run_until_complete(
                    loop.create_unix_server(lambda: _Connection(self), str(self.path)))
                # No one else could reach it before this: its folder is 0700 and ours.
                os.chmod(self.path, 0o600)
        except BaseException as e:
            self._error = e
            for listener in (self._tcp_server, self._server):
                if listener is not None:
                    listener.close()
            self._ready.set()
            return
        self._ready.set()
        listeners = [x for x in (self._server, self._tcp_server) if x is not None]
        try:
            loop.run_forever()
        finally:
            for listener in listeners:
                listener.close()
            for conn in list(self.connections):
                if conn.transport is not None:
                    conn.transport.abort()
            for listener in listeners:
                loop.run_until_complete(listener.wait_closed())
            loop.close()

    def stop(self) -> None:
        """Close every connection and remove the socket file."""
        try:
            if self._loop is not None and self._thread is not None and self._thread.is_alive():
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=5)
        finally:
            if self.path is not None and self._server is not None:   # ours, not another's
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass

    def token_matches(self, given) -> bool:
        """Constant-time: how much of a wrong token was right never shows in the time."""
        if isinstance(given, str):
            given = given.encode()
        return isinstance(given, bytes) and self._token is not None \
            and hmac.compare_digest(given, self._token)

    # --- calls and events -------------------------------------------------------------

    def call(self, conn: _Connection, method, params) -> tuple[list | None, Any]:
        """(error, result) for one call; a handler's exception becomes an error."""
        if not isinstance(method, str):
            return [E_INVALID, "the method name must be a string"], None
        if method not in self.handlers:
            return [E_NO_METHOD, f"unknown method {method!r}; known: "
                                 f"{', '.join(sorted(self.handlers))}"], None
        if not isinstance(params, list):
            return [E_INVALID, f"params of {method} must be an array"], None
        try:
            if method == "subscribe":
                return None, self._subscribe(conn, params)
            if method == "unsubscribe":
                return None, self._unsubscribe(conn, params)
            return None, self.handlers[method](params)
        except RpcError as e:
            return [e.code, str(e)], None
        except Exception as e:   # a handler bug is an error reply, never a dead server
            log.exception("method %s failed", method)
            return [E_FAILED, f"{method} failed: {type(e).__name__}: {e}"], None

    def _events(self, params: list) -> set[str]:
        names = params[0] if len(params) == 1 and isinstance(params[0], list) else params
        if not names or not all(isinstance(n, str) for n in names):
            raise RpcError("subscribe takes event names, e.g. [\"scene_changed\"] or [\"*\"]")
        return set(names)

    def _subscribe(self, conn: _Connection, params: list) -> list[str]:
        conn.events |= self._events(params)
        return sorted(conn.events)

    def _unsubscribe(self, conn: _Connection, params: list) -> list[str]:
        conn.events -= self._events(params)
        return sorted(conn.events)

    def notify(self, event: str, payload: Any) -> None:
        """Push [2, event, [payload]] to every client subscribed to it (or to "*").
        Thread-safe and never blocks the caller."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def push():
            for conn in list(self.connections):
                if event in conn.events or "*" in conn.events:
                    conn.send([NOTIFICATION, event, [payload]])
        try:
            loop.call_soon_threadsafe(push)
        except RuntimeError:   # the loop closed meanwhile
            pass

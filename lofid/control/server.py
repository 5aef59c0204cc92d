"""The control socket's server: msgpack-RPC (see protocol.py) on a Unix socket, and on
TCP when asked for.

Three layers, each knowing nothing of the one above: the connection (framing: a
streaming msgpack Unpacker in, packed messages out, a bounded send buffer), the session
(auth first on TCP, then match a message to a handler, answer by id, the events it
subscribed to), and the handlers, which the daemon supplies as a dict of method name ->
callable(params) -> result (see api.py).

A bad message never takes the server down: it gets an error response where a
request id is known; otherwise (bytes that are not msgpack, a message over 4 MiB)
the connection is closed. A client that does not read its notifications has its
send buffer bounded and is then dropped. Clients are capped below the open-file limit:
the newest one past the cap gets an error notification and is closed, so idle
connections never starve the daemon's outputs and library of file descriptors.

The socket is 0600 from the moment it exists, in a folder of the user's that no one
else can write to. A folder lofid makes for it is 0700; an existing folder is never
changed (it may be /tmp), and one others can write to, a symlink or someone else's
folder is refused. A live daemon's socket is never taken over; a dead one's is replaced.

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
import resource
import socket
import stat
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

from lofid import paths
from lofid.errors import UserError
from lofid.control import events
from lofid.control.protocol import (BAD_BYTES, E_AUTH, E_FAILED, E_INVALID, E_NO_METHOD,
                                    MAX_MESSAGE, NOTIFY, RESPONSE, TOO_BIG, Malformed,
                                    Notification, Request, RpcError, classify, pack,
                                    unpacker)

log = logging.getLogger("lofid.rpc")

MAX_SEND_BUFFER = 1024 * 1024       # bytes queued for one client before it is dropped
AUTH_TIMEOUT = 10.0                 # seconds a TCP client has to send auth(token)
MAX_CLIENTS = 1024                  # connections at once, at most (and half the fd limit)
ACCEPT_RETRY = 1.0                  # seconds before accepting again when out of descriptors


class SocketError(UserError):
    """The socket cannot be made safely; the message says why."""


class AlreadyRunning(SocketError):
    pass


def default_socket_path() -> Path:
    return paths.socket_path()


def prepare_socket_path(path: str | Path) -> Path:
    """Make sure the socket's folder is safe and clear a stale socket; raise
    AlreadyRunning when a live daemon answers on it.

    Safe: ours, not a symlink, and no one else can write to it (who could, could put
    their own socket in its place). A folder made here is made 0700; an existing one is
    never changed, since it may be shared (/tmp): one that is not safe is refused."""
    path = Path(path)
    folder = path.parent
    if folder.is_symlink():
        raise SocketError(f"refusing {folder}: it is a symlink")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            made = False
        else:
            made = True
            os.chmod(folder, 0o700)   # ours, just made: whatever the umask left
    except OSError as e:
        raise SocketError(f"cannot make the socket's folder {folder}: {e.strerror}") from None
    st = folder.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise SocketError(f"refusing {path}: {folder} is not a folder")
    if st.st_uid != os.getuid():
        raise SocketError(f"refusing {folder}: it belongs to uid {st.st_uid}, not to you "
                          f"(uid {os.getuid()})")
    mode = stat.S_IMODE(st.st_mode)
    if not made and mode & 0o022:
        raise SocketError(
            f"refusing {path}: its folder {folder} is writable by others (mode {mode:o}), "
            f"who could replace the socket, and lofid never changes a folder it did not "
            f"make; use one only you can write to, e.g. --socket "
            f"{folder / f'lofid-{os.getuid()}' / path.name} (lofid makes it, 0700), "
            f"or --socket alone for {default_socket_path()}")
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


def max_clients() -> int:
    """Connections to take at once: half the open-file limit (the outputs, the library
    and the encoders need the rest), MAX_CLIENTS at most."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CLIENTS
    return max(1, min(MAX_CLIENTS, soft // 2))


class _Quiet:
    """Log a failure once, then only count its repeats: a failure that recurs many
    times a second (out of descriptors) must not fill the log. A repeat is logged again
    with the count after `every` seconds."""

    def __init__(self, every: float = 60.0):
        self.every = every
        self._seen: dict[str, list] = {}   # key -> [time last logged, repeats since]

    def warn(self, key: str, message: str, *args, exc_info=None) -> None:
        now = time.monotonic()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.every:
            seen[1] += 1
            return
        repeats = 0 if seen is None else seen[1]
        self._seen[key] = [now, 0]
        log.warning(message + (f" (and {repeats} more times since)" if repeats else ""),
                    *args, exc_info=exc_info)


def _unix_listener(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # 0600 before it has a name: Linux makes the file with the socket's own mode, so
        # there is no moment at which others could connect.
        os.fchmod(sock.fileno(), 0o600)
        sock.bind(str(path))
        os.chmod(path, 0o600)             # where the mode does not carry over
        sock.listen(100)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _tcp_listeners(host: str, port: int) -> list[socket.socket]:
    """A listening socket on each address `host` names (as asyncio's create_server)."""
    listeners: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)):
            sock = socket.socket(family, kind, proto)
            listeners.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(100)
            sock.setblocking(False)
    except BaseException:
        for sock in listeners:
            sock.close()
        raise
    return listeners


class _TokenAuth:
    """Who may use a TCP connection: the first request on it must be auth(token)."""

    def __init__(self, token: str | None):
        self._token = None if token is None else token.encode()

    def matches(self, given) -> bool:
        """Constant-time: how much of a wrong token was right never shows in the time."""
        if isinstance(given, str):
            given = given.encode()
        return isinstance(given, bytes) and self._token is not None \
            and hmac.compare_digest(given, self._token)

    def refusal(self, message) -> str | None:
        """Why the first message of a TCP connection does not let it in; None when it
        is [0, id, "auth", [token]] with the right token."""
        if isinstance(message, Request) and message.method == "auth":
            params = message.params
            if isinstance(params, list) and len(params) == 1 and self.matches(params[0]):
                return None
            return "wrong token"
        return "the first request on a TCP connection must be auth(token)"


class _Session:
    """What one client may do and hears: auth first on TCP, then requests and
    notifications routed to the server's handlers, and the events subscribed to."""

    def __init__(self, server: "Server", conn: "_Connection", needs_auth: bool):
        self.server = server
        self.conn = conn
        self.needs_auth = needs_auth      # TCP: until a right auth(token)
        self.events: set[str] = set()

    def handle(self, raw: Any) -> None:
        message = classify(raw)
        if self.needs_auth:
            self._authenticate(message)
        elif isinstance(message, Request):
            error, result = self.server.call(self, message.method, message.params)
            if isinstance(result, Future):
                self.server.answer_later(self.conn, message.msgid, result)
            else:
                self.conn.reply(message.msgid, error, result)
        elif isinstance(message, Notification):
            error, _ = self.server.call(self, message.method, message.params)
            if error is not None:
                log.warning("notification %r failed: %s", message.method, error[1])
        elif isinstance(message, Malformed) and message.msgid is not None:
            self.conn.reply(message.msgid, [E_INVALID, message.why], None)
        else:
            # Nothing to answer by id: a response from a client, or not a message at all.
            self.conn.close("a message that is neither [0, id, method, params] "
                            "nor [2, method, params]")

    def _authenticate(self, message) -> None:
        """The first message on a TCP connection: [0, id, "auth", [token]], or the
        connection is answered with an error (where it has an id) and closed."""
        why = self.server.auth.refusal(message)
        msgid = getattr(message, "msgid", None)
        if why is None:
            self.needs_auth = False
            self.conn.reply(msgid, None, True)
            return
        if msgid is not None:
            self.conn.reply(msgid, [E_AUTH, why], None)
        log.warning("closing a TCP control connection: %s", why)
        self.conn.close_after_sending()

    def wants(self, event: str) -> bool:
        return event in self.events or "*" in self.events


class _Connection(asyncio.Protocol):
    """One client's bytes: framing in, responses and notifications out; what the
    messages mean is its session's business."""

    def __init__(self, server: "Server", needs_auth: bool = False):
        self.server = server
        self.session = _Session(server, self, needs_auth)
        self.unpacker = unpacker(MAX_MESSAGE)
        self.transport: asyncio.Transport | None = None
        self.pending = True               # counted by the server as accepted, not yet here

    @property
    def needs_auth(self) -> bool:
        return self.session.needs_auth

    # --- asyncio ----------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.server.connections.add(self)
        self.server._arrived(self)
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
                self.session.handle(message)
                if self.transport is None or self.transport.is_closing():
                    return
        except TOO_BIG:
            self.close(f"a message over {MAX_MESSAGE} bytes")
        except BAD_BYTES as e:
            self.close(f"not msgpack ({type(e).__name__})")

    # --- out --------------------------------------------------------------------------

    def reply(self, msgid: int, error, result) -> None:
        self.send([RESPONSE, msgid, error, result])

    def send(self, message) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        try:
            data = pack(message)
        except (TypeError, ValueError) as e:
            data = pack([RESPONSE, message[1], [E_FAILED, f"result not sendable: {e}"], None]
                        if message[0] == RESPONSE else [NOTIFY, events.ERROR, [str(e)]])
        if transport.get_write_buffer_size() + len(data) > MAX_SEND_BUFFER:
            # A client that does not read must not make the daemon hold its backlog.
            self.close("it does not read what is sent to it")
            return
        transport.write(data)

    def close(self, why: str) -> None:
        log.warning("closing a control connection: %s", why)
        if self.transport is not None:
            self.transport.abort()

    def close_after_sending(self) -> None:
        if self.transport is not None:
            self.transport.close()        # after what was written has gone out


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
        self.auth = _TokenAuth(token)
        self.handlers = dict(handlers)
        self.handlers.setdefault("subscribe", None)
        self.handlers.setdefault("unsubscribe", None)
        self.handlers.setdefault("auth", lambda params: True)   # the Unix socket needs none
        self.connections: set[_Connection] = set()
        self.tcp_address: tuple[str, int] | None = None   # where TCP listens (port 0: the one picked)
        self.auth_timeout = AUTH_TIMEOUT
        self.max_clients = max_clients()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: list[tuple[socket.socket, bool]] = []   # (listener, needs_auth)
        self._unix: socket.socket | None = None   # the listener on our socket file
        self._pending = 0                  # accepted, not yet a _Connection
        self._pending_tcp = 0              # of those, on TCP
        self._tasks: set[asyncio.Task] = set()
        self._quiet = _Quiet()
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
            where = self.path if self.tcp_address is not None or self.tcp is None \
                else f"{self.tcp[0]}:{self.tcp[1]}"
            raise SocketError(f"cannot listen on {where}: {self._error}") from self._error

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        loop.set_exception_handler(self._loop_error)
        try:
            if self.tcp is not None:
                self._listeners += [(s, True) for s in _tcp_listeners(*self.tcp)]
                self.tcp_address = self._listeners[0][0].getsockname()[:2]
            if self.path is not None:
                self._unix = _unix_listener(self.path)
                self._listeners.append((self._unix, False))
            for listener, needs_auth in self._listeners:
                loop.add_reader(listener.fileno(), self._accept, listener, needs_auth)
        except BaseException as e:
            self._error = e
            self._close_listeners()
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._close_listeners()
            for conn in list(self.connections):
                if conn.transport is not None:
                    conn.transport.abort()
            for task in self._tasks:
                task.cancel()
            if self._tasks:
                loop.run_until_complete(asyncio.gather(*self._tasks, return_exceptions=True))
            loop.run_until_complete(asyncio.sleep(0))     # the aborted ones' connection_lost
            loop.close()

    def _close_listeners(self) -> None:
        for listener, _ in self._listeners:
            if listener.fileno() != -1:
                self._loop.remove_reader(listener.fileno())
                listener.close()

    def stop(self) -> None:
        """Close every connection and remove the socket file."""
        try:
            if self._loop is not None and self._thread is not None and self._thread.is_alive():
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=5)
        finally:
            if self.path is not None and self._unix is not None:   # ours, not another's
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass

    # --- taking connections -----------------------------------------------------------
    # Accepted here rather than by asyncio's servers, which, out of descriptors, retry
    # and log a traceback many times a second, and take any number of clients.

    def _accept(self, listener: socket.socket, needs_auth: bool) -> None:
        for _ in range(100):                # those waiting now; then the others get a turn
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as e:
                # Out of descriptors (or memory): the clients wait in the backlog. Linux
                # keeps saying the listener is ready, so stop watching it for a while.
                self._quiet.warn("accept", "cannot take a control connection: %s; trying "
                                 "again every %g s", e.strerror or e, ACCEPT_RETRY)
                self._loop.remove_reader(listener.fileno())
                self._loop.call_later(ACCEPT_RETRY, self._listen_again, listener, needs_auth)
                return
            if len(self.connections) + self._pending >= self.max_clients:
                self._refuse(conn)
                continue
            if needs_auth and self._strangers() >= max(1, self.max_clients // 4):
                # TCP clients that have not authenticated yet may take a quarter of the
                # places: strangers must not lock the user's own clients out.
                self._refuse(conn, "TCP clients waiting to authenticate")
                continue
            self._pending += 1
            self._pending_tcp += needs_auth
            task = self._loop.create_task(self._serve(conn, needs_auth))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _listen_again(self, listener: socket.socket, needs_auth: bool) -> None:
        if listener.fileno() != -1:         # not closed meanwhile
            self._loop.add_reader(listener.fileno(), self._accept, listener, needs_auth)

    async def _serve(self, conn: socket.socket, needs_auth: bool) -> None:
        protocol = _Connection(self, needs_auth=needs_auth)
        try:
            await self._loop.connect_accepted_socket(lambda: protocol, sock=conn)
        except Exception as e:
            conn.close()
            self._quiet.warn("serve", "a control connection could not start: %s", e)
        finally:
            self._arrived(protocol)

    def _arrived(self, conn: "_Connection") -> None:
        """An accepted client is no longer pending: it is in `connections`, or failed.
        (Counted once, so that it never counts twice against the limits.)"""
        if conn.pending:
            conn.pending = False
            self._pending -= 1
            self._pending_tcp -= conn.needs_auth

    def _strangers(self) -> int:
        return sum(1 for c in self.connections if c.needs_auth) + self._pending_tcp

    def _refuse(self, conn: socket.socket, who: str | None = None) -> None:
        """Tell the newest client why it cannot stay, and close it at once."""
        if who is None:
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            why = (f"lofid has {self.max_clients} control connections open, the most it "
                   f"takes (half its limit of {soft} open files); close one and try again")
        else:
            why = (f"lofid has {max(1, self.max_clients // 4)} {who}, the most it takes; "
                   f"try again in {self.auth_timeout:g} s")
        try:
            conn.setblocking(False)
            conn.send(pack([NOTIFY, events.ERROR, [why]]))
            # Read what the client sent already: closing with unread data would reset
            # the connection, and the client could lose the message.
            conn.recv(MAX_MESSAGE)
        except OSError:
            pass
        finally:
            conn.close()
        self._quiet.warn(f"refuse {who}", "refused a control connection: %s", why)

    def _loop_error(self, loop, context: dict) -> None:
        """asyncio's own reports (a callback that raised, a transport that failed):
        each kind logged once a minute at most."""
        message = context.get("message") or "error"
        exc = context.get("exception")
        self._quiet.warn(f"loop {message} {type(exc).__name__}", "control socket: %s%s",
                         message, f" ({exc})" if exc is not None else "", exc_info=exc)

    def token_matches(self, given) -> bool:
        return self.auth.matches(given)

    # --- calls and events -------------------------------------------------------------

    def call(self, session: _Session, method, params) -> tuple[list | None, Any]:
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
                return None, self._subscribe(session, params)
            if method == "unsubscribe":
                return None, self._unsubscribe(session, params)
            return None, self.handlers[method](params)
        except RpcError as e:
            return [e.code, str(e)], None
        except Exception as e:   # a handler bug is an error reply, never a dead server
            log.exception("method %s failed", method)
            return [E_FAILED, f"{method} failed: {type(e).__name__}: {e}"], None

    def answer_later(self, conn: "_Connection", msgid, future: Future) -> None:
        """Reply to `msgid` once `future` is done: a handler with slow work (reading a
        file) runs it in a thread of its own and returns its Future, and the socket
        answers every other client meanwhile. Its exception is an error reply, as
        call() makes one."""
        loop = self._loop

        def done(f: Future) -> None:
            error = result = None
            exc = f.exception()
            if isinstance(exc, RpcError):
                error = [exc.code, str(exc)]
            elif exc is not None:
                log.error("method failed: %s: %s", type(exc).__name__, exc)
                error = [E_FAILED, f"{type(exc).__name__}: {exc}"]
            else:
                result = f.result()
            try:
                loop.call_soon_threadsafe(conn.reply, msgid, error, result)
            except RuntimeError:   # the loop closed meanwhile: nobody to answer
                pass
        future.add_done_callback(done)

    def _events(self, params: list) -> set[str]:
        names = params[0] if len(params) == 1 and isinstance(params[0], list) else params
        if not names or not all(isinstance(n, str) for n in names):
            raise RpcError("subscribe takes event names, e.g. [\"scene_changed\"] or [\"*\"]")
        return set(names)

    def _subscribe(self, session: _Session, params: list) -> list[str]:
        session.events |= self._events(params)
        return sorted(session.events)

    def _unsubscribe(self, session: _Session, params: list) -> list[str]:
        session.events -= self._events(params)
        return sorted(session.events)

    def notify(self, event: str, payload: Any) -> None:
        """Push [2, event, [payload]] to every client subscribed to it (or to "*").
        Thread-safe and never blocks the caller."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def push():
            for conn in list(self.connections):
                if conn.session.wants(event):
                    conn.send([NOTIFY, event, [payload]])
        try:
            loop.call_soon_threadsafe(push)
        except RuntimeError:   # the loop closed meanwhile
            pass

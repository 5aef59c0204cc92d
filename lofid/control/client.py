"""A small blocking client of the control socket (or its TCP listener), as `lofid ctl`
uses it.

Notifications that arrive while a call waits for its answer are kept, in order, and
`receive()` hands them out before reading more: a client that subscribed and then
asks for something hears every event.
"""

from __future__ import annotations

import collections
import socket
from pathlib import Path

from lofid.control import events
from lofid.errors import Failure, UserError
from lofid.control.protocol import (Notification, Response, classify, error_text, request,
                                    unpacker)


class NoDaemon(Failure):
    """Nothing answers on the socket."""


class ControlError(UserError):
    """The daemon answered with an error; the message is its."""


class Client:
    """A connection to lofid: the Unix socket at `path`, or, given `tcp` = (host, port),
    its TCP listener, which takes `token` first."""

    def __init__(self, path: str | Path | None = None, timeout: float = 5.0,
                 tcp: tuple[str, int] | None = None, token: str | None = None):
        if tcp is not None:
            self.where = f"{tcp[0]}:{tcp[1]}"
            try:
                self.sock = socket.create_connection(tcp, timeout=timeout)
            except OSError as e:
                raise NoDaemon(f"no lofid answers on TCP {self.where} "
                               f"({e.strerror or e}); is control_tcp set in its config?") from None
        else:
            self.where = str(path)
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            try:
                self.sock.connect(str(path))
            except OSError as e:
                self.sock.close()
                raise NoDaemon(f"no lofid answers on {path} ({e.strerror}); "
                               f"start one with `lofid run --socket`") from None
        self.unpacker = unpacker(None)
        self._id = 0
        self._error: str | None = None   # an error notification from the daemon
        # Notifications read while a call waited, for receive() to hand out first.
        self.notifications: collections.deque = collections.deque()
        if tcp is not None:
            try:
                self.call("auth", token or "")
            except BaseException:
                self.sock.close()
                raise

    def call(self, method: str, *params):
        self._id += 1
        try:
            self.sock.sendall(request(self._id, method, list(params)))
        except OSError as e:
            self._refused()
            raise NoDaemon(f"lofid closed the connection on {self.where} ({e.strerror})") from None
        while True:
            try:
                raw = self._read()
            except NoDaemon:
                self._refused()
                raise
            message = classify(raw)
            if isinstance(message, Notification):
                self._noted(message)
                self.notifications.append(raw)
            elif isinstance(message, Response) and message.msgid == self._id:
                if message.error:
                    raise ControlError(error_text(message.error))
                return message.result

    def _noted(self, message: Notification) -> None:
        """A daemon that closes a connection it will not serve says why first, in an
        error notification: kept as the reason should the connection close."""
        if message.method == events.ERROR and isinstance(message.params, list) \
                and message.params and isinstance(message.params[0], str):
            self._error = message.params[0]

    def _refused(self) -> None:
        """A daemon that closes a connection it will not serve (too many clients) says
        why first: raise that, rather than "closed the connection"."""
        if self._error is None:
            try:
                self.sock.settimeout(0.5)
                while self._error is None:
                    message = classify(self._read())
                    if isinstance(message, Notification):
                        self._noted(message)
            except (NoDaemon, OSError):
                pass
        if self._error is not None:
            raise ControlError(self._error)

    def receive(self):
        """The next message: a notification kept while a call waited, else the next
        one read from the socket."""
        if self.notifications:
            return self.notifications.popleft()
        return self._read()

    def _read(self):
        while True:
            for message in self.unpacker:
                return message
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                raise NoDaemon(f"lofid closed the connection on {self.where}")
            self.unpacker.feed(data)

    def close(self) -> None:
        self.sock.close()

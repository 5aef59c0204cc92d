"""`lofid ctl ...`: a small blocking client of the control socket (or its TCP listener)."""

from __future__ import annotations

import socket
from pathlib import Path

import msgpack

from lofid.errors import Failure, UserError


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
        self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        self._id = 0
        self._error: str | None = None   # an error notification from the daemon
        if tcp is not None:
            try:
                self.call("auth", token or "")
            except BaseException:
                self.sock.close()
                raise

    def call(self, method: str, *params):
        self._id += 1
        try:
            self.sock.sendall(msgpack.packb([0, self._id, method, list(params)],
                                            use_bin_type=True))
        except OSError as e:
            self._refused()
            raise NoDaemon(f"lofid closed the connection on {self.where} ({e.strerror})") from None
        while True:
            try:
                message = self.receive()
            except NoDaemon:
                self._refused()
                raise
            if message[0] == 2 and message[1] == "error" and message[2]:
                self._error = str(message[2][0])    # said before closing: it is why
                continue
            if message[0] == 1 and message[1] == self._id:
                if message[2]:
                    error = message[2]
                    raise ControlError(error[1] if isinstance(error, list) and len(error) > 1
                                       else str(error))
                return message[3]

    def _refused(self) -> None:
        """A daemon that closes a connection it will not serve (too many clients) says
        why first: raise that, rather than "closed the connection"."""
        if self._error is None:
            try:
                self.sock.settimeout(0.5)
                while self._error is None:
                    message = self.receive()
                    if message[0] == 2 and message[1] == "error" and message[2]:
                        self._error = str(message[2][0])
            except (NoDaemon, OSError):
                pass
        if self._error is not None:
            raise ControlError(self._error)

    def receive(self):
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

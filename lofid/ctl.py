"""`lofid ctl ...`: a small blocking client of the control socket."""

from __future__ import annotations

import socket
from pathlib import Path

import msgpack


class NoDaemon(Exception):
    """Nothing answers on the socket."""


class ControlError(Exception):
    """The daemon answered with an error; the message is its."""


class Client:
    def __init__(self, path: str | Path, timeout: float = 5.0):
        self.path = Path(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(self.path))
        except OSError as e:
            self.sock.close()
            raise NoDaemon(f"no lofid answers on {self.path} ({e.strerror}); "
                           f"start one with `lofid run --socket`") from None
        self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        self._id = 0

    def call(self, method: str, *params):
        self._id += 1
        self.sock.sendall(msgpack.packb([0, self._id, method, list(params)], use_bin_type=True))
        while True:
            message = self.receive()
            if message[0] == 1 and message[1] == self._id:
                if message[2]:
                    error = message[2]
                    raise ControlError(error[1] if isinstance(error, list) and len(error) > 1
                                       else str(error))
                return message[3]

    def receive(self):
        while True:
            for message in self.unpacker:
                return message
            data = self.sock.recv(65536)
            if not data:
                raise NoDaemon(f"lofid closed the connection on {self.path}")
            self.unpacker.feed(data)

    def close(self) -> None:
        self.sock.close()

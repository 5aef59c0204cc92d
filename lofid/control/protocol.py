"""msgpack-RPC on the wire, as Neovim speaks it; shared by the server and the client.

    request       [REQUEST, id, method, params]   ->  [RESPONSE, id, error, result]
    notification  [NOTIFY, method, params]            (either way; no reply)

An error is [code, message], as Neovim sends them, so pynvim and vim.rpcrequest
raise it with the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

REQUEST, RESPONSE, NOTIFY = 0, 1, 2
MAX_MESSAGE = 4 * 1024 * 1024       # bytes a single message may take

# error codes (the first element of an error)
E_INVALID = 1       # not a valid message, or wrong params
E_NO_METHOD = 2
E_FAILED = 3        # the handler raised
E_AUTH = 4          # TCP: no auth(token) first, or a wrong token

# What a stream of bytes that is not msgpack raises while it is unpacked.
BAD_BYTES = (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError)
TOO_BIG = msgpack.BufferFull


class RpcError(Exception):
    """Raised by a handler to answer with a clear message (and a code)."""

    def __init__(self, message: str, code: int = E_INVALID):
        super().__init__(message)
        self.code = code


@dataclass
class Request:
    msgid: int
    method: Any          # checked by whoever answers: a client may send anything
    params: Any


@dataclass
class Response:
    msgid: int
    error: Any
    result: Any


@dataclass
class Notification:
    method: Any
    params: Any


@dataclass
class Malformed:
    """Not one of the three messages; `msgid` is the request id when one can be told
    (then it can be answered), else None."""
    msgid: int | None
    why: str


def is_int(value) -> bool:
    return type(value) is int   # msgpack's true/false are not ids


def unpacker(max_message: int | None = MAX_MESSAGE) -> msgpack.Unpacker:
    """A streaming unpacker for one connection: feed it bytes, iterate messages."""
    if max_message is None:
        return msgpack.Unpacker(raw=False, strict_map_key=False)
    return msgpack.Unpacker(raw=False, max_buffer_size=max_message, strict_map_key=False)


def pack(message: list) -> bytes:
    return msgpack.packb(message, use_bin_type=True)


def request(msgid: int, method: str, params: list) -> bytes:
    return pack([REQUEST, msgid, method, params])


def response(msgid: int, error, result) -> bytes:
    return pack([RESPONSE, msgid, error, result])


def notification(method: str, params: list) -> bytes:
    return pack([NOTIFY, method, params])


def classify(message: Any) -> Request | Response | Notification | Malformed:
    """What an unpacked message is, by its shape alone."""
    if not isinstance(message, list) or not message or not is_int(message[0]):
        return Malformed(None, "not [kind, ...]")
    kind = message[0]
    msgid = message[1] if len(message) >= 2 and is_int(message[1]) else None
    if kind == REQUEST and msgid is not None:
        if len(message) == 4:
            return Request(msgid, message[2], message[3])
        return Malformed(msgid, "a request is [0, id, method, params]")
    if kind == RESPONSE and msgid is not None and len(message) == 4:
        return Response(msgid, message[2], message[3])
    if kind == NOTIFY and len(message) == 3:
        return Notification(message[1], message[2])
    return Malformed(None, "neither a request, a response nor a notification")


def error_text(error) -> str:
    """The message of an error as it comes back: [code, message], or anything."""
    return str(error[1]) if isinstance(error, list) and len(error) > 1 else str(error)

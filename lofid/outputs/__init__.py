"""Outputs: where the player's picture goes. open_output() turns a target into one.

Targets: a file path (.mp4 .mkv .webm .gif), an HLS playlist (.m3u8), udp://host:port, tcp://host:port?listen
(MPEG-TS for OBS), rtmp://... and rtmps://... (YouTube, Twitch), window, null.
Network and window outputs are imported only when asked for: they bring child
processes and display libraries a file recording does not need.
"""

from __future__ import annotations

import os
import re
from typing import Callable
from urllib.parse import parse_qs, unquote, urlsplit

from lofid.outputs.base import Output, OutputError

EXPECTED = ("a file path ending in .mp4, .mkv, .webm or .gif, DIR/NAME.m3u8 (HLS), "
            "udp://host:port, "
            "tcp://host:port?listen, rtmp://host/app/key, rtmps://host/app/key, "
            "window or null")

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def open_output(target: str | os.PathLike,
                on_state: Callable[[str, str, str | None], None] | None = None,
                **options) -> Output:
    """The output for `target`, not yet started. OutputError names a target that
    cannot work (unknown scheme, unwritable file, malformed address) and what is
    expected instead. `options` go to the output (window: fullscreen, borderless,
    close_stops); outputs ignore options that are not theirs."""
    text = os.fspath(target) if isinstance(target, (str, os.PathLike)) else None
    if not isinstance(text, str):
        raise OutputError(f"output target must be text, got {type(target).__name__}; "
                          f"expected {EXPECTED}")
    text = text.strip()
    if not text:
        raise OutputError(f"empty output target; expected {EXPECTED}")
    if text == "null":
        from lofid.outputs.null import NullOutput
        return NullOutput(on_state=on_state, **options)
    if text == "window":
        try:
            from lofid.outputs.window import WindowOutput
        except ImportError as e:
            raise OutputError(f"output 'window' is not available: {e}") from e
        return WindowOutput(on_state=on_state, **options)
    match = _SCHEME.match(text)
    if match is None and text.lower().endswith(".m3u8"):
        from lofid.outputs.hls import HlsOutput
        return HlsOutput(text, on_state=on_state, **options)
    if match is None:
        from lofid.outputs.file import FileOutput
        return FileOutput(text, on_state=on_state, **options)
    scheme = match.group(1).lower()
    if scheme == "file":
        from lofid.outputs.file import FileOutput
        return FileOutput(unquote(urlsplit(text).path), on_state=on_state, **options)
    if scheme not in ("udp", "tcp", "rtmp", "rtmps"):
        raise OutputError(f"output {text!r}: unknown scheme {scheme + '://'!r}; "
                          f"expected {EXPECTED}")
    _check_address(text, scheme)
    try:
        from lofid.outputs.network import NetworkOutput
    except ImportError as e:
        raise OutputError(f"output {text!r}: network outputs are not available: {e}") from e
    return NetworkOutput(text, on_state=on_state, **options)


def _check_address(text: str, scheme: str) -> None:
    try:
        url = urlsplit(text)
        url.hostname
    except ValueError as e:          # a malformed [IPv6] address
        raise OutputError(f"output {text!r}: {e}; expected {_FORMS[scheme]}") from None
    try:
        port = url.port
    except ValueError:
        raise OutputError(f"output {text!r}: the port must be a number from 1 to 65535") from None
    if not url.hostname:
        raise OutputError(f"output {text!r}: no host; expected {_FORMS[scheme]}")
    if scheme in ("udp", "tcp"):
        if port is None or port == 0:
            raise OutputError(f"output {text!r}: no port; expected {_FORMS[scheme]}")
        if scheme == "tcp" and "listen" not in parse_qs(url.query, keep_blank_values=True):
            raise OutputError(f"output {text!r}: lofid serves MPEG-TS over TCP as a "
                              f"server; expected {_FORMS[scheme]}")
    elif not url.path.strip("/"):
        raise OutputError(f"output {text!r}: no application or stream key; "
                          f"expected {_FORMS[scheme]}")


_FORMS = {
    "udp": "udp://host:port, e.g. udp://127.0.0.1:5000",
    "tcp": "tcp://host:port?listen, e.g. tcp://127.0.0.1:5000?listen",
    "rtmp": "rtmp://host[:port]/app/stream-key, e.g. rtmp://live.twitch.tv/app/KEY",
    "rtmps": "rtmps://host[:port]/app/stream-key, e.g. rtmps://a.rtmps.youtube.com/live2/KEY",
}

"""The child process behind a network output: muxes framed packets to one server.

Run as `python -m lofid.outputs.network_child`. A libavformat network write (or an
RTMP handshake with a server that stopped answering) can block for as long as the
server likes, so it happens here, in a process the daemon can kill, and never in
the daemon itself.

The pipe protocol (one msgpack object after another, both directions):

stdin, from the daemon:
  1. a header map: {"version": 1, "target", "format" ("flv" | "mpegts"),
     "options" (muxer options), "listen" (bool), "rebase" (bool),
     "width", "height", "fps": [num, den], "video_codec", "video_extradata",
     "video_bitrate", "audio_codec", "audio_extradata", "audio_rate",
     "audio_channels", "audio_bitrate"}
  2. one map per packet: {"kind": "video" | "audio", "pts", "dts", "duration",
     "keyframe", "data"}; pts/dts are the daemon's 64-bit clock (never wrapped)
  3. end of file: flush, finish the stream and exit 0.

stdout, to the daemon:
  {"event": "listening", "detail"}     waiting for a client (tcp ...?listen)
  {"event": "connected", "detail"}     the stream is open; send packets
  {"event": "ack", "count"}            packets muxed so far (at most every 0.2 s);
                                       the daemon treats missing acks as a stall
  {"event": "error", "reason", "fatal"}  just before a non-zero exit

Exit status: 0 finished cleanly, 1 the connection failed or dropped (worth
retrying), 2 the target can never work as given (port in use, bad header ...).
"""

from __future__ import annotations

import errno
import logging
import os
import select
import sys
import time
from fractions import Fraction

import msgpack

from lofid.media import Packet, StreamInfo
from lofid.outputs.mux import PacketMuxer

EXIT_OK = 0
EXIT_RETRY = 1
EXIT_FATAL = 2

ACK_INTERVAL = 0.2

# errno values that no amount of retrying fixes.
_FATAL_ERRNOS = {errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES, errno.EINVAL}

log = logging.getLogger("lofid.outputs.network_child")


class _Fatal(Exception):
    """The target or the header cannot work; retrying would not help."""


class Reporter:
    """Writes events to the daemon on stdout."""

    def __init__(self, fd: int = 1):
        self.fd = fd
        self.last_ack = 0.0
        self.count = 0          # packets taken off the pipe and handled
        self.acked = 0

    def event(self, name: str, **fields) -> None:
        data = msgpack.packb({"event": name, **fields}, use_bin_type=True)
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def ack(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.count != self.acked and (force or now - self.last_ack >= ACK_INTERVAL):
            self.last_ack = now
            self.acked = self.count
            self.event("ack", count=self.count)

    def ack_now(self) -> None:
        self.ack(force=True)


def read_messages(fd: int = 0, before_wait=None):
    """Yields the maps coming in on stdin until end of file.

    `before_wait` is called when nothing is waiting on the pipe, just before the
    read would block (the place to tell the daemon how far we got)."""
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=64 * 1024 * 1024)
    while True:
        if before_wait is not None and not select.select([fd], [], [], 0)[0]:
            before_wait()
        # os.read returns what is there: no waiting for a full buffer, so a packet
        # is muxed as soon as it arrives.
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return
        unpacker.feed(chunk)
        yield from unpacker


class FlvRelay:
    """The file libavformat's FLV muxer writes into: passes the FLV on to an RTMP
    server, every tag with its full 32-bit timestamp.

    The FLV muxer writes timestamps as signed 32-bit numbers: it keeps their lower
    31 bits and clears the top one (flvenc.c: `(ts >> 24) & 0x7F`). Past 2^31 ms of
    one stream (24.8 days of a 24/7 stream, or a daemon clock that far on) the
    timestamps would jump back 24.8 days. RTMP timestamps are 32-bit and wrap at
    2^32 ms (49.7 days), and servers and players follow the wrap (libavformat's FLV
    reader unwraps it; nginx-rtmp subtracts its epoch modulo 2^32). So each tag gets
    its top bit back: its timestamp is the one with the muxer's lower 31 bits that is
    nearest `near_ms`, the time of the packet being muxed (the muxer writes a
    packet's tag, or the few it held back to interleave, within seconds of it), sent
    modulo 2^32.

    The stream's first tags (metadata and the codec headers, written before any
    packet) carry the time of its first packet rather than 0: a server takes the
    first message's time as the stream's epoch (nginx-rtmp records from it, and cuts
    what lies more than 2^31 ms after it to 0), so a stream whose headers said 0 and
    whose pictures said day 49 would begin with a 49-day jump.

    libavformat's RTMP client takes FLV written to it (its file header skipped, each
    tag sent as an RTMP message with the tag's 32-bit timestamp), so the fixed bytes
    go there through the "data" muxer, which writes what it is given as it is.
    """

    def __init__(self, target: str):
        import av

        self.sink = av.open(target, "w", format="data", options={"flush_packets": "1"})
        try:
            self.stream = self.sink.add_data_stream()
            self.sink.start_encoding()   # the RTMP handshake and publish
        except BaseException:
            self.sink.close()
            raise
        self.near_ms = None            # None until the first packet: tags are held
        self._skip = 13                # the FLV file header and the first previous-tag size
        self._head = bytearray()
        self._held: list = []          # what came before the first packet
        self._held_heads: list[bytearray] = []
        self._last_ts: int | None = None

    def write(self, data) -> int:
        import av

        data = bytes(data)
        out = self._held
        i = 0
        while i < len(data):
            if self._skip:
                n = min(self._skip, len(data) - i)
                out.append(data[i:i + n])
                i += n
                self._skip -= n
                continue
            n = min(11 - len(self._head), len(data) - i)
            self._head += data[i:i + n]
            i += n
            if len(self._head) < 11:
                break
            head, self._head = self._head, bytearray()
            out.append(head)
            self._skip = int.from_bytes(head[1:4], "big") + 4   # the tag's data, its size
            if self.near_ms is None:
                self._held_heads.append(head)
                continue
            if head[0] == 9 and head[1:4] == b"\x00\x00\x05" and self._last_ts is not None:
                # the trailer's AVC end-of-sequence tag (a video tag of 5 bytes, no
                # picture): the muxer stamps it with the largest timestamp it saw as
                # a 32-bit number, which across 2^32 is not the last; it goes last
                ts = self._last_ts
                head[4:7] = (ts & 0xFFFFFF).to_bytes(3, "big")
            else:
                ts = full_timestamp(head, self.near_ms)
            head[7] = ts >> 24
            self._last_ts = ts
            for held in self._held_heads:         # the stream starts at its first packet
                held[4:8] = (ts & 0xFFFFFF).to_bytes(3, "big") + bytes([ts >> 24])
            self._held_heads = []
        if self.near_ms is not None and out:
            self._held = []
            packet = av.Packet(b"".join(out))
            packet.stream = self.stream
            self.sink.mux(packet)
        return len(data)

    def close(self) -> None:
        self.sink.close()


def full_timestamp(tag_header: bytes, near_ms) -> int:
    """The 32-bit RTMP timestamp (ms, modulo 2^32) of an FLV tag whose header carries
    only the lower 31 bits of it: the one nearest `near_ms`."""
    low = int.from_bytes(tag_header[4:7], "big") | (tag_header[7] & 0x7F) << 24
    half = 1 << 31
    full = low + round((near_ms - low) / half) * half
    return full % (1 << 32)


def stream_info(header: dict) -> StreamInfo:
    """The StreamInfo the daemon described in the pipe header."""
    return StreamInfo(
        width=int(header["width"]), height=int(header["height"]),
        fps=Fraction(*header["fps"]), video_codec=header["video_codec"],
        video_extradata=bytes(header["video_extradata"]),
        video_bitrate=int(header.get("video_bitrate") or 0),
        audio_codec=header["audio_codec"], audio_extradata=bytes(header["audio_extradata"]),
        audio_rate=int(header["audio_rate"]),
        audio_channels=int(header.get("audio_channels") or 2),
        audio_bitrate=int(header.get("audio_bitrate") or 0))


def open_stream(header: dict, reporter: Reporter) -> tuple[PacketMuxer, FlvRelay | None]:
    """Opens the target and writes the stream header; blocks until connected."""
    import av

    fmt = header["format"]
    target = header["target"]
    if header.get("listen"):
        reporter.event("listening", detail=f"waiting for a client on {header.get('name', target)}")
    relay = None
    before_mux = None
    if fmt == "flv":
        # connects now; the FLV muxer below writes through the relay
        relay = FlvRelay(target)
        container = av.open(relay, "w", format=fmt, options=dict(header.get("options") or {}))

        def before_mux(packet, relay=relay):
            relay.near_ms = packet.dts * packet.time_base * 1000   # what its tags are near
    else:
        container = av.open(target, "w", format=fmt, options=dict(header.get("options") or {}))
    try:
        muxer = PacketMuxer(container, stream_info(header), rebase=bool(header.get("rebase", True)),
                            before_mux=before_mux)
    except (ValueError, TypeError, KeyError, av.error.FFmpegError) as e:
        container.close()
        if relay is not None:
            relay.close()
        raise _Fatal(f"cannot set up the {fmt} streams from the header: {e}") from e
    container.start_encoding()  # connects (tcp listen: accepts a client); writes the header
    return muxer, relay


def run(header: dict, messages, reporter: Reporter) -> int:
    muxer, relay = open_stream(header, reporter)
    reporter.event("connected", detail=f"streaming to {header.get('name', header['target'])}")
    for msg in messages:
        reporter.count += 1
        kind = msg.get("kind")
        if kind not in ("video", "audio"):
            raise _Fatal(f"unknown message kind {kind!r} on the pipe; expected 'video' or 'audio'")
        # the muxer starts the connection on a keyframe (or the picture is garbage),
        # leaves out sound from before it, and any packet whose dts does not advance
        muxer.write(Packet(kind, int(msg["pts"]), int(msg["dts"]), int(msg.get("duration") or 0),
                           bool(msg.get("keyframe")), msg["data"]))
        reporter.ack()
    reporter.ack_now()
    muxer.close()  # end of input: flush the interleaver and finish the stream
    if relay is not None:
        relay.close()
    return EXIT_OK


def classify(error: BaseException) -> tuple[str, bool]:
    """(reason, fatal) for an exception that ended the stream."""
    if isinstance(error, _Fatal):
        return str(error), True
    err = getattr(error, "errno", None)
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    try:
        import av
        if isinstance(error, av.error.ProtocolNotFoundError):
            return f"this build of libavformat cannot speak the protocol: {text}", True
    except ImportError:
        pass
    if err in _FATAL_ERRNOS:
        return text, True
    if isinstance(error, (BrokenPipeError, ConnectionResetError)):
        return f"connection dropped: {text}", False
    return text, False


def main() -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="network child: %(message)s")
    # Loaded before the header is read: a child started ahead for the next session
    # (max_session) is ready to connect the moment its header comes.
    import av  # noqa: F401
    reporter = Reporter()
    messages = read_messages(before_wait=reporter.ack_now)
    try:
        header = next(messages)
    except StopIteration:
        return EXIT_OK  # the daemon closed before sending anything
    if not isinstance(header, dict) or header.get("version") != 1:
        reporter.event("error", reason="the pipe header is not a version 1 header map", fatal=True)
        return EXIT_FATAL
    try:
        return run(header, messages, reporter)
    except Exception as e:
        reason, fatal = classify(e)
        try:
            reporter.event("error", reason=reason, fatal=fatal)
        except OSError:
            pass  # the daemon is gone; the exit status says the rest
        return EXIT_FATAL if fatal else EXIT_RETRY


if __name__ == "__main__":
    sys.exit(main())

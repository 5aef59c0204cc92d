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


class Timeline:
    """Maps the daemon's clock onto this connection's timestamps.

    With `rebase`, the connection starts at 0 at its first video keyframe, and the
    audio origin is the same instant on the 48 kHz timeline (exact arithmetic, so
    audio and video stay in step). Without it the daemon's timestamps go out as they
    are; the muxers take care of their own fields (RTMP's extended timestamps past
    2^24 ms, MPEG-TS's 33-bit 90 kHz wrap)."""

    def __init__(self, fps: Fraction, audio_rate: int, rebase: bool):
        self.fps = fps
        self.audio_rate = audio_rate
        self.rebase = rebase
        self.video_origin: int | None = None
        self.audio_origin: int | None = None
        self.first_audio: int | None = None     # the first sample that goes out

    @property
    def started(self) -> bool:
        return self.video_origin is not None

    def start(self, video_pts: int) -> None:
        self.video_origin = video_pts if self.rebase else 0
        # ceil, so that no audio sample before the first picture is kept
        start_sample = -((-video_pts * self.audio_rate * self.fps.denominator) // self.fps.numerator)
        self.audio_origin = start_sample if self.rebase else 0
        self.first_audio = start_sample

    def video(self, pts: int, dts: int) -> tuple[int, int]:
        return pts - self.video_origin, dts - self.video_origin

    def audio(self, pts: int, dts: int) -> tuple[int, int] | None:
        if pts < self.first_audio:
            return None  # sound from before the first picture of this connection
        return pts - self.audio_origin, dts - self.audio_origin


def open_stream(header: dict, reporter: Reporter):
    """Opens the target and writes the stream header; blocks until connected."""
    import av

    fmt = header["format"]
    target = header["target"]
    if header.get("listen"):
        reporter.event("listening", detail=f"waiting for a client on {header.get('name', target)}")
    container = av.open(target, "w", format=fmt, options=dict(header.get("options") or {}))
    try:
        fps = Fraction(*header["fps"])
        video = container.add_stream(header["video_codec"], rate=fps)
        video.width = header["width"]
        video.height = header["height"]
        video.time_base = 1 / fps
        vctx = video.codec_context
        # The codec context is only a carrier for the stream parameters: it is
        # opened when the header is written, and without the global-header flag the
        # encoder leaves the given extradata (the player's SPS/PPS) in place.
        vctx.flags &= ~av.codec.context.Flags.global_header
        vctx.options = {"preset": "ultrafast", "threads": "1"}
        vctx.extradata = bytes(header["video_extradata"]) or None
        vctx.bit_rate = int(header.get("video_bitrate") or 0)

        audio = container.add_stream(header["audio_codec"], rate=int(header["audio_rate"]))
        actx = audio.codec_context
        actx.flags &= ~av.codec.context.Flags.global_header
        actx.extradata = bytes(header["audio_extradata"]) or None
        actx.bit_rate = int(header.get("audio_bitrate") or 0)
        audio.time_base = Fraction(1, int(header["audio_rate"]))
    except (ValueError, TypeError, KeyError, av.error.FFmpegError) as e:
        container.close()
        raise _Fatal(f"cannot set up the {fmt} streams from the header: {e}") from e
    container.start_encoding()  # connects (rtmp), or accepts a client (tcp listen)
    return container, video, audio


def run(header: dict, messages, reporter: Reporter) -> int:
    import av

    container, vstream, astream = open_stream(header, reporter)
    reporter.event("connected", detail=f"streaming to {header.get('name', header['target'])}")
    fps = Fraction(*header["fps"])
    timeline = Timeline(fps, int(header["audio_rate"]), bool(header.get("rebase", True)))
    vtb, atb = 1 / fps, Fraction(1, int(header["audio_rate"]))
    for msg in messages:
        reporter.count += 1
        kind = msg.get("kind")
        if kind == "video":
            if not timeline.started:
                if not msg["keyframe"]:
                    reporter.ack()
                    continue  # a connection starts on a keyframe, or the picture is garbage
                timeline.start(int(msg["pts"]))
            pts, dts = timeline.video(int(msg["pts"]), int(msg["dts"]))
            stream, tb = vstream, vtb
        elif kind == "audio":
            if not timeline.started:
                reporter.ack()
                continue
            stamped = timeline.audio(int(msg["pts"]), int(msg["dts"]))
            if stamped is None:
                reporter.ack()
                continue
            pts, dts = stamped
            stream, tb = astream, atb
        else:
            raise _Fatal(f"unknown message kind {kind!r} on the pipe; expected 'video' or 'audio'")
        packet = av.Packet(msg["data"])
        packet.stream = stream
        packet.time_base = tb
        packet.pts = pts
        packet.dts = dts
        packet.duration = int(msg.get("duration") or 0)
        packet.is_keyframe = bool(msg.get("keyframe"))
        container.mux(packet)
        reporter.ack()
    reporter.ack_now()
    container.close()  # end of input: flush the interleaver and finish the stream
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

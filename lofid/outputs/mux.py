"""One timeline and one packet muxer for every output that muxes the player's packets.

MP4 and MKV files (lofid.outputs.file), the network child's MPEG-TS and FLV
(lofid.outputs.network_child) and the window's MPEG-TS for mpv
(lofid.outputs.window) all take the player's H.264 + AAC Packets and put them into
a PyAV output container. They do it here, so a packet gets the same timestamps
whichever of them it goes to:

- Timeline maps the daemon's clock (64-bit, never reset) onto one output's: with
  `rebase` the output starts at 0 at its first keyframe, and audio is placed on the
  same instant by one rounding rule (audio_sample_at).
- PacketMuxer adds the two streams from the StreamInfo, starts at a keyframe, holds
  audio that arrives just ahead of that keyframe, leaves out audio from before it,
  never lets a stream's dts stand still or go back (a muxer refuses such a packet,
  and over the network that would end the stream), and muxes.

Opening the container (a path, a file object, a URL, an FlvRelay; the format and its
options) stays with each output: that is what differs between them.
"""

from __future__ import annotations

import logging
import math
from fractions import Fraction
from typing import Callable

from lofid.media import Packet, StreamInfo

log = logging.getLogger("lofid.outputs")

EARLY_AUDIO = 64                 # audio packets held before the first keyframe (~1.4 s)


def audio_sample_at(frame: int, fps: Fraction, audio_rate: int) -> int:
    """The audio sample at the instant video frame `frame` begins: frame * rate / fps,
    to the nearest whole sample, halves up.

    The one rounding rule for placing audio against the pictures. That instant is
    a whole sample only when the frame rate divides the sample rate (30 fps: 1600
    samples a frame; 29.97 fps: 1601.6). The nearest sample puts audio within half
    a sample of where it belongs; rounding up (as the network child did) put it up
    to a whole sample early, down up to a whole sample late. The output's audio
    origin is this one integer, so every audio packet moves by the same amount and
    the audio stays gapless; rounding each packet's own offset, halves to even (as
    the file writer did), can move neighbouring packets by different amounts."""
    exact = Fraction(frame) * audio_rate / Fraction(fps)
    return math.floor(exact + Fraction(1, 2))


class Timeline:
    """Maps the daemon's clock onto one output's timestamps.

    Video counts frames (time base 1/fps), audio samples (1/audio_rate). With
    `rebase` the output's time 0 is its first video keyframe, on both streams;
    without it the daemon's timestamps go out as they are (the muxers take care of
    their own fields: RTMP's extended timestamps past 2^24 ms, MPEG-TS's 33-bit
    90 kHz wrap). Either way audio from before the first picture is left out."""

    def __init__(self, fps: Fraction, audio_rate: int, rebase: bool = True):
        self.fps = Fraction(fps)
        self.audio_rate = int(audio_rate)
        self.rebase = rebase
        self.video_origin: int | None = None    # daemon frame that is output frame 0
        self.audio_origin: int | None = None    # daemon sample that is output sample 0
        self.first_audio: int | None = None     # the first daemon sample that goes out

    @property
    def started(self) -> bool:
        return self.video_origin is not None

    def start(self, video_pts: int) -> None:
        """The output begins at the keyframe with this pts."""
        self.first_audio = audio_sample_at(video_pts, self.fps, self.audio_rate)
        self.video_origin = video_pts if self.rebase else 0
        self.audio_origin = self.first_audio if self.rebase else 0

    def restart(self, video_pts: int, at: int) -> None:
        """From the keyframe with this pts on, video goes on at output frame `at`, and
        audio moves with it: for an output that skipped frames and closes the gap
        (the window after mpv fell behind)."""
        self.video_origin = video_pts - at
        self.audio_origin = audio_sample_at(self.video_origin, self.fps, self.audio_rate)

    def video(self, pts: int, dts: int) -> tuple[int, int]:
        return pts - self.video_origin, dts - self.video_origin

    def audio(self, pts: int, dts: int) -> tuple[int, int] | None:
        """The output's (pts, dts), or None for sound from before the first picture."""
        if pts < self.first_audio:
            return None
        return pts - self.audio_origin, dts - self.audio_origin


class PacketMuxer:
    """Muxes the player's Packets into an open PyAV output container.

    Adds a video and (unless `audio` is False) an audio stream described by `info`,
    then write() places each packet on the Timeline and muxes it. Video packets
    before the first keyframe are left out (nothing could decode them); audio that
    arrives before it is held (the last EARLY_AUDIO packets) and placed once it
    comes. A packet whose dts would not advance past its stream's last one is left
    out: libavformat refuses it (MP4 and MPEG-TS with EINVAL, which would fail a
    file or end a stream) or writes two packets at one time.

    `before_mux(av_packet)` is called with each packet just before it is muxed, in
    its stream's time base (the FLV relay wants to know the time being written).
    close() finishes the container.
    """

    def __init__(self, container, info: StreamInfo, rebase: bool = True, audio: bool = True,
                 before_mux: Callable | None = None):
        import av

        self.container = container
        self.info = info
        self.before_mux = before_mux
        fps = Fraction(info.fps)
        self.timeline = Timeline(fps, info.audio_rate, rebase)
        self.time_base = {"video": info.video_time_base, "audio": info.audio_time_base}
        no_global_header = ~av.codec.context.Flags.global_header

        # Each codec context only carries the stream's parameters into the header; it
        # is opened (cheaply: one thread, the fastest preset) when the header is
        # written and never fed. Without the global-header flag the encoder leaves the
        # given extradata (the player's SPS/PPS) in place, so MP4, MKV and FLV get the
        # stream's own headers in theirs.
        self.video = container.add_stream(info.video_codec, rate=fps)
        self.video.width, self.video.height = info.width, info.height
        self.video.time_base = self.time_base["video"]
        vctx = self.video.codec_context
        vctx.flags &= no_global_header
        vctx.options = {"preset": "ultrafast", "threads": "1"}
        vctx.extradata = bytes(info.video_extradata) or None
        vctx.bit_rate = int(info.video_bitrate or 0)
        self.audio = None
        if audio:
            # AAC's AudioSpecificConfig is a function of profile, rate and channels
            # alone, so a context configured like the player's encoder carries the
            # same extradata (checked once the header is written).
            self.audio = container.add_stream(info.audio_codec, rate=int(info.audio_rate))
            actx = self.audio.codec_context
            actx.layout = "stereo" if info.audio_channels == 2 else "mono"
            actx.flags &= no_global_header
            actx.extradata = bytes(info.audio_extradata) or None
            actx.bit_rate = int(info.audio_bitrate or 0)
            self.audio.time_base = self.time_base["audio"]
        self.last_dts: dict[str, int | None] = {"video": None, "audio": None}
        self.written = {"video": 0, "audio": 0}
        self.bytes = 0
        self._early_audio: list[Packet] = []

    def write(self, packet: Packet) -> bool:
        """Places and muxes one packet. True when it was muxed (or, audio before the
        first keyframe, held to be placed once that comes); False when it was left out."""
        timeline = self.timeline
        if packet.kind == "video":
            if not timeline.started:
                if not packet.keyframe:
                    return False
                timeline.start(packet.pts)
                muxed = self._mux(packet, *timeline.video(packet.pts, packet.dts))
                early, self._early_audio = self._early_audio, []
                for p in early:
                    self.write(p)
                return muxed
            return self._mux(packet, *timeline.video(packet.pts, packet.dts))
        if packet.kind == "audio":
            if self.audio is None:
                return False
            if not timeline.started:
                self._early_audio.append(packet)
                del self._early_audio[:-EARLY_AUDIO]
                return True
            stamped = timeline.audio(packet.pts, packet.dts)
            if stamped is None:
                return False
            return self._mux(packet, *stamped)
        raise ValueError(f"packet kind must be 'video' or 'audio', got {packet.kind!r}")

    def _mux(self, packet: Packet, pts: int, dts: int) -> bool:
        import av

        kind = packet.kind
        last = self.last_dts[kind]
        if dts < 0 or (last is not None and dts <= last):
            # before the output's start, or a repeated or reordered packet
            log.debug("leaving out %s packet with dts %d after %s", kind, dts, last)
            return False
        p = av.Packet(packet.data)
        p.stream = self.video if kind == "video" else self.audio
        p.time_base = self.time_base[kind]     # the muxer rescales to its own
        p.pts = pts
        p.dts = dts
        p.duration = int(packet.duration or 0)
        p.is_keyframe = bool(packet.keyframe)
        if self.before_mux is not None:
            self.before_mux(p)
        self.container.mux(p)
        self.last_dts[kind] = dts
        if not any(self.written.values()):
            self._check_audio_header()
        self.written[kind] += 1
        self.bytes += len(packet.data)
        return True

    def _check_audio_header(self) -> None:
        # The header is written by now; its AAC config must be the player's.
        if self.audio is None:
            return
        made = bytes(self.audio.codec_context.extradata or b"")
        if made and self.info.audio_extradata and made != self.info.audio_extradata:
            raise ValueError(f"the audio stream's AAC config {made.hex()} differs from the "
                             f"player's {self.info.audio_extradata.hex()}")

    def close(self) -> None:
        """Flushes the interleaver, writes the trailer and closes the container."""
        self.container.close()

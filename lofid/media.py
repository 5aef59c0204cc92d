"""The wire vocabulary: what the player makes and every output takes.

Packet and StreamInfo describe the one encoded stream; VideoFrame and AudioChunk are
the raw pictures and sound for outputs that encode for themselves; the audio
constants and the colour settings are the ones every encoder and muxer agrees on;
as_fps turns a frame rate as a user gives it into the exact rational rate.

It is part of the ground floor: it imports nothing else of lofid (and no codec
library: the colour helpers take PyAV objects duck-typed).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from numbers import Rational

import numpy as np

# --------------------------------------------------------------------------- video

# The video bitrates lofid encodes at, kb/s: the `bitrate` setting and the encoder
# both hold to this one range (below 300 a 1080p picture is mush; above 50 Mb/s no
# ingest server takes it).
VIDEO_KBPS = (300, 50_000)

# --------------------------------------------------------------------------- audio

AUDIO_RATE = 48000                # samples per second; the audio time base is 1/48000
AUDIO_CHANNELS = 2

# --------------------------------------------------------------------------- colour

# Pictures are RGB; every encoder converts them with the BT.709 matrix in limited
# range and tags the stream so, which is what players assume for HD: the same
# colours in every player, in the stream and in exported files alike.
BT709 = 1                         # AVCOL_SPC / AVCOL_PRI / AVCOL_TRC value for ITU-R BT.709
LIMITED_RANGE = 1                 # AVCOL_RANGE_MPEG

# Keyword arguments for av.VideoFrame.reformat that convert RGB the same way.
TO_BT709 = {"dst_colorspace": "ITU709", "dst_color_range": "MPEG",
            "dst_color_trc": BT709, "dst_color_primaries": BT709}


def tag_bt709(codec_context) -> None:
    """Tag an encoder's codec context as BT.709, limited range."""
    codec_context.colorspace = BT709
    codec_context.color_primaries = BT709
    codec_context.color_trc = BT709
    codec_context.color_range = LIMITED_RANGE


# --------------------------------------------------------------------------- frame rates

MIN_FPS, MAX_FPS = 1, 240


def as_fps(value, what: str = "fps") -> Fraction:
    """An output frame rate as an exact fraction; ValueError naming `what` otherwise.

    A float that is an NTSC rate written short (23.976, 29.97, 59.94) means the NTSC
    rate, 24000/1001, 30000/1001, 60000/1001: that is what anyone who types 29.97
    means, and what a camera or a broadcast runs at. Any other float is taken as the
    nearest fraction with a denominator of at most 1000 (12.5 -> 25/2); integers and
    fractions are taken exactly.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, Rational,
                                                                      np.number)):
        raise ValueError(f"{what} must be a number from {MIN_FPS} to {MAX_FPS}, got {value!r}")
    if isinstance(value, np.integer):
        value = int(value)
    elif isinstance(value, np.floating):
        value = float(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{what} must be a number from {MIN_FPS} to {MAX_FPS}, "
                             f"got {value!r}")
        ntsc = round(value * 1.001)
        if value != round(value) and abs(value * 1.001 - ntsc) < 1e-3:
            fps = Fraction(ntsc * 1000, 1001)
        else:
            fps = Fraction(value).limit_denominator(1000)
    else:
        fps = Fraction(value)
    if not MIN_FPS <= fps <= MAX_FPS:
        raise ValueError(f"{what} must be a number from {MIN_FPS} to {MAX_FPS}, got {value!r}")
    return fps


# --------------------------------------------------------------------------- the stream

@dataclass(frozen=True)
class StreamInfo:
    """The one encoded stream the player makes, as an output needs it to mux."""
    width: int
    height: int
    fps: Fraction                     # output frames per second; video time base is 1/fps
    video_codec: str = "h264"
    video_extradata: bytes = b""      # SPS/PPS (Annex B); every keyframe repeats them too
    video_bitrate: int = 4_500_000
    audio_codec: str = "aac"
    audio_extradata: bytes = b""      # AudioSpecificConfig
    audio_rate: int = AUDIO_RATE      # audio time base is 1/audio_rate
    audio_channels: int = AUDIO_CHANNELS
    audio_bitrate: int = 160_000

    @property
    def video_time_base(self) -> Fraction:
        return 1 / Fraction(self.fps)

    @property
    def audio_time_base(self) -> Fraction:
        return Fraction(1, self.audio_rate)


@dataclass(frozen=True)
class Packet:
    """One encoded packet on the output timeline.

    pts/dts count in the stream's time base (video: frames of the output clock; audio:
    samples at 48 kHz) from the start of the daemon's clock: 64-bit integers that are
    never reset, so an output that starts late or reconnects rebases them itself."""
    kind: str                         # "video" | "audio"
    pts: int
    dts: int
    duration: int
    keyframe: bool
    data: bytes


@dataclass(frozen=True)
class VideoFrame:
    """A raw output frame, for outputs that encode for themselves (WebM, GIF)."""
    index: int                        # the output clock's frame counter
    image: "object"                   # (H, W, 3) uint8 numpy array at the output size


@dataclass(frozen=True)
class AudioChunk:
    """Raw audio for outputs that encode for themselves: (samples, 2) float32."""
    start: int                        # first sample, on the 48 kHz timeline
    samples: "object"

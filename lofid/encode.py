"""Encoding for the player's one stream: H.264 video segments and continuous AAC audio.

The player encodes a loop's repetition once, as a closed-GOP segment, and re-sends
those packets with shifted timestamps on every later repetition; crossfades are
encoded live as segments of their own. So every segment made with the same
VideoSettings must join onto any other one: each starts with an IDR frame carrying
SPS/PPS, has no B-frames (decode order is display order, dts == pts), puts keyframes
exactly every `gop` frames, and comes from an encoder whose headers (the extradata)
are byte-identical to every other encoder's with those settings.

A picture that stays on screen for several frames (a 10 fps loop at 30 fps) is
encoded once: its repeats are frames of skipped macroblocks written by
lofid.repeated_pictures, a few bytes each, where x264 would spend nearly a whole
frame's work on each.

Colour: frames are RGB; they are converted to yuv420p with the BT.709 matrix in
limited range and tagged so (lofid.media's colour settings), as lofid.export does,
so players show the same colours everywhere.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterable

import numpy as np

from lofid.media import (AUDIO_CHANNELS, AUDIO_RATE, TO_BT709, VIDEO_KBPS, Packet, StreamInfo,
                         as_fps, tag_bt709)
from lofid.repeated_pictures import repeats_for

PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")


@dataclass(frozen=True)
class VideoSettings:
    """How the player's H.264 stream is encoded. Equal settings give joinable segments."""
    width: int = 1920
    height: int = 1080
    fps: Fraction = Fraction(30)
    bitrate: int = 4_500_000
    keyframe_seconds: float = 2.0
    # Each loop's repetition is encoded once and each crossfade live. On painted
    # 1080p30 loops at 4.5 Mb/s "ultrafast" (with CABAC, see below) looks as good
    # as "superfast" (Y-PSNR 43.7 vs 43.4 dB) for less CPU: a 60-s cycle of one 5-s
    # repetition and one 3-s crossfade costs about 0.07 CPU-s per stream second in
    # encode_segment, against about 0.09 with "superfast" and 0.10 with "veryfast".
    preset: str = "ultrafast"

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 16 <= v <= 8192:
                raise ValueError(f"video {name} must be an integer from 16 to 8192, got {v!r}")
            if v % 2:
                raise ValueError(f"video {name} must be even (yuv420p halves it), got {v}")
        object.__setattr__(self, "fps", as_fps(self.fps, "video fps"))
        if isinstance(self.bitrate, bool) or not isinstance(self.bitrate, (int, np.integer)) \
                or not VIDEO_KBPS[0] * 1000 <= self.bitrate <= VIDEO_KBPS[1] * 1000:
            raise ValueError(f"video bitrate must be an integer from {VIDEO_KBPS[0] * 1000} "
                             f"to {VIDEO_KBPS[1] * 1000} bits per second, got {self.bitrate!r}")
        ks = self.keyframe_seconds
        if isinstance(ks, bool) or not isinstance(ks, (int, float)) or not 0.1 <= ks <= 10:
            raise ValueError(f"keyframe_seconds must be a number from 0.1 to 10, got {ks!r}")
        if self.preset not in PRESETS:
            raise ValueError(f"video preset must be one of {', '.join(PRESETS)}, "
                             f"got {self.preset!r}")

    @property
    def gop(self) -> int:
        """Frames from one keyframe to the next."""
        return max(1, round(self.keyframe_seconds * self.fps))

    @property
    def time_base(self) -> Fraction:
        return 1 / self.fps


def _video_encoder(settings: VideoSettings):
    import av

    cc = av.CodecContext.create("libx264", "w")
    cc.width = settings.width
    cc.height = settings.height
    cc.pix_fmt = "yuv420p"
    cc.time_base = settings.time_base
    cc.framerate = settings.fps
    cc.bit_rate = settings.bitrate
    cc.gop_size = settings.gop
    cc.max_b_frames = 0
    # Global header: SPS/PPS go to extradata (MP4, MKV and FLV need them there);
    # repeat-headers below puts them on every keyframe too (MPEG-TS, late joiners).
    # Closed GOP: no frame refers across a keyframe, so a segment can follow any other.
    cc.flags |= av.codec.context.Flags.global_header | av.codec.context.Flags.closed_gop
    tag_bt709(cc)
    rate = str(settings.bitrate)
    cc.options = {
        "preset": settings.preset,
        "profile": "main",
        # CBR: nal-hrd=cbr pads with filler up to exactly the bitrate; a 1-s buffer
        # keeps it constant over short windows, as streaming servers expect.
        "maxrate": rate,
        "minrate": rate,
        "bufsize": rate,
        # Keyframes exactly every gop frames and nowhere else.
        "keyint_min": str(settings.gop),
        "sc_threshold": "0",
        # Each segment starts (and on average ends) with the decoder's buffer half
        # full; with x264's default of 90 % every segment spent the difference
        # again and a 5-s repetition ran about 8 % over the bitrate.
        # CABAC on whatever the preset: "ultrafast" turns it off, and x264 then
        # signals Constrained Baseline, while the ingest servers ask for Main.
        "x264-params": "nal-hrd=cbr:vbv-init=0.5:repeat-headers=1:scenecut=0:open-gop=0:cabac=1",
    }
    cc.open()
    return cc


def _check_image(image, settings: VideoSettings) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3:
        got = (f"{image.shape} {image.dtype}" if isinstance(image, np.ndarray)
               else type(image).__name__)
        raise ValueError(f"video frames must be (H, W, 3) uint8 RGB arrays, got {got}")
    if image.shape[:2] != (settings.height, settings.width):
        raise ValueError(f"video frame is {image.shape[1]}x{image.shape[0]}, expected the "
                         f"output size {settings.width}x{settings.height}")
    return image


class YuvConverter:
    """RGB frames to BT.709 limited-range yuv420p av.VideoFrames at one size.

    The RGB side is one reused frame whose buffer is filled with a numpy copy (a
    third of the cost of building a frame per picture). A picture handed in again
    as the same array object, unchanged, is not converted again: the player's
    frame repetition (a 12 fps loop at 30 fps) hands the same array 2-3 times.
    """

    def __init__(self, settings: VideoSettings):
        import av

        self.settings = settings
        self._rgb = av.VideoFrame(settings.width, settings.height, "rgb24")
        plane = self._rgb.planes[0]
        self._rgb_view = np.frombuffer(plane, np.uint8).reshape(
            settings.height, plane.line_size)[:, :settings.width * 3]
        self._last_image = None
        self._last_probe = None
        self._last_frame = None
        self.converted = 0

    def __call__(self, image: np.ndarray):
        """The yuv420p frame for `image` (a fresh frame, or the previous one if repeated)."""
        image = _check_image(image, self.settings)
        # A sparse sample catches an array that was changed in place since.
        probe = image[::61, ::67].copy()
        if image is self._last_image and np.array_equal(probe, self._last_probe):
            return self._last_frame
        self._rgb_view[...] = image.reshape(self.settings.height, -1)
        frame = self._rgb.reformat(format="yuv420p", **TO_BT709)
        self._last_image, self._last_probe, self._last_frame = image, probe, frame
        self.converted += 1
        return frame


def scaled_yuv(image: np.ndarray, width: int, height: int):
    """An RGB picture of any size as a BT.709 yuv420p av.VideoFrame at width x height.

    Scaling and colour conversion in one swscale pass: the cheapest way from a loop's
    own frames to what the encoder takes (packed RGB at the output size would cost a
    second pass and three times the memory traffic)."""
    import av

    h, w = image.shape[:2]
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    return frame.reformat(width=width, height=height, format="yuv420p",
                          interpolation="AREA" if width * height < w * h else "BICUBIC",
                          **TO_BT709)


def _check_yuv(frame, settings: VideoSettings):
    if frame.format.name != "yuv420p" or (frame.width, frame.height) != (settings.width,
                                                                       settings.height):
        raise ValueError(f"video frames given as av.VideoFrame must be yuv420p at the output "
                         f"size {settings.width}x{settings.height}, got {frame.format.name} "
                         f"{frame.width}x{frame.height}")
    return frame


# A picture held longer than this many frames goes to x264 again. x264 spends on each
# of its frames the bits for the time until its next one (from the timestamps), and
# on the segment's last frame what it spent on the one before: with runs this short
# every segment stays at the bitrate (the CBR its HRD parameters promise, and what
# byte-sized buffers downstream assume), where a still picture held for a second
# would otherwise make a segment of a fifth of its bytes.
MAX_HOLD = 3


class SegmentEncoder:
    """One closed-GOP segment encoded a frame at a time, for pictures made as they come
    due (a live crossfade): `encode(frame)` returns the packets ready so far, `flush()`
    the rest. Packets carry segment-relative pts == dts (0, 1, ...), the first a
    keyframe and then one every settings.gop frames, as encode_segment's do.

    A frame is an (H, W, 3) uint8 RGB array at the output size or a yuv420p
    av.VideoFrame at that size. A repeated frame (the same object again, unchanged)
    costs next to nothing: it never reaches x264 but becomes a frame that shows the
    one before again (lofid.repeated_pictures), except on a keyframe."""

    def __init__(self, settings: VideoSettings):
        if not isinstance(settings, VideoSettings):
            raise ValueError(f"settings must be VideoSettings, got {type(settings).__name__}")
        self.settings = settings
        self.count = 0                          # frames taken so far
        self.repeated = 0                       # of which shown again without x264
        self._cc = _video_encoder(settings)
        self._convert = YuvConverter(settings)
        self._flushed = False
        # None where the headers cannot be extended: every frame goes to x264.
        self._repeats = repeats_for(bytes(self._cc.extradata or b""), settings.fps)
        self._last = None                       # the last frame given to x264, a probe
        self._last_probe = None                 # of it, and its place
        self._last_place = 0
        self._order: deque[tuple[int, bool]] = deque()   # (place, repeat) not yet returned
        self._encoded: dict[int, object] = {}   # x264's packets by place, not yet returned

    def encode(self, image) -> list[Packet]:
        import av
        from av.video.frame import PictureType

        if self._flushed:
            raise ValueError("this SegmentEncoder was flushed; make a new one")
        settings = self.settings
        frame = _check_yuv(image, settings) if isinstance(image, av.VideoFrame) \
            else self._convert(image)
        place = self.count
        self.count += 1
        key = place % settings.gop == 0
        probe = _probe(frame) if self._repeats is not None else None
        if not key and frame is self._last and place - self._last_place < MAX_HOLD \
                and probe is not None and np.array_equal(probe, self._last_probe):
            self.repeated += 1
            self._order.append((place, True))
            return self._ready(())
        self._last, self._last_probe, self._last_place = frame, probe, place
        # x264 gets the frame's real place as its timestamp: with repeats left out,
        # its rate control then knows how long each picture stays on screen.
        frame.pts = place
        frame.time_base = settings.time_base
        # Forcing the type as well as setting the GOP length: a keyframe lands on
        # every gop-th frame whatever the encoder's own decisions.
        frame.pict_type = PictureType.I if key else PictureType.NONE
        self._order.append((place, False))
        return self._ready(self._cc.encode(frame))

    def flush(self) -> list[Packet]:
        if self._flushed:
            return []
        self._flushed = True
        return self._ready(self._cc.encode(None))

    def _ready(self, packets) -> list[Packet]:
        """x264's new packets taken in; the frames now complete in order, as Packets
        (a repeat comes out as soon as the frame before it has)."""
        for p in packets:
            self._encoded[int(p.pts)] = p
        out: list[Packet] = []
        gop = self.settings.gop
        while self._order:
            place, repeat = self._order[0]
            if repeat:
                data, keyframe = self._repeats.repeat(place % gop), False
            elif place in self._encoded:
                p = self._encoded.pop(place)
                data, keyframe = bytes(p), bool(p.is_keyframe)
                if self._repeats is not None:
                    data = self._repeats.renumber(data, place % gop)
            else:
                break
            self._order.popleft()
            out.append(Packet(kind="video", pts=place, dts=place, duration=1,
                              keyframe=keyframe, data=data))
        return out


def _probe(frame):
    """A sparse sample of a yuv420p frame's luma, to tell a frame changed in place."""
    return np.frombuffer(frame.planes[0], np.uint8)[::4093].copy()


def encode_segment(frames: Iterable[np.ndarray], settings: VideoSettings) -> list[Packet]:
    """Encode `frames` ((H, W, 3) uint8 RGB at the output size) as one closed-GOP segment.

    Returns video Packets with pts == dts == 0..len-1 (segment-relative), duration 1,
    the first a keyframe and then one every settings.gop frames, nowhere else. Each
    call uses a fresh encoder and flushes it, so segments are independent.

    A frame may also be a yuv420p av.VideoFrame at the output size (from
    YuvConverter, or a crossfade blended in yuv420p, which is half the pixels of RGB
    and skips the conversion); its pts and picture type are overwritten.
    """
    if not isinstance(settings, VideoSettings):
        raise ValueError(f"settings must be VideoSettings, got {type(settings).__name__}")
    encoder = SegmentEncoder(settings)
    out: list[Packet] = []
    for image in frames:
        out += encoder.encode(image)
    if encoder.count == 0:
        raise ValueError("encode_segment needs at least one frame, got none")
    out += encoder.flush()
    if len(out) != encoder.count:
        raise RuntimeError(f"the H.264 encoder returned {len(out)} packets for "
                           f"{encoder.count} frames")
    out.sort(key=lambda p: p.pts)
    return out


def _probe_video_extradata(settings: VideoSettings) -> bytes:
    cc = _video_encoder(settings)
    return bytes(cc.extradata or b"")


def video_stream_info(settings: VideoSettings, audio_settings: "AudioEncoder | None" = None
                      ) -> StreamInfo:
    """The StreamInfo outputs mux with: sizes, rates and the encoders' extradata.

    The video extradata comes from a probe encoder with the same settings (identical
    to every segment encoder's); the audio's from `audio_settings` (an AudioEncoder),
    or a default 160 kb/s one when None.
    """
    if not isinstance(settings, VideoSettings):
        raise ValueError(f"settings must be VideoSettings, got {type(settings).__name__}")
    audio = audio_settings if audio_settings is not None else AudioEncoder()
    if not isinstance(audio, AudioEncoder):
        raise ValueError(f"audio_settings must be an AudioEncoder or None, "
                         f"got {type(audio).__name__}")
    return StreamInfo(width=settings.width, height=settings.height, fps=settings.fps,
                      video_codec="h264", video_extradata=_probe_video_extradata(settings),
                      video_bitrate=settings.bitrate, audio_codec="aac",
                      audio_extradata=audio.extradata, audio_rate=AUDIO_RATE,
                      audio_channels=AUDIO_CHANNELS, audio_bitrate=audio.bitrate)


@dataclass
class _SampleBuffer:
    """Samples waiting for a whole codec frame, with the timeline index of the first."""
    start: int | None = None
    pending: np.ndarray = field(default_factory=lambda: np.zeros((0, AUDIO_CHANNELS), np.float32))


def check_samples(samples, what: str = "audio samples") -> np.ndarray:
    """(k, 2) float samples as a contiguous float32 array; ValueError otherwise."""
    if not isinstance(samples, np.ndarray) or samples.ndim != 2 \
            or samples.shape[1] != AUDIO_CHANNELS or samples.dtype.kind != "f":
        got = (f"{samples.shape} {samples.dtype}" if isinstance(samples, np.ndarray)
               else type(samples).__name__)
        raise ValueError(f"{what} must be a (k, {AUDIO_CHANNELS}) float32 array, got {got}")
    return np.ascontiguousarray(samples, dtype=np.float32)


class AudioEncoder:
    """Continuous AAC-LC, 48 kHz stereo, fed with float32 (k, 2) samples of any length.

    Samples are buffered into the codec's 1024-sample frames; returned Packets carry
    pts in samples on the caller's timeline (the `start` of the first call), each
    1024 long. The encoder's priming packet (the 1024 samples before the first
    start) is not returned, so no packet starts before the timeline does; a decoder
    then fades in over its first 21 ms.
    """

    frame_size = 1024

    def __init__(self, bitrate: int = 160_000):
        import av

        if isinstance(bitrate, bool) or not isinstance(bitrate, (int, np.integer)) \
                or not 32_000 <= bitrate <= 512_000:
            raise ValueError(f"audio bitrate must be an integer from 32000 to 512000, "
                             f"got {bitrate!r}")
        self.bitrate = int(bitrate)
        cc = av.CodecContext.create("aac", "w")
        cc.sample_rate = AUDIO_RATE
        cc.layout = "stereo"
        cc.format = "fltp"
        cc.bit_rate = self.bitrate
        cc.time_base = Fraction(1, AUDIO_RATE)
        cc.flags |= av.codec.context.Flags.global_header
        cc.options = {"profile": "aac_low"}
        cc.open()
        self._cc = cc
        self.extradata: bytes = bytes(cc.extradata or b"")
        self._buffer = _SampleBuffer()
        self._first: int | None = None
        self._flushed = False

    @property
    def next_sample(self) -> int | None:
        """The timeline index the next encode() call must start at (None before the first)."""
        if self._buffer.start is None:
            return None
        return self._buffer.start + len(self._buffer.pending)

    def encode(self, samples: np.ndarray, start: int) -> list[Packet]:
        """Add `samples` ((k, 2) float32) that begin at timeline sample `start`.

        Calls must follow on without gaps: `start` is where the previous call ended.
        """
        if self._flushed:
            raise ValueError("this AudioEncoder was flushed; make a new one")
        samples = check_samples(samples)
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)):
            raise ValueError(f"audio start must be an integer sample index, got {start!r}")
        start = int(start)
        expected = self.next_sample
        if expected is None:
            self._buffer.start = start
            self._first = start
        elif start != expected:
            raise ValueError(f"audio samples must follow on: got start {start}, expected "
                             f"{expected} (where the previous samples ended)")
        buf = self._buffer
        buf.pending = np.concatenate([buf.pending, samples]) if len(buf.pending) else samples
        out: list[Packet] = []
        n = self.frame_size
        whole = len(buf.pending) // n * n
        for i in range(0, whole, n):
            out += self._encode_frame(buf.pending[i:i + n], buf.start + i)
        buf.pending = buf.pending[whole:]
        buf.start += whole
        return out

    def flush(self) -> list[Packet]:
        """Encode what is buffered (the last frame padded with silence) and drain the codec."""
        if self._flushed:
            return []
        self._flushed = True
        out: list[Packet] = []
        buf = self._buffer
        if len(buf.pending):
            last = np.zeros((self.frame_size, AUDIO_CHANNELS), np.float32)
            last[:len(buf.pending)] = buf.pending
            out += self._encode_frame(last, buf.start)
            buf.start += len(buf.pending)
            buf.pending = buf.pending[:0]
        out += self._packets(self._cc.encode(None))
        return out

    def _encode_frame(self, samples: np.ndarray, start: int) -> list[Packet]:
        import av

        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples.T), format="fltp",
                                           layout="stereo")
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        frame.time_base = Fraction(1, AUDIO_RATE)
        return self._packets(self._cc.encode(frame))

    def _packets(self, packets) -> list[Packet]:
        out = []
        for p in packets:
            pts = int(p.pts)
            if self._first is None or pts < self._first:
                continue          # the priming packet, before the timeline starts
            out.append(Packet(kind="audio", pts=pts, dts=pts,
                              duration=int(p.duration or self.frame_size),
                              keyframe=True, data=bytes(p)))
        return out

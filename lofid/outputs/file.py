"""Files: MP4 and MKV mux the player's encoded stream; WebM and GIF encode for themselves.

MP4 and MKV take the same H.264 + AAC packets every other packet output takes, so
recording costs no encoding. WebM (VP9 + Opus) and GIF cannot hold H.264; they get
raw frames (and audio) and encode on the output's own worker thread.

A file starts at time 0 whatever the player's clock says when it starts: the first
video frame the file gets is its zero, and audio is placed on the same zero.

Robustness: a file is written under its final name from the start, not renamed into
place at close. A recording of an hour must not vanish with a crash, and a temporary
name would leave the user a half-hidden file or nothing. Both packet formats stay
playable up to where they got if the process dies: MKV by its design (clusters are
self-contained; a missing index only slows seeking), MP4 because it is written
fragmented (a fragment per keyframe, i.e. every 2 s, with the index at the end once
closed) rather than with the index at the start ("faststart"), which would need a
second pass over the whole file at close and leaves nothing playable after a crash.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from lofid.media import (AUDIO_CHANNELS, AUDIO_RATE, AudioChunk, Packet, StreamInfo, VideoFrame,
                         tag_bt709)
from lofid.outputs.base import Output, OutputError
from lofid.outputs.mux import PacketMuxer, audio_sample_at

log = logging.getLogger("lofid.outputs")

PACKET_FORMATS = {".mp4": "mp4", ".mkv": "matroska"}
FRAME_FORMATS = {".webm": "webm", ".gif": "gif"}
FILE_EXTENSIONS = tuple(PACKET_FORMATS) + tuple(FRAME_FORMATS)

# Fragmented MP4: each fragment is complete on disk once the next keyframe arrives.
# flush_packets hands every packet to the OS at once, so a crash loses only what the
# muxer itself still holds (the current fragment or cluster, at most one GOP).
# delay_moov writes the (empty) moov with the first fragment instead of at the start,
# when each track's first timestamp is known: the audio starts a fraction of an AAC
# frame after the first picture, and only then can its edit list say so (a moov
# written earlier moved the first audio packet to 0, up to 21 ms early). The movie
# timescale is the sample rate so that edit is exact; at the default 1/1000 s it
# would move all the audio by up to a millisecond.
_MP4_OPTIONS = {"movflags": "+frag_keyframe+empty_moov+delay_moov+default_base_moof",
                "movie_timescale": str(AUDIO_RATE), "flush_packets": "1"}
_MKV_OPTIONS = {"flush_packets": "1"}


class RecordingOutput(Output):
    """An output that records: what a full queue means depends on the run.

    Not paced (only files and null play), the player runs as fast as the machine
    allows, far faster than a muxer or a VP9 encoder, and a recording with holes is
    broken: `lossless`, send() waits for room, so the file gets every frame -- for as
    long as its writer makes progress (see lofid.outputs.base).

    Paced (a stream or a window plays, or --realtime), the clock belongs to the
    wall and to the other outputs: a file that cannot keep up, or is stuck writing
    into a FIFO nobody reads, drops and counts for itself and says "stalled", like
    every other output. lofid.player.router.OutputSet sets `lossless` for the run.
    """

    lossless = True


class PacketWriter(PacketMuxer):
    """Muxes the player's H.264 + AAC Packets into a container it opens.

    `target` is a path or a writable binary file object, `format` a libavformat muxer
    name ("mp4", "matroska", "mpegts", "flv" ...). With `rebase` the first video
    keyframe becomes time 0 and audio is placed on the same instant; without it,
    packets keep their pts. The placing and muxing are lofid.outputs.mux's.
    """

    def __init__(self, target, format: str, info: StreamInfo, options: dict | None = None,
                 rebase: bool = True):
        import av

        container = av.open(target, mode="w", format=format, options=dict(options or {}))
        try:
            super().__init__(container, info, rebase=rebase)
        except BaseException:
            container.close()
            raise


def _rebased_audio(chunk: AudioChunk, origin: int, expected: int | None
                   ) -> tuple[int, np.ndarray] | None:
    """The chunk as (start, samples) on the file's timeline (whose sample 0 is the
    daemon's sample `origin`), trimmed to start at `expected` (no overlap) and padded
    with silence across any gap before it."""
    samples = np.asarray(chunk.samples, dtype=np.float32)
    start = chunk.start - origin
    if expected is None:
        expected = max(0, start)
    if start < expected:
        samples = samples[expected - start:]
        start = expected
    elif start > expected:
        gap = np.zeros((start - expected, AUDIO_CHANNELS), np.float32)
        samples = np.concatenate([gap, samples])
        start = expected
    if not len(samples):
        return None
    return start, samples


class WebmWriter:
    """VP9 + Opus, encoded from the player's raw frames and audio."""

    def __init__(self, path: Path, info: StreamInfo):
        import av

        from lofid.encode import VideoSettings, YuvConverter

        self.info = info
        self.settings = VideoSettings(width=info.width, height=info.height, fps=info.fps,
                                      bitrate=info.video_bitrate)
        self._convert = YuvConverter(self.settings)
        self.container = av.open(str(path), mode="w", format="webm")
        try:
            v = self.container.add_stream("libvpx-vp9", rate=self.settings.fps)
            v.width, v.height, v.pix_fmt = info.width, info.height, "yuv420p"
            v.time_base = self.settings.time_base
            cc = v.codec_context
            tag_bt709(cc)
            cc.gop_size = self.settings.gop
            cc.bit_rate = info.video_bitrate
            # Real-time speed settings: the file is made while the stream plays, and
            # "good" quality at 1080p runs at a few frames per second here.
            cc.options = {"deadline": "realtime", "cpu-used": "8", "row-mt": "1",
                          "crf": "32", "lag-in-frames": "0"}
            self.video = v
            a = self.container.add_stream("libopus", rate=AUDIO_RATE)
            a.codec_context.layout = "stereo"
            a.codec_context.bit_rate = min(info.audio_bitrate, 256_000)
            a.time_base = Fraction(1, AUDIO_RATE)
            self.audio = a
        except BaseException:
            self.container.close()
            raise
        self._origin: int | None = None
        self._audio_origin: int | None = None   # the daemon sample at self._origin
        self._pending_audio: list[AudioChunk] = []
        self._audio_next: int | None = None
        self._audio_buffer = np.zeros((0, AUDIO_CHANNELS), np.float32)
        self.frames = 0

    def write(self, item) -> None:
        if isinstance(item, VideoFrame):
            self._write_frame(item)
        elif isinstance(item, AudioChunk):
            if self._origin is None:
                self._pending_audio.append(item)
                del self._pending_audio[:-64]
            else:
                self._write_audio(item)

    def _write_frame(self, item: VideoFrame) -> None:
        if self._origin is None:
            self._origin = item.index
            # the first picture's instant on the audio timeline, by the packet muxer's rule
            self._audio_origin = audio_sample_at(item.index, self.info.fps, AUDIO_RATE)
            pending, self._pending_audio = self._pending_audio, []
            for chunk in pending:
                self._write_audio(chunk)
        frame = self._convert(item.image)
        frame.pts = item.index - self._origin
        frame.time_base = self.settings.time_base
        if frame.pts < 0:
            return
        self.container.mux(self.video.encode(frame))
        self.frames += 1

    def _write_audio(self, chunk: AudioChunk) -> None:
        import av

        placed = _rebased_audio(chunk, self._audio_origin, self._audio_next)
        if placed is None:
            return
        start, samples = placed
        if self._audio_next is None:
            self._audio_next = start
        self._audio_buffer = np.concatenate([self._audio_buffer, samples])
        # Opus takes frames of 960 samples (20 ms).
        n = self.audio.codec_context.frame_size or 960
        whole = len(self._audio_buffer) // n * n
        for i in range(0, whole, n):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(self._audio_buffer[i:i + n].T), format="fltp",
                layout="stereo")
            frame.sample_rate = AUDIO_RATE
            frame.pts = self._audio_next
            frame.time_base = Fraction(1, AUDIO_RATE)
            self._audio_next += n
            self.container.mux(self.audio.encode(frame))
        self._audio_buffer = self._audio_buffer[whole:]

    def close(self) -> None:
        try:
            if self._origin is not None:
                self.container.mux(self.video.encode(None))
                if self._audio_next is not None:
                    self.container.mux(self.audio.encode(None))
        finally:
            self.container.close()


class GifWriter:
    """An animated GIF that loops forever, from the player's raw frames (no audio).

    GIF delays are whole centiseconds, so a frame is written at the centisecond
    nearest its time and frames less than 2 cs after the previous one are left out
    (browsers slow shorter delays down): 30 fps plays with delays of 3, 3 and 4 cs,
    60 fps at half its frames. One palette, made like lofid.export makes it,
    holds until the picture changes a lot (a crossfade to another scene); dithered
    pixels that did not change keep their index so still parts do not crawl.
    """

    def __init__(self, path: Path, info: StreamInfo):
        import av

        self.info = info
        self.container = av.open(str(path), mode="w", format="gif")
        try:
            s = self.container.add_stream("gif", rate=Fraction(info.fps))
            s.width, s.height, s.pix_fmt = info.width, info.height, "pal8"
            s.time_base = Fraction(1, 100)
            self.stream = s
        except BaseException:
            self.container.close()
            raise
        self._origin: int | None = None
        self._last_cs: int | None = None
        self._palette = None            # PIL image holding the palette
        self._palette_argb = None
        self._palette_from = None       # small copy of the frame the palette came from
        self._previous = None           # (frame, indices) last written
        self.frames = 0

    def write(self, item) -> None:
        if not isinstance(item, VideoFrame):
            return                      # GIF has no audio
        if self._origin is None:
            self._origin = item.index
        cs = round(Fraction(item.index - self._origin) * 100 / Fraction(self.info.fps))
        if cs < 0 or (self._last_cs is not None and cs - self._last_cs < 2):
            return
        self._last_cs = cs
        image = np.ascontiguousarray(item.image)
        indices = self._indices(image)
        import av

        frame = av.VideoFrame.from_ndarray((indices, self._palette_argb), format="pal8")
        frame.pts = cs
        frame.time_base = Fraction(1, 100)
        self.container.mux(self.stream.encode(frame))
        self.frames += 1

    def _indices(self, image: np.ndarray) -> np.ndarray:
        from PIL import Image

        from lofid.export import gif_palette

        small = image[::8, ::8].astype(np.int16)
        if self._palette is None or np.abs(small - self._palette_from).mean() > 24:
            self._palette = gif_palette(image[None])
            rgb = np.array(self._palette.getpalette()[:768], np.uint8).reshape(-1, 3)
            argb = np.zeros((256, 4), np.uint8)
            argb[:, 0] = 255
            argb[:len(rgb), 1:] = rgb
            self._palette_argb = argb
            self._palette_from = small
            self._previous = None
        indices = np.array(Image.fromarray(image, "RGB").quantize(
            palette=self._palette, dither=Image.Dither.FLOYDSTEINBERG))
        if self._previous is not None:
            before, before_indices = self._previous
            still = (image == before).all(axis=-1)
            indices[still] = before_indices[still]
        self._previous = (image.copy(), indices)   # the caller may reuse its array
        return indices

    def close(self) -> None:
        try:
            if self._origin is not None:
                self.container.mux(self.stream.encode(None))
        finally:
            self.container.close()


def check_file_target(path: str | os.PathLike, extensions: tuple = FILE_EXTENSIONS) -> Path:
    """The path of a file output, checked: a known extension, an existing writable folder."""
    path = Path(path).expanduser()
    ext = path.suffix.lower()
    if ext not in extensions:
        raise OutputError(f"output {str(path)!r}: cannot write {ext or 'a file without extension'}"
                          f" files; expected one of {', '.join(extensions)}")
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"output {str(path)!r}: folder {str(folder)!r} does not exist; "
                          "expected an existing folder")
    if path.is_dir():
        raise OutputError(f"output {str(path)!r} is a folder; expected a file name")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise OutputError(f"output {str(path)!r}: not writable; expected a file in a folder "
                          "this user can write to")
    return path


class FileOutput(RecordingOutput):
    """A file: .mp4 / .mkv (the shared packets) or .webm / .gif (raw frames, encoded here).

    Written under its final name from the start and finalised by close() (the player
    calls it on stop and on Ctrl-C); after a crash MKV and the fragmented MP4 still
    play up to the last couple of seconds.
    """

    def __init__(self, path: str | os.PathLike, on_state=None, **options):
        self.path = check_file_target(path)
        ext = self.path.suffix.lower()
        self.format = PACKET_FORMATS.get(ext) or FRAME_FORMATS[ext]
        self.wants = "frames" if ext in FRAME_FORMATS else "packets"
        if options:
            log.debug("file output %s ignores options %s", self.path, sorted(options))
        super().__init__(str(self.path), on_state)
        self._writer = None

    def _open(self, info: StreamInfo) -> None:
        if self.format == "mp4":
            self._writer = PacketWriter(str(self.path), "mp4", info, _MP4_OPTIONS)
        elif self.format == "matroska":
            self._writer = PacketWriter(str(self.path), "matroska", info, _MKV_OPTIONS)
        elif self.format == "webm":
            self._writer = WebmWriter(self.path, info)
        else:
            self._writer = GifWriter(self.path, info)

    def _write(self, item) -> None:
        try:
            if self.wants == "packets":
                if isinstance(item, Packet):
                    self._writer.write(item)
            elif isinstance(item, (VideoFrame, AudioChunk)):
                self._writer.write(item)
        except BaseException:
            # Finish what is there, so a failed recording still plays up to here.
            self._close()
            raise

    def _close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

"""A loop someone made elsewhere (ComfyUI, an editor, a phone) read from its file and
checked, to be kept in the library like the loops lofid makes.

What it reads:

- video files PyAV opens (MP4, WebM, MKV, MOV ...): the first video stream, at the
  stream's own frame rate;
- GIF: every frame, at the rate its frame delays give (the median delay);
- a PNG sequence: a folder (every *.png in it) or a glob pattern ("out/loop_*.png"),
  in natural name order (frame_2 before frame_10). PNG frames carry no rate, so a
  sequence needs one given.

A rate given always wins over the file's own. What it checks, before keeping anything:
2 to MAX_LOOP_FRAMES frames, each side in SIZE_RANGE, every frame the same size, a rate
from MIN_FPS to MAX_FPS, and at most MAX_LOOP_BYTES of frames in memory (counted while
decoding, so a long file is refused without being read to its end).

The loop's key in the library comes from what it shows (the frames' SHA-256, the rate)
and the scene parsed from its prompt: the same file with the same prompt is stored once.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import stat
from pathlib import Path

import numpy as np

from lofid.errors import UserError
from lofid.loop import Loop

MIN_FPS, MAX_FPS = 1, 60          # the rates `lofid generate` takes
SEQUENCE_SUFFIX = ".png"
_GLOB_CHARS = re.compile(r"[*?\[]")
_MADE_BY = re.compile(r"[A-Za-z0-9_-]{1,32}")


class LoopFileError(UserError):
    """The file is not a loop lofid can keep; the message names the file and why."""


def _limits():
    from lofid.settings.values import (MAX_LOOP_BYTES, MAX_LOOP_FRAMES, SIZE_RANGE,
                                       size_in_range)
    return MAX_LOOP_BYTES, MAX_LOOP_FRAMES, SIZE_RANGE, size_in_range


def check_fps(fps, where: str) -> float:
    """`fps` as a float if it is a rate a loop may have; LoopFileError otherwise."""
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) \
            or not MIN_FPS <= fps <= MAX_FPS:      # NaN is neither
        raise LoopFileError(f"{where}: a frame rate must be a number from {MIN_FPS} to "
                            f"{MAX_FPS} (lofi loops use 8-15), got {fps!r}")
    return float(fps)


def is_sequence(path: str) -> bool:
    """Whether `path` names a PNG sequence (a folder, or a glob pattern)."""
    return bool(_GLOB_CHARS.search(os.path.basename(path))) or os.path.isdir(path)


class _Frames:
    """Frames gathered one at a time, checked against the limits as they come."""

    def __init__(self, where: str):
        self.where = where
        self.frames: list[np.ndarray] = []
        self.max_bytes, self.max_frames, self.size_range, self.size_ok = _limits()

    def size(self, width: int, height: int) -> None:
        if not self.size_ok(width, height):
            raise LoopFileError(f"{self.where} is {width}x{height}: a loop's frames must be "
                                f"{self.size_range} pixels")

    def add(self, image: np.ndarray) -> None:
        h, w = image.shape[:2]
        if self.frames and self.frames[0].shape != image.shape:
            h0, w0 = self.frames[0].shape[:2]
            raise LoopFileError(f"{self.where}: frame {len(self.frames) + 1} is {w}x{h}, "
                                f"the first is {w0}x{h0}; every frame must be the same size")
        if not self.frames:
            self.size(w, h)
        if len(self.frames) + 1 > self.max_frames:
            raise LoopFileError(f"{self.where} has more than {self.max_frames} frames, the "
                                f"most a loop may have")
        if (len(self.frames) + 1) * image.nbytes > self.max_bytes:
            raise LoopFileError(f"{self.where}: its frames take more than "
                                f"{self.max_bytes / 2**30:g} GiB at {w}x{h}, the most a loop "
                                f"may hold: fewer frames or a smaller size")
        self.frames.append(np.ascontiguousarray(image, dtype=np.uint8))

    def done(self) -> np.ndarray:
        if len(self.frames) < 2:
            raise LoopFileError(f"{self.where} has {len(self.frames)} frame"
                                f"{'' if len(self.frames) == 1 else 's'}; a loop needs at "
                                f"least 2")
        return np.stack(self.frames)


def _natural(name: str) -> list:
    # frame_2 before frame_10: digit runs compare as numbers.
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name)]


def _sequence_files(path: str) -> list[str]:
    if os.path.isdir(path):
        names = [os.path.join(path, n) for n in os.listdir(path)
                 if n.lower().endswith(SEQUENCE_SUFFIX)]
        if not names:
            raise LoopFileError(f"{path!r} is a folder with no .png frames in it")
    else:
        names = [n for n in glob.glob(path) if n.lower().endswith(SEQUENCE_SUFFIX)]
        if not names:
            raise LoopFileError(f"{path!r} matches no .png files")
    return sorted(names, key=lambda n: _natural(os.path.basename(n)))


def _read_sequence(path: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError
    frames = _Frames(repr(path))
    for name in _sequence_files(path):
        _regular(name)
        try:
            with Image.open(name) as im:
                frames.size(im.width, im.height)     # before any pixel is decoded
                frames.add(np.asarray(im.convert("RGB")))
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
            raise LoopFileError(f"{name!r} cannot be read as a PNG frame: {e}") from None
    return frames.done()


def _read_gif(path: str) -> tuple[np.ndarray, float | None]:
    from PIL import Image, ImageSequence, UnidentifiedImageError
    frames = _Frames(repr(path))
    delays = []
    try:
        with Image.open(path) as im:
            frames.size(im.width, im.height)
            for frame in ImageSequence.Iterator(im):
                delays.append(frame.info.get("duration") or 0)
                frames.add(np.asarray(frame.convert("RGB")))
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, EOFError) as e:
        raise LoopFileError(f"{path!r} cannot be read as a GIF: {e}") from None
    delay = float(np.median(delays)) if delays else 0.0
    # Browsers show a delay under 20 ms (0 included) as 100 ms; so does this.
    return frames.done(), _gif_rate(delay if delay >= 20 else 100.0)


# A GIF keeps delays in hundredths of a second: 12 fps is written as 80 ms (12.5 fps).
# A common rate whose delay rounds to the one written is taken to be the rate meant.
_COMMON_RATES = (8, 10, 12, 15, 24, 25, 30)


def _gif_rate(delay_ms: float) -> float:
    for rate in _COMMON_RATES:
        if round(100 / rate) * 10 == round(delay_ms):
            return float(rate)
    return 1000.0 / delay_ms


def _read_video(path: str) -> tuple[np.ndarray, float | None]:
    import av
    frames = _Frames(repr(path))
    try:
        with av.open(path, metadata_errors="ignore") as container:
            if not container.streams.video:
                raise LoopFileError(f"{path!r} has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames.size(stream.codec_context.width, stream.codec_context.height)
            rate = stream.average_rate or stream.guessed_rate
            for vf in container.decode(stream):
                frames.add(vf.to_ndarray(format="rgb24"))
    except av.FFmpegError as e:
        raise LoopFileError(f"{path!r} cannot be read as video: "
                            f"{getattr(e, 'strerror', None) or e}") from None
    return frames.done(), float(rate) if rate else None


def _regular(path: str) -> None:
    """LoopFileError unless `path` is a plain file (a FIFO would block the read)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise LoopFileError(f"{path!r} does not exist") from None
    except OSError as e:
        raise LoopFileError(f"{path!r} cannot be read: {e.strerror}") from None
    if not stat.S_ISREG(mode):
        raise LoopFileError(f"{path!r} is not a file")
    if not os.access(path, os.R_OK):
        raise LoopFileError(f"{path!r} cannot be read: permission denied")


def read_frames(path: str | os.PathLike, fps: float | None = None) -> tuple[np.ndarray, float]:
    """(frames (N, H, W, 3) uint8, fps) of the loop in `path` (see the module's
    docstring for what it reads); `fps`, when given, is the rate it plays at.
    LoopFileError naming the file and what is wrong."""
    path = os.fspath(path)
    if fps is not None:
        fps = check_fps(fps, f"{path!r}")
    if is_sequence(path):
        if fps is None:
            raise LoopFileError(f"{path!r} is a PNG sequence, and PNG frames carry no frame "
                                f"rate: give one (--fps, or fps in library.add)")
        return _read_sequence(path), fps
    _regular(path)
    suffix = Path(path).suffix.lower()
    if suffix in (".png", ".jpg", ".jpeg", ".webp", ".bmp"):
        raise LoopFileError(f"{path!r} is one picture, not a loop: give a video, a GIF, or "
                            f"a folder (or pattern) of PNG frames")
    frames, own = _read_gif(path) if suffix == ".gif" else _read_video(path)
    if fps is None:
        if own is None:
            raise LoopFileError(f"{path!r} does not say its frame rate: give one (--fps)")
        fps = check_fps(round(own, 3), f"{path!r} (its own rate)")
    return frames, fps


def content_key(frames: np.ndarray, fps: float) -> str:
    """SHA-256 of the frames and their rate: what makes two added loops the same."""
    h = hashlib.sha256()
    h.update(f"{frames.shape} {fps!r}".encode())
    h.update(np.ascontiguousarray(frames).data)
    return h.hexdigest()


def loop_from_frames(frames: np.ndarray, fps: float, prompt: str,
                     made_by: str = "file") -> Loop:
    """A Loop of `frames` at `fps` showing the scene parsed from `prompt`, made by
    `made_by` (its generator name in the library: "file", "comfyui"). Its metrics are
    computed here, as for every loop."""
    from lofid.scene import parse
    if not isinstance(made_by, str) or not _MADE_BY.fullmatch(made_by):
        raise LoopFileError(f"made_by must be a short name (letters, digits, - and _), "
                            f"got {made_by!r}")
    if not isinstance(prompt, str):
        raise LoopFileError(f"the prompt must be a text, got {prompt!r}")
    spec = parse(prompt)
    n, h, w, _ = frames.shape
    return Loop(frames=frames, fps=fps, spec=spec, seed=0, generator=made_by,
                params={"size": [w, h], "prompt": prompt,
                        "content": content_key(frames, fps)})


def read_loop(path: str | os.PathLike, prompt: str, fps: float | None = None,
              made_by: str = "file") -> Loop:
    """The loop in the file at `path`, checked, with its scene from `prompt`."""
    frames, fps = read_frames(path, fps)
    return loop_from_frames(frames, fps, prompt, made_by)

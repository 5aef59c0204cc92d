"""A loop as files: MP4 / WebM / GIF that repeat without a seam, PNG, contact sheets.

Every file is written to a temporary file in its folder and renamed into place only
when complete, so a file of that name is always whole.
"""

from __future__ import annotations

import math
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lofid.durable import fsync_path
from lofid.errors import Failure
from lofid.loop import Loop, check_frames
from lofid.media import TO_BT709, tag_bt709

EXPORT_FORMATS = (".mp4", ".webm", ".gif")


class ExportError(Failure, ValueError):
    """A loop cannot be exported as asked (unknown format, bad option, encoder failure)."""


def _check_frame(frame: Any, what: str = "frame") -> np.ndarray:
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"{what} must be a numpy array of shape (H, W, 3), "
                         f"got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise ValueError(f"{what} must have dtype uint8, got {frame.dtype}")
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f"{what} must have shape (H, W, 3), got {frame.shape}")
    return frame


# --------------------------------------------------------------------------- pictures

def _atomic_target(path: Path) -> tuple[int, Path]:
    """A new temporary file beside `path` (same folder, so the final rename is atomic)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    return fd, Path(tmp)


def _finish(tmp: Path, path: Path) -> None:
    fsync_path(tmp)
    os.chmod(tmp, 0o644 & ~_umask())
    os.replace(tmp, path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_png(frame: np.ndarray, path: str | os.PathLike) -> Path:
    """Write one (H, W, 3) uint8 frame as a PNG, atomically. Returns the path."""
    from PIL import Image

    frame = _check_frame(frame)
    path = Path(path)
    fd, tmp = _atomic_target(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            Image.fromarray(frame, "RGB").save(fh, format="PNG")
        _finish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def contact_sheet(frames: np.ndarray, columns: int | None = None, max_width: int = 1600,
                  gap: int = 2, background: tuple[int, int, int] = (16, 16, 20)) -> np.ndarray:
    """A grid of the frames, left to right then top to bottom, as one (H, W, 3) image.

    `columns` defaults to ceil(sqrt(N)). Frames are scaled down (never up) so the
    sheet is at most `max_width` pixels wide; tiles are `gap` pixels apart on
    `background`, which also fills the empty cells of the last row.
    """
    from PIL import Image

    frames = check_frames(frames, min_frames=1)
    n, h, w, _ = frames.shape
    if columns is None:
        columns = math.ceil(math.sqrt(n))
    elif isinstance(columns, bool) or not isinstance(columns, (int, np.integer)) or columns < 1:
        raise ValueError(f"contact_sheet columns must be a whole number >= 1, got {columns!r}")
    columns = int(min(columns, n))
    if isinstance(max_width, bool) or not isinstance(max_width, (int, np.integer)):
        raise ValueError(f"contact_sheet max_width must be a whole number of pixels, "
                         f"got {max_width!r}")
    if isinstance(gap, bool) or not isinstance(gap, int) or gap < 0:
        raise ValueError(f"contact_sheet gap must be a whole number >= 0, got {gap!r}")
    tile_w = min(w, (max_width - gap * (columns - 1)) // columns)
    if tile_w < 1:
        raise ValueError(f"contact_sheet max_width {max_width} is too small for "
                         f"{columns} columns {gap} px apart")
    tile_h = max(1, round(h * tile_w / w))
    rows = math.ceil(n / columns)
    sheet = np.empty((rows * tile_h + gap * (rows - 1), columns * tile_w + gap * (columns - 1), 3),
                     dtype=np.uint8)
    sheet[:] = np.asarray(background, dtype=np.uint8)
    for i in range(n):
        tile = frames[i]
        if (tile_w, tile_h) != (w, h):
            tile = np.asarray(Image.fromarray(tile, "RGB")
                              .resize((tile_w, tile_h), Image.Resampling.BOX))
        y = (i // columns) * (tile_h + gap)
        x = (i % columns) * (tile_w + gap)
        sheet[y:y + tile_h, x:x + tile_w] = tile
    return sheet


# --------------------------------------------------------------------------- export

def export(loop: Loop, path: str | os.PathLike, repeat: int = 1,
           progress: Callable[[int, int], Any] | None = None) -> Path:
    """Write `loop` to `path` as MP4 (H.264, yuv420p), WebM (VP9) or GIF (loops
    forever), chosen by the extension, with the loop played `repeat` times.

    Every frame is a real frame and lasts exactly 1/fps (the last one included), so
    players that repeat the file (``mpv --loop``, a browser's GIF) show no seam.
    Odd widths or heights are padded by one repeated edge pixel for MP4 and WebM
    (their yuv420p colour needs even sides); GIF keeps the exact size. The file is
    written to a temporary file in the same folder and renamed into place only when
    complete. `progress(done, total)` is called after each frame written.
    """
    if not isinstance(loop, Loop):
        raise ExportError(f"export needs a Loop, got {type(loop).__name__}")
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in EXPORT_FORMATS:
        raise ExportError(f"cannot export to {ext or 'a name without extension'!r} "
                          f"({path.name}): supported formats are {', '.join(EXPORT_FORMATS)}")
    if isinstance(repeat, bool) or not isinstance(repeat, (int, np.integer)) or repeat < 1:
        raise ExportError(f"export repeat must be a whole number >= 1, got {repeat!r}")
    if not path.parent.is_dir():
        raise ExportError(f"cannot export to {path}: folder {path.parent} does not exist")
    repeat = int(repeat)
    total = loop.n_frames * repeat

    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    fd, tmp = _atomic_target(path)
    os.close(fd)
    try:
        if ext == ".gif":
            _write_gif(loop, tmp, repeat, tick)
        else:
            _write_video(loop, tmp, ext, repeat, tick)
        _finish(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if _is_av_error(exc):
            raise ExportError(f"could not encode {path.name}: {exc}") from exc
        raise
    return path


def _is_av_error(exc: BaseException) -> bool:
    try:
        import av
    except ImportError:  # pragma: no cover - av is a dependency
        return False
    return isinstance(exc, av.FFmpegError)


# Encoder settings per format. CRF keeps quality constant; no B-frames in H.264, so
# every packet's decode order is its display order and the file starts at pts 0
# without an edit list that some players get wrong when they loop.
_VIDEO = {
    ".mp4": ("mp4", "libx264", {"crf": "18", "preset": "medium", "bf": "0"},
             {"movflags": "+faststart"}),
    ".webm": ("webm", "libvpx-vp9", {"crf": "30", "b": "0", "deadline": "good",
                                      "cpu-used": "4", "row-mt": "1"}, {}),
}

def _write_video(loop: Loop, tmp: Path, ext: str, repeat: int, tick: Callable[[], Any]) -> None:
    import av

    fmt, codec, options, container_options = _VIDEO[ext]
    rate = loop.rate
    # Tagged BT.709 (what players assume for HD) and converted with the same matrix,
    # so colours come out the same in every player.
    with av.open(str(tmp), mode="w", format=fmt, options=container_options) as container:
        stream = container.add_stream(codec, rate=rate, options=dict(options))
        stream.width = loop.width + loop.width % 2
        stream.height = loop.height + loop.height % 2
        stream.pix_fmt = "yuv420p"
        # Frames are stamped 0, 1, 2, ... in 1/fps. The muxer may pick a finer time
        # base for the stream when it starts, so this one is kept apart.
        time_base = 1 / rate
        stream.time_base = time_base
        tag_bt709(stream.codec_context)
        pad = (loop.height % 2, loop.width % 2)
        for index in range(loop.n_frames * repeat):
            frame = loop.frames[index % loop.n_frames]
            if pad != (0, 0):
                frame = np.pad(frame, ((0, pad[0]), (0, pad[1]), (0, 0)), mode="edge")
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf = vf.reformat(format="yuv420p", **TO_BT709)
            vf.pts = index
            vf.time_base = time_base
            for packet in stream.encode(vf):
                _mux(container, packet, time_base)
            tick()
        for packet in stream.encode(None):
            _mux(container, packet, time_base)


def _mux(container, packet, frame_time_base: Fraction) -> None:
    # Encoders leave packet durations at 0, and then the muxer has to guess how long
    # the last frame lasts. Every frame lasts exactly 1/fps, the last one included.
    packet.duration = max(1, round(Fraction(frame_time_base) / Fraction(packet.time_base)))
    container.mux(packet)


def gif_palette(frames: np.ndarray):
    """One adaptive 256-colour palette (a Pillow "P" image) for all of `frames`
    ((N, H, W, 3) uint8, N >= 1), from a montage of them.

    One palette rather than one per frame: with per-frame palettes the still parts
    of a picture change colour slightly from frame to frame and shimmer on every
    pass of the loop.
    """
    from PIL import Image

    frames = check_frames(frames, min_frames=1)
    n, h, w, _ = frames.shape
    # Up to 16 frames, each cut to about 64k pixels, is plenty to place 256 colours.
    picks = np.linspace(0, n - 1, min(n, 16)).round().astype(int)
    stride = max(1, math.isqrt(h * w // 65536))
    montage = np.concatenate([frames[i, ::stride, ::stride] for i in picks], axis=0)
    return Image.fromarray(montage, "RGB").quantize(
        colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


def _gif_indices(loop: Loop, palette) -> list[np.ndarray]:
    """Each frame as indices into `palette`, dithered, with still parts kept still.

    Floyd-Steinberg error diffusion gives smooth skies without banding, but the
    error it spreads from moving parts would make still parts crawl. So a pixel
    whose colour did not change keeps the previous frame's index; and pixels that
    end the loop with the colour they start it with end it with the same index, so
    the jump from the last frame back to the first shows nothing either.
    """
    from PIL import Image

    frames = loop.frames
    indices = []
    for i, frame in enumerate(frames):
        index = np.array(Image.fromarray(frame, "RGB").quantize(
            palette=palette, dither=Image.Dither.FLOYDSTEINBERG))
        if i:
            still = (frame == frames[i - 1]).all(axis=-1)
            index[still] = indices[-1][still]
        indices.append(index)
    # Walk back from the seam: pixels unchanged from frame i to frame i+1 (and so on
    # up to frame 0 again) take frame 0's index.
    joined = np.ones(frames.shape[1:3], dtype=bool)
    for i in range(len(frames) - 1, 0, -1):
        joined &= (frames[i] == frames[(i + 1) % len(frames)]).all(axis=-1)
        if not joined.any():
            break
        indices[i][joined] = indices[0][joined]
    return indices


def _write_gif(loop: Loop, tmp: Path, repeat: int, tick: Callable[[], Any]) -> None:
    from PIL import Image

    total = loop.n_frames * repeat
    # GIF delays are whole centiseconds; alternating them (8, 9, 8, 8, 9, 8 cs at
    # 12 fps) keeps every frame's start within 5 ms of i / fps, so the loop keeps its
    # true speed and length.
    starts = [round(i * 100 / loop.fps) for i in range(total + 1)]
    delays = [10 * (b - a) for a, b in zip(starts, starts[1:])]
    if min(delays) < 20:
        raise ExportError(f"GIF cannot play {loop.fps:g} fps: its delays are whole "
                          "centiseconds and browsers slow delays under 2 cs; "
                          "use at most 50 fps, or MP4/WebM")
    palette = gif_palette(loop.frames)
    colours = palette.getpalette()
    indices = _gif_indices(loop, palette)

    def images():
        for i in range(total):
            image = Image.fromarray(indices[i % loop.n_frames], "P")
            image.putpalette(colours)
            yield image
            tick()     # the writer asks for the next frame once it took this one

    frames = images()
    first = next(frames)
    # loop=0 writes the NETSCAPE2.0 extension with a count of 0: repeat forever.
    # Pillow folds a frame identical to the one before into that frame's delay:
    # fewer frames in the file, the same picture at the same times.
    first.save(tmp, format="GIF", save_all=True, append_images=frames, loop=0,
               duration=delays, disposal=1, optimize=False)

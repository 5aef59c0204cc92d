"""Loop: the frames of one seamless animation, with what made it and how well it loops.

A loop is N frames (N, H, W, 3 uint8) played at a source fps, over and over. This
module holds the Loop record, the metrics every loop carries (seam ratio, motion,
flicker), a crossfade that closes clips which do not loop by themselves, and export
to MP4 / WebM / GIF, PNG and contact sheets.

It is part of the ground floor: it imports nothing else of lofid. The scene spec is
taken duck-typed (anything with ``.to_dict()`` and ``.id``).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lofid.errors import Failure

EXPORT_FORMATS = (".mp4", ".webm", ".gif")

METRIC_NAMES = ("seam_ratio", "motion", "flicker")

# Metrics look at no more than this many pixels along each side (see _sample_steps).
_METRIC_SAMPLES_PER_SIDE = 320

# ITU-R BT.709 luma weights: "brightness" as a viewer sees it, not the plain RGB mean.
_LUMA = np.array([0.2126, 0.7152, 0.0722])


class ExportError(Failure, ValueError):
    """A loop cannot be exported as asked (unknown format, bad option, encoder failure)."""


# --------------------------------------------------------------------------- validation

def _check_frames(frames: Any, what: str = "frames", min_frames: int = 2) -> np.ndarray:
    if not isinstance(frames, np.ndarray):
        raise ValueError(f"{what} must be a numpy array of shape (N, H, W, 3), "
                         f"got {type(frames).__name__}")
    if frames.dtype != np.uint8:
        raise ValueError(f"{what} must have dtype uint8, got {frames.dtype}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{what} must have shape (N, H, W, 3), got {frames.shape}")
    n, h, w, _ = frames.shape
    if n < min_frames:
        raise ValueError(f"{what} must hold at least {min_frames} frames, got {n}")
    if h < 1 or w < 1:
        raise ValueError(f"{what} must be at least 1x1 pixels, got {w}x{h}")
    return frames


def _check_frame(frame: Any, what: str = "frame") -> np.ndarray:
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"{what} must be a numpy array of shape (H, W, 3), "
                         f"got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise ValueError(f"{what} must have dtype uint8, got {frame.dtype}")
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f"{what} must have shape (H, W, 3), got {frame.shape}")
    return frame


def _plain(value: Any, where: str) -> Any:
    """`value` as plain JSON types (tuples become lists); ValueError for anything else."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        # JSON has no infinity; None stands for it (see Loop.metadata).
        return float(value) if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where} must have string keys, got key {k!r}")
            out[k] = _plain(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise ValueError(f"{where} must be JSON-able (numbers, strings, lists, dicts), "
                     f"got {type(value).__name__}: {value!r}")


# --------------------------------------------------------------------------- the record

@dataclass(eq=False, repr=False)   # frames make field-wise == and repr useless
class Loop:
    """One seamless loop: frames played at `fps`, with the spec, seed and generator
    that made it, and its metrics (computed here when not given)."""

    frames: np.ndarray          # (N, H, W, 3) uint8, N >= 2
    fps: float                  # source frames per second
    spec: Any                   # a SceneSpec (duck-typed: .to_dict(), .id)
    seed: int
    generator: str              # "procedural", "animatediff", ...
    params: dict = field(default_factory=dict)   # everything else that made it
    metrics: dict = None        # {"seam_ratio", "motion", "flicker"}
    created: float = None       # unix time

    def __post_init__(self) -> None:
        self.frames = np.ascontiguousarray(_check_frames(self.frames, "Loop frames"))
        if isinstance(self.fps, bool) or not isinstance(self.fps, (int, float, np.number)):
            raise ValueError(f"Loop fps must be a number, got {self.fps!r}")
        if not math.isfinite(self.fps) or self.fps <= 0:
            raise ValueError(f"Loop fps must be a finite number > 0, got {self.fps!r}")
        self.fps = float(self.fps)
        if not (callable(getattr(self.spec, "to_dict", None)) and hasattr(self.spec, "id")):
            raise ValueError("Loop spec must be a scene spec with .to_dict() and .id, "
                             f"got {type(self.spec).__name__}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"Loop seed must be an integer, got {self.seed!r}")
        self.seed = int(self.seed)
        if not isinstance(self.generator, str) or not self.generator:
            raise ValueError(f"Loop generator must be a non-empty name, got {self.generator!r}")
        if not isinstance(self.params, dict):
            raise ValueError(f"Loop params must be a dict, got {type(self.params).__name__}")
        if self.metrics is None:
            self.metrics = compute_metrics(self.frames)
        else:
            self.metrics = _check_metrics(self.metrics)
        if self.created is None:
            self.created = time.time()
        elif isinstance(self.created, bool) or not isinstance(self.created, (int, float)):
            raise ValueError(f"Loop created must be a unix time, got {self.created!r}")
        else:
            self.created = float(self.created)

    def __repr__(self) -> str:
        return (f"Loop({self.n_frames} frames {self.width}x{self.height} at {self.fps:g} fps, "
                f"spec {self.spec.id}, {self.generator} seed {self.seed}, "
                f"seam ratio {self.metrics['seam_ratio']:.3g})")

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def duration(self) -> float:
        """Seconds one pass of the loop lasts."""
        return self.n_frames / self.fps

    def metadata(self) -> dict:
        """Everything but the frames, as plain JSON types (strict JSON: an infinite
        seam ratio, from a static clip that jumps at the seam, is written as None)."""
        return {
            "spec": _plain(self.spec.to_dict(), "Loop spec"),
            "spec_id": str(self.spec.id),
            "seed": self.seed,
            "generator": self.generator,
            "params": _plain(self.params, "Loop params"),
            "fps": self.fps,
            "n_frames": self.n_frames,
            "width": self.width,
            "height": self.height,
            "duration": self.duration,
            "metrics": _plain(self.metrics, "Loop metrics"),
            "created": self.created,
        }

    @classmethod
    def from_metadata(cls, meta: dict, frames: np.ndarray, spec: Any) -> "Loop":
        """Rebuild a Loop from `metadata()` output, its frames and its spec (the
        caller rebuilds the spec, e.g. with SceneSpec.from_dict(meta["spec"])).
        Frames that do not match the recorded count or size are refused."""
        if not isinstance(meta, dict):
            raise ValueError(f"loop metadata must be a dict, got {type(meta).__name__}")
        missing = [k for k in ("fps", "seed", "generator") if k not in meta]
        if missing:
            raise ValueError(f"loop metadata lacks {', '.join(missing)}")
        frames = _check_frames(frames, "loop frames")
        for key, actual in (("n_frames", frames.shape[0]), ("height", frames.shape[1]),
                            ("width", frames.shape[2])):
            if key in meta and meta[key] != actual:
                raise ValueError(f"loop frames do not match the metadata: {key} is "
                                 f"{actual}, metadata says {meta[key]}")
        metrics = meta.get("metrics")
        if metrics is not None:
            # None in stored metrics is an infinite seam ratio (see metadata()).
            metrics = {k: (math.inf if v is None else v) for k, v in metrics.items()}
        return cls(frames=frames, fps=meta["fps"], spec=spec, seed=meta["seed"],
                   generator=meta["generator"], params=dict(meta.get("params") or {}),
                   metrics=metrics, created=meta.get("created"))


def _check_metrics(metrics: Any) -> dict:
    if not isinstance(metrics, dict):
        raise ValueError(f"Loop metrics must be a dict, got {type(metrics).__name__}")
    missing = [k for k in METRIC_NAMES if k not in metrics]
    if missing:
        raise ValueError(f"Loop metrics lack {', '.join(missing)}; expected {METRIC_NAMES}")
    out = dict(metrics)
    for k in METRIC_NAMES:
        v = metrics[k]
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or math.isnan(v):
            raise ValueError(f"Loop metric {k} must be a number, got {v!r}")
        out[k] = float(v)
    return out


# --------------------------------------------------------------------------- metrics

def _sample_steps(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-step mean absolute difference and per-frame mean brightness.

    Returns (steps, brightness): steps[i] = mean |f(i+1) - f(i)| for i = 0..N-2 and
    steps[N-1] = mean |f(0) - f(N-1)| (the seam); brightness[i] = mean BT.709 luma of
    frame i. Both in 0..255 units.

    To stay cheap on large loops, pixels are sampled on a regular grid of at most
    320 per side: a side of S pixels is read every ceil(S / 320)th pixel (every 3rd
    row and 4th column of 1280x720; everything up to 320x320). The differences are
    exact at the sampled pixels, so the means are estimates from at least 50k pixels
    per frame at video sizes (76,800 at 1280x720). Work is done one frame at a time in uint8/uint32 (|a - b| as
    max - min), never a float copy of the clip.
    """
    n, h, w, _ = frames.shape
    sy = -(-h // _METRIC_SAMPLES_PER_SIDE)
    sx = -(-w // _METRIC_SAMPLES_PER_SIDE)

    def sample(i: int) -> np.ndarray:
        return np.ascontiguousarray(frames[i, ::sy, ::sx])

    first = prev = sample(0)
    rows = first.shape[0]
    count = first.size
    step_sums = np.empty(n, dtype=np.int64)
    channel_sums = np.empty((n, 3), dtype=np.int64)
    for i in range(n):
        cur = sample(i + 1) if i + 1 < n else first
        diff = np.maximum(prev, cur)
        diff -= np.minimum(prev, cur)
        # Row sums in uint32 cannot overflow (255 * 3 * 320 per row); summing along
        # rows first is much faster than numpy's generic uint8 -> int64 reduction.
        step_sums[i] = int(diff.reshape(rows, -1).sum(axis=1, dtype=np.uint32).sum(dtype=np.int64))
        channel_sums[i] = (prev.reshape(rows, -1).sum(axis=0, dtype=np.uint32)
                           .reshape(-1, 3).sum(axis=0, dtype=np.int64))
        prev = cur
    steps = step_sums / count
    brightness = channel_sums @ _LUMA / (count // 3)
    return steps, brightness


def _seam_ratio_from(steps: np.ndarray) -> float:
    seam = float(steps[-1])
    typical = float(np.median(steps[:-1]))
    if typical == 0.0:
        # A static clip: no jump at the seam loops as smoothly as it can (1.0);
        # any jump at all is infinitely worse than its (zero) motion.
        return 1.0 if seam == 0.0 else math.inf
    return seam / typical


def seam_ratio(frames: np.ndarray) -> float:
    """How the loop point compares with an ordinary frame step.

    mean|f0 - f(N-1)| / median over i = 0..N-2 of mean|f(i+1) - f(i)|. 1.0 means the
    jump from the last frame back to the first is as smooth as a typical step; a clip
    that does not loop gives a large ratio. A static clip gives 1.0 (0/0) when it also
    does not change at the seam, and inf (x/0) when it does. Computed on a sampled
    grid, see compute_metrics.
    """
    steps, _ = _sample_steps(_check_frames(frames))
    return _seam_ratio_from(steps)


def mean_motion(frames: np.ndarray) -> float:
    """Typical motion: the median over i = 0..N-2 of mean|f(i+1) - f(i)|, in 0..255
    units (the seam step is left out, so this is the seam ratio's denominator)."""
    steps, _ = _sample_steps(_check_frames(frames))
    return float(np.median(steps[:-1]))


def flicker(frames: np.ndarray) -> float:
    """Mean |change of mean brightness| between consecutive frames, the seam step
    included (the loop is cyclic), in 0..255 units of BT.709 luma."""
    _, brightness = _sample_steps(_check_frames(frames))
    return _flicker_from(brightness)


def _flicker_from(brightness: np.ndarray) -> float:
    return float(np.mean(np.abs(np.roll(brightness, -1) - brightness)))


def compute_metrics(frames: np.ndarray) -> dict:
    """{"seam_ratio", "motion", "flicker"} of a loop, in one pass over the frames.

    Large frames are read on a grid of at most 320 samples per side (every
    ceil(side / 320)th pixel each way), so 120 frames of 1280x720 cost a small
    fraction of a CPU-second.
    """
    steps, brightness = _sample_steps(_check_frames(frames))
    return {
        "seam_ratio": _seam_ratio_from(steps),
        "motion": float(np.median(steps[:-1])),
        "flicker": _flicker_from(brightness),
    }


# --------------------------------------------------------------------------- loop closing

def close_loop(frames: np.ndarray, overlap: int | None = None) -> np.ndarray:
    """Make a clip that does not loop by itself loop seamlessly, by a crossfade.

    The last `overlap` frames are blended into the first `overlap` with a cosine
    weight, and the result has N - overlap frames. Output frame j (j < overlap) is
    w(j) * f(N - overlap + j) + (1 - w(j)) * f(j) with w falling from exactly 1 at
    j = 0 to 0, so the new loop point, from f(N - overlap - 1) to f(N - overlap), is
    a real step of the source clip; the change the clip could not undo is spread
    over the crossfade instead. `overlap` defaults to a quarter of N (at least 2) and
    must lie in 2..(N - 1) // 2, so that the crossfade never reaches the seam.
    """
    frames = _check_frames(frames)
    n = frames.shape[0]
    most = (n - 1) // 2
    if most < 2:
        raise ValueError(f"close_loop needs at least 5 frames to crossfade, got {n}")
    if overlap is None:
        overlap = min(most, max(2, round(n / 4)))
    elif isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)):
        raise ValueError(f"close_loop overlap must be a whole number of frames, got {overlap!r}")
    elif not 2 <= overlap <= most:
        raise ValueError(f"close_loop overlap must be between 2 and {most} frames "
                         f"for {n} frames, got {overlap}")
    overlap = int(overlap)
    length = n - overlap
    out = frames[:length].copy()
    # w(j) = (1 + cos(pi j / overlap)) / 2: 1 at j = 0, easing to 0 at j = overlap,
    # with zero slope at both ends so the crossfade starts and ends gently.
    weights = 0.5 * (1.0 + np.cos(np.pi * np.arange(overlap) / overlap))
    # Blend in 8-bit fixed point (weights in 1/256ths, uint16 sums that cannot
    # overflow): within one level of float blending, several times faster.
    for j, a in enumerate(np.rint(weights * 256).astype(np.uint16)):
        mix = frames[j].astype(np.uint16) * (256 - a)
        mix += frames[length + j].astype(np.uint16) * a
        mix += 128
        mix >>= 8
        out[j] = mix
    return out


# --------------------------------------------------------------------------- pictures

def _atomic_target(path: Path) -> tuple[int, Path]:
    """A new temporary file beside `path` (same folder, so the final rename is atomic)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    return fd, Path(tmp)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _finish(tmp: Path, path: Path) -> None:
    _fsync_file(tmp)
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

    frames = _check_frames(frames, min_frames=1)
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

def _rate(fps: float) -> Fraction:
    # 12.0 -> 12, 29.97 -> 2997/100, 23.976... -> 24000/1001: an exact rational rate.
    return Fraction(fps).limit_denominator(1001)


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

_BT709 = 1         # AVCOL_SPC / AVCOL_PRI / AVCOL_TRC value for ITU-R BT.709
_LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG


def _write_video(loop: Loop, tmp: Path, ext: str, repeat: int, tick: Callable[[], Any]) -> None:
    import av

    fmt, codec, options, container_options = _VIDEO[ext]
    rate = _rate(loop.fps)
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
        cc = stream.codec_context
        cc.colorspace = _BT709
        cc.color_primaries = _BT709
        cc.color_trc = _BT709
        cc.color_range = _LIMITED_RANGE
        pad = (loop.height % 2, loop.width % 2)
        for index in range(loop.n_frames * repeat):
            frame = loop.frames[index % loop.n_frames]
            if pad != (0, 0):
                frame = np.pad(frame, ((0, pad[0]), (0, pad[1]), (0, 0)), mode="edge")
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf = vf.reformat(format="yuv420p", dst_colorspace="ITU709",
                             dst_color_range="MPEG", dst_color_trc=_BT709,
                             dst_color_primaries=_BT709)
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


def _gif_palette(loop: Loop):
    """One adaptive 256-colour palette for the whole loop, from a montage of frames.

    One palette rather than one per frame: with per-frame palettes the still parts
    of a picture change colour slightly from frame to frame and shimmer on every
    pass of the loop.
    """
    from PIL import Image

    n, h, w, _ = loop.frames.shape
    # Up to 16 frames, each cut to about 64k pixels, is plenty to place 256 colours.
    picks = np.linspace(0, n - 1, min(n, 16)).round().astype(int)
    stride = max(1, math.isqrt(h * w // 65536))
    montage = np.concatenate([loop.frames[i, ::stride, ::stride] for i in picks], axis=0)
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
    palette = _gif_palette(loop)
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

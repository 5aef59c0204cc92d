"""Loop: the frames of one seamless animation, with what made it and how well it loops.

A loop is N frames (N, H, W, 3 uint8) played at a source fps, over and over. This
module holds the Loop record, the metrics every loop carries (seam ratio, motion,
flicker) and a crossfade that closes clips which do not loop by themselves. Writing
a loop to files (MP4 / WebM / GIF, PNG, contact sheets) is lofid.export's.

It is part of the ground floor: it imports nothing else of lofid. The scene spec is
taken duck-typed (anything with ``.to_dict()`` and ``.id``).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

import numpy as np

METRIC_NAMES = ("seam_ratio", "motion", "flicker")

# Metrics look at no more than this many pixels along each side (see _sample_steps).
_METRIC_SAMPLES_PER_SIDE = 320

# ITU-R BT.709 luma weights: "brightness" as a viewer sees it, not the plain RGB mean.
_LUMA = np.array([0.2126, 0.7152, 0.0722])


# --------------------------------------------------------------------------- validation

def check_frames(frames: Any, what: str = "frames", min_frames: int = 2) -> np.ndarray:
    """`frames` if it is an (N, H, W, 3) uint8 array of at least `min_frames` frames;
    ValueError naming `what` otherwise."""
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

class FrameLoader(Protocol):
    """Fills a loop's frames in while it already plays (lofid.library's loader)."""

    def wait(self, index: int, timeout: float | None = 30.0) -> None: ...


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
    # Not part of what made the loop (nor of metadata()): where it is kept and how
    # far its frames are read. `key` is the library's name for it, the one the
    # player's events use; `loader` is set while the frames are still being read in
    # (Library.open) or are yet to be decoded from `stored` (lofid.library.
    # loop_from_stored), and then frame i may be read only after wait_frame(i).
    # `stored` is the frames already in the library's own format (a
    # lofid.library.StoredFrames), when the loop came so from a Ray worker: the
    # library writes those bytes as they are instead of encoding the frames again.
    key: str | None = None
    loader: FrameLoader | None = None
    stored: Any = None

    def __post_init__(self) -> None:
        self.frames = np.ascontiguousarray(check_frames(self.frames, "Loop frames"))
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
            self.metrics = check_metrics(self.metrics)
        if self.created is None:
            self.created = time.time()
        elif isinstance(self.created, bool) or not isinstance(self.created, (int, float)):
            raise ValueError(f"Loop created must be a unix time, got {self.created!r}")
        else:
            self.created = float(self.created)
        if self.key is not None and (not isinstance(self.key, str) or not self.key):
            raise ValueError(f"Loop key must be a non-empty string or None, got {self.key!r}")

    def __repr__(self) -> str:
        return (f"Loop({self.n_frames} frames {self.width}x{self.height} at {self.fps:g} fps, "
                f"spec {self.spec.id}, {self.generator} seed {self.seed}, "
                f"seam ratio {self.metrics['seam_ratio']:.3g})")

    def wait_frame(self, index: int, timeout: float | None = 30.0) -> None:
        """Return once frame `index` can be read: at once unless a loader is still
        reading the frames in; then its error if it failed, TimeoutError if the frame
        does not come within `timeout` seconds."""
        if self.loader is not None:
            self.loader.wait(index, timeout)

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
    def rate(self) -> Fraction:
        """fps as an exact fraction, for encoders: 12.0 -> 12, 29.97 -> 2997/100,
        23.976023976... -> 24000/1001. Not lofid.media.as_fps, which reads an output
        rate typed as 29.97 as the NTSC 30000/1001: a loop's fps is what its frames
        were made at, and a file of it must last exactly `duration`."""
        return Fraction(self.fps).limit_denominator(1001)

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
    def from_metadata(cls, meta: dict, frames: np.ndarray, spec: Any,
                      key: str | None = None) -> "Loop":
        """Rebuild a Loop from `metadata()` output, its frames and its spec (the
        caller rebuilds the spec, e.g. with SceneSpec.from_dict(meta["spec"])), kept
        under `key`. Frames that do not match the recorded count or size are refused."""
        if not isinstance(meta, dict):
            raise ValueError(f"loop metadata must be a dict, got {type(meta).__name__}")
        missing = [k for k in ("fps", "seed", "generator") if k not in meta]
        if missing:
            raise ValueError(f"loop metadata lacks {', '.join(missing)}")
        frames = check_frames(frames, "loop frames")
        for name, actual in (("n_frames", frames.shape[0]), ("height", frames.shape[1]),
                             ("width", frames.shape[2])):
            if name in meta and meta[name] != actual:
                raise ValueError(f"loop frames do not match the metadata: {name} is "
                                 f"{actual}, metadata says {meta[name]}")
        metrics = meta.get("metrics")
        if metrics is not None:
            # None in stored metrics is an infinite seam ratio (see metadata()).
            metrics = {k: (math.inf if v is None else v) for k, v in metrics.items()}
        return cls(frames=frames, fps=meta["fps"], spec=spec, seed=meta["seed"],
                   generator=meta["generator"], params=dict(meta.get("params") or {}),
                   metrics=metrics, created=meta.get("created"), key=key)


def check_metrics(metrics: Any) -> dict:
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
    steps, _ = _sample_steps(check_frames(frames))
    return _seam_ratio_from(steps)


def mean_motion(frames: np.ndarray) -> float:
    """Typical motion: the median over i = 0..N-2 of mean|f(i+1) - f(i)|, in 0..255
    units (the seam step is left out, so this is the seam ratio's denominator)."""
    steps, _ = _sample_steps(check_frames(frames))
    return float(np.median(steps[:-1]))


def flicker(frames: np.ndarray) -> float:
    """Mean |change of mean brightness| between consecutive frames, the seam step
    included (the loop is cyclic), in 0..255 units of BT.709 luma."""
    _, brightness = _sample_steps(check_frames(frames))
    return _flicker_from(brightness)


def _flicker_from(brightness: np.ndarray) -> float:
    return float(np.mean(np.abs(np.roll(brightness, -1) - brightness)))


def compute_metrics(frames: np.ndarray) -> dict:
    """{"seam_ratio", "motion", "flicker"} of a loop, in one pass over the frames.

    Large frames are read on a grid of at most 320 samples per side (every
    ceil(side / 320)th pixel each way), so 120 frames of 1280x720 cost a small
    fraction of a CPU-second.
    """
    steps, brightness = _sample_steps(check_frames(frames))
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
    frames = check_frames(frames)
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

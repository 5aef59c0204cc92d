"""The procedural painter: lofid's built-in generator, needing nothing but numpy.

generate() paints the scene's still picture (painter.paint), animates the spec's
motions over it (painter.Animator; every motion is periodic in the loop length, so
the loop is seamless by construction) and returns a Loop. Given a user's still image
instead, it lays the weather and light motions over that picture.
"""

from __future__ import annotations

import hashlib
from typing import Callable

import numpy as np

from lofid.errors import BadArgument
from lofid.loop import Loop
from lofid.generators.painter import PAINTER_VERSION, Animator, Light, Painting, paint

GENERATOR = "procedural"

# Motions that make sense over any picture; the rest need anchors a photo lacks.
IMAGE_MOTIONS = ("rain", "flicker", "particles", "water_reflection")


def _check_size(size) -> tuple[int, int]:
    try:
        w, h = size
    except (TypeError, ValueError):
        raise BadArgument(f"size must be (width, height), got {size!r}") from None
    for name, v in (("width", w), ("height", h)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise BadArgument(f"size {name} must be a positive integer, got {v!r} in size {size!r}")
    return int(w), int(h)


def _check_inputs(seed, size, frames, fps) -> tuple[int, int]:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise BadArgument(f"seed must be an integer, got {seed!r}")
    w, h = _check_size(size)
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 2:
        raise BadArgument(f"frames must be an integer >= 2, got {frames!r}")
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.number)) or not fps > 0 \
            or not np.isfinite(fps):
        raise BadArgument(f"fps must be a number > 0, got {fps!r}")
    return w, h


def _check_image(image, w: int, h: int) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise BadArgument(f"image must be a numpy array (H, W, 3) uint8, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise BadArgument(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    if image.shape[:2] != (h, w):
        raise BadArgument(f"image is {image.shape[1]}x{image.shape[0]}, expected the output "
                         f"size {w}x{h}")
    return image


def painting_from_image(image: np.ndarray, spec, seed: int) -> Painting:
    """A Painting over a user's still: the whole frame is glass (rain runs over it)
    and air (dust or snow floats in it), its brightest local spots are lights that
    flicker, and its lower band shimmers when the spec asks for water reflections."""
    h, w = image.shape[:2]
    bg = image.astype(np.float32) / 255.0
    lum = bg @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    # brightest local spots, found on a coarse grid of cells
    cell = max(4, min(w, h) // 24)
    gh, gw = h // cell, w // cell
    lights: list[Light] = []
    if gh >= 3 and gw >= 3:
        grid = lum[:gh * cell, :gw * cell].reshape(gh, cell, gw, cell).mean(axis=(1, 3))
        pad = np.pad(grid, 1, mode="edge")
        neigh = np.max([pad[1 + dy:1 + dy + gh, 1 + dx:1 + dx + gw]
                        for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx], axis=0)
        level = max(float(np.percentile(grid, 90)), float(grid.mean()) + 0.08)
        peaks = np.argwhere((grid >= neigh) & (grid > level))
        order = np.argsort(-grid[peaks[:, 0], peaks[:, 1]])[:6]
        for gy, gx in peaks[order]:
            y0, x0 = gy * cell, gx * cell
            spot = bg[y0:y0 + cell, x0:x0 + cell].reshape(-1, 3)
            color = tuple(float(c) for c in np.clip(spot.mean(axis=0) * 1.1, 0, 1))
            lights.append(Light(x=float(x0 + cell / 2), y=float(y0 + cell / 2),
                                radius=float(cell * 1.5), color=color, kind="lamp"))
    reflections = []
    if "water_reflection" in spec.motions:
        reflections.append((0, int(h * 0.78), w, h))
    mean = tuple(float(c) for c in bg.reshape(-1, 3).mean(axis=0))
    warm = lights[0].color if lights else (1.0, 0.8, 0.55)
    palette = {
        "warm": warm,
        "ambient": mean,
        "rain": tuple(float(0.5 * c + 0.5 * v) for c, v in zip(mean, (0.8, 0.85, 0.92))),
        "snow": (0.96, 0.97, 1.0),
        "dust": tuple(float(0.5 + 0.5 * c) for c in warm),
        "steam": (0.92, 0.92, 0.9),
    }
    return Painting(background=bg, windows=[(0, 0, w, h)], lights=lights, cups=[],
                    curtains=[], figure=None, reflections=reflections, sky=None,
                    air=(0, 0, w, h), palette=palette)


class _ImageSpec:
    """The spec as the animator sees it over a user's picture: only the motions that
    make sense without the painter's anchors."""

    def __init__(self, spec):
        self._spec = spec
        self.motions = tuple(m for m in spec.motions if m in IMAGE_MOTIONS)

    def __getattr__(self, name):
        return getattr(self._spec, name)


def animator(spec, seed: int, size, frames: int, fps: float, image=None) -> Animator:
    """The animator of one loop, before rendering (its render_frame(t) is periodic)."""
    w, h = _check_inputs(seed, size, frames, fps)
    if image is not None:
        image = _check_image(image, w, h)
        return Animator(painting_from_image(image, spec, seed), _ImageSpec(spec),
                        seed, frames, fps)
    return Animator(paint(spec, seed, w, h), spec, seed, frames, fps)


def generate(spec, seed: int, size, frames: int, fps: float,
             progress: Callable[[int, int], None] | None = None, image=None) -> Loop:
    """A seamless loop of `spec`: `frames` frames of size (width, height) at `fps`."""
    anim = animator(spec, seed, size, frames, fps, image=image)
    video = anim.render(progress)
    w, h = _check_size(size)
    params = {"size": [w, h], "frames": int(frames), "fps": float(fps),
              "painter": PAINTER_VERSION}
    if image is not None:
        # the picture is part of what made the loop
        params["image"] = hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()[:16]
    return Loop(frames=video, fps=float(fps), spec=spec, seed=int(seed),
                generator=GENERATOR, params=params)

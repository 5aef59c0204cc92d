"""What a still picture of the painter is: the background and the anchors of its
moving parts (the contract between the rooms, which draw, and the motions, which
animate)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lofid.scene import SCENES


PAINTER_VERSION = 1


Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, x1/y1 exclusive, inside the frame


SCENE_NAMES = SCENES


LIGHT_KINDS = ("lamp", "fairy", "candle", "monitor", "city", "star", "sun")


MIN_SIZE = 32


@dataclass
class Light:
    x: float
    y: float                              # centre, pixels
    radius: float                         # glow radius, pixels
    color: tuple[float, float, float]     # 0..1 RGB
    kind: str                             # one of LIGHT_KINDS


@dataclass
class Figure:
    """A person, not drawn into the background: composited over it each frame."""
    rgba: np.ndarray                      # (h, w, 4) float32, straight alpha, 0..1
    x: int
    y: int                                # top-left in the frame
    hair: np.ndarray                      # (h, w) float32 0..1 mask of hair within rgba
    chest_y: int                          # row within rgba around which breathing scales the torso


@dataclass
class Painting:
    background: np.ndarray                # (H, W, 3) float32 0..1, everything that does not move
    windows: list[Rect]                   # glass panes: rain runs down these; outside is visible
    lights: list[Light]                   # things that glow/flicker
    cups: list[tuple[int, int, float]]    # (x, y, scale): top centre of hot drinks where steam rises
    curtains: list[Rect]                  # curtain regions (in background) that may drift
    figure: Figure | None
    reflections: list[Rect]               # water / glossy areas that shimmer
    sky: Rect | None                      # open sky (stars, snow outside)
    air: Rect                             # interior volume where dust motes float
    palette: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    # (H, W) float32 0..1: how much of each pixel is see-through glass, so rain on the
    # glass stays off a plant or a candle standing in front of the pane.
    glass: np.ndarray | None = None

"""Everything one picture is made of while it is being painted: the room layer, the
view outside, the light map, and the anchors the motions will need."""

from __future__ import annotations

import zlib

import numpy as np

from . import canvas as cv
from .colours import AMBIENT, WEATHER_AMBIENT
from .picture import Figure, Light, Rect, SCENE_NAMES


class Context:
    """Everything one picture is made of while it is being painted."""

    def __init__(self, spec, seed: int, width: int, height: int):
        self.spec = spec
        self.W, self.H = width, height
        self.s = min(width, height) / 720.0          # object scale: 1.0 at 720 p
        self.seed = int(seed) & 0xFFFFFFFFFFFFFFFF
        self.scene_index = SCENE_NAMES.index(spec.scene)
        self.time = spec.time_of_day
        self.weather = spec.weather
        self.season = spec.season
        self.christmas = spec.theme == "christmas"
        self.night = self.time == "night"
        self.layer = np.zeros((height, width, 4), dtype=np.float32)
        self.view = np.zeros((height, width, 3), dtype=np.float32)
        amb = np.array(AMBIENT[self.time], dtype=np.float32) * np.array(
            WEATHER_AMBIENT[self.weather], dtype=np.float32)
        self.ambient = tuple(float(x) for x in amb)
        self.lightmap = np.empty((height, width, 3), dtype=np.float32)
        self.lightmap[:] = amb
        self.emissive: list = []                      # callables run after lighting
        self.windows: list[Rect] = []
        self.lights: list[Light] = []
        self.cups: list[tuple[int, int, float]] = []
        self.curtains: list[Rect] = []
        self.reflections: list[Rect] = []
        self.figure: Figure | None = None
        self.sky: Rect | None = None
        self.air: Rect = (0, 0, width, height)
        self.rim = ((0.0, -1.0), (0.8, 0.8, 0.8))     # direction towards the key light, its colour
        self.figure_args = None                        # (centre x, bottom y, height) of a person
        self.figure_cap = False

    def rng(self, tag: str) -> np.random.Generator:
        """A generator for one part of the picture, independent of every other part."""
        return np.random.default_rng([self.seed, self.scene_index, zlib.crc32(tag.encode())])

    def rect(self, x0, y0, x1, y1) -> Rect:
        """Integer rect clipped to the frame."""
        x0 = int(min(max(round(x0), 0), self.W - 1))
        y0 = int(min(max(round(y0), 0), self.H - 1))
        x1 = int(min(max(round(x1), x0 + 1), self.W))
        y1 = int(min(max(round(y1), y0 + 1), self.H))
        return (x0, y0, x1, y1)

    # light -------------------------------------------------------------
    def pool(self, x, y, radius, color, strength):
        """Light falling on surfaces around (x, y)."""
        cv.glow(self.lightmap, x, y, radius, color, strength, mode="sum")

    def add_light(self, x, y, radius, color, kind):
        self.lights.append(Light(float(x), float(y), float(radius), tuple(float(c) for c in color), kind))

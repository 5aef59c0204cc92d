"""The procedural painter: still pictures of the scenes and the motions over them.

- still.paint(spec, seed, width, height) -> picture.Painting: the scene's still
  picture and the anchors of its moving parts. A room per scene (rooms/), drawn
  from shared pieces: views (sky, city, hills), windows, furniture, lamps, the
  christmas theme and the person, then lit and finished.
- animator.Animator(painting, spec, seed, n_frames, fps): the spec's motions over a
  painting (motions/, one module per motion), frame by frame, periodic in n_frames.

Drawing primitives are in canvas.py. lofid.generators.procedural is the generator
built on this package.
"""

from __future__ import annotations

from .animator import Animator
from .picture import LIGHT_KINDS, MIN_SIZE, PAINTER_VERSION, SCENE_NAMES, Figure, Light, Painting, Rect
from .still import paint

__all__ = ["Animator", "Figure", "LIGHT_KINDS", "Light", "MIN_SIZE", "PAINTER_VERSION", "Painting",
           "Rect", "SCENE_NAMES", "paint"]

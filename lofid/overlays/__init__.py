"""Text over the picture: now playing, a clock, the scene's name, free text.

- layers.py: one layer, read and checked from a config table or a socket map.
- drawing.py: a text rendered once to an RGBA tile, blended onto frames (RGB or yuv420p).
- board.py: the layers of a running lofid and the Look a loop's frames are drawn with.
"""

from lofid.overlays.layers import KINDS, POSITIONS, Layer, OverlayError, parse_layer, parse_layers

__all__ = ["KINDS", "POSITIONS", "Layer", "OverlayError", "parse_layer", "parse_layers"]

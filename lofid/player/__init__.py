"""The player: one output clock, the current loop repeated, crossfades to the next.

- compose.py: the pictures (fit, fps conversion, crossfade blending), pure.
- segments.py: loops prepared once (fitted, converted, encoded), crossfades and live
  segments encoded, and the player's background threads.
- router.py: the one registry of outputs, and where each item goes.
- clock.py: the frame counter and its mode (repeating, crossfading, live): Player.
"""

from lofid.player.clock import LoopSource, Mode, Player
from lofid.player.router import Router, is_live
from lofid.player.settings import PlayerSettings

__all__ = ["LoopSource", "Mode", "Player", "PlayerSettings", "Router", "is_live"]

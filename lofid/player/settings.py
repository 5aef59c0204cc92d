"""What a player is asked to make: the output's fps, size, fit, crossfade, pacing."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from lofid.encode import VideoSettings
from lofid.media import as_fps
from lofid.settings.values import FITS, MAX_CROSSFADE, SIZE_RANGE, size_in_range


@dataclass
class PlayerSettings:
    fps: Fraction = Fraction(30)
    size: tuple[int, int] = (1920, 1080)
    crossfade: float = 3.0                 # seconds; 0 cuts on a keyframe
    fit: str = "crop"                      # "crop" | "blur" (the loop over a blurred backdrop)
    realtime: bool = False
    bitrate: int = 4_500_000
    start_frame: int = 0
    duration: float | None = None          # seconds of output, None = forever

    def __post_init__(self) -> None:
        self.fps = as_fps(self.fps, "player fps")
        size = self.size
        if (not isinstance(size, (tuple, list)) or len(size) != 2
                or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in size)):
            raise ValueError(f"player size must be (width, height) in pixels, got {size!r}")
        w, h = int(size[0]), int(size[1])
        # The limits the config and the flags take (lofid.settings), so that what one
        # accepts the other does too.
        if not size_in_range(w, h) or w % 2 or h % 2:
            raise ValueError(f"player size must be even sides, {SIZE_RANGE}, got {w}x{h}")
        self.size = (w, h)
        cf = self.crossfade
        if isinstance(cf, bool) or not isinstance(cf, (int, float)) or not 0 <= cf <= MAX_CROSSFADE:
            raise ValueError(f"crossfade must be a number of seconds from 0 to "
                             f"{MAX_CROSSFADE:g}, got {cf!r}")
        self.crossfade = float(cf)
        if self.fit not in FITS:
            raise ValueError(f"fit must be one of {', '.join(FITS)}, got {self.fit!r}")
        if not isinstance(self.realtime, bool):
            raise ValueError(f"realtime must be True or False, got {self.realtime!r}")
        sf = self.start_frame
        if isinstance(sf, bool) or not isinstance(sf, (int, np.integer)) or not 0 <= sf < 2**62:
            raise ValueError(f"start_frame must be an integer from 0 to 2**62, got {sf!r}")
        self.start_frame = int(sf)
        d = self.duration
        if d is not None and (isinstance(d, bool) or not isinstance(d, (int, float))
                              or not math.isfinite(d) or d <= 0):
            raise ValueError(f"duration must be a number of seconds > 0 or None, got {d!r}")
        self.video_settings()                   # the encoder's own checks (bitrate)

    def video_settings(self) -> VideoSettings:
        return VideoSettings(width=self.size[0], height=self.size[1], fps=self.fps,
                             bitrate=self.bitrate)

    def frames(self, seconds: float) -> int:
        """`seconds` of output as a whole number of frames (the nearest)."""
        return math.floor(Fraction(seconds) * self.fps + Fraction(1, 2))

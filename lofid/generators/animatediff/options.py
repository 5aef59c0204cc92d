"""What a user chooses for an AnimateDiff loop, and how the choices are checked:
schedulers, loop methods, dtypes, the few-step presets, and the shape of the loops
`lofid run` asks for. Cheap to import (no torch): the CLI and the config use it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lofid.errors import BadArgument

GENERATOR = "animatediff"
SCHEDULERS = ("ddim", "euler", "lcm")
LOOP_METHODS = ("circular", "none", "circular+blend")
DTYPES = ("fp16", "bf16", "fp32")

# Few-step presets: the settings the few-step motion weights were trained for.
PRESETS = {
    "standard": {"steps": 25, "guidance": 7.5, "scheduler": "ddim"},
    "lcm": {"steps": 6, "guidance": 1.5, "scheduler": "lcm"},         # AnimateLCM
    "lightning": {"steps": 4, "guidance": 1.0, "scheduler": "euler"},  # AnimateDiff-Lightning
}


def preset_options(name: str) -> dict:
    """steps, guidance and scheduler of a preset: "standard", "lcm" (AnimateLCM
    weights) or "lightning" (AnimateDiff-Lightning weights)."""
    if name not in PRESETS:
        raise BadArgument(f"preset must be one of {', '.join(PRESETS)}, got {name!r}")
    return dict(PRESETS[name])


def is_int(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, np.integer))


def check_inputs(seed, size, frames, fps, steps, guidance, scheduler, loop_method,
                  context, dtype) -> tuple[int, int]:
    if not is_int(seed):
        raise BadArgument(f"seed must be an integer, got {seed!r}")
    try:
        w, h = size
    except (TypeError, ValueError):
        raise BadArgument(f"size must be (width, height), got {size!r}") from None
    for name, v in (("width", w), ("height", h)):
        if not is_int(v) or v <= 0 or v % 8:
            raise BadArgument(f"size {name} must be a positive multiple of 8, got {v!r} "
                             f"in size {size!r}")
    if not is_int(frames) or frames < 2:
        raise BadArgument(f"frames must be an integer >= 2, got {frames!r}")
    if loop_method not in LOOP_METHODS:
        raise BadArgument(f"loop_method must be one of {', '.join(LOOP_METHODS)}, "
                         f"got {loop_method!r}")
    if loop_method != "circular" and frames < 3:
        raise BadArgument(f"frames must be >= 3 for loop_method {loop_method!r} "
                         f"(the pixel crossfade needs them), got {frames}")
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.number)) \
            or not math.isfinite(fps) or fps <= 0:
        raise BadArgument(f"fps must be a number > 0, got {fps!r}")
    if not is_int(steps) or steps < 1:
        raise BadArgument(f"steps must be an integer >= 1, got {steps!r}")
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float, np.number)) \
            or not math.isfinite(guidance) or guidance < 0:
        raise BadArgument(f"guidance must be a number >= 0, got {guidance!r}")
    if scheduler not in SCHEDULERS:
        raise BadArgument(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {scheduler!r}")
    if not is_int(context) or context < 2:
        raise BadArgument(f"context must be an integer >= 2 frames, got {context!r}")
    if dtype is not None and dtype not in DTYPES:
        raise BadArgument(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return int(w), int(h)


# Motion modules see 16-32 frames at a time; a longer loop only costs more windows
# per step, and more memory to decode.
MAX_RUN_FRAMES = 48


def loop_shape(output_size: tuple[int, int], frames: int) -> tuple[tuple[int, int], int]:
    """The size and length of the loops `lofid run` makes for an output of
    `output_size` (width, height) when it asked for `frames` frames per loop.

    SD1.5 works near 512 px: the loop is 768 px wide, in the output's aspect, each
    side a multiple of 8 (the VAE's) and at least 64; the player scales it up. At
    most MAX_RUN_FRAMES frames."""
    size = tuple(max(64, round(v * 768 / output_size[0] / 8) * 8) for v in output_size)
    return size, min(frames, MAX_RUN_FRAMES)

"""The circular context windows: which frames each UNet call sees at each denoising
step, so that a clip of N frames is denoised as a circle (the last frame neighbours
the first) and loops longer than the motion module's window are made in windows."""

from __future__ import annotations

import math

import numpy as np

from lofid.errors import BadArgument


def _golden_shift(modulus: int) -> int:
    """A per-step shift for offsets modulo `modulus`: the integer nearest
    modulus / golden ratio that is coprime with it, so the offsets spread evenly
    over the positions and visit every one within `modulus` steps."""
    if modulus <= 1:
        return 0
    target = modulus / ((1 + math.sqrt(5)) / 2)
    for d in range(modulus):
        for cand in (round(target) - d, round(target) + d):
            if 0 < cand < modulus and math.gcd(cand, modulus) == 1:
                return cand
    return 1


def window_spacing(n_frames: int, context: int, stride: int) -> int:
    """The spacing between window starts: the largest divisor of gcd(n, context)
    that is at most `stride`. Windows that start every d frames, with d dividing
    both N and the window length, cover every frame exactly context / d times;
    any other spacing covers some frames once more than others."""
    g = math.gcd(n_frames, context)
    return max(d for d in range(1, min(stride, g) + 1) if g % d == 0)


def context_windows(n_frames: int, context: int, stride: int, step: int) -> list[list[int]]:
    """The frame indices each UNet call sees at denoising step `step`.

    Each window holds `context` consecutive frames modulo `n_frames`. When the clip
    is no longer than one window, there is one window of all N frames, in order,
    starting at a frame that moves every step (step 0 starts at frame 0). Longer
    clips get windows every d frames (d from window_spacing: at most `stride`),
    offset by a shift that moves every step, so each frame is covered exactly
    context / d times per step.

    Rolling the clip by k frames, k a multiple of d, maps each step's set of windows
    onto itself: the circular loop is then exactly roll-equivariant (rolled noise
    gives the rolled loop), because every frame sees the same neighbours at the same
    window positions. Offsets are absolute frame numbers, so other k (and the
    one-window case) only hold on average over the steps.
    """
    for name, value, least in (("n_frames", n_frames, 1), ("context", context, 2),
                               ("stride", stride, 1), ("step", step, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise BadArgument(f"context_windows {name} must be an integer >= {least}, got {value!r}")
    n, step = int(n_frames), int(step)
    if n <= context:
        start = (step * _golden_shift(n)) % n
        return [[(start + i) % n for i in range(n)]]
    d = window_spacing(n, int(context), int(stride))
    offset = (step * _golden_shift(d)) % d
    return [[(s + i) % n for i in range(context)] for s in range(offset, n + offset, d)]


def default_stride(context: int) -> int:
    """Half-overlapping windows: every frame is seen twice per step."""
    return max(1, context // 2)

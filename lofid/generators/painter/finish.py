"""The last touches on a lit picture: a soft shoulder for bright light, a vignette
and paper grain."""

from __future__ import annotations

import numpy as np


def tonemap(x: np.ndarray, knee: float = 0.75) -> np.ndarray:
    """Soft shoulder above `knee` (in place), so bright light pools never clip flat.

    It scales all three channels by the same factor, from the brightest one, so a
    strong warm light stays warm rather than bleaching to yellow-white in the middle
    and leaving a saturated ring around it."""
    m = np.maximum(np.maximum(x[..., 0], x[..., 1]), x[..., 2])   # faster than max(axis=-1)
    over = np.maximum(m - knee, 0.0)
    r = 1.0 - knee
    target = knee + over * r / (over + r)     # rational shoulder: slope 1 at the knee, tends to 1.0
    k = np.divide(target, m, out=np.ones_like(m), where=m > knee)
    x *= k[..., None]
    return x


def grain(img: np.ndarray, rng: np.random.Generator, amount: float = 0.008) -> None:
    """Faint paper grain; it also dithers smooth gradients so they do not band in 8 bits."""
    h, w = img.shape[:2]
    # one tile of grain repeated: far cheaper than a full frame of normals, and unseen
    t = 256
    tile = rng.standard_normal((min(t, h), min(t, w)), dtype=np.float32) * amount
    reps = (-(-h // tile.shape[0]), -(-w // tile.shape[1]))
    img += np.tile(tile, reps)[:h, :w, None]


def vignette(img: np.ndarray, strength: float = 0.28) -> None:
    h, w = img.shape[:2]
    ys = (np.arange(h, dtype=np.float32) / h - 0.5)[:, None]
    xs = (np.arange(w, dtype=np.float32) / w - 0.5)[None, :]
    v = 1.0 - strength * np.clip((xs * xs + ys * ys) * 2.2 - 0.12, 0, 1)
    img *= v[..., None]

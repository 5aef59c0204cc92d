"""Where weather shows: outdoors the whole frame, indoors the window panes (less
the curtains over them), and only the see-through part of the glass."""

from __future__ import annotations

import numpy as np

from .common import clip_rect


def is_outdoors(p) -> bool:
    """Open sky that is not seen through a window: the scene is outside."""
    if p.sky is None:
        return False
    sx0, sy0, sx1, sy1 = p.sky
    for wx0, wy0, wx1, wy1 in p.windows:
        if sx0 >= wx0 - 2 and sy0 >= wy0 - 2 and sx1 <= wx1 + 2 and sy1 <= wy1 + 2:
            return False
    return True


def panes(p, w: int, h: int) -> list[tuple[int, int, int, int]]:
    """The window panes inside the frame, less what a curtain hangs over: rain and
    snow show on the glass, never on the fabric."""
    out = []
    for rect in p.windows:
        r = clip_rect(rect, w, h)
        if r is None:
            continue
        x0, y0, x1, y1 = r
        for cx0, cy0, cx1, cy1 in p.curtains:
            if cx1 <= x0 or cx0 >= x1 or cy1 <= y0 or cy0 >= y1:
                continue
            if cy0 <= y0 + 2 and cy1 >= y1 - 2:        # hangs over the full height
                if cx0 <= x0:
                    x0 = max(x0, cx1)
                elif cx1 >= x1:
                    x1 = min(x1, cx0)
            elif cx0 <= x0 + 2 and cx1 >= x1 - 2:      # covers the full width
                if cy0 <= y0:
                    y0 = max(y0, cy1)
                elif cy1 >= y1:
                    y1 = min(y1, cy0)
        if x1 - x0 >= 6 and y1 - y0 >= 6:
            out.append((x0, y0, x1, y1))
    return out


def weather_regions(p, w: int, h: int) -> list[tuple[int, int, int, int]]:
    """Where falling weather is seen: the whole frame outdoors, else the window panes."""
    if is_outdoors(p):
        return [(0, 0, w, h)]
    return panes(p, w, h)


def weather_glass(p, w: int, h: int) -> np.ndarray | None:
    """The see-through part of the windows, (h, w) 0..1, when the painting tells it
    (an optional `glass` mask): what stands in front of a pane (a plant on the sill,
    a candle) then stays dry. Outside there is no glass."""
    glass = getattr(p, "glass", None)
    if glass is None or is_outdoors(p):
        return None
    glass = np.asarray(glass, np.float32)
    if glass.shape != (h, w):
        raise ValueError(f"painting glass mask must be ({h}, {w}), got {glass.shape}")
    return glass

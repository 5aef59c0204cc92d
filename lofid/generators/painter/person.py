"""The person in a scene: a seated figure seen from behind, drawn as a sprite
(not into the background) so that breathing and hair sway can move it."""

from __future__ import annotations

import numpy as np

from . import canvas as cv
from . import finish
from .canvas import mix, rgb, scale
from .colours import BOOKS, HAIR, SWEATER, pick
from .context import Context
from .picture import Figure


def make_figure(ctx: Context, cx, base, height, rng, cap=False) -> Figure:
    """A seated person seen from behind: head, hair, shoulders, sweater; lit by the room.

    The sprite's bottom edge is where the body leaves the frame or meets the seat."""
    S = height
    w, h = int(S * 0.95) + 4, int(S) + 2
    rgba = np.zeros((h, w, 4), np.float32)
    hair_layer = np.zeros((h, w, 4), np.float32)
    mid = w / 2
    hair_c = pick(rng, HAIR)
    sweater = pick(rng, SWEATER)
    skin = rgb("#e9b796")
    style = int(rng.integers(4))  # 0 long, 1 bun, 2 bob, 3 ponytail
    if cap and style in (1, 2):   # under a beanie only long hair shows (and sways)
        style = 0
    lean = rng.uniform(-0.03, 0.03) * S  # head a little off the body's axis
    # torso: an outline with round shoulders, widening a little to the bottom
    sh_y = S * 0.47
    outline = []
    for t in np.linspace(0, np.pi / 2, 8):          # left shoulder, from the side up to the top
        outline.append((mid - S * 0.24 - S * 0.08 * np.cos(t), sh_y + S * 0.02 + S * 0.07 * (1 - np.sin(t))))
    outline += [(mid - S * 0.07, sh_y - S * 0.03), (mid + S * 0.07, sh_y - S * 0.03)]
    for t in np.linspace(np.pi / 2, 0, 8):
        outline.append((mid + S * 0.24 + S * 0.08 * np.cos(t), sh_y + S * 0.02 + S * 0.07 * (1 - np.sin(t))))
    elbow = 1 if rng.random() < 0.5 else -1
    outline += [(mid + S * 0.33, sh_y + S * 0.3), (mid + S * (0.36 + (0.04 if elbow > 0 else 0)), h),
                (mid - S * (0.36 + (0.04 if elbow < 0 else 0)), h), (mid - S * 0.33, sh_y + S * 0.3)]
    cv.polygon(rgba, outline, cv.vgradient(sh_y - S * 0.03, h, [mix(sweater, (1, 1, 1), 0.08), sweater,
                                                                scale(sweater, 0.7)]), soft=1.2)
    # arms: a shadow line where each arm meets the back, the resting arm's elbow out to the side
    for sgn in (-1, 1):
        cv.line(rgba, [(mid + sgn * S * 0.22, sh_y + S * 0.14), (mid + sgn * S * 0.245, h)], S * 0.012,
                scale(sweater, 0.72), alpha=0.8)
    cv.ellipse(rgba, mid + elbow * S * 0.35, sh_y + S * 0.42, S * 0.07, S * 0.09, scale(sweater, 0.85), soft=1.2)
    # ribbing at the neck
    cv.ellipse(rgba, mid, sh_y - S * 0.02, S * 0.085, S * 0.025, scale(sweater, 0.85), soft=1.2)
    # neck and head
    cv.rect(rgba, mid - S * 0.055, S * 0.32, mid + S * 0.055, sh_y - S * 0.01, scale(skin, 0.8), radius=S * 0.02)
    hx, head_y = mid + lean, S * 0.25
    for sgn in (-1, 1):
        cv.ellipse(rgba, hx + sgn * S * 0.14, head_y + S * 0.03, S * 0.025, S * 0.04, scale(skin, 0.9))
    cv.ellipse(rgba, hx, head_y, S * 0.14, S * 0.165, skin, soft=1.2)
    # hair in its own layer: the mask that sways
    hc = cv.vgradient(head_y - S * 0.18, head_y + S * 0.5, [mix(hair_c, (1, 1, 1), 0.12), hair_c, scale(hair_c, 0.8)])
    cv.ellipse(hair_layer, hx, head_y - S * 0.01, S * 0.155, S * 0.172, hc, soft=1.2)
    if style == 0:      # long, over the shoulders, soft wavy ends
        ends = [(hx + S * 0.15 * (1 - 2 * t), sh_y + S * (0.17 + 0.03 * np.sin(t * 9))) for t in np.linspace(0, 1, 9)]
        cv.polygon(hair_layer, [(hx - S * 0.155, head_y), (hx + S * 0.155, head_y), (hx + S * 0.165, sh_y)] + ends +
                   [(hx - S * 0.165, sh_y)], hc, soft=1.5)
    elif style == 1:    # bun on top
        cv.circle(hair_layer, hx, head_y - S * 0.17, S * 0.075, hc, soft=1.2)
        cv.polygon(hair_layer, [(hx - S * 0.15, head_y), (hx + S * 0.15, head_y),
                                (hx + S * 0.09, head_y + S * 0.15), (hx - S * 0.09, head_y + S * 0.15)], hc)
    elif style == 2:    # bob to the jaw
        cv.polygon(hair_layer, [(hx - S * 0.16, head_y), (hx + S * 0.16, head_y),
                                (hx + S * 0.15, head_y + S * 0.16), (hx, head_y + S * 0.18),
                                (hx - S * 0.15, head_y + S * 0.16)], hc)
    else:               # ponytail down the back
        cv.polygon(hair_layer, [(hx - S * 0.13, head_y), (hx + S * 0.13, head_y),
                                (hx + S * 0.08, head_y + S * 0.14), (hx - S * 0.08, head_y + S * 0.14)], hc)
        cv.ellipse(hair_layer, hx, head_y + S * 0.3, S * 0.05, S * 0.2, hc, soft=1.5)
        cv.circle(hair_layer, hx, head_y + S * 0.12, S * 0.03, rgb("#c96f4a"))
    # a sheen on the crown
    ts = np.linspace(np.pi * 1.2, np.pi * 1.8, 10)
    cv.line(hair_layer, [(hx + np.cos(t) * S * 0.1, head_y - S * 0.03 + np.sin(t) * S * 0.09) for t in ts],
            S * 0.018, mix(hair_c, (1, 1, 1), 0.3), alpha=0.7)
    hair = hair_layer[..., 3].copy()
    cv.composite(rgba, hair_layer, 0, 0)
    if cap:             # knitted beanie over the hair; it does not sway
        capc = pick(rng, BOOKS)
        cv.ellipse(rgba, hx, head_y - S * 0.06, S * 0.165, S * 0.14, capc, soft=1.2)
        cv.rect(rgba, hx - S * 0.17, head_y - S * 0.02, hx + S * 0.17, head_y + S * 0.04, scale(capc, 0.8),
                radius=S * 0.02)
        cv.circle(rgba, hx, head_y - S * 0.2, S * 0.04, mix(capc, (1, 1, 1), 0.3))
        hair[: int(head_y + S * 0.04)] *= 0.0
    elif rng.random() < 0.65:   # headphones
        band = rgb("#3a3a44")
        ts = np.linspace(np.pi * 1.05, np.pi * 1.95, 16)
        cv.line(rgba, [(hx + np.cos(t) * S * 0.165, head_y + np.sin(t) * S * 0.185) for t in ts], S * 0.025, band)
        cupc = [rgb("#d8d0c4"), rgb("#e8a0a0"), rgb("#3a3a44")][int(rng.integers(3))]
        for sgn in (-1, 1):
            cv.ellipse(rgba, hx + sgn * S * 0.16, head_y + S * 0.03, S * 0.038, S * 0.062, cupc, soft=1.2)
    # light: multiply by the room light where the figure sits, plus a rim towards the key light
    x = int(round(cx - w / 2))
    y = int(round(base - h))
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, ctx.W), min(y + h, ctx.H)
    lm = np.ones((h, w, 3), np.float32) * np.array(ctx.ambient, np.float32)
    lm[y0 - y:y1 - y, x0 - x:x1 - x] = ctx.lightmap[y0:y1, x0:x1]
    a = rgba[..., 3]
    rim_dir, rim_col = ctx.rim
    k = max(S * 0.018, 1.0)
    vx, vy = int(round(rim_dir[0] * k)), int(round(rim_dir[1] * k))
    ahead = np.zeros_like(a)  # alpha one step towards the light
    ys0, ys1 = max(-vy, 0), h - max(vy, 0)
    xs0, xs1 = max(-vx, 0), w - max(vx, 0)
    ahead[ys0:ys1, xs0:xs1] = a[ys0 + vy:ys1 + vy, xs0 + vx:xs1 + vx]
    rim = (a * (1 - ahead))[..., None]
    lit = finish.tonemap(rgba[..., :3] * lm * 0.92)
    rgba[..., :3] = np.minimum(lit + rim * 0.45 * np.asarray(rim_col, np.float32), rgba[..., 3:4])
    # straight alpha, and nothing outside the frame
    rgba = cv.unpremultiply(rgba[y0 - y:y1 - y, x0 - x:x1 - x])
    hair = hair[y0 - y:y1 - y, x0 - x:x1 - x].copy()
    chest = int(round(S * 0.62)) - (y0 - y)
    chest = int(min(max(chest, 0), rgba.shape[0] - 1))
    return Figure(rgba=rgba, x=x0, y=y0, hair=hair, chest_y=chest)

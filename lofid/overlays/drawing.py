"""Drawing overlay text: rendered once per text to an RGBA tile (Pillow), then
alpha-blended onto each frame's pixels under the tile only.

A tile is kept twice: as RGBA for RGB frames (the window) and as premultiplied
BT.709 limited-range Y/Cb/Cr planes with their alpha, at the output size, for the
yuv420p frames the encoder takes. Blending in yuv420p is the same sum as blending in
RGB and converting (the conversion is linear), and touches a few thousand pixels
instead of converting the whole picture again. Tiles sit on even pixels so the
half-size chroma planes line up.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

import numpy as np

from lofid.overlays.layers import Layer, OverlayError

ONE = 256                        # blend weights are integers out of 256
_SHADOW_ALPHA = 0.6
_HALO_ALPHA = 0.5 * 2.5            # the blurred halo's peak is low: lift it
_OUTLINE_COLOUR = (26, 20, 16)   # a warm near-black


@functools.lru_cache(maxsize=64)
def _font(path: str, size: int):
    from PIL import ImageFont
    return ImageFont.truetype(path, size)


def load_font(path: str, size: int, where: str = "overlay"):
    """The TrueType/OpenType font at `path` (or a file name in the system's font
    folders) at `size` pixels; OverlayError when it does not load."""
    try:
        return _font(path, int(size))
    except (OSError, ValueError) as e:
        raise OverlayError(f"{where}: font {path!r} does not load ({e}); expected the path "
                           f"of a .ttf or .otf file") from None


def check_colour(text: str, where: str = "overlay") -> tuple[int, int, int, int]:
    from PIL import ImageColor
    try:
        c = ImageColor.getrgb(text)
    except ValueError:
        raise OverlayError(f"{where}: colour {text!r}: expected \"#rrggbb\", \"#rrggbbaa\" "
                           f"or a colour name such as \"wheat\"") from None
    return tuple(c) + (255,) * (4 - len(c))


def font_size(layer: Layer, height: int) -> int:
    """The layer's size in pixels: its own, or 3.2 % of the picture's height (35 px at
    1080p: readable on a phone, quiet on a TV)."""
    return layer.size or max(10, round(height * 0.032))


@dataclass(eq=False)
class Tile:
    """One layer's text drawn at its place on a width x height picture."""
    x: int
    y: int
    rgba: np.ndarray            # (h, w, 4) uint8, straight alpha
    # yuv420p: alpha weights out of 256 and premultiplied values (x256) per plane
    a_y: np.ndarray
    p_y: np.ndarray
    a_c: np.ndarray
    p_u: np.ndarray
    p_v: np.ndarray

    @property
    def box(self) -> tuple[int, int, int, int]:
        h, w = self.rgba.shape[:2]
        return self.x, self.y, self.x + w, self.y + h


def text_width(layer: Layer, text: str, height: int) -> int:
    from PIL import Image, ImageDraw
    font = load_font(layer.font, font_size(layer, height))
    box = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font,
                                                          stroke_width=layer.outline)
    return box[2] - box[0]


def room(layer: Layer, width: int, height: int) -> int:
    """How many pixels wide the layer's text may be on a width x height picture."""
    if isinstance(layer.position, tuple):
        return width - layer.position[0]
    return width - 2 * round(layer.margin * height)


def check_fits(layer: Layer, text: str, width: int, height: int) -> None:
    """OverlayError when `text` drawn by `layer` is wider than the picture allows."""
    w, room_ = text_width(layer, text, height), room(layer, width, height)
    if w > room_:
        raise OverlayError(f"overlay {layer.name!r}: the text is {w} px wide, more than the "
                           f"{room_} px the {width}x{height} picture has room for: shorten it "
                           f"or make size smaller")
    if isinstance(layer.position, tuple) and layer.position[1] >= height:
        raise OverlayError(f"overlay {layer.name!r}: position {list(layer.position)} is "
                           f"outside the {width}x{height} picture")


def fitted(layer: Layer, text: str, width: int, height: int) -> str:
    """`text`, cut short with an ellipsis where it is too wide (a long track title)."""
    limit = room(layer, width, height)
    if text_width(layer, text, height) <= limit:
        return text
    lo, hi = 0, len(text)
    while lo < hi:                      # the longest start that fits with "…"
        mid = (lo + hi + 1) // 2
        if text_width(layer, text[:mid].rstrip() + "…", height) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + "…"


def render(layer: Layer, text: str, width: int, height: int) -> Tile | None:
    """The tile of `text` as `layer` draws it on a width x height picture; None for no
    text. Text too wide is cut short (see check_fits for a hard error)."""
    from PIL import Image, ImageDraw, ImageFilter
    text = text.strip()
    if not text:
        return None
    text = fitted(layer, text, width, height)
    size = font_size(layer, height)
    font = load_font(layer.font, size)
    outline = layer.outline
    left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox(
        (0, 0), text, font=font, stroke_width=outline)
    tw, th = right - left, bottom - top
    offset = max(1, round(size * 0.06)) if layer.shadow else 0
    blur = max(1.0, size * 0.12) if layer.shadow else 0.0
    pad = int(blur * 2.2 * 3) + offset + 2
    w, h = tw + 2 * pad, th + 2 * pad
    origin = (pad - left, pad - top)

    def mask(stroke: int, shift: int = 0) -> Image.Image:
        m = Image.new("L", (w, h), 0)
        ImageDraw.Draw(m).text((origin[0] + shift, origin[1] + shift), text, font=font,
                               fill=255, stroke_width=stroke, stroke_fill=255)
        return m

    colour = check_colour(layer.colour)
    out = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    if layer.shadow:
        # A wide, faint halo keeps light text readable on a bright wall; a close, soft
        # drop shadow under it gives the letters depth without a hard edge.
        halo = np.asarray(mask(outline).filter(ImageFilter.GaussianBlur(blur * 2.2)),
                          np.float32) * _HALO_ALPHA
        drop = np.asarray(mask(outline, offset).filter(ImageFilter.GaussianBlur(blur)),
                          np.float32) * _SHADOW_ALPHA
        a = np.clip(255 - (255 - halo) * (255 - drop) / 255, 0, 255).astype(np.uint8)
        out = Image.alpha_composite(out, Image.fromarray(
            np.dstack([np.broadcast_to(np.uint8(_OUTLINE_COLOUR), (h, w, 3)), a]), "RGBA"))
    if outline:
        o = np.asarray(mask(outline))
        out = Image.alpha_composite(out, Image.fromarray(
            np.dstack([np.broadcast_to(np.uint8(_OUTLINE_COLOUR), (h, w, 3)), o]), "RGBA"))
    fill = (np.asarray(mask(0), np.float32) * (colour[3] / 255)).astype(np.uint8)
    out = Image.alpha_composite(out, Image.fromarray(
        np.dstack([np.broadcast_to(np.uint8(colour[:3]), (h, w, 3)), fill]), "RGBA"))
    rgba = np.array(out)
    rgba[..., 3] = np.round(rgba[..., 3] * layer.opacity).astype(np.uint8)

    # Where the text's own box goes (its shadow and padding around it).
    if isinstance(layer.position, tuple):
        bx, by = layer.position
    else:
        m = round(layer.margin * height)
        p = layer.position
        bx = m if "left" in p else width - m - tw if "right" in p else (width - tw) // 2
        by = m if p.startswith("top") else height - m - th if p.startswith("bottom") \
            else (height - th) // 2
    return _placed(rgba, bx - pad, by - pad, width, height)


def _placed(rgba: np.ndarray, x: int, y: int, width: int, height: int) -> Tile | None:
    """The tile at (x, y), on even pixels and cut to the picture."""
    h, w = rgba.shape[:2]
    # Grow to even edges (transparent), so chroma pixels are whole.
    x0, y0 = x - (x % 2), y - (y % 2)
    x1, y1 = x + w + ((x + w) % 2), y + h + ((y + h) % 2)
    grown = np.zeros((y1 - y0, x1 - x0, 4), np.uint8)
    grown[y - y0:y - y0 + h, x - x0:x - x0 + w] = rgba
    # Cut to the picture.
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    rgba = np.ascontiguousarray(grown[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0])
    if not rgba[..., 3].any():
        return None
    a = rgba[..., 3].astype(np.float32) / 255
    rgb = rgba[..., :3].astype(np.float32)
    # BT.709, limited range: as lofid.encode converts the rest of the picture.
    luma = rgb @ np.float32([0.2126, 0.7152, 0.0722])
    yy = 16 + luma * (219 / 255)
    cb = 128 + (rgb[..., 2] - luma) / 1.8556 * (224 / 255)
    cr = 128 + (rgb[..., 0] - luma) / 1.5748 * (224 / 255)

    def half(v):                         # the mean of each 2x2 block
        return (v[0::2, 0::2] + v[1::2, 0::2] + v[0::2, 1::2] + v[1::2, 1::2]) / 4

    a_c = half(a)
    return Tile(x=cx0, y=cy0, rgba=rgba,
                a_y=np.round(a * ONE).astype(np.uint32),
                p_y=np.round(a * yy * ONE).astype(np.uint32),
                a_c=np.round(a_c * ONE).astype(np.uint32),
                p_u=np.round(half(a * cb) * ONE).astype(np.uint32),
                p_v=np.round(half(a * cr) * ONE).astype(np.uint32))


# --------------------------------------------------------------------------- blending

def _over(region: np.ndarray, weight: np.ndarray, premultiplied: np.ndarray) -> None:
    """region = region * (1 - a) + a * colour, in place, integers out of 256."""
    out = region.astype(np.uint32)
    out *= ONE - weight
    out += premultiplied + ONE // 2
    out >>= 8
    region[...] = out


def yuv_planes(frame) -> list[np.ndarray]:
    """Writable views of a yuv420p av.VideoFrame's three planes."""
    views = []
    for i, plane in enumerate(frame.planes):
        w, h = (frame.width, frame.height) if i == 0 else \
            ((frame.width + 1) // 2, (frame.height + 1) // 2)
        views.append(np.frombuffer(plane, np.uint8).reshape(h, plane.line_size)[:, :w])
    return views


def draw_yuv(planes: list[np.ndarray], tile: Tile, origin: tuple[int, int] = (0, 0)) -> None:
    """Blend `tile` into yuv420p planes whose top-left pixel is `origin` of the picture."""
    x, y = tile.x - origin[0], tile.y - origin[1]
    h, w = tile.a_y.shape
    _over(planes[0][y:y + h, x:x + w], tile.a_y, tile.p_y)
    cy, cx, ch, cw = y // 2, x // 2, tile.a_c.shape[0], tile.a_c.shape[1]
    _over(planes[1][cy:cy + ch, cx:cx + cw], tile.a_c, tile.p_u)
    _over(planes[2][cy:cy + ch, cx:cx + cw], tile.a_c, tile.p_v)


def draw_rgb(image: np.ndarray, tile: Tile, origin: tuple[int, int] = (0, 0)) -> None:
    x, y = tile.x - origin[0], tile.y - origin[1]
    h, w = tile.rgba.shape[:2]
    a = np.round(tile.rgba[..., 3:].astype(np.float32) * (ONE / 255)).astype(np.uint32)
    _over(image[y:y + h, x:x + w], a, a * tile.rgba[..., :3])


def _union(a: Tile, b: Tile) -> tuple[int, int, int, int]:
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a.box, b.box
    return min(ax0, bx0), min(ay0, by0), max(ax1, bx1), max(ay1, by1)


def _blend_into(dst: np.ndarray, a: np.ndarray, b: np.ndarray, weight: int) -> None:
    out = a.astype(np.uint16) * np.uint16(ONE - weight)
    out += b.astype(np.uint16) * np.uint16(weight)
    out += ONE // 2
    out >>= 8
    dst[...] = out


def crossfade_yuv(planes: list[np.ndarray], old: Tile | None, new: Tile | None,
                  weight: int) -> None:
    """The old text crossfading into the new one, `weight` of 256 of the way."""
    if old is None or new is None:
        # Fading in or out over the picture: the tile at a share of its strength.
        tile = new if old is None else old
        share = weight if old is None else ONE - weight
        x0, y0, x1, y1 = tile.box
        region = [p[y0:y1, x0:x1] if i == 0 else p[y0 // 2:y1 // 2, x0 // 2:x1 // 2]
                  for i, p in enumerate(planes)]
        before = [r.copy() for r in region]
        draw_yuv(region, tile, (x0, y0))
        for r, b in zip(region, before):
            _blend_into(r, b, r.copy(), share)
        return
    x0, y0, x1, y1 = _union(old, new)
    region = [p[y0:y1, x0:x1] if i == 0 else p[y0 // 2:y1 // 2, x0 // 2:x1 // 2]
              for i, p in enumerate(planes)]
    with_old = [r.copy() for r in region]
    draw_yuv(with_old, old, (x0, y0))
    draw_yuv(region, new, (x0, y0))
    for r, o in zip(region, with_old):
        _blend_into(r, o, r.copy(), weight)


def crossfade_rgb(image: np.ndarray, old: Tile | None, new: Tile | None, weight: int) -> None:
    if old is None or new is None:
        tile = new if old is None else old
        share = weight if old is None else ONE - weight
        x0, y0, x1, y1 = tile.box
    else:
        x0, y0, x1, y1 = _union(old, new)
        share = weight
    region = image[y0:y1, x0:x1]
    first = region.copy()
    if old is not None and new is not None:
        draw_rgb(first, old, (x0, y0))
    draw_rgb(region, new if new is not None else old, (x0, y0))
    _blend_into(region, first, region.copy(), share)


class TileCache:
    """Rendered tiles by (layer, text, picture size); the newest few kept."""

    def __init__(self, size: int = 64):
        self._size = size
        self._tiles: dict = {}
        self._lock = threading.Lock()

    def get(self, layer: Layer, text: str, width: int, height: int) -> Tile | None:
        key = (layer, text, width, height)
        with self._lock:
            if key in self._tiles:
                tile = self._tiles.pop(key)
                self._tiles[key] = tile            # newest last
                return tile
        tile = render(layer, text, width, height)
        with self._lock:
            self._tiles[key] = tile
            while len(self._tiles) > self._size:
                self._tiles.pop(next(iter(self._tiles)))
        return tile

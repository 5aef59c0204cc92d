"""One overlay layer: what it says (its kind) and how it looks, read from a config
table (`[[overlay]]`) or an `overlay.set` map, checked once, with a message naming the
layer and the key that is wrong.

Kinds: "now_playing" (the music's tags, else the lofi.nvim prompt that made the
track, else its file name), "clock" (a strftime format in a time zone), "scene" (the
shown scene's name) and "text" (free text). A layer is frozen and hashable: a rendered
text is cached by (layer, text).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields

from lofid.errors import UserError
from lofid.settings.schema import ConfigError
from lofid.settings.values import zone_of as settings_zone

KINDS = ("now_playing", "clock", "scene", "text")
POSITIONS = ("top-left", "top", "top-right", "left", "center", "right",
             "bottom-left", "bottom", "bottom-right")
# The font every Debian machine with fonts-dejavu-core has; a bare file name is looked
# up in the system's font folders.
DEFAULT_FONT = "DejaVuSans.ttf"
MAX_TEXT = 500          # characters: a line on a stream, not a page
MAX_FADE = 10.0         # seconds
# strftime directives glibc and Python's datetime know; anything else after a % is
# most likely a typo that would show on screen as it is.
_DIRECTIVES = set("aAbBcCdDeFgGhHIjklmMnpPrRsStTuUVwWxXyYzZ%+") | {"-"}


class OverlayError(UserError, ValueError):
    """An overlay layer that cannot be shown; the message names it and why."""


@dataclass(frozen=True)
class Layer:
    name: str
    kind: str
    text: str = ""                   # kind "text": the words; others: shown before them
    format: str = "%H:%M"            # kind "clock"
    timezone: str = ""               # kind "clock": an IANA zone; "" = the machine's
    position: str | tuple[int, int] = "bottom-left"
    margin: float = 0.035            # named positions: this share of the picture's height
    font: str = DEFAULT_FONT
    size: int = 0                    # pixels at the output size; 0 = 3.2 % of its height
    colour: str = "#f3e9d8"          # a warm off-white: calm on dark and on bright loops
    opacity: float = 0.92
    shadow: bool = True              # a soft, blurred drop shadow
    outline: int = 0                 # pixels of dark edge around the letters; 0 = none
    fade: float = 0.6                # seconds a change of text crossfades over (clock: 0)

    def describe(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        if isinstance(self.position, tuple):
            d["position"] = list(self.position)
        return d


# Keys a table may hold: the layer's fields, and their spellings a user may reach for.
_ALIASES = {"color": "colour", "tz": "timezone", "time_zone": "timezone"}
_FIELDS = {f.name for f in fields(Layer)}


def _is_number(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)


def parse_layer(table, where: str = "overlay") -> Layer:
    """A Layer from a config table or a socket map; OverlayError naming what is wrong.
    The font is loaded and the clock's format and zone are tried here, so a layer that
    is accepted can be drawn."""
    if not isinstance(table, dict):
        raise OverlayError(f"{where}: expected a table of keys (kind, text, position ...), "
                           f"got {table!r}")
    values = {}
    for key, value in table.items():
        k = _ALIASES.get(key, key)
        if k not in _FIELDS:
            raise OverlayError(f"{where}: unknown key {key!r}; known keys: "
                               f"{', '.join(sorted(_FIELDS))}")
        values[k] = value
    kind = values.get("kind")
    if isinstance(kind, str):
        kind = kind.strip().lower().replace("-", "_").replace(" ", "_")
    if kind not in KINDS:
        raise OverlayError(f"{where}: kind {values.get('kind')!r} is not one of "
                           f"{', '.join(KINDS)}")
    values["kind"] = kind
    name = values.setdefault("name", kind)
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        raise OverlayError(f"{where}: name {name!r}: expected a short text")
    where = f"overlay {name!r}"
    for key in ("text", "format", "timezone", "font", "colour"):
        if key in values and not isinstance(values[key], str):
            raise OverlayError(f"{where}: {key} {values[key]!r}: expected a text")
    text = values.get("text", "")
    if kind == "text" and not text.strip():
        raise OverlayError(f"{where}: a text layer needs text = \"...\"")
    if len(text) > MAX_TEXT or "\n" in text:
        raise OverlayError(f"{where}: text must be one line of at most {MAX_TEXT} characters")
    values["position"] = _position(values.get("position", "bottom-left"), where)
    # A clock ticks: its minute cuts over at a keyframe, and needs no fade segment
    # encoded each minute besides its repetition.
    values.setdefault("fade", 0.0 if kind == "clock" else Layer.fade)
    for key, lo, hi in (("margin", 0, 0.45), ("opacity", 0, 1), ("fade", 0, MAX_FADE)):
        v = values.get(key, getattr(Layer, key))
        if not _is_number(v) or not lo <= v <= hi:
            raise OverlayError(f"{where}: {key} {v!r}: expected a number from {lo:g} to {hi:g}")
        values[key] = float(v)
    for key, lo, hi in (("size", 0, 400), ("outline", 0, 20)):
        v = values.get(key, getattr(Layer, key))
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise OverlayError(f"{where}: {key} {v!r}: expected whole pixels from {lo} to {hi}")
        values[key] = v
    if not isinstance(values.get("shadow", True), bool):
        raise OverlayError(f"{where}: shadow {values['shadow']!r}: expected true or false")
    layer = Layer(**values)
    # What can only be known by trying: the font loads, the colour parses, the clock formats.
    from lofid.overlays.drawing import check_colour, load_font
    load_font(layer.font, 12, where)
    check_colour(layer.colour, where)
    if kind == "clock":
        check_format(layer.format, where)
        zone_of(layer.timezone, where)
    return layer


def _position(value, where: str):
    if isinstance(value, str):
        p = value.strip().lower().replace("_", "-").replace(" ", "-")
        p = {"centre": "center", "middle": "center"}.get(p, p)
        if p in POSITIONS:
            return p
        m = re.fullmatch(r"(\d+)\s*,\s*(\d+)", p.replace("-", ","))
        if m:
            return int(m.group(1)), int(m.group(2))
    elif isinstance(value, (list, tuple)) and len(value) == 2 \
            and all(not isinstance(v, bool) and isinstance(v, int) and v >= 0 for v in value):
        return int(value[0]), int(value[1])
    raise OverlayError(f"{where}: position {value!r}: expected one of {', '.join(POSITIONS)}, "
                       f"or [x, y] in pixels from the top left")


def check_format(fmt: str, where: str) -> None:
    """OverlayError when a clock's format has no directive or one strftime does not know."""
    i, directives = 0, 0
    while i < len(fmt):
        if fmt[i] == "%":
            nxt = fmt[i + 1:i + 2]
            if nxt == "-":                  # glibc's "no padding" flag: %-H
                nxt = fmt[i + 2:i + 3]
                i += 1
            if not nxt or nxt not in _DIRECTIVES or nxt == "-":
                raise OverlayError(f"{where}: format {fmt!r}: {('%' + nxt) if nxt else 'a lone %'}"
                                   f" is not a strftime directive (e.g. %H:%M)")
            directives += nxt != "%"
            i += 2
        else:
            i += 1
    if not directives or len(fmt) > 100:
        raise OverlayError(f"{where}: format {fmt!r}: expected a strftime format such as "
                           f"\"%H:%M\" (at most 100 characters)")


def zone_of(name: str, where: str = "overlay"):
    """The tzinfo of an IANA zone name; None (the machine's own zone) for "" or "local"."""
    try:
        return settings_zone(name, f"{where}: timezone")
    except ConfigError as e:
        raise OverlayError(str(e)) from None


def parse_layers(tables, where: str = "overlay") -> list[Layer]:
    """The config's `[[overlay]]` tables as Layers; names must differ."""
    if not isinstance(tables, list):
        raise OverlayError(f"{where}: expected [[overlay]] tables, got {tables!r}")
    layers = [parse_layer(t, f"{where} #{i + 1}") for i, t in enumerate(tables)]
    seen: set[str] = set()
    for layer in layers:
        if layer.name in seen:
            raise OverlayError(f"overlay {layer.name!r}: two layers have this name; give each "
                               f"its own name = \"...\"")
        seen.add(layer.name)
    return layers

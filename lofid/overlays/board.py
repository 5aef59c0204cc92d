"""The overlays of a running lofid: the layers (from the config, changed over the
socket), what each says now, and the Look a loop's frames are drawn with.

The player asks for a Look when it prepares a loop and again at each keyframe of
the repetition on the air; when the texts differ from those its packets were
encoded with, it encodes the repetition again with the new Look (see
lofid.player). So a clock showing minutes costs one encode a minute, and texts
that do not change cost nothing after the first.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime
from typing import Any, Callable

from lofid.overlays.drawing import (ONE, Tile, TileCache, check_fits, crossfade_rgb,
                                    crossfade_yuv, draw_rgb, draw_yuv, yuv_planes)
from lofid.overlays.layers import Layer, OverlayError, parse_layer, parse_layers, zone_of

log = logging.getLogger("lofid.overlays")


class Look:
    """What the overlays show on one loop at one moment: (layer, text) pairs, in
    drawing order, and their tiles, rendered when first drawn."""

    def __init__(self, items: list[tuple[Layer, str]], size: tuple[int, int],
                 cache: TileCache):
        self.items = [(layer, text) for layer, text in items if text.strip()]
        self.key = tuple(self.items)
        self.size = size
        self._cache = cache
        self._tiles: dict[str, Tile | None] | None = None
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.items)

    def same(self, other: "Look | None") -> bool:
        return self.key == (other.key if other is not None else ())

    def texts(self) -> dict[str, str]:
        return {layer.name: text for layer, text in self.items}

    def tiles(self) -> dict[str, Tile | None]:
        with self._lock:
            if self._tiles is None:
                self._tiles = {layer.name: self._tile(layer, text) for layer, text in self.items}
            return self._tiles

    def _tile(self, layer: Layer, text: str) -> Tile | None:
        try:
            return self._cache.get(layer, text, *self.size)
        except Exception as e:              # drawn while encoding: never stops the picture
            log.warning("overlay %r not drawn: %s", layer.name, e)
            return None

    def fade_from(self, old: "Look | None") -> float:
        """Seconds the change from `old` to this look fades over: the longest fade of
        the layers whose text (or look) changes, 0 when none does."""
        before = dict(((layer.name, (layer, text)) for layer, text in (old.items if old else [])))
        after = {layer.name: (layer, text) for layer, text in self.items}
        changed = [pair[0] for name in set(before) | set(after)
                   for pair in (after.get(name) or before.get(name),)
                   if before.get(name) != after.get(name)]
        return max((layer.fade for layer in changed), default=0.0)


def _pairs(old: Look | None, new: Look | None, weight: int):
    """(old tile, new tile, weight) per layer, for drawing `weight`/256 of the way from
    `old` to `new`: a layer whose text is the same on both is drawn once, fully."""
    if weight >= ONE or not old or (new is not None and old.key == new.key):
        for tile in (new.tiles() if new else {}).values():
            yield None, tile, ONE
        return
    if weight <= 0:
        for tile in old.tiles().values():
            yield None, tile, ONE
        return
    old_items = {layer.name: (layer, text) for layer, text in old.items}
    new_items = {layer.name: (layer, text) for layer, text in new.items} if new else {}
    old_tiles, new_tiles = old.tiles(), (new.tiles() if new else {})
    for name in list(new_tiles) + [n for n in old_tiles if n not in new_tiles]:
        if old_items.get(name) == new_items.get(name):
            yield None, new_tiles[name], ONE
        else:
            yield old_tiles.get(name), new_tiles.get(name), weight


def draw_on_yuv(frame, old: Look | None, new: Look | None = None, weight: int = ONE) -> None:
    """Draw the overlays on a yuv420p av.VideoFrame in place: `new`, or `old` fading
    into `new`, `weight`/256 of the way."""
    if not old and not new:
        return
    planes = None
    for a, b, w in _pairs(old, new, weight):
        if a is None and b is None:
            continue
        planes = planes or yuv_planes(frame)
        if w >= ONE and b is not None:
            draw_yuv(planes, b)
        elif w < ONE:
            crossfade_yuv(planes, a, b, w)


def draw_on_rgb(image, old: Look | None, new: Look | None = None, weight: int = ONE) -> None:
    """The same on an (H, W, 3) uint8 RGB picture, in place."""
    if not old and not new:
        return
    for a, b, w in _pairs(old, new, weight):
        if w >= ONE and b is not None:
            draw_rgb(image, b)
        elif w < ONE and (a is not None or b is not None):
            crossfade_rgb(image, a, b, w)


def _tag(metadata: dict, *names: str) -> str:
    lower = {str(k).lower(): str(v) for k, v in (metadata or {}).items()}
    return next((lower[n].strip() for n in names if lower.get(n, "").strip()), "")


class Overlays:
    """The layers of one picture, width x height. `now()` is the wall clock (time.time;
    a test hands in its own), `audio` the stream's AudioTrack (for now playing)."""

    def __init__(self, layers: list[Layer], size: tuple[int, int], *, audio=None,
                 now: Callable[[], float] = time.time):
        self.size = (int(size[0]), int(size[1]))
        self.audio = audio
        self.now = now
        self._cache = TileCache()
        self._lock = threading.Lock()
        self._urgent = False
        self._tags: dict[str, str] = {}
        for layer in layers:
            self.check(layer)
        self._layers: list[Layer] = list(layers)

    # --- changing the layers (any thread) ----------------------------------------------

    @property
    def layers(self) -> list[Layer]:
        with self._lock:
            return list(self._layers)

    def check(self, layer: Layer) -> None:
        """OverlayError when a layer's fixed text (or its clock, as it reads now) is too
        wide for the picture; texts that follow the music or the scene are cut short
        instead."""
        w, h = self.size
        if layer.kind == "text":
            check_fits(layer, layer.text, w, h)
        elif layer.kind == "clock":
            check_fits(layer, self._text(layer, None, self.now()), w, h)

    def set(self, table: dict, now: bool = False) -> Layer:
        """Add a layer, or change the one of the same name (keys not given stay as
        they were). `now`: shown at once (a live segment) rather than at the next
        repetition."""
        if not isinstance(table, dict):
            raise OverlayError(f"overlay: expected a map of keys (kind, text, position ...), "
                               f"got {table!r}")
        name = table.get("name") or table.get("kind")
        with self._lock:
            old = next((l for l in self._layers if isinstance(name, str) and l.name == name), None)
        if old is not None:
            table = {**old.describe(), **table}
        layer = parse_layer(table)
        self.check(layer)
        with self._lock:
            at = next((i for i, l in enumerate(self._layers) if l.name == layer.name), None)
            if at is None:
                self._layers.append(layer)
            else:
                self._layers[at] = layer
            self._urgent = self._urgent or now
        return layer

    def clear(self, name: str | None = None, now: bool = False) -> list[str]:
        """Take away the named layer (every layer when None); the names taken."""
        with self._lock:
            gone = [l.name for l in self._layers if name is None or l.name == name]
            if name is not None and not gone:
                raise OverlayError(f"overlay {name!r}: no such layer; layers: "
                                   f"{', '.join(l.name for l in self._layers) or 'none'}")
            self._layers = [l for l in self._layers if l.name not in gone]
            self._urgent = self._urgent or now
        return gone

    def replace(self, tables: list) -> None:
        """The config's layers, reloaded: all of them replaced at once."""
        layers = parse_layers(tables)
        for layer in layers:
            self.check(layer)
        with self._lock:
            self._layers = layers

    def take_urgent(self) -> bool:
        """Whether a change asked to be shown at once came since the last call."""
        with self._lock:
            urgent, self._urgent = self._urgent, False
            return urgent

    # --- what the player asks -------------------------------------------------------------

    def look(self, loop: Any = None, ahead: float = 0.0) -> Look:
        """What the layers say over `loop` (for its scene's name) `ahead` seconds from now."""
        at = self.now() + ahead
        items = []
        for layer in self.layers:
            try:
                items.append((layer, self._text(layer, loop, at)))
            except Exception as e:          # an overlay never stops the picture
                log.warning("overlay %r: %s", layer.name, e)
        return Look(items, self.size, self._cache)

    def _text(self, layer: Layer, loop: Any, at: float) -> str:
        kind = layer.kind
        if kind == "text":
            return layer.text
        if kind == "clock":
            body = datetime.fromtimestamp(at, zone_of(layer.timezone)).strftime(layer.format)
        elif kind == "scene":
            spec = getattr(loop, "spec", None)
            label = getattr(spec, "label", None)
            body = label() if callable(label) else str(spec or "")
        else:
            body = self.now_playing()
        return layer.text + body if body else ""

    def now_playing(self) -> str:
        """The track that sounds: "Artist – Title" from its tags; else, for a track
        lofi.nvim made (its file name is a machine's), the prompt that made it; else
        its file name. "" when nothing plays."""
        info = self.audio.now_playing() if self.audio is not None else None
        if not info:
            return ""
        path = info.get("path", "")
        if path not in self._tags:
            if len(self._tags) > 256:
                self._tags.clear()
            self._tags[path] = self._read_tags(path)
        tagged = self._tags[path]
        if tagged:
            return tagged
        if info.get("prompt"):
            return str(info["prompt"])
        stem = os.path.splitext(os.path.basename(path))[0]
        return stem.replace("_", " ").strip()

    @staticmethod
    def _read_tags(path: str) -> str:
        import av
        try:
            with av.open(path, metadata_errors="ignore") as c:
                meta = dict(c.metadata)
                if c.streams.audio:
                    meta = {**dict(c.streams.audio[0].metadata), **meta}
        except Exception:
            return ""
        title, artist = _tag(meta, "title"), _tag(meta, "artist", "album_artist")
        return f"{artist} – {title}" if title and artist else title

    def describe(self) -> list[dict]:
        return [layer.describe() for layer in self.layers]

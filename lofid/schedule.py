"""A day that follows the clock: the config's `[[schedule]]` entries and the time of
day a clock time falls in.

    [[schedule]]
    at = "07:00"
    scene = "kitchen morning"
    timezone = "Europe/Berlin"     # optional; default: the `timezone` key, else local
    rotate = 120                   # optional: seconds between loops while it lasts
    audio = "~/music/morning"      # optional: the music while it lasts

Each entry holds from its time until the next entry's, every day. Times are wall
clock times in the entry's zone, so "07:00" stays 07:00 across a change of daylight
saving time. Entries may name different zones: which one holds at an instant is
the one whose last start lies nearest before it.

Only the standard library is imported here (the config is checked before anything
heavy loads); the scene text is parsed as `lofid ctl scene` parses it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from lofid.settings.schema import ConfigError
from lofid.settings.values import zone_of

DAY = 86400.0

# When each time of day begins, on the local wall clock (hour, minute), in order.
# Fixed hours rather than the sun's: the same every day, and what a viewer expects
# of a "morning" stream wherever the server stands.
TIME_OF_DAY_STARTS = (((5, 0), "morning"), ((10, 0), "day"), ((17, 0), "golden_hour"),
                      ((18, 30), "sunset"), ((20, 0), "night"))

ENTRY_KEYS = ("at", "scene", "timezone", "rotate", "audio", "overlays")

_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")


def minutes_of(text: Any, key: str) -> int:
    """Minutes after midnight of "HH:MM" (00:00 to 23:59)."""
    m = _HHMM.match(text) if isinstance(text, str) else None
    if m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ConfigError(f"{key} = {text!r}: expected a time of day \"HH:MM\", "
                          f"00:00 to 23:59 (e.g. \"07:00\")")
    return int(m.group(1)) * 60 + int(m.group(2))


def _wall(t: float, zone: tzinfo | None) -> datetime:
    """The instant `t` (unix seconds) on the wall clock of `zone` (None: local)."""
    if zone is None:
        return datetime.fromtimestamp(t).astimezone()
    return datetime.fromtimestamp(t, zone)


def time_of_day_at(t: float, zone: tzinfo | None = None) -> str:
    """The time of day (morning, day, golden_hour, sunset, night) at unix time `t` on
    the wall clock of `zone`."""
    wall = _wall(t, zone)
    now = (wall.hour, wall.minute)
    current = TIME_OF_DAY_STARTS[-1][1]            # before 05:00 it is still night
    for start, name in TIME_OF_DAY_STARTS:
        if now >= start:
            current = name
    return current


def next_time_of_day_change(t: float, zone: tzinfo | None = None) -> float:
    """The unix time of the next change of time of day after `t`."""
    return min(_next_start(t, h * 60 + m, zone) for (h, m), _ in TIME_OF_DAY_STARTS)


def _start_on(day: datetime, minutes: int, zone: tzinfo | None) -> float:
    """Unix time of `minutes` after midnight on the calendar day of `day`, in `zone`."""
    wall = datetime(day.year, day.month, day.day, minutes // 60, minutes % 60)
    if zone is None:
        return wall.timestamp()                    # naive: the machine's local time
    return wall.replace(tzinfo=zone).timestamp()


def _last_start(t: float, minutes: int, zone: tzinfo | None) -> float:
    """The latest instant <= t at which the wall clock of `zone` read `minutes`."""
    today = _wall(t, zone)
    for back in range(0, 3):
        start = _start_on(today - timedelta(days=back), minutes, zone)
        if start <= t:
            return start
    return t - DAY                                  # never reached: days are < 2 days long


def _next_start(t: float, minutes: int, zone: tzinfo | None) -> float:
    """The earliest instant > t at which the wall clock of `zone` reads `minutes`."""
    today = _wall(t, zone)
    for ahead in range(0, 3):
        start = _start_on(today + timedelta(days=ahead), minutes, zone)
        if start > t:
            return start
    return t + DAY


@dataclass(frozen=True)
class Entry:
    """One schedule entry: from `at` (minutes after midnight) in `zone`, `scene`."""
    at: int
    scene: str
    timezone: str | None = None
    rotate: float | None = None
    audio: str | None = None
    # [[overlay]] tables shown while the entry holds, over the config's own layers (a
    # layer of the same name takes that one's place).
    overlays: Any = None
    zone: tzinfo | None = field(default=None, compare=False, repr=False)

    @property
    def time(self) -> str:
        return f"{self.at // 60:02d}:{self.at % 60:02d}"

    def spec(self):
        from lofid.scene import parse
        return parse(self.scene)

    def describe(self) -> dict:
        d = {"at": self.time, "scene": self.scene, "label": self.spec().label()}
        for name in ("timezone", "rotate", "audio", "overlays"):
            if getattr(self, name) is not None:
                d[name] = getattr(self, name)
        return d


def _entry(raw: Any, i: int, default_zone: str | None, key: str) -> Entry:
    where = f"{key}[{i}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} = {raw!r}: expected a table with at = \"HH:MM\" and "
                          f"scene = \"...\" ([[schedule]] in the config)")
    unknown = [k for k in raw if k not in ENTRY_KEYS]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; an entry takes "
                          f"{', '.join(ENTRY_KEYS)}")
    if "at" not in raw:
        raise ConfigError(f"{where}: no time; expected at = \"HH:MM\"")
    at = minutes_of(raw["at"], f"{where}.at")
    scene = raw.get("scene")
    if not isinstance(scene, str) or not scene.strip():
        raise ConfigError(f"{where}.scene = {scene!r}: expected the scene in words, "
                          f"e.g. \"rainy window night\"")
    zone_name = raw.get("timezone", default_zone)
    zone = zone_of(zone_name, f"{where}.timezone" if "timezone" in raw else "timezone")
    rotate = raw.get("rotate")
    if rotate is not None and (isinstance(rotate, bool) or not isinstance(rotate, (int, float))
                               or not 0 < rotate < float("inf")):
        raise ConfigError(f"{where}.rotate = {rotate!r}: expected seconds above 0")
    audio = raw.get("audio")
    if audio is not None and (not isinstance(audio, str) or not audio.strip()):
        raise ConfigError(f"{where}.audio = {audio!r}: expected a music file or folder")
    overlays = raw.get("overlays")
    if overlays is not None:
        # Pillow is imported only for an entry with layers: `lofid --help` stays quick.
        from lofid.overlays import OverlayError, parse_layers
        try:
            parse_layers(overlays, f"{where}.overlays")
        except OverlayError as e:
            raise ConfigError(str(e)) from None
    return Entry(at, " ".join(scene.split()), zone_name,
                 None if rotate is None else float(rotate), audio, overlays, zone)


class Schedule:
    """The entries of a `[[schedule]]`, and which holds at a given unix time."""

    def __init__(self, entries: list[Entry]):
        self.entries = list(entries)

    @classmethod
    def from_config(cls, raw: Any, default_zone: str | None = None,
                    key: str = "schedule") -> "Schedule":
        """The schedule a config gives (a list of tables); ConfigError naming the entry
        and what is wrong: a bad time, an unknown zone, no scene, two at one time."""
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            raise ConfigError(f"{key} = {raw!r}: expected [[schedule]] tables, each with "
                              f"at = \"HH:MM\" and scene = \"...\"")
        zone_of(default_zone, "timezone")
        entries = [_entry(r, i, default_zone, key) for i, r in enumerate(raw)]
        seen: dict[tuple, int] = {}
        for i, e in enumerate(entries):
            same = (e.at, e.timezone)
            if same in seen:
                raise ConfigError(f"{key}[{i}] at = {e.time!r}: {key}[{seen[same]}] starts at "
                                  f"the same time; each entry needs a time of its own")
            seen[same] = i
        return cls(entries)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __eq__(self, other) -> bool:
        return isinstance(other, Schedule) and self.entries == other.entries

    def current(self, t: float) -> tuple[Entry, float] | None:
        """(the entry holding at unix time t, when it began), or None when empty."""
        best = None
        for e in self.entries:
            start = _last_start(t, e.at, e.zone)
            if best is None or start > best[1]:
                best = (e, start)
        return best

    def next(self, t: float) -> tuple[Entry, float] | None:
        """(the entry that begins next after t, when), or None when empty."""
        best = None
        for e in self.entries:
            start = _next_start(t, e.at, e.zone)
            if best is None or start < best[1]:
                best = (e, start)
        return best


def check(value: Any, key: str = "schedule", default_zone: str | None = None) -> None:
    """The settings' check of a `schedule` value: ConfigError when it cannot work."""
    Schedule.from_config(value, default_zone, key)

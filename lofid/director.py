"""What plays next: the current scene, requests, rotation, and a prefetch queue.

The director hands the player loops and never makes it wait: `first()` blocks once,
at start, until there is something to show; after that `urgent()` and `next_ready()`
only ever return a loop that can play now, or None, and the player keeps repeating
what it has. (`coming()` tells an unpaced player, writing files faster than real
time, that a loop it could wait for is being made right now.) A worker thread keeps the generator busy a loop or two ahead, from the
library first (loops of the same scene not played lately), then by generating new ones.

The rules, in order of priority:

1. Requests. `request(spec, reason)` moves the picture to another scene: "request" is
   someone asking (scene.set over the control socket, the config's scene), "audio" is
   the music (audio.prompt, audio.track). A loop of that scene in the library is
   answered at once: opened from the library (its frames decode while it plays; the
   first frames of one loop per scene are kept in memory, so nothing waits on the
   disk) and handed to the player through `urgent()`, which starts a live crossfade
   at the next output frame. Otherwise one is generated first, ahead of everything
   else, and crossed to when made. With generating off, a loop of the same scene in
   other weather or light stands in. Two specs show "the same scene" when they differ
   at most in mood words (which change a prompt, not the picture's kind).
2. No-ops. A request for the scene already showing does nothing, and drops any change
   still waiting (the latest request is what is wanted).
3. Timing. An audio request may say when its track starts (`start_at`, a monotonic
   time): the change waits until then. It may say how long the track lasts (`hold`):
   its scene is then held that long, and an audio request that does not say when its
   own track starts waits until the hold is over. Only the latest waiting change is
   kept.
4. No bouncing. An audio-driven change comes no sooner than `min_scene` seconds after
   the last scene change: two prompts within a few seconds do not make two crossfades
   back and forth; the latest is shown when that time is up, unless it is the scene
   showing by then. A request by hand is never held back.
5. Rotation. Every `rotate` seconds of output (and not while held, nor while a
   requested change is due) the next loop of the current scene is offered, chosen
   from those not among the last `history` played.
6. The day. With a schedule (lofid.schedule), each entry's scene is requested at its
   time on the wall clock, like a request by hand; requests and the music win again
   until the next entry. An entry's `rotate` holds while it lasts. With
   `follow_time`, every spec shown takes the clock's time of day, and at each change
   of time of day the scene showing moves to the new one. The wall clock is
   `wall_clock` (unix seconds), given from outside so a test can move through a day
   in seconds; the player's frames ask, so a change shows within a frame of its time.

Events: scene_changed {scene, loop, seed, reason} with reason "start", "request",
"audio", "schedule" (an entry's time came), "clock" (the time of day changed) or
"rotation" (a rotation changes what the scene looks like only where, with
generating off, loops of the same scene in other weather or light take turns).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Callable

from lofid.control import events
from lofid.errors import UserError

log = logging.getLogger("lofid.director")

REASONS = ("request", "audio", "schedule", "clock")

# Seconds of a loop's first frames kept in memory for each standby loop: what plays
# while the rest of its frames file opens and decodes.
_STANDBY_SECONDS = 0.5


class NothingToPlay(UserError):
    """The library holds no loop for the scene and generating is off."""


@dataclass
class DirectorSettings:
    loop_size: tuple[int, int] = (1280, 720)
    frames: int = 60
    fps: float = 12.0
    rotate: float = 180.0          # seconds of output between loops
    prefetch: int = 2              # loops kept ready ahead
    generate: bool = True          # False: play only what the library holds
    generator: str = "procedural"
    max_seam_ratio: float = 1.5    # a loop above it is made again (seam_attempts in all)
    seam_attempts: int = 3
    # Files made faster than real time: when a loop's time is up and the next one is
    # being made, `coming()` says so for at most this many seconds, and an unpaced
    # player may wait for it rather than let its clock outrun the generator.
    wait_for_next: float = 0.0
    live: bool = True              # requests cross at once (live); False: at a keyframe
    history: int = 8               # loops remembered, so rotation does not repeat them
    min_scene: float = 10.0        # seconds between audio-driven scene changes
    standby: int = 8               # scenes whose next loop's first frames stay in memory
    follow_time: bool = False      # the spec's time of day follows the wall clock
    zone: object = None            # tzinfo of the wall clock; None: the machine's


@dataclass
class _Request:
    """A scene change on its way."""
    spec: object
    reason: str
    due: float                      # monotonic time it may happen
    hold: float | None = None       # seconds its scene is held (audio: the track's length)
    key: str | None = None
    loop: object = None             # set once it can play
    generate: bool = False          # it waits for a loop to be made


def _look(spec):
    """The spec as the picture shows it: mood words aside."""
    return replace(spec, mood=()) if getattr(spec, "mood", ()) else spec


class Director:
    def __init__(self, library, spec, settings: DirectorSettings,
                 generate: Callable | None = None,
                 on_event: Callable[[str, dict], None] | None = None,
                 wall_clock: Callable[[], float] | None = None, schedule=None,
                 on_schedule: Callable[[object], None] | None = None):
        self.library = library
        self.spec = spec
        self.settings = settings
        self._generate = generate
        self._on_event = on_event or (lambda name, payload: None)
        self._ready: deque = deque()           # (key, Loop) made and waiting
        self._played: set[str] = set()          # keys played during this run
        self._lock = threading.Lock()
        self._making = None                     # the spec the worker is making a loop of
        self._due_since: float | None = None    # monotonic: rotation due, nothing ready
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._clock: Callable[[], float] = time.monotonic
        self._since: float | None = None       # output time the current loop started
        self.current_key: str | None = None
        self._current_spec = None
        self.failures = 0
        self.held = False
        self._pending: _Request | None = None
        self._hold_until = 0.0                  # monotonic: an audio scene is held until
        self._last_change = -math.inf           # monotonic: the last scene change
        # (monotonic time, scene label, loop key, reason) of the loops played lately.
        self.history: deque = deque(maxlen=max(1, settings.history))
        self._standby: dict[str, object] = {}  # loop key -> its Standby
        self._standby_stale = True
        # The day: the schedule, the entry holding now, and when to look again.
        self.wall_clock: Callable[[], float] = wall_clock or time.time
        self._schedule = schedule
        self._on_schedule = on_schedule or (lambda entry: None)
        self._entry = None                      # the schedule entry that last began
        self._entry_rotate: float | None = None
        self._day_next: float | None = None     # wall time of the next entry or change
        self._day_seen = -math.inf
        library.keep_in_use(self.keys_in_use)   # a capped library never evicts these

    def ready_keys(self) -> list[str]:
        """The keys of the loops made and waiting to be shown, in the order they come
        (`lofid ctl status` shows how many)."""
        with self._lock:
            return [key for key, _ in self._ready]

    def standby_keys(self) -> list[str]:
        """Keys of the loops whose first frames are kept decoded, one per scene, so a
        request for that scene crosses in at once."""
        return list(self._standby)

    def pending(self) -> dict | None:
        """The scene change on its way, not shown yet: its scene, the loop (once one
        is found), whether that loop is loaded, and the seconds until it is due."""
        with self._lock:
            req = self._pending
        if req is None:
            return None
        return {"scene": req.spec.label(), "reason": req.reason, "loop": req.key,
                "loaded": req.loop is not None, "due_in": max(0.0, req.due - time.monotonic())}

    def keys_in_use(self) -> set[str]:
        """Keys of the loops playing (and the one fading out), queued, requested or on
        standby: their frames may still be decoding from the library's files."""
        # The library asks with its lock held; the director never calls the library
        # with its own lock held, so taking it here cannot deadlock. History and
        # standby change outside the lock: list() copies them in one step.
        with self._lock:
            keys = {key for _, _, key, _ in list(self.history)[-2:]}
            keys.update(key for key, _ in self._ready)
            keys.update(list(self._standby))
            keys.add(self.current_key)
            if self._pending is not None:
                keys.add(self._pending.key)
        keys.discard(None)
        return keys

    # --- the player's side ---------------------------------------------------------

    def attach_clock(self, seconds: Callable[[], float]) -> None:
        """Rotation counts output time (a file is written faster than real time)."""
        self._clock = seconds

    def first(self):
        """A first loop, made now if need be; starts the prefetch worker."""
        self._begin_day()
        key, loop = self._take_from_library() or (None, None)
        if loop is None:
            if not self.settings.generate:
                raise NothingToPlay(
                    f"the library has no loop of {self.spec.label()!r} and generating is off "
                    f"(--no-generate); run without it, or `lofid generate` one first")
            key, loop = self._make()
        self._started(key, loop, "start")
        self._worker = threading.Thread(target=self._prefetch, name="director prefetch",
                                        daemon=True)
        self._worker.start()
        return loop

    def urgent(self):
        """A requested loop to cross to at once, when one is due and can play; else
        None. Cheap and never blocks: the player asks every frame."""
        self._check_day()
        req = self._pending
        if req is None or req.loop is None or not self.settings.live \
                or time.monotonic() < req.due:
            return None
        return self._take_request(req)

    def next_ready(self):
        """A made loop to crossfade to when the current one has had its time, else None."""
        if self._since is None:
            return None
        req = self._pending
        if req is not None and time.monotonic() >= req.due:
            # A requested change is due: it goes first, rotation waits.
            if req.loop is not None and not self.settings.live:
                return self._take_request(req)
            return None
        if not self._rotation_due():
            return None
        with self._lock:
            if not self._ready:
                if self._due_since is None:
                    self._due_since = time.monotonic()
                return None
            key, loop = self._ready.popleft()
        self._wake.set()
        self._started(key, loop, "rotation")
        return loop

    def coming(self) -> bool:
        """True while the current loop's time is up and the worker is making the next
        loop of this scene, for at most `wait_for_next` seconds: an unpaced player may
        wait for it (polling next_ready) rather than run ahead. False as soon as there
        is nothing to wait for. Cheap and never blocks."""
        req = self._pending
        if req is not None and time.monotonic() >= req.due or not self._rotation_due():
            return False
        with self._lock:
            since = self._due_since
            return (since is not None and not self._stop.is_set() and not self._ready
                    and self._making is not None and self._making == self.spec
                    and time.monotonic() - since < self.settings.wait_for_next)

    def _rotation_due(self) -> bool:
        """The current loop has had its time (or was skipped), and is not held."""
        if self._since is None:
            return False
        waited = self._clock() - self._since
        if waited == float("inf"):
            return True                         # skipped (skip()), held or not
        rotate = self._entry_rotate or self.settings.rotate
        return waited >= rotate and not self.held

    def skip(self) -> None:
        """Offer the next loop at once instead of when the current one's time is up."""
        with self._lock:
            self._since = float("-inf")
        self._wake.set()

    def hold(self, held: bool) -> None:
        """Held, the current loop keeps playing: no rotation. Requests (a new scene,
        skip) still go through."""
        self.held = held

    def set_scene(self, spec) -> dict:
        """Move to another scene as asked by hand (see request)."""
        return self.request(spec, "request")

    def request(self, spec, reason: str = "request", start_at: float | None = None,
                hold: float | None = None, key: str | None = None) -> dict:
        """Move the picture to `spec` by the rules in this module's docstring; returns
        at once with what will happen: {"action": "switch" | "scheduled" | "showing",
        "due_in": seconds}. `start_at` is a time.monotonic() value, `hold` seconds.
        `key` asks for that stored loop of `spec` (the web page's library grid)."""
        if reason not in REASONS:
            raise ValueError(f"request reason must be one of {', '.join(REASONS)}, "
                             f"got {reason!r}")
        for name, value in (("start_at", start_at), ("hold", hold)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise ValueError(f"request {name} must be a number of seconds, got {value!r}")
        if hold is not None and hold < 0:
            raise ValueError(f"request hold must be seconds >= 0, got {hold!r}")
        spec = self._followed(spec)
        now = time.monotonic()
        with self._lock:
            pending = self._pending
            if pending is not None and _look(pending.spec) == _look(spec) and key is None \
                    and pending.reason == reason and start_at is None:
                pending.hold = hold if hold is not None else pending.hold
                return {"action": "scheduled" if pending.due > now else "switch",
                        "due_in": round(max(0.0, pending.due - now), 3)}
            showing = (self.current_key == key) if key is not None else \
                (self._current_spec is not None and _look(self._current_spec) == _look(spec))
            if showing:
                self._pending = None
                if reason == "audio" and hold is not None:
                    self._hold_until = max(self._hold_until, (start_at or now) + hold)
                return {"action": "showing", "due_in": 0.0}
            due = now if start_at is None else start_at
            if reason == "audio":
                due = max(due, self._last_change + self.settings.min_scene)
                if start_at is None:
                    due = max(due, self._hold_until)
            req = _Request(spec=spec, reason=reason, due=due, hold=hold, key=key)
            self._pending = req
        # Looking in the library and opening the loop take a few milliseconds, the
        # socket's event loop none: a thread of its own.
        threading.Thread(target=self._fetch, args=(req,), name="director request",
                         daemon=True).start()
        return {"action": "switch" if due <= now else "scheduled",
                "due_in": round(max(0.0, due - now), 3)}

    # --- the day ------------------------------------------------------------------------

    def set_schedule(self, schedule) -> None:
        """A new schedule (a reloaded config): its entry for now is shown at once
        unless it is the one that began last; None or an empty one: no schedule."""
        self._schedule = schedule if schedule else None
        if self._schedule is None:
            self._entry = self._entry_rotate = None
        self._day_next = None

    def follow_clock(self, follow: bool, zone=None) -> None:
        """Whether the time of day follows the wall clock (in `zone`)."""
        self.settings.follow_time = follow
        self.settings.zone = zone
        self._day_next = None

    def day(self) -> dict | None:
        """The schedule's current and next entry, and the time of day the clock
        gives: for `status`. None without a schedule or `follow_time`."""
        from lofid.schedule import time_of_day_at
        schedule, follow = self._schedule, self.settings.follow_time
        if not schedule and not follow:
            return None
        now = self.wall_clock()
        out: dict = {"time_of_day": time_of_day_at(now, self.settings.zone) if follow else None,
                     "current": None, "next": None}
        if schedule:
            entry, began = schedule.current(now)
            out["current"] = {**entry.describe(), "since": began}
            entry, starts = schedule.next(now)
            out["next"] = {**entry.describe(), "starts": starts,
                           "in_s": round(starts - now, 3)}
        return out

    def _followed(self, spec):
        """`spec` at the clock's time of day, when the time of day follows the clock."""
        if not self.settings.follow_time:
            return spec
        from lofid.schedule import time_of_day_at
        from lofid.scene import at_time_of_day
        return at_time_of_day(spec, time_of_day_at(self.wall_clock(), self.settings.zone))

    def _begin_day(self) -> None:
        """At start: the schedule's entry for now is the scene, in the clock's light."""
        if self._schedule:
            entry, _ = self._schedule.current(self.wall_clock())
            self._entry, self._entry_rotate = entry, entry.rotate
            self.spec = entry.spec()
            self._said_entry(entry)
        self.spec = self._followed(self.spec)

    def _check_day(self) -> None:
        """Move to the schedule's entry when its time comes, and to the clock's time of
        day when it changes. Cheap until then: one call of the wall clock."""
        schedule, follow = self._schedule, self.settings.follow_time
        if not schedule and not follow:
            return
        now = self.wall_clock()
        if self._day_next is not None and self._day_seen <= now < self._day_next:
            return
        self._day_seen = now
        from lofid.schedule import next_time_of_day_change, time_of_day_at
        coming = []
        try:
            if schedule:
                entry, _ = schedule.current(now)
                if entry != self._entry:
                    self._entry, self._entry_rotate = entry, entry.rotate
                    self.request(entry.spec(), "schedule")
                    self._said_entry(entry)
                coming.append(schedule.next(now)[1])
            if follow:
                pending = self._pending
                spec = pending.spec if pending is not None else self.spec
                if spec.time_of_day != time_of_day_at(now, self.settings.zone):
                    self.request(spec, "clock")
                coming.append(next_time_of_day_change(now, self.settings.zone))
        except Exception as e:          # the picture goes on whatever the day does
            log.error("schedule: %s: %s", type(e).__name__, e)
            coming.append(now + 60.0)
        self._day_next = min(coming)

    def _said_entry(self, entry) -> None:
        try:
            self._on_schedule(entry)
        except Exception as e:
            log.warning("schedule entry %s: %s", entry.time, e)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the worker, waiting at most `timeout` seconds for a loop it is making
        (0: not at all; the library's writes are atomic, an abandoned one leaves no
        half loop)."""
        self._stop.set()
        self._wake.set()
        if self._worker is not None and timeout > 0:
            self._worker.join(timeout=timeout)

    # --- requests ----------------------------------------------------------------------

    def _fetch(self, req: _Request) -> None:
        """Find `req` a loop: from the library, opened to play at once, or by
        generating one (the prefetch worker's first job)."""
        try:
            found = (req.key, self._standby.pop(req.key, None)) if req.key is not None \
                else self._pick(req.spec)
            if found is not None:
                key, standby = found
                loop = self.library.open(key, standby=standby)
                with self._lock:
                    if self._pending is req:
                        req.key, req.loop = key, loop
                return
        except Exception as e:                  # a damaged loop: generate instead
            log.warning("could not open a stored loop of %s: %s", req.spec.label(), e)
        if self.settings.generate:
            with self._lock:
                req.generate = True
            self._wake.set()
            return
        with self._lock:
            if self._pending is req:
                self._pending = None
        self._on_event(events.ERROR, {"error": f"no loop of {req.spec.label()!r} in the library "
                                          f"and generating is off", "scene": req.spec.label()})

    def _pick(self, spec, take: bool = True):
        """(key, its standby or None) of the stored loop a request for `spec` plays:
        one on standby first, then the least recently played. A standby is used
        once: taken, it is made again later."""
        entries = self._matching(spec)
        if not entries:
            return None
        entries.sort(key=lambda e: (e["key"] not in self._standby, e.get("last_played") or 0))
        key = entries[0]["key"]
        if not take:
            return key, None
        standby = self._standby.pop(key, None)
        if standby is not None:
            self._standby_stale = True
        return key, standby

    def _matching(self, spec) -> list[dict]:
        """Stored loops showing `spec` (with generating off: any of its scene)."""
        from lofid.scene import SceneSpec
        entries = self.library.entries(scene=spec.scene)
        look = _look(spec)
        same = []
        for e in entries:
            try:
                if _look(SceneSpec.from_dict(e["spec"])) == look:
                    same.append(e)
            except ValueError:
                continue
        if not same and not self.settings.generate:
            return entries
        return same

    def _take_request(self, req: _Request):
        with self._lock:
            if self._pending is not req:
                return None
            self._pending = None
            self.spec = req.spec
            self._ready.clear()                # prefetched for the old scene
            if req.reason == "audio":          # a new track: the last one's hold is over
                self._hold_until = time.monotonic() + (req.hold or 0.0)
        self._started(req.key, req.loop, req.reason)
        # The worker refills for the new scene when its wait times out (seconds): not
        # at once, while the crossfade's first frames want the machine.
        return req.loop

    # --- making loops ----------------------------------------------------------------

    def _started(self, key, loop, reason: str) -> None:
        self._since = self._clock()
        self._due_since = None
        changed = self._current_spec is None or _look(self._current_spec) != _look(loop.spec)
        self._current_spec = loop.spec
        self.current_key = key
        loop.key = key   # the player names loops by it in its events
        now = time.monotonic()
        self.history.append((now, loop.spec.label(), key, reason))
        if key is not None:
            self._played.add(key)
            try:
                self.library.mark_played(key)
            except Exception as e:  # a library hiccup must not stop the picture
                log.warning("could not mark loop %s played: %s", key, e)
        if changed:
            if reason != "start":
                self._last_change = now
            self._on_event(events.SCENE_CHANGED, {"scene": loop.spec.label(), "loop": key,
                                             "seed": loop.seed, "reason": reason})

    def make_one(self, spec, seed: int | None = None):
        """Make a loop of `spec` into the library without playing it (a request from
        the control socket). Failures are reported as events, never raised."""
        s = self.settings
        seed = int.from_bytes(os.urandom(4), "little") if seed is None else seed
        try:
            self._on_event(events.GENERATION_STARTED, {"scene": spec.label(), "seed": seed})
            loop = self._generate(spec, seed, s.loop_size, s.frames, s.fps)
            key = self.library.put(loop)
            self._on_event(events.LOOP_READY, {"scene": spec.label(), "loop": key, "seed": seed,
                                          "seam_ratio": loop.metrics["seam_ratio"]})
            return key
        except Exception as e:
            self.failures += 1
            log.error("generating a loop failed: %s: %s", type(e).__name__, e)
            self._on_event(events.GENERATION_FAILED, {"scene": spec.label(),
                                                 "error": f"{type(e).__name__}: {e}"})
            return None

    def _take_from_library(self, spec=None):
        """A stored loop of the current scene (or `spec`), least recently played first.

        While generating, each stored loop is played once per run and then new ones
        are made, so a long stream keeps getting new pictures; with generating off the
        stored loops simply take turns, those among the last `history` played last.
        Without generating, loops of the same scene with other weather or time stand
        in when none matches the spec exactly."""
        with self._lock:
            spec = self.spec if spec is None else spec
            skip = {k for k, _ in self._ready} | {self.current_key}
            recent = {key for _, _, key, _ in self.history}
        if self.settings.generate:
            skip |= self._played
        entries = self.library.entries(spec=spec)
        if not entries and not self.settings.generate:
            entries = self.library.entries(scene=spec.scene)
        entries = [e for e in entries if e["key"] not in skip]
        entries.sort(key=lambda e: (e["key"] in recent, e.get("last_played") or 0))
        for e in entries:
            try:
                return e["key"], self.library.get(e["key"])
            except KeyError as err:   # vanished or damaged: the library set it aside
                log.warning("skipping loop %s: %s", e["key"], err)
        return None

    def _make(self, spec=None):
        """Generate a new loop of the current scene (or `spec`) and keep it in the library.

        A loop whose seam ratio is above the limit would show a jump at its loop
        point: it is made again with another seed, a few times at most, and the
        smoothest one made is kept."""
        s = self.settings
        spec = self.spec if spec is None else spec
        best = None
        for attempt in range(max(1, s.seam_attempts)):
            seed = int.from_bytes(os.urandom(4), "little")
            self._on_event(events.GENERATION_STARTED, {"scene": spec.label(), "seed": seed})

            def progress(done, total, seed=seed):
                self._on_event(events.GENERATION_PROGRESS, {"scene": spec.label(), "seed": seed,
                                                       "done": done, "total": total})
            loop = self._generate(spec, seed, s.loop_size, s.frames, s.fps, progress=progress)
            if best is None or loop.metrics["seam_ratio"] < best.metrics["seam_ratio"]:
                best = loop
            if loop.metrics["seam_ratio"] <= s.max_seam_ratio:
                break
            self._on_event(events.LOOP_REJECTED, {"scene": spec.label(), "seed": seed,
                                             "seam_ratio": loop.metrics["seam_ratio"],
                                             "limit": s.max_seam_ratio})
        loop, seed = best, best.seed
        key = None
        try:
            key = self.library.put(loop)
        except Exception as e:  # the loop still plays; only keeping it failed
            log.warning("could not keep the new loop in the library: %s", e)
        self._on_event(events.LOOP_READY, {"scene": spec.label(), "loop": key, "seed": seed,
                                      "seam_ratio": loop.metrics["seam_ratio"]})
        return key, loop

    def _make_requested(self) -> bool:
        """Generate the loop a pending request waits for; False when none waits."""
        with self._lock:
            req = self._pending
            if req is None or not req.generate or req.loop is not None:
                return False
        key, loop = self._make(req.spec)
        with self._lock:
            if self._pending is req:
                req.key, req.loop = key, loop
        return True

    def _fill_standby(self) -> bool:
        """Keep the first frames of one stored loop per scene look in memory (the one
        a request would play), for the `standby` looks most recently made."""
        from lofid.scene import SceneSpec
        if self.settings.standby < 1:
            return True
        try:
            entries = self.library.entries()
        except Exception as e:
            log.warning("could not list the library: %s", e)
            return False
        looks: dict = {}
        for e in entries:                       # newest first
            try:
                look = _look(SceneSpec.from_dict(e["spec"]))
            except ValueError:
                continue
            if look not in looks and len(looks) < self.settings.standby:
                looks[look] = e
        wanted = set()
        for look, e in looks.items():
            if self._stop.is_set() or self._pending is not None:
                return False                    # a request needs the machine now
            found = self._pick(look, take=False)
            if found is None:
                continue
            key = found[0]
            wanted.add(key)
            if key in self._standby:
                continue
            try:
                meta = self.library.meta(key)
                count = max(1, math.ceil(_STANDBY_SECONDS * meta["fps"]))
                self._standby[key] = self.library.standby(key, count)
            except Exception as e:
                log.warning("could not keep loop %s on standby: %s", key, e)
        for key in [k for k in list(self._standby) if k not in wanted]:
            self._standby.pop(key, None)
        return True

    def _rest(self, seconds: float) -> None:
        """Nothing to make now: bring the standby loops up to date, then wait until
        woken (a request, a loop taken) or `seconds` pass."""
        if self._standby_stale:
            self._standby_stale = not self._fill_standby()
        self._wake.wait(timeout=seconds)
        self._wake.clear()

    def _prefetch(self) -> None:
        # Making and loading loops ahead is background work: on Linux a thread can have
        # its own nice value, so this one yields the CPU to the player's clock and its
        # preparation of the next loop.
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):
            pass
        backoff = 1.0
        while not self._stop.is_set():
            try:
                if self._make_requested():
                    continue
            except Exception as e:
                self.failures += 1
                log.error("generating a requested loop failed: %s: %s", type(e).__name__, e)
                self._on_event(events.GENERATION_FAILED, {"error": f"{type(e).__name__}: {e}"})
                with self._lock:
                    self._pending = None
                continue
            with self._lock:
                full = len(self._ready) >= self.settings.prefetch
            if full:
                self._rest(5.0)
                continue
            # The loop is taken or made for the scene as it is now; a request may
            # change the scene meanwhile, and then the loop is not wanted.
            with self._lock:
                spec = self._making = self.spec
            try:
                made = self._take_from_library(spec)
                if made is None and self.settings.generate:
                    made = self._make(spec)
                    self._standby_stale = True   # a new loop may be a new scene
                backoff = 1.0
            except Exception as e:  # a failed generation is reported, never fatal
                with self._lock:
                    self._making = None
                self.failures += 1
                log.error("generating a loop failed: %s: %s", type(e).__name__, e)
                self._on_event(events.GENERATION_FAILED, {"error": f"{type(e).__name__}: {e}"})
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            if made is None:
                # Nothing new to offer (library only, one loop): look again later.
                with self._lock:
                    self._making = None
                self._rest(10.0)
                continue
            with self._lock:
                self._making = None
                # Compared with the spec it was taken for, not with its own: with
                # generating off a loop of the scene in other weather stands in.
                if spec == self.spec:
                    self._ready.append(made)

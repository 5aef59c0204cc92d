"""What plays next: the current scene, rotation, and a prefetch queue.

The director hands the player loops and never makes it wait: `first()` blocks once,
at start, until there is something to show; after that `next_ready()` only ever
returns a loop that is already made, or None, and the player keeps repeating what it
has. A worker thread keeps the generator busy a loop or two ahead, from the library
first (loops of the same scene not played lately), then by generating new ones.
Every `rotate` seconds of output the next loop is offered, so the picture never
repeats one loop for long.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger("lofid.director")


class NothingToPlay(Exception):
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
    # Files made faster than real time: when a loop's time is up, wait for the next
    # one rather than let the output clock outrun the generator (bounded, seconds).
    wait_for_next: float = 0.0


class Director:
    def __init__(self, library, spec, settings: DirectorSettings,
                 generate: Callable | None = None,
                 on_event: Callable[[str, dict], None] | None = None):
        self.library = library
        self.spec = spec
        self.settings = settings
        self._generate = generate
        self._on_event = on_event or (lambda name, payload: None)
        self._ready: deque = deque()           # (key, Loop) made and waiting
        self._played: set[str] = set()          # keys played during this run
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)   # a loop joined _ready
        self._idle = False                                # the worker has nothing to make
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._clock: Callable[[], float] = time.monotonic
        self._since: float | None = None       # output time the current loop started
        self.current_key: str | None = None
        self._current_spec = None
        self.failures = 0
        self.held = False

    # --- the player's side ---------------------------------------------------------

    def attach_clock(self, seconds: Callable[[], float]) -> None:
        """Rotation counts output time (a file is written faster than real time)."""
        self._clock = seconds

    def first(self):
        """A first loop, made now if need be; starts the prefetch worker."""
        key, loop = self._take_from_library() or (None, None)
        if loop is None:
            if not self.settings.generate:
                raise NothingToPlay(
                    f"the library has no loop of {self.spec.label()!r} and generating is off "
                    f"(--no-generate); run without it, or `lofid generate` one first")
            key, loop = self._make()
        self._started(key, loop)
        self._worker = threading.Thread(target=self._prefetch, name="director prefetch",
                                        daemon=True)
        self._worker.start()
        return loop

    def next_ready(self):
        """A made loop to crossfade to when the current one has had its time, else None."""
        if self._since is None:
            return None
        waited = self._clock() - self._since
        if waited < self.settings.rotate and waited != float("inf"):
            return None
        if self.held and waited != float("inf"):
            return None
        with self._arrived:
            if not self._ready and self.settings.wait_for_next > 0:
                self._arrived.wait_for(lambda: self._ready or self._stop.is_set() or self._idle,
                                       timeout=self.settings.wait_for_next)
            if not self._ready:
                return None
            key, loop = self._ready.popleft()
        self._wake.set()
        self._started(key, loop)
        return loop

    def skip(self) -> None:
        """Offer the next loop at once instead of when the current one's time is up."""
        with self._lock:
            self._since = float("-inf")
        self._wake.set()

    def hold(self, held: bool) -> None:
        """Held, the current loop keeps playing: no rotation. Requests (a new scene,
        skip) still go through."""
        self.held = held

    def set_scene(self, spec) -> None:
        """Move to another scene: what was prefetched for the old one is dropped."""
        with self._lock:
            self.spec = spec
            self._ready.clear()
            self._since = float("-inf")   # offer the new scene's first loop at once
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        with self._arrived:
            self._arrived.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=30)

    # --- making loops ----------------------------------------------------------------

    def _started(self, key, loop) -> None:
        self._since = self._clock()
        changed = self._current_spec != loop.spec
        self._current_spec = loop.spec
        self.current_key = key
        loop.key = key   # the player names loops by it in its events
        if key is not None:
            self._played.add(key)
            try:
                self.library.mark_played(key)
            except Exception as e:  # a library hiccup must not stop the picture
                log.warning("could not mark loop %s played: %s", key, e)
        if changed:
            self._on_event("scene_changed", {"scene": loop.spec.label(), "loop": key,
                                             "seed": loop.seed})

    def make_one(self, spec, seed: int | None = None):
        """Make a loop of `spec` into the library without playing it (a request from
        the control socket). Failures are reported as events, never raised."""
        s = self.settings
        seed = int.from_bytes(os.urandom(4), "little") if seed is None else seed
        try:
            self._on_event("generation_started", {"scene": spec.label(), "seed": seed})
            loop = self._generate(spec, seed, s.loop_size, s.frames, s.fps)
            key = self.library.put(loop)
            self._on_event("loop_ready", {"scene": spec.label(), "loop": key, "seed": seed,
                                          "seam_ratio": loop.metrics["seam_ratio"]})
            return key
        except Exception as e:
            self.failures += 1
            log.error("generating a loop failed: %s: %s", type(e).__name__, e)
            self._on_event("generation_failed", {"scene": spec.label(),
                                                 "error": f"{type(e).__name__}: {e}"})
            return None

    def _take_from_library(self):
        """A stored loop of the current scene, least recently played first.

        While generating, each stored loop is played once per run and then new ones
        are made, so a long stream keeps getting new pictures; with generating off the
        stored loops simply take turns. Without generating, loops of the same scene
        with other weather or time stand in when none matches the spec exactly."""
        with self._lock:
            spec = self.spec
            skip = {k for k, _ in self._ready} | {self.current_key}
        if self.settings.generate:
            skip |= self._played
        entries = self.library.entries(spec=spec)
        if not entries and not self.settings.generate:
            entries = self.library.entries(scene=spec.scene)
        entries = [e for e in entries if e["key"] not in skip]
        entries.sort(key=lambda e: e.get("last_played") or 0)
        for e in entries:
            try:
                return e["key"], self.library.get(e["key"])
            except KeyError as err:   # vanished or damaged: the library set it aside
                log.warning("skipping loop %s: %s", e["key"], err)
        return None

    def _make(self):
        """Generate a new loop of the current scene and keep it in the library.

        A loop whose seam ratio is above the limit would show a jump at its loop
        point: it is made again with another seed, a few times at most, and the
        smoothest one made is kept."""
        s = self.settings
        spec = self.spec
        best = None
        for attempt in range(max(1, s.seam_attempts)):
            seed = int.from_bytes(os.urandom(4), "little")
            self._on_event("generation_started", {"scene": spec.label(), "seed": seed})

            def progress(done, total, seed=seed):
                self._on_event("generation_progress", {"scene": spec.label(), "seed": seed,
                                                       "done": done, "total": total})
            loop = self._generate(spec, seed, s.loop_size, s.frames, s.fps, progress=progress)
            if best is None or loop.metrics["seam_ratio"] < best.metrics["seam_ratio"]:
                best = loop
            if loop.metrics["seam_ratio"] <= s.max_seam_ratio:
                break
            self._on_event("loop_rejected", {"scene": spec.label(), "seed": seed,
                                             "seam_ratio": loop.metrics["seam_ratio"],
                                             "limit": s.max_seam_ratio})
        loop, seed = best, best.seed
        key = None
        try:
            key = self.library.put(loop)
        except Exception as e:  # the loop still plays; only keeping it failed
            log.warning("could not keep the new loop in the library: %s", e)
        self._on_event("loop_ready", {"scene": spec.label(), "loop": key, "seed": seed,
                                      "seam_ratio": loop.metrics["seam_ratio"]})
        return key, loop

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
            with self._lock:
                full = len(self._ready) >= self.settings.prefetch
            if full:
                self._wake.wait(timeout=5.0)
                self._wake.clear()
                continue
            try:
                made = self._take_from_library()
                if made is None and self.settings.generate:
                    made = self._make()
                backoff = 1.0
            except Exception as e:  # a failed generation is reported, never fatal
                self.failures += 1
                log.error("generating a loop failed: %s: %s", type(e).__name__, e)
                self._on_event("generation_failed", {"error": f"{type(e).__name__}: {e}"})
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            if made is None:
                # Nothing new to offer (library only, one loop): look again later.
                with self._arrived:
                    self._idle = True
                    self._arrived.notify_all()
                self._wake.wait(timeout=10.0)
                self._wake.clear()
                continue
            with self._arrived:
                self._idle = False
                if made[1].spec == self.spec:
                    self._ready.append(made)
                    self._arrived.notify_all()

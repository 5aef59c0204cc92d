"""The player's outputs: the one registry of what plays, and where each item goes.

Outputs are opened from targets (a file, a stream, a window) and registered here by
the target each came from; they may be added and removed while the picture plays,
and brought in line with a reloaded config. A target that cannot open is refused
with a message naming it; the others play on untouched.

The clock thread alone changes what is sent to (between two frames, in
`apply_changes`); everyone else only registers a change under the lock. The tuples
the clock sends to are replaced, never changed in place, so a thread that holds one
never sees it change under it. A packet output added while playing gets its video
from the next keyframe on (which carries the stream's headers); until then it is
sent no video at all, which is neither sent nor dropped for it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Callable

from lofid.media import Packet
from lofid.outputs.base import Output

log = logging.getLogger("lofid")


def is_live(target) -> bool:
    """A window or a stream (HLS too): it shows the picture as it is made, in real time."""
    return isinstance(target, str) and (
        target.strip() == "window" or target.strip().lower().endswith(".m3u8") or any(
        target.strip().lower().startswith(s) for s in ("udp://", "tcp://", "rtmp://", "rtmps://")))


@dataclasses.dataclass(eq=False)
class _Entry:
    target: object                              # the text it was opened from (or its name)
    output: Output
    started: bool = False                       # on the clock (or closing now)


class Router:
    """The outputs of a player, by the target each was opened from."""

    # What `add` may set for one output, and the type each takes.
    OPTIONS = {"fullscreen": bool, "borderless": bool}

    def __init__(self, options: dict | None = None, on_state=None, realtime: bool = True):
        self.options = dict(options or {})     # for every output (window: fullscreen ...)
        self.on_state = on_state
        self._player = None
        self._lock = threading.Lock()
        self._entries: list[_Entry] = []       # registered: playing, or waiting to start
        self._removed: list[Output] = []       # removed, until they are finalised
        self._changes: list[tuple[str, _Entry]] = []   # for the clock to apply
        self._info = None                      # the stream description outputs start with
        self._on_error: Callable[[BaseException, str], None] = _log_error
        # What the clock sends to (its thread alone replaces these).
        self._playing: tuple[Output, ...] = ()
        self.packet_outputs: tuple[Output, ...] = ()
        self.frame_outputs: tuple[Output, ...] = ()
        self._awaiting_keyframe: frozenset[Output] = frozenset()
        self._closing: list[threading.Thread] = []
        self.realtime = realtime
        # With a control socket open, a client can still add an output, so the run
        # goes on with none left; without one, nothing could ever play again.
        self.stop_when_all_failed = True

    @classmethod
    def of(cls, outputs) -> "Router":
        """A registry of outputs opened elsewhere (by name), as they are."""
        router = cls()
        router._adopt(outputs)
        return router

    def _adopt(self, outputs) -> None:
        with self._lock:
            known = {id(e.output) for e in self._entries}
            self._entries += [_Entry(getattr(o, "name", o), o) for o in outputs
                              if id(o) not in known]

    # --- the player it feeds ---------------------------------------------------------

    @property
    def player(self):
        """The player that plays to these outputs (and is stopped when all have failed)."""
        return self._player

    @player.setter
    def player(self, player) -> None:
        # The outputs the player was made with join this registry: from here on it
        # is the player's only one.
        self._player = player
        if player is not None and player.router is not self:
            self._adopt(player.router.outputs)
            player.router = self

    @property
    def realtime(self) -> bool:
        """Whether the picture is paced to the wall clock. It decides what a file does
        with a full queue: unpaced, it waits for room (the run slows down and the
        file gets every frame); paced, it drops and counts for itself alone, like a
        stream, so a stuck file never stops the clock or the other outputs."""
        return self._realtime

    @realtime.setter
    def realtime(self, value: bool) -> None:
        self._realtime = bool(value)
        with self._lock:
            outputs = [e.output for e in self._entries]
        for out in outputs:
            self._pace(out)

    def _pace(self, out) -> None:
        from lofid.outputs.file import RecordingOutput
        if isinstance(out, RecordingOutput):
            out.lossless = not self._realtime

    # --- registering: any thread ---------------------------------------------------------

    def open(self, targets: list[str]) -> list:
        """The outputs for `targets`, not yet started; one that cannot open is logged
        and left out."""
        from lofid.outputs.base import OutputError
        opened = []
        for target in targets:
            try:
                opened.append(self._open(target, {}).output)
            except OutputError as e:
                log.error("error: output %r: %s", target, e)
        return opened

    def add(self, target, opts: dict | None = None):
        """Open `target` and start it between two frames of the playing picture.
        Raises OutputError naming the target when it cannot play."""
        from lofid.outputs.base import OutputError
        opts = self._checked(target, opts)
        if not self.realtime and is_live(target):
            raise OutputError(f"output {target!r} shows the picture as it is made, and this "
                              "lofid is not paced to the wall clock (it plays only to files "
                              "or null); start it with --realtime to add a window or a stream")
        entry = self._open(target, opts, change="add")
        return entry.output

    def remove(self, name: str):
        """Stop the output called `name` (or opened from the target `name`); it is
        flushed and finalised meanwhile. Raises KeyError when none is."""
        with self._lock:
            entry = next((e for e in self._entries if e.output.name == name), None) \
                or next((e for e in self._entries if e.target == name), None)
            if entry is None:
                playing = ", ".join(repr(e.output.name) for e in self._entries) or "none"
                raise KeyError(f"no output called {name!r}; playing: {playing}")
            self._entries.remove(entry)
            if entry.started:
                self._removed.append(entry.output)
                self._changes.append(("remove", entry))
            elif ("add", entry) in self._changes:
                # Never started: nothing to finalise, it is just forgotten.
                self._changes.remove(("add", entry))
        if entry.started and self.on_state is not None:
            # Said at once: it is gone from the list now, while finalising a recording
            # may take seconds before the output itself says "closed".
            try:
                self.on_state(entry.output.name, "closing", None)
            except Exception:
                log.exception("output state callback failed")
        return entry.output

    def is_playing(self, name: str) -> bool:
        with self._lock:
            return any(e.output.name == name for e in self._entries)

    def all_failed(self) -> list[tuple[str, str]]:
        """(name, error) of every output when all of them have failed (disk full, a
        target that can never work), else []: a run with nothing left to play to."""
        with self._lock:
            outputs = [e.output for e in self._entries]
        if not outputs or any(o.state != "failed" for o in outputs):
            return []
        return [(o.name, o.stats.last_error or "failed") for o in outputs]

    def describe(self) -> list[dict]:
        with self._lock:
            entries = list(self._entries)
        return [{"name": e.output.name, "target": e.target, "state": e.output.state,
                 "dropped": e.output.stats.dropped, "error": e.output.stats.last_error}
                for e in entries]

    def follow_config(self, old: list[str], new: list[str]) -> dict:
        """Add the targets `new` names and `old` did not, remove those it dropped;
        the others play on untouched."""
        from lofid.outputs.base import OutputError
        result: dict = {"added": [], "removed": [], "failed": {}}
        for target in old:
            if target not in new:
                try:
                    result["removed"].append(self.remove(target).name)
                except KeyError:
                    pass                        # it never opened
        for target in new:
            if target not in old:
                try:
                    result["added"].append(self.add(target).name)
                except OutputError as e:
                    result["failed"][target] = str(e)
                    log.error("error: output %r: %s", target, e)
        return result

    def _state_changed(self, name: str, state: str, detail) -> None:
        if self.on_state is not None:
            self.on_state(name, state, detail)
        # The last output failing ends the run: playing on to nothing would only hide
        # the failure (the caller reports it and exits non-zero).
        if (state == "failed" and self.stop_when_all_failed and self._player is not None
                and self.all_failed()):
            log.error("error: every output has failed; stopping")
            self._player.stop()

    def _checked(self, target, opts) -> dict:
        from lofid.outputs.base import OutputError
        if opts is None:
            return {}
        if not isinstance(opts, dict):
            raise OutputError(f"output {target!r}: options must be a map, got "
                              f"{type(opts).__name__}")
        for key, value in opts.items():
            kind = self.OPTIONS.get(key)
            if kind is None:
                raise OutputError(f"output {target!r}: unknown option {key!r}; known: "
                                  f"{', '.join(self.OPTIONS)}")
            if type(value) is not kind:
                raise OutputError(f"output {target!r}: option {key} must be "
                                  f"{'true or false' if kind is bool else kind.__name__}, "
                                  f"got {value!r}")
        return dict(opts)

    def _open(self, target, opts: dict, change: str | None = None) -> _Entry:
        from lofid.outputs import open_output
        from lofid.outputs.base import OutputError
        with self._lock:
            if isinstance(target, str) and any(e.target == target for e in self._entries):
                raise OutputError(f"output {target!r} is already playing")
        out = open_output(target, on_state=self._state_changed, **{**self.options, **opts})
        self._pace(out)
        with self._lock:
            if any(e.output.name == out.name for e in self._entries):
                raise OutputError(f"output {target!r}: an output called {out.name!r} is "
                                  f"already playing")
            # A file removed a moment ago may still be being written: never two writers.
            self._removed = [o for o in self._removed if o.state not in ("closed", "failed")]
            if any(o.name == out.name for o in self._removed):
                raise OutputError(f"output {target!r} is still being finalised; "
                                  f"add it again in a moment")
            entry = _Entry(target, out)
            self._entries.append(entry)
            if change is not None:
                self._changes.append((change, entry))
        return entry

    # --- the clock's side: one thread ---------------------------------------------------

    @property
    def outputs(self) -> list[Output]:
        """The outputs on the clock (before it starts: those it will start with)."""
        if self._info is None:
            with self._lock:
                return [e.output for e in self._entries if ("add", e) not in self._changes]
        return list(self._playing)

    def start(self, info, on_error: Callable[[BaseException, str], None]) -> None:
        """Start every output registered so far (but those added for between two
        frames) with the stream description `info`; `on_error(error, name)` hears
        what fails from here on. One output failing never stops the others."""
        self._info, self._on_error = info, on_error
        with self._lock:
            entries = [e for e in self._entries if ("add", e) not in self._changes]
            for e in entries:
                e.started = True
        playing = []
        for e in entries:
            try:
                e.output.start(info)
            except Exception as error:
                self._on_error(error, getattr(e.output, "name", None))
            playing.append(e.output)    # as before: sent to, and closed, all the same
        self._set_playing(playing, frozenset())

    @property
    def changes_pending(self) -> bool:
        return bool(self._changes)

    def apply_changes(self, hold_frame_outputs: bool) -> None:
        """Start the outputs added and stop those removed since the last frame. With
        `hold_frame_outputs` (a crossfade is on the air) frame outputs added wait for
        its end: their pictures start after it."""
        with self._lock:
            changes = [c for c in self._changes
                       if not (hold_frame_outputs and c[0] == "add"
                               and c[1].output.wants == "frames")]
            self._changes = [c for c in self._changes if c not in changes]
            for what, entry in changes:
                entry.started = True            # a remove from now on must finalise it
        playing, awaiting = list(self._playing), set(self._awaiting_keyframe)
        for what, entry in changes:
            out = entry.output
            if what == "remove":
                if out in playing:
                    playing.remove(out)
                    awaiting.discard(out)
                    self._close_aside(out)
            else:
                try:
                    out.start(self._info)
                except Exception as e:       # one output failing never stops the others
                    self._on_error(e, getattr(out, "name", None))
                    continue
                playing.append(out)
                if out.wants == "packets":
                    awaiting.add(out)
        self._set_playing(playing, frozenset(awaiting))

    def _set_playing(self, playing: list[Output], awaiting: frozenset) -> None:
        self._awaiting_keyframe = awaiting
        self._playing = tuple(playing)
        self.packet_outputs = tuple(o for o in playing if o.wants == "packets")
        self.frame_outputs = tuple(o for o in playing if o.wants == "frames")

    def send_packet(self, packet: Packet, shift: int = 0) -> None:
        """`packet` to every packet output, `shift` frames (or samples) later."""
        if shift:
            packet = dataclasses.replace(packet, pts=packet.pts + shift, dts=packet.dts + shift)
        awaiting = self._awaiting_keyframe
        if awaiting and packet.kind == "video":
            if packet.keyframe:
                self._awaiting_keyframe = awaiting = frozenset()
        # Each output decides what a full queue means: a recording waits for room
        # (every frame matters), a stream drops (the clock matters).
        for out in self.packet_outputs:
            if not (awaiting and packet.kind == "video" and out in awaiting):
                out.send(packet)

    def send_frame(self, item) -> None:
        """A picture or raw audio to every frame output."""
        for out in self.frame_outputs:
            out.send(item)

    def dropped(self) -> dict:
        return {o.name: o.stats.dropped for o in self._playing}

    def close(self) -> None:
        """Flush and finalise every output on the clock, each on a thread of its own,
        and wait (within a bound) for those and the ones removed before."""
        for out in self._playing:
            self._close_aside(out)
        for t in self._closing:
            t.join(timeout=15)

    def _close_aside(self, out: Output) -> None:
        thread = threading.Thread(target=self._close, args=(out,), daemon=True,
                                  name=f"close {getattr(out, 'name', out)}")
        thread.start()
        self._closing.append(thread)

    def _close(self, out: Output) -> None:
        try:
            out.close(timeout=10.0)
        except Exception as e:
            self._on_error(e, getattr(out, "name", None))


def _log_error(error: BaseException, name: str) -> None:
    log.error("output %s: %s: %s", name, type(error).__name__, error)


# The name the daemon and the CLI know it by.
OutputSet = Router

"""Parts of a running `lofid run`: its outputs, the systemd notifier, the config
reloader. What the control socket can do to it is lofid/control/api.py."""

from __future__ import annotations

import logging
import threading

from lofid.control.api import Control  # noqa: F401  (its old import path)

log = logging.getLogger("lofid")


def is_live(target) -> bool:
    """A window or a stream: it shows the picture as it is made, in real time."""
    return isinstance(target, str) and (target.strip() == "window" or any(
        target.strip().lower().startswith(s) for s in ("udp://", "tcp://", "rtmp://", "rtmps://")))


class OutputSet:
    """The outputs of a running lofid, by the target each was opened from: opened at
    start, added to and removed from the playing picture, and brought in line with
    the config's `outputs` on reload. A target that cannot open is refused with a
    message naming it; the other outputs play on untouched."""

    # What `output.add` may set for one output, and the type each takes.
    OPTIONS = {"fullscreen": bool, "borderless": bool}

    def __init__(self, options: dict | None = None, on_state=None, realtime: bool = True):
        self.options = dict(options or {})     # for every output (window: fullscreen ...)
        self.on_state = on_state
        self.player = None                     # set once the player exists
        self._targets: dict[str, object] = {}  # target text -> its Output
        self._removed: list = []               # outputs removed, until they are finalised
        self._lock = threading.Lock()
        self.realtime = realtime
        # With a control socket open, a client can still add an output, so the run
        # goes on with none left; without one, nothing could ever play again.
        self.stop_when_all_failed = True

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
            outputs = list(self._targets.values())
        for out in outputs:
            self._pace(out)

    def _pace(self, out) -> None:
        from lofid.outputs.file import RecordingOutput
        if isinstance(out, RecordingOutput):
            out.lossless = not self._realtime

    def open(self, targets: list[str]) -> list:
        """The outputs for `targets`, not yet started; one that cannot open is logged
        and left out."""
        from lofid.outputs.base import OutputError
        opened = []
        for target in targets:
            try:
                opened.append(self._open(target, {}))
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
        out = self._open(target, opts)
        self.player.add_output(out)
        return out

    def remove(self, name: str):
        """Stop the output called `name` (or opened from the target `name`); it is
        flushed and finalised meanwhile. Raises KeyError when none is."""
        with self._lock:
            found = next(((t, o) for t, o in self._targets.items() if o.name == name), None) \
                or next(((t, o) for t, o in self._targets.items() if t == name), None)
            if found is None:
                playing = ", ".join(repr(o.name) for o in self._targets.values()) or "none"
                raise KeyError(f"no output called {name!r}; playing: {playing}")
            del self._targets[found[0]]
            self._removed.append(found[1])
        self.player.remove_output(found[1].name)
        return found[1]

    def is_playing(self, name: str) -> bool:
        with self._lock:
            return any(o.name == name for o in self._targets.values())

    def all_failed(self) -> list[tuple[str, str]]:
        """(name, error) of every output when all of them have failed (disk full, a
        target that can never work), else []: a run with nothing left to play to."""
        with self._lock:
            outputs = list(self._targets.values())
        if not outputs or any(o.state != "failed" for o in outputs):
            return []
        return [(o.name, o.stats.last_error or "failed") for o in outputs]

    def _state_changed(self, name: str, state: str, detail) -> None:
        if self.on_state is not None:
            self.on_state(name, state, detail)
        # The last output failing ends the run: playing on to nothing would only hide
        # the failure (the caller reports it and exits non-zero).
        if (state == "failed" and self.stop_when_all_failed and self.player is not None
                and self.all_failed()):
            log.error("error: every output has failed; stopping")
            self.player.stop()

    def describe(self) -> list[dict]:
        with self._lock:
            items = list(self._targets.items())
        return [{"name": o.name, "target": t, "state": o.state, "dropped": o.stats.dropped,
                 "error": o.stats.last_error} for t, o in items]

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

    def _open(self, target, opts: dict):
        from lofid.outputs import open_output
        from lofid.outputs.base import OutputError
        with self._lock:
            if isinstance(target, str) and target in self._targets:
                raise OutputError(f"output {target!r} is already playing")
        out = open_output(target, on_state=self._state_changed, **{**self.options, **opts})
        self._pace(out)
        with self._lock:
            if any(o.name == out.name for o in self._targets.values()):
                raise OutputError(f"output {target!r}: an output called {out.name!r} is "
                                  f"already playing")
            # A file removed a moment ago may still be being written: never two writers.
            self._removed = [o for o in self._removed if o.state not in ("closed", "failed")]
            if any(o.name == out.name for o in self._removed):
                raise OutputError(f"output {target!r} is still being finalised; "
                                  f"add it again in a moment")
            self._targets[target] = out
        return out


class SystemdNotifier:
    """sd_notify for a Type=notify user service: READY=1 once the first frame is out,
    STATUS= lines, WATCHDOG=1 only while the output clock advances (so systemd
    restarts a wedged daemon), STOPPING=1. Does nothing outside systemd."""

    def __init__(self, player, describe=None, environ=None):
        import os
        env = os.environ if environ is None else environ
        self.address = env.get("NOTIFY_SOCKET") or None
        usec = env.get("WATCHDOG_USEC")
        self.watchdog_s = int(usec) / 1e6 if usec and usec.isdigit() else None
        self.player = player
        self.describe = describe or (lambda: f"playing, {player.seconds:.0f} s out")
        self._stop = threading.Event()
        self._thread = None
        self.sent: list[str] = []

    def send(self, message: str) -> None:
        if not self.address:
            return
        import socket
        address = self.address
        if address.startswith("@"):          # abstract namespace
            address = "\0" + address[1:]
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            try:
                s.sendto(message.encode(), address)
                self.sent.append(message)
            except OSError:
                pass                          # systemd gone: nothing to tell

    def start(self) -> None:
        if not self.address:
            return
        self._thread = threading.Thread(target=self._run, name="sd_notify", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        start = self.player.frame
        while not self._stop.wait(0.1):       # READY once a frame has gone out
            if self.player.frame > start:
                self.send("READY=1\nSTATUS=" + self.describe())
                break
        every = min(self.watchdog_s / 2, 5.0) if self.watchdog_s else 5.0
        last = self.player.frame
        while not self._stop.wait(every):
            now = self.player.frame
            if now > last:                    # a stalled clock gets no ping
                self.send(("WATCHDOG=1\n" if self.watchdog_s else "") + "STATUS=" + self.describe())
            last = now

    def stop(self) -> None:
        self._stop.set()
        self.send("STOPPING=1")
        if self._thread is not None:
            self._thread.join(timeout=2)


class ConfigReloader:
    """Reloads the config file when it changes (watched with watchdog), on SIGHUP and
    on `config.reload`. A valid change is applied by `apply(old, new)`, which returns
    the keys that need a restart; an invalid one keeps the old config and is reported
    (log, event, status), never fatal."""

    def __init__(self, path, current, overrides: dict, apply, on_event=None):
        from pathlib import Path
        self.path = Path(path)
        self.current = current
        self.overrides = overrides
        self.apply = apply
        self.on_event = on_event or (lambda name, payload: None)
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._observer = None
        self._timer: threading.Timer | None = None

    def reload(self) -> dict:
        from lofid.config import ConfigError, load
        with self._lock:
            try:
                new = load(self.path, self.overrides)
                changed = [k for k in vars(new) if getattr(new, k) != getattr(self.current, k)]
            except Exception as e:
                # Whatever a file makes the reader raise (ConfigError, or a reader's own
                # failure), the old config stays and the reason is reported like any other.
                self.last_error = str(e) if isinstance(e, ConfigError) else \
                    f"config {str(self.path)!r} cannot be read: {type(e).__name__}: {e}"
                log.error("config not reloaded, the old one stays: %s", self.last_error)
            else:
                try:
                    restart = self.apply(self.current, new) if changed else []
                    self.last_error = None
                    log.info("config reloaded: %s", ", ".join(changed) or "no change")
                except Exception as e:
                    log.exception("applying the reloaded config failed")
                    self.last_error = (f"config {str(self.path)!r} was read, but applying it "
                                       f"failed: {type(e).__name__}: {e}")
                # Some keys may have taken effect even when applying failed: the new
                # config is the one compared against next time.
                self.current = new
            if self.last_error is None:
                result = {"ok": True, "error": None, "changed": changed,
                          "needs_restart": restart}
            else:
                result = {"ok": False, "error": self.last_error, "changed": [],
                          "needs_restart": []}
        self.on_event("config_reloaded", result)
        return result

    def start(self) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer
        reloader = self

        class Changed(FileSystemEventHandler):
            def on_any_event(self, event):
                paths = {getattr(event, "src_path", ""), getattr(event, "dest_path", "")}
                if str(reloader.path) in {str(p) for p in paths}:
                    reloader._soon()

        self._observer = Observer()
        self._observer.schedule(Changed(), str(self.path.parent), recursive=False)
        self._observer.daemon = True
        self._observer.start()

    def _soon(self) -> None:
        # An editor's save is several events (truncate, write, rename): read once, after.
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(0.3, self.reload)
        self._timer.daemon = True
        self._timer.start()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=2)

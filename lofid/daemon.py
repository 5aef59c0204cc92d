"""Parts of a running `lofid run`: its outputs, the systemd notifier, the config
reloader. What the control socket can do to it is lofid/control/api.py."""

from __future__ import annotations

import logging
import threading

from lofid.control.api import Control  # noqa: F401  (its old import path)
from lofid.player.router import OutputSet, is_live  # noqa: F401  (the one output registry)

log = logging.getLogger("lofid")


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

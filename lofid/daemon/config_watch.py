"""Following the config file while lofid runs: reloaded when it changes, on SIGHUP
and on `config.reload`."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("lofid")


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
        from lofid.settings.run import load
        from lofid.settings import ConfigError
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

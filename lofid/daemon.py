"""What the control socket can do to a running `lofid run`.

The methods are thin: each reads the state of the director, player, outputs and
library, or hands a request to the director, and returns at once (they run on the
socket's event loop). What happens as a result comes back as events to subscribers.
"""

from __future__ import annotations

import logging
import threading
import time

from lofid import __version__
from lofid.rpc import RpcError

log = logging.getLogger("lofid")


def _plain_paths(d):
    return None if d is None else {k: str(v) if hasattr(v, "__fspath__") else v
                                   for k, v in d.items()}


class Control:
    def __init__(self, director, player, library, outputs, audio=None, reloader=None):
        self.director = director
        self.player = player
        self.library = library
        self.outputs = outputs
        self.audio = audio
        self.reloader = reloader
        self.started = time.monotonic()
        self._library_seen: tuple[float, dict] | None = None

    def handlers(self) -> dict:
        return {
            "status": self.status,
            "scene.set": self.scene_set,
            "audio.prompt": self.audio_prompt,
            "audio.track": self.audio_track,
            "next": self.next,
            "pause": self.pause,
            "resume": self.resume,
            "library.list": self.library_list,
            "generate": self.generate,
            "config.reload": self.config_reload,
            "shutdown": self.shutdown,
        }

    def status(self, params: list) -> dict:
        d, p = self.director, self.player
        spec = d.spec
        return {
            "version": __version__,
            "uptime_s": round(time.monotonic() - self.started, 3),
            "scene": {**spec.to_dict(), "label": spec.label(), "id": spec.id},
            "loop": d.current_key,
            "paused": d.held,
            "clock": {"frame": p.frame, "seconds": round(p.seconds, 3),
                      "fps": float(p.settings.fps)},
            "outputs": [{"name": o.name, "state": o.state, "dropped": o.stats.dropped,
                         "error": o.stats.last_error} for o in self.outputs],
            "generator": {"ready": len(d._ready), "failures": d.failures,
                          "generating": d.settings.generate},
            "library": self._library_numbers(),
            "config": None if self.reloader is None else {
                "path": str(self.reloader.path), "error": self.reloader.last_error},
            "audio": None if self.audio is None else {
                "now_playing": _plain_paths(self.audio.now_playing()),
                "playlist": [str(p) for p in self.audio.playlist]},
        }

    def _library_numbers(self) -> dict:
        # Counting reads every loop's metadata file: done at most every few seconds, so
        # a client polling status never makes the socket wait on the disk.
        now = time.monotonic()
        if self._library_seen is None or now - self._library_seen[0] > 5.0:
            self._library_seen = (now, {"loops": len(self.library),
                                        "bytes": self.library.total_bytes()})
        return self._library_seen[1]

    def scene_set(self, params: list) -> dict:
        from lofid.scene import SceneSpec, parse
        if len(params) != 1:
            raise RpcError("scene.set takes one argument: a text, or a map of SceneSpec fields")
        what = params[0]
        if isinstance(what, str):
            spec = parse(what)
        elif isinstance(what, dict):
            try:
                spec = SceneSpec.from_dict(what)
            except ValueError as e:
                raise RpcError(f"scene.set: {e}") from None
        else:
            raise RpcError(f"scene.set takes a text or a map, got {type(what).__name__}")
        self.director.set_scene(spec)
        return {"scene": spec.label(), "id": spec.id}

    def audio_prompt(self, params: list) -> dict:
        """The prompt of a music track (lofi.nvim's generation_start): its scene."""
        from lofid.scene import parse
        if not params or not isinstance(params[0], str):
            raise RpcError("audio.prompt takes the track's prompt text (and an optional map)")
        spec = parse(params[0])
        self.director.set_scene(spec)
        return {"scene": spec.label(), "id": spec.id}

    def audio_track(self, params: list) -> dict:
        """A finished track (lofi.nvim's generation_complete): it plays next in the
        stream's audio, and its prompt's scene is shown."""
        import os
        if not params or not isinstance(params[0], str):
            raise RpcError("audio.track takes the path of an audio file (and an optional map)")
        path = params[0]
        opts = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
        if not os.path.isfile(path):
            raise RpcError(f"audio.track: {path!r} is not a file")
        if self.audio is None:
            raise RpcError("audio.track: this lofid has no audio track")
        try:
            self.audio.add(path, next=True)
        except ValueError as e:
            raise RpcError(f"audio.track: {e}") from None
        result = {"queued": path}
        if isinstance(opts.get("prompt"), str):
            result.update(self.audio_prompt([opts["prompt"]]))
        return result

    def next(self, params: list) -> bool:
        self.director.skip()
        return True

    def pause(self, params: list) -> bool:
        self.director.hold(True)
        return True

    def resume(self, params: list) -> bool:
        self.director.hold(False)
        return True

    def library_list(self, params: list) -> list:
        scene = params[0] if params else None
        if scene is not None and not isinstance(scene, str):
            raise RpcError("library.list takes an optional scene name")
        return [{"key": e["key"], "scene": e["spec"]["scene"], "spec": e["spec"],
                 "seed": e["seed"], "generator": e["generator"], "bytes": e["bytes"],
                 "seam_ratio": e["metrics"]["seam_ratio"]}
                for e in self.library.entries(scene=scene)]

    def generate(self, params: list) -> dict:
        """Make a loop of a scene into the library, in the background, without playing
        it; `loop_ready` (or `generation_failed`) says when it is done."""
        from lofid.scene import parse
        if not params or not isinstance(params[0], str):
            raise RpcError("generate takes a text (and an optional map with seed)")
        opts = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
        seed = opts.get("seed")
        if seed is not None and (type(seed) is not int or seed < 0):
            raise RpcError(f"generate: seed must be a whole number >= 0, got {seed!r}")
        spec = parse(params[0])
        threading.Thread(target=self.director.make_one, args=(spec, seed),
                         name="generate on request", daemon=True).start()
        return {"scene": spec.label(), "id": spec.id}

    def config_reload(self, params: list) -> dict:
        if self.reloader is None:
            raise RpcError("this lofid was started without a config file")
        return self.reloader.reload()

    def shutdown(self, params: list) -> bool:
        # Stopping closes outputs and waits for them: never on the socket's own thread.
        threading.Thread(target=self.player.stop, name="shutdown", daemon=True).start()
        return True


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
            except ConfigError as e:
                self.last_error = str(e)
                result = {"ok": False, "error": self.last_error, "changed": [],
                          "needs_restart": []}
                log.error("config not reloaded, the old one stays: %s", e)
            else:
                changed = [k for k in vars(new) if getattr(new, k) != getattr(self.current, k)]
                restart = self.apply(self.current, new) if changed else []
                self.current, self.last_error = new, None
                result = {"ok": True, "error": None, "changed": changed,
                          "needs_restart": restart}
                log.info("config reloaded: %s", ", ".join(changed) or "no change")
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

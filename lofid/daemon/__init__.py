"""What the control socket can do to a running `lofid run`.

The methods are thin: each reads the state of the director, player, outputs and
library, or hands a request to the director, and returns at once (they run on the
socket's event loop). What happens as a result comes back as events to subscribers.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time

from lofid import __version__
from lofid.rpc import RpcError

log = logging.getLogger("lofid")


def _plain_paths(d):
    return None if d is None else {k: str(v) if hasattr(v, "__fspath__") else v
                                   for k, v in d.items()}


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


_DAY = 86400.0   # the furthest ahead a track may start, and the longest it may last


def _seconds(method: str, opts: dict, name: str, low: float, high: float):
    """opts[name] as seconds in [low, high], or None when not given."""
    value = opts.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not low <= value <= high):
        raise RpcError(f"{method}: {name} must be a number of seconds from {low:g} to "
                       f"{high:g}, got {value!r}")
    return value


class Control:
    """The methods of the control socket; `outputs` is the daemon's OutputSet."""

    GENERATE_WAITING = 8     # `generate` requests queued behind the one being made

    def __init__(self, director, player, library, outputs, audio=None, reloader=None):
        self.director = director
        self.player = player
        self.library = library
        self.outputs = outputs
        self.audio = audio
        self.reloader = reloader
        self.started = time.monotonic()
        self._library_seen: tuple[float, dict] | None = None
        self._generating: queue.Queue | None = None   # requested loops, for one worker
        self._generating_lock = threading.Lock()
        if audio is not None:
            audio.on_sound = self._track_sounds

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
            "output.add": self.output_add,
            "output.remove": self.output_remove,
            "output.list": self.output_list,
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
            "outputs": self.outputs.describe(),
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
        # A loop in the library crosses in at once; the answer says what happens.
        return {"scene": spec.label(), "id": spec.id, **self.director.request(spec, "request")}

    def audio_prompt(self, params: list) -> dict:
        """The prompt of a music track: its scene, timed to the track's start when opts
        say when (`starts_in` seconds from now, or `start_at` unix time) and held while
        it plays (`duration_sec`). Times beyond a day are refused: a change due then
        would hold back every later prompt for the scene."""
        from lofid.scene import parse
        if not params or not isinstance(params[0], str) or len(params) > 2:
            raise RpcError("audio.prompt takes the track's prompt text (and an optional map)")
        opts = params[1] if len(params) > 1 else {}
        if not isinstance(opts, dict):
            raise RpcError(f"audio.prompt options must be a map, got {type(opts).__name__}")
        starts_in = _seconds("audio.prompt", opts, "starts_in", 0, _DAY)
        duration = _seconds("audio.prompt", opts, "duration_sec", 0, _DAY)
        start_at = opts.get("start_at")
        if starts_in is not None and start_at is not None:
            raise RpcError("audio.prompt: give starts_in or start_at, not both")
        if start_at is not None:
            now = time.time()
            if isinstance(start_at, bool) or not isinstance(start_at, (int, float)) \
                    or not abs(start_at - now) <= _DAY:
                raise RpcError(f"audio.prompt: start_at must be a unix time within a day of "
                               f"now ({now:.0f}), got {start_at!r}")
        when = None
        if starts_in is not None:
            when = time.monotonic() + starts_in
        elif start_at is not None:
            when = time.monotonic() + (start_at - time.time())
        spec = parse(params[0])
        return {"scene": spec.label(), "id": spec.id,
                **self.director.request(spec, "audio", start_at=when, hold=duration)}

    def audio_track(self, params: list) -> dict:
        """A finished track (lofi.nvim's generation_complete): it plays next in the
        stream's audio, and the picture moves to its prompt's scene when it begins to
        sound (see _track_sounds). A track already queued (same `track_id`, or the same
        file when none is given) is not queued again."""
        from lofid.audio import probe
        from lofid.scene import parse
        if not 1 <= len(params) <= 2 or not isinstance(params[0], str):
            raise RpcError("audio.track takes the path of an audio file (and an optional map "
                           "with prompt, track_id, duration_sec)")
        path = params[0]
        opts = params[1] if len(params) > 1 else {}
        if not isinstance(opts, dict):
            raise RpcError(f"audio.track options must be a map, got {type(opts).__name__}")
        for key in ("prompt", "track_id"):
            if opts.get(key) is not None and not isinstance(opts[key], str):
                raise RpcError(f"audio.track: {key} must be a text, got {opts[key]!r}")
        duration = _seconds("audio.track", opts, "duration_sec", 0, _DAY)
        if not os.path.isfile(path):
            raise RpcError(f"audio.track: {path!r} is not a file")
        if self.audio is None:
            raise RpcError("audio.track: this lofid has no audio track")
        key = opts.get("track_id") or os.path.realpath(path)
        result: dict = {"queued": path}
        if opts.get("track_id"):
            result["track_id"] = opts["track_id"]
        prompt = opts.get("prompt")
        if prompt:
            spec = parse(prompt)
            result.update({"scene": spec.label(), "id": spec.id})
        if self.audio.find("key", key) is not None:
            return {**result, "already_queued": True}
        try:
            # A text named .wav would otherwise be queued, and skipped only when its turn came.
            length = probe(path)
        except ValueError as e:
            raise RpcError(f"audio.track: {e}") from None
        info = {"key": key, "track_id": opts.get("track_id"), "prompt": prompt,
                "duration_sec": length if length is not None else duration}
        self.audio.add(path, next=True, info={k: v for k, v in info.items() if v is not None})
        return result

    def _track_sounds(self, info: dict) -> None:
        """A queued track began to sound in the stream: now its scene is wanted (held
        while it plays). Runs on the player's thread; the director answers at once."""
        from lofid.scene import parse
        if not info.get("prompt"):
            return
        self.director.request(parse(info["prompt"]), "audio", start_at=time.monotonic(),
                              hold=info.get("duration_sec"))

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
        it; `loop_ready` (or `generation_failed`) says when it is done. Requests are
        made one at a time, in order; past GENERATE_WAITING waiting, one is refused."""
        from lofid.scene import parse
        if not params or not isinstance(params[0], str):
            raise RpcError("generate takes a text (and an optional map with seed)")
        opts = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
        seed = opts.get("seed")
        if seed is not None and (type(seed) is not int or seed < 0):
            raise RpcError(f"generate: seed must be a whole number >= 0, got {seed!r}")
        spec = parse(params[0])
        with self._generating_lock:
            if self._generating is None:
                # One worker makes requested loops one after another: each takes memory
                # and a core (or the GPU) while it runs, so running many at once only
                # runs them all slower, and out of memory.
                self._generating = queue.Queue(maxsize=self.GENERATE_WAITING)
                threading.Thread(target=self._generate_requested, args=(self._generating,),
                                 name="generate on request", daemon=True).start()
            try:
                self._generating.put_nowait((spec, seed))
            except queue.Full:
                raise RpcError(f"generate: {self.GENERATE_WAITING} requests are already "
                               f"waiting, the most lofid queues; ask again once a loop_ready "
                               f"or generation_failed event says one is done") from None
        return {"scene": spec.label(), "id": spec.id}

    def _generate_requested(self, requests: "queue.Queue") -> None:
        while True:
            spec, seed = requests.get()
            self.director.make_one(spec, seed)     # reports its own failures as events

    def config_reload(self, params: list) -> dict:
        if self.reloader is None:
            raise RpcError("this lofid was started without a config file")
        return self.reloader.reload()

    def output_add(self, params: list) -> dict:
        """Start one more output (a target as `lofid run -o` takes) while the others
        play on; output_changed events follow its states."""
        from lofid.outputs.base import OutputError
        if not 1 <= len(params) <= 2 or not isinstance(params[0], str):
            raise RpcError("output.add takes a target (a file, udp://, tcp://...?listen, "
                           "rtmp://..., window or null) and an optional map of options")
        target = params[0]
        if not is_live(target) and target.strip() != "null" and "://" not in target \
                and not os.path.isabs(os.path.expanduser(target.strip())):
            # Relative to what? The daemon's folder is not the client's.
            raise RpcError(f"output.add: {target!r} is a relative path; expected an "
                           f"absolute one (lofid's working folder is not yours)")
        try:
            out = self.outputs.add(target, params[1] if len(params) > 1 else None)
        except OutputError as e:
            raise RpcError(f"output.add: {e}") from None
        return {"name": out.name, "target": params[0], "state": out.state}

    def output_remove(self, params: list) -> dict:
        """Stop one output; a file is finalised (output_changed says `closed`)."""
        if len(params) != 1 or not isinstance(params[0], str):
            raise RpcError("output.remove takes the name of an output (see output.list)")
        try:
            out = self.outputs.remove(params[0])
        except KeyError as e:
            raise RpcError(f"output.remove: {e.args[0]}") from None
        return {"name": out.name, "state": "closing"}

    def output_list(self, params: list) -> list:
        return self.outputs.describe()

    def shutdown(self, params: list) -> bool:
        # Stopping closes outputs and waits for them: never on the socket's own thread.
        threading.Thread(target=self.player.stop, name="shutdown", daemon=True).start()
        return True


# Old import paths: these moved to modules of their own.
from lofid.daemon.config_watch import ConfigReloader  # noqa: E402,F401
from lofid.daemon.systemd import SystemdNotifier  # noqa: E402,F401

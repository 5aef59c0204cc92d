"""What the control socket can do to a running `lofid run`: its methods, and one
description of each method's params, from which every request is checked and its
error reply made (naming the param that is wrong).

The methods are thin: each reads the state of the director, player, outputs and
library, or hands a request to the director, and returns at once (they run on the
socket's event loop). What happens as a result comes back as events to subscribers.
`subscribe`, `unsubscribe` and `auth` belong to the server itself (server.py).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from lofid import __version__
from lofid.control.protocol import RpcError

DAY = 86400.0   # the furthest ahead a track may start, and the longest it may last

# kind -> (the Python types it takes, its words in a message). A bool is never a number.
KINDS = {
    "text": ((str,), "a text"),
    "map": ((dict,), "a map"),
    "text or map": ((str, dict), "a text or a map"),
    "whole number": ((int,), "a whole number"),
    "number": ((int, float), "a number"),
    "yes or no": ((bool,), "true or false"),
}


@dataclass(frozen=True)
class Param:
    """One param of a method (or one key of a map param)."""
    name: str
    kind: str                        # a key of KINDS
    required: bool = True            # optional ones may be left out, or given as nil
    low: float | None = None         # the range a number must be in
    high: float | None = None
    unit: str = ""                   # "seconds": said in the message
    about: str = ""                  # what it is, for the usage text
    # For a map: the keys it may hold, each checked (other keys are ignored). None:
    # the map goes through as it is, for the receiver to check.
    keys: tuple["Param", ...] | None = None

    def words(self) -> str:
        """What a value must be, as a message says it."""
        types, words = KINDS[self.kind]
        if self.unit:
            words += f" of {self.unit}"
        if self.low is not None and self.high is not None:
            words += f" from {self.low:g} to {self.high:g}"
        elif self.low is not None:
            words += f" >= {self.low:g}"
        elif self.high is not None:
            words += f" <= {self.high:g}"
        return words

    def check(self, method: str, value):
        """`value` if it is one of this param's; else an RpcError naming the param."""
        types, _ = KINDS[self.kind]
        if isinstance(value, bool) != (self.kind == "yes or no") or not isinstance(value, types) \
                or (self.low is not None and not value >= self.low) \
                or (self.high is not None and not value <= self.high):   # NaN is neither
            raise RpcError(f"{method}: {self.name} must be {self.words()}, got {value!r}")
        if self.keys is None:
            return value
        return {key.name: key.check_optional(method, value.get(key.name)) for key in self.keys}

    def check_optional(self, method: str, value):
        return None if value is None and not self.required else self.check(method, value)

    def usage(self) -> str:
        text = f"{self.name} ({self.about or KINDS[self.kind][1]}"
        if self.keys:
            text += ": " + ", ".join(k.name for k in self.keys)
        text += ")"
        return text if self.required else f"optional {text}"


@dataclass(frozen=True)
class Method:
    name: str
    params: tuple[Param, ...] = ()

    def usage(self) -> str:
        if not self.params:
            return "no params"
        return " and ".join(p.usage() for p in self.params)

    def check(self, params: list) -> list:
        """The values of `params` in order, an optional one left out as None; an
        RpcError naming what is wrong when they do not fit."""
        required = sum(1 for p in self.params if p.required)
        if not required <= len(params) <= len(self.params):
            got = f"got {len(params)}" if params else "got none"
            raise RpcError(f"{self.name} takes {self.usage()}; {got}")
        values = list(params) + [None] * (len(self.params) - len(params))
        return [p.check_optional(self.name, v) for p, v in zip(self.params, values)]


def _seconds(name: str) -> Param:
    return Param(name, "number", required=False, low=0, high=DAY, unit="seconds")


# The socket API: every method, with its params. The single place they are described.
METHODS = {m.name: m for m in (
    Method("status"),
    Method("scene.set", (Param("scene", "text or map", about="a text, or a map of scene fields"),)),
    Method("audio.prompt", (
        Param("prompt", "text", about="the track's prompt text"),
        Param("options", "map", required=False, keys=(
            _seconds("starts_in"),
            Param("start_at", "number", required=False, about="unix time, within a day of now"),
            _seconds("duration_sec"))))),
    Method("audio.track", (
        Param("path", "text", about="the path of an audio file"),
        Param("options", "map", required=False, keys=(
            Param("prompt", "text", required=False),
            Param("track_id", "text", required=False),
            _seconds("duration_sec"))))),
    Method("next"),
    Method("pause"),
    Method("resume"),
    Method("library.list", (Param("scene", "text", required=False, about="a scene name"),)),
    Method("library.add", (
        Param("path", "text", about="an absolute path: a video, a GIF, or a folder or "
                                    "pattern of PNG frames"),
        Param("prompt", "text", about="what it shows, in words"),
        Param("options", "map", required=False, keys=(
            Param("fps", "number", required=False, low=1, high=60,
                  about="its frame rate (PNG frames need one)"),
            Param("play_now", "yes or no", required=False),
            Param("made_by", "text", required=False, about="a short name: file, comfyui"))))),
    Method("loop.play", (Param("key", "text", about="a loop's key, see library.list"),)),
    Method("generate", (
        Param("scene", "text", about="a scene in words"),
        Param("options", "map", required=False, keys=(
            Param("seed", "whole number", required=False, low=0),)))),
    Method("config.reload"),
    Method("shutdown"),
    Method("output.add", (
        Param("target", "text", about="a file, udp://, tcp://...?listen, rtmp://..., "
                                      "window or null"),
        Param("options", "map", required=False, about="fullscreen, borderless"))),
    Method("output.remove", (Param("name", "text", about="an output's name, see output.list"),)),
    Method("output.list"),
    Method("overlay.set", (Param("layer", "map", about="an [[overlay]] table: kind, name, text, "
                                                      "position, font, size, colour ...; "
                                                      "now = true to show it at once"),)),
    Method("overlay.clear", (Param("name", "text", required=False, about="a layer's name; "
                                                                        "none: every layer"),
                             Param("options", "map", required=False, about="now"))),
    Method("overlay.list"),
)}


def _plain_paths(d):
    return None if d is None else {k: str(v) if hasattr(v, "__fspath__") else v
                                   for k, v in d.items()}


class Control:
    """The methods of the control socket; `outputs` is the daemon's OutputSet. Each
    method of METHODS is the one named like it (scene.set: scene_set), called with its
    params checked."""

    GENERATE_WAITING = 8     # `generate` requests queued behind the one being made

    def __init__(self, director, player, library, outputs, audio=None, reloader=None,
                 remote=None, overlays=None):
        self.director = director
        self.remote = remote     # () -> the Ray cluster's state, for generator "ray"
        self.player = player
        self.library = library
        self.outputs = outputs
        self.audio = audio
        self.reloader = reloader
        self.overlays = overlays
        self.started = time.monotonic()
        self._library_seen: tuple[float, dict] | None = None
        self._generating: queue.Queue | None = None   # requested loops, for one worker
        self._generating_lock = threading.Lock()
        self._adding: queue.Queue | None = None      # files to add, for one worker
        if audio is not None:
            audio.on_sound = self._track_sounds

    def handlers(self) -> dict:
        """Method name -> callable(params), for the server."""
        def handler(method: Method):
            function = getattr(self, method.name.replace(".", "_"))
            return lambda params: function(*method.check(params))
        return {name: handler(method) for name, method in METHODS.items()}

    def status(self) -> dict:
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
            "generator": {"ready": len(d.ready_keys()), "failures": d.failures,
                          "generating": d.settings.generate,
                          **({"cluster": self.remote()} if self.remote else {})},
            "library": self._library_numbers(),
            "config": None if self.reloader is None else {
                "path": str(self.reloader.path), "error": self.reloader.last_error},
            # The schedule's current and next entry, the clock's time of day.
            "day": d.day(),
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

    def scene_set(self, what) -> dict:
        from lofid.scene import SceneSpec, parse
        if isinstance(what, str):
            spec = parse(what)
        else:
            try:
                spec = SceneSpec.from_dict(what)
            except ValueError as e:
                raise RpcError(f"scene.set: {e}") from None
        # A loop in the library crosses in at once; the answer says what happens.
        return {"scene": spec.label(), "id": spec.id, **self.director.request(spec, "request")}

    def audio_prompt(self, prompt: str, opts: dict | None) -> dict:
        """The prompt of a music track: its scene, timed to the track's start when opts
        say when (`starts_in` seconds from now, or `start_at` unix time) and held while
        it plays (`duration_sec`). Times beyond a day are refused: a change due then
        would hold back every later prompt for the scene."""
        from lofid.scene import parse
        opts = opts or {}
        starts_in, start_at = opts.get("starts_in"), opts.get("start_at")
        if starts_in is not None and start_at is not None:
            raise RpcError("audio.prompt: give starts_in or start_at, not both")
        when = None
        if starts_in is not None:
            when = time.monotonic() + starts_in
        elif start_at is not None:
            now = time.time()
            if not abs(start_at - now) <= DAY:
                raise RpcError(f"audio.prompt: start_at must be a unix time within a day of "
                               f"now ({now:.0f}), got {start_at!r}")
            when = time.monotonic() + (start_at - now)
        spec = parse(prompt)
        return {"scene": spec.label(), "id": spec.id,
                **self.director.request(spec, "audio", start_at=when,
                                        hold=opts.get("duration_sec"))}

    def audio_track(self, path: str, opts: dict | None) -> dict:
        """A finished track (lofi.nvim's generation_complete): it plays next in the
        stream's audio, and the picture moves to its prompt's scene when it begins to
        sound (see _track_sounds). A track already queued (same `track_id`, or the same
        file when none is given) is not queued again."""
        from lofid.audio import probe
        from lofid.scene import parse
        opts = opts or {}
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
                "duration_sec": length if length is not None else opts.get("duration_sec")}
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

    def next(self) -> bool:
        self.director.skip()
        return True

    def pause(self) -> bool:
        self.director.hold(True)
        return True

    def resume(self) -> bool:
        self.director.hold(False)
        return True

    def library_list(self, scene: str | None) -> list:
        return [{"key": e["key"], "scene": e["spec"]["scene"], "spec": e["spec"],
                 "seed": e["seed"], "generator": e["generator"], "bytes": e["bytes"],
                 "seam_ratio": e["metrics"]["seam_ratio"]}
                for e in self.library.entries(scene=scene)]

    ADD_WAITING = 4          # `library.add` requests queued behind the one being read

    def library_add(self, path: str, prompt: str, opts: dict | None) -> Future:
        """Read a loop made elsewhere from its file (lofid.loop_file: decoded, checked,
        its metrics computed, its scene parsed from `prompt`), keep it in the library
        and, with play_now, cross to it at once. Reading takes seconds: done by one
        worker, in order, and answered when done (the socket serves others meanwhile);
        a file that is not a loop is an error reply naming what is wrong."""
        if not os.path.isabs(os.path.expanduser(path)):
            raise RpcError(f"library.add: {path!r} is a relative path; expected an absolute "
                           f"one (lofid's working folder is not yours)")
        future: Future = Future()
        # One at a time: each holds a whole loop's frames in memory while read.
        self._enqueue("_adding", self.ADD_WAITING, self._add_requested, "library add",
                      (future, os.path.expanduser(path), prompt, opts or {}),
                      f"library.add: {self.ADD_WAITING} files are already waiting to be "
                      f"read; ask again once one is answered")
        return future

    def _enqueue(self, attr: str, waiting: int, worker, name: str, item, full: str) -> None:
        """`item` onto the queue kept in `attr`, made with its one `worker` thread on
        first use; RpcError `full` when `waiting` items already wait."""
        with self._generating_lock:
            requests = getattr(self, attr)
            if requests is None:
                requests = queue.Queue(maxsize=waiting)
                setattr(self, attr, requests)
                threading.Thread(target=worker, args=(requests,), name=name,
                                 daemon=True).start()
            try:
                requests.put_nowait(item)
            except queue.Full:
                raise RpcError(full) from None

    def _add_requested(self, requests: "queue.Queue") -> None:
        while True:
            future, path, prompt, opts = requests.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(self._add(path, prompt, opts))
            except BaseException as e:      # an answer, whatever happened: never a dead worker
                future.set_exception(e)

    def _add(self, path: str, prompt: str, opts: dict) -> dict:
        from lofid.loop_file import LoopFileError, read_loop
        try:
            loop = read_loop(path, prompt, fps=opts.get("fps"),
                             made_by=opts.get("made_by") or "file")
        except LoopFileError as e:
            raise RpcError(f"library.add: {e}") from None
        key = self.library.put(loop)
        spec = loop.spec
        result = {"loop": key, "scene": spec.label(), "id": spec.id, "frames": loop.n_frames,
                  "size": [loop.width, loop.height], "fps": loop.fps,
                  "metrics": {k: (None if v == float("inf") else v)
                              for k, v in loop.metrics.items()}}
        if opts.get("play_now"):
            result["play"] = self.loop_play(key)
        return result
    def loop_play(self, key: str) -> dict:
        """Cross to one stored loop (as a scene request: at once, live)."""
        from lofid.scene import SceneSpec
        try:
            spec = SceneSpec.from_dict(self.library.meta(key)["spec"])
        except (KeyError, ValueError):
            raise RpcError(f"loop.play: no loop {key!r} in the library") from None
        return {"scene": spec.label(), "id": spec.id, "loop": key,
                **self.director.request(spec, "request", key=key)}

    def generate(self, text: str, opts: dict | None) -> dict:
        """Make a loop of a scene into the library, in the background, without playing
        it; `loop_ready` (or `generation_failed`) says when it is done. Requests are
        made one at a time, in order; past GENERATE_WAITING waiting, one is refused."""
        from lofid.scene import parse
        seed = (opts or {}).get("seed")
        spec = parse(text)
        # One worker makes requested loops one after another: each takes memory and a
        # core (or the GPU) while it runs, so running many at once only runs them all
        # slower, and out of memory.
        self._enqueue("_generating", self.GENERATE_WAITING, self._generate_requested,
                      "generate on request", (spec, seed),
                      f"generate: {self.GENERATE_WAITING} requests are already waiting, the "
                      f"most lofid queues; ask again once a loop_ready or generation_failed "
                      f"event says one is done")
        return {"scene": spec.label(), "id": spec.id}

    def _generate_requested(self, requests: "queue.Queue") -> None:
        while True:
            spec, seed = requests.get()
            self.director.make_one(spec, seed)     # reports its own failures as events

    def config_reload(self) -> dict:
        if self.reloader is None:
            raise RpcError("this lofid was started without a config file")
        return self.reloader.reload()

    def output_add(self, target: str, opts: dict | None) -> dict:
        """Start one more output (a target as `lofid run -o` takes) while the others
        play on; output_changed events follow its states."""
        from lofid.player.router import is_live
        from lofid.outputs.base import OutputError
        if not is_live(target) and target.strip() != "null" and "://" not in target \
                and not os.path.isabs(os.path.expanduser(target.strip())):
            # Relative to what? The daemon's folder is not the client's.
            raise RpcError(f"output.add: {target!r} is a relative path; expected an "
                           f"absolute one (lofid's working folder is not yours)")
        try:
            out = self.outputs.add(target, opts)
        except OutputError as e:
            raise RpcError(f"output.add: {e}") from None
        return {"name": out.name, "target": target, "state": out.state}

    def output_remove(self, name: str) -> dict:
        """Stop one output; a file is finalised (output_changed says `closed`)."""
        try:
            out = self.outputs.remove(name)
        except KeyError as e:
            raise RpcError(f"output.remove: {e.args[0]}") from None
        return {"name": out.name, "state": "closing"}

    def output_list(self) -> list:
        return self.outputs.describe()

    # --- overlays: text over the picture (lofid.overlays) ----------------------------

    def _overlay_board(self, method: str):
        if self.overlays is None:
            raise RpcError(f"{method}: this lofid has no overlays")
        return self.overlays

    @staticmethod
    def _now(method: str, value) -> bool:
        if value is None:
            return False
        if not isinstance(value, bool):
            raise RpcError(f"{method}: now must be true or false, got {value!r}")
        return value

    def overlay_set(self, layer: dict) -> dict:
        """Add a layer or change one (by name; keys not given stay): shown from the next
        repetition, or with now = true at once, fading in on a live segment."""
        from lofid.overlays import OverlayError
        board = self._overlay_board("overlay.set")
        table = dict(layer)
        now = self._now("overlay.set", table.pop("now", None))
        try:
            made = board.set(table, now=now)
        except OverlayError as e:
            raise RpcError(f"overlay.set: {e}") from None
        return {"name": made.name, "kind": made.kind, "now": now}

    def overlay_clear(self, name: str | None, opts: dict | None) -> dict:
        from lofid.overlays import OverlayError
        board = self._overlay_board("overlay.clear")
        now = self._now("overlay.clear", (opts or {}).get("now"))
        try:
            return {"cleared": board.clear(name, now=now), "now": now}
        except OverlayError as e:
            raise RpcError(f"overlay.clear: {e}") from None

    def overlay_list(self) -> list:
        return self._overlay_board("overlay.list").describe()

    def shutdown(self) -> bool:
        # Stopping closes outputs and waits for them: never on the socket's own thread.
        threading.Thread(target=self.player.stop, name="shutdown", daemon=True).start()
        return True

"""The running lofid: a Daemon owns the library, director, audio, player, outputs,
control socket, config watch and systemd notifier, and opens and closes them in one
fixed order.

    daemon = Daemon(cfg, maker)
    daemon.run()            # startup, play until stopped (or duration), shutdown

startup() opens, in order: library, outputs, director, audio track, player, config
watch, control socket, web page, notifier. If one step fails, shutdown() closes whatever was
opened before it, and the error goes on. run() starts the signal handling
(lofid.stopping: a first SIGINT/SIGTERM stops within a timeout, a second forces),
plays, and always ends in shutdown(). stop() asks for that from any thread: it sets
`should_exit` (forcing is lofid.stopping's, like uvicorn's force_exit).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

from lofid.errors import UserError
from lofid.settings.run import LIVE_KEYS
from lofid.stopping import SignalStop


@dataclass
class LoopMaker:
    """How this daemon makes loops: the generator (by name), its generate(), and the
    shape of a loop. `auto`: the generator was picked for the user (says so at start)."""

    name: str
    generate: Callable
    size: tuple[int, int]
    frames: int
    auto: bool = False


def _say(message: str) -> None:
    print(f"lofid: {message}", file=sys.stderr)


class Daemon:
    """One `lofid run`. `cfg` is the loaded RunConfig; `config_path` and `overrides`
    (the flags over it) let the config file be followed while it runs."""

    # The keys a reloaded config changes while playing (the options marked live); the
    # others need a restart.
    LIVE_KEYS = LIVE_KEYS

    def __init__(self, cfg, maker: LoopMaker, *, config_path: str | Path | None = None,
                 overrides: dict | None = None, stop_timeout: float | None = None,
                 wall_clock: Callable[[], float] | None = None):
        self.cfg = cfg
        # The wall clock the schedule and time_of_day follow (a test moves it).
        self.wall_clock = wall_clock or time.time
        self.maker = maker
        self.config_path = config_path
        self.overrides = dict(overrides or {})
        self.stop_timeout = cfg.stop_timeout if stop_timeout is None else stop_timeout
        self.should_exit = threading.Event()
        self.library = None
        self.outputs = None              # the OutputSet
        self.director = None
        self.audio = None
        self.overlays = None             # text over the picture (lofid.overlays)
        self._entry_overlays: list = []  # the layers of the schedule entry that holds
        self._config_overlays = list(cfg.overlay)
        self.player = None
        self.reloader = None
        self.server = None               # the control socket, when asked for
        self.control = None              # the control methods (socket and web page)
        self.web = None                  # the web page's server, when asked for
        self.notifier = None
        self.signals: SignalStop | None = None
        self._started_outputs: list = []   # opened; the player closes them once it runs
        self._played = False
        self._previous_hup = None
        self._shut = False

    # --- startup -------------------------------------------------------------------

    def startup(self) -> None:
        """Open everything, in order. Raises UserError naming what the user gave that
        cannot work, after closing whatever was already open."""
        try:
            self._startup()
        except BaseException:
            self.shutdown()
            raise

    def _startup(self) -> None:
        from lofid.audio import AudioTrack
        from lofid.settings import byte_size_of, loop_fps_for, size_of
        from lofid.player.router import OutputSet, is_live
        from lofid.director import Director, DirectorSettings
        from lofid.library import Library, LibraryError
        from lofid.player import Player, PlayerSettings
        from lofid.scene import parse
        from lofid.schedule import Schedule, zone_of
        from lofid.settings import seconds_of

        cfg, maker = self.cfg, self.maker
        size = size_of(cfg.size)
        try:
            self.library = Library(cfg.library, max_bytes=byte_size_of(cfg.library_max_size))
        except LibraryError as e:
            raise UserError(f"library: {e}") from None
        targets = cfg.outputs
        if not targets and cfg.web is None:
            if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
                targets = ["window"]
            else:
                raise UserError("no output given and no display for a window: choose one or "
                                "more with --output (a file such as stream.mp4, "
                                "udp://127.0.0.1:5000, tcp://127.0.0.1:5000?listen, "
                                "rtmp://..., window or null)")

        logging.basicConfig(level=logging.INFO, format="lofid: %(message)s", stream=sys.stderr)
        # One bad output does not stop the others: it is reported and left out.
        network = {} if cfg.max_session is None else \
            {"max_session": seconds_of(cfg.max_session, "max_session")}
        self.outputs = OutputSet(dict(fullscreen=cfg.fullscreen, borderless=cfg.borderless,
                                      close_stops=cfg.close_stops, **network),
                                 self._output_changed)
        self.outputs.stop_when_all_failed = cfg.socket is None and cfg.control_tcp is None
        self._started_outputs = self.outputs.open(targets)
        if cfg.web is not None:
            from lofid.web.stream import WebStream
            self._started_outputs.append(WebStream(on_state=self._output_changed))
        if not self._started_outputs:
            raise UserError("no output can run")

        realtime = cfg.realtime or any(is_live(t) for t in targets) or cfg.web is not None
        self.outputs.realtime = realtime
        _say(f"generator {maker.name}" + (" (auto)" if maker.auto else ""))
        # A generator with a connection of its own (ray) connects in the background:
        # the picture never waits on it.
        if callable(getattr(maker.generate, "start", None)):
            maker.generate.start()
        self.director = Director(
            self.library, parse(cfg.scene),
            DirectorSettings(loop_size=maker.size, frames=maker.frames,
                             fps=cfg.loop_fps or loop_fps_for(cfg.fps), rotate=cfg.rotate,
                             generate=cfg.generate, generator=maker.name,
                             max_seam_ratio=cfg.max_seam_ratio,
                             wait_for_next=0.0 if realtime else 300.0,
                             live=cfg.live_crossfade, min_scene=cfg.min_scene,
                             history=cfg.scene_history, standby=cfg.standby_scenes,
                             follow_time=cfg.time_of_day == "follow",
                             zone=zone_of(cfg.timezone, "timezone")),
            generate=maker.generate, on_event=self._event, wall_clock=self.wall_clock,
            schedule=Schedule.from_config(cfg.schedule, cfg.timezone),
            on_schedule=self._schedule_entry)
        self.audio = AudioTrack(cfg.audio)
        settings = PlayerSettings(fps=Fraction(cfg.fps), size=size, crossfade=cfg.crossfade,
                                  fit=cfg.fit, bitrate=cfg.bitrate * 1000,
                                  duration=cfg.duration, realtime=realtime)
        from lofid.overlays import OverlayError, parse_layers
        from lofid.overlays.board import Overlays
        try:
            self.overlays = Overlays(parse_layers(cfg.overlay), size, audio=self.audio)
        except OverlayError as e:
            raise UserError(str(e)) from None
        if self._entry_overlays:            # the entry that holds at start has layers
            self._show_overlays(self._config_overlays)
        self.player = Player(self.director, self._started_outputs, self.audio, settings,
                             on_event=self._event, overlays=self.overlays)
        self.outputs.player = self.player
        player = self.player
        self.director.attach_clock(lambda: player.seconds)

        if self.config_path is not None:
            from lofid.daemon.config_watch import ConfigReloader
            self.reloader = ConfigReloader(self.config_path, cfg, self.overrides,
                                           self._apply_config, on_event=self._event)
            self.reloader.start()
        if cfg.socket is not None or cfg.control_tcp is not None or cfg.web is not None:
            from lofid.control.api import Control
            self.control = Control(self.director, self.player, self.library, self.outputs,
                                   self.audio, self.reloader,
                                   remote=getattr(self.maker.generate, "state", None),
                                   overlays=self.overlays)
        if cfg.socket is not None or cfg.control_tcp is not None:
            self._open_control()
        if cfg.web is not None:
            self._open_web()

        from lofid.daemon.systemd import SystemdNotifier
        director = self.director
        self.notifier = SystemdNotifier(
            player, describe=lambda: f"{director.spec.label()}, {player.seconds:.0f} s out "
                                     f"to {len(player.outputs)} output(s)")

    def _open_control(self) -> None:
        from lofid.settings import ConfigError, address_of, read_token
        from lofid.control.server import Server, SocketError, default_socket_path
        cfg = self.cfg
        try:
            tcp = address_of(cfg.control_tcp) if cfg.control_tcp is not None else None
            token = read_token(cfg.control_token_file) if tcp is not None else None
            server = Server(None if cfg.socket is None else cfg.socket or default_socket_path(),
                            self.control.handlers(),
                            tcp=tcp, token=token)
            server.start()
        except (SocketError, ConfigError) as e:
            raise UserError(str(e)) from None
        self.server = server
        if server.path is not None:
            _say(f"control socket {server.path}")
        if server.tcp_address is not None:
            host, port = server.tcp_address
            _say(f"control on TCP {host}:{port} (token required)")
            if host not in ("127.0.0.1", "::1", "localhost"):
                _say("warning: control over TCP is clear text; beyond this machine, "
                     "tunnel it (ssh -L)")

    def _open_web(self) -> None:
        from lofid.scene import SCENES
        from lofid.settings import ConfigError, read_token
        from lofid.settings.values import web_address_of
        from lofid.web.server import WebServer, make_token
        from lofid.web.thumbs import Thumbnails
        cfg = self.cfg
        try:
            address = web_address_of(cfg.web)
            # A token file: the page asks for it. None (127.0.0.1 only, see
            # lofid.settings.run.validate): a token of this run's, in the page it serves.
            token = read_token(cfg.control_token_file) if cfg.control_token_file else None
        except ConfigError as e:
            raise UserError(str(e)) from None
        stream = next(o for o in self._started_outputs if o.name == "web")
        audio = self.audio
        self.web = WebServer(address, self.control.handlers(), stream, Thumbnails(self.library),
                             token or make_token(), embed=token is None, scenes=SCENES,
                             now_playing=audio.now_playing)
        self.web.start()
        host, port = address
        _say(f"web page http://{'[' + host + ']' if ':' in host else host}:{self.web.port}/")

    # --- run -------------------------------------------------------------------------

    def run(self, handle_signals: bool = True) -> int:
        """Start (unless started), play until stopped or the duration is out, shut
        down. The exit code: 0, or 1 when every output failed. `handle_signals`
        (main thread only) makes SIGINT/SIGTERM stop it and SIGHUP reload the config."""
        from lofid.director import NothingToPlay
        if self.player is None:
            self.startup()
        start_frame = self.player.settings.start_frame
        t0 = time.monotonic()
        try:
            if handle_signals:
                self._handle_signals()
            self.notifier.start()
            self._played = True
            self.player.run()
        except NothingToPlay as e:
            raise UserError(str(e)) from None
        finally:
            self.shutdown()
        player = self.player
        seconds = (player.frame - start_frame) / self.cfg.fps
        print(f"played {seconds:.1f} s ({player.frame - start_frame} frames) in "
              f"{time.monotonic() - t0:.1f} s to {', '.join(o.name for o in player.outputs)}")
        failed = self.outputs.all_failed()
        if failed:
            _say("error: every output failed: "
                 + "; ".join(f"{name}: {error}" for name, error in failed))
            return 1
        return 0

    def _handle_signals(self) -> None:
        # The first Ctrl-C (or SIGTERM) stops cleanly: files are finalised, within a
        # stop timeout whatever any thread is doing. A second forces (lofid.stopping).
        player = self.player
        self.signals = SignalStop(self.stop, lambda: player.outputs, timeout=self.stop_timeout)
        self.signals.start()
        # SIGHUP reloads the config (systemctl --user reload lofid); never the default,
        # which would end the daemon.
        self._previous_hup = signal.signal(signal.SIGHUP, self._sighup)

    def _sighup(self, signum, frame) -> None:
        if self.reloader is not None:
            threading.Thread(target=self.reloader.reload, name="reload", daemon=True).start()
        else:
            _say("SIGHUP: no config file to reload")

    def stop(self) -> None:
        """Ask the daemon to stop; returns at once (run() returns once it has)."""
        self.should_exit.set()
        if self.player is not None:
            self.player.stop()
        if self.director is not None:
            self.director.stop(timeout=0)       # its worker's waits end at once too

    # --- shutdown --------------------------------------------------------------------

    def shutdown(self) -> None:
        """Close what is open, in order: config watch, notifier, director, audio,
        web page, control socket, signal handling, and outputs the player never ran (the player
        closes its own). Safe to call more than once."""
        if self._shut:
            return
        self._shut = True
        self.should_exit.set()
        for part in (self.reloader, self.notifier):
            if part is not None:
                part.stop()
        if self.director is not None:
            # Stopped by a signal, a loop still being made is not waited for (the
            # library's writes are atomic).
            self.director.stop(timeout=1.0 if self.signals and self.signals.signals else 30.0)
        # What was never made (a failed start) is None; a local generator has no stop.
        ends = (getattr(self.maker.generate, "stop", None),
                self.audio and self.audio.close, self.web and self.web.stop,
                self.server and self.server.stop)
        for end in ends:
            if callable(end):
                end()
        if self._previous_hup is not None:
            signal.signal(signal.SIGHUP, self._previous_hup)
        if self.signals is not None:
            self.signals.done()
            self.signals.close()
        if not self._played:
            for out in self._started_outputs:
                out.close(timeout=2)

    # --- what happens while playing ----------------------------------------------------

    def _output_changed(self, name: str, state: str, detail: str | None) -> None:
        _say(f"output {name}: {state}" + (f" ({detail})" if detail else ""))
        if self.server is not None:
            self.server.notify("output_changed", {"output": name, "state": state,
                                                  "detail": detail})
        if self.web is not None:
            self.web.notify("output_changed", {"output": name, "state": state,
                                               "detail": detail})
        # The user closed the window (one removed over the socket is not playing).
        if name == "window" and state == "closed" and self.cfg.close_stops \
                and self.player is not None and self.outputs.is_playing(name):
            self.player.stop()

    def _event(self, name: str, payload: dict) -> None:
        if name in ("scene_changed", "crossfade", "generation_failed", "player_error",
                    "config_reloaded"):
            _say(f"{name.replace('_', ' ')}: " + ", ".join(f"{k} {v}" for k, v in payload.items()))
        if self.server is not None:
            self.server.notify(name, payload)
        if self.web is not None:
            self.web.notify(name, payload)

    def _show_overlays(self, config_layers: list) -> None:
        """The config's layers with the current schedule entry's over them (an entry's
        layer replaces the config's of the same name)."""
        from lofid.overlays import OverlayError

        def name(table):
            return table.get("name") or table.get("kind") if isinstance(table, dict) else None
        mine = {name(t) for t in self._entry_overlays}
        tables = [t for t in config_layers if name(t) not in mine] + self._entry_overlays
        try:
            self.overlays.replace(tables)
        except OverlayError as e:   # e.g. an entry's text too wide for this size
            _say(f"overlays: {e}; the layers before stay")

    def _schedule_entry(self, entry) -> None:
        """A schedule entry began: its overlay layers show (over the config's), and its
        music, when it names some, plays next."""
        self._entry_overlays = list(entry.overlays or [])
        if self.overlays is not None:       # else shown once the overlays are made
            self._show_overlays(self._config_overlays)
        if entry.audio is None or self.audio is None:
            return

        def switch(audio=self.audio):
            try:
                audio.replace(entry.audio)
            except ValueError as e:
                _say(f"schedule {entry.time}: audio {entry.audio!r}: {e}")
        # Listing a folder takes the disk's time, not the player's.
        threading.Thread(target=switch, name="schedule audio", daemon=True).start()

    def _apply_config(self, old, new) -> list[str]:
        """What a new config can change while playing; returns the keys that need a
        restart."""
        from lofid.scene import parse
        director = self.director
        if new.scene != old.scene:
            director.set_scene(parse(new.scene))
        if (new.schedule, new.timezone) != (old.schedule, old.timezone):
            from lofid.schedule import Schedule
            director.set_schedule(Schedule.from_config(new.schedule, new.timezone))
        if (new.time_of_day, new.timezone) != (old.time_of_day, old.timezone):
            from lofid.schedule import zone_of
            director.follow_clock(new.time_of_day == "follow", zone_of(new.timezone, "timezone"))
        director.settings.rotate = new.rotate
        director.settings.max_seam_ratio = new.max_seam_ratio
        director.settings.live = new.live_crossfade
        director.settings.min_scene = new.min_scene
        self.player.settings.crossfade = new.crossfade
        for source in new.audio:
            if source not in old.audio:
                try:
                    self.audio.add(source)
                except ValueError as e:
                    _say(f"audio {source!r}: {e}")
        if new.outputs != old.outputs:
            self.outputs.follow_config(old.outputs, new.outputs)
        if new.overlay != old.overlay:
            self._config_overlays = list(new.overlay)
            self._show_overlays(self._config_overlays)
        return [k for k in vars(new) if getattr(new, k) != getattr(old, k)
                and k not in self.LIVE_KEYS]

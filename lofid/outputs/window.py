"""The desktop window: the player's encoded stream, shown by an mpv child process.

Why mpv and not a Python window library: the player already makes one H.264 + AAC
stream for every packet output, so the window only has to mux those packets into
MPEG-TS and pipe them to mpv. Decoding, scaling to the window and presenting happen
in mpv (on the GPU where there is one: hardware decoding and a GPU video output),
and the audio plays in step with the picture. A per-frame numpy blit of 1920x1080
RGB from Python (a copy, a colour conversion and a scale on the CPU, 30 times a
second, holding the interpreter) would cost the player's own thread far more than
the whole stream does. Here the parent's work is one mux call per packet.

mpv runs in a session of its own: Ctrl-C in the terminal reaches the daemon, which
then closes the window itself. If the daemon dies, mpv reads end-of-file on the
stream's pipe and exits too.

Closing the window (the close button, `q`) means the user does not want it now: the
output goes to state "closed" and the daemon plays on to its other outputs, unless
`close_stops` is set, in which case the detail is exactly CLOSED_BY_USER and the
daemon stops on it.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av

from lofid.media import Packet, StreamInfo

from .base import Output, OutputError
from .mux import PacketMuxer

log = logging.getLogger("lofid.outputs.window")

# The detail of the "closed" state when the user closed the window and close_stops is
# set: the daemon stops on exactly this.
CLOSED_BY_USER = "window closed by the user"
# The detail when the user closed it and the daemon plays on to its other outputs.
CLOSED_PLAYING_ON = "window closed by the user; the other outputs go on (close_stops is off)"

class WindowOptionError(OutputError, ValueError):
    """A window option with a wrong value: an OutputError (the other outputs go on)
    that is also a ValueError (bad input)."""


# Keys in the window. Only these: a live picture has nothing to seek or pause.
INPUT_CONF = """\
f cycle fullscreen
MBTN_LEFT_DBL cycle fullscreen
ESC set fullscreen no
q quit
CLOSE_WIN quit
"""

# mpv's exit status after `quit` (0) or after a terminating signal it handled (4);
# a process killed outright shows the negative signal number.
_USER_EXITS = {0, 4, -signal.SIGTERM, -signal.SIGINT, -signal.SIGHUP, -signal.SIGKILL}


def mpv_command(mpv: str, title: str, fullscreen: bool, borderless: bool, audio: bool,
                input_conf: str, ipc_socket: str, stream_fd: int,
                extra: tuple[str, ...] = ()) -> list[str]:
    """The mpv command line that shows a live MPEG-TS stream read from `stream_fd`."""
    cmd = [
        mpv,
        # A user's mpv.conf may load shaders or scripts that cost CPU; this window is
        # configured here alone.
        "--no-config",
        "--title=" + title.replace("$", "$$"),   # mpv expands ${...} in titles
        "--x11-name=lofi-vision",
        "--force-window=immediate",              # a window at once, before the first frame
        "--keep-open=no",                        # end of stdin (the daemon closed) ends mpv
        "--autofit-larger=90%x90%",              # a 1080p stream on a smaller screen
        "--hwdec=auto-safe",                     # GPU decoding where it is known to work
        # The GPU output where there is a GPU. Without one (its OpenGL is a software
        # renderer, which mpv refuses) X11 with shared-memory images, not mpv's next
        # choice, SDL: at 1080p30 under Xvfb x11 held 30 fps for 0.36 CPU-s a second
        # where SDL dropped frames for 0.70 (bench/window_cost.py). wlshm is Wayland's
        # own. No catch-all after them: mpv would fall back to an output nobody sees.
        "--vo=gpu,xv,x11,wlshm",
        # A live pipe: never pause to refill a cache (each pause would add latency for
        # good), read what arrives, and skip the long stream probe: the TS tables
        # already name both streams.
        "--cache=no",
        "--cache-pause=no",
        "--demuxer-lavf-o-add=fflags=+nobuffer",
        "--demuxer-lavf-probe-info=nostreams",
        "--demuxer-lavf-analyzeduration=0.5",
        # Nothing to seek, no on-screen controls, no scripts: less to draw, less CPU.
        "--no-osc", "--osd-level=0", "--no-ytdl", "--load-scripts=no",
        "--load-stats-overlay=no", "--load-osd-console=no", "--load-auto-profiles=no",
        "--input-builtin-bindings=no", "--no-input-default-bindings",
        "--input-conf=" + input_conf,
        "--input-terminal=no",
        "--input-ipc-server=" + ipc_socket,
        "--quiet", "--msg-level=all=warn",
    ]
    if fullscreen:
        cmd.append("--fs")
    if borderless:
        cmd.append("--no-border")
    if not audio:
        cmd.append("--no-audio")
    cmd += extra
    # The stream comes on a pipe of its own, not on stdin: mpv 0.35, when it probes
    # its DRM video output on a machine without a usable GPU, closes fd 0.
    cmd.append(f"fd://{stream_fd}")
    return cmd


class _Bytes:
    """The muxer's file: collects what it writes, for the pipe to take."""

    def __init__(self):
        self.data = bytearray()

    def write(self, b) -> int:
        self.data += b
        return len(b)

    def flush(self) -> None:
        pass


class WindowOutput(Output):
    """A resizable desktop window showing the stream, with audio; `f` or a double
    click toggles fullscreen."""

    wants = "packets"
    # How long the worker waits for mpv to take a packet before it counts mpv as
    # behind and drops until the next keyframe. A keyframe at 4.5 Mb/s fits well in it.
    write_timeout = 0.5

    def __init__(self, on_state: Callable[[str, str, str | None], None] | None = None,
                 fullscreen: bool = False, borderless: bool = False,
                 close_stops: bool = False, title: str = "lofi-vision",
                 audio: bool = True, mpv_options: tuple[str, ...] | list[str] = (),
                 **ignored):
        super().__init__("window", on_state)
        for option, value in (("fullscreen", fullscreen), ("borderless", borderless),
                              ("close_stops", close_stops), ("audio", audio)):
            if not isinstance(value, bool):
                raise WindowOptionError(f"window option {option} must be true or false, "
                                        f"got {value!r}")
        if not isinstance(title, str) or not title.strip():
            raise WindowOptionError(f"window option title must be a non-empty text, "
                                    f"got {title!r}")
        if isinstance(mpv_options, str) or not all(
                isinstance(o, str) and o.startswith("--") for o in mpv_options):
            raise WindowOptionError(f"window option mpv_options must be a list of mpv options "
                             f"like '--screen=1', got {mpv_options!r}")
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise OutputError("window: no display to open it on ($DISPLAY and $WAYLAND_DISPLAY "
                              "are unset); choose another output, e.g. a file, udp:// or null")
        mpv = shutil.which("mpv")
        if mpv is None:
            raise OutputError("window: mpv is not installed; the window is shown by mpv "
                              "(install it: `apt install mpv` on Debian/Ubuntu, "
                              "`dnf install mpv`, `brew install mpv`)")
        self.fullscreen = fullscreen
        self.borderless = borderless
        self.close_stops = close_stops
        self.title = title
        self.audio = audio
        self.mpv_options = tuple(mpv_options)
        self.mpv = mpv
        self.closed_by_user = False
        self.stalls = 0                   # times mpv took longer than write_timeout
        self.process: subprocess.Popen | None = None
        self._dir: str | None = None
        self._ipc: str | None = None
        self._log_tail: collections.deque[str] = collections.deque(maxlen=20)
        self._stopping = False
        self._exited = False
        self._final: str | None = None    # a state the watcher reported; nothing follows it
        self._state_lock = threading.Lock()
        self._muxer: PacketMuxer | None = None   # the MPEG-TS for mpv, in self._sink
        self._behind = False
        self._pending = bytearray()
        self._fd: int | None = None

    # --- worker side -----------------------------------------------------------------

    def _open(self, info: StreamInfo) -> None:
        self._fps = Fraction(info.fps)
        self._dir = tempfile.mkdtemp(prefix="lofid-window-")
        input_conf = Path(self._dir, "input.conf")
        input_conf.write_text(INPUT_CONF)
        self._ipc = str(Path(self._dir, "mpv.sock"))
        read_end, self._fd = os.pipe()
        cmd = mpv_command(self.mpv, self.title, self.fullscreen, self.borderless, self.audio,
                          str(input_conf), self._ipc, read_end, self.mpv_options)
        log.debug("window: %s", " ".join(cmd))
        try:
            self.process = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,   # mpv logs to both
                stderr=subprocess.STDOUT, pass_fds=(read_end,), start_new_session=True)
        finally:
            os.close(read_end)
        os.set_blocking(self._fd, False)  # a stuck mpv must not hold the worker for good
        self._log_reader = threading.Thread(target=self._read_log, name="window mpv log",
                                            daemon=True)
        self._log_reader.start()
        threading.Thread(target=self._watch, name="window mpv", daemon=True).start()

        self._sink = _Bytes()
        # flush_packets: each packet leaves the muxer at once; pes_payload_size 0: each
        # audio frame in its own PES instead of grouped (less latency).
        ts = av.open(self._sink, "w", format="mpegts",
                     container_options={"flush_packets": "1", "pes_payload_size": "0"})
        try:
            self._muxer = PacketMuxer(ts, info, audio=self.audio)
        except BaseException:
            ts.close()
            raise

    def _write(self, item) -> None:
        if self._exited or not isinstance(item, Packet):
            return
        if item.kind == "audio" and not self.audio:
            return
        muxer = self._muxer
        if self._behind:
            self._flush(0.0)
            if self._pending or item.kind != "video" or not item.keyframe:
                self.stats.dropped += 1
                return
            # Resume right after the last frame mpv has: the frames skipped while it was
            # behind leave no gap in its timeline, so it shows the newest picture at once.
            last = muxer.last_dts["video"]
            muxer.timeline.restart(item.pts, last + 1 if last is not None else 0)
            self._behind = False
        # The muxer starts the window at the first keyframe, at time zero: mpv's
        # timeline begins there whatever the daemon's clock reads (it may be days in).
        started = muxer.timeline.started
        if not muxer.write(item):
            if started:
                self.stats.dropped += 1    # before the start, or overlapping a resume
            return
        self._pending += self._sink.data
        self._sink.data.clear()
        if not self._flush(self.write_timeout) and not self._exited:
            self._behind = True
            self.stalls += 1
            log.warning("window: mpv is behind; dropping until the next keyframe")

    def _flush(self, timeout: float) -> bool:
        """Write what is pending into mpv's pipe; True when all of it went."""
        if self._fd is None:             # closed under us: the output is stopping
            self._pending.clear()
            return False
        deadline = time.monotonic() + timeout
        poller = select.poll()
        poller.register(self._fd, select.POLLOUT)
        while self._pending:
            try:
                n = os.write(self._fd, self._pending)
                del self._pending[:n]
                continue
            except BlockingIOError:
                pass
            except (BrokenPipeError, OSError) as e:
                log.debug("window: pipe: %r", e)
                self._pending.clear()
                self._mpv_gone()
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            poller.poll(left * 1000)
        return True

    def _mpv_gone(self) -> None:
        # The watcher tells how it ended; wait for it briefly so a closed window reads
        # as "closed" and not as a write error.
        try:
            self.process.wait(2)
        except subprocess.TimeoutExpired:
            pass
        self._exited = True

    def _close(self) -> None:
        self._stopping = True
        try:
            if self._muxer is not None and not self._exited:
                self._muxer.close()
                self._pending += self._sink.data
                self._flush(0.2)
        except Exception as e:   # an unfinished TS tail matters to nobody
            log.debug("window: closing the stream: %s", e)
        self._stop_mpv()

    def _stop_mpv(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)       # end of stream: mpv would end by itself
            except OSError:
                pass
            self._fd = None
        if self.process is not None and self.process.poll() is None:
            # SIGTERM, then SIGKILL: a library mpv loads for sound (SDL) may have taken
            # over SIGTERM and swallow it.
            self.process.terminate()
            try:
                self.process.wait(2)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # --- mpv's side ------------------------------------------------------------------

    def _read_log(self) -> None:
        for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            # libwayland's complaint while mpv probes for Wayland on an X display
            if line and "XDG_RUNTIME_DIR" not in line:
                self._log_tail.append(line)
                log.debug("mpv: %s", line)

    def _watch(self) -> None:
        rc = self.process.wait()
        self._exited = True
        # mpv's last lines (why it failed) may still be in its pipe: read them first.
        self._log_reader.join(1.0)
        if self._stopping:
            return
        if rc in _USER_EXITS:
            self.closed_by_user = True
            detail = CLOSED_BY_USER if self.close_stops else CLOSED_PLAYING_ON
            log.info("window: %s", detail)
            self._report_final("closed", detail)
        else:
            tail = "; ".join(list(self._log_tail)[-2:]) or "no message"
            self._report_final("failed", f"mpv exited with status {rc}: {tail}")

    def _report_final(self, state: str, detail: str) -> None:
        with self._state_lock:
            if self._final is not None:
                return
            self._final = state
        Output._set_state(self, state, detail)

    def _set_state(self, state: str, detail: str | None = None) -> None:
        # After mpv has gone, the worker's own later transitions ("running" if mpv
        # died during the start, "closed" at shutdown) would only blur what happened.
        with self._state_lock:
            if self._final is not None:
                return
        super()._set_state(state, detail)

    def close(self, timeout: float = 10.0) -> None:
        super().close(timeout)
        # The worker may have given up (failed) before its own _close.
        self._stopping = True
        self._stop_mpv()

    # --- for benchmarks, tests and `lofid ctl` ---------------------------------------

    def mpv_property(self, name: str, timeout: float = 2.0):
        """A property of the running mpv (e.g. "frame-drop-count"), or None when it
        cannot be read (mpv not started yet, gone, or the property is unavailable)."""
        if self._ipc is None or self._exited:
            return None
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                s.connect(self._ipc)
                s.sendall(json.dumps({"command": ["get_property", name],
                                      "request_id": 1}).encode() + b"\n")
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        return None
                    data += chunk
                    while b"\n" in data:
                        line, data = data.split(b"\n", 1)
                        reply = json.loads(line)
                        if reply.get("request_id") == 1:
                            return reply.get("data") if reply.get("error") == "success" else None
        except (OSError, ValueError):
            return None

    @property
    def shown_until(self) -> float | None:
        """Seconds of the window's timeline handed to mpv so far (its time-pos trails
        this by mpv's latency)."""
        last = self._muxer.last_dts["video"] if self._muxer is not None else None
        return None if last is None else float((last + 1) / self._fps)

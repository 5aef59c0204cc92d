"""The window output on a real X server (Xvfb) with a real mpv.

The stream is the player's kind: H.264 segments and AAC from lofid.encode, sent on
a clock that has run for over a day, paced to the wall clock. What the window shows
is read back from the X server's screen (PyAV's x11grab), and the window itself is
found and closed through Xlib as a window manager would (WM_DELETE_WINDOW).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import signal
import subprocess
import time
from fractions import Fraction

import av
import numpy as np
import pytest
from helpers import wait_for, xvfb

from lofid.encode import AudioEncoder, VideoSettings, encode_segment, video_stream_info
from lofid.media import Packet
from lofid.outputs.base import OutputError
from lofid.outputs.window import CLOSED_BY_USER, CLOSED_PLAYING_ON, WindowOutput

SCREEN = (640, 360)
FPS = 30
ORANGE = (230, 90, 20)
BLUE = (30, 80, 220)
GREEN = (40, 200, 70)
# A clock a little before MPEG-TS's 33-bit wrap at 26.5 h: the window starts its own
# timeline at zero whatever the daemon's clock reads.
START = (2**33 // 90000) * FPS - 45

# send() never waits on mpv: a send that did would take write_timeout (0.5 s) or
# longer. The bound is half of that, so that a machine busy with other work (a send
# preempted for a time slice or two) passes too.
NEVER_WAITS = 0.25

needs_x = pytest.mark.skipif(shutil.which("Xvfb") is None,
                             reason="Xvfb is not installed (Debian package xvfb)")
needs_mpv = pytest.mark.skipif(shutil.which("mpv") is None,
                               reason="mpv is not installed (Debian package mpv)")


# --- a real X server and a little Xlib ------------------------------------------------

@pytest.fixture(scope="module")
def xserver():
    with xvfb(*SCREEN) as display:
        yield display


@pytest.fixture
def display(xserver, monkeypatch):
    monkeypatch.setenv("DISPLAY", xserver)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    return xserver


def screenshot(display: str) -> np.ndarray:
    with av.open(display, format="x11grab",
                 options={"video_size": f"{SCREEN[0]}x{SCREEN[1]}"}) as c:
        return next(c.decode(video=0)).to_ndarray(format="rgb24")


def area(shot: np.ndarray, colour, tolerance: int = 40):
    """(pixel count, bounding box (x0, y0, x1, y1)) of the pixels near `colour`."""
    near = (np.abs(shot.astype(int) - colour) <= tolerance).all(axis=2)
    ys, xs = np.nonzero(near)
    if not len(xs):
        return 0, None
    return len(xs), (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


class _ClientMessage(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong),
                ("send_event", ctypes.c_int), ("display", ctypes.c_void_p),
                ("window", ctypes.c_ulong), ("message_type", ctypes.c_ulong),
                ("format", ctypes.c_int), ("data", ctypes.c_long * 5)]


class _KeyEvent(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong),
                ("send_event", ctypes.c_int), ("display", ctypes.c_void_p),
                ("window", ctypes.c_ulong), ("root", ctypes.c_ulong),
                ("subwindow", ctypes.c_ulong), ("time", ctypes.c_ulong),
                ("x", ctypes.c_int), ("y", ctypes.c_int), ("x_root", ctypes.c_int),
                ("y_root", ctypes.c_int), ("state", ctypes.c_uint), ("keycode", ctypes.c_uint),
                ("same_screen", ctypes.c_int)]


class _XEvent(ctypes.Union):
    _fields_ = [("client", _ClientMessage), ("key", _KeyEvent), ("pad", ctypes.c_long * 24)]


class Xlib:
    """Just what the tests need: find a client's window, read a property, ask it to close."""

    def __init__(self, display: str):
        x = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
        x.XOpenDisplay.restype = ctypes.c_void_p
        x.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x.XDefaultRootWindow.restype = ctypes.c_ulong
        x.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
        x.XInternAtom.restype = ctypes.c_ulong
        x.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        x.XQueryTree.argtypes = [ctypes.c_void_p, ctypes.c_ulong] + [ctypes.c_void_p] * 4
        x.XGetWindowProperty.argtypes = [
            ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_long, ctypes.c_long,
            ctypes.c_int, ctypes.c_ulong] + [ctypes.c_void_p] * 5
        x.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long,
                                 ctypes.c_void_p]
        x.XStringToKeysym.restype = ctypes.c_ulong
        x.XStringToKeysym.argtypes = [ctypes.c_char_p]
        x.XKeysymToKeycode.restype = ctypes.c_ubyte
        x.XKeysymToKeycode.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
        x.XFree.argtypes = [ctypes.c_void_p]
        x.XFlush.argtypes = [ctypes.c_void_p]
        x.XCloseDisplay.argtypes = [ctypes.c_void_p]
        # Xlib's own error handler ends the process: a window that goes away between
        # being listed and being read (mpv closing) would end the whole test run.
        handler_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
        self._ignore_errors = handler_type(lambda display, event: 0)   # kept alive here
        x.XSetErrorHandler.argtypes = [handler_type]
        x.XSetErrorHandler.restype = ctypes.c_void_p
        x.XSetErrorHandler(self._ignore_errors)
        self.x = x
        self.dpy = x.XOpenDisplay(display.encode())
        assert self.dpy, f"cannot open X display {display}"

    def close(self) -> None:
        self.x.XCloseDisplay(self.dpy)

    def atom(self, name: str) -> int:
        return self.x.XInternAtom(self.dpy, name.encode(), 0)

    def property(self, window: int, name: str) -> list[int] | None:
        """A format-32 property as a list of ints, or None when the window has none."""
        actual_type, actual_format = ctypes.c_ulong(), ctypes.c_int()
        nitems, after = ctypes.c_ulong(), ctypes.c_ulong()
        data = ctypes.POINTER(ctypes.c_ulong)()
        self.x.XGetWindowProperty(self.dpy, window, self.atom(name), 0, 64, 0, 0,
                                  ctypes.byref(actual_type), ctypes.byref(actual_format),
                                  ctypes.byref(nitems), ctypes.byref(after), ctypes.byref(data))
        if not data:
            return None
        values = [data[i] for i in range(nitems.value)] if actual_format.value == 32 else []
        self.x.XFree(data)
        return values

    def windows(self) -> list[int]:
        root = self.x.XDefaultRootWindow(self.dpy)
        found, stack = [], [root]
        while stack:
            w = stack.pop()
            r, parent = ctypes.c_ulong(), ctypes.c_ulong()
            children, n = ctypes.POINTER(ctypes.c_ulong)(), ctypes.c_uint()
            self.x.XQueryTree(self.dpy, w, ctypes.byref(r), ctypes.byref(parent),
                              ctypes.byref(children), ctypes.byref(n))
            kids = [children[i] for i in range(n.value)]
            if children:
                self.x.XFree(children)
            found += kids
            stack += kids
        return found

    def windows_of(self, pid: int) -> list[int]:
        return [w for w in self.windows() if self.property(w, "_NET_WM_PID") == [pid]]

    def window_of(self, pid: int, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for w in self.windows():
                if self.property(w, "_NET_WM_PID") == [pid]:
                    return w
            time.sleep(0.05)
        raise AssertionError(f"no window of process {pid} appeared")

    def ask_to_close(self, window: int) -> None:
        """What a window manager sends when the user clicks the close button."""
        event = _XEvent()
        event.client.type = 33                      # ClientMessage
        event.client.window = window
        event.client.message_type = self.atom("WM_PROTOCOLS")
        event.client.format = 32
        event.client.data[0] = self.atom("WM_DELETE_WINDOW")
        self.x.XSendEvent(self.dpy, window, 0, 0, ctypes.byref(event))
        self.x.XFlush(self.dpy)

    def press(self, window: int, key: str) -> None:
        """A key press and release in the window, as if typed there."""
        code = self.x.XKeysymToKeycode(self.dpy, self.x.XStringToKeysym(key.encode()))
        for kind, mask in ((2, 1), (3, 2)):         # KeyPress, KeyRelease and their masks
            event = _XEvent()
            k = event.key
            k.type, k.window, k.keycode, k.same_screen = kind, window, code, 1
            k.root = self.x.XDefaultRootWindow(self.dpy)
            self.x.XSendEvent(self.dpy, window, 1, mask, ctypes.byref(event))
        self.x.XFlush(self.dpy)


@pytest.fixture
def xlib(display):
    x = Xlib(display)
    yield x
    x.close()


# --- the stream -----------------------------------------------------------------------

SETTINGS = VideoSettings(width=320, height=180, fps=Fraction(FPS), bitrate=400_000,
                         keyframe_seconds=1.0)


def picture(left, right) -> np.ndarray:
    img = np.empty((SETTINGS.height, SETTINGS.width, 3), np.uint8)
    img[:, :SETTINGS.width // 2] = left
    img[:, SETTINGS.width // 2:] = right
    return img


@pytest.fixture(scope="module")
def stream():
    """StreamInfo and two one-second segments: orange|blue, and green."""
    audio = AudioEncoder()
    info = video_stream_info(SETTINGS, audio)
    segments = {name: encode_segment([img] * FPS, SETTINGS)
                for name, img in (("orange_blue", picture(ORANGE, BLUE)),
                                  ("green", picture(GREEN, GREEN)))}
    return info, segments


class Feeder:
    """Plays segments into an output as the player does: shifted timestamps, audio in
    step (1600 samples a frame), paced to the wall clock unless told otherwise."""

    def __init__(self, out: WindowOutput, start: int = START):
        self.out = out
        self.frame = start
        self.audio = AudioEncoder()
        self.slowest_send = 0.0
        self.accepted = 0

    def send(self, packet: Packet) -> None:
        t = time.perf_counter()
        self.accepted += self.out.send(packet)
        self.slowest_send = max(self.slowest_send, time.perf_counter() - t)

    def play(self, segment: list[Packet], seconds: float, paced: bool = True) -> None:
        t0 = time.monotonic()
        spf = 48000 // FPS
        silence = np.zeros((spf, 2), np.float32)
        for i in range(round(seconds * FPS)):
            p = segment[i % len(segment)]
            shift = self.frame - p.pts
            self.send(Packet("video", p.pts + shift, p.dts + shift, 1, p.keyframe, p.data))
            for a in self.audio.encode(silence, self.frame * spf):
                self.send(a)
            self.frame += 1
            if paced:
                time.sleep(max(0.0, t0 + (i + 1) / FPS - time.monotonic()))

    def play_until_shown(self, segment: list[Packet], display: str, colour,
                         timeout: float = 15.0) -> np.ndarray:
        """Plays `segment` until the screen shows `colour`; the screenshot that did.
        mpv takes about a second from start to its first picture on an idle machine,
        longer on one busy with other tests: a test about what the window shows, not
        about how soon, waits for it here rather than after a fixed time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.play(segment, 0.25)
            shot = screenshot(display)
            if area(shot, colour)[0] > 1000:
                return shot
        raise AssertionError(f"the window showed no {colour} within {timeout:g} s")


@pytest.fixture
def opened(display, stream):
    """Opens WindowOutputs with a state log; closes them after the test."""
    made = []

    def open_window(**options):
        states = []
        out = WindowOutput(on_state=lambda name, state, detail: states.append((state, detail)),
                           **options)
        out.states = states
        out.start(stream[0])
        assert wait_for(lambda: out.process is not None)
        made.append(out)
        return out

    yield open_window
    for out in made:
        out.close(5)
        assert out.process.poll() is not None, "mpv outlived the output"


# --- tests ----------------------------------------------------------------------------

@pytest.mark.slow
@needs_x
@needs_mpv
def test_the_window_shows_the_stream_live(opened, stream, display):
    out = opened(audio=True)
    feed = Feeder(out)
    feed.play(stream[1]["orange_blue"], 2.0)
    shot = screenshot(display)
    n_orange, orange = area(shot, ORANGE)
    n_blue, blue = area(shot, BLUE)
    # The 320x180 picture, left half orange and right half blue, in the window.
    assert n_orange > 0.8 * 160 * 180 and n_blue > 0.8 * 160 * 180, (n_orange, n_blue)
    assert orange[2] <= blue[0] + 2, f"orange {orange} should be left of blue {blue}"
    assert abs((orange[3] - orange[1]) - 180) <= 4
    # mpv plays in step with what it is sent: its position moves with the clock
    # (from zero, though the daemon's clock is past a day).
    shown = out.mpv_property("time-pos")
    assert shown is not None and 1.0 <= shown <= 2.1, shown
    assert out.mpv_property("decoder-frame-drop-count") == 0
    # A new picture in the stream shows within a second: nothing piles up.
    feed.play(stream[1]["green"], 1.5)
    n_green, _ = area(screenshot(display), GREEN)
    assert n_green > 0.8 * 320 * 180, n_green
    assert feed.slowest_send < NEVER_WAITS
    assert out.state == "running" and out.stats.dropped == 0


@pytest.mark.slow
@needs_x
@needs_mpv
def test_closing_the_window_leaves_the_daemon_running(opened, stream, xlib):
    out = opened(close_stops=False)
    feed = Feeder(out)
    feed.play(stream[1]["orange_blue"], 0.5)
    xlib.ask_to_close(xlib.window_of(out.process.pid))
    assert wait_for(lambda: out.state == "closed"), out.states
    assert out.states[-1] == ("closed", CLOSED_PLAYING_ON)
    assert out.closed_by_user
    # The player goes on: send() refuses at once and never blocks.
    sent_before = feed.accepted
    feed.play(stream[1]["orange_blue"], 1.0, paced=False)
    assert feed.accepted == sent_before
    assert feed.slowest_send < NEVER_WAITS
    out.close(5)
    assert out.states.count(("closed", CLOSED_PLAYING_ON)) == 1
    assert [s for s, _ in out.states].count("closed") == 1, out.states


@pytest.mark.slow
@needs_x
@needs_mpv
def test_close_stops_reports_the_user_closing_it(opened, stream, xlib):
    out = opened(close_stops=True)
    Feeder(out).play(stream[1]["orange_blue"], 0.5)
    xlib.press(xlib.window_of(out.process.pid), "q")
    assert wait_for(lambda: out.state == "closed"), out.states
    assert out.states[-1] == ("closed", CLOSED_BY_USER)


@pytest.mark.slow
@needs_x
@needs_mpv
def test_killing_mpv_counts_as_closing_the_window(opened, stream):
    out = opened()
    feed = Feeder(out)
    feed.play(stream[1]["orange_blue"], 0.5)
    out.process.kill()
    # Waits for either end, so that a failure says which it was and why.
    wait_for(lambda: out.state in ("closed", "failed"))
    assert out.states[-1] == ("closed", CLOSED_PLAYING_ON), out.states
    feed.play(stream[1]["orange_blue"], 1.0, paced=False)
    assert feed.slowest_send < NEVER_WAITS


@pytest.mark.slow
@needs_x
@needs_mpv
def test_mpv_crashing_is_a_failure_not_a_close(opened, stream):
    out = opened(close_stops=True)
    Feeder(out).play(stream[1]["orange_blue"], 0.3)
    out.process.send_signal(signal.SIGSEGV)
    wait_for(lambda: out.state in ("closed", "failed"))
    assert out.state == "failed", out.states
    state, detail = out.states[-1]
    assert "mpv exited with status -11" in detail
    assert not out.closed_by_user


@pytest.mark.slow
@needs_x
@needs_mpv
def test_a_stuck_mpv_never_blocks_send_and_the_window_recovers(opened, stream, display):
    out = opened(audio=True)
    feed = Feeder(out)
    feed.play(stream[1]["orange_blue"], 1.0)
    out.process.send_signal(signal.SIGSTOP)      # mpv frozen: its pipe fills up
    try:
        feed.play(stream[1]["orange_blue"], 8.0, paced=False)
        assert wait_for(lambda: out.stalls >= 1, timeout=20), "the pipe never filled"
        feed.play(stream[1]["orange_blue"], 4.0, paced=False)
        assert feed.slowest_send < NEVER_WAITS, feed.slowest_send
    finally:
        out.process.send_signal(signal.SIGCONT)
    assert out.stats.dropped > 0
    # Back in time: the newest picture shows, the output still runs. (How soon depends
    # on how fast mpv catches up, which a machine busy with other tests slows.)
    n_green, _ = area(feed.play_until_shown(stream[1]["green"], display, GREEN), GREEN)
    assert n_green > 0.8 * 320 * 180, n_green
    assert out.state == "running"


@pytest.mark.slow
@needs_x
@needs_mpv
def test_fullscreen_covers_the_screen(opened, stream, display):
    out = opened(fullscreen=True)
    shot = Feeder(out).play_until_shown(stream[1]["orange_blue"], display, ORANGE)
    n_orange, orange = area(shot, ORANGE)
    n_blue, blue = area(shot, BLUE)
    # The 16:9 picture scaled to the whole 16:9 screen.
    assert n_orange > 0.9 * SCREEN[0] * SCREEN[1] / 2, n_orange
    assert n_blue > 0.9 * SCREEN[0] * SCREEN[1] / 2, n_blue
    assert orange[0] <= 2 and blue[2] >= SCREEN[0] - 2


@pytest.mark.slow
@needs_x
@needs_mpv
def test_f_toggles_fullscreen(opened, stream, display, xlib):
    out = opened()
    feed = Feeder(out)
    n_before, _ = area(feed.play_until_shown(stream[1]["orange_blue"], display, ORANGE), ORANGE)
    xlib.press(xlib.window_of(out.process.pid), "f")
    assert wait_for(lambda: out.mpv_property("fullscreen") is True, timeout=3)
    feed.play(stream[1]["orange_blue"], 0.5)
    n_after, _ = area(screenshot(display), ORANGE)
    assert n_before < 0.6 * SCREEN[0] * SCREEN[1] / 2 < 0.9 * SCREEN[0] * SCREEN[1] / 2 < n_after
    xlib.press(xlib.window_of(out.process.pid), "f")
    assert wait_for(lambda: out.mpv_property("fullscreen") is False, timeout=3)


@pytest.mark.slow
@needs_x
@needs_mpv
def test_borderless_asks_for_no_decorations(opened, xlib):
    plain = opened()
    bare = opened(borderless=True)
    # _MOTIF_WM_HINTS: flags, functions, decorations, ...; bit 1 of flags says the
    # decorations field counts, and 0 there means no title bar and no border.
    xlib.window_of(bare.process.pid)
    xlib.window_of(plain.process.pid)

    def undecorated(pid):
        # mpv sets the hints just after it has made its window (and may make more
        # than one window on the way): any window of the process will do.
        hints = [xlib.property(w, "_MOTIF_WM_HINTS") for w in xlib.windows_of(pid)]
        return any(h and h[0] & 2 and h[2] == 0 for h in hints)

    assert wait_for(lambda: undecorated(bare.process.pid), timeout=10)
    assert not undecorated(plain.process.pid)


@pytest.mark.slow
@needs_mpv
def test_a_display_mpv_cannot_open_fails_with_its_reason(monkeypatch, stream):
    monkeypatch.setenv("DISPLAY", ":59999")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    states = []
    out = WindowOutput(on_state=lambda name, state, detail: states.append((state, detail)))
    out.start(stream[0])
    try:
        assert wait_for(lambda: out.state == "failed", timeout=10), states
        assert "mpv exited with status" in states[-1][1] and "VO" in states[-1][1], states
    finally:
        out.close(5)


@pytest.mark.slow
def test_no_display_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(OutputError, match=r"window: no display.*DISPLAY"):
        WindowOutput()


@pytest.mark.slow
def test_missing_mpv_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(OutputError, match=r"mpv is not installed.*apt install mpv"):
        WindowOutput()


@pytest.mark.slow
@needs_mpv
@pytest.mark.parametrize("options, named", [
    ({"fullscreen": "yes"}, "fullscreen"), ({"borderless": 1}, "borderless"),
    ({"close_stops": None}, "close_stops"), ({"title": ""}, "title"),
    ({"mpv_options": "--fs"}, "mpv_options")])
def test_bad_options_name_the_option(monkeypatch, options, named):
    monkeypatch.setenv("DISPLAY", ":99")
    with pytest.raises(ValueError, match=named) as error:
        WindowOutput(**options)
    # An OutputError too: `lofid run` reports it and goes on with the other outputs.
    assert isinstance(error.value, OutputError)


@pytest.mark.slow
@needs_mpv
def test_unknown_options_are_left_to_other_outputs(monkeypatch):
    monkeypatch.setenv("DISPLAY", ":99")
    out = WindowOutput(duration=60, bitrate=4_500_000)
    assert out.state == "new" and out.name == "window"


# --- a window added to a running lofid, as :LofiVision open does ------------------------

def _children(pid: int) -> list[int]:
    kids = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids += [int(k) for k in f.read().split()]
        except FileNotFoundError:       # a thread that ended since the listing
            pass
    return kids


@pytest.mark.slow
@needs_x
@needs_mpv
def test_a_window_added_to_a_running_lofid_and_removed_again(display, xlib, tmp_path):
    import json
    import sys
    from pynvim.msgpack_rpc import socket_session
    # close_stops on: the user closing the window would stop lofid, a removal must not.
    cfg = tmp_path / "lofid.toml"
    cfg.write_text("close_stops = true\n")
    sock = tmp_path / "run" / "lofid.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lofid.cli", "--library", str(tmp_path / "lib"), "run", "-o",
         "null", "--realtime", "--size", "160x90", "--socket", str(sock), "--config", str(cfg)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def status():
        r = subprocess.run([sys.executable, "-m", "lofid.cli", "ctl", "--socket", str(sock),
                            "--json", "status"], capture_output=True, text=True, timeout=30)
        return json.loads(r.stdout) if r.returncode == 0 else None

    try:
        assert wait_for(lambda: proc.poll() is not None or status() is not None, 60)
        session = socket_session(str(sock))
        try:
            assert session.request("output.add", "window")["name"] == "window"
            assert wait_for(lambda: [(o["name"], o["state"]) for o in status()["outputs"]]
                            == [("null", "running"), ("window", "running")], 30)
            mpv = [pid for pid in _children(proc.pid)
                   if open(f"/proc/{pid}/comm").read().strip() == "mpv"]
            assert len(mpv) == 1
            assert xlib.window_of(mpv[0])
            assert session.request("output.remove", "window")["name"] == "window"
            assert wait_for(lambda: not os.path.exists(f"/proc/{mpv[0]}")
                            or open(f"/proc/{mpv[0]}/stat").read().split()[2] == "Z", 30)
            assert wait_for(lambda: [o["name"] for o in status()["outputs"]] == ["null"], 30)
            # lofid plays on.
            t = status()["clock"]["seconds"]
            assert wait_for(lambda: proc.poll() is None and status()["clock"]["seconds"] > t + 1, 30)
        finally:
            session.close()
    finally:
        subprocess.run([sys.executable, "-m", "lofid.cli", "ctl", "--socket", str(sock), "stop"],
                       capture_output=True, timeout=30)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()

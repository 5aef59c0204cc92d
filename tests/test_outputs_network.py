"""Network outputs against real components: nginx's RTMP module, PyAV MPEG-TS readers.

What a streamer would notice: the stream arrives as H.264 + AAC with keyframes at
most 2 s apart and increasing timestamps, it comes back by itself after the server
was down, it stays continuous across RTMP's 24-bit timestamp rollover and MPEG-TS's
33-bit wrap, and feeding the output never blocks the daemon while all this happens.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import States, wait_for

from lofid.encode import AudioEncoder, VideoSettings, encode_segment, video_stream_info
from lofid.media import Packet
from lofid.outputs.base import OutputError
from lofid.outputs.network import NetworkOutput, NetworkTargetError

W, H = 320, 180
FPS = 30
SAMPLES_PER_FRAME = 48000 // FPS
SETTINGS = VideoSettings(width=W, height=H, fps=FPS, bitrate=300_000, keyframe_seconds=1)
RTMP_ROLLOVER_MS = 1 << 24            # RTMP's 24-bit timestamp field: 4 h 39 min 37 s
TS_WRAP = 1 << 33                     # MPEG-TS's 33-bit 90 kHz field: 26 h 30 min
NEAR_RTMP_ROLLOVER = (RTMP_ROLLOVER_MS - 2000) * FPS // 1000      # clock 2 s before it
NEAR_TS_WRAP = (TS_WRAP - 2 * 90000) * FPS // 90000               # clock 2 s before it
SEND_LIMIT = 0.25                     # a send() that waited on the network would take seconds


# --- stream material: the player's packets, made with lofid.encode ---------------------

def picture(i: int) -> np.ndarray:
    f = np.empty((H, W, 3), np.uint8)
    f[...] = (200, 120, 60)
    x0 = (i * 5) % (W - 30)
    f[60:120, x0:x0 + 30] = 255
    return f


@pytest.fixture(scope="module")
def material():
    """One 2-s encoded repetition (keyframes every second), 2 s of AAC, and the StreamInfo."""
    video = encode_segment([picture(i) for i in range(2 * FPS)], SETTINGS)
    audio_encoder = AudioEncoder(bitrate=96_000)
    t = np.arange(2 * 48000) / 48000
    tone = (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    audio = audio_encoder.encode(np.stack([tone, tone], axis=1), 0)
    info = video_stream_info(SETTINGS, audio_encoder)
    return video, [p.data for p in audio], info


class Feeder(threading.Thread):
    """Plays the player's part: repeats the segment on a clock starting at `start`,
    paced to the wall clock (times `speed`), and times every send()."""

    def __init__(self, output, material, start: int, speed: float = 1.0):
        super().__init__(daemon=True)
        self.output = output
        self.video, self.audio, _ = material
        self.start_frame = start
        self.speed = speed
        self.frame = start            # the next frame to send
        self.slowest_send = 0.0
        self._halt = threading.Event()

    def run(self) -> None:
        t0 = time.monotonic()
        length = len(self.video)
        audio_index = 0
        first_sample = self.start_frame * SAMPLES_PER_FRAME
        while not self._halt.is_set():
            offset = self.frame - self.start_frame
            if self._halt.wait(max(0.0, t0 + offset / (FPS * self.speed) - time.monotonic())):
                break
            p = self.video[offset % length]
            repetition = self.frame - offset % length
            self._send(Packet("video", repetition + p.pts, repetition + p.dts, 1, p.keyframe, p.data))
            while first_sample + audio_index * 1024 < (self.frame + 1) * SAMPLES_PER_FRAME:
                pts = first_sample + audio_index * 1024
                self._send(Packet("audio", pts, pts, 1024, True,
                                  self.audio[audio_index % len(self.audio)]))
                audio_index += 1
            self.frame += 1

    def _send(self, packet: Packet) -> None:
        t = time.perf_counter()
        self.output.send(packet)
        self.slowest_send = max(self.slowest_send, time.perf_counter() - t)

    def feed_for(self, seconds: float) -> None:
        """Waits until `seconds` more of stream have been fed."""
        target = self.frame + round(seconds * FPS * self.speed)
        assert wait_for(lambda: self.frame >= target, seconds + 5), "the feeder fell behind"

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- nginx with the RTMP module --------------------------------------------------------

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
RTMP_MODULE = next((p for p in ("/usr/lib/nginx/modules/ngx_rtmp_module.so",
                                "/usr/lib64/nginx/modules/ngx_rtmp_module.so")
                    if os.path.exists(p)), None)
needs_nginx = pytest.mark.skipif(
    NGINX is None or RTMP_MODULE is None,
    reason="needs nginx with the RTMP module (Debian: apt-get install nginx libnginx-mod-rtmp)")


class Nginx:
    """An RTMP server on a free loopback port that records every publishing session."""

    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.records = root / "records"
        self.records.mkdir()
        (root / "logs").mkdir()
        self.conf = root / "nginx.conf"
        # One process, no daemon: the test owns it and stops it like a crashed server.
        self.conf.write_text(f"""
load_module {RTMP_MODULE};
daemon off;
master_process off;
pid {root}/nginx.pid;
error_log {root}/logs/error.log info;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{self.port};
        application live {{
            live on;
            record all;
            record_path {self.records};
            record_unique on;
        }}
    }}
}}
""")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([NGINX, "-p", str(self.root), "-c", str(self.conf),
                                      "-e", str(self.root / "logs" / "error.log")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def accepting() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.proc.stderr.read().decode()}")
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0
        assert wait_for(accepting, 10), "nginx did not start listening"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def recordings(self) -> list[Path]:
        return sorted(self.records.glob("*.flv"), key=lambda p: p.stat().st_mtime_ns)

    def url(self, key: str = "lofi") -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{key}"


@pytest.fixture
def nginx(tmp_path):
    server = Nginx(tmp_path)
    server.start()
    yield server
    server.stop()


def read_flv(path: Path) -> dict:
    """What a viewer of the recording gets: codecs, video timestamps, keyframes, pictures."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0]
        out = {"video": v.codec_context.name, "profile": v.codec_context.profile,
               "size": (v.codec_context.width, v.codec_context.height),
               "audio": a.codec_context.name, "rate": a.codec_context.sample_rate,
               "channels": a.codec_context.channels, "pts": [], "keyframes": [],
               "audio_pts": [], "decoded": 0}
        for packet in c.demux():
            if packet.pts is None:
                continue
            if packet.stream.type == "video":
                seconds = float(packet.pts * packet.time_base)
                out["pts"].append(seconds)
                if packet.is_keyframe:
                    out["keyframes"].append(seconds)
                out["decoded"] += len(packet.decode())
            elif packet.stream.type == "audio":
                out["audio_pts"].append(float(packet.pts * packet.time_base))
    return out


def assert_good_stream(rec: dict, min_seconds: float) -> None:
    assert rec["video"] == "h264" and rec["audio"] == "aac", rec
    assert rec["profile"] == "Main"
    assert rec["size"] == (W, H)
    assert rec["rate"] == 48000 and rec["channels"] == 2
    pts = rec["pts"]
    assert pts[-1] - pts[0] >= min_seconds, f"only {pts[-1] - pts[0]:.2f} s arrived"
    steps = np.diff(pts)
    # increasing, one frame apart: no jump, no going back
    assert steps.min() > 0, f"timestamps go back: {steps.min()}"
    assert steps.max() < 3.0 / FPS, f"timestamps jump by {steps.max():.3f} s"
    assert rec["keyframes"][0] == pts[0], "the stream does not start on a keyframe"
    assert np.diff(rec["keyframes"]).max() <= 2.0
    assert rec["decoded"] >= 0.95 * len(pts)
    assert len(rec["audio_pts"]) > 0 and np.diff(rec["audio_pts"]).min() > 0


# --- RTMP ------------------------------------------------------------------------------

@pytest.mark.slow
@needs_nginx
def test_rtmp_reaches_nginx_and_reconnects_by_itself_after_the_server_was_down(nginx, material):
    states = States()
    out = NetworkOutput(nginx.url(), on_state=states, stall_timeout=3, connect_timeout=5)
    out.start(material[2])
    # the daemon's clock has been running for 4 h 39 min 58 s; the connection starts at 0
    feeder = Feeder(out, material, start=NEAR_RTMP_ROLLOVER)
    feeder.start()
    try:
        assert states.wait_for("running", timeout=10), states.seen
        feeder.feed_for(3)
        nginx.stop()
        assert states.wait_for("reconnecting", timeout=10), states.seen
        down_since = feeder.frame
        feeder.feed_for(3)
        assert out.state == "reconnecting"
        nginx.start()
        assert states.wait_for("running", count=2, timeout=15), states.seen
        assert feeder.frame - down_since >= 3 * FPS
        feeder.feed_for(3)
    finally:
        feeder.stop()
        out.close()
    nginx.stop()
    # the caller never waited on the network, not while the server was gone either
    assert feeder.slowest_send < SEND_LIMIT
    assert out.state == "closed"
    assert out.stats.dropped > 0          # what was sent while the server was down
    details = " | ".join(states.details("reconnecting"))
    assert "retrying in" in details
    before, *_, after = nginx.recordings()
    first, last = read_flv(before), read_flv(after)
    assert_good_stream(first, 1.8)
    assert_good_stream(last, 1.8)
    # each connection starts at 0, not at the daemon's 4 h 40 min
    assert first["pts"][0] < 0.5 and last["pts"][0] < 0.5


def _stream_across(nginx, material, name: str, boundary_ms: int):
    """Streams to nginx's `name` with the daemon's clock as it is (rebase=False), from
    2 s before `boundary_ms` to past it, at twice real time, on one connection. The
    recording, read back and checked by assert_good_stream; the seconds of stream sent
    in all, and since the connection ran."""
    start = (boundary_ms - 2000) * FPS // 1000
    states = States()
    out = NetworkOutput(nginx.url(name), on_state=states, rebase=False)
    out.start(material[2])
    feeder = Feeder(out, material, start=start, speed=2.0)
    feeder.start()
    try:
        assert states.wait_for("running", timeout=10), states.seen
        sent_from = feeder.frame
        feeder.feed_for(5)
        crossed = feeder.frame * 1000 / FPS > boundary_ms + 1000
    finally:
        feeder.stop()
        out.close()
    nginx.stop()
    assert crossed
    assert out.state == "closed" and states.count("reconnecting") == 0, states.seen
    (recording,) = nginx.recordings()
    rec = read_flv(recording)
    assert_good_stream(rec, 4.0)
    return rec, (feeder.frame - start) / FPS, (feeder.frame - sent_from) / FPS


@pytest.mark.slow
@needs_nginx
def test_rtmp_timestamps_run_on_past_the_24_bit_rollover(nginx, material):
    # rebase=False sends the daemon's clock as it is: the connection's own timestamps
    # start 2 s before 2^24 ms and cross it, in RTMP's extended timestamp field
    rec, _, sent_running = _stream_across(nginx, material, "rollover", RTMP_ROLLOVER_MS)
    # nginx records from the stream's first message (its epoch: the first picture,
    # sent at the daemon's 4 h 39 min 58 s); across 2^24 ms the timestamps go on one
    # frame at a time (a misread extended timestamp would be a jump of hours, or a
    # step back, which assert_good_stream refuses)
    assert rec["pts"][-1] - rec["pts"][0] <= sent_running + 0.5


@pytest.mark.slow
@needs_nginx
def test_a_stalled_server_is_detected_and_the_output_restarts(nginx, material):
    states = States()
    out = NetworkOutput(nginx.url("stall"), on_state=states, stall_timeout=1.5, connect_timeout=5)
    out.start(material[2])
    feeder = Feeder(out, material, start=0)
    feeder.start()
    try:
        assert states.wait_for("running", timeout=10), states.seen
        feeder.feed_for(1)
        stuck = out.child_pid
        # the network process freezes in the middle of the stream (as in a write
        # that a stalled server never completes): the daemon must not wait on it
        os.kill(stuck, signal.SIGSTOP)
        assert states.wait_for("reconnecting", timeout=10), states.seen
        assert "stalled" in states.details("reconnecting")[0]
        assert states.wait_for("running", count=2, timeout=10), states.seen
        assert out.child_pid != stuck
        feeder.feed_for(3)   # 1.5 s must reach the new recording, on a busy machine too
    finally:
        feeder.stop()
        out.close()
    assert out.stalls == 1
    assert feeder.slowest_send < SEND_LIMIT
    with pytest.raises(ProcessLookupError):
        os.kill(stuck, 0)                 # the stuck process was killed, not left behind
    assert_good_stream(read_flv(nginx.recordings()[-1]), 1.5)


@pytest.mark.slow
def test_rtmps_target_is_accepted_and_a_refused_connection_keeps_retrying(material):
    port = free_port()                    # nothing listens there: the connection is refused
    states = States()
    out = NetworkOutput(f"rtmps://127.0.0.1:{port}/live/secret-stream-key", on_state=states)
    assert out.name == f"rtmps://127.0.0.1:{port}/live/****"
    out.start(material[2])
    feeder = Feeder(out, material, start=0)
    feeder.start()
    try:
        assert states.wait_for("reconnecting", count=2, timeout=10), states.seen
    finally:
        feeder.stop()
        t = time.monotonic()
        out.close()
        closing = time.monotonic() - t
    assert closing < 3
    assert out.state == "closed" and states.count("failed") == 0, states.seen
    assert out.restarts >= 1 and out.connections == 0
    details = states.details("reconnecting")
    assert all("refused" in d.lower() for d in details), details
    # backoff: the second wait is twice the first
    assert "retrying in 0.5 s" in details[0] and "retrying in 1 s" in details[1], details
    assert not any("secret-stream-key" in (d or "") for _, d in states.seen)
    assert feeder.slowest_send < SEND_LIMIT


# --- MPEG-TS for OBS ------------------------------------------------------------------

class TsReader(threading.Thread):
    """What OBS's Media Source does with the URL: open it with libavformat and decode."""

    def __init__(self, url: str, frames: int, timeout: float = 15.0):
        super().__init__(daemon=True)
        self.url = url
        self.frames = frames
        self.timeout = timeout
        self.pts: list[int] = []          # video pts in 90 kHz, as the demuxer gives them
        self.decoded = 0
        self.codecs: tuple[str, str] | None = None
        self.error: BaseException | None = None
        self.opened = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        try:
            while True:
                try:
                    container = av.open(self.url, format="mpegts", timeout=(5.0, 5.0))
                    break
                except (ConnectionRefusedError, av.error.ConnectionRefusedError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)       # the output is not listening yet
            self.opened.set()
            with container:
                self.codecs = (container.streams.video[0].codec_context.name,
                               container.streams.audio[0].codec_context.name)
                for packet in container.demux(container.streams.video[0]):
                    if packet.pts is not None:
                        self.pts.append(packet.pts)
                        self.decoded += len(packet.decode())
                    if self.decoded >= self.frames or time.monotonic() > deadline:
                        break
        except BaseException as e:
            self.error = e
        finally:
            self.opened.set()


def unwrap(pts: list[int]) -> np.ndarray:
    """33-bit timestamps made continuous, as a player does."""
    out = np.array(pts, dtype=np.int64)
    wraps = np.cumsum(np.diff(out, prepend=out[0]) < -(TS_WRAP // 2))
    return out + wraps * TS_WRAP


@pytest.mark.slow
def test_udp_mpegts_stays_decodable_and_continuous_across_the_33_bit_wrap(material):
    port = free_port(socket.SOCK_DGRAM)
    reader = TsReader(f"udp://127.0.0.1:{port}?fifo_size=1000000&overrun_nonfatal=1", frames=130)
    reader.start()
    states = States()
    out = NetworkOutput(f"udp://127.0.0.1:{port}", on_state=states, rebase=False)
    out.start(material[2])
    feeder = Feeder(out, material, start=NEAR_TS_WRAP, speed=2.0)
    feeder.start()
    try:
        assert states.wait_for("running", timeout=10), states.seen
        reader.join(20)
    finally:
        feeder.stop()
        out.close()
    assert reader.error is None, reader.error
    assert reader.codecs == ("h264", "aac")
    assert reader.decoded >= 130
    pts = unwrap(reader.pts)
    steps = np.diff(pts)
    assert steps.min() > 0 and steps.max() <= 3 * 90000 // FPS, (steps.min(), steps.max())
    # the clock really went across the wrap while the reader watched
    # the 33-bit field went across its wrap while the reader watched (libavformat
    # shows the packets before it as negative, or after it past 2^33)
    assert pts[0] % TS_WRAP > pts[-1] % TS_WRAP, (reader.pts[0], reader.pts[-1])
    assert feeder.slowest_send < SEND_LIMIT


@pytest.mark.slow
def test_tcp_listen_serves_a_client_then_listens_again_when_it_leaves(material):
    port = free_port()
    states = States()
    out = NetworkOutput(f"tcp://127.0.0.1:{port}?listen", on_state=states)
    out.start(material[2])
    # the daemon's clock has been running for 26.5 h; each client's stream starts near 0
    feeder = Feeder(out, material, start=NEAR_TS_WRAP)
    feeder.start()
    try:
        first = TsReader(f"tcp://127.0.0.1:{port}", frames=40)
        first.start()
        first.join(20)
        assert states.wait_for("reconnecting", timeout=10), states.seen   # the client left
        second = TsReader(f"tcp://127.0.0.1:{port}", frames=40)
        second.start()
        second.join(20)
    finally:
        feeder.stop()
        out.close()
    for reader in (first, second):
        assert reader.error is None, reader.error
        assert reader.codecs == ("h264", "aac")
        assert reader.decoded >= 40
        steps = np.diff(reader.pts)
        assert steps.min() > 0 and steps.max() <= 3 * 90000 // FPS
        assert reader.pts[0] < 10 * 90000          # rebased: seconds, not 26.5 h
    assert out.connections == 2
    assert states.count("running") == 2
    assert feeder.slowest_send < SEND_LIMIT
    assert out.state == "closed"


# --- bad targets -----------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("target, says", [
    ("ftp://127.0.0.1:21", "unknown scheme"),
    ("udp://127.0.0.1", "no port"),
    ("tcp://127.0.0.1:9000", "?listen"),
    ("rtmp://live.example.com", "APP/STREAM_KEY"),
    ("udp://127.0.0.1:99999", "port"),
])
def test_bad_targets_are_refused_with_a_message_naming_them(target, says):
    with pytest.raises(NetworkTargetError) as e:
        NetworkOutput(target)
    assert says in str(e.value) and target.split("://")[1].split("/")[0] in str(e.value)
    assert isinstance(e.value, OutputError) and isinstance(e.value, ValueError)


@pytest.mark.slow
def test_a_tcp_port_in_use_is_refused_at_once():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(NetworkTargetError, match=f"127.0.0.1:{port}.*in use"):
            NetworkOutput(f"tcp://127.0.0.1:{port}?listen")


@pytest.mark.slow
def test_bad_option_values_are_refused():
    with pytest.raises(NetworkTargetError, match="stall_timeout.*-1"):
        NetworkOutput("udp://127.0.0.1:5000", stall_timeout=-1)
    with pytest.raises(NetworkTargetError, match="rebase"):
        NetworkOutput("udp://127.0.0.1:5000", rebase="no")
    # options meant for other outputs (open_output passes them all) are not an error
    NetworkOutput("udp://127.0.0.1:5000", fullscreen=True)


# --- long timelines: RTMP's 32-bit milliseconds ---------------------------------------

@pytest.mark.slow
@needs_nginx
@pytest.mark.parametrize("boundary", [1 << 31, 1 << 32], ids=["2^31 ms", "2^32 ms"])
def test_rtmp_stays_continuous_past_2_31_ms_and_across_the_2_32_ms_wrap(nginx, material, boundary):
    # RTMP timestamps are 32-bit milliseconds: 2^31 ms is 24.8 days (a 24/7 stream on
    # one connection gets there), 2^32 ms is 49.7 days, where they wrap to 0. The
    # daemon's clock starts 2 s before the boundary and goes out as it is (rebase=False).
    # What a player reading the recording sees: one frame after another, no jump of
    # days (forward or back) and no run of frames stuck at one time.
    rec, sent, sent_running = _stream_across(nginx, material, "long", boundary)
    # What was fed before the connection ran may be dropped (it starts at a keyframe
    # once connected); of what came after, at most the last moments before the close.
    span = rec["pts"][-1] - rec["pts"][0]
    assert sent_running - 1.5 <= span <= sent + 0.5, (rec["pts"][::30], sent, sent_running)
    assert np.diff(rec["audio_pts"]).max() < 0.5

"""CPU cost of the window output: a 1080p30 H.264 + AAC stream shown by mpv under Xvfb.

A painted 1920x1080 loop is encoded once (lofid.encode, the player's settings) and
its packets are re-sent with shifted timestamps, paced to the wall clock as the
player does in realtime mode, with continuous AAC audio. The CPU time of this
process (pacing + the window's muxing into the pipe), of the mpv child and of the X
server is read from /proc over the measured seconds (after a warm-up). mpv's own
counters tell whether it dropped or delayed frames, and its position against what
was sent tells the latency.

Run: python bench/window_cost.py [--seconds 20] [--mpv-option=--vo=x11 ...]
(needs mpv and Xvfb; starts its own Xvfb unless --display is given).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import threading
import time
from fractions import Fraction

import numpy as np

from lofid.encode import AudioEncoder, VideoSettings, encode_segment, video_stream_info
from lofid.generators import procedural
from lofid.media import Packet
from lofid.scene import parse

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | str = "self") -> float:
    """utime + stime of a process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def start_xvfb(size: str) -> tuple[subprocess.Popen, str]:
    read_end, write_end = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{size}x24",
                             # -noreset: see xvfb() in tests/helpers.py
                             "-nolisten", "tcp", "-noreset"], pass_fds=(write_end,),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        number = f.readline().strip()
    if not number:
        raise SystemExit("Xvfb did not start")
    return xvfb, ":" + number


def make_loop_packets(settings: VideoSettings, seconds: float, source_fps: int) -> list[Packet]:
    """One repetition of a painted loop, converted to the output fps by frame repetition
    (as the player does when the rates divide) and encoded once."""
    n_source = round(seconds * source_fps)
    loop = procedural.generate(parse("rainy window, night"), 1,
                               (settings.width, settings.height), n_source, source_fps)
    repeat = int(settings.fps) // source_fps
    frames = (loop.frames[i // repeat] for i in range(n_source * repeat))
    return encode_segment(frames, settings)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="measured seconds (default 20)")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--loop-seconds", type=float, default=4.0)
    ap.add_argument("--display", help="use this X display instead of starting Xvfb")
    ap.add_argument("--no-audio", action="store_true")
    ap.add_argument("--mpv-option", action="append", default=[],
                    help="extra mpv option, e.g. --mpv-option=--vo=x11 (repeatable)")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))

    xvfb = None
    if args.display:
        os.environ["DISPLAY"] = args.display
    else:
        xvfb, os.environ["DISPLAY"] = start_xvfb(args.size)
    from lofid.outputs.window import WindowOutput

    settings = VideoSettings(width=w, height=h, fps=Fraction(args.fps))
    audio = AudioEncoder()
    info = video_stream_info(settings, audio)
    t = time.process_time()
    loop = make_loop_packets(settings, args.loop_seconds, 10)
    print(f"loop: {len(loop)} frames of {w}x{h} encoded in {time.process_time() - t:.1f} CPU-s, "
          f"{sum(len(p.data) for p in loop) * 8 / args.loop_seconds / 1e6:.2f} Mb/s")
    total = args.warmup + args.seconds
    n_frames = int(total * args.fps)
    spf = 48000 // args.fps
    tone = (0.05 * np.sin(2 * np.pi * 220 * np.arange(n_frames * spf) / 48000)).astype(np.float32)
    samples = np.stack([tone, tone], axis=1)
    start_frame = 12 * 3600 * args.fps          # a clock that has been running for hours
    apk = audio.encode(samples, start_frame * spf) + audio.flush()

    load_before = os.getloadavg()
    states = []
    out = WindowOutput(on_state=lambda name, state, detail: states.append((state, detail)),
                       audio=not args.no_audio, mpv_options=args.mpv_option)
    out.start(info)
    samples_log = []
    mpv_pid = None
    marks = {}
    t0 = time.monotonic()
    ai = 0
    for i in range(n_frames):
        n = start_frame + i
        p = loop[i % len(loop)]
        shift = n - p.pts
        out.send(Packet("video", p.pts + shift, p.dts + shift, 1, p.keyframe, p.data))
        end = (n + 1) * spf
        while ai < len(apk) and apk[ai].pts < end:
            out.send(apk[ai])
            ai += 1
        if mpv_pid is None and out.process is not None:
            mpv_pid = out.process.pid
        if i == int(args.warmup * args.fps):
            marks["start"] = (time.monotonic(), cpu_seconds(), cpu_seconds(mpv_pid),
                              cpu_seconds(xvfb.pid) if xvfb else 0.0)
        if i % args.fps == 0 and i:
            threading.Thread(target=lambda: samples_log.append(
                (out.shown_until, out.mpv_property("time-pos"))), daemon=True).start()
        time.sleep(max(0.0, t0 + (i + 1) / args.fps - time.monotonic()))
    end_marks = (time.monotonic(), cpu_seconds(), cpu_seconds(mpv_pid),
                 cpu_seconds(xvfb.pid) if xvfb else 0.0)
    props = {k: out.mpv_property(k) for k in (
        "current-vo", "hwdec-current", "current-ao", "frame-drop-count",
        "decoder-frame-drop-count", "vo-delayed-frame-count", "estimated-vf-fps",
        "video-params/w", "video-params/h", "osd-width", "osd-height")}
    out.close()
    if xvfb is not None:
        xvfb.terminate()
        xvfb.wait()

    wall = end_marks[0] - marks["start"][0]
    parent, child, xserver = (end_marks[k] - marks["start"][k] for k in (1, 2, 3))
    lat = [s - p for s, p in samples_log if s is not None and p is not None]
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"command: {' '.join(sys.argv)}; load average before {load_before[0]:.2f}, "
          f"after {os.getloadavg()[0]:.2f}")
    print(f"mpv: vo={props['current-vo']} hwdec={props['hwdec-current']} "
          f"ao={props['current-ao']} video {props['video-params/w']}x{props['video-params/h']} "
          f"in a {props['osd-width']}x{props['osd-height']} window")
    print(f"measured {wall:.1f} s of {w}x{h}@{args.fps} after {args.warmup:g} s warm-up")
    print(f"CPU-s per stream second: parent {parent / wall:.3f}, mpv {child / wall:.3f}, "
          f"total {(parent + child) / wall:.3f}; X server {xserver / wall:.3f}")
    print(f"mpv dropped frames: vo {props['frame-drop-count']}, decoder "
          f"{props['decoder-frame-drop-count']}, delayed {props['vo-delayed-frame-count']}; "
          f"estimated fps {props['estimated-vf-fps']}")
    print(f"window output: sent {out.stats.sent}, dropped {out.stats.dropped}, "
          f"stalls {out.stalls}; states {states}")
    if lat:
        print(f"latency (sent minus shown), s: first {lat[0]:.2f}, last {lat[-1]:.2f}, "
              f"max {max(lat):.2f}")


if __name__ == "__main__":
    main()

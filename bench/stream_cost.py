"""CPU cost of a 1080p30 H.264 4.5 Mb/s stream with AAC audio, against ffmpeg.

    python bench/stream_cost.py [--seconds 180] [--rotate 60] [--crossfade 3]

Loops are made first and kept in a temporary library (generation is not measured).
Then, in the same run on the same machine:
- lofid: the player plays them to a null output as fast as it can, a new loop every
  --rotate seconds with a --crossfade, encoding H.264 + AAC: the stream a `rtmp://`
  output would carry. CPU is the process's user + system time, all threads, loading
  loops from the library included.
- ffmpeg re-encoding every frame of the same picture (one loop, upscaled):
  `ffmpeg -stream_loop -1 -i loop.mp4 -vf scale=1920:1080,fps=30 -c:v libx264
  -preset veryfast -tune zerolatency -b:v 4500k -c:a aac -f flv ...`.
- ffmpeg `-c copy` of a pre-encoded loop: the floor.
Figures are CPU-seconds per second of stream. Targets (issue): lofid at most 0.12, and
at least 8 times less than ffmpeg re-encoding.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import tempfile
import time
from fractions import Fraction
from pathlib import Path


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_ffmpeg(args: list[str]) -> float:
    before = cpu_children()
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)
    return cpu_children() - before


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=180.0, help="seconds of stream (default 180)")
    ap.add_argument("--rotate", type=float, default=60.0)
    ap.add_argument("--crossfade", type=float, default=3.0)
    ap.add_argument("--loops", type=int, default=4, help="loops made beforehand")
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--ffmpeg-seconds", type=float, default=60.0,
                    help="seconds ffmpeg encodes (its cost per second is steady)")
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.split("x"))

    from lofid.audio import AudioTrack
    from lofid.director import Director, DirectorSettings
    from lofid.generators import get
    from lofid.library import Library
    from lofid.export import export
    from lofid.outputs.null import NullOutput
    from lofid.player import Player, PlayerSettings
    from lofid.scene import parse

    tmp = Path(tempfile.mkdtemp())
    library = Library(tmp / "library")
    spec = parse("rainy night, coffee shop")
    paint = get("procedural")
    loop_size = (min(w, 1280), min(w, 1280) * h // w)
    loops = [paint(spec, seed, loop_size, 60, 10.0) for seed in range(1, a.loops + 1)]
    for loop in loops:
        library.put(loop)
    export(loops[0], tmp / "loop.mp4")

    director = Director(library, spec, DirectorSettings(loop_size=loop_size, frames=60, fps=10.0,
                                                        rotate=a.rotate, generate=False))
    null = NullOutput()
    player = Player(director, [null], AudioTrack([]),
                    PlayerSettings(fps=Fraction(30), size=(w, h), crossfade=a.crossfade,
                                   duration=a.seconds))
    director.attach_clock(lambda: player.frame / 30)
    c0, t0 = cpu_self(), time.perf_counter()
    player.run()
    lofid_cpu, lofid_wall = cpu_self() - c0, time.perf_counter() - t0
    director.stop()

    rows = [("lofid player (null output)", lofid_cpu, lofid_wall, a.seconds)]
    if shutil.which("ffmpeg"):
        audio = ["-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo"]
        t0 = time.perf_counter()
        cpu = run_ffmpeg(["-stream_loop", "-1", "-i", str(tmp / "loop.mp4"), *audio,
                          "-t", str(a.ffmpeg_seconds), "-vf", f"scale={w}:{h},fps=30",
                          "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
                          "-b:v", "4500k", "-maxrate", "4500k", "-bufsize", "9000k",
                          "-g", "60", "-c:a", "aac", "-b:a", "160k", "-f", "flv", str(tmp / "re.flv")])
        rows.append(("ffmpeg re-encoding (veryfast)", cpu, time.perf_counter() - t0, a.ffmpeg_seconds))
        t0 = time.perf_counter()
        cpu = run_ffmpeg(["-stream_loop", "-1", "-i", str(tmp / "loop.mp4"), "-t", str(a.seconds),
                          "-c", "copy", "-f", "flv", str(tmp / "copy.flv")])
        rows.append(("ffmpeg -c copy (floor)", cpu, time.perf_counter() - t0, a.seconds))

    print(f"{a.seconds:g} s of {w}x{h}@30 stream, new loop every {a.rotate:g} s, "
          f"crossfade {a.crossfade:g} s; player stats: {player.stats}")
    print(f"{'what':<32} {'stream s':>8} {'CPU s':>7} {'wall s':>7} {'CPU s per stream s':>19}")
    for name, cpu, wall, seconds in rows:
        print(f"{name:<32} {seconds:8g} {cpu:7.2f} {wall:7.2f} {cpu / seconds:19.4f}")
    if len(rows) > 1:
        ratio = (rows[1][1] / rows[1][3]) / (lofid_cpu / a.seconds)
        print(f"ffmpeg re-encoding / lofid, per stream second: {ratio:.1f}x")


if __name__ == "__main__":
    main()
